"""The two progress callbacks every long step takes: a line of what it is doing now, and
how many bytes it has moved so far (the CLI draws them as a spinner and a transfer bar)."""

from __future__ import annotations

import time
from collections.abc import Callable

Step = Callable[[str], None]
OnBytes = Callable[[int], None]


class StepClock:
    """Each step's time, the one running now (named in a failure's message), and the step
    passed on to progress: one clock for restore, drill and recover, so that their steps
    are timed alike (a step runs until the next one starts, or until stop)."""

    def __init__(self, progress: Step):
        self.progress = progress
        self.steps: list[tuple[str, float]] = []
        self.current = ""
        self.running = False
        self.t = time.monotonic()

    def step(self, text: str) -> None:
        if self.running and text == self.current:
            # The same step said again (a wait's progress line): it goes on, one entry.
            self.progress(text)
            return
        self.stop()
        self.current = text
        self.running = True
        self.t = time.monotonic()
        self.steps.append((text, 0.0))
        self.progress(text)

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.steps[-1] = (self.current, time.monotonic() - self.t)

    def timed(self) -> tuple[tuple[str, float], ...]:
        """The steps so far, the running one's time up to now (it keeps running)."""
        if not self.running:
            return tuple(self.steps)
        return (*self.steps[:-1], (self.current, time.monotonic() - self.t))
