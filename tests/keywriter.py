"""Writers of key exports and envelopes, exactly as the browser produces them: the tests'
way to make what recoverctl only ever reads (the product itself never writes keys)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from recoverctl.core.keyfile import (
    _OAEP,
    AES_KEY_BYTES,
    DEFAULT_ITERATIONS,
    ENVELOPE_ALG,
    ENVELOPE_VERSION,
    FORMAT,
    HASH,
    IV_BYTES,
    KDF_NAME,
    KEY_ALGORITHM,
    MAX_ITERATIONS,
    MIN_ITERATIONS,
    MODULUS_LENGTHS,
    SALT_BYTES,
    VERSION,
    WRAP_NAME,
    _b64,
    _iso,
    _kek,
    _spki,
    fingerprint_of,
)


def make_keyfile(
    private_key: rsa.RSAPrivateKey,
    passphrase: str,
    *,
    iterations: int = DEFAULT_ITERATIONS,
    created: datetime | None = None,
    salt: bytes | None = None,
    iv: bytes | None = None,
) -> dict[str, Any]:
    """The zkkey v1 object the browser exports; salt and iv are random unless given.

    Refuses (ValueError) anything parse_keyfile would reject: a writer that can produce
    unreadable files would make drills lie.
    """
    if private_key.key_size not in MODULUS_LENGTHS:
        raise ValueError(f"RSA-{private_key.key_size} keys are not accepted (2048 or 3072)")
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be {MIN_ITERATIONS} to {MAX_ITERATIONS}")
    if not passphrase:
        raise ValueError("an empty passphrase protects nothing")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    iv = secrets.token_bytes(IV_BYTES) if iv is None else iv
    if len(salt) != SALT_BYTES or len(iv) != IV_BYTES:
        raise ValueError(f"salt must be {SALT_BYTES} bytes and iv {IV_BYTES} bytes")
    created = datetime.now(UTC) if created is None else created
    if created.utcoffset() is None:
        raise ValueError("created must be timezone-aware")
    spki = _spki(private_key.public_key())
    pkcs8 = private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # WebCrypto wrapKey with AES-GCM returns ciphertext || tag, as AESGCM.encrypt does.
    wrapped = AESGCM(_kek(passphrase.encode("utf-8"), salt, iterations)).encrypt(iv, pkcs8, None)
    return {
        "format": FORMAT,
        "version": VERSION,
        "created": _iso(created),
        "algorithm": {"name": KEY_ALGORITHM, "modulusLength": private_key.key_size, "hash": HASH},
        "publicKey": _b64(spki),
        "fingerprint": fingerprint_of(spki),
        "kdf": {"name": KDF_NAME, "hash": HASH, "iterations": iterations, "salt": _b64(salt)},
        "wrap": {"name": WRAP_NAME, "iv": _b64(iv)},
        "wrappedKey": _b64(wrapped),
    }


def seal_envelope(public_key_der: bytes, plaintext: bytes) -> dict[str, Any]:
    """A v1 envelope for this SPKI public key, as the browser seals a secret."""
    try:
        public_key = serialization.load_der_public_key(public_key_der)
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("public_key_der is not a DER SubjectPublicKeyInfo") from None
    if not isinstance(public_key, rsa.RSAPublicKey) or public_key.key_size not in MODULUS_LENGTHS:
        raise ValueError("public_key_der must be an RSA-2048 or RSA-3072 public key")
    aes_key = secrets.token_bytes(AES_KEY_BYTES)
    iv = secrets.token_bytes(IV_BYTES)
    return {
        "v": ENVELOPE_VERSION,
        "alg": ENVELOPE_ALG,
        "kid": fingerprint_of(public_key_der),
        "ek": _b64(public_key.encrypt(aes_key, _OAEP)),
        "iv": _b64(iv),
        "ct": _b64(AESGCM(aes_key).encrypt(iv, plaintext, None)),
    }
