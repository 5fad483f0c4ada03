"""Logs for unattended runs (--log-file, RECOVERCTL_LOG_FILE, log_file; --verbose), and
output that reads well off a terminal."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recoverctl.cli import render
from recoverctl.cli.app import app

REPO = Path(__file__).resolve().parents[2]
VECTOR = json.loads((REPO / "tests" / "vectors" / "zkkey-v1.json").read_text())
LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d recoverctl\[\d+\] (?P<command>[a-z -]+): "
    r"(?P<text>.*)$"
)


def lines(log: Path) -> list[tuple[str, str]]:
    found = []
    for line in log.read_text().splitlines():
        match = LINE.match(line)
        assert match, f"not a log line: {line!r}"
        found.append((match["command"], match["text"]))
    return found


def test_a_run_is_logged_with_the_terminals_error_and_hint(
    runner: CliRunner, project: Path, tmp_path: Path
) -> None:
    log = tmp_path / "logs" / "recoverctl.log"  # its folder is made too
    result = runner.invoke(app, ["--log-file", str(log), "ps"])
    assert result.exit_code == 1
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    logged = lines(log)
    assert logged[0] == ("ps", "start: recoverctl 0.1.0: ps")
    error = next(text for _, text in logged if text.startswith("error: "))
    hint = next(text for _, text in logged if text.startswith("hint: "))
    # The same two lines as on the terminal, word for word.
    assert f"{error}\n{hint}\n" in result.stderr
    assert logged[-1][1].startswith("done: failed, engine_unreachable (exit 1) after ")

    # Appended, never truncated.
    assert runner.invoke(app, ["--log-file", str(log), "list"]).exit_code == 0
    again = lines(log)
    assert again[: len(logged)] == logged
    assert again[-1][0] == "list" and again[-1][1].startswith("done: ok in ")


def test_each_step_is_logged_once_and_verbose_shows_it(
    runner: CliRunner, project: Path, tmp_path: Path
) -> None:
    log = tmp_path / "run.log"
    result = runner.invoke(app, ["--verbose", "--log-file", str(log), "doctor", "--only", "git"])
    assert result.exit_code == 0, result.output
    assert ("doctor", "checking") in lines(log)
    assert re.search(r"^\d\d:\d\d:\d\d checking$", result.stderr, re.M), result.stderr
    # Without --verbose the terminal stays as it was.
    quiet = runner.invoke(app, ["--log-file", str(log), "doctor", "--only", "git"])
    assert "checking" not in quiet.stderr


def test_a_wait_loop_logs_a_step_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="recoverctl")
    with render.spinner("starting") as step:
        for text in ("waiting for db", "waiting for db", "waiting for db", "ready"):
            step(text)
    assert [r.getMessage() for r in caplog.records] == [
        "starting",
        "waiting for db",
        "ready",
    ]


def test_a_transfer_logs_its_start_and_total(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="recoverctl")
    with render.transfer("pg_dump (custom)") as on_bytes:
        for done in (1024, 2048, 3 * 1024 * 1024):
            on_bytes(done)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "pg_dump (custom)"
    assert re.fullmatch(r"pg_dump \(custom\): 3\.0 MiB in \d+\.\d s", messages[1])
    caplog.clear()
    with render.transfer("restoring into a throwaway database"):
        pass  # a quick verify moves no bytes: nothing to say
    assert caplog.records == []


def test_the_variable_and_the_settings_file(
    runner: CliRunner, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = tmp_path / "configured.log"
    (project / "config.toml").write_text(f'[recoverctl]\nlog_file = "{configured}"\n')
    assert runner.invoke(app, ["list"]).exit_code == 0
    assert lines(configured)[-1][1].startswith("done: ok")

    variable = tmp_path / "variable.log"
    monkeypatch.setenv("RECOVERCTL_LOG_FILE", str(variable))
    assert runner.invoke(app, ["list"]).exit_code == 0
    assert variable.exists() and len(lines(configured)) == 2  # the variable wins

    flag = tmp_path / "flag.log"
    assert runner.invoke(app, ["--log-file", str(flag), "list"]).exit_code == 0
    assert flag.exists() and len(lines(variable)) == 2  # and the flag wins over both


def test_a_relative_log_file_in_the_settings_file_is_refused(
    runner: CliRunner, project: Path
) -> None:
    (project / "config.toml").write_text('[recoverctl]\nlog_file = "logs/x.log"\n')
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 2
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "config_invalid" and "absolute" in error["message"]
    assert not (project / "logs").exists()


def test_an_unusable_log_file_is_a_warning_not_a_failure(
    runner: CliRunner, project: Path, tmp_path: Path
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    result = runner.invoke(app, ["--log-file", str(blocked / "x.log"), "list", "--json"])
    assert result.exit_code == 0
    warnings = json.loads(result.stdout)["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith("not logging to a file:")
    assert "warning: not logging to a file:" in result.stderr


def test_a_world_readable_log_is_closed_to_others(
    runner: CliRunner, project: Path, tmp_path: Path
) -> None:
    log = tmp_path / "shared.log"
    log.write_text("")
    log.chmod(0o644)
    result = runner.invoke(app, ["--log-file", str(log), "list"])
    assert result.exit_code == 0
    assert stat.S_IMODE(log.stat().st_mode) == 0o640
    assert "was readable by everyone; it no longer is" in result.stderr
    logged = [text for _, text in lines(log)]
    assert logged[0].startswith("start: ") and logged[1].startswith("warning: log file ")


def test_a_full_log_disk_does_not_fail_the_command(
    runner: CliRunner, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(_fd: int, _data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    result = runner.invoke(app, ["--log-file", str(tmp_path / "full.log"), "list", "--json"])
    assert result.exit_code == 0, result.output
    warnings = json.loads(result.stdout)["warnings"]
    assert warnings == ["stopped logging to a file: [Errno 28] No space left on device"]


def test_help_writes_no_log(runner: CliRunner, project: Path, tmp_path: Path) -> None:
    log = tmp_path / "help.log"
    assert runner.invoke(app, ["--log-file", str(log), "backup", "--help"]).exit_code == 0
    assert not log.exists()


def test_no_secret_reaches_the_log(
    runner: CliRunner, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password, key = secrets.token_urlsafe(24), secrets.token_urlsafe(50)
    env = project / ".env"
    env.write_text(
        f"POSTGRES_DB=vault\nPOSTGRES_USER=vault\nPOSTGRES_PASSWORD={password}\n"
        f"DJANGO_SECRET_KEY={key}\nDJANGO_DEBUG=true\nDJANGO_ALLOWED_HOSTS=localhost\n"
        "DJANGO_CSRF_TRUSTED_ORIGINS=http://localhost:8000\nVAULT_HTTP_PORT=8000\n"
    )
    env.chmod(0o644)  # a finding doctor reports: it must not quote the file doing so
    monkeypatch.setenv("POSTGRES_PASSWORD", password)
    keyfile = tmp_path / "alice.zkkey.json"
    keyfile.write_text(json.dumps(VECTOR["keyFile"]))
    keyfile.chmod(0o600)
    log = tmp_path / "secret.log"
    outputs = []
    for args, stdin in (
        (["doctor"], None),
        (["doctor", "--json"], None),
        (["up"], None),
        (["backup"], None),
        (["recover", "--yes"], None),
        (["keys", "check", str(keyfile), "--passphrase-stdin"], "not-the-passphrase\n"),
        (
            ["keys", "check", str(keyfile), "--passphrase-stdin"],
            VECTOR["testOnlyPassphrase"] + "\n",
        ),
    ):
        result = runner.invoke(app, ["--verbose", "--log-file", str(log), *args], input=stdin)
        outputs.append(result.output)
    text = log.read_text()
    assert "doctor: error: " in text and "keys check: error: " in text  # the runs were logged
    for secret in (password, key, "not-the-passphrase", VECTOR["testOnlyPassphrase"]):
        assert secret not in text
        assert not any(secret in output for output in outputs)


def test_off_a_terminal_a_table_row_is_one_line(project: Path) -> None:
    """A journal or cron mail at COLUMNS=80: rows are never wrapped, mid-word or not."""
    (project / ".env").write_text(
        "POSTGRES_DB=vault\nPOSTGRES_USER=vault\nPOSTGRES_PASSWORD=change-me\n"
        "DJANGO_SECRET_KEY=short\nDJANGO_DEBUG=true\nDJANGO_ALLOWED_HOSTS=localhost\n"
    )  # findings with long evidence and fixes, the rows most likely to wrap
    env = {**os.environ, "COLUMNS": "80", "DOCKER_HOST": f"unix://{project}/none.sock"}
    run = [sys.executable, "-m", "recoverctl", "doctor", "--only", "git", "--only", "env"]
    text = subprocess.run(run, cwd=project, env=env, capture_output=True, text=True, check=False)
    data = subprocess.run(
        [*run, "--json"], cwd=project, env=env, capture_output=True, text=True, check=False
    )
    checks = json.loads(data.stdout)["result"]["checks"]
    assert len(checks) >= 3
    rows = text.stdout.splitlines()
    assert any(len(row) > 80 for row in rows)  # long evidence stays on its line
    for check in checks:
        row = next(r for r in rows if r.startswith(check["name"] + " "))
        assert check["evidence"] in row and (check["fix"] or "") in row
    assert not any(row != row.rstrip() for row in rows)
    assert not re.search("[\u2500-\u257f]", text.stdout)  # no box drawing in a journal
