"""backup, list, verify, restore against the real stack, through the real vault.

Every failure test asserts three things: the exit code, the message a person reads, and
that nothing was lost (database checksum) and no misleading file was left.
"""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from recoverctl.cli import contract
from tests.e2e.conftest import Project, make_project, tear_down, up_seeded
from tests.e2e.vaultclient import ALICE_PW, Vault

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[tuple[Project, Vault]]:
    project = make_project(tmp_path_factory.mktemp("bk"), "rctl-e2e-bk", docker_client)
    vault = up_seeded(project)
    yield project, vault
    tear_down(project)


def result_of(project: Project, *args: str) -> dict[str, object]:
    """A real success's envelope, valid against docs/json.md's contract: its result."""
    done = project.run(*args, "--json")
    assert done.returncode == 0, done.stderr
    envelope = contract.validate(json.loads(done.stdout))
    assert envelope.ok and envelope.command == args[0]
    return dict(envelope.result.model_dump())


def backup(project: Project, *args: str) -> dict[str, object]:
    return result_of(project, "backup", *args)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("fmt", ["custom", "sql"])
def test_round_trip_through_the_vault(stack: tuple[Project, Vault], fmt: str) -> None:
    project, vault = stack
    before = project.checksum()
    made = backup(project, "--format", fmt)
    path = Path(str(made["path"]))
    manifest_file = Path(str(made["manifest"]))
    assert path.suffix == (".dump" if fmt == "custom" else ".sql")
    assert mode(path) == 0o600 and mode(manifest_file) == 0o600 and mode(path.parent) == 0o700
    manifest = json.loads(manifest_file.read_text())
    assert manifest["sha256"] == made["sha256"] and manifest["size"] == path.stat().st_size
    assert manifest["tables"]["public.vault_secret"] == 4
    assert manifest["migrations"]["vault"].startswith("0001")
    assert manifest["stack"] == "dev" and manifest["project"] == "rctl-e2e-bk"

    deep = result_of(project, "verify", str(path), "--deep")
    assert deep["ok"] and deep["deep"] and deep["provenance"] == "manifest"
    assert result_of(project, "ps")["ready"] is True

    # Change and delete data through the vault and behind its back.
    client = vault.client()
    client.login("alice", ALICE_PW)
    client.add_secret(vault.alice_key, "new", "should vanish")
    project.sql("DELETE FROM vault_secret WHERE name = 'bank'")
    project.sql("UPDATE auth_user SET email = 'changed@example.org'")
    assert project.checksum() != before

    restored = project.run("restore", str(path), "--yes")
    assert restored.returncode == 0, restored.stderr
    assert "restored vault from" in restored.stdout
    assert project.checksum() == before
    assert vault.alice_reads() == vault.alice_secrets
    # The previous data was kept as a safety backup, and no scratch database remains.
    assert "safety backup of the previous data" in restored.stdout
    assert [d for d in project.databases() if "__" in d] == []


def test_a_large_custom_backup_verifies_without_stalling(stack: tuple[Project, Vault]) -> None:
    """pg_restore --list reads only the header: the rest of the stream must not hang."""
    project, _ = stack
    # 32 random bytes a row: incompressible, so the archive really is this large.
    project.sql(
        "CREATE TABLE bulk AS SELECT decode(md5(random()::text) || md5(random()::text), 'hex') "
        "AS b FROM generate_series(1, 400000)"
    )
    try:
        path = Path(str(backup(project)["path"]))
        assert path.stat().st_size > 8 * 1024 * 1024  # larger than any socket buffer
        started = time.monotonic()
        verify = project.run("verify", str(path))
        elapsed = time.monotonic() - started
    finally:
        project.sql("DROP TABLE bulk")
    assert verify.returncode == 0, verify.stdout
    assert elapsed < 10, f"quick verify took {elapsed:.1f} s"


