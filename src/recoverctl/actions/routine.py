"""routine: what the timer runs. backup → verify (deep when due) → push → pitr (the base
backup that is due, verified, then pgBackRest's retention; with [pitr] and archiving on) →
drill (when due) → prune → report, in that order; a failed step stops every later step but the report, so
nothing is ever pruned after a failed backup, verification, push or drill (when the newest
backup did not bring the vault back, the older ones may be the ones that can). What a
failed step leaves done stays done: a failed drill keeps the backup it follows, pushed.
The report (services/reporting/: routine-STACK.json, Healthchecks, apprise, the
Prometheus textfile) runs whatever happened, and a monitoring endpoint that is down never
changes the routine's verdict."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast, get_args

from recoverctl import signals
from recoverctl.adapters import fsio
from recoverctl.core.checks import FAIL
from recoverctl.core.duration import DAY, format_duration, in_units
from recoverctl.core.progress import OnBytes
from recoverctl.core.result import INTERNAL, JsonResult, computed, meta
from recoverctl.core.stack import StackName, prod_flag
from recoverctl.errors import (
    EXIT_FAILED,
    EXIT_OK,
    STOP_CODES,
    ErrorCode,
    Interrupted,
    RecoverctlError,
    exit_status,
)
from recoverctl.services import checked_backup, retention
from recoverctl.services import drill as drills
from recoverctl.services import pitr as pitr_svc
from recoverctl.services import routine as service
from recoverctl.services.drill import DrillResult
from recoverctl.services.dump import BackupResult
from recoverctl.services.offsite_push import as_offsite
from recoverctl.services.reporting import Reporting
from recoverctl.services.routine import (
    PitrReport,
    PitrRun,
    PitrState,
    Pushed,
    Status,
    StepRecord,
)
from recoverctl.services.session import StackSession
from recoverctl.services.verification import VerifyReport, verify_file

log = logging.getLogger(__name__)
StepName = Literal["backup", "verify", "push", "pitr", "drill", "prune", "report"]
STEPS: tuple[StepName, ...] = get_args(StepName)


def _quiet(_: str) -> None:
    return None


def _no_progress(_: int) -> None:
    return None


# --- the steps, replaceable in tests -----------------------------------------------------


def _backup(session: StackSession, on_bytes: OnBytes) -> BackupResult:
    return checked_backup.take(session, "routine: backup", on_bytes=on_bytes)


def _verify(session: StackSession, path: Path, deep: bool, on_bytes: OnBytes) -> VerifyReport:
    return verify_file(session, path, deep=deep, on_bytes=on_bytes)


def _drill(session: StackSession, progress: Callable[[str], None]) -> DrillResult | None:
    """A drill of the newest local backup (the one just made) when one is due, else None."""
    return drills.routine_drill(session, progress=progress)


def _prune(session: StackSession, step: Callable[[str], None]) -> tuple[int, list[str]]:
    """Deletes locally, then on every target; (how many, one line per storage)."""
    settings = session.settings
    deleted, lines = 0, []
    with fsio.project_lock(session.project, "routine: prune"):
        local = retention.delete_local(settings, retention.plan_local(settings), step)
        deleted += len(local.deleted)
        lines.append(f"local: kept {len(local.plan.kept)}, deleted {len(local.deleted)}")
        for name in sorted(settings.targets):
            try:
                done = retention.delete_target(
                    settings, retention.plan_target(settings, name), step
                )
            except RecoverctlError as exc:
                # The local part is done: a target's failure is an off-site one (exit 3).
                raise as_offsite(exc) from None
            deleted += len(done.deleted)
            lines.append(f"{name}: kept {len(done.plan.kept)}, deleted {len(done.deleted)}")
    return deleted, lines


@dataclass(frozen=True)
class Steps:
    backup: Callable[[StackSession, OnBytes], BackupResult] = _backup
    verify: Callable[[StackSession, Path, bool, OnBytes], VerifyReport] = _verify
    push: Callable[[StackSession, Path], Pushed] = service.push
    pitr: Callable[[StackSession, Callable[[str], None]], PitrRun] = service.base_backups
    pitr_state: Callable[[StackSession], PitrState] = service.pitr_state
    drill: Callable[[StackSession, Callable[[str], None]], DrillResult | None] = _drill
    prune: Callable[[StackSession, Callable[[str], None]], tuple[int, list[str]]] = _prune
    deep_due: Callable[[Any], bool] = service.deep_due
    drill_due: Callable[[Any], bool] = drills.drill_due


# --- the report --------------------------------------------------------------------------


@dataclass(frozen=True)
class RoutineStep(JsonResult):
    """One step's row in the routine's JSON: its record, with the names a step can have."""

    name: StepName
    status: Status
    seconds: float
    detail: str

    @classmethod
    def of(cls, steps: tuple[StepRecord, ...]) -> tuple[RoutineStep, ...]:
        # StepRecord's name is a plain str (a record read back from disk may name a step
        # another version ran); a report's steps are this run's, named from STEPS.
        return tuple(cls(cast(StepName, s.name), s.status, s.seconds, s.detail) for s in steps)


@dataclass(frozen=True)
class RoutineReport(JsonResult):
    """error: the step's failure that stopped the routine; the envelope's error, not its
    result."""

    project: str
    stack: str = field(metadata=meta(schema=StackName))
    started_at: datetime
    seconds: float = field(metadata=meta(digits=2))
    steps: tuple[StepRecord, ...] = field(
        metadata=meta(after="backup", encode=RoutineStep.of, schema=list[RoutineStep])
    )
    backup: Path | None
    error: RecoverctlError | None = field(default=None, metadata=INTERNAL)
    warnings: tuple[str, ...] = ()
    pitr: PitrReport | None = field(default=None, metadata=meta(after="steps"))

    @property
    @computed(after="stack")
    def ok(self) -> bool:
        return self.error is None

    @property
    def exit_status(self) -> int:
        return self.error.exit_code if self.error is not None else EXIT_OK


@dataclass
class _Run:
    session: StackSession
    progress: Callable[[str], None]
    steps: list[StepRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    pitr: PitrRun | None = None  # what the pitr step did, kept when it failed

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[dict[str, str]]:
        detail: dict[str, str] = {"text": ""}
        started = time.monotonic()
        self.progress(f"routine: {name}")
        try:
            yield detail
        except BaseException as exc:
            if isinstance(exc, RecoverctlError):
                why = exc.message
            elif isinstance(exc, KeyboardInterrupt):
                why = "terminated" if signals.terminated() else "interrupted"
            else:
                why = f"{type(exc).__name__}: {exc}"
            self.steps.append(StepRecord(name=name, status="failed", seconds=_since(started),
                                         detail=why))  # fmt: skip
            raise
        self.steps.append(
            StepRecord(name=name, status="ok", seconds=_since(started), detail=detail["text"])
        )
        log.info(f"routine: {name}: ok" + (f" ({detail['text']})" if detail["text"] else ""))

    def skip(self, name: str, why: str) -> None:
        self.steps.append(StepRecord(name=name, status="skipped", detail=why))
        log.info(f"routine: {name}: skipped ({why})")


def _since(started: float) -> float:
    return round(time.monotonic() - started, 3)


# --- the routine -------------------------------------------------------------------------


def routine(
    session: StackSession,
    *,
    progress: Callable[[str], None] = _quiet,
    on_bytes: OnBytes = _no_progress,
    steps: Steps = Steps(),  # frozen: one default is safe to share
) -> RoutineReport:
    """Runs the routine and returns its report, failed or not: the caller raises
    report.error (after showing the report). Only ROUTINE_RUNNING is raised from here: a
    routine that found another one running did nothing, and reports nothing."""
    settings = session.settings
    project = session.project
    with service.routine_lock(project, settings.stack):
        run = _Run(session, progress)
        reporting = Reporting(settings, run.warnings.append)
        logging.getLogger("recoverctl").addHandler(reporting.tail)
        try:
            return _run(session, project, on_bytes, steps, run, reporting)
        finally:
            logging.getLogger("recoverctl").removeHandler(reporting.tail)


def _run(
    session: StackSession,
    project: str,
    on_bytes: OnBytes,
    steps: Steps,
    run: _Run,
    reporting: Reporting,
) -> RoutineReport:
    settings = session.settings
    progress = run.progress
    started_at = datetime.now(UTC)
    started = time.monotonic()
    reporting.start()
    made: BackupResult | None = None
    pushed: Pushed | None = None
    pruned = 0
    error: RecoverctlError | None = None
    bug: Exception | None = None
    try:
        with run.step("backup") as d:
            made = steps.backup(session, on_bytes)
            d["text"] = f"{made.path.name}, {made.manifest.size} bytes"
        with run.step("verify") as d:
            deep = steps.deep_due(settings)
            verified = steps.verify(session, made.path, deep, on_bytes)
            kind = "deep" if verified.deep else "quick"
            if not verified.ok:
                raise _refused(made, verified)
            d["text"] = (
                f"{kind}, {verified.seconds:.1f} s"
                if verified.deep or not deep
                else f"{kind} (deep not run: quick checks failed)"
            )
            if not deep:
                d["text"] += f"; deep every {format_duration(settings.deep_every)}"
        if settings.targets:
            with run.step("push") as d:
                try:
                    pushed = steps.push(session, made.path)
                except RecoverctlError as exc:
                    raise as_offsite(exc) from None
                d["text"] = "to " + ", ".join(pushed.targets)
        else:
            run.skip("push", "no target configured")
        _pitr_step(run, session, steps)
        _drill_step(run, session, steps, made)
        if settings.retention.policy().empty:
            run.skip("prune", "no [retention] policy: nothing is ever deleted")
            run.warnings.append(
                "no [retention] policy: the routine never deletes a backup and the disk will "
                "fill; set keep_* rules under [retention] (README: Retention)"
            )
        else:
            with run.step("prune") as d:
                pruned, lines = steps.prune(session, progress)
                d["text"] = "; ".join(lines)
    except RecoverctlError as exc:
        error = signals.as_termination(exc)
    except KeyboardInterrupt:
        error = signals.as_termination(
            Interrupted(
                "The routine was interrupted; the steps after it did not run.",
                "Run it again: recoverctl routine"
                + prod_flag(settings.stack),
            )
        )
    except Exception as exc:  # a bug: reported and recorded as one, then raised (its traceback)
        bug = exc
        log.error(traceback.format_exc().rstrip(), extra={"tag": "traceback"})
        error = RecoverctlError(
            f"recoverctl failed unexpectedly: {type(exc).__name__}: {exc}",
            "This is a bug: report it with its traceback (on stderr, and in the log).",
            code=ErrorCode.INTERNAL_ERROR,
        )
    for name in STEPS[:-1]:
        if not any(s.name == name for s in run.steps):
            run.skip(name, "an earlier step failed")
    run.steps.sort(key=lambda s: STEPS.index(s.name))
    state = _pitr_state(run, session, steps)
    report = RoutineReport(
        project,
        settings.stack,
        started_at,
        time.monotonic() - started,
        tuple(run.steps),
        made.path if made else None,
        error,
        tuple(run.warnings),
        _pitr_report(state, run.pitr) if state or run.pitr else None,
    )
    run.steps.append(reporting.report(report, made, pushed, pruned, state))
    if bug is not None:
        raise bug
    return dataclasses.replace(report, steps=tuple(run.steps), warnings=tuple(run.warnings))


# --- point-in-time recovery ---------------------------------------------------------------


def _archiving(session: StackSession) -> bool:
    return session.settings.pitr is not None and pitr_svc.enabled(session)


def _pitr_step(run: _Run, session: StackSession, steps: Steps) -> None:
    """The base backup each repository is due, verified, then expired (services/routine.py).
    Its failure, a stalled archiver's too, fails the routine (exit 1) and stops drill and
    prune: the dumps are the way back while the archive is not."""
    if session.settings.pitr is None:
        run.skip("pitr", "no [pitr] table: no point-in-time recovery")
        return
    if not pitr_svc.enabled(session):
        run.skip("pitr", "archiving is not enabled for this stack")
        run.warnings.append(
            "[pitr] is set but archiving is off for this stack: turn it on with recoverctl "
            "pitr enable" + prod_flag(session.settings.stack)
        )
        return
    with run.step("pitr") as d:
        done = steps.pitr(session, lambda text: run.progress(f"routine: pitr: {text}"))
        run.pitr = done
        if done.error is not None:
            raise done.error
        d["text"] = _pitr_detail(done)


def _pitr_detail(done: PitrRun) -> str:
    parts = []
    for r in done.repos:
        if r.taken is None:
            parts.append(f"{r.repo}: none due")
        else:
            parts.append(f"{r.repo}: {r.taken} {r.label or '?'}, verified"
                         + (", expired" if r.expired else ""))  # fmt: skip
    return "; ".join(parts)


def _pitr_state(run: _Run, session: StackSession, steps: Steps) -> PitrState | None:
    """Archiving's state for the report, whatever the steps did; a warning when unreadable."""
    try:
        if not _archiving(session):
            return None
        return steps.pitr_state(session)
    except RecoverctlError as exc:
        run.warnings.append(f"could not read archiving's state for the report: {exc.message}")
        return None


