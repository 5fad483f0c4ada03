"""services/offsite/ over real folder targets in a tmp folder: push, list, the sealed
check and pull, with every refusal the e2e suite drives against real servers, in
milliseconds. No engine: pushing and pulling never need one."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from recoverctl import failpoints
from recoverctl.adapters import seal
from recoverctl.core import offsite as core
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.services import offsite
from recoverctl.services.session import StackSession
from recoverctl.settings import DirTargetSettings, EncryptionSettings, Settings
from tests.unit.fakes import write_backup_file

B1 = "backup_2026-11-28_030000.dump"
B2 = "backup_2026-11-29_030000.dump"


class World:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.root = tmp / "project"
        self.root.mkdir()
        (self.root / "docker-compose.dev.yml").write_text(
            "name: vault-dev\nservices:\n  db:\n    image: postgres\n"
        )
        self.safe = tmp / "safe"
        self.safe.mkdir(mode=0o700)
        self.identity = self.safe / "identity.txt"
        self.recipient = seal.new_identity(self.identity)
        # The folders configured; each stack's objects are in PROJECT/STACK inside them.
        self.nas_root = tmp / "nas"
        self.clear_root = tmp / "clear"
        for folder in (self.nas_root, self.clear_root):
            folder.mkdir()
        self.nas = self.nas_root / "vault-dev" / "dev"
        self.clear = self.clear_root / "vault-dev" / "dev"
        self.backups = self.root / "backups"
        self.data = {B1: os.urandom(300_000), B2: os.urandom(1_500_000)}
        for name, data in self.data.items():
            write_backup_file(self.backups, name, data)

    def settings(self, *, recipients: bool = True) -> Settings:
        return Settings(
            project_dir=self.root,
            compose_file=self.root / "docker-compose.dev.yml",
            env_file=self.root / ".env",
            backup_dir=self.backups,
            encryption=EncryptionSettings(recipients=(self.recipient,) if recipients else ()),
            targets={
                "nas": DirTargetSettings(type="dir", path=self.nas_root),
                "clear": DirTargetSettings(type="dir", path=self.clear_root, encryption="none"),
            },
        )

    def session(self, **kw: bool) -> StackSession:
        return StackSession(self.settings(**kw))


@pytest.fixture
def w(tmp_path: Path) -> World:
    return World(tmp_path)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def age(path: Path, hours: float) -> None:
    """Makes a file look written `hours` ago."""
    when = time.time() - hours * 3600
    os.utime(path, (when, when))



def _failed(result: offsite.PushResult) -> offsite.OffsiteFailed:
    """A push with a failed copy, and the failure its caller reports (exit 3)."""
    assert not result.ok
    return offsite.failure([result])

def test_push_seals_and_commits_last_then_pull_gives_the_same_bytes(w: World) -> None:
    session = w.session()
    result = offsite.push_backup(session, w.backups / B2)
    assert result.ok and [(c.target, c.status) for c in result.copies] == [
        ("clear", "pushed"),
        ("nas", "pushed"),
    ]
    assert names(w.nas) == [B2 + ".age", B2 + ".age.manifest.json", B2 + ".json.age"]
    assert names(w.clear) == [B2, B2 + ".json", B2 + ".manifest.json"]
    # What is in clear on an encrypted target names no table and counts no row.
    for name in names(w.nas):
        raw = (w.nas / name).read_bytes()
        assert b"vault_secret" not in raw and b"auth_user" not in raw
    remote = json.loads((w.nas / (B2 + ".age.manifest.json")).read_text())
    assert remote["recipients"] == [w.recipient] and remote["encryption"] == "age"
    assert (
        remote["data"]["sha256"] == hashlib.sha256((w.nas / (B2 + ".age")).read_bytes()).hexdigest()
    )
    nas = next(c for c in result.copies if c.target == "nas")
    assert nas.size == sum((w.nas / n).stat().st_size for n in names(w.nas))

    out = w.tmp / "restored"
    pulled = offsite.pull(session, "nas", "latest", w.identity, out)
    assert pulled.path == out / B2 and pulled.path.read_bytes() == w.data[B2]
    assert (out / (B2 + ".json")).read_bytes() == (w.backups / (B2 + ".json")).read_bytes()
    assert (pulled.path.stat().st_mode & 0o777) == 0o600
    # In clear, no identity is needed.
    out2 = w.tmp / "restored2"
    assert offsite.pull(session, "clear", B2, None, out2).path.read_bytes() == w.data[B2]


def test_a_complete_copy_is_left_alone_and_incomplete_ones_are_replaced(w: World) -> None:
    session = w.session()
    offsite.push_backup(session, w.backups / B2, targets=["nas"])
    before = (w.nas / (B2 + ".age")).read_bytes()
    again = offsite.push_backup(session, w.backups / B2, targets=["nas"])
    assert again.copies[0].status == "present"
    assert (w.nas / (B2 + ".age")).read_bytes() == before  # not re-sealed, not replaced

    # An earlier push of B1 that crashed after its data; someone else's file; a backup
    # whose remote manifest is unreadable (kept for a person to look at).
    (w.nas / (B1 + ".age")).write_bytes(b"half")
    (w.nas / "README.txt").write_text("not ours")
    odd = "backup_2026-01-01_000000.dump"
    (w.nas / (odd + ".age")).write_bytes(b"x")
    (w.nas / (odd + ".age.manifest.json")).write_text("{not json")
    pushed = offsite.push_backup(session, w.backups / B1, targets=["nas"])
    assert pushed.copies[0].status == "pushed"
    assert B1 + ".age" in pushed.copies[0].removed
    listing = offsite.list_target(session, "nas").listing
    assert [(b.backup, b.complete) for b in listing.backups] == [
        (B2, True),
        (B1, True),
        (odd, False),
    ]
    assert [o.name for o in listing.foreign] == ["README.txt"]
    # Another backup's crash leftovers (no remote manifest) go with the next push once
    # older than the grace period: a younger one may be another machine's upload.
    crashed = w.nas / "backup_2026-11-01_000000.dump.age"
    crashed.write_bytes(b"crashed")
    offsite.push_backup(session, w.backups / B2, targets=["nas"])
    assert crashed.exists()
    age(crashed, 2)
    offsite.push_backup(session, w.backups / B2, targets=["nas"])
    assert crashed.name not in names(w.nas)


def test_no_recipients_refuses_sealed_targets_only(w: World) -> None:
    session = w.session(recipients=False)
    err = _failed(offsite.push_backup(session, w.backups / B2))
    assert err.code is ErrorCode.OFFSITE_FAILED and err.exit_code == 3
    result = err.results[0]
    status = {c.target: c.status for c in result.copies}
    assert status == {"clear": "pushed", "nas": "failed"}
    failed = result.failed[0]
    assert failed.error is not None and failed.error.code is ErrorCode.ENCRYPTION_REQUIRED
    assert names(w.nas) == []  # never in clear on a target that did not ask for it
    assert err.message.startswith(
        f"{B2} is good here, but copying it off-site failed: No recipients"
    )
    assert "The local backup stays" in (err.hint or "")


def test_a_local_file_changed_since_its_manifest_is_never_committed(w: World) -> None:
    (w.backups / B2).write_bytes(os.urandom(1_500_000))
    failed = _failed(offsite.push_backup(w.session(), w.backups / B2, targets=["nas"]))
    copy = failed.results[0].copies[0]
    assert copy.error is not None and copy.error.code is ErrorCode.BACKUP_CORRUPT
    assert "no longer matches its manifest" in copy.error.message
    assert names(w.nas) == []


def test_a_flipped_byte_is_refused_by_pull_and_by_the_sealed_check(w: World) -> None:
    session = w.session()
    offsite.push_backup(session, w.backups / B2, targets=["nas"])
    assert offsite.check_sealed(session, "nas", B2).ok
    data = w.nas / (B2 + ".age")
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    sealed = offsite.check_sealed(session, "nas", "latest")
    assert not sealed.ok
    assert [c.name for c in sealed.checks if c.status == "fail"] == ["data"]
    out = w.tmp / "out"
    with pytest.raises(RecoverctlError) as info:
        offsite.pull(session, "nas", B2, w.identity, out)
    assert info.value.code is ErrorCode.OBJECT_CORRUPT
    assert names(out) == []  # no backup, no manifest, no partial


def test_a_manifest_with_no_data_is_incomplete(w: World) -> None:
    session = w.session()
    offsite.push_backup(session, w.backups / B2, targets=["nas"])
    (w.nas / (B2 + ".age")).unlink()
    listing = offsite.list_target(session, "nas")
    doc = listing.to_json()["backups"][0]
    assert doc["complete"] is False and doc["problems"] == [f"{B2}.age is missing"]
    with pytest.raises(RecoverctlError) as info:
        offsite.pull(session, "nas", B2, w.identity, w.tmp / "out")
    assert info.value.code is ErrorCode.OBJECT_CORRUPT
    assert "incomplete" in info.value.message and "is missing" in info.value.message
    with pytest.raises(RecoverctlError) as latest:
        offsite.pull(session, "nas", "latest", w.identity, w.tmp / "out")
    assert latest.value.code is ErrorCode.OBJECT_NOT_FOUND
    sealed = offsite.check_sealed(session, "nas", B2)
    assert not sealed.ok and sealed.checks[0].name == "complete"


def test_the_wrong_identity(w: World) -> None:
    session = w.session()
    offsite.push_backup(session, w.backups / B2, targets=["nas"])
    other = w.safe / "other.txt"
    seal.new_identity(other)
    with pytest.raises(RecoverctlError) as info:
        offsite.pull(session, "nas", B2, other, w.tmp / "out")
    assert info.value.code is ErrorCode.DECRYPT_FAILED
    assert "encrypted to other recipients" in info.value.message
    assert not (w.tmp / "out" / B2).exists()
    # No identity at all for a sealed copy, and one inside the project: refused up front.
    with pytest.raises(RecoverctlError) as none:
        offsite.pull(session, "nas", B2, None, w.tmp / "out")
    assert none.value.code is ErrorCode.IDENTITY_INVALID
    inside = w.root / "id.txt"
    seal.new_identity(inside)
    with pytest.raises(RecoverctlError) as inner:
        offsite.pull(session, "nas", B2, inside, w.tmp / "out")
    assert (
        inner.value.code is ErrorCode.IDENTITY_INVALID
        and "inside the project" in inner.value.message
    )


def test_pull_never_writes_over_a_local_file_and_fetch_uses_a_scratch_folder(w: World) -> None:
    session = w.session()
    offsite.push_backup(session, w.backups / B2, targets=["nas"])
    with pytest.raises(RecoverctlError) as info:
        offsite.pull(session, "nas", B2, w.identity, w.backups)
    assert info.value.code is ErrorCode.FILE_EXISTS
    path = offsite.pull(session, "nas", B2, w.identity).path
    assert path.parent.parent == w.backups and path.parent.name.startswith(".pulled-")
    assert path.read_bytes() == w.data[B2]
    session.close()
    assert not path.parent.exists()
    # With no local file of that name, it lands in the backups folder and stays.
    (w.backups / B2).unlink()
    (w.backups / (B2 + ".json")).unlink()
    kept = offsite.pull(session, "nas", "latest", w.identity).path
    session.close()
    assert kept == w.backups / B2 and kept.read_bytes() == w.data[B2]


def _interrupt_at(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real: Callable[[str], None] = failpoints.reach

    def reach(point: str) -> None:
        real(point)
        if point == name:
            raise KeyboardInterrupt

    monkeypatch.setattr(failpoints, "reach", reach)


@pytest.mark.parametrize("point", ["push.uploading", "push.before-commit"])
def test_ctrl_c_during_a_push_leaves_nothing_complete_looking(
    w: World, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    _interrupt_at(point, monkeypatch)
    session = w.session()
    with pytest.raises(RecoverctlError) as info:
        offsite.push_backup(session, w.backups / B2, targets=["nas"])
    assert info.value.code is ErrorCode.INTERRUPTED
    assert "nothing there looks like a complete copy" in info.value.message
    assert not any(n.endswith(".manifest.json") or n.endswith(".partial") for n in names(w.nas))
    assert offsite.list_target(session, "nas").listing.complete == ()
    monkeypatch.undo()
    assert offsite.push_backup(session, w.backups / B2, targets=["nas"]).ok
    assert names(w.nas) == [B2 + ".age", B2 + ".age.manifest.json", B2 + ".json.age"]


def test_ctrl_c_during_a_pull_keeps_nothing(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    session = w.session()
    offsite.push_backup(session, w.backups / B2, targets=["nas"])
    _interrupt_at("pull.downloading", monkeypatch)
    out = w.tmp / "out"
    with pytest.raises(RecoverctlError) as info:
        offsite.pull(session, "nas", B2, w.identity, out)
    assert info.value.code is ErrorCode.INTERRUPTED
    assert names(out) == []


def test_unknown_target_and_no_target(w: World) -> None:
    session = w.session()
    with pytest.raises(RecoverctlError) as info:
        offsite.push_backup(session, w.backups / B2, targets=["nope"])
    assert info.value.code is ErrorCode.TARGET_NOT_FOUND and "Targets: clear, nas" in (
        info.value.hint or ""
    )
    bare = StackSession(w.settings().model_copy(update={"targets": {}}))
    with pytest.raises(RecoverctlError) as none:
        offsite.push_backup(bare, w.backups / B2)
    assert none.value.code is ErrorCode.TARGET_NOT_FOUND


def test_a_folder_target_that_is_not_mounted(w: World) -> None:
    w.nas_root.rmdir()
    failed = _failed(offsite.push_backup(w.session(), w.backups / B2, targets=["nas"]))
    copy = failed.results[0].copies[0]
    assert copy.error is not None and copy.error.code is ErrorCode.TARGET_NOT_FOUND
    assert "target nas" in failed.message and "does not exist" in failed.message
    assert not w.nas_root.exists()


def test_remote_manifest_round_trip_is_the_core_model(w: World) -> None:
    offsite.push_backup(w.session(), w.backups / B1, targets=["nas"])
    raw = (w.nas / (B1 + ".age.manifest.json")).read_bytes()
    remote = core.RemoteManifest.from_bytes(raw)
    assert remote.backup == B1 and remote.plain_size == len(w.data[B1])
    assert remote.created_at == datetime(2026, 11, 28, 3, 0, tzinfo=UTC)


# --- two stacks (or two machines) on one target ---------------------------------------------

B3 = "backup_2026-11-30_030000.dump"


def prod_session(w: World) -> StackSession:
    """The prod stack of the same checkout, pushing to the same folders."""
    (w.root / "docker-compose.yml").write_text(
        "name: vault-prod\nservices:\n  db:\n    image: postgres\n"
    )
    settings = w.settings().model_copy(
        update={"stack": "prod", "compose_file": w.root / "docker-compose.yml"}
    )
    path = write_backup_file(w.backups, B3, os.urandom(200_000))
    raw = json.loads(path.with_name(B3 + ".json").read_text())
    raw.update(project="vault-prod", stack="prod")
    path.with_name(B3 + ".json").write_text(json.dumps(raw))
    return StackSession(settings)


def test_each_stack_has_its_own_namespace_and_never_takes_anothers_copy(w: World) -> None:
    dev, prod = w.session(), prod_session(w)
    offsite.push_backup(dev, w.backups / B2, targets=["nas"])
    offsite.push_backup(prod, w.backups / B3, targets=["nas"])
    prod_dir = w.nas_root / "vault-prod" / "prod"
    assert names(prod_dir) == [B3 + ".age", B3 + ".age.manifest.json", B3 + ".json.age"]
    assert B3 + ".age" not in names(w.nas)
    remote = json.loads((prod_dir / (B3 + ".age.manifest.json")).read_text())
    assert (remote["project"], remote["stack"]) == ("vault-prod", "prod")
    # prod's copy is the newest on the target: never dev's latest, nor listed as dev's.
    assert offsite.resolve_remote(dev.target("nas", "vault-dev/dev"), "latest",
                                  offsite.owner(dev)).backup == B2  # fmt: skip
    assert [b.backup for b in offsite.list_target(dev, "nas").listing.backups] == [B2]
    assert [b.backup for b in offsite.list_target(prod, "nas").listing.backups] == [B3]
    # A copy of prod's moved by hand into dev's folder: its manifest says whose it is.
    for n in names(prod_dir):
        (w.nas / n).write_bytes((prod_dir / n).read_bytes())
    listing = offsite.list_target(dev, "nas").listing
    assert [b.backup for b in listing.backups] == [B2]
    assert [b.backup for b in listing.others] == [B3]
    out = w.tmp / "out"
    assert offsite.pull(dev, "nas", "latest", w.identity, out).path.name == B2
    with pytest.raises(RecoverctlError) as theirs:
        offsite.pull(dev, "nas", B3, w.identity, out)
    assert theirs.value.code is ErrorCode.OBJECT_NOT_FOUND
    assert "vault-prod prod's, not vault-dev dev's" in theirs.value.message
    # Never removed by dev's push, however old.
    for n in names(w.nas):
        if n.startswith(B3):
            age(w.nas / n, 5)
    offsite.push_backup(dev, w.backups / B1, targets=["nas"])
    assert sum(n.startswith(B3) for n in names(w.nas)) == 3
    # A stack pushes only its own backups.
    with pytest.raises(RecoverctlError) as other:
        offsite.push_backup(dev, w.backups / B3, targets=["nas"])
    assert other.value.code is ErrorCode.OTHER_STACK


def test_a_push_leaves_another_stacks_uploads_on_their_way(w: World) -> None:
    dev, prod = w.session(), prod_session(w)
    prod_dir = w.nas_root / "vault-prod" / "prod"
    prod_dir.mkdir(parents=True)
    on_its_way = prod_dir / (B3 + ".age")
    on_its_way.write_bytes(b"uploading")
    age(on_its_way, 5)
    young = w.nas / "backup_2026-11-02_000000.dump.age"  # our own stack, another machine
    young.parent.mkdir(parents=True, exist_ok=True)
    young.write_bytes(b"uploading")
    offsite.push_backup(dev, w.backups / B2, targets=["nas"])
    assert on_its_way.exists() and young.exists()
    assert offsite.push_backup(prod, w.backups / B3, targets=["nas"]).ok


# --- replacing a copy -----------------------------------------------------------------------


def _fail_upload(monkeypatch: pytest.MonkeyPatch) -> None:
    def reach(point: str) -> None:
        if point == "push.uploading":
            raise RecoverctlError("link down", "retry", code=ErrorCode.TARGET_UNREACHABLE)

    monkeypatch.setattr(failpoints, "reach", reach)


def test_a_copy_is_removed_only_once_its_replacement_is_committed(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    offsite.push_backup(w.session(), w.backups / B1, targets=["nas"])
    # The target now says encryption = "none": B1 must be stored again, under other names.
    in_clear = DirTargetSettings(type="dir", path=w.nas_root, encryption="none")
    clear = w.settings().model_copy(update={"targets": {"nas": in_clear}})
    _fail_upload(monkeypatch)
    assert not offsite.push_backup(StackSession(clear), w.backups / B1, targets=["nas"]).ok
    [kept] = offsite.list_target(w.session(), "nas").listing.complete
    assert kept.backup == B1 and kept.manifest is not None and kept.manifest.encryption == "age"
    monkeypatch.undo()
    done = offsite.push_backup(StackSession(clear), w.backups / B1, targets=["nas"])
    assert done.copies[0].status == "pushed"
    assert names(w.nas) == [B1, B1 + ".json", B1 + ".manifest.json"]


def test_new_recipients_seal_the_copy_again_and_a_failure_keeps_the_old_one(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    offsite.push_backup(w.session(), w.backups / B1, targets=["nas"])
    new_identity = w.safe / "new.txt"
    rotated = w.settings().model_copy(
        update={"encryption": EncryptionSettings(recipients=(seal.new_identity(new_identity),))}
    )
    _fail_upload(monkeypatch)
    assert not offsite.push_backup(StackSession(rotated), w.backups / B1, targets=["nas"]).ok
    [kept] = offsite.list_target(w.session(), "nas").listing.complete
    assert kept.manifest is not None and kept.manifest.recipients == (w.recipient,)
    monkeypatch.undo()
    done = offsite.push_backup(StackSession(rotated), w.backups / B1, targets=["nas"])
    assert done.copies[0].status == "pushed"  # not "present": sealed to the old key
    out = w.tmp / "out"
    assert offsite.pull(StackSession(rotated), "nas", B1, new_identity, out).path.read_bytes() \
        == w.data[B1]  # fmt: skip


def test_a_local_read_error_during_a_push_is_a_failed_copy(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recoverctl.adapters import fsio

    def broken(path: Path, on_bytes: object = None, size: int = 0) -> Any:
        yield b"x" * 1000
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(fsio, "read_chunks", broken)
    failed = _failed(offsite.push_backup(w.session(), w.backups / B2))
    errors = [c.error for c in failed.results[0].copies]
    assert all(e is not None and e.code is ErrorCode.BACKUP_CORRUPT for e in errors)
    assert "Input/output error" in failed.message
    assert names(w.nas) == [] and names(w.clear) == []


def test_the_sealed_check_says_not_opened_and_checks_identity_file(w: World) -> None:
    offsite.push_backup(w.session(), w.backups / B1, targets=["nas"])
    sealed = offsite.check_sealed(w.session(), "nas", B1)
    assert sealed.ok
    data = next(c for c in sealed.checks if c.name == "data")
    assert "intact as uploaded (not opened)" in data.evidence
    assert not any(c.name == "identity" for c in sealed.checks)
    other = w.safe / "other.txt"
    seal.new_identity(other)
    for key, ok in ((w.identity, True), (other, False)):
        with_key = StackSession(w.settings().model_copy(update={"identity_file": key}))
        check = next(c for c in offsite.check_sealed(with_key, "nas", B1).checks
                     if c.name == "identity")  # fmt: skip
        assert (check.status == "ok") is ok, check


def test_pull_into_a_folder_that_cannot_be_made(w: World) -> None:
    offsite.push_backup(w.session(), w.backups / B1, targets=["nas"])
    blocker = w.tmp / "a-file"
    blocker.write_text("")
    with pytest.raises(RecoverctlError) as info:
        offsite.pull(w.session(), "nas", B1, w.identity, blocker / "out")
    assert info.value.code is ErrorCode.WRITE_FAILED
    assert "Cannot use" in info.value.message and "--output-dir" in (info.value.hint or "")
