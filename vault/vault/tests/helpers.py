"""Real RSA-OAEP / AES-256-GCM material, made the way the browser makes it."""

from __future__ import annotations

import base64
import functools
import hashlib
import os
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class KeyPair:
    private: rsa.RSAPrivateKey
    spki: bytes
    bits: int

    @property
    def public_key_b64(self) -> str:
        return b64(self.spki)

    @property
    def fingerprint(self) -> str:
        return "sha256:" + hashlib.sha256(self.spki).hexdigest()

    def registration(self, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "publicKey": self.public_key_b64,
            "fingerprint": self.fingerprint,
            "algorithm": {"name": "RSA-OAEP", "modulusLength": self.bits, "hash": "SHA-256"},
        }
        body.update(extra)
        return body

    def seal(self, plaintext: bytes, kid: str | None = None) -> dict[str, Any]:
        aes_key = os.urandom(32)
        iv = os.urandom(12)
        ct = AESGCM(aes_key).encrypt(iv, plaintext, None)  # tag appended, as WebCrypto does
        ek = self.private.public_key().encrypt(aes_key, OAEP)
        return {
            "v": 1,
            "alg": "RSA-OAEP-256+A256GCM",
            "kid": kid or self.fingerprint,
            "ek": b64(ek),
            "iv": b64(iv),
            "ct": b64(ct),
        }

    def open(self, envelope: dict[str, Any]) -> bytes:
        aes_key = self.private.decrypt(base64.b64decode(envelope["ek"]), OAEP)
        return AESGCM(aes_key).decrypt(base64.b64decode(envelope["iv"]), base64.b64decode(envelope["ct"]), None)


@functools.cache
def keypair(name: str, bits: int = 2048) -> KeyPair:
    """Keys are cached by name: RSA generation is the slow part of the suite."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    spki = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return KeyPair(private=private, spki=spki, bits=bits)
