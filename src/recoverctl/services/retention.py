"""Pruning, shared by `prune` and the routine: a retention plan for the local backups folder
or a target, and the deletions it calls for, done so that a half-deleted backup never looks
complete.

Locally a backup is complete when its dump is there (the dump is renamed into place last,
after its manifest): the dump goes first, then its manifest, then its verification record.
Interrupted in between, what is left is an orphan manifest, which `list` reports as one and
the next prune removes. On a target the remote manifest is the commit marker (written last
by a push): it goes first, so what is left is an incomplete upload that is never listed as a
copy, which the next push or prune removes.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

from recoverctl.adapters import fsio
from recoverctl.core import naming, offsite
from recoverctl.core import retention as core
from recoverctl.core.manifest import VerifyState, verify_state
from recoverctl.core.progress import Step
from recoverctl.core.result import INTERNAL, JsonResult, computed, meta
from recoverctl.errors import ErrorCode, RecoverctlError, UsageError
from recoverctl.services import catalog
from recoverctl.services import offsite as offsite_service
from recoverctl.settings import Settings

log = logging.getLogger(__name__)
LOCAL = "local"


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class Item(JsonResult):
    name: str
    created: datetime
    state: str = field(metadata=meta(name="verification", schema=VerifyState))
    size: int
    reasons: tuple[str, ...]  # empty: deleted

    @property
    @computed(after="size")
    def keep(self) -> bool:
        return bool(self.reasons)


@dataclass(frozen=True)
class ScopePlan:
    """One storage's plan: the local folder, or one target."""

    where: str  # "local" or the target's name
    location: str  # the folder, or the target's label
    policy: str
    items: tuple[Item, ...]  # newest first
    # Pieces of backups whose deletion was interrupted (local: orphan manifests and
    # verification records; target: objects of incomplete backups are left to push).
    leftovers: tuple[str, ...] = ()

    @property
    def kept(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if i.keep)

    @property
    def doomed(self) -> tuple[Item, ...]:
        return tuple(i for i in self.items if not i.keep)


@dataclass(frozen=True)
class ScopeResult(JsonResult):
    plan: ScopePlan = field(metadata=INTERNAL)
    deleted: tuple[str, ...]  # what was deleted (nothing on a dry run)
    removed_leftovers: tuple[str, ...]

    # The plan, as the JSON tells it around what was done.
    @property
    @computed(after="")
    def where(self) -> str:
        return self.plan.where

    @property
    @computed(after="where")
    def location(self) -> str:
        return self.plan.location

    @property
    @computed(after="location")
    def policy(self) -> str:
        return self.plan.policy

    @property
    @computed(after="policy")
    def backups(self) -> tuple[Item, ...]:
        return self.plan.items

    @property
    @computed(after="backups", name="kept")
    def kept_count(self) -> int:
        return len(self.plan.kept)

    @property
    @computed(after="kept", name="to_delete")
    def doomed_count(self) -> int:
        return len(self.plan.doomed)

    @property
    @computed(after="deleted")
    def leftovers(self) -> tuple[str, ...]:
        return self.plan.leftovers


def _policy(settings: Settings) -> core.Policy:
    return settings.retention.policy()


def _items(result: core.Plan, sizes: dict[str, int]) -> tuple[Item, ...]:
    return tuple(
        Item(d.backup.name, d.backup.created, d.backup.state, sizes.get(d.backup.name, 0), d.reasons)
        for d in result.decisions
    )


# --- the local folder --------------------------------------------------------------------


def plan_local(settings: Settings, *, tz: tzinfo | None = None) -> ScopePlan:
    """This stack's backups in the backups folder (those whose manifest names the stack;
    a dump without a manifest is nobody's to judge, and is never touched)."""
    listing = catalog.list_backups(settings)
    ours = [e for e in listing.entries if e.stack == settings.stack]
    backups = [core.Backup(e.path.name, e.created, e.state) for e in ours]
    result = core.plan(backups, _policy(settings), tz=tz)
    return ScopePlan(
        LOCAL,
        str(settings.backup_dir),
        result.policy.describe(),
        _items(result, {e.path.name: e.size for e in ours}),
        _local_leftovers(settings),
    )


def _local_leftovers(settings: Settings) -> tuple[str, ...]:
    folder = settings.backup_dir
    if not folder.is_dir():
        return ()
    found: list[str] = []
    for p in sorted(folder.iterdir()):
        if p.name.endswith(catalog.VERIFY_SUFFIX):
            dump = p.with_name(p.name[: -len(catalog.VERIFY_SUFFIX)])
            manifest = catalog.manifest_path(dump)
            if naming.is_backup_name(dump.name) and not dump.exists() and not manifest.exists():
                found.append(p.name)
        elif p.name.endswith(naming.MANIFEST_SUFFIX):
            dump = p.with_name(p.name[: -len(naming.MANIFEST_SUFFIX)])
            if naming.is_backup_name(dump.name) and not dump.exists():
                m = catalog.load_manifest(dump)
                # Only this stack's: the other stack's prune judges its own.
                if m is not None and m.stack == settings.stack:
                    found.append(p.name)
                    record = catalog.verify_path(dump)
                    if record.exists():
                        found.append(record.name)
    return tuple(found)


