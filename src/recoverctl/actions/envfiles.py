"""env push, env pull: the env files (and the browser key export) sealed on the targets,
and brought back on a machine that has none."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from recoverctl.adapters import fsio
from recoverctl.core.progress import Step
from recoverctl.core.result import INTERNAL
from recoverctl.errors import EXIT_OK, RecoverctlError
from recoverctl.services import envcopy
from recoverctl.services.envcopy import EnvPullResult, EnvPushResult
from recoverctl.services.session import StackSession


def _quiet(_: object) -> None:
    return None


@dataclass(frozen=True)
class EnvPushDone(EnvPushResult):
    """The push's result; error: a target's failure (exit 3) once the result is shown, the
    envelope's error, not its result."""

    error: RecoverctlError | None = field(default=None, compare=False, metadata=INTERNAL)

    @property
    def exit_status(self) -> int:
        return self.error.exit_code if self.error is not None else EXIT_OK


def push(
    session: StackSession, targets: Sequence[str] | None = None, *, step: Step = _quiet
) -> EnvPushDone:
    """Every env file here, sealed, to every configured target (or those named). A target
    that failed is the result's error (exit 3); what cannot start raises."""
    with fsio.project_lock(session.project, "env push"):
        pushed = envcopy.push(session, targets, step=step)
    error = None if pushed.ok else envcopy.failure(pushed)
    return EnvPushDone(pushed.project, pushed.files, pushed.copies, error)


def pull(
    session: StackSession, target: str, identity: Path | None = None, *, step: Step = _quiet
) -> EnvPullResult:
    """The env files from the target, each missing one written (mode 0600); never over one
    that exists. The identity is the flag's, else RECOVERCTL_IDENTITY_FILE's, else the
    settings file's."""
    return envcopy.pull(session, target, identity or session.settings.identity_file, step=step)
