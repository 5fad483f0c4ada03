"""core/drill.py: the drill's project name, its record, when a drill is due or too old."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from recoverctl.core.checks import Check
from recoverctl.core.drill import (
    CheckRow,
    DrillError,
    DrillRecord,
    drill_project,
    freshness,
    is_due,
    is_record_name,
    newest,
    record_name,
    rto,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def record(days_old: float, result: str = "passed", **extra: Any) -> DrillRecord:
    started = NOW - timedelta(days=days_old)
    values: dict[str, Any] = {
        "result": result,
        "project": "vault-dev",
        "drill_project": "vault-dev-drill",
        "stack": "dev",
        "source": "local",
        "backup": "backup_2026-11-01_030000.dump",
        "started_at": started,
        "finished_at": started + timedelta(seconds=40),
        "recovery_seconds": 30.0,
        "seconds": 40.0,
        "recoverctl_version": "0.1.0",
    }
    values.update(extra)
    return DrillRecord.model_validate(values)


def test_the_drill_project_is_its_own() -> None:
    assert drill_project("vault-prod") == "vault-prod-drill"


def test_record_names_are_dated_and_never_reused() -> None:
    when = datetime(2026, 11, 24, 3, 4, 5, tzinfo=UTC)
    first = record_name(when)
    assert first == "DRILL-2026-11-24_030405.json" and is_record_name(first)
    second = record_name(when, [first])
    assert second == "DRILL-2026-11-24_030405_2.json" and is_record_name(second)
    assert not is_record_name("DRILL-x.json") and not is_record_name(first + ".partial")


def test_a_record_reads_back_what_it_wrote() -> None:
    r = record(1, "failed", error=DrillError(code="backup_corrupt", message="bad", hint=None),
               checks=(CheckRow.of(Check("rows", "ok", "12 tables")),))  # fmt: skip
    again = DrillRecord.model_validate_json(r.model_dump_json())
    assert (
        again == r
        and not again.passed
        and again.checks[0].check() == Check("rows", "ok", "12 tables")
    )


def test_newest() -> None:
    old_ok, new_failed = record(10), record(1, "failed")
    assert newest([old_ok, new_failed]) is new_failed
    assert newest([old_ok, new_failed], passed=True) is old_ok
    assert newest([]) is None


def test_due_for_the_routine() -> None:
    assert not is_due([], None, NOW)  # drills off
    assert is_due([], 7, NOW)  # never drilled
    assert not is_due([record(3)], 7, NOW)
    assert is_due([record(8)], 7, NOW)
    assert is_due([record(8), record(1, "failed")], 7, NOW)  # a failure does not count


@pytest.mark.parametrize(
    ("records", "status", "words"),
    [
        ([], "warn", "no recovery drill of the dev stack yet"),
        ([record(40)], "warn", "40 days ago, over the 30 days allowed"),
        ([record(3)], "ok", "drill passed 3 days ago"),
        ([record(0.2)], "ok", "drill passed 5 h ago"),
        ([record(2, "failed", error=DrillError(code="x", message="Loading failed."))], "warn",
         "no drill has passed; the last one failed: Loading failed"),
        ([record(5), record(1, "failed", checks=(CheckRow(name="app.admin", status="fail",
                                                         evidence="500"),))], "warn",
         "the last drill failed (checks failed: app.admin); one passed 5 days ago"),
        ([record(5), record(1, "interrupted")], "ok", "drill passed 5 days ago"),
    ],
)  # fmt: skip
def test_freshness(records: list[DrillRecord], status: str, words: str) -> None:
    found = freshness(records, 30, "dev", NOW)
    assert found.status == status and words in found.evidence, found
    if status == "warn":
        assert "recoverctl drill" in found.fix


def test_freshness_names_the_prod_flag() -> None:
    assert "recoverctl drill --prod" in freshness([], 30, "prod", NOW).fix


def test_rto() -> None:
    assert rto([record(1)], None) is None  # no target: no row
    assert rto([], 15).status == "warn"  # type: ignore[union-attr]
    ok = rto([record(1, recovery_seconds=300.0)], 15)
    assert ok is not None and ok.status == "ok" and "5.0 min" in ok.evidence
    slow = rto([record(3, recovery_seconds=60.0), record(1, "failed", recovery_seconds=1200.0)], 15)
    assert (
        slow is not None and slow.status == "warn" and "took 20.0 min" in slow.evidence
    )
    # A drill that never brought the vault back measured nothing: the one before counts.
    kept = rto([record(3, recovery_seconds=60.0), record(1, "failed", recovery_seconds=None)], 15)
    assert kept is not None and kept.status == "ok" and "60 s" in kept.evidence
