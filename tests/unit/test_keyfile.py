"""Key backup files and envelopes: real RSA/AES material, exact messages, no leaks."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from recoverctl.core.keyfile import (
    DEFAULT_ITERATIONS,
    ENVELOPE_HINT,
    KEYFILE_HINT,
    RETRY_HINT,
    EnvelopeError,
    KeyFile,
    KeyFileError,
    fingerprint_of,
    open_envelope,
    parse_keyfile,
    unwrap_private_key,
)
from recoverctl.errors import RecoverctlError
from tests.keywriter import make_keyfile, seal_envelope

VECTOR = Path(__file__).parent.parent / "vectors" / "zkkey-v1.json"
# No English words in it: the leak check looks for any 12 characters of it in messages.
PASSPHRASE = "Tr0ub4dor&3-ünï-Zq9/kx"
FAST = 100_000  # the minimum accepted; the default (600000) is tested once
PLAINTEXT = b"s3cr3t-Plaintext-do-not-echo"
CREATED = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def spki(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture(scope="session")
def key3072() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


@pytest.fixture(scope="session")
def key2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other2048() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def key1024() -> rsa.RSAPrivateKey:
    # Too small on purpose: the reader and writer must both refuse it.
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505


@pytest.fixture(scope="session")
def exported_once(key2048: rsa.RSAPrivateKey) -> dict[str, Any]:
    return make_keyfile(key2048, PASSPHRASE, iterations=FAST, created=CREATED)


@pytest.fixture
def exported(exported_once: dict[str, Any]) -> dict[str, Any]:
    """A fresh copy each test may damage."""
    return copy.deepcopy(exported_once)


@pytest.fixture(scope="session")
def envelope_once(key2048: rsa.RSAPrivateKey) -> dict[str, Any]:
    return seal_envelope(spki(key2048), PLAINTEXT)


@pytest.fixture
def envelope(envelope_once: dict[str, Any]) -> dict[str, Any]:
    return dict(envelope_once)


@pytest.fixture
def no_leaks(
    exported_once: dict[str, Any], key2048: rsa.RSAPrivateKey
) -> Iterator[Callable[[RecoverctlError], None]]:
    """Checks an error for any 12-character piece of a secret, passphrase or key bytes."""
    pem = key2048.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    secrets = [
        PASSPHRASE,
        PLAINTEXT.decode(),
        pem.replace("\n", ""),
        exported_once["wrappedKey"],
        exported_once["publicKey"],
        exported_once["kdf"]["salt"],
    ]
    checked: list[RecoverctlError] = []

    def check(exc: RecoverctlError) -> None:
        checked.append(exc)
        text = "\n".join([exc.message, exc.hint or "", exc.details or "", str(exc)])
        for secret in secrets:
            for start in range(0, max(1, len(secret) - 11)):
                piece = secret[start : start + 12]
                assert piece not in text, f"secret material in: {exc.message!r}"

    yield check
    assert checked, "the test never checked an error for leaks"


def keyfile_error(data: dict[str, Any] | str) -> KeyFileError:
    text = data if isinstance(data, str) else json.dumps(data)
    with pytest.raises(KeyFileError) as info:
        parse_keyfile(text)
    assert info.value.hint == KEYFILE_HINT
    return info.value


def problems_message(*problems: str) -> str:
    return "not a valid key backup file:\n" + "\n".join(f"- {p}" for p in problems)


# --- round trips -----------------------------------------------------------------------


@pytest.mark.parametrize("key_name", ["key3072", "key2048"])
def test_round_trip(key_name: str, request: pytest.FixtureRequest) -> None:
    key: rsa.RSAPrivateKey = request.getfixturevalue(key_name)
    exported = make_keyfile(key, PASSPHRASE, iterations=FAST, created=CREATED)
    kf = parse_keyfile(json.dumps(exported))
    assert kf.modulus_length == key.key_size
    assert kf.fingerprint == fingerprint_of(spki(key)) == exported["fingerprint"]
    assert kf.to_json() == {
        "fingerprint": kf.fingerprint,
        "created": "2026-03-01T12:00:00.000Z",
        "modulus": key.key_size,
        "iterations": FAST,
    }
    unwrapped = unwrap_private_key(kf, PASSPHRASE)
    assert unwrapped.private_numbers() == key.private_numbers()
    envelope = seal_envelope(kf.public_key_der, PLAINTEXT)
    assert envelope["kid"] == kf.fingerprint
    assert open_envelope(unwrapped, envelope) == PLAINTEXT
    assert open_envelope(unwrapped, seal_envelope(kf.public_key_der, b"")) == b""


def test_default_iterations_round_trip(key3072: rsa.RSAPrivateKey) -> None:
    exported = make_keyfile(key3072, PASSPHRASE)
    assert exported["kdf"]["iterations"] == DEFAULT_ITERATIONS == 600_000
    assert exported["algorithm"] == {"name": "RSA-OAEP", "modulusLength": 3072, "hash": "SHA-256"}
    assert exported["created"].endswith("Z")
    kf = parse_keyfile(json.dumps(exported))
    assert unwrap_private_key(kf, PASSPHRASE).private_numbers() == key3072.private_numbers()


def test_fresh_salt_and_iv_each_export(key2048: rsa.RSAPrivateKey) -> None:
    first = make_keyfile(key2048, PASSPHRASE, iterations=FAST)
    second = make_keyfile(key2048, PASSPHRASE, iterations=FAST)
    assert first["kdf"]["salt"] != second["kdf"]["salt"]
    assert first["wrap"]["iv"] != second["wrap"]["iv"]
    assert len(base64.b64decode(first["kdf"]["salt"])) == 16
    assert len(base64.b64decode(first["wrap"]["iv"])) == 12


def test_webcrypto_hash_objects_are_accepted(exported: dict[str, Any]) -> None:
    exported["algorithm"]["hash"] = {"name": "SHA-256"}
    exported["kdf"]["hash"] = {"name": "SHA-256"}
    assert parse_keyfile(json.dumps(exported)).modulus_length == 2048


def test_repr_and_json_hold_no_key_bytes(exported: dict[str, Any]) -> None:
    kf = parse_keyfile(json.dumps(exported))
    assert set(kf.to_json()) == {"fingerprint", "created", "modulus", "iterations"}
    shown = repr(kf) + json.dumps(kf.to_json())
    for field in (exported["wrappedKey"], exported["publicKey"], exported["kdf"]["salt"]):
        assert field[:12] not in shown
    assert "wrapped_key" not in repr(kf)


def test_writer_refuses_what_the_reader_rejects(
    key2048: rsa.RSAPrivateKey, key1024: rsa.RSAPrivateKey
) -> None:
    small = key1024
    with pytest.raises(ValueError, match="RSA-1024"):
        make_keyfile(small, PASSPHRASE, iterations=FAST)
    with pytest.raises(ValueError, match="iterations"):
        make_keyfile(key2048, PASSPHRASE, iterations=50_000)
    with pytest.raises(ValueError, match="empty passphrase"):
        make_keyfile(key2048, "", iterations=FAST)
    with pytest.raises(ValueError, match="salt"):
        make_keyfile(key2048, PASSPHRASE, iterations=FAST, salt=b"short")
    with pytest.raises(ValueError, match="timezone"):
        make_keyfile(key2048, PASSPHRASE, iterations=FAST, created=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="RSA-2048 or RSA-3072"):
        seal_envelope(spki(small), b"x")


# --- the committed vector: old files must keep opening ----------------------------------


def test_shared_vector_opens() -> None:
    vector = json.loads(VECTOR.read_text(encoding="utf-8"))
    assert vector["testOnly"] is True
    passphrase = vector["testOnlyPassphrase"]
    assert passphrase == "correct horse battery staple"
    expected = serialization.load_pem_private_key(
        vector["testOnlyPrivateKeyPem"].encode("ascii"), password=None
    )
    assert isinstance(expected, rsa.RSAPrivateKey)

    kf = parse_keyfile(json.dumps(vector["keyFile"]))
    assert kf.to_json() == {
        "fingerprint": "sha256:afaba253da840f3414529e507831e19af9785c9a4b401306838f3523e062cec1",
        "created": "2026-01-15T09:30:00.000Z",
        "modulus": 2048,
        "iterations": 100_000,
    }
    key = unwrap_private_key(kf, passphrase)
    assert key.private_numbers() == expected.private_numbers()
    assert len(vector["envelopes"]) == 2
    for item in vector["envelopes"]:
        assert item["envelope"]["kid"] == kf.fingerprint
        assert open_envelope(key, item["envelope"]) == item["plaintext"].encode("utf-8")


def test_writer_reproduces_the_vector_byte_for_byte() -> None:
    # Same key, passphrase, salt, iv and date: AES-GCM and PBKDF2 are deterministic, so any
    # change in what the writer emits (field names, encodings, date shape) shows up here.
    vector = json.loads(VECTOR.read_text(encoding="utf-8"))
    key_file = vector["keyFile"]
    key = serialization.load_pem_private_key(
        vector["testOnlyPrivateKeyPem"].encode("ascii"), password=None
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    remade = make_keyfile(
        key,
        vector["testOnlyPassphrase"],
        iterations=key_file["kdf"]["iterations"],
        created=datetime.fromisoformat(key_file["created"]),
        salt=base64.b64decode(key_file["kdf"]["salt"]),
        iv=base64.b64decode(key_file["wrap"]["iv"]),
    )
    assert remade == key_file


# --- key file failures: the exact words a person reads -----------------------------------


def test_wrong_passphrase(
    exported: dict[str, Any], no_leaks: Callable[[RecoverctlError], None]
) -> None:
    kf = parse_keyfile(json.dumps(exported))
    with pytest.raises(KeyFileError) as info:
        unwrap_private_key(kf, PASSPHRASE + "x")
    assert info.value.message == "wrong passphrase or damaged key file"
    assert info.value.hint == RETRY_HINT
    assert info.value.__cause__ is None and info.value.__suppress_context__
    no_leaks(info.value)


def test_flipped_byte_in_wrapped_key(
    exported: dict[str, Any], no_leaks: Callable[[RecoverctlError], None]
) -> None:
    wrapped = bytearray(base64.b64decode(exported["wrappedKey"]))
    wrapped[100] ^= 0x01
    exported["wrappedKey"] = b64(bytes(wrapped))
    with pytest.raises(KeyFileError) as info:
        unwrap_private_key(parse_keyfile(json.dumps(exported)), PASSPHRASE)
    assert info.value.message == "wrong passphrase or damaged key file"
    no_leaks(info.value)


def test_damaged_base64_fields(
    exported: dict[str, Any], no_leaks: Callable[[RecoverctlError], None]
) -> None:
    exported["publicKey"] = exported["publicKey"][:-2] + "!!"
    exported["kdf"]["salt"] = exported["kdf"]["salt"].rstrip("=")  # padding lost
    exported["wrap"]["iv"] = b64(bytes(16))
    exc = keyfile_error(exported)
    assert exc.message == problems_message(
        "publicKey is not valid base64",
        "kdf.salt is not valid base64",
        "wrap.iv is 16 bytes, expected 12",
    )
    assert exc.problems == (
        "publicKey is not valid base64",
        "kdf.salt is not valid base64",
        "wrap.iv is 16 bytes, expected 12",
    )
    no_leaks(exc)


def test_fingerprint_of_another_key(
    exported: dict[str, Any],
    other2048: rsa.RSAPrivateKey,
    no_leaks: Callable[[RecoverctlError], None],
) -> None:
    theirs = fingerprint_of(spki(other2048))
    ours = exported["fingerprint"]
    exported["fingerprint"] = theirs
    exc = keyfile_error(exported)
    assert exc.message == problems_message(
        f"fingerprint {theirs} does not match publicKey, whose fingerprint is {ours}"
    )
    no_leaks(exc)


def test_fingerprint_badly_written(
    exported: dict[str, Any], no_leaks: Callable[[RecoverctlError], None]
) -> None:
    exported["fingerprint"] = exported["fingerprint"].upper()
    exc = keyfile_error(exported)
    assert exc.message == problems_message(
        'fingerprint is not "sha256:" followed by 64 lowercase hex digits'
    )
    no_leaks(exc)


def test_too_few_iterations(
    exported: dict[str, Any], no_leaks: Callable[[RecoverctlError], None]
) -> None:
    exported["kdf"]["iterations"] = 50_000
    exc = keyfile_error(exported)
    assert exc.message == problems_message("kdf.iterations is 50000, below the minimum of 100000")
    no_leaks(exc)


def test_absurd_iterations(exported: dict[str, Any]) -> None:
    exported["kdf"]["iterations"] = 2_000_000_000
    assert keyfile_error(exported).problems == (
        "kdf.iterations is 2000000000, above the maximum of 10000000 (the file is probably damaged)",
    )
    exported["kdf"]["iterations"] = "600000"
    assert keyfile_error(exported).problems == (
        'kdf.iterations is "600000", expected a whole number',
    )


def test_rsa_1024_key(
    exported: dict[str, Any],
    key1024: rsa.RSAPrivateKey,
    no_leaks: Callable[[RecoverctlError], None],
) -> None:
    small = key1024
    exported["publicKey"] = b64(spki(small))
    exported["fingerprint"] = fingerprint_of(spki(small))
    exported["algorithm"]["modulusLength"] = 1024
    exc = keyfile_error(exported)
    assert exc.message == problems_message("algorithm.modulusLength is 1024, expected 2048 or 3072")
    no_leaks(exc)


def test_modulus_length_that_lies(exported: dict[str, Any]) -> None:
    exported["algorithm"]["modulusLength"] = 3072
    assert keyfile_error(exported).problems == (
        "publicKey is an RSA-2048 key, but algorithm.modulusLength says 3072",
    )


def test_wrong_algorithm_names(
    exported: dict[str, Any], no_leaks: Callable[[RecoverctlError], None]
) -> None:
    exported["algorithm"]["name"] = "RSA-PSS"
    exported["algorithm"]["hash"] = "SHA-1"
    exported["kdf"]["name"] = "scrypt"
    exported["wrap"]["name"] = "AES-CBC"
    exc = keyfile_error(exported)
    assert exc.message == problems_message(
        'algorithm.name is "RSA-PSS", expected "RSA-OAEP"',
        'algorithm.hash is "SHA-1", expected "SHA-256"',
        'kdf.name is "scrypt", expected "PBKDF2"',
        'wrap.name is "AES-CBC", expected "AES-GCM"',
    )
    no_leaks(exc)


def test_wrong_format_and_version(
    exported: dict[str, Any], no_leaks: Callable[[RecoverctlError], None]
) -> None:
    exported["format"] = "pem"
    exported["version"] = 2
    exc = keyfile_error(exported)
    assert exc.message == problems_message(
        'format is "pem", expected "zkkey"',
        "version 2 is not supported (this recoverctl reads version 1)",
    )
    no_leaks(exc)
    exported["format"] = "zkkey"
    exported["version"] = True
    assert keyfile_error(exported).problems == ("version is true, expected 1",)


def test_created_must_be_utc(exported: dict[str, Any]) -> None:
    exported["created"] = "2026-03-01T13:00:00+01:00"
    assert keyfile_error(exported).problems == (
        'created is "2026-03-01T13:00:00+01:00", not in UTC (expected a Z suffix)',
    )
    exported["created"] = "last tuesday"
    assert keyfile_error(exported).problems == (
        'created is "last tuesday", expected an ISO 8601 UTC timestamp',
    )


def test_not_json_at_all() -> None:
    exc = keyfile_error("-----BEGIN PRIVATE KEY-----\nMIIEvQ...")
    assert exc.message == problems_message("not JSON (Expecting value at line 1, column 1)")
    assert "MIIEvQ" not in exc.message


def test_truncated_json(exported: dict[str, Any]) -> None:
    text = json.dumps(exported)
    exc = keyfile_error(text[: len(text) // 2])
    assert len(exc.problems) == 1
    assert exc.problems[0].startswith("not JSON (")
    assert "line 1, column" in exc.problems[0]


@pytest.mark.parametrize("text", ["[" * 100_000, '{"version": ' + "9" * 5000 + "}"])
def test_json_python_cannot_read(text: str) -> None:
    assert keyfile_error(text).problems == (
        "not JSON recoverctl can read (a huge number or deep nesting)",
    )


@pytest.mark.parametrize("text", ["", "  \n\t\n"])
def test_empty_file(text: str) -> None:
    assert keyfile_error(text).message == problems_message("the file is empty")


def test_json_but_not_an_object() -> None:
    assert keyfile_error("[1, 2]").message == problems_message(
        "the file holds JSON, but not an object"
    )


def test_every_missing_field_is_listed() -> None:
    exc = keyfile_error({})
    assert exc.problems == (
        "format is missing",
        "version is missing",
        "created is missing",
        "algorithm is missing",
        "publicKey is missing",
        "fingerprint is missing",
        "kdf is missing",
        "wrap is missing",
        "wrappedKey is missing",
    )
    assert exc.message.count("\n") == 9  # one heading, then one line per problem


def test_wrapped_key_too_short(exported: dict[str, Any]) -> None:
    exported["wrappedKey"] = b64(bytes(8))
    assert keyfile_error(exported).problems == ("wrappedKey is 8 bytes, expected at least 16",)


def test_inconsistent_key_file(
    key2048: rsa.RSAPrivateKey,
    other2048: rsa.RSAPrivateKey,
    exported: dict[str, Any],
    no_leaks: Callable[[RecoverctlError], None],
) -> None:
    # wrappedKey holds other2048, publicKey and fingerprint say key2048: parses, then
    # the unwrapped key proves to be the wrong one.
    theirs = make_keyfile(
        other2048,
        PASSPHRASE,
        iterations=FAST,
        created=CREATED,
        salt=base64.b64decode(exported["kdf"]["salt"]),
        iv=base64.b64decode(exported["wrap"]["iv"]),
    )
    exported["wrappedKey"] = theirs["wrappedKey"]
    kf = parse_keyfile(json.dumps(exported))
    with pytest.raises(KeyFileError) as info:
        unwrap_private_key(kf, PASSPHRASE)
    assert info.value.message == (
        "inconsistent key file: the private key does not match its public key"
    )
    assert info.value.hint == KEYFILE_HINT
    no_leaks(info.value)


def test_passphrase_that_is_not_text(exported: dict[str, Any]) -> None:
    kf = parse_keyfile(json.dumps(exported))
    with pytest.raises(KeyFileError) as info:
        unwrap_private_key(kf, "caf\udce9")
    assert info.value.message == "the passphrase is not valid text (it cannot be encoded as UTF-8)"


def test_key_file_error_is_a_recoverctl_error() -> None:
    assert issubclass(KeyFileError, RecoverctlError)
    assert issubclass(EnvelopeError, RecoverctlError)
    assert KeyFileError("x").problems == ("x",)


def test_hand_built_key_file_with_wrong_fingerprint(exported: dict[str, Any]) -> None:
    kf = parse_keyfile(json.dumps(exported))
    forged = KeyFile(
        fingerprint="sha256:" + "0" * 64,
        modulus_length=kf.modulus_length,
        created=kf.created,
        iterations=kf.iterations,
        public_key_der=kf.public_key_der,
        salt=kf.salt,
        iv=kf.iv,
        wrapped_key=kf.wrapped_key,
    )
    with pytest.raises(KeyFileError) as info:
        unwrap_private_key(forged, PASSPHRASE)
    assert info.value.message == (
        "inconsistent key file: the fingerprint does not match its public key"
    )


# --- envelope failures ---------------------------------------------------------------------


def envelope_error(key: rsa.RSAPrivateKey, envelope: Any) -> EnvelopeError:
    with pytest.raises(EnvelopeError) as info:
        open_envelope(key, envelope)
    return info.value


def test_envelope_for_another_key(
    key2048: rsa.RSAPrivateKey,
    other2048: rsa.RSAPrivateKey,
    no_leaks: Callable[[RecoverctlError], None],
) -> None:
    theirs = fingerprint_of(spki(other2048))
    ours = fingerprint_of(spki(key2048))
    exc = envelope_error(key2048, seal_envelope(spki(other2048), PLAINTEXT))
    assert exc.message == f"this secret was sealed for key {theirs}, not for this key ({ours})"
    assert exc.hint == (
        f"Import the key backup whose fingerprint is {theirs}; a secret opens only with "
        "the key it was sealed for."
    )
    no_leaks(exc)


def test_envelope_with_a_rewritten_kid(
    key2048: rsa.RSAPrivateKey, other2048: rsa.RSAPrivateKey, envelope: dict[str, Any]
) -> None:
    envelope["kid"] = fingerprint_of(spki(other2048))
    assert envelope_error(key2048, envelope).message.startswith(
        f"this secret was sealed for key {envelope['kid']}"
    )


def test_envelope_bad_iv_size(
    key2048: rsa.RSAPrivateKey,
    envelope: dict[str, Any],
    no_leaks: Callable[[RecoverctlError], None],
) -> None:
    envelope["iv"] = b64(bytes(16))
    exc = envelope_error(key2048, envelope)
    assert exc.message == "not a valid secret envelope:\n- iv is 16 bytes, expected 12"
    assert exc.hint == ENVELOPE_HINT
    no_leaks(exc)


def test_envelope_tampered_ct(
    key2048: rsa.RSAPrivateKey,
    envelope: dict[str, Any],
    no_leaks: Callable[[RecoverctlError], None],
) -> None:
    ct = bytearray(base64.b64decode(envelope["ct"]))
    ct[0] ^= 0x80
    envelope["ct"] = b64(bytes(ct))
    exc = envelope_error(key2048, envelope)
    assert exc.message == (
        "damaged envelope: the ciphertext fails its integrity check (ct or iv was altered)"
    )
    no_leaks(exc)


def test_envelope_tampered_ek(
    key2048: rsa.RSAPrivateKey,
    envelope: dict[str, Any],
    no_leaks: Callable[[RecoverctlError], None],
) -> None:
    ek = bytearray(base64.b64decode(envelope["ek"]))
    ek[-1] ^= 0x01
    envelope["ek"] = b64(bytes(ek))
    exc = envelope_error(key2048, envelope)
    assert (
        exc.message == "damaged envelope: its AES key (ek) does not decrypt with this private key"
    )
    no_leaks(exc)
    envelope["ek"] = b64(bytes(384))
    assert envelope_error(key2048, envelope).message == (
        "damaged envelope: ek is 384 bytes, an RSA-2048 key produces 256"
    )


def test_envelope_shape_problems_are_all_listed(
    key2048: rsa.RSAPrivateKey, envelope: dict[str, Any]
) -> None:
    envelope.update(v=2, alg="RSA-OAEP+A256GCM", kid="sha1:abc", ct=b64(bytes(15)), extra=1)
    del envelope["ek"]
    assert envelope_error(key2048, envelope).problems == (
        "unknown fields: extra",
        "v is 2, expected 1",
        'alg is "RSA-OAEP+A256GCM", expected "RSA-OAEP-256+A256GCM"',
        'kid is not "sha256:" followed by 64 lowercase hex digits',
        "ek is missing",
        "ct is 15 bytes, expected at least 16",
    )
    assert envelope_error(key2048, ["not", "an", "object"]).message == (
        "not a valid secret envelope: not a JSON object"
    )
