"""The whole new-machine path: the old machine's stack backed up (its env files and key
export sealed off-site with it), then gone with its volume; on a fresh clone with no env
file and no local backup, only the age identity and the target, `recover --target NAME
--identity FILE` brings the env files back, the stack up and the data in, and `keys check`
opens a secret with the original key export (pulled back too) and its passphrase.

The clone is of the repository's HEAD (commit before running this) and runs its own code
(PYTHONPATH=clone/src), under its own compose project; the target is a folder."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from recoverctl.cli import contract
from tests.e2e.conftest import REPO, Project, make_project, tear_down, up_seeded
from tests.e2e.test_newmachine_e2e import remove_project
from tests.keywriter import make_keyfile

pytestmark = pytest.mark.e2e

PROJECT = "rctl-e2e-newmachine-offsite"
PASSPHRASE = "new machine, same key"


@pytest.fixture
def old(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[Project]:
    remove_project(docker_client, PROJECT)
    project = make_project(tmp_path / "old", PROJECT, docker_client)
    yield project
    tear_down(project)
    remove_project(docker_client, PROJECT)  # the new machine's stack too, and its image


def test_recover_on_a_new_machine_from_the_target_alone(
    old: Project, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    safe = tmp_path / "safe"  # what the person kept: the identity and the key export
    safe.mkdir(mode=0o700)
    offsite = tmp_path / "offsite"
    offsite.mkdir()
    identity = safe / "identity.txt"

    # --- the old machine -------------------------------------------------------------
    vault = up_seeded(old)
    made = old.run("keys", "new-identity", str(identity), "--json")
    assert made.returncode == 0, made.stderr
    recipient = json.loads(made.stdout)["result"]["recipient"]
    config = tmp_path / "recoverctl.toml"
    config.write_text(
        f'[encryption]\nrecipients = ["{recipient}"]\n\n'
        f'[targets.offsite]\ntype = "dir"\npath = "{offsite}"\n'
    )
    key_file = safe / "alice.zkkey.json"
    key_file.write_text(json.dumps(make_keyfile(vault.alice_key, PASSPHRASE, iterations=100_000)))
    key_file.chmod(0o600)
    backup = old.run(
        "backup", "--json", RECOVERCTL_CONFIG=str(config), RECOVERCTL_KEY_FILE=str(key_file)
    )
    assert backup.returncode == 0, backup.stderr
    result = json.loads(backup.stdout)["result"]
    assert [c["status"] for c in result["offsite"]] == ["pushed"]
    assert [c["status"] for c in result["env"]["copies"]] == ["pushed"]
    assert result["env"]["files"] == [".env", "alice.zkkey.json"]
    # Nothing in clear on the target says a secret.
    secrets = [v for k, v in old.env.items() if "PASSWORD" in k or "SECRET" in k]
    for path in offsite.rglob("*"):
        if path.is_file():
            body = path.read_bytes()
            assert not any(s.encode() in body for s in secrets if len(s) >= 6), path
    down = old.run("down", "--volumes", "--yes", "--no-safety-backup")
    assert down.returncode == 0, down.stderr
    remove_project(docker_client, PROJECT)

    # --- the new machine: a fresh clone, the identity and the target ---------------------
    clone = tmp_path / "new" / "vault"
    # RECOVERCTL_E2E_CLONE_FROM: another repository to clone (a work tree's snapshot).
    source = os.environ.get("RECOVERCTL_E2E_CLONE_FROM", str(REPO))
    subprocess.run(["git", "clone", "--quiet", source, str(clone)], check=True)
    assert not (clone / ".env").exists() and not (clone / "backups").exists()
    new_key = tmp_path / "newsafe" / "alice.zkkey.json"  # pulled back here

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("RECOVERCTL_") and k != "VAULT_HTTP_PORT"
        }
        env.update(
            PYTHONPATH=str(clone / "src"),
            RECOVERCTL_PROJECT_NAME=PROJECT,
            RECOVERCTL_CONFIG=str(config),
            RECOVERCTL_KEY_FILE=str(new_key),
            RECOVERCTL_LOCK_DIR=str(tmp_path / "locks"),
        )
        return subprocess.run(
            [sys.executable, "-m", "recoverctl", *args],
            cwd=clone, env=env, input=input, capture_output=True, text=True, timeout=900,
            check=False,
        )  # fmt: skip

    recovered = run("recover", "--target", "offsite", "--identity", str(identity), "--yes", "--json")
    assert recovered.returncode == 0, recovered.stdout[-3000:] + recovered.stderr[-3000:]
    document = json.loads(recovered.stdout)
    contract.validate(document)
    result = document["result"]
    assert result["env_restored"] == [str(clone / ".env"), str(new_key)]
    assert result["restored_from"] and result["serving_seconds"] is not None
    print(f"\nrecovery time on a new machine: {result['serving_seconds']} s to serving")
    assert stat.S_IMODE((clone / ".env").stat().st_mode) == 0o600
    assert (clone / ".env").read_text().count("=") >= 2
    assert new_key.read_bytes() == key_file.read_bytes()
    assert stat.S_IMODE(new_key.stat().st_mode) == 0o600

    # The vault serves the data: alice signs in and reads her secrets (the same project
    # name: `ps` finds the new machine's stack and its port).
    assert vault.alice_reads() == vault.alice_secrets
    checked = run("keys", "check", "--passphrase-stdin", "--json", input=PASSPHRASE + "\n")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    opened = json.loads(checked.stdout)["result"]
    assert opened["user"] == "alice" and opened["opened"] >= 1
    assert PASSPHRASE not in checked.stdout + checked.stderr

    # Human output: the recovery time, and env pull never overwrites.
    again = run("env", "pull", "--target", "offsite", "--identity", str(identity))
    assert again.returncode == 0 and "never overwritten" in again.stdout
