"""doctor's targets group: off-site targets configured and answering, their copies sealed,
holding the newest backup, within rpo."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from recoverctl.core.checks import FAIL, OK, WARN, Finding
from recoverctl.core.duration import HOUR, in_units
from recoverctl.errors import RecoverctlError
from recoverctl.services import offsite
from recoverctl.services.doctor.framework import (
    Context,
    Group,
    GroupChecks,
    config_hint,
    one_line,
    prod_flag,
)

checks = GroupChecks(Group.TARGETS)


@checks.check("targets.configured")
def _targets_configured(ctx: Context) -> Finding:
    """At least one off-site target is configured: the day this disk dies, only they remain."""
    names = sorted(ctx.settings.targets)
    if not names:
        return Finding(
            WARN,
            "no off-site target: every backup is on this server",
            f"Add [encryption] and a [targets.NAME] table to {config_hint()} "
            "(README: Off-site copies)",
        )
    return Finding(OK, f"{len(names)} configured: {', '.join(names)}")


def _per_target(
    ctx: Context, judge: Callable[[Context, str], Finding | None]
) -> dict[str, Finding]:
    rows: dict[str, Finding] = {}
    for name in sorted(ctx.settings.targets):
        try:
            found = judge(ctx, name)
        except RecoverctlError as exc:
            found = Finding(FAIL, one_line(exc.message), one_line(exc.hint or ""))
        if found is not None:
            rows[name] = found
    return rows


def _listing_or_none(ctx: Context, name: str) -> offsite.TargetListing | None:
    try:
        return ctx.target_listing(name)
    except RecoverctlError:
        return None  # targets.reachable.NAME says why, once


@checks.check("targets.reachable", each="target")
def _targets_reachable(ctx: Context) -> dict[str, Finding]:
    """Each target answers: reachable, credentials and host key accepted, its folder or
    bucket there."""

    def judge(ctx: Context, name: str) -> Finding:
        found = ctx.target_listing(name)
        complete = len(found.listing.complete)
        return Finding(OK, f"{found.location} answers; {complete} complete backups there")

    return _per_target(ctx, judge)


@checks.check("targets.encryption", each="target")
def _targets_encryption(ctx: Context) -> dict[str, Finding]:
    """Each target's copies are sealed with age to usable recipients; encryption = "none"
    warns."""

    def judge(ctx: Context, name: str) -> Finding:
        if ctx.settings.targets[name].encryption == "none":
            return Finding(
                WARN,
                'encryption = "none": its copies are stored in clear',
                f'Remove encryption = "none" from [targets.{name}]; set [encryption] recipients',
            )
        from recoverctl.adapters import seal

        recipients = seal.load_recipients(ctx.settings.encryption)
        return Finding(OK, f"sealed with age to {len(recipients)} recipient(s)")

    return _per_target(ctx, judge)


@checks.check("targets.newest", each="target")
def _targets_newest(ctx: Context) -> dict[str, Finding]:
    """Each target holds a complete copy of this stack's newest local backup."""
    entries = [e for e in ctx.listing().entries if e.stack == ctx.settings.stack]
    if not entries:
        return {}  # no local backup: backups.rpo says so
    newest = entries[0].path.name
    flag = prod_flag(ctx.settings)

    def judge(ctx: Context, name: str) -> Finding | None:
        found = _listing_or_none(ctx, name)
        if found is None:
            return None
        copy = found.listing.find(newest)
        if copy is not None and copy.complete:
            return Finding(OK, f"{newest} is there, complete")
        state = f"only an incomplete copy ({'; '.join(copy.problems)})" if copy else "no copy"
        return Finding(
            FAIL,
            f"the newest local backup {newest}: {state}",
            f"recoverctl push latest --target {name}{flag}",
        )

    return _per_target(ctx, judge)


@checks.check("targets.rpo", each="target")
def _targets_rpo(ctx: Context) -> dict[str, Finding]:
    """Each target's newest complete copy is younger than rpo."""
    rpo = in_units(ctx.settings.rpo, HOUR)
    now = datetime.now(UTC)
    flag = prod_flag(ctx.settings)

    def judge(ctx: Context, name: str) -> Finding | None:
        found = _listing_or_none(ctx, name)
        if found is None:
            return None
        complete = [b for b in found.listing.complete if b.created_at is not None]
        if not complete:
            return Finding(
                FAIL,
                "no complete copy there",
                f"recoverctl push --missing --target {name}{flag}",
            )
        newest = max(complete, key=lambda b: b.created_at or now)
        assert newest.created_at is not None
        hours = (now - newest.created_at).total_seconds() / 3600
        if hours > rpo:
            return Finding(
                FAIL,
                f"newest complete copy {newest.backup} is {hours:.0f} h old, over the "
                f"{rpo:g} h allowed",
                f"recoverctl backup{flag} (it pushes to every target); schedule it",
            )
        return Finding(OK, f"newest complete copy {newest.backup} is {hours:.1f} h old")

    return _per_target(ctx, judge)
