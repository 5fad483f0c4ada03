"""What the routine shares with `up`, `schedule` and doctor: the one-routine-at-a-time lock,
when a deep verification is due, the off-site push, a verified backup taken before an update,
point-in-time recovery's base backups and archiver state, and the record of how the last
routine ended (routine-STACK.json in the backups folder)."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from recoverctl.adapters import fsio
from recoverctl.adapters.pgexec import Db
from recoverctl.adapters.scheduler import Host
from recoverctl.core import pitr
from recoverctl.core.checks import FAIL
from recoverctl.core.outside import MAX_JSON_BYTES, AwareDatetime
from recoverctl.core.progress import OnBytes
from recoverctl.core.result import JsonResult, meta
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.services import catalog, checked_backup, offsite_push
from recoverctl.services import pitr as pitr_svc
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


# --- point-in-time recovery ----------------------------------------------------------------


@dataclass(frozen=True)
class BaseBackupRun(JsonResult):
    """One repository in the routine's pitr step."""

    repo: str
    taken: pitr.BackupType | None  # the base backup that was due and taken; None: none due
    label: str | None
    verified: bool
    expired: bool


@dataclass(frozen=True)
class PitrRun:
    """What the pitr step did, and why it failed (None: it did not)."""

    repos: tuple[BaseBackupRun, ...]
    error: RecoverctlError | None = None


@dataclass(frozen=True)
class PitrState:
    """Archiving as the report sees it, measured after the pitr step."""

    at: datetime
    archive_lag: timedelta
    archive_failing: bool
    newest: dict[str, datetime | None] = field(default_factory=dict)  # per repository


@dataclass(frozen=True)
class PitrReport(JsonResult):
    """The routine's point-in-time recovery: its base backups, and archiving's state."""

    archive_lag_seconds: float | None = field(metadata=meta(digits=1))
    archive_failing: bool | None
    repos: tuple[BaseBackupRun, ...]


STALL_RECHECK_SECONDS = 5.0


def archiving_stalled(
    db: Db, archive_timeout: timedelta, sleep: Callable[[float], None] = time.sleep
) -> str | None:
    """Why archiving has stalled, or None. A lag alone is measured twice: after an idle spell
    the first segment switched shows the whole spell as lag until the archiver takes it."""
    why = pitr.stalled(pitr_svc.archiver(db), archive_timeout)
    if why is None or why.startswith("archiving "):
        return why
    sleep(STALL_RECHECK_SECONDS)
    return pitr.stalled(pitr_svc.archiver(db), archive_timeout)


def _stalled_error(why: str) -> RecoverctlError:
    return pitr_svc.PitrError(
        f"Archiving has stalled: {why}; no base backup was taken and the recoverable "
        "window no longer reaches now.",
        "See why: recoverctl pitr status, then recoverctl logs db (pgBackRest's archive-push).",
    )


def base_backups(
    session: StackSession,
    step: Callable[[str], None] = _quiet,
    now: datetime | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PitrRun:
    """The base backup each repository is due (a full past full_every, a differential past
    diff_every), each verified, then the repositories' retention (expire), only when every
    backup taken and every verification passed: an unverified backup never costs an older
    good one. A stalled archiver fails it before any backup (one would wait for its WAL)."""
    wanted = pitr_svc.require(session.settings)
    db = session.db()
    found = pitr_svc.repos(session)
    with fsio.project_lock(session.project, "routine: pitr"):
        why = archiving_stalled(db, wanted.archive_timeout, sleep)
        if why is not None:
            return PitrRun((), _stalled_error(why))
        stanza = pitr_svc.info(db)
        now = now or datetime.now(UTC)
        due: dict[int, pitr.BackupType | None] = {}
        for repo in found:
            held = stanza.repo(repo.index)
            full = held.newest_of("full") if held else None
            newest = held.newest if held else None
            due[repo.index] = pitr.due(
                full.stopped if full else None,
                newest.stopped if newest else None,
                now,
                wanted.full_every,
                wanted.diff_every,
            )
        errors: list[RecoverctlError] = []
        taken: list[pitr.Repo] = []
        for repo in found:
            kind = due[repo.index]
            if kind is None:
                continue
            step(f"{kind} base backup to {repo.name}")
            try:
                pitr_svc.run(db, pitr.backup(kind, repo.index),
                             f"The {kind} base backup to {repo.name}",
                             "See the cause above (recoverctl pitr status), then run the routine "
                             "again.")  # fmt: skip
            except RecoverctlError as exc:
                errors.append(exc)
                continue
            taken.append(repo)
        labels: dict[int, str | None] = {}
        if taken:
            after = pitr_svc.info(db)
            for repo in taken:
                held = after.repo(repo.index)
                labels[repo.index] = held.newest.label if held and held.newest else None
        verified: set[int] = set()
        for repo in taken:
            step(f"verifying {repo.name}")
            try:
                pitr_svc.run(db, pitr.verify(repo.index),
                             f"pgBackRest's verification of {repo.name}",
                             "See what it found: pgbackrest verify in the db container; retention "
                             "waits for a verified backup.")  # fmt: skip
            except RecoverctlError as exc:
                errors.append(exc)
                continue
            verified.add(repo.index)
        expired: set[int] = set()
        if not errors:
            for repo in taken:
                step(f"expiring {repo.name}")
                try:
                    pitr_svc.run(db, pitr.expire(repo.index), f"The retention of {repo.name}",
                                 "See the cause above, then run the routine again.")  # fmt: skip
                except RecoverctlError as exc:
                    errors.append(exc)
                    continue
                expired.add(repo.index)
    rows = tuple(
        BaseBackupRun(
            repo=r.name,
            taken=due[r.index] if r.index in labels else None,
            label=labels.get(r.index),
            verified=r.index in verified,
            expired=r.index in expired,
        )
        for r in found
    )
    return PitrRun(rows, _failed(errors, bool(expired)))


def _failed(errors: list[RecoverctlError], expired: bool) -> RecoverctlError | None:
    if not errors:
        return None
    first = errors[0]
    more = f" ({len(errors) - 1} more failure(s) in the log)" if len(errors) > 1 else ""
    for e in errors[1:]:
        log.error(f"routine: pitr: {e.message}")
    kept = "" if expired else " Nothing was expired."
    return pitr_svc.PitrError(
        f"{first.message.rstrip()}{more}{kept}",
        first.hint,
        code=first.code,
        details=first.details,
    )


def pitr_state(session: StackSession) -> PitrState:
    """The archiver and each repository's newest good base backup, as the report says them."""
    db = session.db()
    archiver = pitr_svc.archiver(db)
    stanza = pitr_svc.info(db)
    newest: dict[str, datetime | None] = {}
    for repo in pitr_svc.repos(session):
        held = stanza.repo(repo.index)
        last = held.newest if held else None
        newest[repo.name] = last.stopped if last else None
    return PitrState(archiver.now, archiver.lag, archiver.failing, newest)


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


class PitrRecord(BaseModel):
    """Archiving as the last routine measured it."""

    model_config = ConfigDict(frozen=True)

    measured_at: AwareDatetime
    archive_lag_seconds: float
    archive_failing: bool
    base_backups: dict[str, AwareDatetime | None] = {}  # per repository: its newest's end


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
    pitr: PitrRecord | None = None  # None: no [pitr], archiving off, or not measured


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
