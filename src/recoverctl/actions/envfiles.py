"""env push, env pull: the env files (and the browser key export) sealed on the targets,
and brought back on a machine that has none."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from recoverctl.adapters import fsio
from recoverctl.services import envcopy
from recoverctl.services.envcopy import EnvPullResult, EnvPushResult, Step

# env push's failure, which carries its result, named here for the CLI.
from recoverctl.services.envcopy import EnvPushFailed as EnvPushFailed
from recoverctl.services.session import StackSession


def _quiet(_: object) -> None:
    return None


def push(
    session: StackSession, targets: Sequence[str] | None = None, *, step: Step = _quiet
) -> EnvPushResult:
    """Every env file here, sealed, to every configured target (or those named)."""
    with fsio.project_lock(session.project, "env push"):
        return envcopy.push(session, targets, step=step)


def pull(
    session: StackSession, target: str, identity: Path | None = None, *, step: Step = _quiet
) -> EnvPullResult:
    """The env files from the target, each missing one written (mode 0600); never over one
    that exists. The identity is the flag's, else RECOVERCTL_IDENTITY_FILE's, else the
    settings file's."""
    return envcopy.pull(session, target, identity or session.settings.identity_file, step=step)
