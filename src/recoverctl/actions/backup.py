"""backup: pg_dump inside the db container, streamed to a file that appears only when whole."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recoverctl.adapters import fsio
from recoverctl.core import naming
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.services.dump import BackupResult as BackupResult
from recoverctl.services.dump import OnBytes, take_backup
from recoverctl.services.session import StackSession

if TYPE_CHECKING:
    from recoverctl.services.envcopy import EnvPushResult
    from recoverctl.services.offsite import PushResult


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
    """The backup, and its copies on the off-site targets (none when none is configured);
    env: the env files' push that followed (None when none was due)."""

    backup: BackupResult
    pushed: PushResult | None = None
    env: EnvPushResult | None = None

    def to_json(self) -> dict[str, Any]:
        copies = self.pushed.copies if self.pushed is not None else ()
        return {
            **self.backup.to_json(),
            "offsite": [c.to_json() for c in copies],
            "env": self.env.to_json() if self.env is not None else None,
        }


def prewarm(session: StackSession) -> Callable[[], None]:
    """The S3 targets' clients made while the dump runs; returns the wait for them."""
    from recoverctl.services import offsite

    return offsite.prewarm(session)


def push(
    session: StackSession,
    made: BackupResult,
    *,
    step: Callable[[str], None] = _quiet,
    on_bytes: OnBytes | None = None,
) -> BackupDone:
    """The new backup, checked as it was written, to every configured target, then the env
    files to each target when they changed since their last copy there. A target that
    fails either raises offsite.OffsiteFailed (exit 3): the local backup stays as it is."""
    if not session.settings.targets:
        return BackupDone(made)
    # Imported here: a backup without targets (timed against the playbook's pipeline)
    # never needs them.
    from recoverctl.services import offsite

    with fsio.project_lock(session.project, "push"):
        pushed = offsite.push_backup(session, made.path, step=step, on_bytes=on_bytes)
        return BackupDone(made, pushed, _push_env(session, made, pushed, step))


def _push_env(
    session: StackSession, made: BackupResult, pushed: PushResult, step: Callable[[str], None]
) -> EnvPushResult | None:
    """The env files' push, inside the off-site step: whatever fails is OffsiteFailed (exit
    3, the backup and its copies kept), never an error that hides the backup."""
    from recoverctl.services import envcopy, offsite

    try:
        return envcopy.push_if_changed(session, step=step)
    except RecoverctlError as exc:
        if exc.code in (ErrorCode.INTERRUPTED, ErrorCode.TERMINATED):
            raise
        hint = exc.hint + " " if exc.hint else ""
        cause = exc.message.removeprefix("Copying the env files off-site failed: ")
        raise offsite.OffsiteFailed(
            f"{made.path.name} is good here and copied off-site, but copying the env files "
            f"failed: {cause}",
            hint + "The backup stays; push the env files once fixed: recoverctl env push.",
            [pushed],
        ) from None
