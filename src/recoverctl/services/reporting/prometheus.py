"""The routine's metrics, for node_exporter's textfile collector."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from recoverctl.adapters import monitor
from recoverctl.services.routine import RoutineRecord


def write(path: Path, record: RoutineRecord) -> str | None:
    """Replaces this stack's lines in the textfile (other stacks' stay); a problem or None."""
    return monitor.write_textfile(
        path, metrics(record), {"project": record.project, "stack": record.stack}
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
    return out + _pitr(record, labels)


def _pitr(record: RoutineRecord, labels: dict[str, str]) -> list[monitor.Metric]:
    """Archiving's state as the routine measured it; none without [pitr] and archiving on.
    A repository without a base backup has no age: its series is absent."""
    p = record.pitr
    if p is None:
        return []
    out = [
        monitor.Metric("recoverctl_pitr_archive_lag_seconds",
                       "How long the oldest WAL not yet archived has waited (0: none waits).",
                       p.archive_lag_seconds, labels),
        monitor.Metric("recoverctl_pitr_archive_failing",
                       "1 when the archiver's last attempt failed.", int(p.archive_failing),
                       labels),
    ]  # fmt: skip
    for name, newest in sorted(p.base_backups.items()):
        if newest is None:
            continue
        out.append(
            monitor.Metric("recoverctl_pitr_base_backup_age_seconds",
                           "How old this repository's newest base backup was when the routine ended.",
                           max(0.0, (p.measured_at - newest).total_seconds()),
                           {**labels, "repo": name})
        )  # fmt: skip
    return out
