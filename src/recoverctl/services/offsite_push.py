"""A good local backup to every off-site target, then the env files to each target whose
copy of them is out of date: what `backup`, the routine and `up --prod` do once their
backup is good. From here every failure is an off-site one (exit 3: the local backup
stays), returned with what was copied before it; only an interruption is raised."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from recoverctl.adapters import fsio
from recoverctl.core.progress import OnBytes, Step
from recoverctl.errors import EXIT_OK, STOP_CODES, ErrorCode, RecoverctlError

if TYPE_CHECKING:
    from recoverctl.services.envcopy import EnvPushResult
    from recoverctl.services.offsite import PushResult
    from recoverctl.services.session import StackSession

# Where a push stopped: before any copy was tried (the lock, opening a target), copying
# the backup, or copying the env files after it.
Stage = Literal["start", "backup", "env"]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class OffsitePush:
    """backup: the backup's copies (None when none was tried); env: the env files' push
    (None when none was due or it failed). cause: what stopped it, as its raiser said it;
    stopped_at: where."""

    path: Path
    backup: PushResult | None = None
    env: EnvPushResult | None = None
    cause: RecoverctlError | None = None
    stopped_at: Stage | None = None

    @property
    def error(self) -> RecoverctlError | None:
        """The failure, as an off-site one (exit 3) in its cause's words."""
        return as_offsite(self.cause) if self.cause is not None else None

    @property
    def exit_status(self) -> int:
        return self.error.exit_code if self.error is not None else EXIT_OK


def push(
    session: StackSession,
    path: Path,
    *,
    step: Step = _quiet,
    on_bytes: OnBytes | None = None,
) -> OffsitePush:
    """The backup to every configured target, then the env files where they changed
    (nothing when no target is configured). Under the project lock: one writer per target."""
    if not session.settings.targets:
        return OffsitePush(path)
    try:
        with fsio.project_lock(session.project, "push"):
            return push_held(session, path, step=step, on_bytes=on_bytes)
    except RecoverctlError as exc:
        if exc.code in STOP_CODES:
            raise
        return OffsitePush(path, None, None, exc, "start")


def push_held(
    session: StackSession,
    path: Path,
    *,
    step: Step = _quiet,
    on_bytes: OnBytes | None = None,
) -> OffsitePush:
    """`push`, for a caller that holds the project lock already (upgrade-postgres)."""
    if not session.settings.targets:
        return OffsitePush(path)
    # Imported here: a backup without targets never needs them (nor boto3, paramiko, age).
    from recoverctl.services import envcopy, offsite

    stage: Stage = "start"
    pushed: PushResult | None = None
    try:
        pushed = offsite.push_backup(session, path, step=step, on_bytes=on_bytes)
        if not pushed.ok:
            return OffsitePush(path, pushed, None, offsite.failure([pushed]), "backup")
        stage = "env"
        env = envcopy.push_if_changed(session, step=step)
    except RecoverctlError as exc:
        if exc.code in STOP_CODES:
            raise
        # Before the env step, no copy was tried: a target that could not even be opened.
        return OffsitePush(path, pushed, None, exc, stage)
    if env is not None and not env.ok:
        return OffsitePush(path, pushed, None, envcopy.failure(env), "env")
    return OffsitePush(path, pushed, env)


def as_offsite(exc: RecoverctlError) -> RecoverctlError:
    """A target's failure once the local backup is good: an off-site failure (exit 3),
    whatever the target said, in its own words. An interruption stays one."""
    if exc.code in (*STOP_CODES, ErrorCode.OFFSITE_FAILED):
        return exc
    return RecoverctlError(
        exc.message, exc.hint, code=ErrorCode.OFFSITE_FAILED, details=exc.details
    )
