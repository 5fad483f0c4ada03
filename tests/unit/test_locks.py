"""The project lock is one per user and project, whatever the environment of the run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recoverctl.adapters import fsio
from recoverctl.errors import ErrorCode, RecoverctlError


def test_a_timer_and_a_shell_share_the_lock_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECOVERCTL_LOCK_DIR", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    shell = fsio.lock_dir()
    monkeypatch.delenv("XDG_RUNTIME_DIR")  # as cron runs it
    assert fsio.lock_dir() == shell == Path(f"/tmp/recoverctl-{os.getuid()}")


def test_a_held_lock_refuses_a_second_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOVERCTL_LOCK_DIR", str(tmp_path / "locks"))
    with (
        fsio.project_lock("vault-dev", "backup"),
        pytest.raises(RecoverctlError) as info,
        fsio.project_lock("vault-dev", "restore"),
    ):
        pass
    assert info.value.code is ErrorCode.LOCKED
    assert info.value.message == f"Another operation is running on vault-dev: backup (pid {os.getpid()})."
    with fsio.project_lock("vault-dev", "restore"):  # released: free again
        pass


def test_a_shared_lock_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "open"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    monkeypatch.setenv("RECOVERCTL_LOCK_DIR", str(folder))
    with pytest.raises(RecoverctlError) as info:
        fsio.lock_dir()
    assert info.value.message == f"Lock folder {folder} is not a private folder of yours."


def test_one_lock_function_for_the_project_and_the_routine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from recoverctl.services.routine import routine_lock

    monkeypatch.setenv("RECOVERCTL_LOCK_DIR", str(tmp_path / "locks"))

    def busy(holder: str) -> RecoverctlError:
        return RecoverctlError(f"busy: {holder}", code=ErrorCode.ROUTINE_RUNNING)

    with fsio.held_lock("x.routine.lock", "routine --dev", busy):
        with pytest.raises(RecoverctlError) as info, fsio.held_lock("x.routine.lock", "b", busy):
            pass
        assert info.value.message == f"busy: routine --dev (pid {os.getpid()})"
        # The routine's lock is that file: a second routine stops with its own code.
        with pytest.raises(RecoverctlError) as info, routine_lock("x", "dev"):
            pass
        assert info.value.code is ErrorCode.ROUTINE_RUNNING
        assert info.value.message.startswith("A routine is already running on x: routine --dev")
        with fsio.project_lock("x", "backup"):  # another file: the steps take it one by one
            pass
    assert (tmp_path / "locks" / "x.routine.lock").exists()
    with routine_lock("x", "dev"):  # released: free again
        pass
