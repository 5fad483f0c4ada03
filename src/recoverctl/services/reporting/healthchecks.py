"""The Healthchecks.io pings: /start as the routine begins, then success or /fail with the
summary (and, on failure, the run's last log lines) as its body."""

from __future__ import annotations

import logging
import time
from collections import deque

from recoverctl.adapters import monitor

TAIL_LINES = 40


class Tail(logging.Handler):
    """The run's last log lines, for the /fail ping's body."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: deque[str] = deque(maxlen=TAIL_LINES)

    def emit(self, record: logging.LogRecord) -> None:
        when = time.strftime("%H:%M:%S", time.localtime(record.created))
        for line in record.getMessage().splitlines() or [""]:
            self.lines.append(f"{when} {record.levelname.lower()}: {line}")


def start(url: str, rid: str) -> str | None:
    return monitor.ping(url, "start", rid=rid)


def finish(url: str, ok: bool, summary: str, tail: Tail, rid: str) -> str | None:
    body = summary if ok else summary + "\n\nlast log lines:\n" + "\n".join(tail.lines)
    kind: monitor.Ping = "success" if ok else "fail"
    return monitor.ping(url, kind, body, rid=rid)
