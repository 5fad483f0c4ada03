"""The env files off-site: `env push`, `env pull`, backup's push when they changed, and
recover's first step on a machine with no env file.

A push seals each file with [encryption]'s recipients (always: an env file is never in
clear off this server, whatever a target's own `encryption` says), uploads the sealed
objects, then the manifest LAST (the commit marker, names in core/envcopy.py), as a
backup's copy is written (services/offsite/upload.py), then removes the previous copy's
objects. A small record in the backups folder (mode 0600) keeps, per target, the sha256
of each file's plaintext as last pushed: backup pushes only when it differs. Never a value
in it.

A pull downloads and opens every file first, checking the sealed bytes' size and sha256
against the manifest, then writes each missing one (mode 0600, never over a file that
exists). Nothing is written when any of them cannot be opened.
"""

from __future__ import annotations

import errno
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from recoverctl import __version__
from recoverctl.adapters import fsio, seal
from recoverctl.core import envcopy
from recoverctl.core.envcopy import EnvManifest, EnvObject, Role
from recoverctl.core.outside import MAX_JSON_BYTES, read_json
from recoverctl.core.progress import Step
from recoverctl.core.result import JsonResult, computed, meta
from recoverctl.errors import CopyError, ErrorCode, RecoverctlError
from recoverctl.services.session import StackSession
from recoverctl.settings import ENV_FILES, Settings

if TYPE_CHECKING:
    from recoverctl.adapters.targets import Target

CopyStatus = Literal["pushed", "unchanged", "failed"]
FILE_LIMIT = 4 << 20  # an env file or a key export is a few KiB
RECORD_VERSION = 1


def _quiet(_: object) -> None:
    return None


# --- what is here ----------------------------------------------------------------------


@dataclass(frozen=True)
class LocalFile:
    name: str  # .env, .env.production, or the key export's file name
    role: Role
    path: Path


def env_path(settings: Settings, name: str) -> Path:
    """Where an env file of this checkout lives: the stack's own may be set elsewhere."""
    return settings.env_file if name == ENV_FILES[settings.stack] else settings.project_dir / name


def local_files(settings: Settings, *, key_file: bool = True) -> list[LocalFile]:
    """The env files that exist, then the browser key export when key_file is set and there."""
    found = [
        LocalFile(name, "env", env_path(settings, name))
        for name in envcopy.ENV_NAMES
        if env_path(settings, name).is_file()
    ]
    if key_file and settings.key_file is not None and settings.key_file.is_file():
        found.append(LocalFile(settings.key_file.name, "key_file", settings.key_file))
    return found


def _fingerprint(files: Sequence[LocalFile], contents: dict[str, bytes]) -> dict[str, str]:
    return {
        f"{f.role}:{f.name}": hashlib.sha256(contents[f.name]).hexdigest() for f in files
    }


def _read(f: LocalFile) -> bytes:
    try:
        data = f.path.read_bytes()
    except OSError as exc:
        raise RecoverctlError(
            f"Cannot read {f.path}: {exc.strerror or exc}.",
            "Check the file's owner and mode (it should be 0600, yours).",
            code=ErrorCode.ENV_INVALID if f.role == "env" else ErrorCode.KEY_FILE_INVALID,
        ) from None
    if len(data) > FILE_LIMIT:
        raise RecoverctlError(
            f"{f.path} is larger than {FILE_LIMIT >> 20} MiB: not an env file or a key export.",
            "Check the file (and key_file in the settings).",
            code=ErrorCode.ENV_INVALID if f.role == "env" else ErrorCode.KEY_FILE_INVALID,
        )
    return data


# --- the local record ------------------------------------------------------------------


def record_path(settings: Settings, project: str) -> Path:
    return settings.backup_dir / f".envfiles-{project}.json"


