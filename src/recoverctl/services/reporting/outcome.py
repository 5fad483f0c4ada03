"""What the report reads of a routine's result (actions/routine.py's RoutineReport)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from recoverctl.errors import RecoverctlError
from recoverctl.services.routine import StepRecord


class Outcome(Protocol):
    @property
    def project(self) -> str: ...
    @property
    def stack(self) -> str: ...
    @property
    def started_at(self) -> datetime: ...
    @property
    def steps(self) -> tuple[StepRecord, ...]: ...
    @property
    def error(self) -> RecoverctlError | None: ...
    @property
    def ok(self) -> bool: ...
    @property
    def exit_status(self) -> int: ...
