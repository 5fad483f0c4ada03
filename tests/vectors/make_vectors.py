"""Make tests/vectors/zkkey-v1.json: a TEST-ONLY key backup and two envelopes, made once.

The vector is committed and never regenerated: its job is to prove that files written
by an earlier version of the code still open. If a change to core/keyfile.py makes the
vector fail, the change broke compatibility with keys people already hold; fix the
change, not the vector. --force exists only for a new format version's first vector.

Everything in the vector is public: the private key and the passphrase are printed in
it on purpose. Never use them for anything but tests.

    .venv/bin/python tests/vectors/make_vectors.py [--force]
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tests.keywriter import make_keyfile, seal_envelope

VECTOR = Path(__file__).with_name("zkkey-v1.json")
PASSPHRASE = "correct horse battery staple"
# Fixed so that make_keyfile() must reproduce keyFile byte for byte (see the tests).
CREATED = datetime(2026, 1, 15, 9, 30, 0, tzinfo=UTC)
SALT = bytes.fromhex("5a6b7c8d9eafb0c1d2e3f40516273849")
IV = bytes.fromhex("0badc0ffee0ddf00dcafebab")
# The minimum the format accepts: keeps the test fast; the default is tested elsewhere.
ITERATIONS = 100_000
PLAINTEXTS = ("hunter2", 'pässwörd — ✓ 🔑 with spaces and "quotes"')


def build() -> dict[str, Any]:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    key_file = make_keyfile(
        private_key, PASSPHRASE, iterations=ITERATIONS, created=CREATED, salt=SALT, iv=IV
    )
    spki = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    return {
        "WARNING": (
            "TEST ONLY. The private key and passphrase below are public; never use them "
            "for real secrets. Made once by tests/vectors/make_vectors.py; do not regenerate."
        ),
        "testOnly": True,
        "testOnlyPassphrase": PASSPHRASE,
        "testOnlyPrivateKeyPem": pem,
        "keyFile": key_file,
        "envelopes": [
            {"plaintext": text, "envelope": seal_envelope(spki, text.encode("utf-8"))}
            for text in PLAINTEXTS
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--force", action="store_true", help="overwrite an existing vector")
    args = parser.parse_args(argv)
    if VECTOR.exists() and not args.force:
        print(f"{VECTOR} exists; vectors are made once (see this script's docstring).")
        return 1
    VECTOR.write_text(json.dumps(build(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {VECTOR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
