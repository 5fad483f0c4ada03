"""Named pauses for the fault-injection suite. RECOVERCTL_FAILPOINT=NAME makes a run stop
at NAME, say so on stderr, and wait there (up to a minute, or RECOVERCTL_FAILPOINT_SECONDS)
for the test's signal, then go on."""

from __future__ import annotations

import os
import sys
import time

from recoverctl import signals

WAIT_SECONDS = 60.0


def reach(name: str) -> None:
    if os.environ.get("RECOVERCTL_FAILPOINT") != name:
        return
    sys.stderr.write(f"failpoint {name} reached\n")
    sys.stderr.flush()
    wait = float(os.environ.get("RECOVERCTL_FAILPOINT_SECONDS") or WAIT_SECONDS)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and not signals.pending():
        time.sleep(0.05)
