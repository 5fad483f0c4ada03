"""What the bench modules share: the images, log lines, SIGTERM, the machine lock and facts,
the guarded run, the JSON report."""

from __future__ import annotations

import fcntl
import json
import os
import platform
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import IO, Any

from tests.projectcopy import REPO

from bench import measure

IMAGE_VARIABLES = ("POSTGRES_IMAGE", "PYTHON_IMAGE")


def images(hint: str = "run `make test-env` and export them.") -> dict[str, str]:
    """POSTGRES_IMAGE and PYTHON_IMAGE from the environment; SystemExit (with hint, what to
    do) naming the ones not set."""
    found = {k: os.environ.get(k, "") for k in IMAGE_VARIABLES}
    missing = [k for k, v in found.items() if not v]
    if missing:
        raise SystemExit(f"{' and '.join(missing)} not set: {hint}")
    return found


class Log:
    """Lines on stderr, stamped with the wall clock, or with a label and the minutes and
    seconds since the Log was made: `[12:34:56] text`, `[bench 01:02] text`."""

    def __init__(self, label: str | None = None) -> None:
        self.label = label
        self.t0 = time.monotonic()

    def __call__(self, text: str) -> None:
        if self.label is None:
            stamp = f"{datetime.now():%H:%M:%S}"
        else:
            elapsed = int(time.monotonic() - self.t0)
            stamp = f"{self.label} {elapsed // 60:02d}:{elapsed % 60:02d}"
        print(f"[{stamp}] {text}", file=sys.stderr, flush=True)


log = Log()


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """SIGTERM from now on raises KeyboardInterrupt, so that it tears down as Ctrl-C does."""
    signal.signal(signal.SIGTERM, _on_sigterm)


def machine_lock(project: str, log: Callable[[str], None], what: str = "bench") -> IO[str]:
    """One `what` at a time on this machine, held until the process ends (keep the handle):
    a second run would take the first one's stack (the same compose project) down as
    leftovers, and the two would measure each other besides. The lock is <project>.lock in
    the temp folder; it holds the pid of its holder, and log says when this run waits."""
    path = Path(tempfile.gettempdir()) / f"{project}.lock"
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        log(f"another {what} (pid {handle.read().strip() or '?'}) holds {path}: waiting for it")
        fcntl.flock(handle, fcntl.LOCK_EX)
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def command_text(argv: list[str]) -> str:
    """argv's stdout, stripped, run in the repository (at most a minute); "" when it cannot
    start."""
    try:
        return measure.run(argv, cwd=REPO, check=False, timeout=60).stdout.strip()
    except OSError:
        return ""


def machine_info(project: str) -> dict[str, Any]:
    """The machine the bench runs on, for the report; other_containers, the ones running
    that are not project's."""
    model = ""
    mem_kb = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    docker = command_text(["docker", "version", "--format", "{{.Server.Version}}"])
    compose = command_text(["docker", "compose", "version", "--short"])
    others = [
        n
        for n in command_text(["docker", "ps", "--format", "{{.Names}}"]).split()
        if not n.startswith(project + "-")
    ]
    cpus = os.cpu_count() or 0
    summary = (
        f"{cpus} CPUs ({model or 'unknown'}), {mem_kb / 2**20:.1f} GiB RAM, "
        f"Linux {platform.release()}, Docker {docker or '?'}, compose {compose or '?'}"
    )
    return {
        "summary": summary,
        "cpus": cpus,
        "cpu_model": model,
        "mem_gib": round(mem_kb / 2**20, 1),
        "kernel": platform.release(),
        "docker": docker,
        "compose": compose,
        "python": platform.python_version(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "other_containers": others,
    }


def guarded_run(stack: Any, project: str, workdir: Path, run: Callable[[], None],
                log: Callable[[str], None]) -> BaseException | None:  # fmt: skip
    """An earlier run's leftovers removed, the stack up, run(): what stopped it (Ctrl-C, a
    failure, said in the log), or None. The caller tears down."""
    try:
        if stack.leftovers():
            log(f"removing leftovers of an earlier {project} run")
            stack.down()
        log(f"recoverctl up ({project} in {workdir})")
        stack.up()
        run()
    except KeyboardInterrupt as exc:
        log("interrupted: tearing down")
        return exc
    except Exception as exc:
        log(f"FAILED: {exc}")
        return exc
    return None


def write_json(path: Path, meta: dict[str, Any], series: dict[str, measure.Series],
               targets: list[str]) -> None:  # fmt: skip
    report = {"meta": meta, "series": {k: v.to_json() for k, v in series.items()},
              "targets": targets}  # fmt: skip
    path.write_text(json.dumps(report, indent=2))
