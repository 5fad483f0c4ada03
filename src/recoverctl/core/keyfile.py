"""The v1 key backup file (*.zkkey.json) and secret envelope: read, checked, written.

These are the browser's formats (WebCrypto), described in docs/key-format.md and pinned
by tests/vectors/zkkey-v1.json. This module is the one Python implementation: the
readers recoverctl uses and the writers that tests and drills use, side by side so
they cannot drift apart. Pure: text, bytes and dicts in, results out.

No message built here ever contains key material, a passphrase or a plaintext: they
end up on terminals, in CI logs and in bug reports.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from recoverctl.core.result import INTERNAL, JsonResult, meta
from recoverctl.errors import ErrorCode, RecoverctlError

FORMAT = "zkkey"
VERSION = 1
KEY_ALGORITHM = "RSA-OAEP"
HASH = "SHA-256"
MODULUS_LENGTHS = (2048, 3072)  # 3072 is what the browser generates; 2048 still imports
KDF_NAME = "PBKDF2"
MIN_ITERATIONS = 100_000
DEFAULT_ITERATIONS = 600_000
# Not in the design: a damaged digit could ask for billions of rounds and hang the
# unwrap for hours. Ten million is ~17x the browser's default and still takes seconds.
MAX_ITERATIONS = 10_000_000
WRAP_NAME = "AES-GCM"
SALT_BYTES = 16
IV_BYTES = 12
TAG_BYTES = 16
AES_KEY_BYTES = 32

ENVELOPE_VERSION = 1
ENVELOPE_ALG = "RSA-OAEP-256+A256GCM"
ENVELOPE_FIELDS = frozenset({"v", "alg", "kid", "ek", "iv", "ct"})

FINGERPRINT_RE = re.compile(r"\Asha256:[0-9a-f]{64}\Z")

# WebCrypto's RSA-OAEP with hash SHA-256 uses SHA-256 for MGF1 as well, and no label.
_OAEP = padding.OAEP(
    mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
)

KEYFILE_HINT = (
    "Use another copy of the key backup, or export it again from the vault's "
    '"Key backup" page in a browser that still holds the key; keep the original file unchanged.'
)
RETRY_HINT = (
    "Type the passphrase again (it is case-sensitive). If it is right, this copy of the key "
    "backup is damaged: use another copy."
)
ENVELOPE_HINT = (
    "The stored secret is damaged; it cannot be repaired, only restored from an older backup."
)


class KeyFileError(RecoverctlError):
    """A key backup file cannot be read or unwrapped. Never carries key material."""

    default_code = ErrorCode.KEY_FILE_INVALID

    def __init__(self, message: str, hint: str | None = None, *, problems: Sequence[str] = ()):
        super().__init__(message, hint)
        # Each problem on its own, for callers that render or test them one by one.
        self.problems = tuple(problems) or (message,)


class EnvelopeError(RecoverctlError):
    """A secret envelope is malformed, sealed for another key, or fails to decrypt."""

    default_code = ErrorCode.KEY_MISMATCH

    def __init__(self, message: str, hint: str | None = None, *, problems: Sequence[str] = ()):
        super().__init__(message, hint)
        self.problems = tuple(problems) or (message,)


@dataclass(frozen=True)
class KeyFile(JsonResult):
    """A parsed, shape-checked key backup; the private key is still wrapped."""

    # The JSON is metadata only: nothing in it helps an attacker, all of it helps a person
    # compare keys.
    fingerprint: str
    modulus_length: int = field(metadata=meta(name="modulus", after="created"))
    created: datetime = field(metadata=meta(encode=lambda when: _iso(when), schema=str))
    iterations: int
    # Public or encrypted, but long: kept out of repr so logs and tracebacks stay readable.
    public_key_der: bytes = field(repr=False, metadata=INTERNAL)
    salt: bytes = field(repr=False, metadata=INTERNAL)
    iv: bytes = field(repr=False, metadata=INTERNAL)
    wrapped_key: bytes = field(repr=False, metadata=INTERNAL)

    def public_key(self) -> rsa.RSAPublicKey:
        key = serialization.load_der_public_key(self.public_key_der)
        if not isinstance(key, rsa.RSAPublicKey):  # parse_keyfile guarantees it; hand-built ones
            raise KeyFileError("publicKey is not an RSA key", KEYFILE_HINT)
        return key


def fingerprint_of(spki_der: bytes) -> str:
    return "sha256:" + hashlib.sha256(spki_der).hexdigest()


# --- reading a key backup ------------------------------------------------------------


def parse_keyfile(text: str) -> KeyFile:
    """Check every field of a zkkey v1 export; raise KeyFileError listing all problems."""
    if not text.strip():
        raise _invalid(["the file is empty"])
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # exc.msg and the position only: the exception's str() could quote the input.
        raise _invalid([f"not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})"]) from None
    except (ValueError, RecursionError):
        # Valid JSON syntax past what Python reads: a 5000-digit number, 100000 nested lists.
        raise _invalid(["not JSON recoverctl can read (a huge number or deep nesting)"]) from None
    if not isinstance(data, dict):
        raise _invalid(["the file holds JSON, but not an object"])

    problems: list[str] = []
    _expect(data, "format", "format", FORMAT, problems)
    version = data.get("version", _MISSING)
    if version is _MISSING:
        problems.append("version is missing")
    elif _is_int(version) and version != VERSION:
        problems.append(
            f"version {_show(version)} is not supported (this recoverctl reads version 1)"
        )
    elif not _is_int(version):
        problems.append(f"version is {_show(version)}, expected 1")
    created = _created(data, problems)

    declared_bits = 0
    algorithm = _section(data, "algorithm", problems)
    if algorithm is not None:
        _expect(algorithm, "name", "algorithm.name", KEY_ALGORITHM, problems)
        _expect_hash(algorithm, "algorithm.hash", problems)
        bits = algorithm.get("modulusLength", _MISSING)
        if bits is _MISSING:
            problems.append("algorithm.modulusLength is missing")
        elif not _is_int(bits) or bits not in MODULUS_LENGTHS:
            problems.append(f"algorithm.modulusLength is {_show(bits)}, expected 2048 or 3072")
        if _is_int(bits):
            declared_bits = bits

    public_key_der = _b64_field(data, "publicKey", "publicKey", problems, min_size=1)
    key_bits = _public_key_bits(public_key_der, declared_bits, problems) if public_key_der else 0

    fingerprint = data.get("fingerprint", _MISSING)
    if fingerprint is _MISSING:
        problems.append("fingerprint is missing")
    elif not isinstance(fingerprint, str) or not FINGERPRINT_RE.match(fingerprint):
        problems.append('fingerprint is not "sha256:" followed by 64 lowercase hex digits')
    elif key_bits and fingerprint != fingerprint_of(public_key_der):
        problems.append(
            f"fingerprint {fingerprint} does not match publicKey, "
            f"whose fingerprint is {fingerprint_of(public_key_der)}"
        )

    iterations = 0
    salt = b""
    kdf = _section(data, "kdf", problems)
    if kdf is not None:
        _expect(kdf, "name", "kdf.name", KDF_NAME, problems)
        _expect_hash(kdf, "kdf.hash", problems)
        iterations = _iterations(kdf, problems)
        salt = _b64_field(kdf, "salt", "kdf.salt", problems, size=SALT_BYTES)

    iv = b""
    wrap = _section(data, "wrap", problems)
    if wrap is not None:
        _expect(wrap, "name", "wrap.name", WRAP_NAME, problems)
        iv = _b64_field(wrap, "iv", "wrap.iv", problems, size=IV_BYTES)

    wrapped_key = _b64_field(data, "wrappedKey", "wrappedKey", problems, min_size=TAG_BYTES)

    if problems or created is None:
        raise _invalid(problems)
    return KeyFile(
        fingerprint=str(fingerprint),
        modulus_length=key_bits,
        created=created,
        iterations=iterations,
        public_key_der=public_key_der,
        salt=salt,
        iv=iv,
        wrapped_key=wrapped_key,
    )


def unwrap_private_key(kf: KeyFile, passphrase: str) -> rsa.RSAPrivateKey:
    """Decrypt the private key; prove it is the pair of publicKey and of the fingerprint."""
    try:
        secret = passphrase.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates, e.g. from a terminal in the wrong encoding: the browser could
        # never have used this string, so no amount of retrying with it will help.
        raise KeyFileError(
            "the passphrase is not valid text (it cannot be encoded as UTF-8)",
            "Check the terminal's encoding (a UTF-8 locale) and type the passphrase again.",
        ) from None
    try:
        pkcs8 = AESGCM(_kek(secret, kf.salt, kf.iterations)).decrypt(kf.iv, kf.wrapped_key, None)
    except InvalidTag:
        # GCM cannot tell a wrong key from damaged bytes; neither can we.
        raise KeyFileError("wrong passphrase or damaged key file", RETRY_HINT) from None
    except ValueError:  # an iv or salt a hand-built KeyFile got wrong
        raise KeyFileError("damaged key file (bad wrap parameters)", KEYFILE_HINT) from None
    try:
        private_key = serialization.load_der_private_key(pkcs8, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyFileError(
            "damaged key file: wrappedKey decrypts, but not to a PKCS#8 private key",
            KEYFILE_HINT,
        ) from None
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise KeyFileError("inconsistent key file: the private key is not an RSA key", KEYFILE_HINT)
    if private_key.public_key().public_numbers() != kf.public_key().public_numbers():
        raise KeyFileError(
            "inconsistent key file: the private key does not match its public key", KEYFILE_HINT
        )
    if fingerprint_of(kf.public_key_der) != kf.fingerprint:  # parse checked it; hand-built ones
        raise KeyFileError(
            "inconsistent key file: the fingerprint does not match its public key", KEYFILE_HINT
        )
    return private_key


# --- reading an envelope ---------------------------------------------------------------


def open_envelope(private_key: rsa.RSAPrivateKey, envelope: Mapping[str, Any]) -> bytes:
    """Decrypt one secret; EnvelopeError says whether it is malformed, foreign or damaged."""
    kid, ek, iv, ct = _envelope_parts(envelope)
    mine = fingerprint_of(_spki(private_key.public_key()))
    if kid != mine:
        raise EnvelopeError(
            f"this secret was sealed for key {kid}, not for this key ({mine})",
            f"Import the key backup whose fingerprint is {kid}; a secret opens only with "
            "the key it was sealed for.",
        )
    expected = private_key.key_size // 8
    if len(ek) != expected:
        raise EnvelopeError(
            f"damaged envelope: ek is {len(ek)} bytes, an RSA-{private_key.key_size} key "
            f"produces {expected}",
            ENVELOPE_HINT,
        )
    try:
        aes_key = private_key.decrypt(ek, _OAEP)
    except ValueError:
        raise EnvelopeError(
            "damaged envelope: its AES key (ek) does not decrypt with this private key",
            ENVELOPE_HINT,
        ) from None
    if len(aes_key) != AES_KEY_BYTES:
        raise EnvelopeError(
            f"damaged envelope: its AES key is {len(aes_key)} bytes, expected {AES_KEY_BYTES}",
            ENVELOPE_HINT,
        )
    try:
        return AESGCM(aes_key).decrypt(iv, ct, None)
    except InvalidTag:
        raise EnvelopeError(
            "damaged envelope: the ciphertext fails its integrity check (ct or iv was altered)",
            ENVELOPE_HINT,
        ) from None


# --- helpers -------------------------------------------------------------------------------

_MISSING: Any = object()


def _invalid(problems: Sequence[str]) -> KeyFileError:
    lines = "\n".join(f"- {p}" for p in problems)
    return KeyFileError(f"not a valid key backup file:\n{lines}", KEYFILE_HINT, problems=problems)


def _is_int(value: Any) -> bool:
    # bool is an int in Python; true must not pass for 1.
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: Any) -> str:
    """A short rendering of a metadata value; never called on key or salt fields."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 40 else text[:37] + "..."


