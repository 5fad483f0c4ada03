"""Retention's invariants over random backup histories and policies (hypothesis).

Whatever the history and the policy: the newest backup and the newest deep-verified one are
kept; a plan that deletes anything keeps a verified backup, and one that would not is
refused; every kept backup names a rule, every deleted one none; pruning what a plan kept
deletes nothing more; and the policy's counts bound what the rules keep.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recoverctl.core.retention import (
    NEWEST,
    NEWEST_DEEP,
    RULES,
    Backup,
    Policy,
    RetentionRefused,
    newest_first,
    plan,
)

START = datetime(2024, 1, 1, tzinfo=UTC)
STATES = ("never", "quick ok", "deep ok", "failed")

# Gaps from seconds to months: several backups per hour, per day, and long silences.
gaps = st.one_of(
    st.integers(1, 3600), st.integers(3600, 3 * 86400), st.integers(86400, 90 * 86400)
)


@st.composite
def histories(draw: st.DrawFn) -> list[Backup]:
    steps = draw(st.lists(gaps, min_size=0, max_size=40))
    states = draw(st.lists(st.sampled_from(STATES), min_size=len(steps), max_size=len(steps)))
    backups, when = [], START
    for i, (gap, state) in enumerate(zip(steps, states, strict=True)):
        when += timedelta(seconds=gap)
        backups.append(Backup(f"backup_{i:03d}", when, state))
    return draw(st.permutations(backups))  # the order given must not matter


policies = st.builds(
    Policy, *(st.integers(0, 6) for _ in RULES)
).filter(lambda p: not p.empty)
zones = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-7))])
FAST = settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(histories(), policies, zones)
def test_invariants_always_hold(history: list[Backup], policy: Policy, tz: timezone) -> None:
    ordered = newest_first(history)
    try:
        result = plan(history, policy, tz=tz)
    except RetentionRefused:
        # Refused only when it would delete and no verified backup would survive.
        assert not any(b.state == "deep ok" for b in history)
        return
    kept = {d.backup.name for d in result.kept}
    deleted = {d.backup.name for d in result.deleted}
    assert kept | deleted == {b.name for b in history}
    assert not kept & deleted
    assert [d.backup for d in result.decisions] == ordered
    if ordered:
        assert ordered[0].name in kept
        assert NEWEST in result.decisions[0].reasons
    deep = [b for b in ordered if b.state == "deep ok"]
    if deep:
        assert deep[0].name in kept
        assert any(NEWEST_DEEP in d.reasons for d in result.kept if d.backup == deep[0])
    if deleted:
        assert any(d.backup.verified for d in result.kept)
    for d in result.decisions:
        assert d.keep == bool(d.reasons)
    # Each rule keeps at most its count (the oldest's extra keep is one of them).
    for rule in RULES:
        by_rule = [d for d in result.decisions if any(r.startswith(rule) for r in d.reasons)]
        assert len(by_rule) <= policy.count(rule)


@FAST
@given(histories(), policies, zones)
def test_pruning_again_deletes_nothing(history: list[Backup], policy: Policy, tz: timezone) -> None:
    try:
        first = plan(history, policy, tz=tz)
    except RetentionRefused:
        return
    second = plan([d.backup for d in first.kept], policy, tz=tz)
    assert not second.deleted


@FAST
@given(histories(), policies)
def test_refusal_is_exactly_when_nothing_verified_would_remain(
    history: list[Backup], policy: Policy
) -> None:
    # What the rules alone delete (every backup deep-verified, so only "newest" is added),
    # less the newest deep-verified one: what the plan must delete, unless it refuses.
    trusting = plan([Backup(b.name, b.created, "deep ok") for b in history], policy)
    deep = [b.name for b in newest_first(history) if b.state == "deep ok"][:1]
    expected = {d.backup.name for d in trusting.deleted} - set(deep)
    survivors = [b for b in history if b.name not in expected]
    must_refuse = bool(expected) and not any(b.verified for b in survivors)
    try:
        result = plan(history, policy)
    except RetentionRefused:
        assert must_refuse
        return
    assert not must_refuse
    assert {d.backup.name for d in result.deleted} == expected


@settings(max_examples=300, deadline=None)
@given(histories())
def test_a_generous_policy_deletes_nothing(history: list[Backup]) -> None:
    result = plan(history, Policy(last=len(history) + 1))
    assert not result.deleted