def test_list_shows_verification_states(stack: tuple[Project, Vault]) -> None:
    project, _ = stack
    backup(project)
    listing = project.run("list", "--json")
    assert listing.returncode == 0, listing.stderr
    states = {b["verification"] for b in json.loads(listing.stdout)["result"]["backups"]}
    assert "never" in states and "deep ok" in states
    verify = project.run("verify", "latest")
    assert verify.returncode == 0, verify.stdout
    latest = json.loads(project.run("list", "--json").stdout)["result"]["backups"][0]
    assert latest["verification"] == "quick ok" and latest["verified_at"]


def test_restore_needs_the_database_name(stack: tuple[Project, Vault]) -> None:
    project, _ = stack
    before = project.checksum()
    no_answer = project.run("restore", "latest", input="")
    assert no_answer.returncode == 2
    assert "error: No confirmation given; nothing was changed." in no_answer.stderr
    wrong = project.run("restore", "latest", input="prod\n")
    assert wrong.returncode == 1
    assert "You typed 'prod', not 'vault'; nothing was changed." in wrong.stderr
    assert project.checksum() == before


def test_dry_run_prints_the_plan_and_changes_nothing(stack: tuple[Project, Vault]) -> None:
    project, _ = stack
    before, files = project.checksum(), project.backups()
    result = project.run("restore", "latest", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "Restore plan (rctl-e2e-bk, dev)" in result.stdout
    assert "swap in one transaction" in result.stdout
    assert project.checksum() == before
    assert [f for f in project.backups() if not f.endswith(".verify.json")] == [
        f for f in files if not f.endswith(".verify.json")
    ]


def test_restore_rolls_back_when_the_app_cannot_start_on_it(stack: tuple[Project, Vault]) -> None:
    project, vault = stack
    # A backup the app refuses: a migration recorded without the one it depends on.
    saved = project.sql(
        "SELECT id, app, name, applied FROM django_migrations WHERE app = 'contenttypes' AND name = '0001_initial'"
    )
    project.sql(
        "DELETE FROM django_migrations WHERE app = 'contenttypes' AND name = '0001_initial'"
    )
    try:
        poisoned = Path(str(backup(project)["path"]))
    finally:
        mid, app, name, applied = saved.strip().split("|")
        project.sql(
            f"INSERT INTO django_migrations (id, app, name, applied) VALUES ({mid}, '{app}', '{name}', '{applied}')"
        )
    before = project.checksum()
    result = project.run("restore", str(poisoned), "--yes", RECOVERCTL_UP_TIMEOUT="90")
    assert result.returncode == 1
    assert "error: Service backend exited" in result.stderr
    assert "The previous database is serving again as vault." in result.stderr
    assert "InconsistentMigrationHistory" in result.stderr  # the backend's own words
    assert project.checksum() == before
    project.wait_healthy()
    assert vault.alice_reads() == vault.alice_secrets
    assert [d for d in project.databases() if "__" in d] == []


def test_one_psql_session_switches_databases_and_survives_its_errors(
    stack: tuple[Project, Vault],
) -> None:
    """restore and verify route their queries through one psql process (pgexec.Session)."""
    from recoverctl.adapters.engine import Engine
    from recoverctl.adapters.pgexec import Db
    from recoverctl.errors import CommandFailed

    project, _ = stack
    engine = Engine.connect()
    db = Db.attach(engine, engine.service_container(project.name, "db"))
    with db.session():
        assert db.query("SELECT current_database()").strip() == db.database
        assert db.query("SELECT current_database()", database="postgres").strip() == "postgres"
        with pytest.raises(CommandFailed) as failed:
            db.query("SELECT * FROM no_such_table")
        # The same message and details an exec per query gives.
        assert failed.value.message.startswith("a query in the db container failed (exit 3)")
        assert 'relation "no_such_table" does not exist' in (failed.value.details or "")
        # The next query opens a new process, on the database it names.
        assert db.query("SELECT 1", database="postgres").strip() == "1"
        with pytest.raises(CommandFailed):
            db.query("SELECT 1", database="no_such_database")
        assert db.query("SELECT current_database()").strip() == db.database
    # Outside the block, queries are one exec each again.
    assert db._session is None and db.query("SELECT 2").strip() == "2"
