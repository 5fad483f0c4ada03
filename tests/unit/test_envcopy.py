"""The env files off-site (services/envcopy.py) over real folder targets in a tmp folder:
push, the changed-only push of backup, pull, and every refusal. No engine."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from recoverctl.adapters import fsio, seal
from recoverctl.core import envcopy as core
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.services import envcopy
from recoverctl.services.session import StackSession
from recoverctl.settings import DirTargetSettings, EncryptionSettings, Settings

DEV = b"DJANGO_SECRET_KEY=dev-secret-value-123456\nPOSTGRES_PASSWORD=dev-pw-abcdef\n"
PROD = b"DJANGO_SECRET_KEY=prod-secret-value-987654\nPOSTGRES_PASSWORD=prod-pw-zyxwvu\n"
KEY = b'{"format": "zkkey", "wrapped": "not-a-real-key"}\n'


class World:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.root = tmp / "project"
        self.root.mkdir()
        (self.root / "docker-compose.dev.yml").write_text("name: vault-dev\nservices:\n  db:\n    image: postgres\n")
        self.safe = tmp / "safe"
        self.safe.mkdir(mode=0o700)
        self.identity = self.safe / "identity.txt"
        self.recipient = seal.new_identity(self.identity)
        self.nas = tmp / "nas"
        self.nas2 = tmp / "nas2"
        self.clear = tmp / "clear"
        for folder in (self.nas, self.nas2, self.clear):
            folder.mkdir()
        self.key_file = self.safe / "alice.zkkey.json"

    def settings(self, *, recipients: bool = True, key_file: bool = False) -> Settings:
        return Settings(
            project_dir=self.root,
            compose_file=self.root / "docker-compose.dev.yml",
            env_file=self.root / ".env",
            backup_dir=self.root / "backups",
            key_file=self.key_file if key_file else None,
            encryption=EncryptionSettings(recipients=(self.recipient,) if recipients else ()),
            targets={
                "nas": DirTargetSettings(type="dir", path=self.nas),
                "nas2": DirTargetSettings(type="dir", path=self.nas2),
                "clear": DirTargetSettings(type="dir", path=self.clear, encryption="none"),
            },
        )

    def session(self, **kw: bool) -> StackSession:
        return StackSession(self.settings(**kw))

    def env_folder(self, target: Path) -> Path:
        return target / "vault-dev" / "env"

    def stored(self, target: Path) -> dict[str, bytes]:
        folder = self.env_folder(target)
        return {p.name: p.read_bytes() for p in folder.iterdir()} if folder.is_dir() else {}


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def test_push_seals_every_env_file_and_never_leaves_a_value_in_clear(world: World) -> None:
    _write(world.root / ".env", DEV)
    _write(world.root / ".env.production", PROD)
    result = envcopy.push(world.session(), ["nas", "clear"])
    assert result.ok and result.files == (".env", ".env.production")
    assert [c.status for c in result.copies] == ["pushed", "pushed"]
    for target in (world.nas, world.clear):  # a target "in clear" still gets sealed files
        objects = world.stored(target)
        assert core.MANIFEST_NAME in objects and len(objects) == 3
        for body in objects.values():
            for secret in (b"dev-secret-value", b"prod-pw-zyxwvu", b"POSTGRES_PASSWORD"):
                assert secret not in body
        manifest = core.EnvManifest.from_bytes(objects[core.MANIFEST_NAME])
        assert [f.name for f in manifest.files if f.role == "env"] == [".env", ".env.production"]
        assert manifest.recipients == (world.recipient,)
    # the local record: sha256s only, private
    record = envcopy.record_path(world.settings(), "vault-dev")
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    text = record.read_text()
    assert "secret" not in text and "nas" in json.loads(text)["targets"]


def test_a_second_push_replaces_the_copy_and_removes_the_old_objects(world: World) -> None:
    _write(world.root / ".env", DEV)
    envcopy.push(world.session(), ["nas"])
    first = set(world.stored(world.nas))
    _write(world.root / ".env", DEV + b"EXTRA=1\n")
    result = envcopy.push(world.session(), ["nas"])
    second = set(world.stored(world.nas))
    assert len(second) == 2 and first & second == {core.MANIFEST_NAME}
    assert set(result.copies[0].removed) == first - {core.MANIFEST_NAME}


def test_backup_pushes_only_what_changed_per_target(world: World) -> None:
    _write(world.root / ".env", DEV)
    envcopy.push(world.session(), ["nas"])
    done = envcopy.push_if_changed(world.session())
    assert done is not None
    statuses = {c.target: c.status for c in done.copies}
    assert statuses == {"nas": "unchanged", "nas2": "pushed", "clear": "pushed"}
    again = envcopy.push_if_changed(world.session())
    assert again is not None and {c.status for c in again.copies} == {"unchanged"}
    _write(world.root / ".env", DEV + b"X=2\n")
    changed = envcopy.push_if_changed(world.session())
    assert changed is not None and {c.status for c in changed.copies} == {"pushed"}


def test_backup_pushes_nothing_without_recipients_or_env_file(world: World) -> None:
    assert envcopy.push_if_changed(world.session()) is None  # no env file
    _write(world.root / ".env", DEV)
    assert envcopy.push_if_changed(world.session(recipients=False)) is None
    assert world.stored(world.nas) == {}


def test_env_push_without_recipients_is_refused(world: World) -> None:
    _write(world.root / ".env", DEV)
    with pytest.raises(RecoverctlError) as err:
        envcopy.push(world.session(recipients=False), ["clear"])
    assert err.value.code is ErrorCode.ENCRYPTION_REQUIRED
    assert world.stored(world.clear) == {}


def test_env_push_without_an_env_file_is_refused(world: World) -> None:
    with pytest.raises(RecoverctlError) as err:
        envcopy.push(world.session())
    assert err.value.code is ErrorCode.ENV_INVALID


def test_a_failed_target_is_exit_3_and_the_others_are_pushed(world: World) -> None:
    _write(world.root / ".env", DEV)
    world.nas2.rmdir()
    (world.tmp / "nas2").write_text("not a folder")
    pushed = envcopy.push(world.session())
    assert not pushed.ok
    err = envcopy.failure(pushed)
    assert err.code is ErrorCode.OFFSITE_FAILED
    statuses = {c.target: c.status for c in err.result.copies}
    assert statuses == {"clear": "pushed", "nas": "pushed", "nas2": "failed"}
    assert "nas2" in err.message


def test_pull_writes_missing_files_0600_and_never_overwrites(world: World) -> None:
    _write(world.root / ".env", DEV)
    _write(world.root / ".env.production", PROD)
    envcopy.push(world.session(), ["nas"])
    (world.root / ".env").unlink()
    _write(world.root / ".env.production", b"MINE=1\n")
    old = os.umask(0)
    try:
        result = envcopy.pull(world.session(), "nas", world.identity)
    finally:
        os.umask(old)
    assert result.written == (world.root / ".env",)
    assert result.kept == (world.root / ".env.production",)
    assert (world.root / ".env").read_bytes() == DEV
    assert stat.S_IMODE((world.root / ".env").stat().st_mode) == 0o600
    assert (world.root / ".env.production").read_bytes() == b"MINE=1\n"


def test_the_key_export_travels_sealed_and_comes_back_to_key_file(world: World) -> None:
    _write(world.root / ".env", DEV)
    _write(world.key_file, KEY)
    envcopy.push(world.session(key_file=True), ["nas"])
    assert all(b"not-a-real-key" not in b for b in world.stored(world.nas).values())
    (world.root / ".env").unlink()
    world.key_file.unlink()
    skipped = envcopy.pull(world.session(), "nas", world.identity)  # key_file not set
    assert skipped.written == (world.root / ".env",) and "key_file" in skipped.skipped[0]
    back = envcopy.pull(world.session(key_file=True), "nas", world.identity)
    assert back.written == (world.key_file,) and world.key_file.read_bytes() == KEY


def test_pull_with_the_wrong_identity_writes_nothing(world: World) -> None:
    _write(world.root / ".env", DEV)
    envcopy.push(world.session(), ["nas"])
    (world.root / ".env").unlink()
    other = world.safe / "other.txt"
    seal.new_identity(other)
    with pytest.raises(RecoverctlError) as err:
        envcopy.pull(world.session(), "nas", other)
    assert err.value.code is ErrorCode.DECRYPT_FAILED
    assert not (world.root / ".env").exists()


def test_pull_of_a_damaged_object_writes_nothing(world: World) -> None:
    _write(world.root / ".env", DEV)
    envcopy.push(world.session(), ["nas"])
    (world.root / ".env").unlink()
    data = next(p for p in world.env_folder(world.nas).iterdir() if p.name.endswith(".age"))
    data.write_bytes(data.read_bytes()[:-1] + b"x")
    with pytest.raises(RecoverctlError) as err:
        envcopy.pull(world.session(), "nas", world.identity)
    assert err.value.code is ErrorCode.OBJECT_CORRUPT
    assert not (world.root / ".env").exists()


def test_pull_from_a_target_without_a_copy(world: World) -> None:
    with pytest.raises(RecoverctlError) as err:
        envcopy.pull(world.session(), "nas", world.identity)
    assert err.value.code is ErrorCode.ENV_NOT_FOUND
    assert "env push" in (err.value.hint or "")


def test_pull_needs_an_identity(world: World) -> None:
    with pytest.raises(RecoverctlError) as err:
        envcopy.pull(world.session(), "nas", None)
    assert err.value.code is ErrorCode.IDENTITY_INVALID


def test_a_manifest_naming_another_file_is_refused(world: World) -> None:
    _write(world.root / ".env", DEV)
    envcopy.push(world.session(), ["nas"])
    path = world.env_folder(world.nas) / core.MANIFEST_NAME
    doc = json.loads(path.read_text())
    doc["files"][0]["name"] = "../../.bashrc"
    path.write_text(json.dumps(doc))
    (world.root / ".env").unlink()
    with pytest.raises(RecoverctlError) as err:
        envcopy.pull(world.session(), "nas", world.identity)
    assert err.value.code is ErrorCode.MANIFEST_DAMAGED
    assert not (world.root / ".env").exists()


def test_create_private_never_replaces(tmp_path: Path) -> None:
    path = tmp_path / "f"
    fsio.create_private(path, b"one")
    with pytest.raises(FileExistsError):
        fsio.create_private(path, b"two")
    assert path.read_bytes() == b"one"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["f"]
