"""Reading a target: its objects judged for one project and stack (whose copies are whole,
which are another's), and a backup's name or `latest` resolved to a complete copy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from recoverctl.core import naming
from recoverctl.core.offsite import (
    Listing,
    ObjectInfo,
    Owner,
    RemoteBackup,
    RemoteManifest,
    backup_of,
    classify,
    remote_manifest_names,
)
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.services.offsite.lookup import encryption_of, open_target, owner
from recoverctl.services.offsite.manifests import read_remote_manifest
from recoverctl.services.offsite.results import TargetListing
from recoverctl.services.session import StackSession

if TYPE_CHECKING:
    from recoverctl.adapters.targets import Target

LATEST = "latest"


def judge(
    target: Target,
    who: Owner,
    prefix: str = "",
    *,
    only: str | None = None,
    objects: Sequence[ObjectInfo] | None = None,
) -> Listing:
    """The target's objects (under prefix, or those given), classified for `who`: a copy
    whose remote manifest names another project or stack is in `others`, never ours.
    Remote manifests are fetched for every backup, or for `only` alone (then the others'
    completeness is not judged)."""
    listing = target.list(prefix) if objects is None else list(objects)
    manifests: dict[str, RemoteManifest | None] = {}
    for name in remote_manifest_names(listing):
        if only is not None and backup_of(name) != only:
            continue
        manifests[name] = read_remote_manifest(target, name)
    return classify(listing, manifests, owner=who)


def list_target(session: StackSession, name: str) -> TargetListing:
    """What the target holds, each backup complete or not; no identity needed."""
    target = open_target(session, name)
    return TargetListing(name, target.location, encryption_of(session, name),
                         judge(target, owner(session)))  # fmt: skip


def resolve_remote(target: Target, name: str, who: Owner) -> RemoteBackup:
    """NAME (a backup's file name, a path ending in one, or one of its object names) or
    `latest` (the newest complete copy of who's backups): a complete copy, or an error
    saying why not. A copy of another project or stack is never one."""
    if name == LATEST:
        # Newest first, each remote manifest read only when the newer ones were not whole:
        # one GET, not one per backup the target holds.
        objects = target.list()
        unjudged = classify(objects, {})
        for candidate in unjudged.backups:
            mine = [o for o in objects if backup_of(o.name) == candidate.backup]
            found = judge(target, who, objects=mine).find(candidate.backup)
            if found is not None and found.complete:
                return found
        raise RecoverctlError(
            f"{target.label}: holds no complete backup"
            + (f" ({len(unjudged.backups)} incomplete)." if unjudged.backups else "."),
            f"Push one: recoverctl push latest --target {target.name}",
            code=ErrorCode.OBJECT_NOT_FOUND,
        )
    backup = backup_of(Path(name).name)
    if not naming.is_backup_name(backup):
        raise RecoverctlError(
            f"{name!r} is not a backup's name (backup_YYYY-MM-DD_HHMMSS.dump or .sql).",
            f"List what the target holds: recoverctl list --target {target.name}",
            code=ErrorCode.USAGE,
        )
    judged = judge(target, who, backup, only=backup)
    found = judged.find(backup)
    if found is None:
        theirs = next((b for b in judged.others if b.backup == backup), None)
        if theirs is not None and theirs.manifest is not None:
            raise target.error(
                ErrorCode.OBJECT_NOT_FOUND,
                f"the copy of {backup} there is {theirs.manifest.owner}'s, not {who}'s.",
                f"List this stack's copies: recoverctl list --target {target.name}",
            )
        raise target.error(
            ErrorCode.OBJECT_NOT_FOUND,
            f"no copy of {backup}.",
            f"List what it holds: recoverctl list --target {target.name}",
        )
    if not found.complete:
        raise target.error(
            ErrorCode.OBJECT_CORRUPT,
            f"the copy of {backup} is incomplete ({'; '.join(found.problems)}): "
            "it is never restored.",
            f"Push it again (recoverctl push {backup} --target {target.name}), or use "
            "another copy.",
        )
    return found
