"""up --prod's backup before the update: when it cannot go off-site, nothing is rebuilt."""

from __future__ import annotations

from pathlib import Path

import pytest

from recoverctl.actions import stack as action
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.services import routine
from recoverctl.services.session import StackSession
from tests.unit.fakes import app_tables, make_stack


def test_a_failed_push_stops_the_update_with_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = make_stack(tmp_path, monkeypatch, app_tables())
    rebuilt: list[bool] = []

    def push_fails(_session: StackSession, **_kw: object) -> routine.SafetyBackup:
        raise RecoverctlError(
            "backup_x.dump is good here but not on target nas: it did not answer.",
            "Check the target, then: recoverctl push --missing",
            code=ErrorCode.OFFSITE_FAILED,
        )

    def bring_up(_session: StackSession, **_kw: object) -> None:
        rebuilt.append(True)

    monkeypatch.setattr(routine, "backup_verified", push_fails)
    monkeypatch.setattr(action, "bring_up", bring_up)
    with pytest.raises(RecoverctlError) as info:
        action.up(st.session(), backup=True)
    err = info.value
    assert err.code is ErrorCode.UPDATE_REFUSED and err.exit_code == 1
    assert err.message == (
        "backup_x.dump is good here but not on target nas: it did not answer. Nothing was "
        "rebuilt or recreated: the update waits for its off-site copy."
    )
    assert err.hint == (
        "Check the target, then: recoverctl push --missing. To update without the copy: "
        "recoverctl up --no-backup."
    )
    assert rebuilt == []
