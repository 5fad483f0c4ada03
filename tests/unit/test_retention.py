"""Retention plans: restic's rules, the invariants, and each refusal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from recoverctl.core.retention import (
    NEWEST,
    NEWEST_DEEP,
    Backup,
    Plan,
    Policy,
    RetentionRefused,
    plan,
)
from recoverctl.errors import ErrorCode, RecoverctlError


def at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def b(text: str, state: str = "quick ok") -> Backup:
    when = at(text)
    return Backup(f"backup_{when:%Y-%m-%d_%H%M%S}.dump", when, state)


def table(result: Plan) -> list[tuple[str, str]]:
    return [
        (f"{d.backup.created:%Y-%m-%d %H:%M}", ", ".join(d.reasons) or "DELETE")
        for d in result.decisions
    ]


# The README's worked example, decision by decision.
README_HISTORY = [
    b("2026-11-29 15:00", "never"),
    b("2026-11-29 03:00", "deep ok"),
    b("2026-11-28 03:00"),
    b("2026-11-27 03:00"),
    b("2026-11-26 03:00"),
    b("2026-11-22 03:00"),
    b("2026-11-15 03:00"),
    b("2026-10-31 03:00"),
    b("2026-10-01 03:00"),
]


def test_readme_worked_example() -> None:
    result = plan(README_HISTORY, Policy(last=2, daily=3, weekly=2, monthly=3))
    assert table(result) == [
        ("2026-11-29 15:00", "newest, last 1/2, daily 2026-11-29, weekly 2026-W48, monthly 2026-11"),
        ("2026-11-29 03:00", "newest deep-verified, last 2/2"),
        ("2026-11-28 03:00", "daily 2026-11-28"),
        ("2026-11-27 03:00", "daily 2026-11-27"),
        ("2026-11-26 03:00", "DELETE"),
        ("2026-11-22 03:00", "weekly 2026-W47"),
        ("2026-11-15 03:00", "DELETE"),
        ("2026-10-31 03:00", "monthly 2026-10"),
        ("2026-10-01 03:00", "monthly: the oldest, while fewer than 3"),
    ]


def test_newest_of_each_period_counted_from_the_newest() -> None:
    history = [b(f"2026-11-{day:02d} {hour:02d}:00") for day in (3, 2, 1) for hour in (20, 8)]
    result = plan(history, Policy(daily=2))
    kept = [d.backup.created for d in result.kept]
    assert kept == [at("2026-11-03 20:00"), at("2026-11-02 20:00")]
    assert len(result.deleted) == 4


def test_oldest_is_kept_while_a_rule_is_not_full() -> None:
    history = [b("2026-11-02 20:00"), b("2026-11-02 08:00"), b("2026-11-01 20:00"), b("2026-11-01 08:00")]
    result = plan(history, Policy(daily=7))
    assert [d.keep for d in result.decisions] == [True, False, True, True]
    assert result.decisions[-1].reasons == ("daily: the oldest, while fewer than 7",)


def test_rules_are_independent_and_each_reason_is_named() -> None:
    history = [b("2026-11-29 10:00"), b("2026-11-28 10:00")]
    result = plan(history, Policy(last=1, daily=2, yearly=1))
    assert result.decisions[0].reasons == (NEWEST, "last 1/1", "daily 2026-11-29", "yearly 2026")
    assert result.decisions[1].reasons == ("daily 2026-11-28",)


def test_weeks_are_iso_weeks_and_periods_follow_the_time_zone() -> None:
    # Sunday 23:30 UTC is Monday 00:30 at UTC+1: another day and another ISO week there.
    history = [b("2026-11-30 10:00"), b("2026-11-29 23:30"), b("2026-11-29 10:00")]
    assert [d.keep for d in plan(history, Policy(weekly=2)).decisions] == [True, True, False]
    plus_one = timezone(timedelta(hours=1))
    local = plan(history, Policy(weekly=2), tz=plus_one)
    assert [d.keep for d in local.decisions] == [True, False, True]
    assert local.decisions[2].reasons == ("weekly 2026-W48",)


def test_the_newest_and_the_newest_deep_verified_are_never_deleted() -> None:
    history = [
        b("2026-11-29 10:00", "failed"),
        b("2026-11-29 09:00", "quick ok"),
        b("2026-11-20 09:00", "deep ok"),
        b("2026-11-19 09:00", "deep ok"),
    ]
    result = plan(history, Policy(last=1))
    assert table(result) == [
        ("2026-11-29 10:00", "newest, last 1/1"),
        ("2026-11-29 09:00", "DELETE"),
        ("2026-11-20 09:00", NEWEST_DEEP),
        ("2026-11-19 09:00", "DELETE"),
    ]


def test_refuses_an_empty_policy() -> None:
    with pytest.raises(RecoverctlError) as caught:
        plan([b("2026-11-29 10:00")], Policy())
    assert caught.value.code == ErrorCode.CONFIG_INVALID
    assert "empty" in caught.value.message
    with pytest.raises(RecoverctlError):
        plan([], Policy())


def test_refuses_to_delete_every_verified_backup() -> None:
    history = [
        b("2026-11-29 10:00", "failed"),
        b("2026-11-28 10:00", "never"),
        b("2026-11-27 10:00", "quick ok"),
    ]
    with pytest.raises(RetentionRefused) as caught:
        plan(history, Policy(last=2))
    assert caught.value.code == ErrorCode.PRUNE_REFUSED
    assert "every verified backup" in caught.value.message
    assert "backup_2026-11-27_100000.dump" in caught.value.message
    assert "verify" in (caught.value.hint or "")


def test_refuses_when_no_backup_is_verified_at_all() -> None:
    history = [b("2026-11-29 10:00", "never"), b("2026-11-28 10:00", "failed")]
    with pytest.raises(RetentionRefused) as caught:
        plan(history, Policy(last=1))
    assert "none of them has" in caught.value.message


def test_a_plan_that_deletes_nothing_is_never_refused() -> None:
    history = [b("2026-11-29 10:00", "never"), b("2026-11-28 10:00", "failed")]
    result = plan(history, Policy(last=5))
    assert not result.deleted
    assert plan([], Policy(daily=1)).decisions == ()


def test_negative_counts_are_rejected() -> None:
    with pytest.raises(ValueError, match="keep_daily"):
        Policy(daily=-1)


def test_describe() -> None:
    assert Policy(last=3, daily=7, monthly=12).describe() == "keep 3 last, 7 daily, 12 monthly"
