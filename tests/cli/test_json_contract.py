"""Every command's --json output, success and failure, against the documented contract:
src/recoverctl/cli/contract.py (models derived from the results) and docs/json.md
(prose). stdout must hold exactly one JSON document whatever happens; its exit_code is
the process's exit status.

Failures need no engine (no project, an engine that cannot answer, no backup, bad
command lines, Ctrl-C, a bug). Successes that need an engine run here with the action
replaced by one returning a real result object, so a result that drifts from the
contract fails in milliseconds; tests/e2e check the real ones again.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner, Result

from recoverctl import signals
from recoverctl.cli import contract
from recoverctl.cli.app import app
from recoverctl.errors import ErrorCode, exit_status
from tests import clitree, samples

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "json.md"
VECTOR = json.loads((REPO / "tests" / "vectors" / "zkkey-v1.json").read_text())


COMMANDS = clitree.commands()
JSON_COMMANDS = clitree.json_commands(COMMANDS)
# The least each command needs to get past its own argument parsing.
ARGS: dict[str, list[str]] = {
    "verify": ["latest"],
    "restore": ["latest"],
    "pull": ["latest", "--target", "nas"],
    "keys new-identity": ["/nonexistent/identity.txt"],
}


def envelope(result: Result) -> dict[str, Any]:
    """The one document on stdout, valid against its command's model."""
    assert result.stdout.lstrip().startswith("{"), (result.stdout, result.stderr)
    document = json.loads(result.stdout)  # raises on anything after the document
    try:
        contract.validate(document)
    except ValidationError as exc:
        pytest.fail(
            f"{exc}\nA result field added, renamed or removed? Change it on the result "
            "(src/recoverctl/core/result.py says how) and its row in docs/json.md with it.",
            pytrace=False,
        )
    assert document["exit_code"] == result.exit_code, (document, result.stderr)
    assert "Traceback" not in result.stderr or document["error"]["code"] == "internal_error"
    return dict(document)


def run(runner: CliRunner, *args: str, input: str | None = None) -> dict[str, Any]:
    return envelope(runner.invoke(app, [*args, "--json"], input=input))


def failed(document: dict[str, Any], code: ErrorCode) -> dict[str, Any]:
    assert (document["ok"], document["error"]["code"]) == (False, code), document
    assert document["exit_code"] == exit_status(code)
    assert document["error"]["message"]
    return document


# --- the contract itself -------------------------------------------------------------


def test_the_contract_names_every_command() -> None:
    assert set(contract.ENVELOPES) - {None} == set(COMMANDS)
    assert set(contract.RESULTS) == set(JSON_COMMANDS)
    # logs streams the services' own lines; keys and schedule are groups; the rest --json.
    assert set(COMMANDS) - set(JSON_COMMANDS) == {"logs", "keys", "schedule", "env", "pitr"}


def _fields(model: type[BaseModel]) -> Iterator[str]:
    for name, info in model.model_fields.items():
        yield info.alias or name
        for inner in _models_in(info.annotation):
            yield from _fields(inner)


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in getattr(annotation, "__args__", ()):
        yield from _models_in(arg)


def _section(title: str) -> str:
    match = re.search(rf"^### {re.escape(title)}\n(.*?)(?=^##)", DOCS.read_text(), re.S | re.M)
    assert match, f"docs/json.md has no section '### {title}'"
    return match.group(1)


@pytest.mark.parametrize("command", sorted(contract.RESULTS))
def test_the_docs_describe_every_result_field(command: str) -> None:
    section = _section(f"`{command}`")
    missing = {
        name
        for model in contract.RESULTS[command]
        for name in _fields(model)
        if f"`{name}`" not in section
    }
    assert not missing, f"docs/json.md, `{command}`: undocumented fields {sorted(missing)}"


