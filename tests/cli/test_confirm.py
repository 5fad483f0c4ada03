"""The typed confirmation: no answer, a wrong one, Ctrl-C, and the right one."""

from __future__ import annotations

import io

import pytest
import typer

from recoverctl.cli import confirm
from recoverctl.errors import ErrorCode, RecoverctlError


def _ask(monkeypatch: pytest.MonkeyPatch, stdin: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    confirm.typed("vault", "Type vault", "nothing was changed")


def test_the_right_answer_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    _ask(monkeypatch, "vault\n")


def test_a_wrong_answer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RecoverctlError) as info:
        _ask(monkeypatch, "prod\n")
    assert info.value.code is ErrorCode.CONFIRMATION_MISMATCH and info.value.exit_code == 1
    assert info.value.message == "You typed 'prod', not 'vault'; nothing was changed."


def test_no_answer_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RecoverctlError) as info:
        _ask(monkeypatch, "")
    assert info.value.code is ErrorCode.CONFIRMATION_REQUIRED and info.value.exit_code == 2


def test_ctrl_c_at_the_prompt_is_an_interruption(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_args: object, **_kwargs: object) -> str:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise typer.Abort() from None  # as typer's prompt does

    monkeypatch.setattr(typer, "prompt", interrupted)
    with pytest.raises(RecoverctlError) as info:
        confirm.typed("vault", "Type vault", "nothing was changed")
    assert info.value.code is ErrorCode.INTERRUPTED and info.value.exit_code == 130
    assert info.value.message == "Stopped at the confirmation; nothing was changed."
