"""doctor and keys check where no engine is needed: key files, env files, git hygiene."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recoverctl.cli.app import app

REPO = Path(__file__).resolve().parents[2]
VECTOR = json.loads((REPO / "tests" / "vectors" / "zkkey-v1.json").read_text())
PASSPHRASE = VECTOR["testOnlyPassphrase"]


@pytest.fixture
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Outside the project folder, as a key backup must be.
    path = tmp_path_factory.mktemp("safe") / "alice.zkkey.json"
    path.write_text(json.dumps(VECTOR["keyFile"]))
    path.chmod(0o600)
    return path


def write_key(path: Path, **changes: object) -> Path:
    data = dict(VECTOR["keyFile"])
    data.update(changes)
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    return path


def test_keys_check_without_a_passphrase_checks_the_file_only(
    runner: CliRunner, project: Path, key_file: Path
) -> None:
    result = runner.invoke(app, ["keys", "check", str(key_file)])
    assert result.exit_code == 0, result.output
    assert (
        f"valid key backup {key_file}: RSA-2048, {VECTOR['keyFile']['fingerprint']}"
        in result.stdout
    )
    assert "passphrase not checked: run in a terminal, or pass --passphrase-stdin" in result.stdout


def test_keys_check_wrong_passphrase(runner: CliRunner, project: Path, key_file: Path) -> None:
    result = runner.invoke(
        app, ["keys", "check", str(key_file), "--passphrase-stdin"], input="guess\n"
    )
    assert result.exit_code == 1
    assert "error: wrong passphrase or damaged key file" in result.stderr
    assert "guess" not in result.output


def test_keys_check_right_passphrase_then_needs_the_vault(
    runner: CliRunner, project: Path, key_file: Path
) -> None:
    result = runner.invoke(
        app, ["keys", "check", str(key_file), "--passphrase-stdin"], input=PASSPHRASE + "\n"
    )
    assert result.exit_code == 1
    assert "error: Cannot reach the Docker engine" in result.stderr
    assert PASSPHRASE not in result.output


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"kdf": {**VECTOR["keyFile"]["kdf"], "iterations": 50000}}, "50000"),
        ({"fingerprint": "sha256:" + "ab" * 32}, "fingerprint"),
        ({"wrappedKey": "not base64!"}, "wrappedKey"),
        ({"format": "pem"}, "format"),
    ],
)
def test_keys_check_damaged_files(
    runner: CliRunner, project: Path, tmp_path: Path, changes: dict[str, object], fragment: str
) -> None:
    path = write_key(tmp_path / "bad.zkkey.json", **changes)
    result = runner.invoke(app, ["keys", "check", str(path)])
    assert result.exit_code == 1
    assert "error: " in result.stderr and fragment in result.stderr
    assert "hint: " in result.stderr


def test_keys_check_without_any_file(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["keys", "check"])
    assert result.exit_code == 2
    assert "error: No key backup given, and none configured." in result.stderr
    missing = runner.invoke(app, ["keys", "check", str(project / "nope.zkkey.json")])
    assert missing.exit_code == 1 and "No key backup at" in missing.stderr


def good_env(project: Path) -> Path:
    env = project / ".env"
    env.write_text(
        "POSTGRES_DB=vault\nPOSTGRES_USER=vault\n"
        f"POSTGRES_PASSWORD={secrets.token_urlsafe(24)}\n"
        f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}\nDJANGO_DEBUG=true\n"
        "DJANGO_ALLOWED_HOSTS=localhost,127.0.0.1\n"
        "DJANGO_CSRF_TRUSTED_ORIGINS=http://localhost:8000,http://127.0.0.1:8000\n"
        "DJANGO_CORS_ALLOWED_ORIGINS=http://localhost:5173\nVAULT_HTTP_PORT=8000\n"
    )
    env.chmod(0o600)
    return env


def doctor_json(runner: CliRunner, *args: str) -> tuple[int, dict[str, dict[str, str]]]:
    result = runner.invoke(app, ["doctor", "--json", *args])
    data = json.loads(result.stdout)
    return result.exit_code, {c["name"]: c for c in data["result"]["checks"]}


def test_doctor_runs_every_check_when_the_engine_is_down(runner: CliRunner, project: Path) -> None:
    good_env(project)
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 1
    envelope = json.loads(result.stdout)
    assert envelope["error"]["code"] == "checks_failed"
    checks = {c["name"]: c for c in envelope["result"]["checks"]}
    assert checks["engine"]["status"] == "fail"
    assert checks["engine"]["evidence"].startswith("Cannot reach the Docker engine")
    # The engine's failure stopped none of the other groups.
    for name in ("env.mode", "env.secret_key", "env.placeholders", "git.repo", "backups.rpo"):
        assert name in checks
    assert checks["env.secret_key"]["status"] == "ok"
    assert checks["backups.rpo"]["status"] == "fail"
    # Told once, by the engine's row: not again by each check that needs the engine.
    assert not [n for n in checks if n.startswith(("db.", "app.", "service"))]
    assert "env.running" not in checks and "backups.space" not in checks
    # Asked without the engine's row, a check that needs it says why it could not run.
    _, alone = doctor_json(runner, "--only", "env.running", "--only", "db")
    assert set(alone) == {
        "env.running",
        "db.answers",
        "db.not_empty",
        "db.leftovers",
        "db.migrations",
    }
    assert {c["status"] for c in alone.values()} == {"fail"}
    assert alone["db.answers"]["evidence"].startswith("Cannot reach the Docker engine")


def test_doctor_never_prints_a_secret(runner: CliRunner, project: Path) -> None:
    env = good_env(project)
    env.chmod(0o644)
    values = dict(line.split("=", 1) for line in env.read_text().splitlines())
    result = runner.invoke(app, ["doctor"])
    for name in ("POSTGRES_PASSWORD", "DJANGO_SECRET_KEY"):
        assert values[name] not in result.output
    _, checks = doctor_json(runner, "--only", "env")
    assert checks["env.mode"]["status"] == "fail" and checks["env.mode"]["fix"] == "chmod 600 .env"


def test_doctor_env_file_missing(runner: CliRunner, project: Path) -> None:
    code, checks = doctor_json(runner, "--only", "env")
    assert code == 1
    assert checks["env.file"]["fix"].startswith("cp .env.example .env && chmod 600 .env")


def test_doctor_key_in_env_file(runner: CliRunner, project: Path) -> None:
    env = good_env(project)
    env.write_text(env.read_text() + "RECOVERCTL_KEY_FILE=/safe/alice.zkkey.json\n")
    _, checks = doctor_json(runner, "--only", "env")
    assert checks["env.key_location"]["status"] == "fail"


def test_doctor_unknown_group(runner: CliRunner, project: Path) -> None:
    result = runner.invoke(app, ["doctor", "--only", "gut"])
    assert result.exit_code == 2 and "Unknown check or group 'gut'" in result.stderr
    assert "recoverctl doctor --list" in result.stderr


def test_doctor_list(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no project: the list needs none
    result = runner.invoke(app, ["doctor", "--list"])
    assert result.exit_code == 0, result.output
    for line in ("env.file", "service.<service>", "backups.space", "app port"):
        assert line in result.stdout

    listed = runner.invoke(app, ["doctor", "--list", "--json"])
    assert listed.exit_code == 0, listed.output
    checks = json.loads(listed.stdout)["result"]["checks"]
    assert {c["name"]: c["needs"] for c in checks}["db.answers"] == ["db"]
    assert set(checks[0]) == {"name", "group", "needs", "about"}
    assert [c["group"] for c in checks].count("git") == 5

    only = runner.invoke(app, ["doctor", "--list", "--json", "--only", "key", "--only", "engine"])
    names = [c["name"] for c in json.loads(only.stdout)["result"]["checks"]]
    assert names[-1] == "engine" and all(n.startswith("key.") for n in names[:-1])


def configure_key(project: Path, key: Path) -> None:
    (project / "config.toml").write_text(f'[recoverctl]\nkey_file = "{key}"\n')


def test_doctor_key_file_checks(runner: CliRunner, project: Path, key_file: Path) -> None:
    configure_key(project, key_file)
    _, checks = doctor_json(runner, "--only", "key")
    assert checks["key.location"]["status"] == "ok"
    assert checks["key.mode"]["status"] == "ok"
    assert checks["key.valid"]["status"] == "ok"
    # Matching the vault needs the engine, which is down here: said, not skipped.
    assert checks["key.registered"]["status"] == "fail"

    (project / "backups").mkdir()
    inside = write_key(project / "backups" / "k.zkkey.json")
    configure_key(project, inside)
    _, checks = doctor_json(runner, "--only", "key")
    assert checks["key.location"]["status"] == "fail"
    assert "inside the repository" in checks["key.location"]["evidence"]

    key_file.chmod(0o644)
    configure_key(project, key_file)
    _, checks = doctor_json(runner, "--only", "key")
    assert checks["key.mode"]["status"] == "fail"

    write_key(key_file, version=2)
    _, checks = doctor_json(runner, "--only", "key")
    assert checks["key.valid"]["status"] == "fail"

    key_file.unlink()
    _, checks = doctor_json(runner, "--only", "key")
    assert checks["key.exists"]["status"] == "fail"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip()


def test_doctor_git_hygiene(runner: CliRunner, project: Path) -> None:
    _, checks = doctor_json(runner, "--only", "git")
    assert checks["git.repo"]["status"] == "warn"

    git(project, "init", "-q")
    shutil.copy(REPO / ".gitignore", project / ".gitignore")
    good_env(project)
    git(project, "add", "-A")
    git(project, "commit", "-qm", "clean")
    code, checks = doctor_json(runner, "--only", "git")
    assert code == 0
    assert {c["status"] for c in checks.values()} == {"ok"}, checks

    # Someone forces the env file in, then removes it again: history remembers.
    git(project, "add", "-f", ".env")
    git(project, "commit", "-qm", "oops")
    leaked = git(project, "rev-parse", "--short", "HEAD")
    _, checks = doctor_json(runner, "--only", "git")
    assert checks["git.tracked"]["status"] == "fail" and ".env" in checks["git.tracked"]["evidence"]
    git(project, "rm", "-q", "--cached", ".env")
    git(project, "commit", "-qm", "fix")
    _, checks = doctor_json(runner, "--only", "git")
    assert checks["git.tracked"]["status"] == "ok"
    assert checks["git.history"]["status"] == "fail"
    assert f".env in {leaked}" in checks["git.history"]["evidence"]

    # A plain-format backup outside backups/ is as much a leak as a custom-format one.
    (project / "data").mkdir()
    (project / "data" / "vault.sql").write_text("-- PostgreSQL database dump\n")
    git(project, "add", "-f", "data/vault.sql")
    git(project, "commit", "-qm", "a plain dump")
    sql = git(project, "rev-parse", "--short", "HEAD")
    _, checks = doctor_json(runner, "--only", "git")
    assert checks["git.tracked"]["status"] == "fail"
    assert "data/vault.sql" in checks["git.tracked"]["evidence"]
    assert f"data/vault.sql in {sql}" in checks["git.history"]["evidence"]

    (project / ".gitignore").write_text("*.pyc\n")
    _, checks = doctor_json(runner, "--only", "git")
    assert checks["git.ignored"]["status"] == "fail"
    assert checks["git.gitignore"]["status"] == "warn"


def test_doctor_sees_crlf_line_endings(runner: CliRunner, project: Path) -> None:
    env = good_env(project)
    env.write_bytes(env.read_bytes().replace(b"\n", b"\r\n"))
    code, checks = doctor_json(runner, "--only", "env")
    assert code == 1
    assert checks["env.line_endings"]["status"] == "fail"
