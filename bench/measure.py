"""One command's wall time and peak RSS, with nothing beyond the standard library.

The peak RSS comes from wait4(2): the kernel's ru_maxrss for the child, which also covers
any descendant the child itself waited for (Linux reports it in KiB).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_TIMEOUT = 3600.0
GRACE = 60.0  # seconds a command gets to clean up after SIGTERM, before SIGKILL


class CommandError(RuntimeError):
    def __init__(self, run: Run, what: str):
        self.run = run
        tail = (run.stderr.strip() or run.stdout.strip())[-2000:]
        super().__init__(f"{what} failed (exit {run.returncode}): {' '.join(run.argv)}\n{tail}")


@dataclass(frozen=True)
class Run:
    argv: tuple[str, ...]
    seconds: float
    returncode: int
    max_rss_kb: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = True,
    what: str | None = None,
) -> Run:
    """Runs argv to completion; stdout and stderr go to temporary files (no pipe to drain)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
        )
        timer = threading.Timer(timeout, _stop, args=(proc,))
        timer.daemon = True
        timer.start()
        try:
            status, usage = _wait(proc)
        except BaseException:
            # Ctrl-C or SIGTERM: recoverctl cleans up on SIGTERM (partial files, rollbacks).
            _stop(proc)
            raise
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = Run(
            argv=tuple(argv),
            seconds=seconds,
            returncode=proc.returncode,
            max_rss_kb=int(usage.ru_maxrss),
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
        )
    if check and not result.ok:
        raise CommandError(result, what or argv[0])
    return result


def _wait(proc: subprocess.Popen[bytes]) -> tuple[int, Any]:
    _, status, usage = os.wait4(proc.pid, 0)  # EINTR is retried by Python (PEP 475)
    return status, usage


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after GRACE seconds; reaps the child."""
    if proc.returncode is not None:
        return
    try:
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + GRACE
        while time.monotonic() < deadline:
            pid, status = os.waitpid(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                return
            time.sleep(0.2)
        proc.kill()
        _, status = os.waitpid(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    except (ChildProcessError, ProcessLookupError):
        return


@dataclass
class Series:
    """Repeated runs of one measurement."""

    key: str
    label: str
    command: str
    samples: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    track_rss: bool = False

    def add(self, seconds: float, rss_kb: int | None = None) -> None:
        self.samples.append(seconds)
        if rss_kb is not None:
            self.rss_kb.append(rss_kb)

    @property
    def min(self) -> float:
        return min(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def peak_rss_kb(self) -> int | None:
        return max(self.rss_kb) if self.track_rss and self.rss_kb else None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "command": self.command,
            "samples": [round(s, 4) for s in self.samples],
            "min": round(self.min, 4) if self.samples else None,
            "median": round(self.median, 4) if self.samples else None,
            "peak_rss_kb": self.peak_rss_kb,
            "rss_kb": self.rss_kb if self.track_rss else [],
        }