def _documented(section: str) -> set[str]:
    """The field names in the first column of the section's `| field | ... |` tables."""
    names: set[str] = set()
    for table in re.findall(r"^\| field \|.*?\n((?:\|.*\n?)*)", section, re.M):
        names.update(re.findall(r"^\| `([a-z_0-9]+)` \|", table, re.M))
    return names


@pytest.mark.parametrize("command", sorted(contract.RESULTS))
def test_every_documented_field_exists(command: str) -> None:
    documented = _documented(_section(f"`{command}`"))
    fields = {name for model in contract.RESULTS[command] for name in _fields(model)}
    extra = documented - fields
    assert not extra, f"docs/json.md, `{command}`: documents fields it has not {sorted(extra)}"


def test_the_docs_describe_the_envelope_and_every_error_code() -> None:
    envelope_doc = _section("The envelope")
    for name in (*_fields(contract.UsageEnvelope), *_fields(contract.Error)):
        assert f"`{name}`" in envelope_doc, name
    rows = dict(re.findall(r"^\| `([a-z_]+)` \| (\d+) \|", _section("Error codes"), re.M))
    expected = {str(code): str(exit_status(code)) for code in ErrorCode}
    assert rows == expected, (
        "docs/json.md's error codes table: one row per ErrorCode, with its exit"
    )
    statuses = set(re.findall(r"^\| `?(\d+)`? \|", _section("Exit status"), re.M))
    assert statuses == {"0", *(str(exit_status(code)) for code in ErrorCode)}


def test_the_json_schema_is_printable() -> None:
    schema = contract.json_schema()
    assert schema["$schema"].endswith("2020-12/schema")
    assert len(schema["anyOf"]) == len(contract.ENVELOPES)
    assert "ok" in json.dumps(schema)


# --- failures that need no engine ----------------------------------------------------


@pytest.mark.parametrize("command", JSON_COMMANDS)
def test_outside_a_project(
    runner: CliRunner, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECOVERCTL_PROJECT_DIR", raising=False)
    monkeypatch.setenv("RECOVERCTL_CONFIG", str(tmp_path / "none.toml"))
    document = run(runner, *command.split(), *ARGS.get(command, []))
    failed(document, ErrorCode.PROJECT_NOT_FOUND)
    assert document["command"] == command and document["result"] is None
    assert "Run recoverctl inside the vault's checkout" in document["error"]["hint"]


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["ps"], ErrorCode.ENGINE_UNREACHABLE),
        (["restart"], ErrorCode.ENGINE_UNREACHABLE),
        (["down"], ErrorCode.ENGINE_UNREACHABLE),
        (["backup"], ErrorCode.ENGINE_UNREACHABLE),
        (["up"], ErrorCode.ENV_INVALID),
        (["recover"], ErrorCode.ENV_INVALID),
        (["verify", "latest"], ErrorCode.BACKUP_NOT_FOUND),
        (["verify", "nowhere.dump"], ErrorCode.USAGE),  # a path that names nothing
        (["restore", "nowhere.dump", "--yes"], ErrorCode.USAGE),
        (["keys", "check"], ErrorCode.USAGE),
        (["keys", "check", "nowhere.zkkey.json"], ErrorCode.KEY_FILE_INVALID),
    ],
)
def test_failures_without_an_engine(
    runner: CliRunner, project: Path, args: list[str], code: ErrorCode
) -> None:
    document = failed(run(runner, *args), code)
    assert document["command"] == ("keys check" if args[0] == "keys" else args[0])


def test_engine_unreachable_keeps_the_hint(runner: CliRunner, project: Path) -> None:
    document = failed(run(runner, "ps"), ErrorCode.ENGINE_UNREACHABLE)
    assert document["error"]["hint"].startswith("Start the Docker engine")


def test_a_prompt_and_its_warning_stay_off_stdout(runner: CliRunner, project: Path) -> None:
    document = failed(run(runner, "down", "--volumes", input=""), ErrorCode.CONFIRMATION_REQUIRED)
    assert document["warnings"] == [
        "this erases the dev database and there is NO backup in backups/"
    ]


