"""Pull: a complete copy from a target back as an ordinary local backup and its manifest.

The sha256 of the sealed bytes is taken as they stream, the plaintext goes to NAME.partial
and gets its name only when the whole of it decrypted and matched both manifests
(adapters/seal.py:unseal). The local manifest is written first and removed again if the
data fails, as a backup's manifest is never left without its dump. `pull` is the one way
in, for pull, restore, recover, verify and drill alike.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from recoverctl import failpoints
from recoverctl.adapters import fsio, seal
from recoverctl.core.manifest import Manifest
from recoverctl.core.offsite import RemoteBackup, RemoteManifest, StoredObject
from recoverctl.core.progress import OnBytes
from recoverctl.errors import ErrorCode, Interrupted, RecoverctlError
from recoverctl.services import catalog
from recoverctl.services.offsite.listing import resolve_remote
from recoverctl.services.offsite.lookup import load_identities, open_target, owner
from recoverctl.services.offsite.manifests import MANIFEST_LIMIT, limited, parse_manifest
from recoverctl.services.offsite.results import Pulled
from recoverctl.services.session import StackSession

if TYPE_CHECKING:
    from recoverctl.adapters.targets import Target

PULL_DIR_PREFIX = ".pulled-"


def pull(
    session: StackSession,
    target_name: str,
    name: str,
    identity: Path | None,
    dest_dir: Path | None = None,
    *,
    on_bytes: OnBytes | None = None,
) -> Pulled:
    """NAME or `latest` from the target: downloads a complete copy, checks the sealed bytes'
    sha256 as they stream, decrypts to NAME.partial and renames it only when whole and
    matching both manifests. Never writes over a file. identity may be None only for a copy
    in clear.

    Into dest_dir when given (a file there of the backup's name is an error). Without it,
    as restore and recover want it: into the backups folder when no file there has its
    name (it stays, an ordinary local backup: on a machine that lost everything, the first
    one again); otherwise into a private folder beside it that the session removes when
    the command ends, so a local file of that name is never replaced, nor trusted
    instead."""
    started = time.monotonic()
    target, identities, remote = _source(session, target_name, name, identity)
    if dest_dir is None:
        dest_dir = _backups_or_aside(session, remote.backup)
    return _into(target, remote, identities, dest_dir, started, on_bytes)


def scratch_dir(session: StackSession) -> Path:
    """A private folder beside the backups, removed when the command ends."""
    fsio.ensure_private_dir(session.settings.backup_dir)
    return _aside(session, session.settings.backup_dir)


def _backups_or_aside(session: StackSession, backup: str) -> Path:
    folder = session.settings.backup_dir
    _output_dir(folder)
    taken = (folder / backup, catalog.manifest_path(folder / backup))
    if any(p.exists() or p.is_symlink() for p in taken):
        return _aside(session, folder)
    return folder


def _aside(session: StackSession, folder: Path) -> Path:
    made = Path(tempfile.mkdtemp(prefix=PULL_DIR_PREFIX, dir=folder))
    session.on_close(lambda: shutil.rmtree(made, ignore_errors=True))
    return made


def _source(
    session: StackSession, target_name: str, name: str, identity: Path | None
) -> tuple[Target, list[seal.Identity] | None, RemoteBackup]:
    """What a pull reads: the target (ours only), the identity loaded, the copy found."""
    target = open_target(session, target_name)
    identities = load_identities(session, identity)
    return target, identities, resolve_remote(target, name, owner(session))


def _into(
    target: Target,
    remote: RemoteBackup,
    identities: list[seal.Identity] | None,
    dest_dir: Path,
    started: float,
    on_bytes: OnBytes | None,
) -> Pulled:
    """The copy found into dest_dir, as `pull` says."""
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
    raw = b"".join(limited(iter(got), MANIFEST_LIMIT))
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
    local = parse_manifest(raw)
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
