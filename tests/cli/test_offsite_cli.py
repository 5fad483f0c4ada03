"""push, pull, list --target, verify --target, keys new-identity, doctor's targets group
and backup's push, through the CLI, against real folder targets. None of them needs an
engine (backup's own dump is replaced by a real file here): every envelope is held to the
contract, every failure to its two lines."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from recoverctl.adapters import seal
from recoverctl.cli import contract
from recoverctl.cli.app import app
from recoverctl.errors import ErrorCode, exit_status
from tests.unit.fakes import write_backup_file
from tests.unit.test_offsite_service import B1, B2


class Env:
    def __init__(self, project: Path, tmp: Path):
        self.project = project
        self.safe = tmp / "safe"
        self.safe.mkdir(mode=0o700)
        self.identity = self.safe / "identity.txt"
        self.recipient = seal.new_identity(self.identity)
        self.nas = tmp / "nas"
        self.nas.mkdir()
        self.nas_objects = self.nas / "vault-dev" / "dev"  # this project's and stack's
        self.clear = tmp / "clear"
        self.clear.mkdir()
        self.backups = project / "backups"
        self.data = {B1: os.urandom(200_000), B2: os.urandom(700_000)}
        for name, data in self.data.items():
            write_backup_file(self.backups, name, data)
        self.write_config()

    def write_config(self, extra: str = "", recipients: bool = True) -> None:
        keys = f'recipients = ["{self.recipient}"]' if recipients else ""
        (self.project / "config.toml").write_text(
            f'[encryption]\n{keys}\n\n[targets.nas]\ntype = "dir"\npath = "{self.nas}"\n\n'
            f'[targets.clear]\ntype = "dir"\npath = "{self.clear}"\nencryption = "none"\n' + extra
        )


@pytest.fixture
def env(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Env:
    return Env(project, tmp_path_factory.mktemp("outside"))


def invoke(runner: CliRunner, *args: str, **envvars: str) -> Result:
    return runner.invoke(app, list(args), env=envvars or None)


def document(result: Result) -> dict[str, Any]:
    doc = json.loads(result.stdout)
    contract.validate(doc)
    assert doc["exit_code"] == result.exit_code, (doc, result.stderr)
    assert "Traceback" not in result.stderr
    return dict(doc)


def ok(runner: CliRunner, *args: str, **envvars: str) -> dict[str, Any]:
    result = invoke(runner, *args, "--json", **envvars)
    doc = document(result)
    assert doc["ok"], (doc, result.stderr)
    return dict(doc["result"])


def failed(runner: CliRunner, code: ErrorCode, *args: str, **envvars: str) -> dict[str, Any]:
    result = invoke(runner, *args, "--json", **envvars)
    doc = document(result)
    assert (doc["ok"], doc["error"]["code"]) == (False, code), doc
    assert result.exit_code == exit_status(code)
    return doc


def two_lines(result: Result) -> list[str]:
    """A human failure: error and hint, nothing else (no traceback)."""
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert [ln.split(":")[0] for ln in lines] == ["error", "hint"], result.stderr
    return lines


def test_push_list_verify_pull_round_trip(runner: CliRunner, env: Env, tmp_path: Path) -> None:
    pushed = ok(runner, "push")
    assert [(c["target"], c["backup"], c["status"]) for c in pushed["copies"]] == [
        ("clear", B2, "pushed"),
        ("nas", B2, "pushed"),
    ]
    again = ok(runner, "push", "latest", "--target", "nas")
    assert [c["status"] for c in again["copies"]] == ["present"]

    listing = ok(runner, "list", "--target", "nas")
    assert [(b["name"], b["complete"]) for b in listing["backups"]] == [(B2, True)]
    assert listing["backups"][0]["plain_size"] == len(env.data[B2])
    human = invoke(runner, "list", "--target", "nas")
    assert human.exit_code == 0 and B2 in human.stdout and "complete" in human.stdout

    sealed = ok(runner, "verify", "latest", "--target", "nas")
    assert sealed["decrypted"] is False and sealed["ok"]
    assert [c["name"] for c in sealed["checks"]] == ["complete", "data", "manifest", "encryption"]

    out = tmp_path / "pulled"
    pulled = ok(runner, "pull", "latest", "--target", "nas", "--identity", str(env.identity),
                "--output-dir", str(out))  # fmt: skip
    assert pulled["path"] == str(out / B2) and (out / B2).read_bytes() == env.data[B2]
    assert pulled["sha256"] == json.loads((env.backups / (B2 + ".json")).read_text())["sha256"]
    # The identity from the environment, and a copy in clear with none at all.
    out2 = tmp_path / "pulled2"
    ok(runner, "pull", B2, "--target", "nas", "--output-dir", str(out2),
       RECOVERCTL_IDENTITY_FILE=str(env.identity))  # fmt: skip
    ok(runner, "pull", B2, "--target", "clear", "--output-dir", str(tmp_path / "pulled3"))
    assert (tmp_path / "pulled3" / B2).read_bytes() == env.data[B2]


def test_push_missing_and_a_flipped_byte(runner: CliRunner, env: Env) -> None:
    pushed = ok(runner, "push", "--missing", "--target", "nas")
    assert sorted(c["backup"] for c in pushed["copies"]) == [B1, B2]
    data = env.nas_objects / (B1 + ".age")
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0x01
    data.write_bytes(bytes(raw))
    doc = failed(runner, ErrorCode.OBJECT_CORRUPT, "verify", B1, "--target", "nas")
    assert doc["result"]["ok"] is False  # the report is kept
    assert "data" in doc["error"]["message"]
    data_check = next(c for c in doc["result"]["checks"] if c["name"] == "data")
    assert f"recoverctl push {B1} --target nas --replace" in data_check["fix"]
    doc = failed(runner, ErrorCode.OBJECT_CORRUPT, "pull", B1, "--target", "nas",
                 "--identity", str(env.identity), "--output-dir", str(env.nas.parent / "o"))  # fmt: skip
    assert doc["result"] is None
    assert not (env.nas.parent / "o" / B1).exists()
    # push leaves a complete copy alone (it does not read it back); --replace uploads again.
    assert ok(runner, "push", B1, "--target", "nas")["copies"][0]["status"] == "present"
    replaced = ok(runner, "push", B1, "--target", "nas", "--replace")
    assert replaced["copies"][0]["status"] == "pushed"
    assert ok(runner, "verify", B1, "--target", "nas")["ok"]
    failed(runner, ErrorCode.USAGE, "push", "--missing", "--replace")


def test_a_failed_target_is_exit_3_and_names_it(runner: CliRunner, env: Env) -> None:
    env.nas.rmdir()
    doc = failed(runner, ErrorCode.OFFSITE_FAILED, "push")
    assert doc["exit_code"] == 3
    copies = {c["target"]: c for c in doc["result"]["copies"]}
    assert copies["clear"]["status"] == "pushed"
    assert copies["nas"]["status"] == "failed"
    assert copies["nas"]["error"]["code"] == "target_not_found"
    assert "target nas" in doc["error"]["message"] and "does not exist" in doc["error"]["message"]
    human = invoke(runner, "push")
    assert human.exit_code == 3
    error, hint = two_lines(human)
    assert f"{B2} is good here, but copying it off-site failed: target nas" in error
    assert "The local backup stays" in hint


def test_no_recipients_is_refused_for_a_sealed_target(runner: CliRunner, env: Env) -> None:
    env.write_config(recipients=False)
    doc = failed(runner, ErrorCode.OFFSITE_FAILED, "push", "--target", "nas")
    assert doc["result"]["copies"][0]["error"]["code"] == "encryption_required"
    assert list(env.nas.iterdir()) == []


def backup_makes_b2(env: Env, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`backup`'s dump replaced by the B2 already in the folder (with its manifest): what
    follows it, the pushes, runs for real."""
    from recoverctl.core.manifest import Manifest
    from recoverctl.services.dump import BackupResult

    path = env.backups / B2
    manifest = Manifest.model_validate_json((env.backups / (B2 + ".json")).read_text())
    made = BackupResult(path, env.backups / (B2 + ".json"), manifest)
    monkeypatch.setattr("recoverctl.actions.backup.backup", lambda *_a, **_k: made)
    return path


