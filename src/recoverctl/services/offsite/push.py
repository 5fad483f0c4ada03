"""Push: a local backup to the configured targets, each copy sealed to [encryption]'s
recipients as it streams (upload.py: the data, then the sealed local manifest, then the
remote manifest LAST, the commit marker). A push never writes over a complete copy: it
removes that copy's remote manifest first (then the copy is an incomplete one), so no state
in between looks whole. What crashed uploads left is removed only inside our namespace,
and only when older than CRASHED_GRACE (another machine's push of the same stack may be on
its way).

Callers hold the project lock (fsio.project_lock): it keeps two pushes of this stack on
this machine apart.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from recoverctl import __version__, failpoints
from recoverctl.adapters import fsio, seal
from recoverctl.core.manifest import Manifest
from recoverctl.core.offsite import (
    CRASHED_GRACE,
    REMOTE_MANIFEST_SUFFIX,
    Encryption,
    ObjectInfo,
    Owner,
    RemoteBackup,
    StoredObject,
    backup_of,
    classify,
    new_remote_manifest,
    object_names,
)
from recoverctl.core.outside import MAX_JSON_BYTES
from recoverctl.core.progress import OnBytes, Step
from recoverctl.errors import ErrorCode, Interrupted, RecoverctlError
from recoverctl.services import catalog
from recoverctl.services.offsite.listing import judge
from recoverctl.services.offsite.lookup import encryption_of, open_target, owner, target_names
from recoverctl.services.offsite.manifests import parse_manifest
from recoverctl.services.offsite.results import Copy, PushResult
from recoverctl.services.offsite.upload import Upload, check_stored, committing
from recoverctl.services.session import StackSession

if TYPE_CHECKING:
    from recoverctl.adapters.targets import Target


def _quiet(_: object) -> None:
    return None


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
    manifest = parse_manifest(raw)
    if manifest is None:
        raise RecoverctlError(
            f"The manifest {manifest_file.name} is damaged: it cannot be pushed.",
            "Take a new backup: recoverctl backup",
            code=ErrorCode.MANIFEST_DAMAGED,
        )
    return manifest, raw


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
    the backup is removed first, as are the leftovers of crashed uploads. Every target is
    tried; one that failed is a failed copy in the result (`ok` false), which the caller
    reports with `failure` (exit 3): errors are raised only for what stops the whole push
    (another stack's backup, no target by that name). Ctrl-C and SIGTERM stop
    at once as Interrupted: what was uploaded has no remote manifest, so it is never taken
    for a copy, and the next push removes it.
    """
    names = target_names(session, targets)
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
    return PushResult(path, tuple(copies))


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
    encryption = encryption_of(session, name)
    backup = path.name
    names = object_names(backup, encryption)
    location = ""
    removed: list[str] = []

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
        with committing(target, removed) as upload:
            try:
                data = _upload_data(upload, names.data, path, manifest, keys, progress)
            except RecoverctlError:
                if restore_marker is not None and _unchanged(target, existing, names.data):
                    upload.keep(names.data)
                    with contextlib.suppress(RecoverctlError):
                        target.put(restore_marker[0], iter([restore_marker[1]]))
                        removed.remove(restore_marker[0])
                raise
            restore_marker = None
            sealed_manifest = seal.seal_bytes(manifest_raw, keys) if keys else manifest_raw
            info = upload.put(names.manifest, iter([sealed_manifest]))
            stored_manifest = StoredObject(
                name=names.manifest,
                size=info.size,
                sha256=hashlib.sha256(sealed_manifest).hexdigest(),
            )
            check_stored(target, names.manifest, info.size, len(sealed_manifest))
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
            marker = upload.commit(names.remote_manifest, remote.to_bytes())
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
    upload: Upload,
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
            info = upload.put(name, progress.watch(measured))
        sealed = stream.result
        plain_sha256, plain_size = sealed.plain_sha256, sealed.plain_size
    else:
        measured = Measured(_read_local(path))
        info = upload.put(name, progress.watch(measured))
        plain_sha256, plain_size = measured.sha256, measured.size
    if (plain_sha256, plain_size) != (manifest.sha256, manifest.size):
        raise RecoverctlError(
            f"{path.name} no longer matches its manifest ({plain_size} bytes read, the "
            f"manifest says {manifest.size}; or another sha256): it changed after the backup. "
            "Nothing was committed on the target.",
            f"Verify it (recoverctl verify {path.name}); take a new backup.",
            code=ErrorCode.BACKUP_CORRUPT,
        )
    check_stored(upload.target, name, info.size, measured.size)
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
