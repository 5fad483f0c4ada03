"""The playbook, drilled: every recoverctl command playbook.md shows runs here, for real,
ending with a recovery on a stack whose database volume was erased."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.e2e.conftest import Project, init_git, make_project, tear_down
from tests.e2e.vaultclient import Vault
from tests.keywriter import make_keyfile
from tests.playbook import is_offsite, is_upgrade, playbook_commands

pytestmark = pytest.mark.e2e

KEY_PLACEHOLDER = "/safe/place/you.zkkey.json"
BACKUP_PLACEHOLDER = "backups/backup_YYYY-MM-DD_HHMMSS.dump"
PASSPHRASE = "a long passphrase, kept elsewhere"


@pytest.fixture(scope="module")
def drill(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[tuple[Project, Path]]:
    root = tmp_path_factory.mktemp("playbook")
    project = make_project(root / "vault-project", "rctl-e2e-drill", docker_client)
    project.force_clean()
    project.write_env(".env")
    init_git(project)
    safe = root / "safe"
    safe.mkdir(mode=0o700)
    key_file = safe / "alice.zkkey.json"
    (project.root / "recoverctl-config.toml").write_text(
        f'[recoverctl]\nkey_file = "{key_file}"\n[retention]\nkeep_last = 10\n'
    )
    yield project, key_file
    tear_down(project)


def test_every_playbook_command_runs(drill: tuple[Project, Path]) -> None:
    project, key_file = drill
    ran: list[tuple[str, ...]] = []

    def step(*argv: str, input: str | None = None, expect: int = 0) -> str:
        result = project.run(*argv, input=input)
        assert result.returncode == expect, (
            f"recoverctl {' '.join(argv)}:\n{result.stdout}\n{result.stderr}"
        )
        ran.append(argv)
        return result.stdout + result.stderr

    # 2) the stack
    step("up")
    vault = Vault(project)
    vault.seed()
    import json

    key_file.write_text(json.dumps(make_keyfile(vault.alice_key, PASSPHRASE, iterations=100_000)))
    key_file.chmod(0o600)
    step("ps")
    step("logs")
    tail = step("logs", "backend", "--tail", "100").splitlines()
    assert 0 < len(tail) <= 100
    step("restart", "backend")

    # 3) backups
    step("backup")
    step("backup", "--format", "sql")
    step("list")
    step("verify", "latest")
    assert "good" in step("verify", "latest", "--deep")

    # 0) what must be kept safe, checked
    out = step("doctor")
    assert "0 fail" in out
    out = step("keys", "check", str(key_file), "--passphrase-stdin", input=PASSPHRASE + "\n")
    assert "opened 3 of 3 sampled secrets" in out
    assert "passphrase not checked" in step("keys", "check")

    # 3) test your recovery: the backup brought back beside the live stack, then removed
    out = step("drill", "--key-file", str(key_file), "--passphrase-stdin", input=PASSPHRASE + "\n")
    assert "drill passed" in out and "opened 3 of 3 sampled secrets of alice" in out
    step("doctor", "--only", "git")
    step("doctor", "--only", "env", "--only", "stack")

    # 3) automate: retention, the routine, its schedule, a backup before an update
    assert "nothing was" in step("prune", "--dry-run")
    step("prune")  # nothing to delete under keep_last = 10: nothing to confirm
    assert "routine ok" in step("routine")
    step("schedule", "install", "--every", "1h")
    assert "last routine: ok" in step("schedule", "status")
    step("doctor", "--only", "backups")
    step("schedule", "remove")
    assert "backup before the update" in step("up", "--backup")

    # 3) restore
    assert "Restore plan" in step("restore", "latest", "--dry-run")
    dump = sorted((project.root / "backups").glob("backup_*.dump"))[-1]
    step("restore", str(dump), input="vault\n")
    assert vault.alice_reads() == vault.alice_secrets

    # 2) down, and down --volumes: the database is erased...
    step("down")
    step("up")
    step("down", "--volumes", input="rctl-e2e-drill\n")
    assert project.leftovers()["volumes"] == []

    # 1) no env file left: init writes one, and never over the one that is there.
    assert "init never overwrites it" in step("init", expect=1)
    assert "created" in step("init", "--prod", "--host", "vault.example.com")

    # 1) ...and recovered in one command, on an empty volume.
    out = step("recover")
    assert "restored from" in out and "one step left" in out and "/key-backup/ and sign in, then Import" in out
    assert vault.alice_reads() == vault.alice_secrets

    # Every command the playbook shows was run above.
    def normal(argv: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(
            "KEY" if a in (KEY_PLACEHOLDER, str(key_file)) else
            "DUMP" if a in (BACKUP_PLACEHOLDER, str(dump)) else a
            for a in argv
        )  # fmt: skip

    # Off-site commands need storage servers: tests/e2e/test_offsite_e2e.py runs those;
    # the upgrade's need a 15 stack: tests/e2e/test_upgrade_e2e.py.
    shown = {normal(c) for c in playbook_commands() if not is_offsite(c) and not is_upgrade(c)}
    missing = shown - {normal(c) for c in ran}
    assert not missing, f"playbook commands no test runs: {sorted(missing)}"