def test_backup_pushes_after_its_dump(
    runner: CliRunner, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = backup_makes_b2(env, monkeypatch)
    result = ok(runner, "backup")
    assert result["path"] == str(path)
    assert sorted((c["target"], c["status"]) for c in result["offsite"]) == [
        ("clear", "pushed"),
        ("nas", "pushed"),
    ]
    shutil.rmtree(env.nas)
    doc = failed(runner, ErrorCode.OFFSITE_FAILED, "backup")
    assert doc["result"]["path"] == str(path)  # the backup's own result is kept
    assert path.exists()
    human = invoke(runner, "backup")
    assert human.exit_code == 3 and "backup written" in human.stdout
    assert "NOT copied" in human.stdout
    two_lines(human)


def test_backup_whose_push_cannot_start_shows_the_backup_and_exits_3(
    runner: CliRunner, env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another run pushing holds the lock: the backup was written, and is shown."""
    from recoverctl.errors import RecoverctlError

    path = backup_makes_b2(env, monkeypatch)

    def locked(*_a: object, **_k: object) -> None:
        raise RecoverctlError("Another recoverctl push is running.", "Wait.", code=ErrorCode.LOCKED)

    monkeypatch.setattr("recoverctl.services.offsite.push_backup", locked)
    doc = failed(runner, ErrorCode.OFFSITE_FAILED, "backup")
    assert doc["result"]["path"] == str(path) and doc["result"]["offsite"] == []
    assert "Another recoverctl push is running" in doc["error"]["message"]
    human = invoke(runner, "backup")
    assert human.exit_code == 3 and "backup written" in human.stdout
    error, hint = two_lines(human)
    assert "could not start" in error and f"recoverctl push {B2}" in hint


def test_identity_needed_and_deep_needs_it(runner: CliRunner, env: Env) -> None:
    ok(runner, "push", "--target", "nas")
    doc = failed(runner, ErrorCode.IDENTITY_INVALID, "pull", "latest", "--target", "nas")
    assert "--identity FILE" in doc["error"]["hint"]
    failed(runner, ErrorCode.IDENTITY_INVALID, "verify", "latest", "--target", "nas", "--deep")
    failed(runner, ErrorCode.USAGE, "pull", "latest")  # --target is required
    failed(runner, ErrorCode.TARGET_NOT_FOUND, "list", "--target", "nope")
    env.identity.chmod(0o644)
    doc = failed(runner, ErrorCode.IDENTITY_INVALID, "pull", "latest", "--target", "nas",
                 "--identity", str(env.identity))  # fmt: skip
    assert "can be read by group or others" in doc["error"]["message"]


def test_keys_new_identity(runner: CliRunner, env: Env) -> None:
    path = env.safe / "new.txt"
    result = invoke(runner, "keys", "new-identity", str(path))
    assert result.exit_code == 0, result.stderr
    recipient = result.stdout.strip()
    assert recipient.startswith("age1") and recipient in path.read_text()
    assert (path.stat().st_mode & 0o777) == 0o600
    assert "where the browser key export is kept" in result.stderr
    assert "AGE-SECRET-KEY" not in result.stdout + result.stderr
    doc = failed(runner, ErrorCode.FILE_EXISTS, "keys", "new-identity", str(path))
    assert "never overwritten" in doc["error"]["message"]
    failed(runner, ErrorCode.IDENTITY_INVALID, "keys", "new-identity", str(env.project / "id.txt"))
    failed(runner, ErrorCode.IDENTITY_INVALID, "keys", "new-identity", str(env.backups / "id"))
    made = ok(runner, "keys", "new-identity", str(env.safe / "json.txt"))
    assert made["mode"] == "0600" and made["recipient"].startswith("age1")


def test_doctor_targets_group(runner: CliRunner, env: Env, tmp_path: Path) -> None:
    ok(runner, "push", "latest")
    result = invoke(runner, "doctor", "--only", "targets", "--json")
    checks = {c["name"]: c for c in document(result)["result"]["checks"]}
    assert checks["targets.configured"]["status"] == "ok"
    for name in ("targets.reachable.nas", "targets.newest.nas", "targets.encryption.nas"):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["targets.encryption.clear"]["status"] == "warn"
    # The fabricated backups are from 2026-11-29: older than the RPO by now, or not.
    assert checks["targets.rpo.nas"]["status"] in ("ok", "fail")
    env.write_config(f'\n[targets.gone]\ntype = "dir"\npath = "{tmp_path / "unmounted"}"\n')
    result = invoke(runner, "doctor", "--only", "targets", "--json")
    checks = {c["name"]: c for c in document(result)["result"]["checks"]}
    assert result.exit_code == 1
    assert checks["targets.reachable.gone"]["status"] == "fail"
    assert "does not exist" in checks["targets.reachable.gone"]["evidence"]
    # Told once: the other rows of that target are left out.
    assert "targets.newest.gone" not in checks and "targets.rpo.gone" not in checks


def test_identity_file_settings(runner: CliRunner, env: Env, tmp_path: Path) -> None:
    ok(runner, "push", "--target", "nas")
    env.write_config()
    text = (env.project / "config.toml").read_text()
    (env.project / "config.toml").write_text(
        f'[recoverctl]\nidentity_file = "{env.identity}"\n\n' + text
    )
    ok(runner, "pull", "latest", "--target", "nas", "--output-dir", str(tmp_path / "o"))
    doc = failed(runner, ErrorCode.CONFIG_INVALID, "list", RECOVERCTL_IDENTITY_FILE="relative.txt")
    assert "RECOVERCTL_IDENTITY_FILE" in doc["error"]["message"]
