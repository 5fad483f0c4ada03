"""backup, list, verify, restore against the real stack, through the real vault.

Every failure test asserts three things: the exit code, the message a person reads, and
that nothing was lost (database checksum) and no misleading file was left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.e2e.conftest import Project, make_project
from tests.e2e.vaultclient import ALICE_PW, Vault

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[tuple[Project, Vault]]:
    project = make_project(tmp_path_factory.mktemp("bk"), "rctl-e2e-bk", docker_client)
    project.force_clean()
    project.write_env(".env")
    up = project.run("up")
    assert up.returncode == 0, up.stderr
    vault = Vault(project)
    vault.seed()
    yield project, vault
    project.run("down", "--volumes", "--yes")
    project.force_clean()


def backup(project: Project, *args: str) -> dict[str, object]:
    result = project.run("backup", "--json", *args)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


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

    deep = project.run("verify", str(path), "--deep")
    assert deep.returncode == 0, deep.stdout + deep.stderr

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


def test_list_shows_verification_states(stack: tuple[Project, Vault]) -> None:
    project, _ = stack
    backup(project)
    listing = project.run("list", "--json")
    assert listing.returncode == 0, listing.stderr
    states = {b["verification"] for b in json.loads(listing.stdout)["backups"]}
    assert "never" in states and "deep ok" in states
    verify = project.run("verify", "latest")
    assert verify.returncode == 0, verify.stdout
    latest = json.loads(project.run("list", "--json").stdout)["backups"][0]
    assert latest["verification"] == "quick ok" and latest["verified_at"]


def test_backup_with_the_db_stopped(stack: tuple[Project, Vault]) -> None:
    project, _ = stack
    files = project.backups()
    db = project.container("db")
    db.stop(timeout=30)
    try:
        result = project.run("backup")
        assert result.returncode == 1
        assert "error: Service db is not running (exited)." in result.stderr
        assert "hint: Start it: recoverctl up" in result.stderr
        assert project.backups() == files
    finally:
        db.start()
        project.wait_healthy()


def test_pg_dump_failure_leaves_no_file(stack: tuple[Project, Vault]) -> None:
    project, _ = stack
    files = project.backups()
    project.sql("ALTER DATABASE vault ALLOW_CONNECTIONS false", "postgres")
    try:
        result = project.run("backup")
    finally:
        project.sql("ALTER DATABASE vault ALLOW_CONNECTIONS true", "postgres")
    assert result.returncode == 1
    assert 'database "vault" is not currently accepting connections' in result.stderr
    assert project.backups() == files


def test_disk_full_leaves_no_file(stack: tuple[Project, Vault], tmp_path: Path) -> None:
    project, _ = stack
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(small)], check=False
    )
    assert mounted.returncode == 0, "e2e runs as root: it needs a small tmpfs for this fault"
    try:
        result = project.run("backup", "--format", "sql", "--output-dir", str(small))
        assert result.returncode == 1
        assert "error: Disk full while writing the backup" in result.stderr
        assert "no backup was written" in result.stderr
        assert "hint: Free space there, or pass --output-dir" in result.stderr
        assert os.listdir(small) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


class TableLock:
    """Holds ACCESS EXCLUSIVE on vault_secret, so a backup waits mid-way as long as needed."""

    def __init__(self, project: Project):
        self.project = project

    def __enter__(self) -> TableLock:
        db = self.project.container("db")
        db.exec_run(
            ["psql", "-U", "vault", "-d", "vault", "-c",
             "BEGIN; LOCK TABLE vault_secret IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);"],
            detach=True,
        )  # fmt: skip
        for _ in range(50):
            if (
                self.project.sql(
                    "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' "
                    "AND relation = 'vault_secret'::regclass"
                ).strip()
                == "1"
            ):
                return self
            time.sleep(0.1)
        raise AssertionError("could not take the table lock")

    def __exit__(self, *exc: object) -> None:
        self.project.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' "
            "AND pid <> pg_backend_pid()"
        )


def start_backup(project: Project) -> subprocess.Popen[str]:
    env = {**os.environ, "RECOVERCTL_PROJECT_NAME": project.name}
    return subprocess.Popen(
        [sys.executable, "-m", "recoverctl", "backup"],
        cwd=project.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def wait_for_partial(project: Project) -> None:
    for _ in range(100):
        if any(n.endswith(".partial") for n in project.backups()):
            return
        time.sleep(0.1)
    raise AssertionError(f"the backup never started: {project.backups()}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_backup_leaves_nothing_and_a_second_one_waits_its_turn(
    stack: tuple[Project, Vault], sig: signal.Signals
) -> None:
    project, _ = stack
    files = project.backups()
    with TableLock(project):
        first = start_backup(project)
        wait_for_partial(project)
        second = project.run("backup")
        assert second.returncode == 1
        assert (
            f"error: Another operation is running on {project.name}: backup (pid {first.pid})."
            in second.stderr
        )
        first.send_signal(sig)
        _, err = first.communicate(timeout=60)
    assert first.returncode == 128 + sig, err
    assert "Backup interrupted; the partial file was removed and no backup was written." in err
    assert project.backups() == files


def test_verify_tells_a_damaged_backup(stack: tuple[Project, Vault], tmp_path: Path) -> None:
    project, _ = stack
    good = Path(str(backup(project, "--format", "sql")["path"]))
    cases = {}
    truncated = tmp_path / "truncated.sql"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases[truncated] = "no 'dump complete' trailer at the end: the file is truncated"
    flipped = good.with_name("backup_2000-01-01_000000.sql")
    data = bytearray(good.read_bytes())
    data[len(data) // 2] ^= 0xFF
    flipped.write_bytes(bytes(data))
    shutil.copy(good.with_name(good.name + ".json"), flipped.with_name(flipped.name + ".json"))
    cases[flipped] = "differ from the manifest's"
    junk = tmp_path / "notes.sql"
    junk.write_text("hello\n")
    cases[junk] = "not a PostgreSQL dump"
    empty = tmp_path / "empty.dump"
    empty.write_bytes(b"")
    cases[empty] = "empty.dump is empty"
    try:
        for path, message in cases.items():
            human = project.run("verify", str(path))
            assert human.returncode == 1, (path, human.stdout)
            assert "BAD: do not rely on it" in human.stdout
            report = json.loads(project.run("verify", str(path), "--json").stdout)
            assert report["ok"] is False
            failed = [c for c in report["checks"] if c["status"] == "fail"]
            assert any(message in c["evidence"] for c in failed), (path, failed)
            assert all(c["fix"] for c in failed)
    finally:
        for p in (
            flipped,
            flipped.with_name(flipped.name + ".json"),
            flipped.with_name(flipped.name + ".verify.json"),
        ):
            p.unlink(missing_ok=True)


def test_restore_refuses_a_truncated_backup(stack: tuple[Project, Vault], tmp_path: Path) -> None:
    project, _ = stack
    good = Path(str(backup(project)["path"]))
    bad = tmp_path / "cut.dump"
    bad.write_bytes(good.read_bytes()[:-100])
    before = project.checksum()
    result = project.run("restore", str(bad), "--yes")
    assert result.returncode == 1
    assert (
        "error: Refusing to restore cut.dump: structure: pg_restore reading the data"
        in result.stderr
    )
    assert "Nothing was changed." in result.stderr
    assert project.checksum() == before


def test_restore_that_fails_while_loading_changes_nothing(
    stack: tuple[Project, Vault], tmp_path: Path
) -> None:
    project, _ = stack
    good = Path(str(backup(project, "--format", "sql")["path"]))
    text = good.read_text()
    cut = text.index("CREATE TABLE public.vault_secret")
    broken = tmp_path / "broken.sql"  # structure intact, no manifest, a bad statement inside
    broken.write_text(text[:cut] + "SELECT oops_not_a_function();\n" + text[cut:])
    before = project.checksum()
    result = project.run("restore", str(broken), "--yes")
    assert result.returncode == 1
    assert "error: Loading the backup failed: psql: " in result.stderr
    assert "ERROR:  function oops_not_a_function() does not exist" in result.stderr
    assert "Nothing was changed: vault is as it was." in result.stderr
    assert project.checksum() == before
    assert [d for d in project.databases() if "__" in d] == []
    project.wait_healthy()


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