@pytest.mark.parametrize(
    ("args", "command"),
    [
        *((["--bogus", *c.split(), *ARGS.get(c, [])], c) for c in JSON_COMMANDS),
        (["logs"], "logs"),  # logs has no --json: asking for it is a usage error, as JSON
        (["logs", "--tail", "many"], "logs"),
        (["backup", "--format", "zip"], "backup"),
        (["restore"], "restore"),  # the backup argument is missing
        (["keys"], "keys"),
        (["bogus"], None),
    ],
)
def test_usage_errors(
    runner: CliRunner, project: Path, args: list[str], command: str | None
) -> None:
    if args[0] == "--bogus":
        args = [*args[1:], "--bogus"]  # the command's own option parsing fails
    document = failed(run(runner, *args), ErrorCode.USAGE)
    assert document["command"] == command and document["result"] is None
    assert document["error"]["hint"]


def test_a_usage_error_before_the_command(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["--log-file", "/x", "--bogus", "ps", "--json"])
    document = failed(envelope(result), ErrorCode.USAGE)
    assert document["command"] is None and "--bogus" in document["error"]["message"]


def test_help_stays_text(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["ps", "--json", "--help"])
    assert result.exit_code == 0 and "Usage:" in result.stdout and "{" not in result.stdout


def _raise(exc: BaseException) -> Callable[..., Any]:
    def fail(*_args: object, **_kwargs: object) -> Any:
        raise exc

    return fail


