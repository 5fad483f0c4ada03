"""backup: pg_dump inside the db container, streamed to a file that appears only when whole;
then its push to the off-site targets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from recoverctl.adapters import fsio
from recoverctl.core import naming
from recoverctl.core.progress import OnBytes, Step
from recoverctl.core.result import INTERNAL, JsonResult, computed, meta
from recoverctl.errors import EXIT_OK, RecoverctlError
from recoverctl.services.dump import BackupResult as BackupResult
from recoverctl.services.dump import take_backup
from recoverctl.services.session import StackSession

if TYPE_CHECKING:
    from recoverctl.services.envcopy import EnvPushResult
    from recoverctl.services.offsite import Copy, PushResult
    from recoverctl.services.offsite_push import OffsitePush


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
class BackupDone(JsonResult):
    """The backup, and its copies on the off-site targets (none when none is configured);
    env: the env files' push that followed (None when none was due). error: the off-site
    failure (exit 3) once the result is shown; the envelope's error, not its result."""

    backup: BackupResult = field(metadata=meta(flatten=True))
    pushed: PushResult | None = field(default=None, metadata=INTERNAL)
    env: EnvPushResult | None = None
    error: RecoverctlError | None = field(default=None, compare=False, metadata=INTERNAL)

    @property
    def exit_status(self) -> int:
        return self.error.exit_code if self.error is not None else EXIT_OK

    @property
    @computed(after="backup")
    def offsite(self) -> tuple[Copy, ...]:
        return self.pushed.copies if self.pushed is not None else ()


def prewarm(session: StackSession) -> Callable[[], None]:
    """The S3 targets' clients made while the dump runs; returns the wait for them."""
    from recoverctl.services import offsite

    return offsite.prewarm(session)


def push(
    session: StackSession,
    made: BackupResult,
    *,
    step: Step = _quiet,
    on_bytes: OnBytes | None = None,
) -> BackupDone:
    """The new backup, checked as it was written, to every configured target, then the env
    files to each target when they changed since their last copy there. Whatever fails
    there is the result's error (exit 3): the local backup stays as it is."""
    if not session.settings.targets:
        return BackupDone(made)
    # Imported here: a backup without targets (timed against the playbook's pipeline)
    # never needs them.
    from recoverctl.services import offsite_push

    done = offsite_push.push(session, made.path, step=step, on_bytes=on_bytes)
    return BackupDone(made, done.backup, done.env, _failure(made, done))


def _failure(made: BackupResult, done: OffsitePush) -> RecoverctlError | None:
    """The off-site failure in backup's words: it names the backup that stays."""
    cause = done.cause
    if cause is None or done.stopped_at == "backup":
        return cause
    from recoverctl.services.offsite import OffsiteFailed

    hint = cause.hint + " " if cause.hint else ""
    if done.stopped_at == "start":
        return OffsiteFailed(
            f"{made.path.name} is good here, but copying it off-site could not start: "
            + cause.message,
            hint + f"The local backup stays; push it once fixed: recoverctl push {made.path.name}.",
            [],
        )
    reason = cause.message.removeprefix("Copying the env files off-site failed: ")
    return OffsiteFailed(
        f"{made.path.name} is good here and copied off-site, but copying the env files "
        f"failed: {reason}",
        hint + "The backup stays; push the env files once fixed: recoverctl env push.",
        [done.backup] if done.backup is not None else [],
    )
