"""Off-site copies: push a local backup to the configured targets, list what a target holds,
check a sealed copy where it lies, and pull one back as an ordinary local backup.

Per backup and target (names in core/offsite.py): the sealed data first, then the sealed
local manifest, then the remote manifest LAST. The remote manifest is the commit marker:
until it is written nothing of the backup looks complete, whatever failed or was cut short
on the way. A push never writes over a complete copy: it removes that copy's remote manifest
first (then the copy is an incomplete one), so no state in between looks whole.

A pull is the mirror image: the sha256 of the sealed bytes is taken as they stream, the
plaintext goes to NAME.partial and gets its name only when the whole of it decrypted and
matched both manifests (adapters/seal.py:unseal). The local manifest is written first and
removed again if the data fails, as a backup's manifest is never left without its dump.

Each project and stack has its own namespace on a target (`PROJECT/STACK/` inside its path
or prefix, core/offsite.py), and every remote manifest records the project and stack: a
copy of another one is never listed, taken as latest, replaced or removed. What crashed
uploads left is removed only inside our namespace, and only when older than
CRASHED_GRACE (another machine's push of the same stack may be on its way).

Callers that push hold the project lock (fsio.project_lock): it keeps two pushes of this
stack on this machine apart.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from recoverctl import __version__, failpoints
from recoverctl.adapters import fsio, seal
from recoverctl.core import naming
from recoverctl.core.checks import FAIL, OK, WARN, Check, worst
from recoverctl.core.manifest import Manifest
from recoverctl.core.offsite import (
    CRASHED_GRACE,
    REMOTE_MANIFEST_SUFFIX,
    Encryption,
    Listing,
    ObjectInfo,
    Owner,
    RemoteBackup,
    RemoteManifest,
    StoredObject,
    backup_of,
    classify,
    new_remote_manifest,
    object_names,
    remote_manifest_names,
)
from recoverctl.core.outside import MAX_JSON_BYTES
from recoverctl.errors import ErrorCode, Interrupted, RecoverctlError
from recoverctl.services import catalog
from recoverctl.services.session import StackSession
from recoverctl.settings import Settings

if TYPE_CHECKING:
    from recoverctl.adapters.targets import Target

OnBytes = Callable[[int], None]
Step = Callable[[str], None]
CopyStatus = Literal["pushed", "present", "failed"]
LATEST = "latest"
PULL_DIR_PREFIX = ".pulled-"
MANIFEST_LIMIT = 16 << 20  # a local manifest is a few KiB: anything near this is not ours


def _quiet(_: object) -> None:
    return None


# --- what a push did -----------------------------------------------------------------------


@dataclass(frozen=True)
class Copy:
    """One backup on one target, after a push: pushed now, already there whole, or failed."""

    target: str
    location: str
    backup: str
    status: CopyStatus
    encryption: Encryption
    size: int = 0  # bytes stored on the target (its three objects)
    sha256: str | None = None  # of the data object as stored (sealed)
    seconds: float = 0.0
    removed: tuple[str, ...] = ()  # objects of incomplete copies removed on the way
    error: RecoverctlError | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "location": self.location,
            "backup": self.backup,
            "status": self.status,
            "encryption": self.encryption,
            "size": self.size,
            "sha256": self.sha256,
            "seconds": round(self.seconds, 2),
            "removed": list(self.removed),
            "error": None if self.error is None else self.error.brief(),
        }


@dataclass(frozen=True)
class PushResult:
    """A local backup pushed to targets: one Copy per target, in the order pushed."""

    backup: Path
    copies: tuple[Copy, ...]

    @property
    def ok(self) -> bool:
        return all(c.status != "failed" for c in self.copies)

    @property
    def failed(self) -> tuple[Copy, ...]:
        return tuple(c for c in self.copies if c.status == "failed")

    def to_json(self) -> dict[str, Any]:
        return {
            "backup": str(self.backup),
            "ok": self.ok,
            "copies": [c.to_json() for c in self.copies],
        }


class OffsiteFailed(RecoverctlError):
    """The local backup is good; copying it to a target failed (exit 3). `results` holds
    every push made before the failure was raised, failed copies included."""

    default_code = ErrorCode.OFFSITE_FAILED

    def __init__(self, message: str, hint: str | None, results: Sequence[PushResult]):
        super().__init__(message, hint)
        self.results = tuple(results)


def failure(results: Sequence[PushResult], *, local: str = "is good here") -> OffsiteFailed:
    """One error for every failed copy: names the backup, each target and its cause."""
    failed = [c for r in results for c in r.failed]
    assert failed, "no failed copy to report"
    first = failed[0]
    assert first.error is not None
    backups = sorted({c.backup for c in failed})
    what = backups[0] if len(backups) == 1 else f"{len(backups)} backups"
    if len(failed) == 1:
        message = f"{what} {local}, but copying it off-site failed: {first.error.message}"
        hint = first.error.hint
    else:
        targets = sorted({c.target for c in failed})
        causes = "; ".join(
            f"{c.target}: {c.error.message if c.error else '?'}" for c in failed[:3]
        ) + (" ..." if len(failed) > 3 else "")
        message = (
            f"{what} {local}, but {len(failed)} copies to target "
            f"{', '.join(targets)} failed: {causes}"
        )
        hint = first.error.hint
    retry = "push again once fixed: recoverctl push " + (
        "--missing" if len(backups) > 1 else backups[0]
    )
    return OffsiteFailed(
        " ".join(message.split()),
        (hint + " " if hint else "") + f"The local backup stays; {retry}.",
        results,
    )


# --- targets by name -----------------------------------------------------------------------


def target_names(session: StackSession, names: Sequence[str] | None = None) -> list[str]:
    """The targets named (each must be configured), or every configured one, in order."""
    configured = session.settings.targets
    if names is None:
        return sorted(configured)
    unknown = [n for n in names if n not in configured]
    if unknown:
        raise unknown_target(session, unknown[0])
    return list(dict.fromkeys(names))


def unknown_target(session: StackSession | Settings, name: str) -> RecoverctlError:
    settings = session.settings if isinstance(session, StackSession) else session
    known = ", ".join(sorted(settings.targets)) or "none is configured"
    return RecoverctlError(
        f"No target {name!r} in the settings.",
        f"Targets: {known} ([targets.NAME] in the settings file; README: Off-site copies).",
        code=ErrorCode.TARGET_NOT_FOUND,
    )


def _encryption(session: StackSession, name: str) -> Encryption:
    return session.settings.targets[name].encryption


def owner(session: StackSession) -> Owner:
    """Whose copies this session pushes and reads: its compose project and stack."""
    return Owner(session.project, session.settings.stack)


def owner_of(settings: Settings) -> Owner:
    """owner(), from the settings alone (reads the compose file for the project's name)."""
    from recoverctl.adapters import files
    from recoverctl.settings import project_name

    return Owner(project_name(settings, files.load_compose(settings)), settings.stack)


def open_target(session: StackSession, name: str) -> Target:
    """Target NAME, seen through this project's and stack's namespace only."""
    if name not in session.settings.targets:
        raise unknown_target(session, name)
    return session.target(name, owner(session).namespace)


# --- reading a target ----------------------------------------------------------------------


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


def read_remote_manifest(target: Target, name: str) -> RemoteManifest | None:
    """A remote manifest, or None when it cannot be read as one (a damaged object, or one
    written by a newer recoverctl): that backup is then incomplete, never a copy."""
    raw = b"".join(_limited(target.get(name), MANIFEST_LIMIT))
    try:
        return RemoteManifest.from_bytes(raw, where=target.label)
    except RecoverctlError as exc:
        if exc.code is not ErrorCode.MANIFEST_DAMAGED:
            raise
        return None


def _limited(chunks: Iterator[bytes], limit: int) -> Iterator[bytes]:
    seen = 0
    for chunk in chunks:
        seen += len(chunk)
        if seen > limit:
            return  # cut: parses as damaged, never read whole into memory
        yield chunk


@dataclass(frozen=True)
class TargetListing:
    """`list --target`: what a target holds, judged."""

    target: str
    location: str
    encryption: Encryption
    listing: Listing
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "location": self.location,
            "encryption": self.encryption,
            "backups": [_remote_json(b) for b in self.listing.backups],
            "foreign": [o.name for o in self.listing.foreign],
            "others": [_remote_json(b) for b in self.listing.others],
        }


