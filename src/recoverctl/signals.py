"""Ctrl-C and SIGTERM held off while a step that must not be cut in half runs."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

HELD = (signal.SIGINT, signal.SIGTERM)
_pending: list[int] = []


def pending() -> bool:
    return bool(_pending)


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
