"""A step that runs beside another one and hands back its error when joined."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Background(threading.Thread, Generic[T]):
    """Runs fn at once in a daemon thread; finish() waits and returns its value or raises
    its error (any BaseException, Ctrl-C included, so that nothing is lost silently)."""

    def __init__(self, fn: Callable[[], T], name: str):
        super().__init__(name=name, daemon=True)
        self.fn = fn
        self.value: T | None = None
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.value = self.fn()
        except BaseException as exc:
            self.error = exc

    def finish(self, *, reraise: bool = True) -> T | None:
        # No timeout: the steps run here end on their own (engine and psql time limits).
        self.join()
        if reraise and self.error is not None:
            raise self.error
        return self.value
