"""Check results shared by every diagnostic (env file, key file, stack): one row each."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal, get_args

from recoverctl.core.result import JsonResult, meta

Status = Literal["ok", "warn", "fail"]
STATUSES: tuple[Status, ...] = get_args(Status)
OK: Status = "ok"
WARN: Status = "warn"
FAIL: Status = "fail"
_RANK: dict[Status, int] = {OK: 0, WARN: 1, FAIL: 2}


@dataclass(frozen=True)
class Check(JsonResult):
    name: str  # stable identifier, e.g. "env.secret_key": scripts filter on it
    status: Status
    evidence: str  # what was seen, one line, never a secret value
    # What to do, one line; empty when there is nothing to do (null in the JSON).
    fix: str = field(default="", metadata=meta(empty_is_null=True, schema=str | None))

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown check status {self.status!r}")
        # Rendered as table cells and log lines, a stray newline would break both; evidence
        # may quote what a file held (a multi-line value, a name): made one line here.
        for attr in ("evidence", "fix"):
            text = getattr(self, attr)
            if "\n" in text or "\r" in text:
                object.__setattr__(self, attr, " ".join(text.split()))


@dataclass(frozen=True)
class Finding:
    """A check's result before it has a name: doctor's registry names each check once, so
    the rules that judge (env file, key file, stack) do not repeat the name."""

    status: Status
    evidence: str
    fix: str = ""

    def named(self, name: str) -> Check:
        return Check(name, self.status, self.evidence, self.fix)


def worst(checks: Iterable[Check]) -> Status:
    """The most severe status; "ok" when there are no checks at all."""
    return max((c.status for c in checks), key=_RANK.__getitem__, default=OK)