def delete_local(settings: Settings, plan: ScopePlan, step: Step = _quiet) -> ScopeResult:
    folder = settings.backup_dir
    deleted: list[str] = []
    removed: list[str] = []
    for item in plan.doomed:
        dump = folder / item.name
        step(f"deleting {item.name}")
        # Dump first: from then on nothing restorable is left, only an orphan manifest.
        for path in (dump, catalog.manifest_path(dump), catalog.verify_path(dump)):
            _unlink(path, deleted, folder)
        deleted.append(item.name)
        log.info(f"pruned {item.name}")
    for name in plan.leftovers:
        _unlink(folder / name, deleted, folder)
        removed.append(name)
    if deleted or removed:
        with contextlib.suppress(OSError):
            fsio.fsync_dir(folder)
    return ScopeResult(plan, tuple(deleted), tuple(removed))


def _unlink(path: Path, done: list[str], folder: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise RecoverctlError(
            f"Could not delete {path.name} in {folder}: {exc.strerror or exc}"
            + (f"; already deleted: {', '.join(done)}" if done else "; nothing was deleted")
            + ".",
            "Check the folder's owner and permissions, then prune again: it finishes what "
            "was left half-deleted.",
            code=ErrorCode.WRITE_FAILED,
        ) from None


# --- targets -----------------------------------------------------------------------------


def target_names(settings: Settings, target: str | None, all_targets: bool) -> tuple[str, ...]:
    if target is not None:
        if target not in settings.targets:
            raise offsite_service.unknown_target(settings, target)
        return (target,)
    if all_targets:
        if not settings.targets:
            raise UsageError(
                "--all-targets: no target is configured.",
                "Add [targets.NAME] tables to the settings file, or prune the local folder.",
            )
        return tuple(sorted(settings.targets))
    return ()


def _open(settings: Settings, name: str) -> Any:
    """Target NAME, seen through this project's and stack's namespace only."""
    from recoverctl.adapters.targets import open_target

    who = offsite_service.owner_of(settings)
    return open_target(name, settings.targets[name], who.namespace)


def plan_target(
    settings: Settings,
    name: str,
    *,
    tz: tzinfo | None = None,
    opener: Callable[..., Any] = _open,
    owner: offsite.Owner | None = None,
) -> ScopePlan:
    """The complete copies of this stack's backups on a target: those in its namespace
    whose remote manifest names this project and stack (another's are never judged, so
    never deleted). How a copy was verified is known from the local folder: a copy whose
    local backup is gone counts as never verified (pruning keeps the newest copies
    verified ones)."""
    who = owner or offsite_service.owner_of(settings)
    with opener(settings, name) as target:
        listing = offsite_service.judge(target, who)
        label = str(target.label)
    backups: list[core.Backup] = []
    sizes: dict[str, int] = {}
    for remote in listing.complete:
        local = settings.backup_dir / remote.backup
        m = catalog.load_manifest(local) if local.is_file() else None
        mine = m is not None and (m.project, m.stack) == (who.project, who.stack)
        state, _ = verify_state(catalog.load_record(local)) if mine else ("never", None)
        created = remote.created_at or naming.parse_backup_name(remote.backup)
        if created is None:
            continue
        backups.append(core.Backup(remote.backup, created, state))
        sizes[remote.backup] = remote.stored_size
    result = core.plan(backups, _policy(settings), tz=tz)
    return ScopePlan(name, label, result.policy.describe(), _items(result, sizes))


def delete_target(
    settings: Settings,
    plan: ScopePlan,
    step: Step = _quiet,
    *,
    opener: Callable[..., Any] = _open,
    owner: offsite.Owner | None = None,
) -> ScopeResult:
    deleted: list[str] = []
    doomed = {i.name for i in plan.doomed}
    if not doomed:
        return ScopeResult(plan, (), ())
    who = owner or offsite_service.owner_of(settings)
    with opener(settings, plan.where) as target:
        listing = offsite_service.judge(target, who)
        for remote in listing.complete:
            if remote.backup not in doomed:
                continue
            step(f"deleting {remote.backup} on target {plan.where}")
            assert remote.manifest is not None
            marker = remote.manifest.expected_names().remote_manifest
            # The marker first: from then on the rest is an incomplete upload, never a copy.
            target.delete(marker)
            for obj in remote.objects:
                if obj.name != marker:
                    target.delete(obj.name)
            deleted.append(remote.backup)
    return ScopeResult(plan, tuple(deleted), ())

