"""drill: prove a backup brings the vault back, in a throwaway copy of the stack, timed.

The machinery is services/drill.py, which the scheduled routine calls too."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from recoverctl.actions.restore import local_zone
from recoverctl.core.pitrtime import parse_point
from recoverctl.core.progress import Step
from recoverctl.services import drill as drills
from recoverctl.services.drill import DrillResult as DrillResult

# The drill's verdict as the error it ends with, for the CLI.
from recoverctl.services.drill import failure as failure
from recoverctl.services.session import StackSession


def _quiet(_: str) -> None:
    return None


def drill(
    session: StackSession,
    *,
    spec: str = "latest",
    target: str | None = None,
    identity: Path | None = None,
    key_file: Path | None = None,
    passphrase: str | None = None,
    to_time: str | None = None,
    progress: Step = _quiet,
) -> DrillResult:
    """Everything that can be refused is refused before the drill stack starts: the backup,
    the target and its identity, the key export and its passphrase. With target, spec names
    the copy there (latest: its newest complete one). With to_time (TIME or latest), the
    drill restores the live stack's pgBackRest repository (target's) to that point instead
    of a dump."""
    settings = session.settings
    if to_time is not None:
        point = parse_point(to_time, zone=local_zone(), now=datetime.now(UTC))
        source = drills.pitr_source(session, point, target)
    elif target is not None:
        identity = identity or settings.identity_file
        source = drills.target_source(session, target, identity, spec)
    else:
        source = drills.local_source(settings, spec)
    key = drills.key_proof(settings, key_file, passphrase)
    return drills.run_drill(session, source=source, key=key, progress=progress)
