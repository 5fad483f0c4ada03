"""The recoverctl command: process-wide settings made before anything else is imported,
then the CLI (cli/app.py).

Python's cyclic garbage collector runs every 700 new container objects: a command imports
about 600 modules (typer, pydantic, rich, the Docker SDK, botocore), and its collections
walk those long-lived objects again and again, a large share of a short command. Collections
are made rarer (our data flows through bytes, which the collector does not track), and
before exit the objects are frozen, so the interpreter's last collections skip them:
finalizers and atexit handlers (the log file's flush) still run.
"""

from __future__ import annotations

import gc

GC_THRESHOLDS = (20_000, 20, 20)


def main() -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    from recoverctl.adapters import allocator

    allocator.tune()
    from recoverctl.cli.app import main as cli

    try:
        cli()
    finally:
        gc.freeze()
