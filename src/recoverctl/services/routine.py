"""What the routine shares with `up`, `schedule` and doctor: the one-routine-at-a-time lock,
when a deep verification is due, the off-site push, a verified backup taken before an update, and the
record of how the last routine ended (routine-STACK.json in the backups folder)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from recoverctl.adapters import fsio
from recoverctl.adapters.scheduler import Host
from recoverctl.core.checks import FAIL
from recoverctl.core.outside import MAX_JSON_BYTES, AwareDatetime
from recoverctl.core.progress import OnBytes
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.services import catalog, checked_backup, offsite_push
from recoverctl.services.dump import BackupResult
from recoverctl.services.offsite import OffsiteFailed, PushResult
from recoverctl.services.session import StackSession
from recoverctl.services.verification import VerifyReport
from recoverctl.settings import Settings

log = logging.getLogger(__name__)
RECORD_VERSION = 1
Status = Literal["ok", "failed", "skipped"]


def _no_progress(_: int) -> None:
    return None


def _quiet(_: str) -> None:
    return None


# --- one routine at a time ---------------------------------------------------------------


def routine_lock(project: str, stack: str) -> contextlib.AbstractContextManager[None]:
    """Held for a whole routine. Its own file, not the project lock: the routine's steps take
    the project lock one by one (a manual restore can wait between them), while a second
    routine must stop at once, before it pings anyone."""

    def busy(holder: str) -> RecoverctlError:
        return RecoverctlError(
            f"A routine is already running on {project}: {holder}; this one did nothing.",
            "Nothing to do: the running one reports when it ends (recoverctl schedule "
            "status). A schedule more frequent than a routine lasts skips runs like this.",
            code=ErrorCode.ROUTINE_RUNNING,
        )

    return fsio.held_lock(f"{project}.routine.lock", f"routine --{stack}", busy)


# --- verification ------------------------------------------------------------------------


def last_deep_verification(settings: Settings) -> datetime | None:
    """When a backup of this stack last passed a deep verification."""
    newest: datetime | None = None
    for path in catalog.candidates(settings):
        m = catalog.load_manifest(path)
        if m is None or m.stack != settings.stack:
            continue
        record = catalog.load_record(path)
        for r in record.results if record else ():
            if r.kind == "deep" and r.ok and (newest is None or r.at > newest):
                newest = r.at
    return newest


def deep_due(settings: Settings, now: datetime | None = None) -> bool:
    last = last_deep_verification(settings)
    return last is None or (now or datetime.now(UTC)) - last >= settings.deep_every


# --- the off-site push ------------------------------------------------------------------


@dataclass(frozen=True)
class Pushed:
    targets: tuple[str, ...]  # empty: skipped, no target configured
    detail: PushResult | None = None  # what the off-site service returned, for the report


def push(session: StackSession, path: Path) -> Pushed:
    """The off-site push (services/offsite_push.py) of one good backup; raises its failure
    (exit 3). The routine pushes only with targets configured; up --prod too."""
    done = offsite_push.push(session, path)
    if done.error is not None:
        raise done.error
    return Pushed(tuple(sorted(session.settings.targets)), done.backup)


def copy_states(pushed: PushResult | None, error: RecoverctlError | None) -> dict[str, bool]:
    """Per target, whether its copy succeeded, from what the push returned or, when it
    failed, the results its OffsiteFailed carries; empty when neither says per target."""
    results = [pushed] if pushed is not None else []
    if isinstance(error, OffsiteFailed):
        results += error.results
    return {c.target: c.status != "failed" for r in results for c in r.copies}


# --- a backup before an update -----------------------------------------------------------


@dataclass(frozen=True)
class SafetyBackup:
    backup: BackupResult
    verified: VerifyReport
    pushed: Pushed


def backup_verified(
    session: StackSession, *, step: Callable[[str], None] = _quiet, on_bytes: OnBytes = _no_progress
) -> SafetyBackup:
    """A backup, quick-verified, and pushed when targets exist: what `up --prod` takes
    before it rebuilds anything. Raises when any of the three fails."""

    def refused(made: BackupResult, verified: VerifyReport) -> RecoverctlError:
        bad = ", ".join(c.name for c in verified.checks if c.status == FAIL)
        return RecoverctlError(
            f"The backup taken before the update failed verification ({bad}); nothing was "
            "rebuilt or recreated.",
            f"Run recoverctl verify {made.path} to see why, fix it, then run up again.",
            code=ErrorCode.BACKUP_CORRUPT,
        )

    made, verified = checked_backup.take_checked(
        session, "backup before up", refused, announce="backing up before the update",
        step=step, on_bytes=on_bytes,
    )  # fmt: skip
    pushed = push(session, made.path) if session.settings.targets else Pushed(())
    return SafetyBackup(made, verified, pushed)


# --- how the last routine ended ----------------------------------------------------------


class StepRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    status: Status
    seconds: float = 0.0
    detail: str = ""


class TargetState(BaseModel):
    model_config = ConfigDict(frozen=True)

    ok: bool
    at: AwareDatetime
    last_success_at: AwareDatetime | None = None


class RoutineRecord(BaseModel):
    """routine-STACK.json: how the last routine ended, and what monitoring carries over
    from earlier runs (the last success, per-target state)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    record_version: int = RECORD_VERSION
    project: str
    stack: str
    started_at: AwareDatetime
    finished_at: AwareDatetime
    ok: bool
    exit_status: int
    error_code: str | None = None
    message: str | None = None
    steps: tuple[StepRecord, ...] = ()
    backup: str | None = None
    backup_size: int | None = None
    backup_seconds: float | None = None
    last_success_at: datetime | None = None
    last_backup_at: datetime | None = None
    last_deep_verify_at: datetime | None = None
    pruned: int = 0
    targets: dict[str, TargetState] = {}


def record_path(settings: Settings) -> Path:
    return settings.backup_dir / f"routine-{settings.stack}.json"


def load_record(settings: Settings) -> RoutineRecord | None:
    try:
        return RoutineRecord.model_validate_json(
            fsio.read_bounded(record_path(settings), MAX_JSON_BYTES)
        )
    except (OSError, ValidationError, ValueError):
        return None


def save_record(settings: Settings, record: RoutineRecord) -> None:
    path = record_path(settings)
    fsio.ensure_private_dir(path.parent)
    fsio.remove_quietly(path.with_name(path.name + ".partial"))
    fsio.write_atomic(path, json.dumps(record.model_dump(mode="json"), indent=2).encode())


# --- is it scheduled (doctor) --------------------------------------------------------------


def scheduled(settings: Settings, project: str, host: Host | None = None) -> str | None:
    """Where the routine of this stack is scheduled (the first form found), or None."""
    from recoverctl.core.schedule import cron_block_of, job_name

    host = host or Host()
    name = job_name(project, settings.stack)
    timer = host.unit_dir() / f"{name}.timer"
    if timer.exists():
        return f"systemd timer {timer}"
    cron_file = host.cron_dir() / name
    if cron_file.exists():
        return f"cron entry {cron_file}"
    if host.uses_crontab():
        with contextlib.suppress(RecoverctlError):
            if cron_block_of(host.read_crontab(), name) is not None:
                return f"crontab of {host.user}"
    return None
