"""backup: pg_dump inside the db container, streamed to a file that appears only when whole."""

from __future__ import annotations

from pathlib import Path

from recoverctl.adapters import fsio
from recoverctl.core import naming
from recoverctl.services.dump import BackupResult, OnBytes, take_backup
from recoverctl.services.session import StackSession


def _no_progress(_: int) -> None:
    return None


def backup(
    session: StackSession,
    *,
    fmt: naming.Format = "custom",
    output_dir: Path | None = None,
    on_bytes: OnBytes = _no_progress,
) -> BackupResult:
    db = session.db()
    with fsio.project_lock(session.project, "backup"):
        return take_backup(
            db, session.ref, output_dir or session.settings.backup_dir, fmt, on_bytes
        )
