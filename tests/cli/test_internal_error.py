"""The last line of defence: a bug is one line on the terminal, naming the file that holds
its traceback; the traceback is masked; --verbose still shows it; JSON says internal_error."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from recoverctl.cli.app import app

AGE_KEY = "AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQS3Q0L7Z"
PASSWORD = "db-password-that-must-not-leak"


def _bug(*_args: object, **_kwargs: object) -> Any:
    raise ZeroDivisionError(f"boom {AGE_KEY} and {PASSWORD}")


@pytest.fixture
def buggy(project: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    (project / ".env").write_text(f"POSTGRES_PASSWORD={PASSWORD}\n")
    monkeypatch.setattr("recoverctl.actions.listing.list_backups", _bug)
    return _bug


def _named_file(text: str) -> Path:
    return Path(text.rsplit("the details are in ", 1)[1].split()[0].rstrip(",."))


def test_a_bug_is_one_line_and_its_traceback_a_private_file(
    runner: CliRunner, project: Path, buggy: object
) -> None:
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 1
    shown = result.stderr.strip().splitlines()
    assert len(shown) == 1, result.stderr
    assert shown[0].startswith("error: internal error: ZeroDivisionError: boom ")
    assert "a bug: the details are in " in shown[0]
    assert "Traceback" not in result.output and AGE_KEY not in result.output
    assert PASSWORD not in result.output
    kept = _named_file(shown[0])
    assert kept.parent == project / "backups"  # no log file set: under the backups folder
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    text = kept.read_text()
    assert "Traceback" in text and "ZeroDivisionError" in text and "_bug" in text
    assert AGE_KEY not in text and PASSWORD not in text and "***" in text


def test_with_a_log_file_the_traceback_goes_there(
    runner: CliRunner, project: Path, buggy: object, tmp_path: Path
) -> None:
    logfile = tmp_path / "run.log"
    result = runner.invoke(app, ["--log-file", str(logfile), "list"])
    assert result.exit_code == 1
    assert _named_file(result.stderr) == logfile
    text = logfile.read_text()
    assert "traceback: Traceback" in text and AGE_KEY not in text and PASSWORD not in text
    assert not (project / "backups").exists() or not list((project / "backups").iterdir())


def test_verbose_shows_the_traceback_too(runner: CliRunner, project: Path, buggy: object) -> None:
    result = runner.invoke(app, ["--verbose", "list"])
    assert result.exit_code == 1
    assert "Traceback" in result.stderr and AGE_KEY not in result.stderr
    assert "internal error: ZeroDivisionError" in result.stderr


def test_json_says_internal_error(runner: CliRunner, project: Path, buggy: object) -> None:
    result = runner.invoke(app, ["list", "--json"])
    document = json.loads(result.stdout)
    assert (document["ok"], document["error"]["code"], document["exit_code"]) == (
        False,
        "internal_error",
        1,
    )
    assert AGE_KEY not in result.stdout and PASSWORD not in result.stdout
