"""routine: what the timer runs. backup → verify (deep when due) → push → drill (when due)
→ prune → report, in that order; a failed step stops every later step but the report, so
nothing is ever pruned after a failed backup, verification, push or drill (when the newest
backup did not bring the vault back, the older ones may be the ones that can). What a
failed step leaves done stays done: a failed drill keeps the backup it follows, pushed.
The report (routine-STACK.json, Healthchecks, apprise, the Prometheus textfile) runs
whatever happened, and a monitoring endpoint that is down never changes the routine's
verdict."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recoverctl import signals
from recoverctl.adapters import fsio, monitor
from recoverctl.core.checks import FAIL
from recoverctl.core.duration import DAY, format_duration, in_units
from recoverctl.errors import (
    EXIT_FAILED,
    EXIT_OK,
    ErrorCode,
    Interrupted,
    RecoverctlError,
    exit_status,
)
from recoverctl.services import drill as drills
from recoverctl.services import retention
from recoverctl.services import routine as service
from recoverctl.services.drill import DrillResult
from recoverctl.services.dump import BackupResult, take_backup
from recoverctl.services.load import OnBytes
from recoverctl.services.routine import Pushed, RoutineRecord, StepRecord, TargetState
from recoverctl.services.session import StackSession
from recoverctl.services.verification import VerifyReport

log = logging.getLogger(__name__)
STEPS = ("backup", "verify", "push", "drill", "prune", "report")
TAIL_LINES = 40


def _quiet(_: str) -> None:
    return None


def _no_progress(_: int) -> None:
    return None


# --- the steps, replaceable in tests -----------------------------------------------------


def _backup(session: StackSession, on_bytes: OnBytes) -> BackupResult:
    db = session.db()
    with fsio.project_lock(session.project, "routine: backup"):
        return take_backup(db, session.ref, session.settings.backup_dir, "custom", on_bytes)


def _verify(session: StackSession, path: Path, deep: bool, on_bytes: OnBytes) -> VerifyReport:
    return service.verify_and_record(session, path, deep=deep, on_bytes=on_bytes)


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
                raise service.as_offsite(exc) from None
            deleted += len(done.deleted)
            lines.append(f"{name}: kept {len(done.plan.kept)}, deleted {len(done.deleted)}")
    return deleted, lines


@dataclass(frozen=True)
class Steps:
    backup: Callable[[StackSession, OnBytes], BackupResult] = _backup
    verify: Callable[[StackSession, Path, bool, OnBytes], VerifyReport] = _verify
    push: Callable[[StackSession, Path], Pushed] = service.push
    drill: Callable[[StackSession, Callable[[str], None]], DrillResult | None] = _drill
    prune: Callable[[StackSession, Callable[[str], None]], tuple[int, list[str]]] = _prune
    deep_due: Callable[[Any], bool] = service.deep_due
    drill_due: Callable[[Any], bool] = drills.drill_due


# --- the report --------------------------------------------------------------------------


@dataclass(frozen=True)
class RoutineReport:
    project: str
    stack: str
    started_at: datetime
    seconds: float
    steps: tuple[StepRecord, ...]
    backup: Path | None
    error: RecoverctlError | None = None
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def exit_status(self) -> int:
        return self.error.exit_code if self.error is not None else EXIT_OK

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "stack": self.stack,
            "ok": self.ok,
            "started_at": self.started_at.isoformat(),
            "seconds": round(self.seconds, 2),
            "backup": str(self.backup) if self.backup else None,
            "steps": [s.model_dump(mode="json") for s in self.steps],
            "warnings": list(self.warnings),
        }


class _Tail(logging.Handler):
    """The run's last log lines, for the /fail ping's body."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: deque[str] = deque(maxlen=TAIL_LINES)

    def emit(self, record: logging.LogRecord) -> None:
        when = time.strftime("%H:%M:%S", time.localtime(record.created))
        for line in record.getMessage().splitlines() or [""]:
            self.lines.append(f"{when} {record.levelname.lower()}: {line}")


