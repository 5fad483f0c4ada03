"""pitr enable, disable, status, backup: continuous WAL archiving with pgBackRest."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from recoverctl.adapters import fsio
from recoverctl.adapters.pgexec import Db
from recoverctl.core import pitr
from recoverctl.core.progress import Step
from recoverctl.core.result import INTERNAL, JsonResult, computed, meta
from recoverctl.core.stack import StackName
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.services import envcopy
from recoverctl.services import pitr as svc
from recoverctl.services import stack as stack_svc
from recoverctl.services.envcopy import EnvPushResult
from recoverctl.services.pitr import PitrError
from recoverctl.services.session import StackSession


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class RepoEntry(JsonResult):
    name: str
    kind: str
    location: str


@dataclass(frozen=True)
class EnablePlan(JsonResult):
    """What enable changes: shown, and confirmed when the db must restart."""

    stack: str = field(metadata=meta(schema=StackName))
    project: str
    repos: tuple[RepoEntry, ...]
    restart: bool  # the db service (and the app that uses it) restarts
    services: tuple[str, ...]  # what restarts with it
    passphrase_file: Path
    new_passphrase: bool
    config: svc.Config = field(metadata=INTERNAL)
    passphrase: str = field(metadata=INTERNAL, repr=False)


@dataclass(frozen=True)
class EnableResult(JsonResult):
    plan: EnablePlan = field(metadata=meta(flatten=True, omit=("restart",)))
    restarted: bool
    restart_seconds: float | None = field(metadata=meta(digits=2))
    full_backups: tuple[str, ...]  # "repo: label" taken now
    env_push: EnvPushResult | None
    error: RecoverctlError | None = field(default=None, metadata=INTERNAL)

    @property
    def exit_status(self) -> int:
        return 0 if self.error is None else self.error.exit_code


def _repository_exists(session: StackSession, repo: pitr.Repo) -> bool:
    """Whether a stanza is already in the repository (read through the target itself)."""
    if repo.kind == "posix" and repo.host_path:
        return (Path(repo.host_path) / "backup" / pitr.STANZA / "backup.info").exists()
    ns = f"{session.project}/{session.settings.stack}/{pitr.FOLDER}/backup/{pitr.STANZA}"
    try:
        return session.target(repo.name, ns).stat("backup.info") is not None
    except RecoverctlError:
        return False


def plan_enable(session: StackSession) -> EnablePlan:
    """Everything enable needs, checked before anything changes."""
    settings = session.settings
    svc.require(settings)
    where = svc.paths(session)
    db = session.db()
    found = tuple(svc.repos(session))
    svc.image_ready(db, found)
    passphrase = svc.read_passphrase(where.passphrase)
    new = passphrase is None
    if passphrase is None:
        existing = [r.name for r in found if _repository_exists(session, r)]
        if existing:
            raise PitrError(
                f"Repository {', '.join(existing)} already holds this stack's archive, and "
                f"{where.passphrase.name} (its passphrase) is missing here.",
                "Bring it back (recoverctl env pull --target NAME); a new passphrase would "
                "not open that archive.",
                code=ErrorCode.PITR_PASSPHRASE,
            )
        passphrase = pitr.new_passphrase()
    made = svc.config(session, passphrase, db.user)
    current = (
        where.override.read_text(encoding="utf-8") if where.override.is_file() else None,
        where.env.read_text(encoding="utf-8") if where.env.is_file() else None,
    )
    mode = db.query("SELECT current_setting('archive_mode')").strip()
    restart = current != (made.override, made.env) or mode != "on"
    return EnablePlan(
        stack=settings.stack,
        project=session.project,
        repos=tuple(RepoEntry(r.name, r.kind, r.location) for r in found),
        restart=restart,
        services=("db", *session.compose.db_clients),
        passphrase_file=where.passphrase,
        new_passphrase=new,
        config=made,
        passphrase=passphrase,
    )


def _prepare_folder(session: StackSession, db: Db, repo: pitr.Repo) -> None:
    """A folder repository's directory, writable by the container's postgres user, checked
    here before db restarts with it."""
    assert repo.host_path is not None
    base = session.settings.targets[repo.name]
    root = Path(str(getattr(base, "path", "")))
    if not root.is_dir():
        # As for the backups' copies: a NAS that is not mounted is an error, never a folder
        # made on the local disk in its place.
        raise PitrError(
            f"Target {repo.name}'s folder {root} does not exist (a NAS not mounted?).",
            "Mount it (or create it), then run recoverctl pitr enable again.",
            code=ErrorCode.TARGET_NOT_FOUND,
        )
    path = Path(repo.host_path)
    try:
        uid = int(db.run(("id", "-u")).stdout.decode().strip() or "-1")
        gid = int(db.run(("id", "-g")).stdout.decode().strip() or "-1")
        created = not path.exists()
        path.mkdir(parents=True, exist_ok=True, mode=0o750)
        if created:
            os.chown(path, uid, gid)
        info = path.stat()
    except (OSError, ValueError) as exc:
        raise PitrError(
            f"Cannot prepare the repository folder {path}: {exc}.",
            "Create it, writable by the db container's postgres user, then run enable again.",
            code=ErrorCode.WRITE_FAILED,
        ) from None
    writable = (
        (info.st_uid == uid and info.st_mode & 0o300 == 0o300)
        or (info.st_gid == gid and info.st_mode & 0o030 == 0o030)
        or info.st_mode & 0o003 == 0o003
    )
    if not writable:
        raise PitrError(
            f"The repository folder {path} is not writable by the db container's postgres "
            f"user (uid {uid}): nothing was changed.",
            f"Make it so (chown {uid}:{gid} {path}), then run recoverctl pitr enable again.",
            code=ErrorCode.WRITE_FAILED,
        )


def _check_folders(db: Db, found: tuple[pitr.Repo, ...]) -> None:
    for repo in found:
        if repo.mount and not svc.folder_seen(db, repo):
            raise PitrError(
                f"Repository {repo.name} ({repo.host_path}): {svc.NOT_SEEN}.",
                svc.NOT_SEEN_HINT,
                code=ErrorCode.PITR_FAILED,
            )
        if repo.mount and not db.run(("test", "-w", repo.mount)).ok:
            uid = db.run(("id", "-u")).stdout.decode().strip()
            raise PitrError(
                f"The repository folder {repo.host_path} is not writable by the db "
                f"container's postgres user (uid {uid}).",
                f"Make it so (chown {uid} {repo.host_path}), then run enable again.",
                code=ErrorCode.WRITE_FAILED,
            )


def _put_back(
    session: StackSession,
    before: dict[Path, bytes | None],
    exc: BaseException,
    step: Step,
) -> BaseException:
    """The db failed to start with the new settings: the previous ones back, the stack up
    again with them. Returns what to raise: the failure, saying which settings serve."""
    for path, data in before.items():
        if data is None:
            fsio.remove_quietly(path)
        else:
            fsio.write_atomic(path, data)
    step("the db did not start with archiving on: starting it as it was")
    try:
        stack_svc.bring_up(session, build=False, progress=step)
    except RecoverctlError as again:
        return PitrError(
            f"The db did not start with archiving on, nor again as it was: {again.message}",
            "Read recoverctl logs db, fix the cause, then run recoverctl up.",
            details=getattr(exc, "details", None),
        )
    if not isinstance(exc, RecoverctlError):
        return exc
    return PitrError(
        f"The db did not start with archiving on ({exc.message.rstrip('.')}); it runs again "
        "as before, without archiving.",
        exc.hint or "Fix the cause, then run recoverctl pitr enable again.",
        details=exc.details,
    )


def _gaps(db: Db, repo: pitr.Repo, held: pitr.RepoInfo) -> tuple[pitr.Gap, ...]:
    try:
        return svc.gaps(db, repo, held, svc.archiver(db).last_archived_wal)
    except RecoverctlError:
        return ()  # unlisted: status and doctor say so; enable takes no backup for it


def enable(
    session: StackSession,
    plan: EnablePlan,
    *,
    step: Step = _quiet,
) -> EnableResult:
    settings = session.settings
    where = svc.paths(session)
    with fsio.project_lock(session.project, "pitr enable"):
        db = session.db()
        for repo in plan.config.repos:
            if repo.kind == "posix":
                _prepare_folder(session, db, repo)
        if plan.new_passphrase:
            try:
                fsio.create_private(where.passphrase, svc.passphrase_text(plan.passphrase))
            except FileExistsError:
                raise PitrError(
                    f"{where.passphrase} appeared while enable was planning: left as it is.",
                    "Run recoverctl pitr enable again.",
                ) from None
        before = {p: p.read_bytes() if p.is_file() else None for p in (where.env, where.override)}
        svc.install(session, plan.config)
        seconds: float | None = None
        if plan.restart:
            step("restarting db with archiving on")
            t0 = time.monotonic()
            try:
                stack_svc.bring_up(session, build=False, progress=step)
            except BaseException as exc:
                raise _put_back(session, before, exc, step) from None
            seconds = time.monotonic() - t0
        db = session.db()
        _check_folders(db, plan.config.repos)
        step("creating the stanza")
        svc.run(
            db,
            pitr.stanza_create(),
            "pgbackrest stanza-create",
            "Check the repositories (recoverctl pitr status), then run enable again.",
        )
        step("checking that WAL reaches every repository")
        svc.run(
            db,
            pitr.check(),
            "pgbackrest check",
            "Archiving does not work yet: see the cause above, then run enable again.",
        )
        stanza = svc.info(db)
        taken: list[str] = []
        for repo in plan.config.repos:
            held = stanza.repo(repo.index)
            if held is not None and held.newest_of("full") is not None:
                # Archiving off for a while (disable, then enable) leaves the WAL of that
                # time out of the archive: no restore replays across it until a new full.
                if not pitr.open_gaps(_gaps(db, repo, held)):
                    continue
                step(f"a full backup to {repo.name}: its archive misses WAL (archiving was off)")
            else:
                step(f"first full backup to {repo.name}")
            svc.run(
                db,
                pitr.backup("full", repo.index),
                f"The full backup to {repo.name}",
                "See the cause above, then run recoverctl pitr backup --type full.",
            )
            newest = svc.info(db).repo(repo.index)
            label = newest.newest.label if newest and newest.newest else "?"
            taken.append(f"{repo.name}: {label}")
    pushed: EnvPushResult | None = None
    error: RecoverctlError | None = None
    if settings.targets:
        step("sealing the passphrase off-site with the env files")
        try:
            with fsio.project_lock(session.project, "env push"):
                pushed = envcopy.push(session, only_changed=True, step=step)
        except RecoverctlError as exc:
            # Archiving works; only the passphrase's copy off-site is missing (exit 3).
            error = RecoverctlError(
                f"Archiving is on, but the passphrase is not off-site yet: {exc.message}",
                (exc.hint + " " if exc.hint else "") + "Then: recoverctl env push",
                code=ErrorCode.OFFSITE_FAILED,
            )
        else:
            if not pushed.ok:
                error = envcopy.failure(pushed)
    return EnableResult(
        plan=plan,
        restarted=plan.restart,
        restart_seconds=seconds,
        full_backups=tuple(taken),
        env_push=pushed,
        error=error,
    )


@dataclass(frozen=True)
class DisableResult(JsonResult):
    stack: str = field(metadata=meta(schema=StackName))
    project: str
    was_enabled: bool
    kept: tuple[str, ...]  # the repositories, untouched
    restart_seconds: float | None = field(metadata=meta(digits=2))


def disable(session: StackSession, *, step: Step = _quiet) -> DisableResult:
    """Archiving off: the override goes, the db restarts without it; the repositories and
    the passphrase stay (a new enable archives into the same stanza)."""
    settings = session.settings
    where = svc.paths(session)
    was = where.override.is_file()
    kept = tuple(r.location for r in svc.repos(session)) if settings.pitr else ()
    seconds: float | None = None
    with fsio.project_lock(session.project, "pitr disable"):
        if was:
            where.override.unlink()
            fsio.fsync_dir(where.override.parent)
            step("restarting db with archiving off")
            t0 = time.monotonic()
            stack_svc.bring_up(session, build=False, progress=step)
            seconds = time.monotonic() - t0
        fsio.remove_quietly(where.env)
    return DisableResult(settings.stack, session.project, was, kept, seconds)


# --- status ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseBackupEntry(JsonResult):
    label: str
    type: str
    started: datetime
    stopped: datetime
    size: int
    stored: int


@dataclass(frozen=True)
class RepoStatus(JsonResult):
    name: str
    kind: str
    location: str
    ok: bool
    message: str
    earliest: datetime | None  # the window: the oldest base backup's end
    latest: datetime | None  # the newest archived point (the live server's last archived)
    wal_min: str | None
    wal_max: str | None
    backups: tuple[BaseBackupEntry, ...]
    # WAL missing from the archive (dropped while the repository was down): the window
    # has a hole there; one not closed by a later base backup makes the repository not ok.
    gaps: tuple[pitr.Gap, ...] = ()


@dataclass(frozen=True)
class ArchiveState(JsonResult):
    archive_mode: str
    lag_seconds: float = field(metadata=meta(digits=1))
    ready_segments: int
    last_archived_wal: str | None
    last_archived_at: datetime | None
    failed_count: int
    last_failed_wal: str | None
    last_failed_at: datetime | None
    failing: bool
    pg_wal_bytes: int
    current_wal: str


@dataclass(frozen=True)
class PitrStatus(JsonResult):
    stack: str = field(metadata=meta(schema=StackName))
    project: str
    enabled: bool
    archive: ArchiveState | None
    repos: tuple[RepoStatus, ...]

    @property
    @computed(after="enabled")
    def ok(self) -> bool:
        return (
            self.enabled
            and self.archive is not None
            and not self.archive.failing
            and all(r.ok and r.earliest is not None for r in self.repos)
        )


def archive_state(a: pitr.Archiver) -> ArchiveState:
    return ArchiveState(
        archive_mode=a.archive_mode,
        lag_seconds=a.lag.total_seconds(),
        ready_segments=a.ready,
        last_archived_wal=a.last_archived_wal,
        last_archived_at=a.last_archived_at,
        failed_count=a.failed_count,
        last_failed_wal=a.last_failed_wal,
        last_failed_at=a.last_failed_at,
        failing=a.failing,
        pg_wal_bytes=a.pg_wal_bytes,
        current_wal=a.current_wal,
    )


def status(session: StackSession) -> PitrStatus:
    settings = session.settings
    svc.require(settings)
    db = session.db()
    found = svc.repos(session)
    enabled = svc.enabled(session)
    archiver = svc.archiver(db)
    stanza: pitr.StanzaInfo | None = None
    message = ""
    if enabled:
        try:
            stanza = svc.info(db)
        except PitrError as exc:
            message = exc.message
    repos: list[RepoStatus] = []
    for repo in found:
        held = stanza.repo(repo.index) if stanza else None
        seen = svc.folder_seen(db, repo) if enabled else True
        holes: tuple[pitr.Gap, ...] = ()
        said = held.message if held else (message or "archiving is not enabled")
        listed = True
        if held is not None and held.ok and seen:
            try:
                holes = svc.gaps(db, repo, held, archiver.last_archived_wal)
            except RecoverctlError as exc:
                listed = False  # whether the window has a gap is unknown: not ok
                said = f"{said}; its archive could not be listed: {exc.message}"
        if holes:
            said = f"the window has a gap: {pitr.gap_text(holes)}"
            if pitr.open_gaps(holes):
                said += ". Take a full base backup now: recoverctl pitr backup --type full"
        repos.append(
            RepoStatus(
                name=repo.name,
                kind=repo.kind,
                location=repo.location,
                ok=(held.ok if held else False)
                and seen
                and listed
                and not pitr.open_gaps(holes),
                message=said if seen else f"{svc.NOT_SEEN}: {svc.NOT_SEEN_HINT}",
                earliest=held.earliest if held else None,
                latest=archiver.last_archived_at if held and held.ok else None,
                wal_min=held.wal_min if held else None,
                wal_max=held.wal_max if held else None,
                backups=tuple(
                    BaseBackupEntry(b.label, b.type, b.started, b.stopped, b.size, b.stored)
                    for b in (held.backups if held else ())
                ),
                gaps=holes,
            )
        )
    return PitrStatus(
        stack=settings.stack,
        project=session.project,
        enabled=enabled,
        archive=archive_state(archiver) if enabled else None,
        repos=tuple(repos),
    )


# --- backup ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseBackupTaken(JsonResult):
    repo: str
    type: str
    label: str
    seconds: float = field(metadata=meta(digits=2))


@dataclass(frozen=True)
class PitrBackupResult(JsonResult):
    stack: str = field(metadata=meta(schema=StackName))
    project: str
    backups: tuple[BaseBackupTaken, ...]


def backup(
    session: StackSession,
    kind: pitr.BackupType,
    *,
    step: Step = _quiet,
    repos: Callable[[pitr.Repo], bool] = lambda _: True,
) -> PitrBackupResult:
    svc.require_enabled(session)
    db = session.db()
    taken: list[BaseBackupTaken] = []
    with fsio.project_lock(session.project, f"pitr backup ({kind})"):
        for repo in svc.repos(session):
            if not repos(repo):
                continue
            step(f"{kind} backup to {repo.name}")
            t0 = time.monotonic()
            svc.run(
                db,
                pitr.backup(kind, repo.index),
                f"The {kind} backup to {repo.name}",
                "See the cause above (recoverctl pitr status), then run it again.",
            )
            held = svc.info(db).repo(repo.index)
            label = held.newest.label if held and held.newest else "?"
            taken.append(BaseBackupTaken(repo.name, kind, label, time.monotonic() - t0))
    return PitrBackupResult(session.settings.stack, session.project, tuple(taken))
