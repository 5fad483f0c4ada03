"""The storage targets against real servers on loopback (moto's S3, OpenSSH's sftp, a real
folder and a real full disk), then age interoperability with Debian's `age`.

One contract, run against each target (the `target` fixture); then what is particular to
each: multipart uploads and their abort, host keys and client keys, a full disk.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from recoverctl.adapters import seal
from recoverctl.adapters.targets import Target, open_target
from recoverctl.adapters.targets.s3 import MIN_PART_SIZE, S3Target
from recoverctl.adapters.targets.sftp import SftpTarget
from recoverctl.core import offsite
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.services import offsite as offsite_service
from recoverctl.settings import DirTargetSettings
from tests.e2e import servers
from tests.e2e.servers import S3Server, SftpServer, keygen, require_tool

# The servers' fixtures, made visible to this module: pytest finds fixtures among its names.
s3_server = servers.s3_server
sftp_server = servers.sftp_server
aws_env = servers.aws_env

MiB = 1 << 20
BACKUP = "backup_2026-11-29_203000.dump"


def blob(size: int, seed: int = 0) -> bytes:
    """Incompressible, reproducible bytes."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 64  # 2 KiB per round
        counter += 1
    return bytes(out[:size])


def streamed(data: bytes, chunk: int = 300_000) -> Iterator[bytes]:
    """Uneven chunks from a generator: nothing may assume one buffer or aligned sizes."""
    for i in range(0, len(data), chunk):
        yield data[i : i + chunk]


class SourceFailed(Exception):
    pass


def failing(data: bytes, after: int, exc: BaseException) -> Iterator[bytes]:
    sent = 0
    for chunk in streamed(data):
        if sent >= after:
            raise exc
        sent += len(chunk)
        yield chunk


def assert_refusal(exc: RecoverctlError, target: Target, code: ErrorCode) -> None:
    """Every target error: its code, the target named, one or two lines, a hint, no trace."""
    assert exc.code is code, (exc.code, exc.message)
    assert f"target {target.name} " in exc.message
    assert exc.hint
    assert len(exc.message.splitlines()) <= 2
    assert "Traceback" not in exc.message + exc.hint


# --- the contract ---------------------------------------------------------------------------