def _remote_json(b: RemoteBackup) -> dict[str, Any]:
    m = b.manifest
    created = b.created_at or naming.parse_backup_name(b.backup)
    return {
        "name": b.backup,
        "complete": b.complete,
        "created": created.isoformat() if created else None,
        "uploaded": m.uploaded_at.isoformat() if m else None,
        "size": b.stored_size,
        "plain_size": m.plain_size if m else None,
        "format": m.format if m else None,
        "encryption": m.encryption if m else None,
        "objects": [o.name for o in b.objects],
        "problems": list(b.problems),
    }


def list_target(session: StackSession, name: str) -> TargetListing:
    """What the target holds, each backup complete or not; no identity needed."""
    target = open_target(session, name)
    return TargetListing(name, target.location, _encryption(session, name),
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


# --- push ----------------------------------------------------------------------------------


def local_backup(path: Path) -> tuple[Manifest, bytes]:
    """A local backup's manifest, parsed and as its bytes: only a backup recoverctl made,
    whose manifest says what it holds, is pushed."""
    if not path.is_file():
        raise RecoverctlError(
            f"No backup at {path}.",
            "Check the path; `recoverctl list` shows the backups.",
            code=ErrorCode.BACKUP_NOT_FOUND,
        )
    manifest_file = catalog.manifest_path(path)
    try:
        raw = fsio.read_bounded(manifest_file, MAX_JSON_BYTES)
    except FileNotFoundError:
        raise RecoverctlError(
            f"{path.name} has no manifest beside it ({manifest_file.name}): only backups "
            "made by recoverctl backup are pushed.",
            "Take a new backup: recoverctl backup",
            code=ErrorCode.MANIFEST_DAMAGED,
        ) from None
    except (OSError, ValueError) as exc:
        raise RecoverctlError(
            f"Cannot read {manifest_file}: {getattr(exc, 'strerror', None) or exc}.",
            "Check the file, then try again.",
            code=ErrorCode.MANIFEST_DAMAGED,
        ) from None
    manifest = _manifest(raw)
    if manifest is None:
        raise RecoverctlError(
            f"The manifest {manifest_file.name} is damaged: it cannot be pushed.",
            "Take a new backup: recoverctl backup",
            code=ErrorCode.MANIFEST_DAMAGED,
        )
    return manifest, raw


def _manifest(raw: bytes) -> Manifest | None:
    """A local backup's manifest, or None when the bytes are not one."""
    try:
        return Manifest.model_validate_json(raw)
    except (ValidationError, ValueError):
        return None


def push_backup(
    session: StackSession,
    path: Path,
    *,
    targets: Sequence[str] | None = None,
    step: Step = _quiet,
    on_bytes: OnBytes | None = None,
    replace: bool = False,
) -> PushResult:
    """Copies a local backup to every configured target (or those named).

    Sealed to [encryption] recipients (a target in clear only with encryption = "none"):
    the data, then the local manifest, then the remote manifest. A target that already
    holds a complete copy is left as it is ("present"; its bytes are not read back: with
    replace, a copy verify --target found damaged is uploaded again); an incomplete copy of
    the backup is removed first, as are the leftovers of crashed uploads. Every target is tried; when one
    failed, OffsiteFailed (exit 3) is raised, carrying the result. Ctrl-C and SIGTERM stop
    at once as Interrupted: what was uploaded has no remote manifest, so it is never taken
    for a copy, and the next push removes it.
    """
    names = target_names(session, targets)
    if not names:
        raise RecoverctlError(
            "No off-site target is configured.",
            "Add a [targets.NAME] table to the settings file (README: Off-site copies).",
            code=ErrorCode.TARGET_NOT_FOUND,
        )
    manifest, manifest_raw = local_backup(path)
    who = owner(session)
    if (manifest.project, manifest.stack) != (who.project, who.stack):
        raise RecoverctlError(
            f"{path.name} is a backup of {manifest.project} {manifest.stack}, not of "
            f"{who}: it is pushed by its own stack, into that stack's place on the targets.",
            "Push it with its own stack"
            + (" (--prod)." if manifest.stack == "prod" else " (without --prod)."),
            code=ErrorCode.OTHER_STACK,
        )
    recipients = _Recipients(session)
    progress = _Progress(on_bytes)
    copies: list[Copy] = []
    for name in names:
        step(f"pushing {path.name} to target {name}")
        try:
            copies.append(_push_one(session, name, path, manifest, manifest_raw, recipients,
                                    progress, replace, who))  # fmt: skip
        except KeyboardInterrupt:
            raise Interrupted(
                f"Push of {path.name} to target {name} interrupted: nothing there looks like "
                "a complete copy (the remote manifest, written last, is not there).",
                "Push again when ready (recoverctl push --missing); it removes what this one "
                "left. The local backup was not touched.",
            ) from None
    result = PushResult(path, tuple(copies))
    if not result.ok:
        raise failure([result])
    return result


class _Recipients:
    """[encryption]'s recipients, read once per push (a recipients file may be slow)."""

    def __init__(self, session: StackSession):
        self._session = session
        self._loaded: list[seal.Recipient] | RecoverctlError | None = None

    def get(self) -> list[seal.Recipient]:
        if self._loaded is None:
            try:
                self._loaded = seal.load_recipients(self._session.settings.encryption)
            except RecoverctlError as exc:
                self._loaded = exc
        if isinstance(self._loaded, RecoverctlError):
            raise self._loaded
        return self._loaded


class _Progress:
    """Bytes uploaded by every push of a command, as one growing count. It wraps what the
    target reads, in this (the main) thread: the sealing runs in a thread of its own, and
    only the main thread sees Ctrl-C and SIGTERM."""

    def __init__(self, on_bytes: OnBytes | None):
        self.on_bytes = on_bytes
        self.done = 0

    def watch(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            self.done += len(chunk)
            if self.on_bytes is not None:
                self.on_bytes(self.done)
            failpoints.reach("push.uploading")
            yield chunk


def _push_one(
    session: StackSession,
    name: str,
    path: Path,
    manifest: Manifest,
    manifest_raw: bytes,
    recipients: _Recipients,
    progress: _Progress,
    replace: bool,
    who: Owner,
) -> Copy:
    started = time.monotonic()
    encryption = _encryption(session, name)
    backup = path.name
    names = object_names(backup, encryption)
    location = ""
    removed: list[str] = []
    uploaded: list[str] = []

    def failed(exc: RecoverctlError) -> Copy:
        return Copy(name, location, backup, "failed", encryption,
                    seconds=time.monotonic() - started, removed=tuple(removed), error=exc)  # fmt: skip

    try:
        target = open_target(session, name)
        location = target.location
        keys = recipients.get() if encryption == "age" else []
        objects = target.list()  # once: what crashed and what is there of this backup
        removed += _remove_crashed(target, objects, keep=backup)
        mine = [o for o in objects if backup_of(o.name) == backup]
        judged = judge(target, who, objects=mine)
        theirs = next((b for b in judged.others if b.backup == backup), None)
        if theirs is not None and theirs.manifest is not None:
            raise target.error(
                ErrorCode.TARGET_FAILED,
                f"it holds a copy of {backup} that is {theirs.manifest.owner}'s, not "
                f"{who}'s: left as it is, and nothing was uploaded.",
                "Look at the target's folder: a copy was moved there by hand?",
            )
        existing = judged.find(backup)
        if (
            not replace
            and existing is not None
            and existing.complete
            and _same(existing, manifest, encryption, keys)
        ):
            for obj in existing.leftovers:
                target.delete(obj.name)
                removed.append(obj.name)
            return Copy(name, location, backup, "present", encryption, existing.stored_size,
                        existing.manifest.data.sha256 if existing.manifest else None,
                        time.monotonic() - started, tuple(removed))  # fmt: skip
        # A complete copy under other names (the target's encryption changed) stays whole
        # until the new one is committed. Under the same names (new recipients, --replace)
        # its marker goes first, as no object is ever written over a complete copy's; it is
        # put back if the upload fails before the old data object was replaced.
        keep_old: RemoteBackup | None = None
        restore_marker: tuple[str, bytes] | None = None
        if existing is not None:
            same_names = {o.name for o in existing.objects} & set(names.all())
            if existing.complete and not same_names:
                keep_old = existing
            elif existing.complete and existing.manifest is not None:
                marker_name = existing.manifest.expected_names().remote_manifest
                restore_marker = (marker_name, existing.manifest.to_bytes())
                stale = [o for o in existing.objects if o.name not in names.all()]
                removed += _remove(target, [marker_name, *(o.name for o in stale)])
            else:
                removed += _remove(target, existing.objects)
        try:
            uploaded.append(names.data)  # before: it may be stored when the check fails
            try:
                data = _upload_data(target, names.data, path, manifest, keys, progress)
            except RecoverctlError:
                if restore_marker is not None and _unchanged(target, existing, names.data):
                    uploaded.remove(names.data)
                    with contextlib.suppress(RecoverctlError):
                        target.put(restore_marker[0], iter([restore_marker[1]]))
                        removed.remove(restore_marker[0])
                raise
            restore_marker = None
            sealed_manifest = seal.seal_bytes(manifest_raw, keys) if keys else manifest_raw
            uploaded.append(names.manifest)
            info = target.put(names.manifest, iter([sealed_manifest]))
            stored_manifest = StoredObject(
                name=names.manifest,
                size=info.size,
                sha256=hashlib.sha256(sealed_manifest).hexdigest(),
            )
            _check_stored(target, names.manifest, info.size, len(sealed_manifest))
            failpoints.reach("push.before-commit")
            remote = new_remote_manifest(
                backup=backup,
                fmt=manifest.format,
                created_at=manifest.started_at,
                plain_size=manifest.size,
                encryption=encryption,
                recipients=[r.text for r in keys],
                data=data,
                manifest=stored_manifest,
                recoverctl_version=__version__,
                owner=who,
            )
            marker = target.put(names.remote_manifest, iter([remote.to_bytes()]))
        except RecoverctlError as exc:
            if exc.code is not ErrorCode.TARGET_UNREACHABLE:
                # Not a copy without its marker anyway; tidied while the target answers.
                removed += _remove(target, uploaded, quiet=True)
            raise
        if keep_old is not None:
            # The new copy is committed: only now does the one it replaces go.
            removed += _remove(target, [o for o in keep_old.objects if o.name not in names.all()],
                               quiet=True)  # fmt: skip
        return Copy(name, location, backup, "pushed", encryption,
                    data.size + stored_manifest.size + marker.size, data.sha256,
                    time.monotonic() - started, tuple(removed))  # fmt: skip
    except RecoverctlError as exc:
        return failed(exc)
    except OSError as exc:  # not the target's (its adapters map theirs): this machine's
        return failed(_local_read_error(exc, path))


def _unchanged(target: Target, existing: RemoteBackup | None, name: str) -> bool:
    """The old copy's object `name` is still the one its manifest describes (a failed put
    never replaced it): same size and modification time as listed before."""
    if existing is None:
        return False
    before = next((o for o in existing.objects if o.name == name), None)
    try:
        now = target.stat(name)
    except RecoverctlError:
        return False
    return (
        before is not None
        and now is not None
        and (now.size, now.mtime) == (before.size, before.mtime)
    )


def _same(
    existing: RemoteBackup,
    manifest: Manifest,
    encryption: Encryption,
    recipients: Sequence[seal.Recipient],
) -> bool:
    """The copy there is this backup as a push now would store it: the same encryption,
    and, sealed, to the same recipients (after a key rotation it is sealed again)."""
    m = existing.manifest
    return (
        m is not None
        and m.encryption == encryption
        and m.plain_size == manifest.size
        and m.format == manifest.format
        and (encryption != "age" or set(m.recipients) == {r.text for r in recipients})
    )


def _remove(
    target: Target, objects: Iterable[ObjectInfo | str], *, quiet: bool = False
) -> list[str]:
    """Removes a backup's objects, its remote manifest first: from then on the rest is an
    incomplete upload, never a copy."""
    names = [o if isinstance(o, str) else o.name for o in objects]
    names.sort(key=lambda n: not n.endswith(REMOTE_MANIFEST_SUFFIX))
    done: list[str] = []
    for n in names:
        if quiet:
            with contextlib.suppress(RecoverctlError):
                target.delete(n)
                done.append(n)
        else:
            target.delete(n)
            done.append(n)
    return done


def _remove_crashed(
    target: Target, objects: list[ObjectInfo], *, keep: str, now: datetime | None = None
) -> list[str]:
    """What crashed pushes left in our namespace: S3's unfinished multipart uploads, and
    every backup with no remote manifest at all, when older than CRASHED_GRACE (a younger
    one may be a push of this stack from another machine, still on its way). A backup
    whose remote manifest exists but does not match, or names another stack, is left for a
    person to look at (list --target shows why); only its own push replaces it."""
    now = now or datetime.now(UTC)
    removed = [f"({count} unfinished upload{'s' if count > 1 else ''})"
               for count in [target.discard_unfinished(CRASHED_GRACE)] if count]  # fmt: skip
    for b in classify(objects, {}).backups:
        if b.backup == keep:
            continue
        if any(o.name.endswith(REMOTE_MANIFEST_SUFFIX) for o in b.objects):
            continue
        if all(now - o.mtime > CRASHED_GRACE for o in b.objects):
            removed += _remove(target, b.objects)
    return removed


def _upload_data(
    target: Target,
    name: str,
    path: Path,
    manifest: Manifest,
    recipients: Sequence[seal.Recipient],
    progress: _Progress,
) -> StoredObject:
    """The backup's bytes, sealed while they stream, never a sealed file on this disk. The
    plaintext read is hashed on the way: a file that no longer matches its manifest is
    never committed."""
    from recoverctl.adapters.targets import Measured

    if recipients:
        with seal.sealed_chunks(_read_local(path), recipients) as stream:
            measured = Measured(stream)
            info = target.put(name, progress.watch(measured))
        sealed = stream.result
        plain_sha256, plain_size = sealed.plain_sha256, sealed.plain_size
    else:
        measured = Measured(_read_local(path))
        info = target.put(name, progress.watch(measured))
        plain_sha256, plain_size = measured.sha256, measured.size
    if (plain_sha256, plain_size) != (manifest.sha256, manifest.size):
        raise RecoverctlError(
            f"{path.name} no longer matches its manifest ({plain_size} bytes read, the "
            f"manifest says {manifest.size}; or another sha256): it changed after the backup. "
            "Nothing was committed on the target.",
            f"Verify it (recoverctl verify {path.name}); take a new backup.",
            code=ErrorCode.BACKUP_CORRUPT,
        )
    _check_stored(target, name, info.size, measured.size)
    return StoredObject(name=name, size=measured.size, sha256=measured.sha256)


def _read_local(path: Path) -> Iterator[bytes]:
    """The local backup's bytes; a read error (EIO of a failing disk, the file gone) is a
    RecoverctlError wherever it surfaces, in the sealing thread or in the target's put."""
    try:
        # In the sealing's chunks: it holds two or three of them at once.
        yield from fsio.read_chunks(path, size=seal.STREAM_CHUNK)
    except OSError as exc:
        raise _local_read_error(exc, path) from None


def _local_read_error(exc: OSError, path: Path) -> RecoverctlError:
    return RecoverctlError(
        f"Cannot read the local backup {path.name}: {exc.strerror or exc}. Nothing was "
        "committed on the target.",
        f"Check the disk (dmesg), then verify it: recoverctl verify {path.name}",
        code=ErrorCode.BACKUP_CORRUPT,
    )


def _check_stored(target: Target, name: str, stored: int, sent: int) -> None:
    if stored != sent:
        raise target.error(
            ErrorCode.TARGET_FAILED,
            f"it stored {stored} bytes of the {sent} sent.",
            "Check the target's free space and health, then push again.",
            name=name,
        )


# --- checking a sealed copy where it lies --------------------------------------------------


@dataclass(frozen=True)
class SealedCheck:
    """`verify --target` without an identity: the copy's objects read back from the target
    and compared with what was uploaded (size and sha256), nothing decrypted."""

    target: str
    location: str
    backup: str
    checks: tuple[Check, ...]
    manifest: RemoteManifest | None
    seconds: float

    @property
    def ok(self) -> bool:
        return worst(self.checks) != FAIL


def check_sealed(
    session: StackSession, target_name: str, name: str, *, on_bytes: OnBytes | None = None
) -> SealedCheck:
    """Reads the copy's objects back and compares them with its remote manifest. Never
    raises for a bad copy (its checks say why); raises when the target cannot be read."""
    started = time.monotonic()
    target = open_target(session, target_name)
    checks: list[Check] = []
    try:
        remote = resolve_remote(target, name, owner(session))
    except RecoverctlError as exc:
        if exc.code is not ErrorCode.OBJECT_CORRUPT:
            raise
        backup = backup_of(Path(name).name)
        checks.append(Check("complete", FAIL, _cause(exc.message), exc.hint or ""))
        return SealedCheck(target_name, target.location, backup, tuple(checks), None,
                           time.monotonic() - started)  # fmt: skip
    m = remote.manifest
    assert m is not None
    checks.append(Check("complete", OK, f"remote manifest, {m.data.name} and {m.manifest.name} "
                        "are there, with the sizes it records"))  # fmt: skip
    done = 0
    for role, ref in (("data", m.data), ("manifest", m.manifest)):
        h = hashlib.sha256()
        size = 0
        for chunk in target.get(ref.name):
            h.update(chunk)
            size += len(chunk)
            done += len(chunk)
            if on_bytes is not None:
                on_bytes(done)
        if (size, h.hexdigest()) == (ref.size, ref.sha256):
            checks.append(Check(role, OK, f"{ref.name}: {size} bytes, sha256 {ref.sha256[:12]}…: "
                                "intact as uploaded (not opened)"))  # fmt: skip
        else:
            checks.append(Check(
                role, FAIL,
                f"{ref.name}: {size} bytes, sha256 {h.hexdigest()[:12]}…; uploaded were "
                f"{ref.size} bytes, sha256 {ref.sha256[:12]}…: damaged on the target",
                f"Replace it (recoverctl push {m.backup} --target {target_name} --replace) while "
                "the local backup exists; else use another copy.",
            ))  # fmt: skip
    if m.encryption == "age":
        checks.append(Check("encryption", OK, f"sealed with age to {len(m.recipients)} "
                            f"recipient{'s' if len(m.recipients) != 1 else ''}"))  # fmt: skip
        identity = session.settings.identity_file
        if identity is not None:
            checks.append(_opens_with(session, identity, m))
    else:
        checks.append(Check("encryption", WARN, "stored in clear (encryption = \"none\")",
                            f"Remove encryption = \"none\" from [targets.{target_name}]"))  # fmt: skip
    return SealedCheck(target_name, target.location, m.backup, tuple(checks), m,
                       time.monotonic() - started)  # fmt: skip


def _opens_with(session: StackSession, identity: Path, m: RemoteManifest) -> Check:
    """identity_file's public key is one the copy was sealed to (else the day it is needed,
    that key does not open it)."""
    try:
        keys = _identities(session, identity) or []
    except RecoverctlError as exc:
        return Check("identity", FAIL, _cause(exc.message), exc.hint or "")
    if any(k.recipient in m.recipients for k in keys):
        return Check("identity", OK, f"identity_file {identity} is one of its recipients")
    return Check(
        "identity",
        FAIL,
        f"identity_file {identity} ({', '.join(k.recipient for k in keys)}) is not one of "
        f"its recipients ({', '.join(m.recipients)}): that key cannot open it",
        f"Push it again to the current recipients (recoverctl push {m.backup} --target "
        "NAME --replace), or set identity_file to the key it was sealed to.",
    )


def _cause(message: str) -> str:
    # "target nas (/x): the copy of B is incomplete (...)": the part after the label.
    return " ".join(message.split(": ", 1)[-1].split())


# --- pull ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pulled:
    """A copy brought back: an ordinary local backup and its manifest."""

    target: str
    location: str
    path: Path
    manifest_path: Path
    manifest: Manifest
    remote: RemoteManifest
    seconds: float

    def to_json(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "target": self.target,
            "location": self.location,
            "backup": self.path.name,
            "path": str(self.path),
            "manifest": str(self.manifest_path),
            "sha256": m.sha256,
            "size": m.size,
            "format": m.format,
            "stack": m.stack,
            "created": m.started_at.isoformat(),
            "encryption": self.remote.encryption,
            "sealed_sha256": self.remote.data.sha256,
            "seconds": round(self.seconds, 2),
        }


def pull_backup(
    session: StackSession, target: str, name: str, identity: Path | None, dest_dir: Path
) -> Path:
    """NAME or `latest` from the target into dest_dir, as an ordinary local backup with its
    manifest; returns the backup's path. See `pull`."""
    return pull(session, target, name, identity, dest_dir).path


def pull(
    session: StackSession,
    target_name: str,
    name: str,
    identity: Path | None,
    dest_dir: Path,
    *,
    on_bytes: OnBytes | None = None,
) -> Pulled:
    """Downloads a complete copy, checks the sealed bytes' sha256 as they stream, decrypts
    to NAME.partial and renames it only when whole and matching both manifests. Never
    writes over a file in dest_dir. identity may be None only for a copy in clear."""
    started = time.monotonic()
    target, identities, remote = _source(session, target_name, name, identity)
    return _pull(target, remote, identities, dest_dir, started, on_bytes)


def _source(
    session: StackSession, target_name: str, name: str, identity: Path | None
) -> tuple[Target, list[seal.Identity] | None, RemoteBackup]:
    """What a pull reads: the target (ours only), the identity loaded, the copy found."""
    target = open_target(session, target_name)
    identities = _identities(session, identity)
    return target, identities, resolve_remote(target, name, owner(session))


def _identities(session: StackSession, identity: Path | None) -> list[seal.Identity] | None:
    if identity is None:
        return None
    return seal.load_identity(identity, project_dir=session.settings.project_dir)


def _pull(
    target: Target,
    remote: RemoteBackup,
    identities: list[seal.Identity] | None,
    dest_dir: Path,
    started: float,
    on_bytes: OnBytes | None,
) -> Pulled:
    m = remote.manifest
    assert m is not None and remote.complete
    if m.encryption == "age" and identities is None:
        raise RecoverctlError(
            f"{m.backup} on target {target.name} is sealed with age: opening it needs the "
            "private key.",
            "Pass --identity FILE (or set RECOVERCTL_IDENTITY_FILE): the identity whose "
            f"public key is one of {', '.join(m.recipients) or 'the recipients'}.",
            code=ErrorCode.IDENTITY_INVALID,
        )
    _output_dir(dest_dir)
    dest = dest_dir / m.backup
    manifest_dest = catalog.manifest_path(dest)
    for existing in (dest, manifest_dest):
        if existing.exists() or existing.is_symlink():
            raise RecoverctlError(
                f"{existing} already exists: a pull never writes over a local file.",
                f"Verify the local copy (recoverctl verify {dest}), or pull into another "
                "folder (--output-dir DIR).",
                code=ErrorCode.FILE_EXISTS,
            )
    where = f"{m.manifest.name} on target {target.name}"
    try:
        raw = _fetch_manifest(target, m, identities, where)
        local = _parse_local_manifest(raw, m, where)
        try:
            fsio.write_atomic(manifest_dest, raw)
        except OSError as exc:
            raise _write_error(exc, manifest_dest) from None
        try:
            _fetch_data(target, m, local, identities, dest, on_bytes)
        except BaseException:
            fsio.remove_quietly(manifest_dest)
            raise
    except KeyboardInterrupt:
        raise Interrupted(
            f"Pull of {m.backup} from target {target.name} interrupted: nothing was kept "
            f"in {dest_dir}.",
            "Pull again when ready.",
        ) from None
    return Pulled(target.name, target.location, dest, manifest_dest, local, m,
                  time.monotonic() - started)  # fmt: skip


class _Hashed:
    """Chunks passed through, hashed and counted: what was downloaded, checked at the end."""

    def __init__(self, chunks: Iterable[bytes], on_bytes: OnBytes | None = None):
        self._chunks = chunks
        self._hash = hashlib.sha256()
        self.size = 0
        self._on_bytes = on_bytes

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self._hash.update(chunk)
            self.size += len(chunk)
            if self._on_bytes is not None:
                self._on_bytes(self.size)
            failpoints.reach("pull.downloading")
            yield chunk

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


def _fetch_manifest(
    target: Target, m: RemoteManifest, identities: list[seal.Identity] | None, where: str
) -> bytes:
    # Small: read whole and checked first, so a damaged object is told as damaged, never
    # as a wrong key.
    got = _Hashed(target.get(m.manifest.name))
    raw = b"".join(_limited(iter(got), MANIFEST_LIMIT))
    if (got.size, got.sha256) != (m.manifest.size, m.manifest.sha256):
        raise _damaged(where, got.size, m.manifest)
    if identities is not None and m.encryption == "age":
        return seal.unseal_bytes(iter([raw]), identities, where=where, limit=MANIFEST_LIMIT)
    return raw


def _damaged(where: str, size: int, ref: StoredObject) -> RecoverctlError:
    return RecoverctlError(
        f"{where} is damaged: "
        + (
            f"it has {size} bytes, {ref.size} were uploaded"
            if size != ref.size
            else "its sha256 differs from the one recorded at upload"
        )
        + "; nothing was kept.",
        "Fetch it again; if it stays damaged, use another copy (another target or backup).",
        code=ErrorCode.OBJECT_CORRUPT,
    )


def _parse_local_manifest(raw: bytes, m: RemoteManifest, where: str) -> Manifest:
    local = _manifest(raw)
    if local is None:
        raise RecoverctlError(
            f"{where} does not hold a backup manifest; nothing was kept.",
            "Use another copy (another target or backup).",
            code=ErrorCode.MANIFEST_DAMAGED,
        )
    if (local.file, local.size, local.format) != (m.backup, m.plain_size, m.format):
        raise RecoverctlError(
            f"{where} describes {local.file} ({local.size} bytes, {local.format}), not "
            f"{m.backup} ({m.plain_size} bytes, {m.format}); nothing was kept.",
            "Use another copy (another target or backup).",
            code=ErrorCode.MANIFEST_DAMAGED,
        )
    return local


def _fetch_data(
    target: Target,
    m: RemoteManifest,
    local: Manifest,
    identities: list[seal.Identity] | None,
    dest: Path,
    on_bytes: OnBytes | None,
) -> None:
    where = f"{m.data.name} on target {target.name}"
    got = _Hashed(target.get(m.data.name), on_bytes)
    if identities is not None and m.encryption == "age":
        try:
            seal.unseal(
                got,
                dest,
                identities,
                expect_sha256=m.data.sha256,
                expect_size=m.data.size,
                expect_plain_sha256=local.sha256,
                expect_plain_size=local.size,
                where=where,
            )
        except RecoverctlError as exc:
            # The manifest just opened with this identity: a data object that "is for other
            # recipients" has a damaged header, not a wrong key.
            if exc.code is ErrorCode.DECRYPT_FAILED:
                raise RecoverctlError(
                    f"{where} is damaged: its header does not open with the identity that "
                    "opened its manifest; nothing was kept.",
                    "Use another copy (another target or backup).",
                    code=ErrorCode.OBJECT_CORRUPT,
                ) from None
            raise
        return
    # In clear: the stored bytes are the backup's. The same rule: a partial, renamed only
    # when whole and matching.
    fsio.remove_quietly(dest.with_name(dest.name + ".partial"))
    try:
        partial, f = fsio.open_partial(dest)
    except OSError as exc:
        raise _write_error(exc, dest) from None
    try:
        try:
            for chunk in got:
                try:
                    f.write(chunk)
                except OSError as exc:
                    raise _write_error(exc, dest) from None
            try:
                f.flush()
                os.fsync(f.fileno())
                f.close()
            except OSError as exc:
                raise _write_error(exc, dest) from None
        finally:
            # On a full disk, closing fails again: never in place of the error on its way.
            with contextlib.suppress(OSError):
                f.close()
        if (got.size, got.sha256) != (m.data.size, m.data.sha256):
            raise _damaged(where, got.size, m.data)
        if (got.size, got.sha256) != (local.size, local.sha256):
            raise RecoverctlError(
                f"{where} differs from the backup its manifest describes; nothing was kept.",
                "Use another copy (another target or backup).",
                code=ErrorCode.OBJECT_CORRUPT,
            )
        fsio.publish(partial, dest)
    except BaseException:
        fsio.remove_quietly(partial)
        raise


def _output_dir(folder: Path) -> None:
    """The folder a pull writes into, made private if new; its failure is told, not a
    traceback (a path under a file, no permission, a read-only disk)."""
    try:
        fsio.ensure_private_dir(folder)
    except OSError as exc:
        code = (
            ErrorCode.DISK_FULL
            if exc.errno in (errno.ENOSPC, errno.EDQUOT)
            else ErrorCode.WRITE_FAILED
        )
        raise RecoverctlError(
            f"Cannot use {folder} as the folder to pull into: {exc.strerror or exc}; nothing "
            "was fetched.",
            "Check the path and its permissions, or pull into another folder (--output-dir DIR).",
            code=code,
        ) from None


def _write_error(exc: OSError, path: Path) -> RecoverctlError:
    return seal.write_error(
        exc,
        path,
        kept="nothing was kept",
        full_hint="Free space there, or pull into another folder (--output-dir DIR).",
        hint="Check the folder, or pull into another one (--output-dir DIR).",
    )


def fetch(
    session: StackSession,
    target_name: str,
    name: str,
    identity: Path | None,
    *,
    on_bytes: OnBytes | None = None,
) -> Path:
    """A copy from the target as a local backup file, for restore, recover and verify.

    Into the backups folder when no file there has its name (it stays, an ordinary local
    backup: on a machine that lost everything, the first one again); otherwise into a
    private folder beside it that the session removes when the command ends, so a local
    file of that name is never replaced, nor trusted instead."""
    started = time.monotonic()
    target, identities, remote = _source(session, target_name, name, identity)
    folder = session.settings.backup_dir
    _output_dir(folder)
    taken = (folder / remote.backup, catalog.manifest_path(folder / remote.backup))
    if any(p.exists() or p.is_symlink() for p in taken):
        folder = Path(tempfile.mkdtemp(prefix=PULL_DIR_PREFIX, dir=folder))
        session.on_close(lambda: shutil.rmtree(folder, ignore_errors=True))
    return _pull(target, remote, identities, folder, started, on_bytes).path


def scratch_dir(session: StackSession) -> Path:
    """A private folder beside the backups, removed when the command ends."""
    fsio.ensure_private_dir(session.settings.backup_dir)
    folder = Path(tempfile.mkdtemp(prefix=PULL_DIR_PREFIX, dir=session.settings.backup_dir))
    session.on_close(lambda: shutil.rmtree(folder, ignore_errors=True))
    return folder


def check_source(session: StackSession, target_name: str, identity: Path | None) -> None:
    """Before a recovery from a target starts anything: the target is configured and
    answers, and the identity (needed unless the target is in clear) loads."""
    target = open_target(session, target_name)
    if identity is not None:
        _identities(session, identity)
    elif _encryption(session, target_name) == "age":
        raise RecoverctlError(
            f"Copies on target {target_name} are sealed with age: recovering from them needs "
            "the private key.",
            "Pass --identity FILE (or set RECOVERCTL_IDENTITY_FILE): the identity made by "
            "recoverctl keys new-identity, kept with the browser key export.",
            code=ErrorCode.IDENTITY_INVALID,
        )
    target.check()


def prewarm(session: StackSession) -> Callable[[], None]:
    """Opens the S3 targets in a thread (importing boto3 and making its client take about a
    quarter of a second) while the caller does something else, such as backup's dump.
    Returns the function that waits for it: the session's targets are touched by no other
    thread before it returns. A failure here is left for the push itself to report."""
    names = [n for n, t in session.settings.targets.items() if t.type == "s3"]
    if not names:
        return lambda: None
    try:
        namespace = owner(session).namespace  # here: the thread never touches the session's
    except RecoverctlError:
        return lambda: None  # the push says why

    def warm() -> None:
        for name in names:
            with contextlib.suppress(Exception):
                getattr(session.target(name, namespace), "client", None)

    thread = threading.Thread(target=warm, name="recoverctl-prewarm", daemon=True)
    thread.start()
    return thread.join
