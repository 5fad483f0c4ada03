"""The manifest beside each backup, and the verification record beside it.

The manifest is written once, when the backup is made, and never changed: it is the
backup's provenance. Verification results go to a separate record, so checking a backup
never rewrites what it is checked against.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from recoverctl.core.naming import Format
from recoverctl.core.outside import AwareDatetime

MANIFEST_VERSION = 1
VerifyState = Literal["never", "quick ok", "deep ok", "failed"]


class CodeInfo(BaseModel):
    """The vault code a backup was taken with, so that a restore can tell when the checkout
    is older than the data (core/codematch.py)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    commit: str = "unknown"  # git HEAD of the project; "unknown" outside a git checkout
    dirty: bool | None = None  # uncommitted changes under vault/; None: not a git checkout
    migrations: dict[str, str] = Field(default_factory=dict)  # latest file per app, vault/*/migrations


class Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    manifest_version: int = MANIFEST_VERSION
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    format: Format
    database: str
    project: str
    stack: Literal["dev", "prod"]
    server_version: str
    pg_dump_version: str
    # Exact row counts, taken in the same snapshot as the dump where the engine allows,
    # else before and after it: None marks a table that changed while the dump ran.
    tables: dict[str, int | None]
    migrations: dict[str, str]  # the database's latest applied migration per app
    started_at: AwareDatetime
    duration_seconds: float
    recoverctl_version: str
    code: CodeInfo | None = None  # None: a manifest from before the code was recorded

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class VerifyResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["quick", "deep"]
    ok: bool
    at: AwareDatetime
    sha256: str | None = None
    detail: str = ""


class VerifyRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    file: str
    results: tuple[VerifyResult, ...] = ()

    def add(self, result: VerifyResult, keep: int = 20) -> VerifyRecord:
        return VerifyRecord(file=self.file, results=(*self.results, result)[-keep:])


def verify_state(record: VerifyRecord | None) -> tuple[VerifyState, datetime | None]:
    """What list and doctor show: the newest result decides failure; a deep proof is not
    undone by a later quick check of the same unchanged file."""
    if record is None or not record.results:
        return "never", None
    last = record.results[-1]
    if not last.ok:
        return "failed", last.at
    deep = [r for r in record.results if r.kind == "deep" and r.ok and r.sha256 == last.sha256]
    if deep and last.sha256 is not None:
        return "deep ok", deep[-1].at
    if last.kind == "deep":
        return "deep ok", last.at
    return "quick ok", last.at


def compare_counts(
    expected: dict[str, int | None], actual: dict[str, int]
) -> tuple[list[str], int]:
    """Differences as readable lines, and how many tables could be compared."""
    problems: list[str] = []
    compared = 0
    for table, count in sorted(expected.items()):
        if table not in actual:
            problems.append(f"table {table} is missing")
            continue
        if count is None:
            continue
        compared += 1
        if actual[table] != count:
            problems.append(f"table {table} has {actual[table]} rows, the backup had {count}")
    for table in sorted(set(actual) - set(expected)):
        problems.append(f"table {table} was not in the backup")
    return problems, compared
