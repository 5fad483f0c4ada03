"""Commands timed against the playbook (backup, verify, restore) import the off-site services
(and pyrage, botocore, paramiko behind them) only when targets are configured: ~30 ms of
every backup otherwise. Run in a fresh interpreter: an import is once per process."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from types import SimpleNamespace
from recoverctl.cli import app, pushing
from recoverctl.actions import backup, restore, verify
session = SimpleNamespace(settings=SimpleNamespace(targets=()))
pushing.prewarm(session)()
done = pushing.push_after_backup(session, "made")
assert (done.backup, done.pushed, done.error) == ("made", None, None)
print(sorted(m for m in ("recoverctl.services.offsite", "recoverctl.services.envcopy",
                         "recoverctl.adapters.seal", "pyrage") if m in sys.modules))
"""


def test_backup_without_targets_never_imports_the_offsite_services() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