def read_record(path: Path) -> dict[str, dict[str, str]]:
    """target -> {file -> sha256 of its plaintext}; an unreadable record is an empty one
    (the next backup pushes again: harmless)."""
    try:
        data = read_json(fsio.read_bounded(path, MAX_JSON_BYTES))
        targets = data["targets"]
        return {
            str(t): {str(k): str(v) for k, v in entry["files"].items()}
            for t, entry in targets.items()
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _write_record(path: Path, record: dict[str, dict[str, str]]) -> None:
    body = {
        "version": RECORD_VERSION,
        "targets": {t: {"files": files} for t, files in sorted(record.items())},
    }
    fsio.ensure_private_dir(path.parent)
    fsio.write_atomic(path, (json.dumps(body, indent=2, sort_keys=True) + "\n").encode())


def open_target(session: StackSession, name: str, project: str) -> Target:
    """Target NAME, seen through the project's env namespace only."""
    return session.target(name, envcopy.namespace(project))


# --- push ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvCopy(JsonResult):
    """The env files on one target, after a push."""

    target: str
    location: str
    status: CopyStatus
    files: tuple[str, ...] = ()
    size: int = 0  # sealed bytes stored (the manifest included)
    seconds: float = field(default=0.0, metadata=meta(digits=2))
    removed: tuple[str, ...] = ()  # the previous copy's objects, or a failed push's
    error: RecoverctlError | None = field(
        default=None, metadata=meta(encode=RecoverctlError.brief, schema=CopyError | None)
    )


@dataclass(frozen=True)
class EnvPushResult(JsonResult):
    project: str
    files: tuple[str, ...]  # what was found here to push
    copies: tuple[EnvCopy, ...]

    @property
    @computed(after="project")
    def ok(self) -> bool:
        return all(c.status != "failed" for c in self.copies)


class EnvPushFailed(RecoverctlError):
    """Copying the env files to a target failed (exit 3); `result` says which."""

    default_code = ErrorCode.OFFSITE_FAILED

    def __init__(self, message: str, hint: str | None, result: EnvPushResult):
        super().__init__(message, hint)
        self.result = result


def _target_names(session: StackSession, names: Sequence[str] | None) -> list[str]:
    from recoverctl.services.offsite import target_names

    return target_names(session, names)


def push(
    session: StackSession,
    targets: Sequence[str] | None = None,
    *,
    only_changed: bool = False,
    step: Step = _quiet,
) -> EnvPushResult:
    """Seals the env files (and the key export when key_file is set) to every configured
    target, or those named. only_changed: a target whose record matches what is here now
    is left alone ("unchanged"). The caller holds the project lock. Every target is tried;
    one that failed is a failed copy in the result (`ok` false), which the caller reports
    with `failure` (exit 3)."""
    settings = session.settings
    names = _target_names(session, targets)
    project = session.project
    files = local_files(settings)
    if not any(f.role == "env" for f in files):
        raise RecoverctlError(
            f"No env file in {settings.project_dir}: nothing to push "
            f"({' and '.join(envcopy.STACK_ENV_NAMES)} are missing).",
            "Create one (recoverctl init), or bring it back: recoverctl env pull --target NAME",
            code=ErrorCode.ENV_INVALID,
        )
    contents = {f.name: _read(f) for f in files}
    current = _fingerprint(files, contents)
    record_file = record_path(settings, project)
    record = read_record(record_file)
    recipients: list[seal.Recipient] | None = None
    copies: list[EnvCopy] = []
    for name in names:
        if only_changed and envcopy.unchanged(current, record.get(name)):
            copies.append(EnvCopy(name, "", "unchanged", tuple(f.name for f in files)))
            continue
        if recipients is None:
            recipients = seal.load_recipients(settings.encryption)
        step(f"pushing the env files to target {name}")
        copy = _push_one(session, name, project, files, contents, recipients)
        copies.append(copy)
        if copy.status == "pushed":
            record[name] = current
            _write_record(record_file, record)
    return EnvPushResult(project, tuple(f.name for f in files), tuple(copies))


def failure(result: EnvPushResult) -> EnvPushFailed:
    failed = [c for c in result.copies if c.status == "failed"]
    first = failed[0]
    causes = "; ".join(f"{c.target}: {c.error.message if c.error else '?'}" for c in failed)
    hint = first.error.hint if first.error else None
    return EnvPushFailed(
        f"Copying the env files off-site failed: {causes}",
        (hint + " " if hint else "") + "Push them again once fixed: recoverctl env push.",
        result,
    )


def _push_one(
    session: StackSession,
    name: str,
    project: str,
    files: Sequence[LocalFile],
    contents: dict[str, bytes],
    recipients: Sequence[seal.Recipient],
) -> EnvCopy:
    from recoverctl.services.offsite.upload import check_stored, committing

    started = time.monotonic()
    location = ""
    removed: list[str] = []
    try:
        target = open_target(session, name, project)
        location = target.location
        when = envcopy.stamp(datetime.now(UTC))
        objects: list[EnvObject] = []
        with committing(target, removed) as upload:
            for f in files:
                sealed = seal.seal_bytes(contents[f.name], recipients)
                oname = envcopy.object_name(when, f.name, f.role)
                info = upload.put(oname, iter([sealed]))
                check_stored(target, oname, info.size, len(sealed))
                objects.append(
                    EnvObject(name=f.name, role=f.role, object=oname, size=len(sealed),
                              sha256=hashlib.sha256(sealed).hexdigest())
                )  # fmt: skip
            manifest = EnvManifest(
                project=project,
                pushed_at=datetime.now(UTC),
                recipients=tuple(r.text for r in recipients),
                files=tuple(objects),
                recoverctl_version=__version__,
            )
            marker = upload.commit(envcopy.MANIFEST_NAME, manifest.to_bytes())
        keep = {envcopy.MANIFEST_NAME, *(o.object for o in objects)}
        for old in target.list():
            if old.name not in keep and envcopy.is_object_name(old.name.removesuffix(".partial")):
                try:
                    target.delete(old.name)
                    removed.append(old.name)
                except RecoverctlError:
                    pass  # the next push tries again; the new copy is whole
        return EnvCopy(
            name, location, "pushed", tuple(f.name for f in files),
            sum(o.size for o in objects) + marker.size, time.monotonic() - started,
            tuple(removed),
        )  # fmt: skip
    except RecoverctlError as exc:
        return EnvCopy(name, location, "failed", seconds=time.monotonic() - started,
                       removed=tuple(removed), error=exc)  # fmt: skip


def push_if_changed(session: StackSession, *, step: Step = _quiet) -> EnvPushResult | None:
    """backup's step: the env files to each target whose record differs from them. None
    when there is nothing to do: no target, no recipients (the backups go in clear, and an
    env file never does), or no env file here."""
    settings = session.settings
    if not settings.targets or not settings.encryption.configured:
        return None
    if not any(f.role == "env" for f in local_files(settings, key_file=False)):
        return None
    return push(session, only_changed=True, step=step)


# --- pull ------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvPullResult(JsonResult):
    project: str
    target: str
    location: str
    pushed_at: datetime
    written: tuple[Path, ...]  # created now, mode 0600
    kept: tuple[Path, ...]  # there already: never overwritten
    skipped: tuple[str, ...]  # in the copy, not written, and why
    seconds: float = field(metadata=meta(digits=2))


def load_identities(settings: Settings, identity: Path | None) -> list[seal.Identity]:
    if identity is None:
        raise RecoverctlError(
            "The env files on a target are sealed with age: bringing them back needs the "
            "private key.",
            "Pass --identity FILE (or set RECOVERCTL_IDENTITY_FILE): the identity made by "
            "recoverctl keys new-identity, kept with the browser key export.",
            code=ErrorCode.IDENTITY_INVALID,
        )
    return seal.load_identity(identity, project_dir=settings.project_dir)


def read_manifest(session: StackSession, target_name: str) -> EnvManifest:
    """The target's copy of this project's env files, or ENV_NOT_FOUND."""
    from recoverctl.services.offsite import unknown_target

    if target_name not in session.settings.targets:
        raise unknown_target(session, target_name)
    project = session.project
    target = open_target(session, target_name, project)
    name = envcopy.MANIFEST_NAME
    if target.stat(name) is None:
        raise RecoverctlError(
            f"{target.label} holds no copy of {project}'s env files "
            f"({envcopy.namespace(project)}/{name} is not there).",
            "On the machine that has them: recoverctl env push --target "
            f"{target_name}; or write new ones here (recoverctl init) if the data can "
            "start over.",
            code=ErrorCode.ENV_NOT_FOUND,
        )
    raw = _bounded(target.get(name), f"{name} on {target.label}")
    return EnvManifest.from_bytes(raw, where=target.label)


def _bounded(chunks: Iterator[bytes], where: str) -> bytes:
    out = bytearray()
    for chunk in chunks:
        out += chunk
        if len(out) > FILE_LIMIT:
            raise RecoverctlError(
                f"{where} is larger than {FILE_LIMIT >> 20} MiB: not one of ours.",
                "Push the env files again: recoverctl env push",
                code=ErrorCode.OBJECT_CORRUPT,
            )
    return bytes(out)


def pull(
    session: StackSession,
    target_name: str,
    identity: Path | None,
    *,
    step: Step = _quiet,
) -> EnvPullResult:
    """Brings the env files (and the key export, to key_file when it is set) back from the
    target: every missing one written mode 0600, none over a file that exists."""
    started = time.monotonic()
    settings = session.settings
    identities = load_identities(settings, identity)
    manifest = read_manifest(session, target_name)
    target = open_target(session, target_name, session.project)
    step(f"bringing the env files back from target {target_name}")

    plan: list[tuple[EnvObject, Path]] = []
    kept: list[Path] = []
    skipped: list[str] = []
    for f in manifest.files:
        if f.role == "env":
            dest: Path | None = env_path(settings, f.name)
        else:
            dest = settings.key_file
            if dest is None:
                skipped.append(
                    f"the browser key export {f.name}: key_file is not set (set "
                    "RECOVERCTL_KEY_FILE to where it should go, outside the project, and "
                    "pull again)"
                )
                continue
        assert dest is not None
        if dest.exists() or dest.is_symlink():
            kept.append(dest)
        else:
            plan.append((f, dest))

    # Everything opened before anything is written: a wrong key writes nothing.
    opened: list[tuple[Path, bytes]] = []
    for f, dest in plan:
        where = f"{f.object} on {target.label}"
        sealed = _bounded(target.get(f.object), where)
        if len(sealed) != f.size or hashlib.sha256(sealed).hexdigest() != f.sha256:
            raise RecoverctlError(
                f"{where} is damaged: its size or sha256 differs from the manifest's. "
                "Nothing was written.",
                "Push the env files again from a machine that has them: recoverctl env push",
                code=ErrorCode.OBJECT_CORRUPT,
            )
        opened.append((dest, seal.unseal_bytes(iter([sealed]), identities, where=where)))

    written: list[Path] = []
    for dest, plain in opened:
        try:
            if not dest.parent.is_dir():
                fsio.ensure_private_dir(dest.parent)
            fsio.create_private(dest, plain)
            written.append(dest)
        except FileExistsError:
            kept.append(dest)  # appeared meanwhile: never replaced
        except OSError as exc:
            raise RecoverctlError(
                f"Could not write {dest}: {exc.strerror or exc}"
                + (f" ({', '.join(p.name for p in written)} written before)." if written else "."),
                f"Check that {dest.parent} is writable and has room, then pull again "
                "(what was written is kept, never overwritten).",
                code=ErrorCode.DISK_FULL if exc.errno == errno.ENOSPC else ErrorCode.WRITE_FAILED,
            ) from None
    return EnvPullResult(
        project=manifest.project,
        target=target_name,
        location=target.location,
        pushed_at=manifest.pushed_at,
        written=tuple(written),
        kept=tuple(kept),
        skipped=tuple(skipped),
        seconds=time.monotonic() - started,
    )
