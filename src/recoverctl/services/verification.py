"""One verification of one backup file, quick or deep, remembered in its verification
record: what `verify` reports and what the routine and `up --prod` rely on."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from recoverctl.core.checks import FAIL, OK, Check, worst
from recoverctl.core.manifest import Manifest, VerifyResult
from recoverctl.core.naming import Format
from recoverctl.core.progress import OnBytes
from recoverctl.core.result import INTERNAL, JsonResult, computed, meta
from recoverctl.services import catalog
from recoverctl.services.checks import Throwaway, deep_check, quick_checks, without_load
from recoverctl.services.session import StackSession


def _no_progress(_: int) -> None:
    return None


@dataclass(frozen=True)
class VerifyReport(JsonResult):
    path: Path
    format: Format | None
    deep: bool  # asked for; the deep checks run only on a file the quick ones pass
    checks: tuple[Check, ...]
    manifest: Manifest | None = field(metadata=INTERNAL)
    seconds: float = field(metadata=meta(digits=2))

    @property
    @computed(after="path")
    def ok(self) -> bool:
        return worst(self.checks) != FAIL

    @property
    @computed(after="deep")
    def provenance(self) -> Literal["manifest", "unverified"]:
        return "manifest" if self.manifest else "unverified"

    @property
    def failed(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status == FAIL)


def verify_file(
    session: StackSession, path: Path, *, deep: bool, on_bytes: OnBytes = _no_progress
) -> VerifyReport:
    db = session.db()
    started = time.monotonic()
    sha256: str | None
    with db.session():
        # The throwaway is made while the quick checks run; dropped if they fail.
        scratch = Throwaway(db) if deep else None
        try:
            # A deep check reads every byte anyway: the sha256 is taken on that pass, not
            # another, and an archive's structure is proven by that load.
            found = quick_checks(db, path, hash_now=not deep, load_follows=deep)
        except BaseException:
            if scratch is not None:
                scratch.drop()
            raise
        if scratch is not None and found.ok and found.info is not None:
            deep_checks, sha256 = deep_check(db, path, found, on_bytes, scratch)
            kept = [c for c in found.checks if c.name != "integrity" or c.status != OK]
            checks = (*kept, *deep_checks)
        else:
            if scratch is not None:
                scratch.drop()
            found = without_load(db, found, path)
            checks, sha256 = found.checks, found.sha256
    report = VerifyReport(
        path,
        found.info.format if found.info else None,
        deep,
        checks,
        found.manifest,
        time.monotonic() - started,
    )
    _remember(report, sha256)
    return report


def _remember(report: VerifyReport, sha256: str | None) -> None:
    result = VerifyResult(
        kind="deep" if report.deep else "quick",
        ok=report.ok,
        at=datetime.now(UTC),
        sha256=sha256,
        detail="; ".join(f"{c.name}: {c.evidence}" for c in report.failed),
    )
    # A read-only copy (USB stick, mounted share) can be verified, just not noted.
    with contextlib.suppress(OSError):
        catalog.record(report.path, result)
