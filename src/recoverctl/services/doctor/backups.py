"""doctor's backups group: a verified backup within rpo, room for the next one, the
routine scheduled and ending well, a recent drill."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from recoverctl.core import pg
from recoverctl.core.checks import FAIL, OK, WARN, Finding
from recoverctl.core.drill import freshness as drill_freshness
from recoverctl.core.drill import rto as drill_rto
from recoverctl.core.duration import DAY, HOUR, MINUTE, in_units
from recoverctl.core.stack import prod_flag
from recoverctl.services import catalog
from recoverctl.services.doctor.framework import (
    Context,
    Group,
    GroupChecks,
    Need,
)

checks = GroupChecks(Group.BACKUPS)
SPACE_MARGIN = 2.0  # free space wanted on the backups disk, in database sizes


@checks.check("backups.rpo")
def _rpo(ctx: Context) -> Finding:
    """The newest verified backup is younger than rpo."""
    return rpo_check(ctx.listing(), in_units(ctx.settings.rpo, HOUR), ctx.settings.stack)


def rpo_check(
    listing: catalog.Listing, rpo_hours: float, stack: str, now: datetime | None = None
) -> Finding:
    flag = prod_flag(stack)
    good = [e for e in listing.entries if e.state in ("quick ok", "deep ok")]
    if not good:
        return Finding(
            FAIL,
            f"no verified {stack} backup in {listing.folder}",
            f"recoverctl backup{flag} && recoverctl verify latest --deep{flag}",
        )
    age_h = ((now or datetime.now(UTC)) - good[0].created).total_seconds() / 3600
    if age_h > rpo_hours:
        return Finding(
            FAIL,
            f"newest verified backup is {age_h:.0f} h old, over the {rpo_hours:g} h allowed",
            f"recoverctl backup{flag} && recoverctl verify latest --deep{flag}; schedule the "
            f"routine: recoverctl schedule install{flag}",
        )
    return Finding(OK, f"newest verified backup {good[0].path.name} is {age_h:.1f} h old")


@checks.check("backups.verified")
def _newest_verified(ctx: Context) -> Finding | None:
    """The newest backup was verified, and passed."""
    listing = ctx.listing()
    if not listing.entries:
        return None  # no backup at all: backups.rpo says so
    newest = listing.entries[0]
    if newest.state == "never":
        return Finding(
            WARN,
            f"the newest backup {newest.path.name} was never verified",
            f"recoverctl verify {newest.path.name} --deep",
        )
    if newest.state == "failed":
        return Finding(
            FAIL,
            f"the newest backup {newest.path.name} failed verification",
            "Make a new backup and verify it: recoverctl backup && recoverctl verify latest --deep",
        )
    return Finding(OK, f"the newest backup {newest.path.name}: {newest.state}")


@checks.check("backups.space", needs=[Need.DB])
def _space(ctx: Context) -> Finding:
    """The backups disk has room for twice the database."""
    folder = ctx.settings.backup_dir
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    size = int(ctx.db().query(pg.DB_SIZE_SQL).strip() or 0)
    return space_check(free, size, folder)


def space_check(free: int, size: int, folder: Path) -> Finding:
    mib = 1024 * 1024
    text = f"{free // mib} MiB free in {folder}, database {size // mib} MiB"
    if free < size:
        return Finding(FAIL, text, "Free space there or set backup_dir to a larger disk")
    if free < size * SPACE_MARGIN + 100 * mib:
        return Finding(WARN, text, "Free space soon: a backup needs up to the database's size")
    return Finding(OK, text)


@checks.check("backups.schedule")
def _schedule(ctx: Context) -> Finding:
    """The routine is scheduled: a systemd timer or a cron entry (recoverctl schedule
    install)."""
    from recoverctl.services.routine import scheduled

    flag = prod_flag(ctx.settings.stack)
    where = scheduled(ctx.settings, ctx.session.project)
    if where is None:
        return Finding(
            WARN,
            f"no scheduled routine for the {ctx.settings.stack} stack: backups run only by hand",
            f"recoverctl schedule install{flag}",
        )
    return Finding(OK, f"routine scheduled: {where}")


@checks.check("backups.routine")
def _routine(ctx: Context) -> Finding | None:
    """The last routine ended well, within rpo."""
    from recoverctl.services.routine import load_record

    record = load_record(ctx.settings)
    if record is None:
        return None  # never ran: backups.schedule says whether one will
    flag = prod_flag(ctx.settings.stack)
    age_h = (datetime.now(UTC) - record.finished_at).total_seconds() / 3600
    when = f"{age_h:.1f} h ago"
    if not record.ok:
        return Finding(
            FAIL,
            f"the last routine failed {when} ({record.error_code}): {record.message}"
            .replace("\n", " "),
            f"recoverctl schedule status{flag}; run it by hand to see: recoverctl routine{flag}",
        )
    rpo_h = in_units(ctx.settings.rpo, HOUR)
    if age_h > rpo_h:
        return Finding(
            WARN,
            f"the last routine ended {when}, over the {rpo_h:g} h allowed",
            f"Is the timer running? recoverctl schedule status{flag}",
        )
    return Finding(OK, f"the last routine ended well {when} ({record.backup})")


@checks.check("backups.drill")
def _drill(ctx: Context) -> Finding:
    """A recovery drill passed within drill_max_age (default 30d), and the last one did not
    fail."""
    s = ctx.settings
    max_age = in_units(s.drill_max_age, DAY)
    return drill_freshness(catalog.drill_records(s), max_age, s.stack, datetime.now(UTC))


@checks.check("backups.rto")
def _rto(ctx: Context) -> Finding | None:
    """When rto is set: the last drill brought the vault back within it."""
    return drill_rto(catalog.drill_records(ctx.settings), in_units(ctx.settings.rto, MINUTE))
