"""restore: plan (verify the file, describe what is replaced), then carry the plan out.

The machinery lives in services/restore.py, which recover shares."""

from __future__ import annotations

from recoverctl.services import restore as swap
from recoverctl.services.restore import OnBytes, Prepared, RestoreResult, Step
from recoverctl.services.session import StackSession


def _quiet(_: object) -> None:
    return None


def prepare(
    session: StackSession,
    spec: str,
    *,
    safety_backup: bool = True,
    dry_run: bool = False,
    allow_newer_data: bool = False,
) -> Prepared:
    """Verifies and plans; changes nothing. A dry run hashes the file now, since no load
    will."""
    return swap.prepare(
        session,
        spec,
        safety_backup=safety_backup,
        hash_now=dry_run,
        allow_newer_data=allow_newer_data,
    )


def restore(
    prep: Prepared, session: StackSession, *, step: Step = _quiet, on_bytes: OnBytes = _quiet
) -> RestoreResult:
    return swap.restore(prep, session, step=step, on_bytes=on_bytes)