def _iso(when: datetime) -> str:
    # The shape of JavaScript's Date.toISOString(), which the browser writes.
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _spki(public_key: rsa.RSAPublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _kek(secret: bytes, salt: bytes, iterations: int) -> bytes:
    kdf = PBKDF2HMAC(
        algorithm=hashes.SHA256(), length=AES_KEY_BYTES, salt=salt, iterations=iterations
    )
    return kdf.derive(secret)


def _expect(
    obj: Mapping[str, Any], key: str, path: str, expected: Any, problems: list[str]
) -> None:
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        problems.append(f"{path} is missing")
    elif value != expected or type(value) is not type(expected):
        problems.append(f"{path} is {_show(value)}, expected {_show(expected)}")


def _expect_hash(obj: Mapping[str, Any], path: str, problems: list[str]) -> None:
    value = obj.get("hash", _MISSING)
    # WebCrypto's own algorithm objects say {"name": "SHA-256"}: accepted, as the server does.
    if isinstance(value, dict) and set(value) == {"name"}:
        value = value["name"]
    if value is _MISSING:
        problems.append(f"{path} is missing")
    elif value != HASH:
        problems.append(f"{path} is {_show(value)}, expected {_show(HASH)}")


def _section(data: Mapping[str, Any], key: str, problems: list[str]) -> Mapping[str, Any] | None:
    value = data.get(key, _MISSING)
    if value is _MISSING:
        problems.append(f"{key} is missing")
        return None
    if not isinstance(value, dict):
        problems.append(f"{key} is {_show(value)}, expected an object")
        return None
    return value


def _b64_field(
    obj: Mapping[str, Any],
    key: str,
    path: str,
    problems: list[str],
    *,
    size: int | None = None,
    min_size: int = 0,
) -> bytes:
    """Decoded bytes, or b"" with a problem recorded. Never echoes the value."""
    value = obj.get(key, _MISSING)
    if value is _MISSING:
        problems.append(f"{path} is missing")
        return b""
    if not isinstance(value, str) or not value:
        problems.append(f"{path} is not a base64 string")
        return b""
    try:
        # Standard alphabet with padding, as btoa() writes; looser decoding hides damage.
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        problems.append(f"{path} is not valid base64")
        return b""
    if size is not None and len(raw) != size:
        problems.append(f"{path} is {len(raw)} bytes, expected {size}")
        return b""
    if len(raw) < min_size:
        problems.append(f"{path} is {len(raw)} bytes, expected at least {min_size}")
        return b""
    return raw


def _public_key_bits(der: bytes, declared_bits: int, problems: list[str]) -> int:
    """The RSA modulus size of an SPKI (0 if it is not one); size problems are recorded."""
    try:
        key = serialization.load_der_public_key(der)
    except (ValueError, UnsupportedAlgorithm):
        problems.append("publicKey is not a DER SubjectPublicKeyInfo public key")
        return 0
    if not isinstance(key, rsa.RSAPublicKey):
        problems.append("publicKey is not an RSA key")
        return 0
    bits = key.key_size
    if declared_bits and bits != declared_bits:
        problems.append(
            f"publicKey is an RSA-{bits} key, but algorithm.modulusLength says {declared_bits}"
        )
    elif not declared_bits and bits not in MODULUS_LENGTHS:
        problems.append(f"publicKey is an RSA-{bits} key, expected 2048 or 3072")
    # The size even when wrong: the fingerprint can still be compared against the key.
    return bits


def _created(data: Mapping[str, Any], problems: list[str]) -> datetime | None:
    value = data.get("created", _MISSING)
    if value is _MISSING:
        problems.append("created is missing")
        return None
    expected = "expected an ISO 8601 UTC timestamp"
    if not isinstance(value, str):
        problems.append(f"created is {_show(value)}, {expected}")
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        problems.append(f"created is {_show(value)}, {expected}")
        return None
    if when.utcoffset() != timedelta(0):
        problems.append(f"created is {_show(value)}, not in UTC (expected a Z suffix)")
        return None
    return when.astimezone(UTC)


def _iterations(kdf: Mapping[str, Any], problems: list[str]) -> int:
    value = kdf.get("iterations", _MISSING)
    if value is _MISSING:
        problems.append("kdf.iterations is missing")
    elif not _is_int(value):
        problems.append(f"kdf.iterations is {_show(value)}, expected a whole number")
    elif value < MIN_ITERATIONS:
        problems.append(f"kdf.iterations is {_show(value)}, below the minimum of {MIN_ITERATIONS}")
    elif value > MAX_ITERATIONS:
        problems.append(
            f"kdf.iterations is {_show(value)}, above the maximum of {MAX_ITERATIONS} "
            "(the file is probably damaged)"
        )
    else:
        return int(value)
    return 0


def _envelope_parts(envelope: Mapping[str, Any]) -> tuple[str, bytes, bytes, bytes]:
    if not isinstance(envelope, Mapping):
        raise EnvelopeError("not a valid secret envelope: not a JSON object", ENVELOPE_HINT)
    problems: list[str] = []
    unknown = sorted(str(k) for k in set(envelope) - ENVELOPE_FIELDS)
    if unknown:
        problems.append(f"unknown fields: {', '.join(unknown)}")
    version = envelope.get("v", _MISSING)
    if version is _MISSING:
        problems.append("v is missing")
    elif not _is_int(version) or version != ENVELOPE_VERSION:
        problems.append(f"v is {_show(version)}, expected {ENVELOPE_VERSION}")
    _expect(envelope, "alg", "alg", ENVELOPE_ALG, problems)
    kid = envelope.get("kid", _MISSING)
    if kid is _MISSING:
        problems.append("kid is missing")
    elif not isinstance(kid, str) or not FINGERPRINT_RE.match(kid):
        problems.append('kid is not "sha256:" followed by 64 lowercase hex digits')
    ek = _b64_field(envelope, "ek", "ek", problems, min_size=1)
    iv = _b64_field(envelope, "iv", "iv", problems, size=IV_BYTES)
    ct = _b64_field(envelope, "ct", "ct", problems, min_size=TAG_BYTES)
    if problems:
        lines = "\n".join(f"- {p}" for p in problems)
        raise EnvelopeError(
            f"not a valid secret envelope:\n{lines}", ENVELOPE_HINT, problems=problems
        )
    return str(kid), ek, iv, ct
