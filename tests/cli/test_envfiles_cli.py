"""env push, env pull, and backup's env push, through the CLI against real folder targets:
no engine. Every envelope is held to the contract; no value ever reaches the output."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recoverctl.errors import ErrorCode, RecoverctlError
from tests.cli.test_offsite_cli import Env, backup_makes_b2, failed, invoke, ok

DEV = "DJANGO_SECRET_KEY=dev-secret-value-123456\nPOSTGRES_PASSWORD=dev-pw-abcdef\n"


@pytest.fixture
def env(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Env:
    made = Env(project, tmp_path_factory.mktemp("outside"))
    (project / ".env").write_text(DEV)
    (project / ".env").chmod(0o600)
    return made


def test_env_push_then_pull_on_a_machine_without_the_file(runner: CliRunner, env: Env) -> None:
    pushed = ok(runner, "env", "push")
    assert pushed["files"] == [".env"]
    assert sorted((c["target"], c["status"]) for c in pushed["copies"]) == [
        ("clear", "pushed"),
        ("nas", "pushed"),
    ]
    (env.project / ".env").unlink()
    pulled = ok(runner, "env", "pull", "--target", "clear", "--identity", str(env.identity))
    assert pulled["written"] == [str(env.project / ".env")]
    assert (env.project / ".env").read_text() == DEV
    assert stat.S_IMODE((env.project / ".env").stat().st_mode) == 0o600
    again = invoke(runner, "env", "pull", "-t", "nas", "-i", str(env.identity))
    assert again.exit_code == 0 and "never overwritten" in again.stdout
    assert "dev-secret" not in again.stdout + again.stderr


def test_env_pull_needs_a_target_and_an_identity(runner: CliRunner, env: Env) -> None:
    failed(runner, ErrorCode.USAGE, "env", "pull")
    doc = failed(runner, ErrorCode.IDENTITY_INVALID, "env", "pull", "--target", "nas")
    assert "--identity FILE" in doc["error"]["hint"]
    failed(runner, ErrorCode.ENV_NOT_FOUND, "env", "pull", "-t", "nas", "-i", str(env.identity))


def test_env_push_to_a_broken_target_is_exit_3(runner: CliRunner, env: Env) -> None:
    shutil.rmtree(env.nas)
    doc = failed(runner, ErrorCode.OFFSITE_FAILED, "env", "push")
    statuses = {c["target"]: c["status"] for c in doc["result"]["copies"]}
    assert statuses == {"clear": "pushed", "nas": "failed"}
    failed(runner, ErrorCode.TARGET_NOT_FOUND, "env", "push", "--target", "nowhere")


def test_backup_pushes_the_env_files_when_they_changed(
    runner: CliRunner, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = backup_makes_b2(env, monkeypatch)
    first = ok(runner, "backup")
    assert {c["status"] for c in first["env"]["copies"]} == {"pushed"}
    second = ok(runner, "backup")
    assert {c["status"] for c in second["env"]["copies"]} == {"unchanged"}
    (env.project / ".env").write_text(DEV + "EXTRA=1\n")
    # The env push fails on a target that the backup's own push got through: exit 3, the
    # backup's result kept.
    def unreachable(*_a: object, **_k: object) -> None:
        raise RecoverctlError("nas is gone", "bring it back", code=ErrorCode.TARGET_UNREACHABLE)

    monkeypatch.setattr("recoverctl.services.envcopy.open_target", unreachable)
    doc = failed(runner, ErrorCode.OFFSITE_FAILED, "backup")
    assert doc["result"]["path"] == str(path)
    assert "env files" in doc["error"]["message"] and "env push" in doc["error"]["hint"]
    assert path.exists()
