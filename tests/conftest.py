"""Fixtures shared by the unit and CLI tests (none is autouse: a test asks for it)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def private_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The lock folder in tmp_path, private as the runtime folder is: no test waits on
    another's locks, nor on the person's own."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("RECOVERCTL_LOCK_DIR", str(runtime))
    return runtime
