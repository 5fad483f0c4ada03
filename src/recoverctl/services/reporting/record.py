"""routine-STACK.json: how this routine ended, with what carries over from earlier runs
(the last success, the last backup, each target's last good push)."""

from __future__ import annotations

from datetime import UTC, datetime

from recoverctl.services import routine as service
from recoverctl.services.dump import BackupResult
from recoverctl.services.reporting.outcome import Outcome
from recoverctl.services.routine import (
    PitrRecord,
    PitrState,
    Pushed,
    RoutineRecord,
    TargetState,
)
from recoverctl.settings import Settings


def build(
    settings: Settings,
    outcome: Outcome,
    made: BackupResult | None,
    pushed: Pushed | None,
    pruned: int,
    pitr: PitrState | None = None,
) -> RoutineRecord:
    previous = service.load_record(settings)
    now = datetime.now(UTC)
    targets = dict(previous.targets) if previous else {}
    push_step = next((s for s in outcome.steps if s.name == "push"), None)
    if push_step is not None and push_step.status != "skipped":
        # Per target when the push service says so; else the step's verdict for all.
        said = service.copy_states(pushed.detail if pushed else None, outcome.error)
        for name in sorted(settings.targets):
            ok = said.get(name, push_step.status == "ok")
            before = targets.get(name)
            targets[name] = TargetState(
                ok=ok,
                at=now,
                last_success_at=now if ok else (before.last_success_at if before else None),
            )
    targets = {k: v for k, v in targets.items() if k in settings.targets}
    error = outcome.error
    return RoutineRecord(
        project=outcome.project,
        stack=outcome.stack,
        started_at=outcome.started_at,
        finished_at=now,
        ok=outcome.ok,
        exit_status=outcome.exit_status,
        error_code=str(error.code) if error else None,
        message=error.message if error else None,
        steps=outcome.steps,
        backup=made.path.name if made else None,
        backup_size=made.manifest.size if made else None,
        backup_seconds=made.manifest.duration_seconds if made else None,
        last_success_at=now if outcome.ok else (previous.last_success_at if previous else None),
        last_backup_at=made.manifest.started_at
        if made
        else (previous.last_backup_at if previous else None),
        last_deep_verify_at=service.last_deep_verification(settings),
        pruned=pruned,
        targets=targets,
        pitr=_pitr(pitr),
    )


def _pitr(state: PitrState | None) -> PitrRecord | None:
    # Not carried over: a state nobody measured this run is not archiving's state now.
    if state is None:
        return None
    return PitrRecord(
        measured_at=state.at,
        archive_lag_seconds=state.archive_lag.total_seconds(),
        archive_failing=state.archive_failing,
        base_backups=dict(state.newest),
    )


def save(settings: Settings, record: RoutineRecord) -> str | None:
    """Writes it; what went wrong, for the report step, or None."""
    try:
        service.save_record(settings, record)
    except OSError as exc:
        return f"could not write {service.record_path(settings)}: {exc.strerror or exc}"
    return None
