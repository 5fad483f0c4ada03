"""prune, routine and schedule through the CLI, with no engine: plans, confirmations,
refusals, the routine's lock and its failure report, and every --json against the contract."""

from __future__ import annotations

import ast
import fcntl
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from recoverctl.cli import contract, prune, routine, schedule
from recoverctl.cli.app import app
from recoverctl.errors import ErrorCode
from tests.unit.fakes import make_backup
from tests.unit.test_monitor import Recorder

T0 = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


pytestmark = pytest.mark.usefixtures("private_locks")


@pytest.fixture
def server() -> Iterator[Recorder]:
    recorder = Recorder().start()
    yield recorder
    recorder.stop()


def configure(project: Path, text: str) -> None:
    (project / "config.toml").write_text(text)


def invoke(runner: CliRunner, *args: str, input: str | None = None) -> Any:
    return runner.invoke(app, list(args), input=input)


def envelope(result: Any) -> dict[str, Any]:
    document = json.loads(result.stdout)
    contract.validate(document)
    assert document["exit_code"] == result.exit_code
    return dict(document)


def history(project: Path, states: list[str]) -> list[Path]:
    return [
        make_backup(project / "backups", T0 - timedelta(days=i), state)
        for i, state in enumerate(states)
    ]


def test_prune_dry_run_shows_each_decision_and_deletes_nothing(
    runner: CliRunner, project: Path
) -> None:
    configure(project, "[retention]\nkeep_last = 2\n")
    paths = history(project, ["quick ok", "never", "quick ok", "deep ok"])
    result = invoke(runner, "prune", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "keep: newest, last 1/2" in result.stdout
    assert "keep: newest deep-verified" in result.stdout
    assert "delete (dry run)" in result.stdout
    assert all(p.exists() for p in paths)
    document = envelope(invoke(runner, "prune", "--dry-run", "--json"))
    scope = document["result"]["scopes"][0]
    assert (scope["kept"], scope["to_delete"], scope["deleted"]) == (3, 1, [])


def test_prune_asks_and_without_a_terminal_deletes_nothing(
    runner: CliRunner, project: Path
) -> None:
    configure(project, "[retention]\nkeep_last = 1\n")
    paths = history(project, ["quick ok", "quick ok", "quick ok"])
    result = invoke(runner, "prune", input="")
    assert result.exit_code == 2
    assert "nothing was deleted" in result.stderr
    assert all(p.exists() for p in paths)
    result = invoke(runner, "prune", input="1\n")
    assert result.exit_code == 1 and "not '2'" in result.stderr
    result = invoke(runner, "prune", input="2\n")
    assert result.exit_code == 0, result.output
    assert paths[0].exists() and not paths[1].exists() and not paths[2].exists()


def test_prune_json_shows_the_plan_on_stderr_before_it_asks(
    runner: CliRunner, project: Path
) -> None:
    # --json keeps stdout for the envelope: the plan the person confirms goes to stderr,
    # before the prompt, as restore --json shows its plan.
    configure(project, "[retention]\nkeep_last = 1\n")
    paths = history(project, ["quick ok", "quick ok", "quick ok"])
    result = invoke(runner, "prune", "--json", input="2\n")
    # CliRunner echoes the typed answer to stdout (a terminal would show it, not stdout).
    document = json.loads(result.stdout[result.stdout.index("{") :])
    contract.validate(document)
    assert document["ok"] and document["result"]["deleted"] == 2
    shown, prompt = result.stderr.split("Type 2 to delete these 2 backups")
    for path in paths:
        assert path.name in shown
    assert shown.count("delete") >= 2 and "keep" in shown
    assert "deleted" not in prompt  # the result itself is in the envelope, not on stderr


def below_the_actions(source: str) -> list[str]:
    """The modules of services and adapters a source imports, at run time or for types."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names = (
            [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else []
        )
        found += [n for n in names if n.startswith(("recoverctl.services", "recoverctl.adapters"))]
    return found


def test_the_unattended_cli_imports_actions_not_services() -> None:
    # docs/source-code.md: the CLI uses actions and render; prune's types come from its action.
    for module in (prune, routine, schedule):
        assert below_the_actions(Path(module.__file__ or "").read_text()) == [], module
    assert below_the_actions("from recoverctl.services.retention import ScopeResult\n") == [
        "recoverctl.services.retention"
    ]


def test_prune_yes_deletes_the_backup_with_its_manifest_and_record(
    runner: CliRunner, project: Path
) -> None:
    configure(project, "[retention]\nkeep_daily = 1\n")
    paths = history(project, ["quick ok", "quick ok"])
    document = envelope(invoke(runner, "prune", "--yes", "--json"))
    assert document["ok"] and document["result"]["deleted"] == 1
    left = sorted(p.name for p in (project / "backups").iterdir())
    assert left == [paths[0].name, f"{paths[0].name}.json", f"{paths[0].name}.verify.json"]


def test_prune_refusals(runner: CliRunner, project: Path) -> None:
    history(project, ["never", "failed", "never"])
    document = envelope(invoke(runner, "prune", "--yes", "--json"))
    assert document["error"]["code"] == ErrorCode.CONFIG_INVALID and document["exit_code"] == 2
    configure(project, "[retention]\nkeep_last = 1\n")
    document = envelope(invoke(runner, "prune", "--yes", "--json"))
    assert document["error"]["code"] == ErrorCode.PRUNE_REFUSED and document["exit_code"] == 1
    assert "nothing was deleted" in document["error"]["message"]
    assert len(list((project / "backups").iterdir())) == 7
    document = envelope(invoke(runner, "prune", "--target", "nas", "--json"))
    assert document["error"]["code"] == ErrorCode.TARGET_NOT_FOUND


def test_prune_a_folder_target(runner: CliRunner, project: Path, tmp_path: Path) -> None:
    nas = tmp_path / "nas"
    nas.mkdir()
    configure(
        project,
        f'[retention]\nkeep_last = 5\n[targets.nas]\ntype = "dir"\npath = "{nas}"\n',
    )
    document = envelope(invoke(runner, "prune", "--all-targets", "--dry-run", "--json"))
    assert [s["where"] for s in document["result"]["scopes"]] == ["nas"]


def test_routine_that_cannot_back_up_reports_its_failure(
    runner: CliRunner, project: Path, server: Recorder, tmp_path: Path
) -> None:
    prom = tmp_path / "recoverctl.prom"
    configure(
        project,
        "[retention]\nkeep_last = 3\n[monitoring]\n"
        f'healthchecks_url = "{server.url}/hc"\nprometheus_textfile = "{prom}"\n',
    )
    result = invoke(runner, "routine", "--json")
    document = envelope(result)
    assert document["exit_code"] == 1
    assert document["error"]["code"] == ErrorCode.ENGINE_UNREACHABLE
    steps = {s["name"]: s["status"] for s in document["result"]["steps"]}
    assert steps == {
        "backup": "failed", "verify": "skipped", "push": "skipped", "pitr": "skipped", "drill": "skipped",
        "prune": "skipped", "report": "ok",
    }  # fmt: skip
    assert [p.split("?")[0] for p in server.paths()] == ["/hc/start", "/hc/fail"]
    assert b"engine" in server.received[1].body.lower()
    assert "recoverctl_routine_last_exit_status" in prom.read_text()
    status = envelope(invoke(runner, "schedule", "status", "--json"))
    last = status["result"]["last_routine"]
    assert last["ok"] is False and last["error_code"] == "engine_unreachable"


def test_a_second_routine_exits_at_once_with_its_own_code(
    runner: CliRunner, project: Path, server: Recorder
) -> None:
    configure(project, f'[monitoring]\nhealthchecks_url = "{server.url}/hc"\n')
    lock = Path(os.environ["RECOVERCTL_LOCK_DIR"]) / "vault-dev.routine.lock"
    lock.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"routine --dev (pid 4242)")
        document = envelope(invoke(runner, "routine", "--json"))
    finally:
        os.close(fd)
    assert document["error"]["code"] == ErrorCode.ROUTINE_RUNNING
    assert document["exit_code"] == 1 and document["result"] is None
    assert "pid 4242" in document["error"]["message"]
    assert server.received == []


def test_schedule_print_and_status(runner: CliRunner, project: Path) -> None:
    result = invoke(runner, "schedule", "install", "--prod", "--every", "1d", "--print")
    assert result.exit_code == 0, result.output
    assert "OnCalendar=*-*-* 03:00:00" in result.stdout
    assert "Persistent=true" in result.stdout
    assert f"routine --prod --project-dir {project}" in result.stdout
    document = envelope(invoke(runner, "schedule", "install", "--print", "--json"))
    assert document["result"]["action"] == "print"
    assert document["result"]["command"][-3:] == ["routine", "--project-dir", str(project)]
    document = envelope(invoke(runner, "schedule", "install", "--every", "7m", "--json"))
    assert document["error"]["code"] == ErrorCode.USAGE
    document = envelope(invoke(runner, "schedule", "status", "--json"))
    assert document["ok"] and document["result"]["last_routine"] is None
