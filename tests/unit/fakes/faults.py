"""Scripted failures at named points: a query or command of a given kind, for a given
database, after letting some calls through, a number of times. A fault either raises
(CommandFailed, EngineError, KeyboardInterrupt, ...), sends Ctrl-C for real (SIGINT, so
that signals.deferred is exercised), or makes a command exit non-zero with a stderr,
optionally after `cut` bytes of its output (pg_dump) or input (pg_restore, psql).
Unknown kinds raise at once: a misspelled fault would otherwise never fire.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass


@dataclass
class Fault:
    kind: str
    database: str | None = None  # only calls aimed at this database
    error: BaseException | None = None  # raised
    sigint: bool = False  # Ctrl-C for real: SIGINT to this process (main thread only)
    exit_code: int | None = 1  # else: the command exits so (None: the container stopped)
    stderr: str = ""
    cut: int | None = None  # bytes of output (pg_dump) or input (loads) before failing
    output: bytes | None = None  # pg_dump writes these bytes instead of its dump
    after: int = 0  # matching calls let through first
    times: int | None = 1  # matching calls that fail; None: all of them
    seen: int = 0
    fired: int = 0


class Faults:
    def __init__(self, kinds: frozenset[str]):
        self.kinds = kinds
        self.items: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        if fault.kind not in self.kinds:
            raise ValueError(f"no point {fault.kind!r}; known: {', '.join(sorted(self.kinds))}")
        self.items.append(fault)
        return fault

    def take(self, kind: str, database: str | None = None) -> Fault | None:
        with self._lock:
            for f in self.items:
                if f.kind != kind or (f.database is not None and f.database != database):
                    continue
                f.seen += 1
                if f.seen <= f.after or (f.times is not None and f.fired >= f.times):
                    continue
                f.fired += 1
                return f
        return None


def _act(fault: Fault) -> None:
    """A fault's exception or Ctrl-C; exit-code faults are the caller's to apply."""
    if fault.sigint:
        signal.raise_signal(signal.SIGINT)
    if fault.error is not None:
        raise fault.error