def test_ctrl_c(runner: CliRunner, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("recoverctl.actions.listing.list_backups", _raise(KeyboardInterrupt()))
    document = failed(run(runner, "list"), ErrorCode.INTERRUPTED)
    assert document["exit_code"] == 130


def test_sigterm(runner: CliRunner, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("recoverctl.actions.listing.list_backups", _raise(KeyboardInterrupt()))
    monkeypatch.setattr(signals, "_terminated", True)
    document = failed(run(runner, "list"), ErrorCode.TERMINATED)
    assert document["exit_code"] == 143


def test_a_bug_still_gets_its_envelope(
    runner: CliRunner, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("recoverctl.actions.listing.list_backups", _raise(ZeroDivisionError("x")))
    result = runner.invoke(app, ["list", "--json"])
    document = failed(envelope(result), ErrorCode.INTERNAL_ERROR)
    assert "Traceback" not in result.stderr  # it is in the file the message names
    where = document["error"]["message"].rsplit("the details are in ", 1)[1]
    assert "ZeroDivisionError" in Path(where).read_text()


# --- successes that need no engine ---------------------------------------------------


def test_list(runner: CliRunner, project: Path) -> None:
    document = run(runner, "list")
    assert document["ok"] and document["result"]["backups"] == []
    backups = project / "backups"
    backups.mkdir()
    (backups / "backup_2026-01-02_030405.dump").write_bytes(b"PGDMP")
    (backups / "backup_2026-01-02_030405.dump.partial").write_bytes(b"PG")
    document = run(runner, "list")
    assert [b["name"] for b in document["result"]["backups"]] == ["backup_2026-01-02_030405.dump"]
    # A stray is in the result, and also in the warnings a person sees on stderr.
    assert document["result"]["strays"]


def test_doctor_git_only(runner: CliRunner, project: Path) -> None:
    document = run(runner, "doctor", "--only", "git")
    assert document["ok"] and document["result"]["checks"][0]["name"] == "git.repo"


def test_doctor_list(runner: CliRunner, project: Path) -> None:
    document = run(runner, "doctor", "--list")
    assert document["ok"] and document["result"]["checks"]


def test_doctor_failing_checks_keep_their_report(runner: CliRunner, project: Path) -> None:
    document = failed(run(runner, "doctor", "--only", "env"), ErrorCode.CHECKS_FAILED)
    assert document["result"]["ok"] is False
    assert "env.file" in document["error"]["message"]


def test_keys_check(
    runner: CliRunner, project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    key = tmp_path_factory.mktemp("safe") / "alice.zkkey.json"
    key.write_text(json.dumps(VECTOR["keyFile"]))
    key.chmod(0o600)
    document = run(runner, "keys", "check", str(key))
    assert document["ok"] and document["result"]["fingerprint"] == VECTOR["keyFile"]["fingerprint"]
    document = failed(
        run(runner, "keys", "check", str(key), "--passphrase-stdin", input="guess\n"),
        ErrorCode.KEY_FILE_INVALID,
    )
    assert "guess" not in json.dumps(document)


# --- successes that need an engine: the real result objects, from a fake action -------


def _check(name: str, status: str = "ok") -> Any:
    from recoverctl.core.checks import Check

    return Check(name, status, f"{name} looked at", "" if status == "ok" else "do this")  # type: ignore[arg-type]


def _status() -> Any:
    from recoverctl.core.stack import ServiceStatus, StackStatus

    return StackStatus(
        "vault-dev",
        "dev",
        (
            ServiceStatus("db", "vault-dev-db-1", "running", "healthy"),
            ServiceStatus(
                "backend",
                "vault-dev-backend-1",
                "running",
                "healthy",
                ("127.0.0.1:8000->8000/tcp",),
            ),
        ),
    )


def _manifest() -> Any:
    return samples.manifest()


def _plan() -> Any:
    return samples.restore_plan()


def _verify_report(*statuses: str) -> Any:
    from recoverctl.services.verification import VerifyReport

    checks = tuple(
        _check(n, s) for n, s in zip(("format", "integrity", "structure"), statuses, strict=False)
    )
    return VerifyReport(Path("/p/backups/b.dump"), "custom", False, checks, _manifest(), 0.5)


def _recover(*statuses: str) -> Any:
    from recoverctl.actions.recover import RecoverResult

    checks = tuple(
        _check(n, s) for n, s in zip(("db.answers", "app.admin"), statuses, strict=False)
    )
    return RecoverResult(
        "vault-dev",
        "dev",
        Path("/p/b.dump"),
        None,
        checks,
        "http://127.0.0.1:8000",
        42.0,
        (("up", 1.0),),
    )


def _doctor(*statuses: str) -> Any:
    from recoverctl.services.doctor import DoctorReport

    checks = tuple(_check(n, s) for n, s in zip(("engine", "db.answers"), statuses, strict=False))
    return DoctorReport("vault-dev", "dev", checks, 0.3)


def _fakes() -> dict[str, tuple[str, Callable[[], Any]]]:
    from recoverctl.actions.keys import KeyCheckResult
    from recoverctl.actions.stack import DownResult, UpResult
    from recoverctl.services.dump import BackupResult
    from recoverctl.services.restore import RestoreResult

    return {
        "up": ("recoverctl.actions.stack.up", lambda: UpResult(_status(), True, 31.0)),
        "down": (
            "recoverctl.actions.stack.down",
            lambda: DownResult("vault-dev", "dev", False, None),
        ),
        "ps": ("recoverctl.actions.stack.ps", _status),
        "restart": ("recoverctl.actions.stack.restart", _status),
        "backup": (
            "recoverctl.actions.backup.backup",
            lambda: BackupResult(
                Path("/p/b.dump"), Path("/p/b.dump.json"), _manifest(), ("smaller",)
            ),
        ),
        "verify": ("recoverctl.actions.verify.verify", lambda: _verify_report("ok", "ok", "warn")),
        "verify --pitr": ("recoverctl.actions.verify.verify_pitr", samples.pitr_verify_report),
        "restore --dry-run": (
            "recoverctl.actions.restore.prepare",
            lambda: SimpleNamespace(plan=_plan()),
        ),
        "restore": (
            "recoverctl.actions.restore.restore",
            lambda: RestoreResult(
                _plan(),
                Path("/p/safety.dump"),
                12,
                40,
                3.5,
                (("load", 1.5),),
                ("x: 1 -> 2",),
                None,
                0.8,
            ),
        ),
        "doctor": ("recoverctl.actions.doctor.doctor", lambda: _doctor("ok", "warn")),
        "keys check": (
            "recoverctl.actions.keys.check",
            lambda: KeyCheckResult(
                Path("/safe/k.zkkey.json"),
                "sha256:" + "cd" * 32,
                2048,
                600000,
                True,
                "alice",
                5,
                3,
                3,
            ),
        ),
        "recover": ("recoverctl.actions.recover.recover", lambda: _recover("ok", "ok")),
    }


@pytest.mark.parametrize("case", sorted(_fakes()))
def test_successes(
    runner: CliRunner, project: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    target, make = _fakes()[case]
    monkeypatch.setattr(target, lambda *_a, **_k: make())
    if case == "restore":
        monkeypatch.setattr(
            "recoverctl.actions.restore.prepare", lambda *_a, **_k: SimpleNamespace(plan=_plan())
        )
    args = {
        "verify": ["verify", "latest"],
        "verify --pitr": ["verify", "--pitr", "--deep"],
        "restore --dry-run": ["restore", "latest", "--dry-run"],
        "restore": ["restore", "latest", "--yes"],
    }
    document = run(runner, *args.get(case, case.split()))
    assert document["ok"] and document["result"] is not None, document
    assert document["command"] == case.split(" --")[0]


@pytest.mark.parametrize(
    ("args", "target", "make", "code"),
    [
        (
            ["verify", "latest"],
            "recoverctl.actions.verify.verify",
            lambda: _verify_report("ok", "fail", "fail"),
            ErrorCode.BACKUP_CORRUPT,
        ),
        (
            ["doctor"],
            "recoverctl.actions.doctor.doctor",
            lambda: _doctor("fail", "ok"),
            ErrorCode.CHECKS_FAILED,
        ),
        (
            ["recover"],
            "recoverctl.actions.recover.recover",
            lambda: _recover("ok", "fail"),
            ErrorCode.CHECKS_FAILED,
        ),
    ],
)
def test_a_bad_verdict_is_an_error_with_its_result(
    runner: CliRunner,
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    target: str,
    make: Callable[[], Any],
    code: ErrorCode,
) -> None:
    monkeypatch.setattr(target, lambda *_a, **_k: make())
    document = failed(run(runner, *args), code)
    assert document["result"]["ok"] is False
    failing = [c["name"] for c in document["result"]["checks"] if c["status"] == "fail"]
    assert ", ".join(failing) in document["error"]["message"]


def test_a_damaged_repository_is_an_error_with_its_report(
    runner: CliRunner, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = samples.pitr_verify_report(damaged=True)
    monkeypatch.setattr("recoverctl.actions.verify.verify_pitr", lambda *_a, **_k: report)
    document = failed(run(runner, "verify", "--pitr", "--deep"), ErrorCode.PITR_FAILED)
    (repo,) = document["result"]["repos"]
    assert document["result"]["ok"] is False and repo["ok"] is False
    assert repo["problems"][0] in document["error"]["message"]
    assert "pitr backup --type full" in document["error"]["hint"]


def test_verify_takes_a_backup_or_pitr(runner: CliRunner, project: Path) -> None:
    failed(run(runner, "verify"), ErrorCode.USAGE)
    failed(run(runner, "verify", "latest", "--pitr"), ErrorCode.USAGE)


def test_one_document_through_a_real_pipe(project: Path) -> None:
    """The installed entry point, its stdout a pipe: one document and nothing else."""
    done = subprocess.run(
        [sys.executable, "-m", "recoverctl", "ps", "--json"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    document = json.loads(done.stdout)
    contract.validate(document)
    assert done.returncode == document["exit_code"] == 1