@pytest.fixture(params=["dir", "s3", "sftp"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    kind = request.param
    if kind == "dir":
        folder = tmp_path / "nas"
        folder.mkdir()
        t = open_target("nas", DirTargetSettings(type="dir", path=folder))
    elif kind == "s3":
        request.getfixturevalue("aws_env")
        server: S3Server = request.getfixturevalue("s3_server")
        t = open_target("offsite", server.target_settings(server.new_bucket()))
        assert isinstance(t, S3Target)
        t.part_size = MIN_PART_SIZE  # a few MiB already take the multipart path
    else:
        sshd: SftpServer = request.getfixturevalue("sftp_server")
        t = open_target("box", sshd.target_settings(sshd.root / tmp_path.name / "vault"))
    with t:
        yield t


def test_round_trip_streamed(target: Target) -> None:
    data = blob(6 * MiB + 12345)
    info = target.put(BACKUP + ".age", streamed(data))
    assert (info.name, info.size) == (BACKUP + ".age", len(data))

    stat = target.stat(BACKUP + ".age")
    assert stat is not None and stat.size == len(data)
    assert abs((stat.mtime - datetime.now(UTC)).total_seconds()) < 120
    assert [o.name for o in target.list()] == [BACKUP + ".age"]
    assert [o.size for o in target.list("backup_")] == [len(data)]
    assert target.list("other_") == []

    got = target.get(BACKUP + ".age")
    assert hashlib.sha256(b"".join(got)).hexdigest() == hashlib.sha256(data).hexdigest()

    target.delete(BACKUP + ".age")
    assert target.stat(BACKUP + ".age") is None
    assert target.list() == []
    target.delete(BACKUP + ".age")  # deleting what is gone is not an error


def test_file_sources_small_and_empty_objects(target: Target, tmp_path: Path) -> None:
    path = tmp_path / "src"
    path.write_bytes(blob(100_000, seed=1))
    with path.open("rb") as f:
        assert target.put("a.json", f).size == 100_000
    assert target.put("empty", iter(())).size == 0
    assert b"".join(target.get("a.json")) == path.read_bytes()
    assert b"".join(target.get("empty")) == b""
    assert [(o.name, o.size) for o in target.list()] == [("a.json", 100_000), ("empty", 0)]


def test_put_replaces_whole(target: Target) -> None:
    target.put("obj", streamed(blob(2 * MiB, seed=1)))
    target.put("obj", streamed(blob(MiB, seed=2)))
    assert b"".join(target.get("obj")) == blob(MiB, seed=2)


def test_missing_object(target: Target) -> None:
    assert target.stat("nothing") is None
    with pytest.raises(RecoverctlError) as info:
        target.get("nothing")
    assert_refusal(info.value, target, ErrorCode.OBJECT_NOT_FOUND)
    assert "nothing" in info.value.message


@pytest.mark.parametrize("fault", [SourceFailed("sealing broke"), KeyboardInterrupt()])
def test_failed_source_leaves_nothing(target: Target, fault: BaseException) -> None:
    target.put("kept", iter([b"x"]))
    # Past one S3 part, so a multipart upload is under way when the source fails.
    with pytest.raises(type(fault)) as info:
        target.put(BACKUP + ".age", failing(blob(12 * MiB), 7 * MiB, fault))
    assert info.value is fault  # passed through as it was, not relabelled
    assert [o.name for o in target.list()] == ["kept"]
    if isinstance(target, S3Target):
        uploads = target.client.list_multipart_uploads(Bucket=target.bucket)
        assert uploads.get("Uploads", []) == []


def test_invalid_names_refused(target: Target) -> None:
    for bad in ("../escape", "a/b", ".hidden", "", "x" * 300):
        with pytest.raises(ValueError):
            target.put(bad, iter([b"x"]))
        with pytest.raises(ValueError):
            target.get(bad)
    with pytest.raises(ValueError, match="reserved"):
        target.put("x.partial", iter([b"x"]))


def test_check(target: Target) -> None:
    target.check()


def _complete_backup(target: Target, backup: str) -> offsite.RemoteManifest:
    names = offsite.object_names(backup, "age")
    data, manifest = blob(MiB + 7, seed=3), blob(900, seed=4)
    d = target.put(names.data, streamed(data))
    m = target.put(names.manifest, iter([manifest]))
    remote = offsite.new_remote_manifest(
        backup=backup,
        fmt="custom",
        created_at=datetime(2026, 11, 29, 20, 30, tzinfo=UTC),
        plain_size=MiB,
        encryption="age",
        recipients=["age1" + "q" * 58],
        data=offsite.StoredObject(
            name=d.name, size=d.size, sha256=hashlib.sha256(data).hexdigest()
        ),
        manifest=offsite.StoredObject(
            name=m.name, size=m.size, sha256=hashlib.sha256(manifest).hexdigest()
        ),
        recoverctl_version="0.1.0",
        owner=offsite.Owner("vault", "prod"),
    )
    target.put(names.remote_manifest, iter([remote.to_bytes()]))
    return remote


def _judge(target: Target) -> offsite.Listing:
    listing = target.list()
    manifests: dict[str, offsite.RemoteManifest | None] = {}
    for name in offsite.remote_manifest_names(listing):
        manifests[name] = offsite.RemoteManifest.from_bytes(b"".join(target.get(name)))
    return offsite.classify(listing, manifests)


def test_completeness_from_a_real_listing(target: Target) -> None:
    _complete_backup(target, BACKUP)
    newer = "backup_2026-11-30_020000.dump"
    names = offsite.object_names(newer)
    target.put(names.data, streamed(blob(MiB)))  # its manifest never came
    target.put("README.txt", iter([b"someone else's file\n"]))

    judged = _judge(target)
    assert [(b.backup, b.complete) for b in judged.backups] == [(newer, False), (BACKUP, True)]
    assert [o.name for o in judged.foreign] == ["README.txt"]

    # A data object cut short on the target no longer matches its manifest's size.
    target.put(offsite.object_names(BACKUP).data, streamed(blob(MiB, seed=3)))
    judged = _judge(target)
    found = judged.find(BACKUP)
    assert found is not None and not found.complete
    assert "bytes, the manifest says" in found.problems[0]


def test_a_partial_is_never_complete(target: Target) -> None:
    """A crashed upload's NAME.partial (folder and SFTP) is listed, and judged incomplete;
    S3 shows no unfinished upload at all."""
    if isinstance(target, S3Target):
        key = target.key(offsite.object_names(BACKUP).data)
        upload = target.client.create_multipart_upload(Bucket=target.bucket, Key=key)
        target.client.upload_part(
            Bucket=target.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=b"x"
        )
        assert target.list() == []
        assert _judge(target).backups == ()
        assert target.discard_unfinished() == 1
        return
    remote = _complete_backup(target, BACKUP)
    partial = remote.expected_names().data + offsite.PARTIAL_SUFFIX
    other = "backup_2026-12-01_000000.dump.age" + offsite.PARTIAL_SUFFIX
    for name in (partial, other):
        _write_raw(target, name, b"half")
    judged = _judge(target)
    complete = judged.find(BACKUP)
    assert complete is not None and complete.complete
    assert [o.name for o in complete.leftovers] == [partial]
    lone = judged.find("backup_2026-12-01_000000.dump")
    assert lone is not None and not lone.complete
    # What the next push removes: the incomplete backup's objects and the leftovers.
    for obj in (*lone.objects, *complete.leftovers):
        target.delete(obj.name)
    assert all(not o.name.endswith(".partial") for o in target.list())


ODD_NAMES = [
    "backup_2026-11-30_020000 (copy).dump.age.manifest.json",  # a sync tool's copy
    "notes for ops.manifest.json",
    "caf\u00e9.manifest.json",
    "backup_2026-02-30_120000.dump.age.manifest.json",  # a date that cannot be
    "backup_\u0662\u0660\u0662\u0666-11-30_020000.dump.age.manifest.json",  # other digits
    "backup_2026-11-30_030000.dump.age.manifest.json\n",
]


def test_odd_names_and_a_manifest_without_its_data(target: Target) -> None:
    """Foreign objects named like manifests are left alone, never fetched; a remote
    manifest whose data is gone makes an incomplete backup; the good copy stays listed."""
    _complete_backup(target, BACKUP)
    # moto's server routes no key with a newline (real S3 takes one); the others take it.
    odd = [n for n in ODD_NAMES if not (isinstance(target, S3Target) and "\n" in n)]
    for name in odd:
        _write_raw(target, name, b"{not json")
    lonely = "backup_2026-11-30_040000.dump"
    remote = _complete_backup(target, lonely)
    target.delete(remote.expected_names().data)
    judged = offsite_service.judge(target, offsite.Owner("vault", "prod"))
    assert [(b.backup, b.complete) for b in judged.backups] == [(lonely, False), (BACKUP, True)]
    assert sorted(o.name for o in judged.foreign) == sorted(odd)
    lone = judged.find(lonely)
    assert lone is not None and "is missing" in lone.problems[0]


def _write_raw(target: Target, name: str, data: bytes) -> None:
    """Writes behind the target's back, as a crashed run or another tool would have."""
    if isinstance(target, S3Target):
        target.client.put_object(Bucket=target.bucket, Key=target.key(name), Body=data)
        return
    if isinstance(target, SftpTarget):
        sftp = target._client()
        target._ensure_base(sftp)
        with sftp.open(target._path(name), "wb") as f:
            f.write(data)
    else:
        assert target.kind == "dir"
        (Path(target.location) / name).write_bytes(data)


# --- S3 -------------------------------------------------------------------------------------


def _s3(server: S3Server, bucket: str | None = None, **extra: object) -> S3Target:
    t = open_target("offsite", server.target_settings(bucket or server.new_bucket()))
    assert isinstance(t, S3Target)
    for key, value in extra.items():
        setattr(t, key, value)
    return t


def test_s3_large_object_in_parts(s3_server: S3Server, aws_env: dict[str, str]) -> None:
    t = _s3(s3_server, part_size=MIN_PART_SIZE)
    data = blob(3 * MIN_PART_SIZE + 1000, seed=5)
    assert t.put("big", streamed(data, 1 << 20)).size == len(data)
    head = t.client.head_object(Bucket=t.bucket, Key=t.key("big"))
    assert head["ETag"].strip('"').endswith("-4")  # four parts: a multipart ETag, not an MD5
    assert b"".join(t.get("big")) == data
    assert t.client.list_objects_v2(Bucket=t.bucket)["Contents"][0]["Key"] == "prod/big"


def test_s3_missing_bucket(s3_server: S3Server, aws_env: dict[str, str]) -> None:
    t = _s3(s3_server, bucket="rctl-no-such-bucket")
    for op in (t.check, t.list, lambda: t.stat("x"), lambda: t.put("x", iter([b"1"]))):
        with pytest.raises(RecoverctlError) as info:
            op()
        assert_refusal(info.value, t, ErrorCode.TARGET_NOT_FOUND)
        assert "bucket rctl-no-such-bucket does not exist" in info.value.message


def test_s3_server_stopped(tmp_path: Path, aws_env: dict[str, str]) -> None:
    with S3Server.start(tmp_path / "moto") as server:
        t = _s3(server)
        t.put("x", iter([b"1"]))
        server.stop()
        for op in (t.check, t.list, lambda: t.get("x"), lambda: t.put("y", iter([b"1"]))):
            with pytest.raises(RecoverctlError) as info:
                op()
            assert_refusal(info.value, t, ErrorCode.TARGET_UNREACHABLE)


def test_s3_server_killed_mid_upload(tmp_path: Path, aws_env: dict[str, str]) -> None:
    with S3Server.start(tmp_path / "moto") as server:
        t = _s3(server, part_size=MIN_PART_SIZE)
        data = blob(4 * MIN_PART_SIZE, seed=6)

        def source() -> Iterator[bytes]:
            for i, chunk in enumerate(streamed(data, MiB)):
                if i == 12:  # two parts sent, the third being read
                    server.kill()
                yield chunk

        with pytest.raises(RecoverctlError) as info:
            t.put("big", source())
        assert_refusal(info.value, t, ErrorCode.TARGET_UNREACHABLE)
        assert "next push removes it" in (info.value.hint or "")


def test_s3_corrupt_object_is_caught_by_sha256(
    s3_server: S3Server, aws_env: dict[str, str], tmp_path: Path
) -> None:
    """moto checks no checksum: flip a byte ourselves, as a bad disk or a bug would."""
    t = _s3(s3_server)
    identity = tmp_path / "id"
    recipient = seal.new_identity(identity)
    plain = blob(3 * MiB, seed=7)
    with seal.sealed_chunks(io.BytesIO(plain), [seal.parse_recipient(recipient)]) as stream:
        t.put("b.age", stream)
    sealed = stream.result
    raw = bytearray(b"".join(t.get("b.age")))
    raw[len(raw) // 2] ^= 0x01
    s3_server.client().put_object(Bucket=t.bucket, Key=t.key("b.age"), Body=bytes(raw))

    out = tmp_path / "restored.dump"
    with pytest.raises(RecoverctlError) as info:
        seal.unseal(
            t.get("b.age"),
            out,
            seal.load_identity(identity),
            expect_sha256=sealed.sha256,
            expect_size=sealed.size,
            where="b.age on target offsite",
        )
    assert info.value.code is ErrorCode.OBJECT_CORRUPT
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()


def test_s3_unfinished_uploads_are_discarded(s3_server: S3Server, aws_env: dict[str, str]) -> None:
    t = _s3(s3_server)
    t.client.create_multipart_upload(Bucket=t.bucket, Key=t.key("orphan"))
    assert t.discard_unfinished() == 1
    assert t.client.list_multipart_uploads(Bucket=t.bucket).get("Uploads", []) == []


# --- SFTP -----------------------------------------------------------------------------------


def _sftp(server: SftpServer, path: str | Path, **kw: Path) -> SftpTarget:
    t = open_target("box", server.target_settings(path, **kw))
    assert isinstance(t, SftpTarget)
    return t


def test_sftp_creates_its_folder_private(sftp_server: SftpServer, tmp_path: Path) -> None:
    base = sftp_server.root / tmp_path.name / "deep" / "er"
    with _sftp(sftp_server, base) as t:
        t.check()  # a missing folder is not an error before the first upload
        assert t.list() == []
        t.put("x", iter([b"1"]))
    assert base.is_dir() and (base.stat().st_mode & 0o777) == 0o700
    assert ((base / "x").stat().st_mode & 0o777) == 0o600


def test_sftp_wrong_client_key(sftp_server: SftpServer, tmp_path: Path) -> None:
    other = keygen(tmp_path / "other_key")
    with (
        _sftp(sftp_server, sftp_server.root / "w", key_file=other) as t,
        pytest.raises(RecoverctlError) as info,
    ):
        t.list()
    assert_refusal(info.value, t, ErrorCode.TARGET_REFUSED)
    assert f"the server refused key {other} for user" in info.value.message


def test_sftp_unknown_host_key(sftp_server: SftpServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with (
        _sftp(sftp_server, sftp_server.root / "u", known_hosts=empty) as t,
        pytest.raises(RecoverctlError) as info,
    ):
        t.list()
    assert_refusal(info.value, t, ErrorCode.TARGET_REFUSED)
    assert "is not in" in info.value.message and "refused" in info.value.message
    assert "ssh-keyscan" in (info.value.hint or "")
    assert empty.read_text() == ""  # nothing learned


def test_sftp_changed_host_key(sftp_server: SftpServer, tmp_path: Path) -> None:
    impostor = keygen(tmp_path / "impostor")
    kind, blob_ = impostor.with_name("impostor.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sftp_server.port} {kind} {blob_}\n")
    with (
        _sftp(sftp_server, sftp_server.root / "c", known_hosts=known) as t,
        pytest.raises(RecoverctlError) as info,
    ):
        t.list()
    assert_refusal(info.value, t, ErrorCode.TARGET_REFUSED)
    assert "differs from the one in" in info.value.message


def test_sftp_missing_known_hosts_and_key(sftp_server: SftpServer, tmp_path: Path) -> None:
    with (
        _sftp(sftp_server, sftp_server.root / "m", known_hosts=tmp_path / "nope") as t,
        pytest.raises(RecoverctlError) as info,
    ):
        t.check()
    assert_refusal(info.value, t, ErrorCode.TARGET_REFUSED)
    with (
        _sftp(sftp_server, sftp_server.root / "m", key_file=tmp_path / "nokey") as t,
        pytest.raises(RecoverctlError) as info,
    ):
        t.check()
    assert_refusal(info.value, t, ErrorCode.CONFIG_INVALID)


def test_sftp_server_stopped(tmp_path: Path) -> None:
    with SftpServer.start(tmp_path / "sshd") as server:
        t = _sftp(server, server.root / "s")
        t.put("x", iter([b"1"]))
        server.stop()
        # The open session is gone too: the next call says so, then reconnecting fails.
        for op in (t.list, t.list, lambda: t.get("x")):
            with pytest.raises(RecoverctlError) as info:
                op()
            assert_refusal(info.value, t, ErrorCode.TARGET_UNREACHABLE)


def test_sftp_server_killed_mid_upload(tmp_path: Path) -> None:
    server = SftpServer.start(tmp_path / "sshd")
    base = server.root / "k"
    t = _sftp(server, base)
    data = blob(24 * MiB, seed=8)

    def source() -> Iterator[bytes]:
        for i, chunk in enumerate(streamed(data, MiB)):
            if i == 8:
                server.kill()
            yield chunk

    try:
        with pytest.raises(RecoverctlError) as info:
            t.put(BACKUP + ".age", source())
        assert_refusal(info.value, t, ErrorCode.TARGET_UNREACHABLE)
        # What a crash leaves: at most a .partial, never the final name.
        assert not (base / (BACKUP + ".age")).exists()
        left = sorted(os.listdir(base))
        assert left in ([], [BACKUP + ".age.partial"])
        # Back up again: the leftover is listed, judged incomplete, and a new put replaces it.
        server.launch()
        judged = offsite.classify(t.list(), {})
        assert all(not b.complete for b in judged.backups)
        t.put(BACKUP + ".age", streamed(data))
        assert os.listdir(base) == [BACKUP + ".age"]
    finally:
        t.close()
        server.stop()


# --- folder ---------------------------------------------------------------------------------


def test_dir_missing_folder_is_not_created(tmp_path: Path) -> None:
    t = open_target("nas", DirTargetSettings(type="dir", path=tmp_path / "not-mounted"))
    with pytest.raises(RecoverctlError) as info:
        t.put("x", iter([b"1"]))
    assert_refusal(info.value, t, ErrorCode.TARGET_NOT_FOUND)
    assert "mkdir" in (info.value.hint or "")
    assert not (tmp_path / "not-mounted").exists()


def test_dir_full_disk(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(
            f"the full-disk test mounts a tmpfs, as root: {mounted.stderr!r}", pytrace=False
        )
    try:
        t = open_target("nas", DirTargetSettings(type="dir", path=small))
        with pytest.raises(RecoverctlError) as info:
            t.put(BACKUP + ".age", streamed(blob(3 * MiB)))
        assert_refusal(info.value, t, ErrorCode.DISK_FULL)
        assert "no space left" in info.value.message
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


# --- age interoperability and memory ---------------------------------------------------------


@pytest.fixture(scope="module")
def age_cli() -> str:
    return require_tool("age", "apt-get install age (make test-env does it).")


def test_sealed_file_opens_with_age(age_cli: str, tmp_path: Path) -> None:
    identity = tmp_path / "identity.txt"
    recipient = seal.new_identity(identity)
    plain = tmp_path / BACKUP
    plain.write_bytes(blob(5 * MiB + 3, seed=9))
    with plain.open("rb") as src, (tmp_path / (BACKUP + ".age")).open("wb") as dst:
        sealed = seal.seal(src, dst, [seal.parse_recipient(recipient)])
    assert sealed.plain_size == plain.stat().st_size
    out = subprocess.run(
        [age_cli, "-d", "-i", str(identity), str(tmp_path / (BACKUP + ".age"))],
        capture_output=True,
        check=True,
    )
    assert out.stdout == plain.read_bytes()


def test_age_encrypted_file_unseals(age_cli: str, tmp_path: Path) -> None:
    keygen_cli = require_tool("age-keygen", "apt-get install age (make test-env does it).")
    identity = tmp_path / "key.txt"
    subprocess.run([keygen_cli, "-o", str(identity)], capture_output=True, check=True)
    recipient = next(
        ln.split(": ", 1)[1] for ln in identity.read_text().splitlines() if "public key" in ln
    )
    plain = tmp_path / "plain"
    plain.write_bytes(blob(4 * MiB + 1, seed=10))
    subprocess.run(
        [age_cli, "-r", recipient, "-o", str(tmp_path / "p.age"), str(plain)], check=True
    )
    result = seal.unseal(
        (tmp_path / "p.age").open("rb"), tmp_path / "restored", seal.load_identity(identity)
    )
    assert (tmp_path / "restored").read_bytes() == plain.read_bytes()
    assert result.plain_sha256 == hashlib.sha256(plain.read_bytes()).hexdigest()


RSS_PROBE = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from recoverctl.adapters import seal
    from recoverctl.adapters.targets.dir import DirTarget

    def peak_kib():
        # VmHWM, not ru_maxrss: a child's ru_maxrss starts at its forking parent's peak.
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

    folder = Path(sys.argv[1])
    base = peak_kib()
    identity = seal.load_identity(folder / "id")
    recipients = [seal.parse_recipient(i.recipient) for i in identity]
    with (folder / "big").open("rb") as src, (folder / "big.age").open("wb") as dst:
        sealed = seal.seal(src, dst, recipients)
    seal.unseal((folder / "big.age").open("rb"), folder / "back", identity,
                expect_sha256=sealed.sha256, expect_size=sealed.size)
    with (folder / "big").open("rb") as src:
        (folder / "t").mkdir()
        stream = seal.sealed_chunks(src, recipients)
        DirTarget("nas", folder / "t").put("big.age", stream)
    assert stream.result.plain_size == (folder / "big").stat().st_size
    print(base, peak_kib())
    """
)


def test_memory_stays_flat_with_file_size(tmp_path: Path) -> None:
    """Seal, unseal, and seal-while-uploading a 200 MiB file: peak RSS grows by far less
    than the file (the target: under 80 MiB over what the imports take)."""
    seal.new_identity(tmp_path / "id")
    with (tmp_path / "big").open("wb") as f:
        chunk = os.urandom(MiB)
        for i in range(200):
            f.write(hashlib.sha256(bytes([i % 256])).digest() + chunk[32:])
    out = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    base, peak = (int(v) // 1024 for v in out.stdout.split())
    print(f"peak RSS: {base} MiB after the imports, {peak} MiB at most while working")
    assert (tmp_path / "back").read_bytes() == (tmp_path / "big").read_bytes()
    assert peak - base < 80, f"peak RSS grew by {peak - base} MiB for a 200 MiB file"


# --- a parallel Ctrl-C never leaves the sealing thread behind -------------------------------


def test_seal_stream_closed_early_stops_its_thread(tmp_path: Path) -> None:
    recipient = seal.parse_recipient(seal.new_identity(tmp_path / "id"))
    before = {t.name for t in threading.enumerate()}
    with seal.sealed_chunks(io.BytesIO(blob(20 * MiB)), [recipient]) as stream:
        next(iter(stream))
        assert [t for t in threading.enumerate() if t.name == "recoverctl-seal"]
    assert not [t for t in threading.enumerate() if t.name == "recoverctl-seal"]
    assert {t.name for t in threading.enumerate()} <= before | {"MainThread"}

    # And when the upload fails, whatever still holds the iterator.
    target = FailingAfter(2)
    with (
        pytest.raises(SourceFailed),
        seal.sealed_chunks(io.BytesIO(blob(20 * MiB)), [recipient]) as stream,
    ):
        target.put(stream)
    assert not [t for t in threading.enumerate() if t.name == "recoverctl-seal"]


class FailingAfter:
    """An upload that fails after a few chunks, as a dropped connection would."""

    def __init__(self, chunks: int):
        self.chunks = chunks

    def put(self, source: Iterable[bytes]) -> None:
        for i, _ in enumerate(source):
            if i == self.chunks:
                raise SourceFailed("connection dropped")
