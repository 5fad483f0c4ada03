"""recoverctl drill through the CLI: what is refused before anything starts (no engine
needed), each verdict's exit status and --json against the contract, and the drill record
as list and doctor read it. tests/e2e/test_drill_e2e.py drills the real stack."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from recoverctl.cli.app import app
from recoverctl.core.drill import CheckRow, DrillError, DrillRecord
from recoverctl.errors import ErrorCode
from recoverctl.services.drill import DrillResult
from tests.cli.test_json_contract import envelope, failed, run

NOW = datetime.now(UTC)


def record(**extra: Any) -> DrillRecord:
    values: dict[str, Any] = {
        "result": "passed",
        "project": "vault-dev",
        "drill_project": "vault-dev-drill",
        "stack": "dev",
        "source": "local",
        "backup": "backup_2026-01-02_030405.dump",
        "backup_sha256": "ab" * 32,
        "backup_created": NOW - timedelta(hours=3),
        "started_at": NOW - timedelta(minutes=2),
        "finished_at": NOW - timedelta(minutes=1),
        "recovery_seconds": 41.5,
        "seconds": 52.0,
        "steps": [{"step": "starting the drill stack vault-dev-drill", "seconds": 30.1}],
        "checks": [CheckRow(name="rows", status="ok", evidence="12 tables, 59 rows")],
        "recoverctl_version": "0.1.0",
    }
    values.update(extra)
    return DrillRecord.model_validate(values)


def fake_drill(monkeypatch: pytest.MonkeyPatch, result: DrillResult) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def drill(_session: object, **kwargs: Any) -> DrillResult:
        calls.append(kwargs)
        return result

    monkeypatch.setattr("recoverctl.actions.drill.drill", drill)
    return calls


# --- refused before anything starts ------------------------------------------------------


def test_an_unknown_target(runner: CliRunner, project: Path) -> None:
    document = failed(run(runner, "drill", "--target", "nas"), ErrorCode.TARGET_NOT_FOUND)
    assert document["result"] is None and "nas" in document["error"]["message"]


def test_a_sealed_target_needs_its_identity(runner: CliRunner, project: Path) -> None:
    (project / "config.toml").write_text(f'[targets.nas]\ntype = "dir"\npath = "{project}/nas"\n')
    document = failed(run(runner, "drill", "--target", "nas"), ErrorCode.IDENTITY_INVALID)
    assert "--identity" in document["error"]["hint"]
    # Said in two lines on stderr, never as a traceback; nothing started, nothing recorded.
    text = runner.invoke(app, ["drill", "--target", "nas"])
    assert text.exit_code == 1 and "Traceback" not in text.stderr
    assert text.stderr.count("error:") == 1 and "hint:" in text.stderr
    assert not (project / "backups" / "drills").exists()


def test_no_backup(runner: CliRunner, project: Path) -> None:
    failed(run(runner, "drill"), ErrorCode.BACKUP_NOT_FOUND)


def test_no_env_file(runner: CliRunner, project: Path) -> None:
    backups = project / "backups"
    backups.mkdir()
    dump = backups / "backup_2026-01-02_030405.dump"
    dump.write_bytes(b"PGDMP")
    failed(run(runner, "drill", "--from", str(dump)), ErrorCode.ENV_INVALID)
    assert not (backups / "drills").exists()  # nothing started, nothing recorded


def test_an_empty_stdin_is_not_a_passphrase(runner: CliRunner, project: Path) -> None:
    failed(run(runner, "drill", "--passphrase-stdin", input=""), ErrorCode.USAGE)


# --- verdicts, from a real result object ---------------------------------------------------


def test_a_drill_that_passes(
    runner: CliRunner, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = DrillResult(record(), project / "backups" / "drills" / "DRILL-x.json")
    calls = fake_drill(monkeypatch, result)
    document = run(
        runner, "drill", "--key-file", "/safe/k.zkkey.json", "--passphrase-stdin",
        input="the passphrase\n",
    )  # fmt: skip
    assert document["ok"] and document["result"]["recovery_seconds"] == 41.5
    assert document["result"]["record"].endswith("DRILL-x.json")
    assert calls[0]["passphrase"] == "the passphrase"
    assert calls[0]["key_file"] == Path("/safe/k.zkkey.json") and calls[0]["spec"] == "latest"
    assert "the passphrase" not in json.dumps(document)
    text = runner.invoke(app, ["drill"])
    assert text.exit_code == 0, text.stderr
    assert "drill passed: recovery time 41.5 s" in text.stdout
    assert "starting the drill stack vault-dev-drill" in text.stdout


@pytest.mark.parametrize(
    ("made", "code", "words"),
    [
        (
            {"result": "failed",
             "checks": [CheckRow(name="app.admin", status="fail", evidence="HTTP 500")]},
            ErrorCode.CHECKS_FAILED,
            "with problems: app.admin",
        ),
        (
            {"result": "failed", "recovery_seconds": None,
             "error": DrillError(code="backup_corrupt", message="The drill failed while x: y.",
                                 hint="Use another backup.")},
            ErrorCode.BACKUP_CORRUPT,
            "The drill failed while x: y.",
        ),
        (
            {"leftovers": ["volume vault-dev-drill_db-data"]},
            ErrorCode.CLEANUP_INCOMPLETE,
            "not all removed: volume vault-dev-drill_db-data",
        ),
    ],
)  # fmt: skip
def test_a_drill_that_fails_keeps_its_result(
    runner: CliRunner,
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    made: dict[str, Any],
    code: ErrorCode,
    words: str,
) -> None:
    fake_drill(
        monkeypatch, DrillResult(record(**made), None, ("the drill record could not be written",))
    )
    document = failed(run(runner, "drill"), code)
    assert document["result"]["ok"] is False and document["result"]["record"] is None
    assert words in document["error"]["message"]
    assert document["warnings"] == ["the drill record could not be written"]


# --- the record, as list and doctor read it -------------------------------------------------


def write_record(project: Path, made: DrillRecord) -> None:
    folder = project / "backups" / "drills"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = f"DRILL-{made.started_at:%Y-%m-%d_%H%M%S}.json"
    (folder / name).write_text(made.model_dump_json())
    (folder / "DRILL-garbage.json").write_text("{")  # unreadable: skipped, never fatal


def test_list_shows_the_newest_drill(runner: CliRunner, project: Path) -> None:
    assert run(runner, "list")["result"]["last_drill"] is None
    write_record(project, record(started_at=NOW - timedelta(days=3)))
    write_record(project, record(result="failed", recovery_seconds=None,
                                 error=DrillError(code="x", message="It broke.")))  # fmt: skip
    write_record(project, record(stack="prod", started_at=NOW))  # the other stack's
    last = run(runner, "list")["result"]["last_drill"]
    assert last["result"] == "failed" and last["error"] == "It broke."
    assert last["recovery_seconds"] is None and last["backup"].startswith("backup_")
    backups = project / "backups"
    (backups / "backup_2026-01-02_030405.dump").write_bytes(b"PGDMP")
    text = runner.invoke(app, ["list"])
    assert "last drill: failed" in text.stdout and "back in -" in text.stdout


def test_doctor_warns_when_no_drill_passed_lately(runner: CliRunner, project: Path) -> None:
    def rows(**env: str) -> dict[str, dict[str, Any]]:
        result = runner.invoke(app, ["doctor", "--only", "backups.drill", "--only",
                                     "backups.rto", "--json"], env=env)  # fmt: skip
        document = envelope(result)
        return {c["name"]: c for c in document["result"]["checks"]}

    found = rows()
    assert found["backups.drill"]["status"] == "warn" and "backups.rto" not in found
    assert "no recovery drill of the dev stack yet" in found["backups.drill"]["evidence"]
    write_record(project, record(started_at=NOW - timedelta(days=40),
                                 finished_at=NOW - timedelta(days=40)))  # fmt: skip
    assert "over the 30 days allowed" in rows()["backups.drill"]["evidence"]
    assert rows(RECOVERCTL_DRILL_MAX_AGE="45d")["backups.drill"]["status"] == "ok"
    slow = rows(RECOVERCTL_DRILL_MAX_AGE="45d", RECOVERCTL_RTO="30s")["backups.rto"]
    assert slow["status"] == "warn" and "over the 0.5 min allowed" in slow["evidence"]
    assert rows(RECOVERCTL_RTO="1m")["backups.rto"]["status"] == "ok"
