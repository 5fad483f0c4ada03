"""Ctrl-C and SIGTERM held off while a step that must not be cut in half runs, and whether
this process was sent SIGTERM (both arrive as KeyboardInterrupt)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from recoverctl.errors import ErrorCode, RecoverctlError

HELD = (signal.SIGINT, signal.SIGTERM)
_pending: list[int] = []
_terminated = False


def pending() -> bool:
    return bool(_pending)


def note_sigterm() -> None:
    """Called by the CLI's SIGTERM handler, before it raises KeyboardInterrupt."""
    global _terminated
    _terminated = True


def terminated() -> bool:
    """Whether SIGTERM was received: a KeyboardInterrupt (or an Interrupted error) is then
    a termination, which the process exits with (143, code terminated), not a Ctrl-C."""
    return _terminated


def as_termination(error: RecoverctlError) -> RecoverctlError:
    """An interruption under SIGTERM is a termination: the process's exit, the routine's
    record and its metrics then all say 143, terminated, not 130."""
    if error.code is ErrorCode.INTERRUPTED and _terminated:
        return RecoverctlError(
            error.message, error.hint, code=ErrorCode.TERMINATED, details=error.details
        )
    return error


@contextmanager
def deferred(*, reraise: bool = True) -> Iterator[None]:
    """Signals that arrive inside the block act when it ends (reraise) or not at all
    (a rollback already on its way out must finish whatever happens)."""

    def hold(signum: int, _frame: FrameType | None) -> None:
        _pending.append(signum)

    previous: dict[int, Any] = {s: signal.signal(s, hold) for s in HELD}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        caught = list(_pending)
        _pending.clear()
        if caught and reraise:
            handler = previous.get(caught[0])
            if callable(handler):
                handler(caught[0], None)  # the CLI's own handler: KeyboardInterrupt
            raise KeyboardInterrupt