@dataclass
class _Run:
    session: StackSession
    progress: Callable[[str], None]
    steps: list[StepRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    monitoring: list[str] = field(default_factory=list)  # what monitoring could not do

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
        tail = _Tail()
        logging.getLogger("recoverctl").addHandler(tail)
        try:
            return _run(session, project, progress, on_bytes, steps, tail)
        finally:
            logging.getLogger("recoverctl").removeHandler(tail)


def _run(
    session: StackSession,
    project: str,
    progress: Callable[[str], None],
    on_bytes: OnBytes,
    steps: Steps,
    tail: _Tail,
) -> RoutineReport:
    settings = session.settings
    started_at = datetime.now(UTC)
    started = time.monotonic()
    run = _Run(session, progress)
    rid = str(uuid.uuid4())
    hc = settings.monitoring.healthchecks_url
    if hc:
        _warn(run, monitor.ping(hc, "start", rid=rid))
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
                bad = ", ".join(c.name for c in verified.checks if c.status == FAIL)
                raise RecoverctlError(
                    f"The new backup {made.path.name} failed its {kind} verification ({bad}); "
                    "nothing was pushed or pruned.",
                    f"See why: recoverctl verify {made.path}"
                    + (" --deep" if verified.deep else ""),
                    code=ErrorCode.BACKUP_CORRUPT,
                )
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
                    raise service.as_offsite(exc) from None
                d["text"] = "to " + ", ".join(pushed.targets)
        else:
            run.skip("push", "no target configured")
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
        error = _terminated(exc)
    except KeyboardInterrupt:
        error = _terminated(
            Interrupted(
                "The routine was interrupted; the steps after it did not run.",
                "Run it again: recoverctl routine"
                + (" --prod" if settings.stack == "prod" else ""),
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
    report = RoutineReport(
        project,
        settings.stack,
        started_at,
        time.monotonic() - started,
        tuple(run.steps),
        made.path if made else None,
        error,
        tuple(run.warnings),
    )
    _report(session, report, made, pushed, pruned, rid, tail, run)
    if bug is not None:
        raise bug
    return dataclasses.replace(report, steps=tuple(run.steps), warnings=tuple(run.warnings))


def _terminated(error: RecoverctlError) -> RecoverctlError:
    """An interruption under SIGTERM is a termination: the record, the metrics and the
    process's exit (cli/app.py) then all say 143, terminated."""
    if error.code is ErrorCode.INTERRUPTED and signals.terminated():
        return RecoverctlError(
            error.message, error.hint, code=ErrorCode.TERMINATED, details=error.details
        )
    return error


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
            if exc.code in (ErrorCode.INTERRUPTED, ErrorCode.TERMINATED):
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
    r = result.record
    if r.error is not None:
        try:
            code = ErrorCode(r.error.code)
        except ValueError:
            code = ErrorCode.FAILED
        return _drill_failed(r.error.message, r.error.hint, code, r.error.details, made)
    if r.leftovers:
        return _drill_failed(
            f"The drill passed, but its stack {r.drill_project} is not all removed: "
            f"{', '.join(r.leftovers[:4])}.",
            f"Remove it by hand: docker compose -p {r.drill_project} down --volumes --rmi local",
            ErrorCode.CLEANUP_INCOMPLETE,
            None,
            made,
        )
    failing = ", ".join(c.name for c in result.checks if c.status == FAIL) or "?"
    return _drill_failed(
        f"The drill of {r.backup} brought the vault back with failing checks ({failing}).",
        "Each check's evidence is in the drill record"
        + (f" ({result.path})" if result.path else "")
        + "; fix the cause, then run recoverctl drill.",
        ErrorCode.CHECKS_FAILED,
        None,
        made,
    )


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


def _warn(run: _Run, problem: str | None) -> None:
    if problem:
        run.monitoring.append(problem)
        text = f"monitoring: {problem} (the routine's result is unchanged)"
        run.warnings.append(text)
        log.warning(text)


def _report(
    session: StackSession,
    report: RoutineReport,
    made: BackupResult | None,
    pushed: Pushed | None,
    pruned: int,
    rid: str,
    tail: _Tail,
    run: _Run,
) -> None:
    settings = session.settings
    m = settings.monitoring
    started = time.monotonic()
    record = _record(session, report, made, pushed, pruned)
    try:
        service.save_record(settings, record)
    except OSError as exc:
        _warn(run, f"could not write {service.record_path(settings)}: {exc.strerror or exc}")
    summary = _summary(report)
    if m.prometheus_textfile is not None:
        _warn(
            run,
            monitor.write_textfile(
                m.prometheus_textfile,
                metrics(record),
                {"project": record.project, "stack": record.stack},
            ),
        )
    if m.healthchecks_url:
        body = summary if report.ok else summary + "\n\nlast log lines:\n" + "\n".join(tail.lines)
        kind: monitor.Ping = "success" if report.ok else "fail"
        _warn(run, monitor.ping(m.healthchecks_url, kind, body, rid=rid))
    wanted = "success" if report.ok else "fail"
    if m.notify and wanted in m.notify_on:
        verdict = "ok" if report.ok else "FAILED"
        title = f"recoverctl routine {verdict}: {report.project} ({report.stack})"
        _warn(run, monitor.notify(m.notify, title, summary, ok=report.ok))
    run.steps.append(
        StepRecord(
            name="report",
            status="failed" if run.monitoring else "ok",
            seconds=_since(started),
            detail="; ".join(run.monitoring) or _reported_to(settings),
        )
    )


def _reported_to(settings: Any) -> str:
    m = settings.monitoring
    where = ["routine record"]
    if m.prometheus_textfile is not None:
        where.append("textfile")
    if m.healthchecks_url:
        where.append("healthchecks")
    if m.notify:
        where.append("notifications")
    return ", ".join(where)


def _summary(report: RoutineReport) -> str:
    lines = [
        f"recoverctl routine on {report.project} ({report.stack}): "
        + ("ok" if report.ok else f"FAILED ({report.error.code if report.error else '?'})"),
    ]
    if report.error is not None:
        lines.append(f"error: {report.error.message}")
        if report.error.hint:
            lines.append(f"hint: {report.error.hint}")
    for s in report.steps:
        lines.append(f"  {s.name}: {s.status}" + (f" ({s.detail})" if s.detail else ""))
    return "\n".join(lines)


def _record(
    session: StackSession,
    report: RoutineReport,
    made: BackupResult | None,
    pushed: Pushed | None,
    pruned: int,
) -> RoutineRecord:
    settings = session.settings
    previous = service.load_record(settings)
    now = datetime.now(UTC)
    targets = dict(previous.targets) if previous else {}
    push_step = next((s for s in report.steps if s.name == "push"), None)
    if push_step is not None and push_step.status != "skipped":
        # Per target when the push service says so; else the step's verdict for all.
        said = service.copy_states(pushed.detail if pushed else None, report.error)
        for name in sorted(settings.targets):
            ok = said.get(name, push_step.status == "ok")
            before = targets.get(name)
            targets[name] = TargetState(
                ok=ok,
                at=now,
                last_success_at=now if ok else (before.last_success_at if before else None),
            )
    targets = {k: v for k, v in targets.items() if k in settings.targets}
    error = report.error
    return RoutineRecord(
        project=report.project,
        stack=report.stack,
        started_at=report.started_at,
        finished_at=now,
        ok=report.ok,
        exit_status=report.exit_status,
        error_code=str(error.code) if error else None,
        message=error.message if error else None,
        steps=report.steps,
        backup=made.path.name if made else None,
        backup_size=made.manifest.size if made else None,
        backup_seconds=made.manifest.duration_seconds if made else None,
        last_success_at=now if report.ok else (previous.last_success_at if previous else None),
        last_backup_at=made.manifest.started_at
        if made
        else (previous.last_backup_at if previous else None),
        last_deep_verify_at=service.last_deep_verification(settings),
        pruned=pruned,
        targets=targets,
    )


def metrics(record: RoutineRecord) -> list[monitor.Metric]:
    """What node_exporter publishes; times are Unix seconds, 0 when never."""
    labels = {"project": record.project, "stack": record.stack}

    def ts(when: datetime | None) -> float:
        return when.timestamp() if when else 0.0

    out = [
        monitor.Metric("recoverctl_routine_last_run_timestamp_seconds",
                       "When the last routine ended.", ts(record.finished_at), labels),
        monitor.Metric("recoverctl_routine_last_success_timestamp_seconds",
                       "When a routine last ended without any failure.",
                       ts(record.last_success_at), labels),
        monitor.Metric("recoverctl_routine_last_exit_status",
                       "The last routine's exit status (0 ok, 1 failed, 3 off-site failed).",
                       record.exit_status, labels),
        monitor.Metric("recoverctl_routine_last_duration_seconds", "How long the last routine took.",
                       (record.finished_at - record.started_at).total_seconds(), labels),
        monitor.Metric("recoverctl_backup_last_timestamp_seconds",
                       "When the newest routine backup was taken.", ts(record.last_backup_at),
                       labels),
        monitor.Metric("recoverctl_verify_deep_last_success_timestamp_seconds",
                       "When a backup last passed a deep verification (restored and counted).",
                       ts(record.last_deep_verify_at), labels),
        monitor.Metric("recoverctl_prune_last_deleted_backups",
                       "How many backups the last routine's prune deleted.", record.pruned, labels),
    ]  # fmt: skip
    if record.backup_size is not None and record.backup_seconds is not None:
        out += [
            monitor.Metric("recoverctl_backup_last_size_bytes",
                           "Size of the last routine's backup.", record.backup_size, labels),
            monitor.Metric("recoverctl_backup_last_duration_seconds",
                           "How long the last routine's backup took.", record.backup_seconds,
                           labels),
        ]  # fmt: skip
    for name, state in sorted(record.targets.items()):
        target = {**labels, "target": name}
        out += [
            monitor.Metric("recoverctl_offsite_last_push_ok",
                           "1 when the last push to this target succeeded.", int(state.ok), target),
            monitor.Metric("recoverctl_offsite_last_success_timestamp_seconds",
                           "When a push to this target last succeeded.",
                           ts(state.last_success_at), target),
        ]  # fmt: skip
    return out
