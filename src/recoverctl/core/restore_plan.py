"""The restore plan: what is replaced, by what, from when, and the steps, decided up front."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from recoverctl.core.naming import Format
from recoverctl.core.result import INTERNAL, JsonResult, computed, meta
from recoverctl.core.stack import StackName

SCRATCH_TAG = "__restore_"
KEEP_TAG = "__pre_restore_"
FAILED_TAG = "__failed_restore_"


@dataclass(frozen=True)
class CurrentDb:
    exists: bool
    tables: int
    rows: int  # the planner's estimate: this only describes what a restore replaces
    size: int


@dataclass(frozen=True)
class RestorePlan(JsonResult):
    backup: str
    backup_format: Format
    backup_created: datetime | None
    backup_stack: str | None  # None: no manifest
    backup_tables: int | None
    backup_rows: int | None
    project: str
    stack: str = field(metadata=meta(schema=StackName))
    database: str
    current: CurrentDb
    # How it will be done: the JSON says it in its steps and warnings.
    scratch: str = field(metadata=INTERNAL)
    keep_as: str = field(metadata=INTERNAL)
    app_services: tuple[str, ...] = field(metadata=INTERNAL)
    safety_backup: bool = field(metadata=INTERNAL)
    # Databases an earlier, killed restore left behind.
    leftovers: tuple[str, ...] = field(metadata=INTERNAL)
    # More warnings, decided by the caller (the code's age).
    notes: tuple[str, ...] = field(default=(), metadata=INTERNAL)

    @property
    @computed()
    def steps(self) -> tuple[str, ...]:
        apps = ", ".join(self.app_services) or "no app service"
        safety = self.safety_backup and self.current.exists
        manifest = self.backup_stack is not None
        confined = f"confined to it (psql's restricted mode, a role that owns only {self.scratch})"
        steps = [
            f"restore {self.backup} into a new database {self.scratch}, {confined}"
            + ("; check its sha256 against the manifest as it streams" if manifest else ""),
            f"count every table of {self.scratch}: each must hold the rows its load reported"
            + (" and the manifest recorded" if manifest else " (no manifest to compare with)")
            + "; ANALYZE it",
        ]
        if safety:
            steps.append(f"take a safety backup of {self.database} (custom format)")
        if self.app_services:
            steps.append(f"stop {apps}")
        steps.append(f"end the remaining connections to {self.database}")
        if self.current.exists:
            steps.append(
                f"swap in one transaction: {self.database} -> {self.keep_as}, "
                f"{self.scratch} -> {self.database}"
            )
        else:
            steps.append(f"rename {self.scratch} -> {self.database}")
        steps.append(f"start {apps}; wait until healthy")
        drop = f"drop {self.keep_as}" if self.current.exists else ""
        if manifest:
            steps.append(
                "compare row counts again" + (drop and f"; {drop} meanwhile")
            )
        elif drop:
            steps.append(drop)
        return tuple(steps)

    @property
    @computed()
    def warnings(self) -> tuple[str, ...]:
        found: list[str] = []
        if self.backup_stack is None:
            found.append(
                "the backup has no manifest: its provenance and checksum are unknown; the load "
                "is checked against itself only"
            )
        elif self.backup_stack != self.stack:
            found.append(
                f"this is a {self.backup_stack} backup restored into the {self.stack} stack"
            )
        if not self.safety_backup and self.current.exists:
            found.append("no safety backup: the current data cannot be brought back")
        for name in self.leftovers:
            found.append(f"database {name} was left by an interrupted run; inspect or drop it")
        found.extend(self.notes)
        return tuple(found)


STAMP = "%Y%m%d_%H%M%S"
STAMP_LEN = len("20260101_000000")


def name_base(database: str) -> str:
    """What a restore's databases are named after: the database's name, cut so that the
    longest of them fits PostgreSQL's 63 bytes (it would cut them itself, silently)."""
    room = 63 - len(FAILED_TAG) - STAMP_LEN
    # Cut by bytes, as PostgreSQL counts, never inside a character.
    return database.encode()[:room].decode("utf-8", "ignore")


def names_for(database: str, stamp: datetime) -> tuple[str, str, str]:
    """Scratch, keep-as and failed names."""
    suffix = f"{stamp:{STAMP}}"
    base = name_base(database)
    return (
        f"{base}{SCRATCH_TAG}{suffix}",
        f"{base}{KEEP_TAG}{suffix}",
        f"{base}{FAILED_TAG}{suffix}",
    )
