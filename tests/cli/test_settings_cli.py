"""An old setting name, as a command sees it: one warning per name per run, on stderr and
in the JSON envelope's warnings; both names at once is a settings error (exit 2)."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recoverctl.cli.app import app

RPO = (
    "RECOVERCTL_RPO_HOURS is deprecated: use RECOVERCTL_RPO instead, a duration with its "
    "unit (RECOVERCTL_RPO=24h)"
)


def test_old_names_warn_once_on_stderr_and_in_the_envelope(
    runner: CliRunner, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = project / "config.toml"
    config.write_text("[recoverctl]\ndrill_days = 45\n")
    monkeypatch.setenv("RECOVERCTL_RPO_HOURS", "6")
    days = (
        f"{config} drill_days is deprecated: use drill_max_age instead, a duration with its "
        'unit (drill_max_age = "30d")'
    )
    for _ in range(2):  # each run says it again, once
        result = runner.invoke(app, ["list", "--json"])
        assert result.exit_code == 0, result.stderr
        document = json.loads(result.stdout)
        assert document["warnings"] == [RPO, days]
        stderr = " ".join(result.stderr.split())  # rich may wrap a long line
        assert stderr.count("warning: RECOVERCTL_RPO_HOURS is deprecated") == 1
        assert stderr.count("drill_days is deprecated") == 1
    # Without --json: the same lines on stderr, stdout the command's own.
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 0 and "deprecated" not in result.stdout
    assert " ".join(result.stderr.split()).count("warning: RECOVERCTL_RPO_HOURS") == 1


def test_new_names_warn_nothing(
    runner: CliRunner, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "config.toml").write_text('[recoverctl]\ndrill_max_age = "45d"\n')
    monkeypatch.setenv("RECOVERCTL_RPO", "6h")
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["warnings"] == []
    assert "deprecated" not in result.stderr


def test_old_and_new_name_at_once_is_a_settings_error(
    runner: CliRunner, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOVERCTL_RPO_HOURS", "6")
    monkeypatch.setenv("RECOVERCTL_RPO", "6h")
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 2
    document = json.loads(result.stdout)
    assert (document["exit_code"], document["error"]["code"]) == (2, "config_invalid")
    assert (
        "RECOVERCTL_RPO_HOURS: the old name of rpo, which RECOVERCTL_RPO sets too: keep only "
        "the new name" in document["error"]["message"]
    )
