"""A backup taken, then verified: what `down --volumes`, `up --prod` and the routine make
before they erase, rebuild, push or prune anything. A backup that fails its checks raises,
in the caller's words (they say what was not done because of it)."""

from __future__ import annotations

from collections.abc import Callable

from recoverctl.adapters import fsio
from recoverctl.core.progress import OnBytes, Step
from recoverctl.errors import RecoverctlError
from recoverctl.services.dump import BackupResult, take_backup
from recoverctl.services.session import StackSession
from recoverctl.services.verification import VerifyReport, verify_file

# The error a backup that failed its checks stops its caller with.
Refused = Callable[[BackupResult, VerifyReport], RecoverctlError]


def _no_progress(_: int) -> None:
    return None


def _quiet(_: str) -> None:
    return None


def take(session: StackSession, why: str, *, on_bytes: OnBytes = _no_progress) -> BackupResult:
    """A custom-format backup into backups/, under the project lock (held as `why`)."""
    db = session.db()
    with fsio.project_lock(session.project, why):
        return take_backup(db, session.ref, session.settings.backup_dir, "custom", on_bytes)


def check(
    session: StackSession,
    made: BackupResult,
    refused: Refused,
    *,
    deep: bool = False,
    on_bytes: OnBytes = _no_progress,
) -> VerifyReport:
    """verify's checks on the new backup, remembered in its verification record; raises
    refused(made, report) when they fail."""
    verified = verify_file(session, made.path, deep=deep, on_bytes=on_bytes)
    if not verified.ok:
        raise refused(made, verified)
    return verified


def take_checked(
    session: StackSession,
    why: str,
    refused: Refused,
    *,
    announce: str,
    step: Step = _quiet,
    on_bytes: OnBytes = _no_progress,
) -> tuple[BackupResult, VerifyReport]:
    """take, then a quick check: announce is the step line said before the backup."""
    step(announce)
    made = take(session, why, on_bytes=on_bytes)
    step(f"verifying {made.path.name}")
    return made, check(session, made, refused)
