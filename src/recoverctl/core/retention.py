"""Retention: which backups a policy keeps, with the rules that keep each, and which go.

The rules are restic's `forget` rules, which borg's `prune` shares in spirit:

- `keep_last = n`: the n newest backups.
- `keep_hourly = n` (daily, weekly, monthly, yearly alike): walking from the newest backup
  to the oldest, the newest backup of each hour that has one, for the n newest such hours.
  Hours, days, weeks (ISO weeks, Monday first), months and years are calendar periods in
  the time zone given (the server's own).
- When a rule still has room after the oldest backup was reached (fewer periods with a
  backup than it asks for), the oldest backup is kept too: the longest history is kept
  while the policy is not yet full.
- Rules are independent, as in restic: one backup may be kept by several rules and counts
  for each (borg's rules, by contrast, skip backups an earlier rule kept).

Whatever the rules say, two backups are never deleted: the newest, and the newest whose
deep verification passed (the last one proven to restore). And a plan is refused, never
carried out: when the policy is empty (restic's worst reports: a policy that deletes all),
and when it would delete something and leave no verified backup at all.

Pure: the caller lists the backups and their verification state, and deletes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, tzinfo
from typing import Literal

from recoverctl.errors import ErrorCode, RecoverctlError

Rule = Literal["last", "hourly", "daily", "weekly", "monthly", "yearly"]
RULES: tuple[Rule, ...] = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
# Verification states as list and doctor show them (core/manifest.py's VerifyState).
VERIFIED_STATES = frozenset({"quick ok", "deep ok"})
DEEP_OK = "deep ok"
NEWEST = "newest"
NEWEST_DEEP = "newest deep-verified"


@dataclass(frozen=True)
class Policy:
    """How many of each kind to keep; 0 turns a rule off."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0

    def __post_init__(self) -> None:
        for f in fields(self):
            if getattr(self, f.name) < 0:
                raise ValueError(f"keep_{f.name} must be 0 or more")

    @property
    def empty(self) -> bool:
        return not any(self.count(rule) for rule in RULES)

    def count(self, rule: Rule) -> int:
        value: int = getattr(self, rule)
        return value

    def describe(self) -> str:
        parts = [f"{self.count(r)} {r}" for r in RULES if self.count(r)]
        return "keep " + ", ".join(parts) if parts else "an empty policy"


@dataclass(frozen=True)
class Backup:
    """One backup as retention sees it: a name, when it was taken, how it was verified."""

    name: str
    created: datetime  # timezone-aware
    state: str = "never"  # never / quick ok / deep ok / failed

    @property
    def verified(self) -> bool:
        return self.state in VERIFIED_STATES


@dataclass(frozen=True)
class Decision:
    backup: Backup
    reasons: tuple[str, ...]  # why it is kept, e.g. "daily 2026-11-29"; empty: deleted

    @property
    def keep(self) -> bool:
        return bool(self.reasons)


@dataclass(frozen=True)
class Plan:
    policy: Policy
    decisions: tuple[Decision, ...]  # newest first

    @property
    def kept(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.keep)

    @property
    def deleted(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if not d.keep)


class RetentionRefused(RecoverctlError):
    default_code = ErrorCode.PRUNE_REFUSED


def _periods(tz: tzinfo | None) -> dict[Rule, Callable[[datetime, int], str]]:
    def local(when: datetime) -> datetime:
        return when.astimezone(tz)

    def week(when: datetime) -> str:
        year, number, _ = local(when).isocalendar()
        return f"{year}-W{number:02d}"

    return {
        # Every backup is its own period for keep_last: the rule then counts backups.
        "last": lambda when, index: str(index),
        "hourly": lambda when, _: local(when).strftime("%Y-%m-%d %Hh"),
        "daily": lambda when, _: local(when).strftime("%Y-%m-%d"),
        "weekly": lambda when, _: week(when),
        "monthly": lambda when, _: local(when).strftime("%Y-%m"),
        "yearly": lambda when, _: local(when).strftime("%Y"),
    }


def newest_first(backups: Iterable[Backup]) -> list[Backup]:
    return sorted(backups, key=lambda b: (b.created, b.name), reverse=True)


def plan(backups: Iterable[Backup], policy: Policy, *, tz: tzinfo | None = UTC) -> Plan:
    """The plan for these backups (one stack's, on one storage); raises RetentionRefused or
    a settings error rather than return a plan that breaks an invariant. tz None is the
    system's own zone, daylight saving time included, at each backup's moment."""
    if policy.empty:
        raise RecoverctlError(
            "The retention policy is empty: refusing to prune (no rule says what to keep).",
            "Set at least one keep_* rule under [retention] in the settings file, "
            "e.g. keep_daily = 7.",
            code=ErrorCode.CONFIG_INVALID,
        )
    ordered = newest_first(backups)
    reasons: list[list[str]] = [[] for _ in ordered]
    periods = _periods(tz)
    for rule in RULES:
        left = policy.count(rule)
        if not left:
            continue
        period_of = periods[rule]
        last_period: str | None = None
        for index, backup in enumerate(ordered):
            if not left:
                break
            period = period_of(backup.created, index)
            oldest = index == len(ordered) - 1
            if period != last_period:
                taken = policy.count(rule) - left + 1
                label = f"{taken}/{policy.count(rule)}" if rule == "last" else period
                reasons[index].append(f"{rule} {label}")
            elif oldest:
                reasons[index].append(f"{rule}: the oldest, while fewer than {policy.count(rule)}")
            else:
                continue
            last_period = period
            left -= 1
    if ordered:
        reasons[0].insert(0, NEWEST)
        deep = next((i for i, b in enumerate(ordered) if b.state == DEEP_OK), None)
        if deep is not None:
            reasons[deep].insert(1 if deep == 0 else 0, NEWEST_DEEP)
    result = Plan(
        policy, tuple(Decision(b, tuple(r)) for b, r in zip(ordered, reasons, strict=True))
    )
    _refuse_unverified(result)
    return result


def _refuse_unverified(result: Plan) -> None:
    if not result.deleted or any(d.backup.verified for d in result.kept):
        return
    doomed = [d.backup for d in result.deleted if d.backup.verified]
    if doomed:
        why = (
            f"it would delete every verified backup ({len(doomed)}, the newest "
            f"{doomed[0].name}) and keep only unverified or failed ones"
        )
    else:
        why = "no backup it would keep has passed verification (none of them has)"
    raise RetentionRefused(
        f"Refusing to prune: {why}; nothing was deleted.",
        "Verify the newest backup (recoverctl verify latest --deep), then prune again.",
    )
