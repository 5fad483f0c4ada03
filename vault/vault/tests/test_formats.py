from __future__ import annotations

import base64
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import SimpleTestCase

from vault import formats
from vault.tests.helpers import b64, keypair


class EnvelopeShapeTests(SimpleTestCase):
    def setUp(self) -> None:
        self.key = keypair("alice")
        self.good = self.key.seal(b"hunter2")

    def with_(self, **changes: Any) -> dict[str, Any]:
        envelope = dict(self.good)
        envelope.update(changes)
        return envelope

    def assertRejected(self, envelope: Any, fragment: str) -> None:
        with self.assertRaises(formats.FormatError) as ctx:
            formats.validate_envelope(envelope)
        self.assertIn(fragment, str(ctx.exception))

    def test_real_envelope_is_accepted_and_opens(self) -> None:
        self.assertEqual(formats.validate_envelope(self.good), self.good)
        self.assertEqual(self.key.open(self.good), b"hunter2")

    def test_rsa_3072_envelope_is_accepted(self) -> None:
        formats.validate_envelope(keypair("big", 3072).seal(b"x"))

    def test_not_an_object(self) -> None:
        for value in (None, [], "envelope", 1):
            self.assertRejected(value, "JSON object")

    def test_unknown_field(self) -> None:
        self.assertRejected(self.with_(plaintext="oops"), "unknown fields: plaintext")

    def test_each_missing_field(self) -> None:
        for field in formats.ENVELOPE_KEYS:
            envelope = dict(self.good)
            del envelope[field]
            self.assertRejected(envelope, f"missing fields: {field}")

    def test_bad_version(self) -> None:
        for value in (2, 0, "1", True, None):
            self.assertRejected(self.with_(v=value), "envelope.v")

    def test_bad_alg(self) -> None:
        for value in ("RSA-OAEP+A256GCM", "rsa-oaep-256+a256gcm", None):
            self.assertRejected(self.with_(alg=value), "envelope.alg")

    def test_bad_kid(self) -> None:
        fp = self.key.fingerprint
        for value in (fp.upper(), fp[:-1], fp[len("sha256:") :], "sha1:" + fp[7:], fp + "0", 42):
            self.assertRejected(self.with_(kid=value), "envelope.kid")

    def test_ek_not_base64(self) -> None:
        for value in ("not base64!", self.good["ek"] + " ", "", 7):
            self.assertRejected(self.with_(ek=value), "envelope.ek")

    def test_ek_wrong_size(self) -> None:
        for size in (255, 257, 128, 512):
            self.assertRejected(self.with_(ek=b64(bytes(size))), "envelope.ek must be 256 or 384")

    def test_url_safe_base64_is_rejected(self) -> None:
        urlsafe = base64.urlsafe_b64encode(b"\xfb\xff" * 128).decode()
        self.assertRejected(self.with_(ek=urlsafe), "envelope.ek is not valid base64")

    def test_iv_wrong_size(self) -> None:
        for size in (0, 11, 13, 16):
            self.assertRejected(self.with_(iv=b64(bytes(size))), "envelope.iv")

    def test_ct_too_short_or_too_long(self) -> None:
        self.assertRejected(self.with_(ct=b64(bytes(15))), "at least 16 bytes")
        self.assertRejected(self.with_(ct=b64(bytes(formats.MAX_CT_BYTES + 1))), "larger than")
        formats.validate_envelope(self.with_(ct=b64(bytes(16))))  # empty plaintext + tag


class PublicKeyTests(SimpleTestCase):
    def test_real_keys_parse(self) -> None:
        for bits in (2048, 3072):
            key = keypair("parse", bits)
            spki_b64, fp, algorithm = formats.parse_public_key(key.public_key_b64, key.fingerprint)
            self.assertEqual(spki_b64, key.public_key_b64)
            self.assertEqual(fp, key.fingerprint)
            self.assertEqual(algorithm, {"name": "RSA-OAEP", "modulusLength": bits, "hash": "SHA-256"})

    def test_fingerprint_mismatch(self) -> None:
        key, other = keypair("alice"), keypair("bob")
        with self.assertRaisesMessage(formats.FormatError, "fingerprint does not match"):
            formats.parse_public_key(key.public_key_b64, other.fingerprint)

    def test_fingerprint_format(self) -> None:
        key = keypair("alice")
        with self.assertRaisesMessage(formats.FormatError, "64 lowercase hex"):
            formats.parse_public_key(key.public_key_b64, key.fingerprint.upper())

    def test_webcrypto_algorithm_shape_accepted(self) -> None:
        key = keypair("alice")
        # What JSON.stringify(key.algorithm) gives in a browser.
        algorithm = {
            "name": "RSA-OAEP",
            "modulusLength": 2048,
            "hash": {"name": "SHA-256"},
            "publicExponent": {"0": 1, "1": 0, "2": 1},
        }
        _, _, stored = formats.parse_public_key(key.public_key_b64, key.fingerprint, algorithm)
        self.assertEqual(stored["modulusLength"], 2048)

    def test_algorithm_must_match_key(self) -> None:
        key = keypair("alice")
        bad = [
            {"name": "RSA-OAEP", "modulusLength": 3072, "hash": "SHA-256"},
            {"name": "RSA-PSS", "modulusLength": 2048, "hash": "SHA-256"},
            {"name": "RSA-OAEP", "modulusLength": 2048, "hash": "SHA-1"},
            {"name": "RSA-OAEP", "modulusLength": 2048, "hash": "SHA-256", "extra": 1},
            "RSA-OAEP",
        ]
        for algorithm in bad:
            with self.assertRaises(formats.FormatError, msg=repr(algorithm)):
                formats.parse_public_key(key.public_key_b64, key.fingerprint, algorithm)

    def test_non_rsa_and_small_keys_rejected(self) -> None:
        ec_spki = (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        with self.assertRaisesMessage(formats.FormatError, "not an RSA key"):
            formats.parse_public_key(b64(ec_spki), formats.fingerprint_of(ec_spki))
        small = keypair("small", 1024)
        with self.assertRaisesMessage(formats.FormatError, "2048 or 3072"):
            formats.parse_public_key(small.public_key_b64, small.fingerprint)

    def test_garbage_and_truncated_der(self) -> None:
        spki = keypair("alice").spki
        for der in (b"\x30\x00", spki[:-1], spki + b"\x00", b"hello world"):
            with self.assertRaises(formats.FormatError):
                formats.parse_public_key(b64(der), formats.fingerprint_of(der))