def _pitr_report(state: PitrState | None, done: PitrRun | None) -> PitrReport:
    return PitrReport(
        archive_lag_seconds=state.archive_lag.total_seconds() if state else None,
        archive_failing=state.archive_failing if state else None,
        repos=done.repos if done else (),
    )


def _refused(made: BackupResult, verified: VerifyReport) -> RecoverctlError:
    kind = "deep" if verified.deep else "quick"
    bad = ", ".join(c.name for c in verified.checks if c.status == FAIL)
    return RecoverctlError(
        f"The new backup {made.path.name} failed its {kind} verification ({bad}); "
        "nothing was pushed or pruned.",
        f"See why: recoverctl verify {made.path}" + (" --deep" if verified.deep else ""),
        code=ErrorCode.BACKUP_CORRUPT,
    )


# --- the drill ---------------------------------------------------------------------------


def _drill_step(run: _Run, session: StackSession, steps: Steps, made: BackupResult) -> None:
    """A drill when drill_every is set and no drill passed within it. Its failure fails the
    routine (exit 1) and stops prune; the backup and push done before it stand."""
    settings = session.settings
    if settings.drill_every is None:
        run.skip("drill", "drill_every is not set: the routine does not drill")
        return
    if not steps.drill_due(settings):
        run.skip("drill", _not_due(settings))
        return
    with run.step("drill") as d:
        try:
            drilled = steps.drill(session, lambda text: run.progress(f"routine: drill: {text}"))
        except RecoverctlError as exc:  # no drill could start
            if exc.code in STOP_CODES:
                raise
            raise _drill_failed(exc.message, exc.hint, exc.code, exc.details, made) from None
        if drilled is None:
            d["text"] = "not due any more: a drill passed meanwhile"
            return
        run.warnings.extend(drilled.warnings)
        if not drilled.ok:
            raise _failed_drill(drilled, made)
        r = drilled.record
        took = f"{r.recovery_seconds:.0f} s" if r.recovery_seconds is not None else "?"
        d["text"] = f"{r.backup} passed, recovery time {took}"


def _not_due(settings: Any) -> str:
    last = drills.last_drill(settings, passed=True)
    when = f"last passed {last.finished_at:%Y-%m-%d %H:%M} UTC" if last else "none passed"
    return f"not due: {when}; every {in_units(settings.drill_every, DAY):g} days"


def _failed_drill(result: DrillResult, made: BackupResult) -> RecoverctlError:
    failed = drills.failure(result, unattended=True)
    assert failed is not None, "a drill that passed is no failure"
    return _drill_failed(failed.message, failed.hint, failed.code, failed.details, made)


def _drill_failed(
    message: str, hint: str | None, code: ErrorCode, details: str | None, made: BackupResult
) -> RecoverctlError:
    """A failed drill fails the routine with exit 1, in the drill's words and code (any
    code whose own status is not 1, e.g. a settings error's 2, becomes `failed`)."""
    return RecoverctlError(
        f"{message.rstrip()} The routine's backup {made.path.name} stays; nothing was pruned.",
        hint,
        code=code if exit_status(code) == EXIT_FAILED else ErrorCode.FAILED,
        details=details,
    )
