"""Lifecycle actions: up, down, ps, logs, restart."""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recoverctl.adapters import files, process
from recoverctl.core import commands
from recoverctl.core.progress import Step
from recoverctl.core.result import JsonResult, meta
from recoverctl.core.stack import StackName, StackStatus
from recoverctl.errors import ErrorCode, RecoverctlError, StackError
from recoverctl.services import catalog, checked_backup
from recoverctl.services.dump import BackupResult
from recoverctl.services.session import StackSession
from recoverctl.services.stack import bring_up, status, wait_ready, wake_archiving
from recoverctl.services.verification import VerifyReport


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class UpResult(JsonResult):
    status: StackStatus = field(metadata=meta(flatten=True))
    built: bool
    seconds: float = field(metadata=meta(digits=1))
    backup: Path | None = None  # taken (and verified) before the update, when one was


@dataclass(frozen=True)
class DownPlan:
    project: str
    stack: str
    newest_backup: Path | None


@dataclass(frozen=True)
class DownResult(JsonResult):
    project: str
    stack: str = field(metadata=meta(schema=StackName))
    volumes_removed: bool
    newest_backup: Path | None
    safety_backup: Path | None = None  # taken just before the volume was erased


def ps(session: StackSession) -> StackStatus:
    ref = session.ref  # a broken compose file is reported before a missing engine
    return status(session.engine, ref)


def up(
    session: StackSession,
    *,
    build: bool = True,
    progress: Step = _quiet,
    backup: bool | None = None,
) -> UpResult:
    """backup None: on for prod, off for dev. A backup is taken only from a running stack,
    before compose rebuilds or recreates anything; if it fails, nothing is touched."""
    started = time.monotonic()
    taken = None
    if backup if backup is not None else session.settings.stack == "prod":
        files.require_env_file(session.settings)  # the same first complaint as without it
        taken = _backup_before_update(session, progress)
    ready = bring_up(session, build=build, progress=progress)
    return UpResult(status=ready, built=build, seconds=time.monotonic() - started, backup=taken)


def _backup_before_update(session: StackSession, progress: Step) -> Path | None:
    from recoverctl.services.routine import backup_verified

    try:
        session.db()
    except RecoverctlError as exc:
        if exc.code == ErrorCode.DB_NOT_RUNNING:
            progress("no running database: nothing to back up before the update")
            return None
        raise
    try:
        return backup_verified(session, step=progress).backup.path
    except RecoverctlError as exc:
        if exc.code is not ErrorCode.OFFSITE_FAILED:
            raise
        # Exit 3 would say "the local part succeeded": here the local part is the update,
        # and it did not happen.
        raise RecoverctlError(
            f"{exc.message.rstrip('.')}. Nothing was rebuilt or recreated: the update "
            "waits for its off-site copy.",
            (exc.hint or "Fix the target, then run up again").rstrip(".")
            + ". To update without the copy: recoverctl up --no-backup.",
            code=ErrorCode.UPDATE_REFUSED,
            details=exc.details,
        ) from None


def plan_down(session: StackSession) -> DownPlan:
    ref, settings = session.ref, session.settings
    return DownPlan(ref.project, settings.stack, catalog.newest_backup(settings))


def down(
    session: StackSession,
    *,
    volumes: bool,
    safety_backup: bool = True,
    progress: Step = _quiet,
) -> DownResult:
    ref, settings = session.ref, session.settings
    session.engine  # noqa: B018 - fails early, with the engine's hint, when none answers
    safety: Path | None = None
    if volumes and safety_backup:
        safety = _safety_backup(session, progress)
    # compose reads the env file for interpolation; down works without one.
    target = ref.target()
    if not settings.env_file.is_file():
        target = dataclasses.replace(target, env_file="/dev/null")
    process.run(
        commands.compose_down(target, volumes=volumes),
        cwd=str(settings.project_dir),
        secrets=session.secrets(),
        what=f"docker compose down ({ref.project})",
        hint="Its last lines are above; check `recoverctl ps` and try again.",
    )
    return DownResult(ref.project, settings.stack, volumes, catalog.newest_backup(settings), safety)


def _safety_backup(session: StackSession, progress: Step) -> Path | None:
    """A copy of the database about to be erased; None when its service is not running
    (there is nothing to copy from, and the person confirmed with the newest backup named)."""
    try:
        session.db()
    except RecoverctlError as exc:
        if exc.code in (ErrorCode.DB_NOT_RUNNING, ErrorCode.SERVICE_MISSING):
            return None
        raise

    def refused(made: BackupResult, checked: VerifyReport) -> RecoverctlError:
        bad = ", ".join(f"{c.name}: {c.evidence}" for c in checked.failed)
        return RecoverctlError(
            f"The safety backup {made.path.name} failed its checks ({bad}); nothing was erased.",
            f"Run recoverctl verify {made.path} to see why; erase only with a good backup.",
            code=ErrorCode.BACKUP_CORRUPT,
        )

    made, _ = checked_backup.take_checked(
        session, "safety backup before down --volumes", refused,
        announce="safety backup of the database before erasing it", step=progress,
    )  # fmt: skip
    return made.path


def restart(
    session: StackSession, service: str | None, progress: Step = _quiet
) -> StackStatus:
    ref, settings = session.ref, session.settings
    if service is not None:
        ref.require_service(service)
    engine = session.engine
    targets = engine.containers(ref.project, service)
    if not targets:
        raise StackError(
            f"No container to restart for {service or 'project ' + ref.project}.",
            "Bring the stack up first: recoverctl up",
        )
    for container in targets:
        progress(f"restarting {container.name}")
        engine.restart(container)
    ready = wait_ready(engine, ref, settings.up_timeout.total_seconds(), progress)
    if service in (None, "db"):
        session.forget_db()
        wake_archiving(session)
    return ready


def logs(
    session: StackSession,
    service: str | None,
    *,
    follow: bool,
    tail: int | None,
    sink: Callable[[str, bytes], None],
) -> None:
    """Streams log lines to sink(service, line); follows all containers at once with -f."""
    ref = session.ref
    if service is not None:
        ref.require_service(service)
    engine = session.engine
    containers = sorted(engine.containers(ref.project, service), key=lambda c: str(c.name))
    if not containers:
        raise StackError(
            f"No container for {service or 'project ' + ref.project}.",
            "Bring the stack up first: recoverctl up",
        )
    tail_arg: int | str = "all" if tail is None else tail
    if not follow:
        for c in containers:
            raw = bytes(engine.logs(c, tail=tail_arg))
            for line in raw.splitlines(keepends=True):
                sink(str(c.labels.get("com.docker.compose.service", c.name)), line)
        return
    lines: queue.Queue[tuple[str, bytes] | None] = queue.Queue()

    def pump(c: Any) -> None:
        name = str(c.labels.get("com.docker.compose.service", c.name))
        try:
            for chunk in engine.logs(c, tail=tail_arg, follow=True):
                lines.put((name, chunk))
        finally:
            lines.put(None)

    for c in containers:
        threading.Thread(target=pump, args=(c,), daemon=True).start()
    open_streams = len(containers)
    while open_streams:
        item = lines.get()
        if item is None:
            open_streams -= 1
        else:
            sink(*item)
