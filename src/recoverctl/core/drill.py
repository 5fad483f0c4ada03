"""Recovery drills, the pure parts: the drill's throwaway project name, the record kept per
drill beside the backups, and when a drill is due or too old.

A drill restores a backup into a second compose project (`<project>-drill`), checks that
the vault came back, times it, and removes that project whatever happens; services/drill.py
does that. What it leaves is one record, `backups/drills/DRILL-<time>.json`, read by `list`,
doctor and the scheduled routine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict

from recoverctl.core.checks import OK, WARN, Check, Finding
from recoverctl.core.outside import AwareDatetime
from recoverctl.core.result import Spec
from recoverctl.core.stack import prod_flag
from recoverctl.errors import ErrorCode

RECORD_VERSION = 1
DRILL_DIR = "drills"  # under the backups folder
DRILL_SUFFIX = "-drill"
RECORD_RE = re.compile(r"DRILL-([0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{6})(?:_([0-9]{1,6}))?\.json")
STAMP = "%Y-%m-%d_%H%M%S"

Outcome = Literal["passed", "failed", "interrupted"]


def drill_project(project: str) -> str:
    """The drill's own compose project: its containers, volume and network carry this name,
    so nothing of the live project's is ever addressed."""
    return project + DRILL_SUFFIX


def record_name(when: datetime, taken: Iterable[str] = ()) -> str:
    used = set(taken)
    base = f"DRILL-{when.astimezone(UTC).strftime(STAMP)}"
    name, n = f"{base}.json", 1
    while name in used:
        n += 1
        name = f"{base}_{n}.json"
    return name


def is_record_name(name: str) -> bool:
    return RECORD_RE.fullmatch(name) is not None


class StepTime(BaseModel):
    model_config = ConfigDict(frozen=True)

    step: str
    seconds: float


class CheckRow(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    status: Literal["ok", "warn", "fail"]
    evidence: str
    fix: str | None = None

    @classmethod
    def of(cls, check: Check) -> CheckRow:
        return cls(name=check.name, status=check.status, evidence=check.evidence,
                   fix=check.fix or None)  # fmt: skip

    def check(self) -> Check:
        return Check(self.name, self.status, self.evidence, self.fix or "")


class DrillError(BaseModel):
    model_config = ConfigDict(frozen=True)

    # A str, so that a record written by another version, with a code this one does not
    # know, still loads; the JSON contract types it as the ErrorCode it is written from.
    code: Annotated[str, Spec(schema=ErrorCode)]
    message: str
    hint: str | None = None
    details: str | None = None  # supporting evidence: a service's last log lines


class DrillPoint(BaseModel):
    """drill --to-time: the moment asked for and the one the restored cluster reached (its
    last replayed commit), from which repository and base backup."""

    model_config = ConfigDict(frozen=True)

    asked: str  # as said back to the person, with its zone
    asked_at: AwareDatetime | None = None  # None: latest
    reached: AwareDatetime | None = None  # None: no commit after the base backup's end
    reached_said: str
    repo: str
    base_backup: str
    restore_seconds: float  # the cluster restored and promoted in its throwaway


class DrillRecord(BaseModel):
    """What one drill proved, as kept in backups/drills/DRILL-<time>.json."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    record_version: int = RECORD_VERSION
    result: Outcome
    project: str  # the live project the backup belongs to
    drill_project: str
    stack: Literal["dev", "prod"]
    source: str  # "local", "target NAME", or "pitr NAME" (drill --to-time)
    backup: str  # the backup file's name
    backup_sha256: str | None = None
    backup_created: AwareDatetime | None = None
    started_at: AwareDatetime
    finished_at: AwareDatetime
    # From the start to the restored vault serving its data; None: it never got there.
    recovery_seconds: float | None = None
    seconds: float
    steps: tuple[StepTime, ...] = ()
    checks: tuple[CheckRow, ...] = ()
    error: DrillError | None = None
    leftovers: tuple[str, ...] = ()  # what the tear-down could not remove
    point_in_time: DrillPoint | None = None  # drill --to-time
    recoverctl_version: str

    @property
    def passed(self) -> bool:
        return self.result == "passed"

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def newest(records: Iterable[DrillRecord], *, passed: bool = False) -> DrillRecord | None:
    found = [r for r in records if r.passed or not passed]
    return max(found, key=lambda r: r.started_at) if found else None


def _days(since: datetime, now: datetime) -> float:
    return (now - since).total_seconds() / 86400


def is_due(records: Iterable[DrillRecord], every_days: float | None, now: datetime) -> bool:
    """For the scheduled routine: a drill is due when drills are on (every_days) and no
    drill passed within that many days. A failed drill does not wait its turn."""
    if every_days is None:
        return False
    last = newest(records, passed=True)
    return last is None or _days(last.finished_at, now) >= every_days


def _ago(days: float) -> str:
    if days >= 2:
        return f"{days:.0f} days ago"
    hours = days * 24
    return f"{hours:.0f} h ago" if hours >= 1 else "within the hour"


def freshness(
    records: Iterable[DrillRecord], drill_days: float, stack: str, now: datetime
) -> Finding:
    """doctor: a drill passed within drill_days, and the last one did not fail."""
    found = list(records)
    flag = prod_flag(stack)
    fix = f"recoverctl drill{flag} (with --key-file and --passphrase-stdin to open secrets too)"
    last_ok = newest(found, passed=True)
    judged = [r for r in found if r.result != "interrupted"]
    last = newest(judged)
    if last is None:
        return Finding(WARN, f"no recovery drill of the {stack} stack yet", fix)
    if last_ok is None:
        return Finding(WARN, f"no drill has passed; the last one failed: {_why(last)}", fix)
    age = _days(last_ok.finished_at, now)
    if age > drill_days:
        return Finding(
            WARN,
            f"the last passed drill was {_ago(age)}, over the {drill_days:g} days allowed",
            fix,
        )
    if not last.passed:
        return Finding(
            WARN,
            f"the last drill failed ({_why(last)}); one passed {_ago(age)}",
            "Read `recoverctl list` and the drill record, fix the cause, then " + fix,
        )
    return Finding(
        OK,
        f"drill passed {_ago(age)}: {last_ok.backup} back in {_seconds(last_ok.recovery_seconds)}",
    )


def _why(record: DrillRecord) -> str:
    if record.error is not None:
        return record.error.message.split("\n")[0][:160].rstrip(".")
    failing = [c.name for c in record.checks if c.status == "fail"]
    return "checks failed: " + ", ".join(failing) if failing else "see its record"


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    return f"{value:.0f} s" if value < 120 else f"{value / 60:.1f} min"


def rto(records: Iterable[DrillRecord], rto_minutes: float | None) -> Finding | None:
    """doctor: the last measured recovery time is within rto_minutes; None when unset."""
    if rto_minutes is None:
        return None
    timed = [r for r in records if r.recovery_seconds is not None]
    last = newest(timed)
    if last is None or last.recovery_seconds is None:
        return Finding(WARN, "no drill has measured the recovery time yet", "recoverctl drill")
    limit = rto_minutes * 60
    took = _seconds(last.recovery_seconds)
    if last.recovery_seconds > limit:
        return Finding(
            WARN,
            f"the last drill took {took} to bring the vault back, over the {rto_minutes:g} min "
            "allowed",
            "Its steps (recoverctl drill --json, or the record in backups/drills) show where "
            "the time goes",
        )
    return Finding(
        OK, f"the last drill brought the vault back in {took}, within {rto_minutes:g} min"
    )
