import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recoverctl import __version__
from recoverctl.cli.app import app
from tests.unit.fakes import make_backup

COMMANDS = ("up", "down", "ps", "logs", "restart")


def test_help_lists_every_command_with_one_line(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in COMMANDS:
        assert f" {command} " in result.stdout


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert (result.exit_code, result.stdout.strip()) == (0, f"recoverctl {__version__}")


def test_unknown_option_is_a_usage_error(runner: CliRunner, project: Path) -> None:
    assert runner.invoke(app, ["ps", "--bogus"]).exit_code == 2


def test_outside_a_project(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECOVERCTL_PROJECT_DIR", raising=False)
    result = runner.invoke(app, ["ps"])
    assert result.exit_code == 2
    assert "error: No vault project here" in result.stderr
    assert (
        "hint: Run recoverctl inside the vault's checkout, or pass --project-dir." in result.stderr
    )
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "env_file"), [(["up"], ".env"), (["up", "--prod"], ".env.production")]
)
def test_up_without_env_file_says_how_to_create_it(
    runner: CliRunner, project: Path, args: list[str], env_file: str
) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert f"error: Env file {env_file} is missing" in result.stderr
    assert f"cp .env.example {env_file}" in result.stderr


def test_engine_unreachable(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["ps"])
    assert result.exit_code == 1
    assert (
        f"error: Cannot reach the Docker engine at unix://{project}/no-engine.sock" in result.stderr
    )
    assert "hint: Start the Docker engine" in result.stderr


def test_engine_unreachable_as_json(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["ps", "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["ok"] is False and payload["exit_code"] == 1
    assert payload["error"]["code"] == "engine_unreachable"
    assert payload["error"]["message"].startswith("Cannot reach the Docker engine")


def test_missing_compose_file(runner: CliRunner, project: Path) -> None:
    (project / "docker-compose.yml").unlink()
    result = runner.invoke(app, ["ps", "--prod"])
    assert result.exit_code == 1
    assert "error: Compose file docker-compose.yml is missing" in result.stderr
    assert "git checkout -- docker-compose.yml" in result.stderr


def test_invalid_compose_file(runner: CliRunner, project: Path) -> None:
    (project / "docker-compose.dev.yml").write_text("name: x\nservices:\n  db: [\n")
    result = runner.invoke(app, ["ps"])
    assert result.exit_code == 1
    assert "error: Compose file docker-compose.dev.yml is not valid YAML at line" in result.stderr


def test_unknown_service(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["logs", "frontend"])
    assert result.exit_code == 2
    assert "error: No service 'frontend' in docker-compose.dev.yml." in result.stderr
    assert "hint: Services: backend, db." in result.stderr


def test_bad_settings_are_all_reported(
    runner: CliRunner, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOVERCTL_UP_TIMEOUT", "0")
    monkeypatch.setenv("RECOVERCTL_PROJECT_NAME", "UPPER")
    result = runner.invoke(app, ["ps"])
    assert result.exit_code == 2
    assert "RECOVERCTL_UP_TIMEOUT" in result.stderr and "RECOVERCTL_PROJECT_NAME" in result.stderr


def test_down_volumes_needs_a_confirmation(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["down", "--volumes"], input="")
    assert result.exit_code == 2
    assert "NO backup" in result.stderr
    assert "error: No confirmation given; nothing was erased." in result.stderr


def test_down_volumes_wrong_name_erases_nothing(runner: CliRunner, project: Path) -> None:
    backups = project / "backups"
    dev = make_backup(backups, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), stack="dev")
    # A newer backup of the other stack is not this stack's newest.
    make_backup(backups, datetime(2026, 1, 3, 3, 4, 5, tzinfo=UTC), stack="prod")
    result = runner.invoke(app, ["down", "--volumes"], input="vault-prod\n")
    assert result.exit_code == 1
    assert f"this erases the dev database; newest backup: {dev}" in result.stderr
    assert "You typed 'vault-prod', not 'vault-dev'; nothing was erased." in result.stderr


def test_down_volumes_right_name_reaches_the_engine(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["down", "--volumes"], input="vault-dev\n")
    # The confirmation passed; only then does it need the (absent) engine.
    assert result.exit_code == 1
    assert "Cannot reach the Docker engine" in result.stderr
