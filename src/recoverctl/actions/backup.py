"""backup: pg_dump inside the db container, streamed to a file that appears only when whole."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recoverctl.adapters import fsio
from recoverctl.core import naming
from recoverctl.services import offsite
from recoverctl.services.dump import BackupResult, OnBytes, take_backup
from recoverctl.services.offsite import PushResult
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


def _quiet(_: object) -> None:
    return None


@dataclass(frozen=True)
class BackupDone:
    """The backup, and its copies on the off-site targets (none when none is configured)."""

    backup: BackupResult
    pushed: PushResult | None = None

    def to_json(self) -> dict[str, Any]:
        copies = self.pushed.copies if self.pushed is not None else ()
        return {**self.backup.to_json(), "offsite": [c.to_json() for c in copies]}


def push(
    session: StackSession,
    made: BackupResult,
    *,
    step: Callable[[str], None] = _quiet,
    on_bytes: OnBytes | None = None,
) -> BackupDone:
    """The new backup, checked as it was written, to every configured target. A target that
    fails raises offsite.OffsiteFailed (exit 3): the local backup stays as it is."""
    if not session.settings.targets:
        return BackupDone(made)
    with fsio.project_lock(session.project, "push"):
        return BackupDone(
            made, offsite.push_backup(session, made.path, step=step, on_bytes=on_bytes)
        )
