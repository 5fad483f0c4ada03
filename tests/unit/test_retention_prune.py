"""Pruning on disk: the local folder (dump, manifest and record go together, dump first,
leftovers finished) and a folder target (the remote manifest first)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from recoverctl.adapters.targets.dir import DirTarget
from recoverctl.core import offsite
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.services import retention
from recoverctl.settings import Settings
from tests.unit.fakes import make_backup, make_settings

T0 = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def history(settings: Settings, states: list[str]) -> list[Path]:
    return [
        make_backup(settings.backup_dir, T0 - timedelta(days=i), state)
        for i, state in enumerate(states)
    ]


def test_local_prune_deletes_the_three_files_of_each_backup(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    paths = history(settings, ["never", "quick ok", "quick ok", "deep ok", "failed"])
    other = make_backup(settings.backup_dir, T0 - timedelta(days=9), stack="prod")
    stranger = settings.backup_dir / "backup_2020-01-01_000000.dump"  # no manifest: not ours
    stranger.write_bytes(b"?")
    plan = retention.plan_local(settings)
    assert [i.keep for i in plan.items] == [True, True, False, True, False]
    assert plan.items[3].reasons == ("newest deep-verified",)
    done = retention.delete_local(settings, plan)
    assert done.deleted == (paths[2].name, paths[4].name)
    left = sorted(p.name for p in settings.backup_dir.iterdir())
    for gone in (paths[2], paths[4]):
        assert not any(n.startswith(gone.name) for n in left)
    assert other.exists() and stranger.exists()
    assert retention.plan_local(settings).doomed == ()


def test_an_interrupted_deletion_never_leaves_a_complete_looking_backup(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    paths = history(settings, ["quick ok", "quick ok", "quick ok"])
    # What a crash after the first unlink leaves: the dump is gone, its manifest and record not.
    paths[2].unlink()
    from recoverctl.services import catalog

    listing = catalog.list_backups(settings)
    assert paths[2].name not in [e.path.name for e in listing.entries]
    assert any("manifest whose backup is missing" in s for s in listing.strays)
    plan = retention.plan_local(settings)
    assert plan.leftovers == (f"{paths[2].name}.json", f"{paths[2].name}.verify.json")
    done = retention.delete_local(settings, plan)
    assert done.removed_leftovers == plan.leftovers
    assert not catalog.list_backups(settings).strays


def test_the_other_stack_s_orphan_manifest_is_left_alone(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    history(settings, ["quick ok"])
    orphan = make_backup(settings.backup_dir, T0 - timedelta(days=3), stack="prod")
    orphan.unlink()
    assert retention.plan_local(settings).leftovers == ()


def test_empty_policy_and_no_verified_backup_are_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, "")
    history(settings, ["quick ok", "quick ok"])
    with pytest.raises(RecoverctlError) as caught:
        retention.plan_local(settings)
    assert caught.value.code == ErrorCode.CONFIG_INVALID
    settings = make_settings(tmp_path / "b", "[retention]\nkeep_last = 1\n")
    history(settings, ["never", "failed", "never"])
    with pytest.raises(RecoverctlError) as caught:
        retention.plan_local(settings)
    assert caught.value.code == ErrorCode.PRUNE_REFUSED
    assert len(list(settings.backup_dir.iterdir())) == 7  # 3 dumps, 3 manifests, 1 record


OURS = offsite.Owner("x", "dev")


class RecordingTarget(DirTarget):
    """A folder target that remembers the order of its deletions."""

    deletions: list[str]

    def __init__(self, name: str, path: Path, namespace: str = ""):
        super().__init__(name, path, namespace=namespace)
        self.deletions = []

    def delete(self, name: str) -> None:
        self.deletions.append(name)
        super().delete(name)


def upload(
    target: DirTarget, backup: Path, created: datetime, who: offsite.Owner = OURS
) -> None:
    names = offsite.object_names(backup.name, "none")
    data = target.put(names.data, [backup.read_bytes()])
    man = target.put(names.manifest, [backup.with_name(backup.name + ".json").read_bytes()])

    def stored(info: Any, path_bytes: bytes) -> offsite.StoredObject:
        return offsite.StoredObject(
            name=info.name, size=info.size, sha256=hashlib.sha256(path_bytes).hexdigest()
        )

    remote = offsite.new_remote_manifest(
        backup=backup.name,
        fmt="custom",
        created_at=created,
        plain_size=backup.stat().st_size,
        encryption="none",
        recipients=(),
        data=stored(data, backup.read_bytes()),
        manifest=stored(man, backup.with_name(backup.name + ".json").read_bytes()),
        recoverctl_version="test",
        owner=who,
    )
    target.put(names.remote_manifest, [remote.to_bytes()])


def test_target_prune_removes_the_remote_manifest_first(tmp_path: Path) -> None:
    remote_dir = tmp_path / "nas"
    remote_dir.mkdir()
    settings = make_settings(
        tmp_path,
        "[retention]\nkeep_last = 2\n"
        f'[targets.nas]\ntype = "dir"\npath = "{remote_dir}"\nencryption = "none"\n',
    )
    paths = history(settings, ["quick ok", "deep ok", "quick ok", "quick ok"])
    target = RecordingTarget("nas", remote_dir)
    for i, path in enumerate(paths):
        upload(target, path, T0 - timedelta(days=i))
    # An upload that never finished: not a copy, never counted, left to the next push.
    (remote_dir / "backup_2026-11-29_090000.dump").write_bytes(b"half")
    (settings.backup_dir / paths[3].name).unlink()  # gone locally: its copy counts as unverified

    def opener(_s: Settings, _name: str) -> RecordingTarget:
        return target

    plan = retention.plan_target(settings, "nas", opener=opener)
    assert [(i.name, i.keep) for i in plan.items] == [
        (paths[0].name, True),
        (paths[1].name, True),
        (paths[2].name, False),
        (paths[3].name, False),
    ]
    assert plan.items[3].state == "never"
    done = retention.delete_target(settings, plan, opener=opener)
    assert done.deleted == (paths[2].name, paths[3].name)
    for path in (paths[2], paths[3]):
        mine = [d for d in target.deletions if d.startswith(path.name)]
        assert mine[0] == f"{path.name}.manifest.json"
        assert set(mine) == set(offsite.object_names(path.name, "none").all())
    left = sorted(p.name for p in remote_dir.iterdir())
    assert "backup_2026-11-29_090000.dump" in left
    assert not any(n.startswith(paths[2].name) for n in left)


def test_target_prune_never_counts_or_deletes_another_stacks_copies(tmp_path: Path) -> None:
    """dev and prod pushing to one target: each prunes its own namespace only, and a copy
    of prod's that landed in dev's folder is never judged (nor deleted) as dev's."""
    remote_dir = tmp_path / "nas"
    remote_dir.mkdir()
    settings = make_settings(
        tmp_path,
        "[retention]\nkeep_last = 1\n"
        f'[targets.nas]\ntype = "dir"\npath = "{remote_dir}"\nencryption = "none"\n',
    )
    paths = history(settings, ["quick ok", "quick ok", "quick ok"])
    dev = RecordingTarget("nas", remote_dir, OURS.namespace)
    prod_owner = offsite.Owner("x", "prod")
    prod = RecordingTarget("nas", remote_dir, prod_owner.namespace)
    upload(dev, paths[1], T0 - timedelta(days=1))
    upload(dev, paths[2], T0 - timedelta(days=2))
    # prod's copies: newer than dev's, and their local files are gone from this folder.
    for i, path in enumerate(paths):
        upload(prod, path, T0 + timedelta(days=1 + i), prod_owner)
    # One of prod's, copied by hand into dev's folder: its manifest names prod.
    stray = make_backup(settings.backup_dir, T0 + timedelta(days=9))
    upload(dev, stray, T0 + timedelta(days=9), prod_owner)
    stray.unlink()

    plan = retention.plan_target(settings, "nas")
    assert [(i.name, i.keep) for i in plan.items] == [
        (paths[1].name, True),
        (paths[2].name, False),
    ]
    done = retention.delete_target(settings, plan)
    assert done.deleted == (paths[2].name,)
    assert len(list(prod.path.iterdir())) == 9  # prod's three copies, untouched
    assert any(p.name.startswith(stray.name) for p in dev.path.iterdir())


def test_target_names() -> None:
    settings = Settings.model_construct(targets={"a": None, "b": None})
    assert retention.target_names(settings, None, False) == ()
    assert retention.target_names(settings, "a", False) == ("a",)
    assert retention.target_names(settings, None, True) == ("a", "b")
    with pytest.raises(RecoverctlError, match="No target 'c'") as caught:
        retention.target_names(settings, "c", False)
    assert caught.value.code is ErrorCode.TARGET_NOT_FOUND
