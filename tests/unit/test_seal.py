"""adapters/seal.py: age through pyrage, on local files (the targets are tested in e2e)."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from recoverctl.adapters import seal
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.settings import EncryptionSettings

MiB = 1 << 20


def data(size: int, seed: int = 0) -> bytes:
    out = bytearray()
    n = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}/{n}".encode()).digest()
        n += 1
    return bytes(out[:size])


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, seal.Recipient]:
    path = tmp_path / "keys" / "identity.txt"
    return path, seal.parse_recipient(seal.new_identity(path))


def nothing_named(dst: Path) -> bool:
    return not dst.exists() and not dst.with_name(dst.name + ".partial").exists()


# --- identities and recipients ---------------------------------------------------------------


def test_new_identity_is_private_and_in_age_keygen_format(key: tuple[Path, seal.Recipient]) -> None:
    path, recipient = key
    assert (path.stat().st_mode & 0o777) == 0o600
    assert (path.parent.stat().st_mode & 0o777) == 0o700
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# created: ")
    assert lines[1] == f"# public key: {recipient.text}"
    assert lines[2].startswith("AGE-SECRET-KEY-1")
    [identity] = seal.load_identity(path)
    assert identity.recipient == recipient.text
    assert "AGE-SECRET" not in repr(identity)
    assert list(path.parent.iterdir()) == [path]  # no .partial left beside it


def test_new_identity_never_overwrites(key: tuple[Path, seal.Recipient]) -> None:
    path, _ = key
    before = path.read_bytes()
    with pytest.raises(RecoverctlError) as info:
        seal.new_identity(path)
    assert info.value.code is ErrorCode.FILE_EXISTS
    assert "never overwritten" in info.value.message
    assert path.read_bytes() == before


def test_new_identity_refused_inside_the_project(tmp_path: Path) -> None:
    project = tmp_path / "vault"
    project.mkdir()
    with pytest.raises(RecoverctlError) as info:
        seal.new_identity(project / "sub" / "id.txt", project_dir=project)
    assert info.value.code is ErrorCode.IDENTITY_INVALID
    assert "inside the project folder" in info.value.message
    assert not (project / "sub").exists()


def test_identity_readable_by_others_is_refused(key: tuple[Path, seal.Recipient]) -> None:
    path, _ = key
    path.chmod(0o640)
    with pytest.raises(RecoverctlError) as info:
        seal.load_identity(path)
    assert info.value.code is ErrorCode.IDENTITY_INVALID
    assert "can be read by group or others (mode 0640)" in info.value.message
    assert info.value.hint == f"chmod 600 {path}"


def test_identity_inside_the_project_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "vault"
    path = project / "backups" / "id.txt"
    seal.new_identity(path)
    with pytest.raises(RecoverctlError) as info:
        seal.load_identity(path, project_dir=project)
    assert info.value.code is ErrorCode.IDENTITY_INVALID
    assert seal.load_identity(path, project_dir=tmp_path / "elsewhere")


@pytest.mark.parametrize(
    "content, expected",
    [
        ("", "holds no age identity"),
        ("# only a comment\n", "holds no age identity"),
        ("AGE-SECRET-KEY-1NOTAKEYATALLBUTLOOKSLIKEONE\n", "Line 1 of the identity file"),
        ("age1notaprivatekey\n", "Line 1 of the identity file"),
    ],
)
def test_bad_identity_files(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "id"
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(RecoverctlError) as info:
        seal.load_identity(path)
    assert info.value.code is ErrorCode.IDENTITY_INVALID
    assert expected in info.value.message
    assert "NOTAKEY" not in info.value.message + (info.value.hint or "")  # never echoed


def test_missing_identity(tmp_path: Path) -> None:
    with pytest.raises(RecoverctlError) as info:
        seal.load_identity(tmp_path / "nope")
    assert info.value.code is ErrorCode.IDENTITY_INVALID
    assert "does not exist" in info.value.message


def test_recipients_from_the_list_or_a_file(tmp_path: Path) -> None:
    a = seal.new_identity(tmp_path / "a")
    b = seal.new_identity(tmp_path / "b")
    listed = seal.load_recipients(EncryptionSettings(recipients=(a, b)))
    assert [r.text for r in listed] == [a, b]
    file = tmp_path / "recipients.txt"
    file.write_text(f"# the ops laptop\n{a}\n\n  {b}  \n")
    from_file = seal.load_recipients(EncryptionSettings(recipients_file=file))
    assert [r.text for r in from_file] == [a, b]


def test_no_recipients_and_bad_recipients(tmp_path: Path) -> None:
    with pytest.raises(RecoverctlError) as info:
        seal.load_recipients(EncryptionSettings())
    assert info.value.code is ErrorCode.ENCRYPTION_REQUIRED
    empty = tmp_path / "r"
    empty.write_text("# nobody\n")
    with pytest.raises(RecoverctlError) as info:
        seal.load_recipients(EncryptionSettings(recipients_file=empty))
    assert info.value.code is ErrorCode.ENCRYPTION_REQUIRED
    with pytest.raises(RecoverctlError) as info:
        seal.load_recipients(EncryptionSettings(recipients_file=tmp_path / "missing"))
    assert info.value.code is ErrorCode.CONFIG_INVALID
    empty.write_text("AGE-SECRET-KEY-1SOMETHINGSECRET\n")
    with pytest.raises(RecoverctlError) as info:
        seal.load_recipients(EncryptionSettings(recipients_file=empty))
    assert "private key" in info.value.message
    assert "SOMETHINGSECRET" not in info.value.message


# --- sealing and unsealing -------------------------------------------------------------------


def test_round_trip_through_files(tmp_path: Path, key: tuple[Path, seal.Recipient]) -> None:
    path, recipient = key
    plain = tmp_path / "backup.dump"
    plain.write_bytes(data(3 * MiB + 17))
    with plain.open("rb") as src, (tmp_path / "backup.dump.age").open("wb") as dst:
        sealed = seal.seal(src, dst, [recipient])
    raw = (tmp_path / "backup.dump.age").read_bytes()
    assert raw.startswith(b"age-encryption.org/v1\n")
    assert (sealed.size, sealed.sha256) == (len(raw), hashlib.sha256(raw).hexdigest())
    assert sealed.plain_sha256 == hashlib.sha256(plain.read_bytes()).hexdigest()

    out = tmp_path / "restored" / "backup.dump"
    out.parent.mkdir()
    result = seal.unseal(
        (tmp_path / "backup.dump.age").open("rb"),
        out,
        seal.load_identity(path),
        expect_sha256=sealed.sha256,
        expect_size=sealed.size,
        expect_plain_sha256=sealed.plain_sha256,
        expect_plain_size=sealed.plain_size,
    )
    assert out.read_bytes() == plain.read_bytes()
    assert (result.plain_size, result.size) == (sealed.plain_size, sealed.size)
    assert (out.stat().st_mode & 0o777) == 0o600


def test_every_recipient_can_open(tmp_path: Path) -> None:
    a = seal.new_identity(tmp_path / "a")
    b = seal.new_identity(tmp_path / "b")
    box = seal.seal_bytes(b"secret rows", [seal.parse_recipient(a), seal.parse_recipient(b)])
    for who in ("a", "b"):
        assert (
            seal.unseal_bytes(io.BytesIO(box), seal.load_identity(tmp_path / who)) == b"secret rows"
        )


def test_wrong_identity(tmp_path: Path, key: tuple[Path, seal.Recipient]) -> None:
    _, recipient = key
    seal.new_identity(tmp_path / "other")
    box = seal.seal_bytes(data(1000), [recipient])
    out = tmp_path / "out"
    with pytest.raises(RecoverctlError) as info:
        seal.unseal([box], out, seal.load_identity(tmp_path / "other"), where="b.age on target nas")
    assert info.value.code is ErrorCode.DECRYPT_FAILED
    assert info.value.message == (
        "b.age on target nas is encrypted to other recipients: the identity given cannot open it."
    )
    assert nothing_named(out)


@pytest.mark.parametrize(
    "damage",
    ["truncated", "flipped", "trailing", "not-age", "size", "sha256", "plain-sha256"],
)
def test_damaged_input_leaves_nothing(
    tmp_path: Path, key: tuple[Path, seal.Recipient], damage: str
) -> None:
    path, recipient = key
    plain = data(2 * MiB + 5)
    box = seal.seal_bytes(plain, [recipient])
    expect: dict[str, object] = {}
    if damage == "truncated":
        box = box[: len(box) - 70_000]  # whole chunks are gone: age sees it only at the end
    elif damage == "flipped":
        box = box[:1_000_000] + bytes([box[1_000_000] ^ 1]) + box[1_000_001:]
    elif damage == "trailing":
        box += b"more"
    elif damage == "not-age":
        box = b"PGDMP" + plain
    elif damage == "size":
        expect = {"expect_size": len(box) + 1}
    elif damage == "sha256":
        expect = {"expect_sha256": "0" * 64}
    else:
        expect = {"expect_plain_sha256": "0" * 64}
    out = tmp_path / "restored.dump"
    with pytest.raises(RecoverctlError) as info:
        seal.unseal(
            (box[i : i + 100_000] for i in range(0, len(box), 100_000)),
            out,
            seal.load_identity(path),
            **expect,  # type: ignore[arg-type]
        )
    assert info.value.code is ErrorCode.OBJECT_CORRUPT
    assert "Nothing was kept" in (info.value.hint or "") or "another copy" in (
        info.value.hint or ""
    )
    assert nothing_named(out)


def test_a_stale_partial_is_replaced(tmp_path: Path, key: tuple[Path, seal.Recipient]) -> None:
    path, recipient = key
    out = tmp_path / "x"
    (tmp_path / "x.partial").write_bytes(b"from a crash")
    seal.unseal([seal.seal_bytes(b"fresh", [recipient])], out, seal.load_identity(path))
    assert out.read_bytes() == b"fresh"
    assert nothing_named(tmp_path / "y")
    assert sorted(os.listdir(tmp_path)) == ["keys", "x"]


class Boom(Exception):
    pass


def breaking(chunks: list[bytes], exc: BaseException) -> Iterator[bytes]:
    yield from chunks
    raise exc


@pytest.mark.parametrize("exc", [Boom("network"), KeyboardInterrupt()])
def test_source_errors_pass_through_unchanged(
    tmp_path: Path, key: tuple[Path, seal.Recipient], exc: BaseException
) -> None:
    """pyrage would turn them into its own error with a text: the original comes out."""
    path, recipient = key
    with pytest.raises(type(exc)) as info:
        seal.seal(breaking([data(200_000)], exc), io.BytesIO(), [recipient])
    assert info.value is exc

    box = seal.seal_bytes(data(3 * MiB), [recipient])
    out = tmp_path / "out"
    with pytest.raises(type(exc)) as info:
        seal.unseal(breaking([box[:MiB]], exc), out, seal.load_identity(path))
    assert info.value is exc
    assert nothing_named(out)


def test_target_errors_pass_through_unseal(
    tmp_path: Path, key: tuple[Path, seal.Recipient]
) -> None:
    path, recipient = key
    lost = RecoverctlError(
        "target box: the connection was lost.", "Try again.", code=ErrorCode.TARGET_UNREACHABLE
    )
    box = seal.seal_bytes(data(MiB), [recipient])
    with pytest.raises(RecoverctlError) as info:
        seal.unseal(breaking([box[:5000]], lost), tmp_path / "o", seal.load_identity(path))
    assert info.value is lost


def test_an_interrupted_seal_stops(
    tmp_path: Path, key: tuple[Path, seal.Recipient]
) -> None:
    _, recipient = key
    src = tmp_path / "src"
    src.write_bytes(data(MiB))

    class Sink:
        def write(self, b: bytes) -> int:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        seal.seal(src.open("rb"), Sink(), [recipient])


def test_seal_refuses_no_recipient() -> None:
    with pytest.raises(RecoverctlError) as info:
        seal.seal(io.BytesIO(b"x"), io.BytesIO(), [])
    assert info.value.code is ErrorCode.ENCRYPTION_REQUIRED


def test_seal_stream(tmp_path: Path, key: tuple[Path, seal.Recipient]) -> None:
    path, recipient = key
    plain = data(5 * MiB + 3)
    stream = seal.sealed_chunks(io.BytesIO(plain), [recipient])
    with pytest.raises(RuntimeError):
        _ = stream.result  # not read yet
    chunks = list(stream)
    assert max(len(c) for c in chunks) <= 2 * MiB
    box = b"".join(chunks)
    assert stream.result.sha256 == hashlib.sha256(box).hexdigest()
    assert stream.result.plain_size == len(plain)
    assert seal.unseal_bytes([box], seal.load_identity(path)) == plain
    with pytest.raises(RuntimeError):
        list(stream)  # one reading only


def test_seal_stream_source_error_reaches_the_consumer(key: tuple[Path, seal.Recipient]) -> None:
    _, recipient = key
    exc = Boom("disk read")
    with pytest.raises(Boom) as info:
        list(seal.sealed_chunks(breaking([data(3 * MiB)], exc), [recipient]))
    assert info.value is exc


def test_unseal_bytes_is_bounded(key: tuple[Path, seal.Recipient]) -> None:
    path, recipient = key
    box = seal.seal_bytes(data(3000), [recipient])
    with pytest.raises(RecoverctlError) as info:
        seal.unseal_bytes([box], seal.load_identity(path), limit=1000)
    assert info.value.code is ErrorCode.OBJECT_CORRUPT
