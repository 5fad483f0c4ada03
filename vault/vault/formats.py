"""The v1 key and envelope formats (shared/design/key-format.md), checked server side.

The server never decrypts, so it only checks shapes and sizes, plus what it can
prove without a private key: that a public key is RSA of an accepted size and
that its fingerprint is the SHA-256 of its SPKI bytes. Stdlib only on purpose.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any

ENVELOPE_VERSION = 1
ENVELOPE_ALG = "RSA-OAEP-256+A256GCM"
ENVELOPE_KEYS = frozenset({"v", "alg", "kid", "ek", "iv", "ct"})
IV_BYTES = 12
GCM_TAG_BYTES = 16
# Passwords and notes, not files: a cap keeps one row from bloating every backup.
MAX_CT_BYTES = 64 * 1024

KEY_NAME = "RSA-OAEP"
KEY_HASH = "SHA-256"
MODULUS_BITS = (2048, 3072)
MAX_SPKI_BYTES = 4096

FINGERPRINT_RE = re.compile(r"\Asha256:[0-9a-f]{64}\Z")
# DER of OID 1.2.840.113549.1.1.1 (rsaEncryption), value bytes only.
_RSA_ENCRYPTION_OID = bytes.fromhex("2a864886f70d010101")


class FormatError(ValueError):
    """Input does not follow the v1 format; the message is safe to return to clients."""


def b64decode_strict(value: Any, field: str) -> bytes:
    # Standard alphabet with padding, as btoa() produces; anything looser hides client bugs.
    if not isinstance(value, str) or not value:
        raise FormatError(f"{field} must be a non-empty base64 string")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise FormatError(f"{field} is not valid base64") from None


def fingerprint_of(spki_der: bytes) -> str:
    return "sha256:" + hashlib.sha256(spki_der).hexdigest()


def check_fingerprint_text(value: Any, field: str = "fingerprint") -> str:
    if not isinstance(value, str) or not FINGERPRINT_RE.match(value):
        raise FormatError(f"{field} must be 'sha256:' followed by 64 lowercase hex digits")
    return value


# --- minimal DER reader, just enough for an RSA SubjectPublicKeyInfo -------------


def _read_tlv(buf: bytes, pos: int, end: int, tag: int, what: str) -> tuple[int, int]:
    """Return (value_start, value_end) of the element at pos, which must have this tag."""
    if pos + 2 > end or buf[pos] != tag:
        raise FormatError(f"publicKey is not an RSA SPKI ({what} expected)")
    length = buf[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 2 or pos + count > end:
            raise FormatError("publicKey is not an RSA SPKI (bad DER length)")
        length = int.from_bytes(buf[pos : pos + count], "big")
        pos += count
    if pos + length > end:
        raise FormatError("publicKey is not an RSA SPKI (truncated)")
    return pos, pos + length


def _read_positive_int(buf: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    start, stop = _read_tlv(buf, pos, end, 0x02, what)
    raw = buf[start:stop]
    if not raw or raw[0] & 0x80:
        raise FormatError(f"publicKey has a non-positive {what}")
    return int.from_bytes(raw, "big"), stop


def rsa_modulus_bits(spki_der: bytes) -> int:
    """Parse an SPKI DER and return the RSA modulus size in bits (2048 or 3072)."""
    end = len(spki_der)
    start, stop = _read_tlv(spki_der, 0, end, 0x30, "SEQUENCE")
    if stop != end:
        raise FormatError("publicKey has trailing bytes")
    alg_start, alg_stop = _read_tlv(spki_der, start, stop, 0x30, "AlgorithmIdentifier")
    oid_start, oid_stop = _read_tlv(spki_der, alg_start, alg_stop, 0x06, "OID")
    if spki_der[oid_start:oid_stop] != _RSA_ENCRYPTION_OID:
        raise FormatError("publicKey is not an RSA key")
    bits_start, bits_stop = _read_tlv(spki_der, alg_stop, stop, 0x03, "BIT STRING")
    if bits_stop != stop or bits_start == bits_stop or spki_der[bits_start] != 0:
        raise FormatError("publicKey is not an RSA SPKI (bad BIT STRING)")
    key_start, key_stop = _read_tlv(spki_der, bits_start + 1, bits_stop, 0x30, "RSAPublicKey")
    modulus, pos = _read_positive_int(spki_der, key_start, key_stop, "modulus")
    exponent, pos = _read_positive_int(spki_der, pos, key_stop, "exponent")
    if pos != key_stop:
        raise FormatError("publicKey has trailing bytes in RSAPublicKey")
    if exponent < 3 or exponent % 2 == 0:
        raise FormatError("publicKey has an invalid RSA exponent")
    bits = modulus.bit_length()
    if bits not in MODULUS_BITS:
        raise FormatError(f"RSA modulus must be 2048 or 3072 bits, got {bits}")
    return bits


def normalize_algorithm(value: Any, modulus_bits: int) -> dict[str, Any]:
    """Check a client-declared algorithm against the key; return the stored form.

    Accepts WebCrypto's own shape (hash as {"name": ...}, publicExponent present)
    because clients tend to send key.algorithm as is.
    """
    stored = {"name": KEY_NAME, "modulusLength": modulus_bits, "hash": KEY_HASH}
    if value is None:
        return stored
    if not isinstance(value, dict):
        raise FormatError("algorithm must be an object")
    unknown = set(value) - {"name", "modulusLength", "hash", "publicExponent"}
    if unknown:
        raise FormatError(f"algorithm has unknown fields: {', '.join(sorted(unknown))}")
    if value.get("name") != KEY_NAME:
        raise FormatError(f"algorithm.name must be {KEY_NAME!r}")
    hash_value = value.get("hash")
    if isinstance(hash_value, dict):
        hash_value = hash_value.get("name")
    if hash_value != KEY_HASH:
        raise FormatError(f"algorithm.hash must be {KEY_HASH!r}")
    length = value.get("modulusLength")
    if isinstance(length, bool) or length != modulus_bits:
        raise FormatError(f"algorithm.modulusLength must match the key ({modulus_bits})")
    return stored


def parse_public_key(public_key: Any, fingerprint: Any, algorithm: Any = None) -> tuple[str, str, dict[str, Any]]:
    """Validate a key registration; return (canonical base64 SPKI, fingerprint, algorithm)."""
    check_fingerprint_text(fingerprint)
    der = b64decode_strict(public_key, "publicKey")
    if len(der) > MAX_SPKI_BYTES:
        raise FormatError("publicKey is too large")
    bits = rsa_modulus_bits(der)
    if fingerprint_of(der) != fingerprint:
        raise FormatError("fingerprint does not match publicKey (sha256 of the SPKI bytes)")
    return base64.b64encode(der).decode("ascii"), fingerprint, normalize_algorithm(algorithm, bits)


def validate_envelope(envelope: Any) -> dict[str, Any]:
    """Check the v1 envelope shape; return it unchanged (it is stored as sent)."""
    if not isinstance(envelope, dict):
        raise FormatError("envelope must be a JSON object")
    keys = set(envelope)
    if keys - ENVELOPE_KEYS:
        raise FormatError(f"envelope has unknown fields: {', '.join(sorted(map(str, keys - ENVELOPE_KEYS)))}")
    if ENVELOPE_KEYS - keys:
        raise FormatError(f"envelope is missing fields: {', '.join(sorted(ENVELOPE_KEYS - keys))}")
    version = envelope["v"]
    # bool is an int in Python; true must not pass for 1.
    if isinstance(version, bool) or version != ENVELOPE_VERSION:
        raise FormatError(f"envelope.v must be {ENVELOPE_VERSION}")
    if envelope["alg"] != ENVELOPE_ALG:
        raise FormatError(f"envelope.alg must be {ENVELOPE_ALG!r}")
    check_fingerprint_text(envelope["kid"], "envelope.kid")
    ek = b64decode_strict(envelope["ek"], "envelope.ek")
    if len(ek) not in (bits // 8 for bits in MODULUS_BITS):
        raise FormatError("envelope.ek must be 256 or 384 bytes (RSA-2048 or RSA-3072 output)")
    if len(b64decode_strict(envelope["iv"], "envelope.iv")) != IV_BYTES:
        raise FormatError(f"envelope.iv must be {IV_BYTES} bytes")
    ct = b64decode_strict(envelope["ct"], "envelope.ct")
    if len(ct) < GCM_TAG_BYTES:
        raise FormatError(f"envelope.ct must be at least {GCM_TAG_BYTES} bytes (GCM tag)")
    if len(ct) > MAX_CT_BYTES:
        raise FormatError(f"envelope.ct is larger than {MAX_CT_BYTES} bytes")
    return envelope


def envelope_ek_bytes(envelope: dict[str, Any]) -> int:
    return len(base64.b64decode(envelope["ek"]))
