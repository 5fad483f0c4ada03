"""restore: plan (verify the file, describe what is replaced), then carry the plan out.

The machinery lives in services/restore.py, which recover shares."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from recoverctl.core import pitrtime
from recoverctl.core.progress import OnBytes, Step

# The plan the CLI shows and confirms (restore, recover), named here for it.
from recoverctl.core.restore_plan import RestorePlan as RestorePlan
from recoverctl.core.result import JsonResult, meta
from recoverctl.services import pitr as pitr_svc
from recoverctl.services import restore as swap
from recoverctl.services.pitr_restore import PointReached
from recoverctl.services.restore import Prepared, RestoreResult
from recoverctl.services.session import StackSession as StackSession


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


# --- to a point in time (pgBackRest) -----------------------------------------------------


def local_zone() -> tzinfo:
    """The machine's zone with its clock changes (a fixed offset would read a summer time
    with the winter offset): TZ, else /etc/localtime, else UTC."""
    name = os.environ.get("TZ", "").lstrip(":")
    try:
        if name:
            return ZoneInfo(name)
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError, ZoneInfoNotFoundError):
        return UTC


@dataclass(frozen=True)
class PreparedToTime:
    prepared: Prepared
    point: PointReached


def prepare_to_time(
    session: StackSession,
    when: str,
    *,
    target: str | None = None,
    safety_backup: bool = True,
    allow_newer_data: bool = False,
    step: Step = _quiet,
) -> PreparedToTime:
    """The cluster restored to WHEN in a throwaway, its vault database dumped, and that
    dump planned like any backup; the live database is only read."""
    from recoverctl.services import pitr_restore

    pitr_svc.require_enabled(session)
    point = pitrtime.parse_point(when, zone=local_zone(), now=datetime.now(UTC))
    backup, reached = pitr_restore.restore_to_point(session, point, target, step=step)
    prep = swap.prepare(
        session,
        str(backup.path),
        safety_backup=safety_backup,
        hash_now=False,
        allow_newer_data=allow_newer_data,
    )
    return PreparedToTime(prep, reached)


@dataclass(frozen=True)
class ToTimePlan(JsonResult):
    """restore --to-time --dry-run: the plan, once the point was reached in a throwaway."""

    plan: RestorePlan = field(metadata=meta(flatten=True))
    point_in_time: PointReached


@dataclass(frozen=True)
class ToTimeResult(JsonResult):
    restore: RestoreResult = field(metadata=meta(flatten=True))
    point_in_time: PointReached


def restore_to_time(
    prep: PreparedToTime,
    session: StackSession,
    *,
    step: Step = _quiet,
    on_bytes: OnBytes = _quiet,
) -> ToTimeResult:
    done = swap.restore(prep.prepared, session, step=step, on_bytes=on_bytes)
    return ToTimeResult(done, prep.point)
