"""restore: plan (verify the file, describe what is replaced), then carry the plan out.

The machinery lives in services/restore.py, which recover shares."""

from __future__ import annotations

from pathlib import Path

from recoverctl.core.progress import OnBytes, Step

# The plan the CLI shows and confirms (restore, recover), named here for it.
from recoverctl.core.restore_plan import RestorePlan as RestorePlan
from recoverctl.services import restore as swap
from recoverctl.services.restore import Prepared, RestoreResult
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
    target: str | None = None,
    identity: Path | None = None,
) -> Prepared:
    """Verifies and plans; changes nothing. A dry run hashes the file now, since no load
    will. With target, the file is pulled from that off-site target first (services/
    offsite/pull.py): spec names the copy there, or latest."""
    if target is not None:
        # Imported here: a restore from a local file never needs the off-site services.
        from recoverctl.services import offsite

        identity = identity or session.settings.identity_file
        spec = str(offsite.pull(session, target, spec, identity).path)
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
