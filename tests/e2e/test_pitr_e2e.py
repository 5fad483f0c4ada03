"""e2e: continuous archiving and point-in-time recovery with pgBackRest, inside the real db
container, to a real folder repository: enable, status, backup, restore --to-time (the
transplant), disable, and their failure paths, each with nothing lost."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import pytest

from recoverctl.adapters import seal
from recoverctl.cli import contract
from tests.e2e.conftest import FAULTS, Project, make_project, tear_down
from tests.e2e.test_faults_e2e import spawn, wait_for

NAME = "rctl-e2e-pitr"
SIGNALS = [signal.SIGINT, signal.SIGTERM]


@dataclass
class World:
    project: Project
    nas: Path
    identity: Path

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.project.run(*args, **env)  # type: ignore[arg-type]

    def ok(self, *args: str, **env: str) -> dict[str, Any]:
        done = self.run(*args, "--json", **env)
        assert done.returncode == 0, done.stdout + done.stderr
        document = json.loads(done.stdout)
        contract.validate(document)
        return dict(document["result"])

    def failed(self, *args: str, **env: str) -> tuple[int, dict[str, Any]]:
        done = self.run(*args, "--json", **env)
        document = json.loads(done.stdout)
        contract.validate(document)
        assert not document["ok"], document
        return done.returncode, dict(document["error"])

    def canary(self, value: str) -> datetime:
        """A committed row; returns the server's commit time."""
        out = self.project.sql(
            f"INSERT INTO canary(v) VALUES ('{value}') RETURNING "
            "to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
        )
        return datetime.fromisoformat(out.strip().splitlines()[0])

    def canaries(self) -> list[str]:
        return self.project.sql("SELECT v FROM canary ORDER BY at").split()

    def timeline(self) -> str:
        return self.project.sql("SELECT timeline_id FROM pg_control_checkpoint()").strip()

    def throwaways(self) -> list[str]:
        label: dict[str, Any] = {"label": f"com.docker.compose.project={NAME}-pitr"}
        c = self.project.client
        return [str(x.name) for x in c.containers.list(all=True, filters=label)] + [
            v.name for v in c.volumes.list(filters=label)
        ]


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[World]:
    root = tmp_path_factory.mktemp("pitr")
    project = make_project(root / "project", NAME, docker_client)
    project.force_clean()
    project.write_env(".env")
    nas = root / "nas"
    nas.mkdir()
    identity = root / "identity.txt"
    recipient = seal.new_identity(identity)
    (project.root / "recoverctl-config.toml").write_text(
        f'[encryption]\nrecipients = ["{recipient}"]\n\n'
        f'[targets.nas]\ntype = "dir"\npath = "{nas}"\n\n'
        '[pitr]\nrepos = ["nas"]\narchive_timeout = "2s"\nio_timeout = "3s"\n'
    )
    up = project.run("up")
    assert up.returncode == 0, up.stderr
    w = World(project, nas, identity)
    yield w
    tear_down(project)
    for c in docker_client.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={NAME}-pitr"}
    ):
        c.remove(force=True, v=True)


@pytest.fixture(scope="module")
def enabled(world: World) -> dict[str, Any]:
    """pitr enable, once for the module; then a table the tests write canaries to."""
    result = world.ok("pitr", "enable", "--yes")
    world.project.sql(
        "CREATE TABLE canary (v text PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())"
    )
    return result


def test_enable_turns_archiving_on_with_a_secret_kept_from_the_backend(
    world: World, enabled: dict[str, Any]
) -> None:
    root = world.project.root
    assert enabled["restarted"] and enabled["new_passphrase"]
    assert [r["name"] for r in enabled["repos"]] == ["nas"]
    assert len(enabled["full_backups"]) == 1 and enabled["full_backups"][0].startswith("nas: ")
    assert enabled["env_push"]["ok"] and ".env.pitr" in enabled["env_push"]["files"]
    passphrase = root / ".env.pitr"
    value = passphrase.read_text().strip().splitlines()[-1].split("=", 1)[1]
    for path in (passphrase, *(root / ".recoverctl").iterdir()):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    # Only the db service sees pgBackRest's environment; nothing secret in the override.
    backend = world.project.container("backend").attrs["Config"]["Env"]
    assert not [e for e in backend if e.startswith("PGBACKREST_")]
    db = world.project.container("db").attrs
    assert any(e == f"PGBACKREST_REPO1_CIPHER_PASS={value}" for e in db["Config"]["Env"])
    assert value not in json.dumps(db["Config"]["Cmd"])
    assert value not in (root / ".recoverctl" / f"pitr-{NAME}.yml").read_text()
    assert world.project.sql("SHOW archive_mode").strip() == "on"
    # The repository is encrypted: no file in it holds the vault's table names in clear.
    repo = world.nas / NAME / "dev" / "pgbackrest"
    assert (repo / "backup" / "vault" / "backup.info").is_file()
    # The passphrase is off-site, sealed: the env copy's manifest names it.
    manifest = json.loads((world.nas / NAME / "env" / "manifest.json").read_text())
    assert ".env.pitr" in [f["name"] for f in manifest["files"]]


def test_enable_again_changes_nothing(world: World, enabled: dict[str, Any]) -> None:
    again = world.ok("pitr", "enable", "--yes")
    assert not again["restarted"] and not again["new_passphrase"]
    assert again["full_backups"] == []


def test_status_shows_the_window_and_the_archiver(world: World, enabled: dict[str, Any]) -> None:
    world.canary("status")
    world.ok("pitr", "backup", "--type", "incr")
    status = world.ok("pitr", "status")
    assert status["enabled"] and status["ok"]
    archive = status["archive"]
    assert archive["archive_mode"] == "on" and not archive["failing"]
    assert archive["pg_wal_bytes"] > 0
    (repo,) = status["repos"]
    assert repo["ok"] and repo["earliest"] is not None
    assert datetime.fromisoformat(repo["earliest"]) <= datetime.fromisoformat(repo["latest"])
    assert [b["type"] for b in repo["backups"]] == ["full", "incr"]


def test_restore_to_a_time_brings_back_that_moment(world: World, enabled: dict[str, Any]) -> None:
    world.canary("before")
    time.sleep(1.5)
    middle = datetime.now(UTC)
    time.sleep(1.5)
    world.canary("after")
    timeline = world.timeline()
    result = world.ok("restore", "--to-time", middle.isoformat(), "--yes")
    point = result["point_in_time"]
    reached = datetime.fromisoformat(point["reached"])
    assert reached <= middle
    assert point["repo"] == "nas" and point["base_backup"]
    rows = world.canaries()
    assert "before" in rows and "after" not in rows
    # The live cluster kept its timeline: only its vault database was swapped.
    assert world.timeline() == timeline
    assert result["safety_backup"] and Path(result["safety_backup"]).is_file()
    assert world.throwaways() == []
    # The restored copy never archived: the repository holds one timeline only.
    archive = world.nas / NAME / "dev" / "pgbackrest" / "archive" / "vault"
    assert not list(archive.rglob("00000002*")), "a restored copy wrote the repository"


def test_restore_to_latest_loses_nothing_committed(world: World, enabled: dict[str, Any]) -> None:
    world.canary("just-now")  # committed a moment ago, before its segment was switched
    result = world.ok("restore", "--to-time", "latest", "--yes")
    assert "just-now" in world.canaries()
    assert result["point_in_time"]["asked_at"] is None


def test_a_time_outside_the_window_is_refused_before_anything(
    world: World, enabled: dict[str, Any]
) -> None:
    before = world.project.checksum()
    code, error = world.failed("restore", "--to-time", "2001-01-01T00:00:00Z", "--yes")
    assert code == 1 and error["code"] == "pitr_outside_window"
    assert "window" in error["message"]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    code, error = world.failed("restore", "--to-time", future, "--yes")
    assert code == 2 and error["code"] == "usage"
    assert world.project.checksum() == before and world.throwaways() == []
    FAULTS.record(safe=True)
    FAULTS.record(safe=True)


def test_a_wrong_passphrase_is_named_and_nothing_changes(
    world: World, enabled: dict[str, Any]
) -> None:
    env_file = world.project.root / ".recoverctl" / f"pitr-{NAME}.env"
    good = env_file.read_text()
    value = next(ln for ln in good.splitlines() if ln.startswith("PGBACKREST_REPO1_CIPHER_PASS="))
    env_file.write_text(good.replace(value, "PGBACKREST_REPO1_CIPHER_PASS=wrongwrongwrong"))
    before = world.project.checksum()
    try:
        code, error = world.failed("restore", "--to-time", "latest", "--yes")
    finally:
        env_file.write_text(good)
    assert code == 1 and error["code"] in ("pitr_passphrase", "pitr_failed"), error
    assert world.project.checksum() == before and world.throwaways() == []
    FAULTS.record(safe=world.project.checksum() == before)


def test_a_missing_passphrase_is_never_made_again_over_an_archive(
    world: World, enabled: dict[str, Any]
) -> None:
    passphrase = world.project.root / ".env.pitr"
    kept = passphrase.read_bytes()
    passphrase.unlink()
    try:
        code, error = world.failed("pitr", "enable", "--yes")
    finally:
        passphrase.write_bytes(kept)
        os.chmod(passphrase, 0o600)
    assert code == 1 and error["code"] == "pitr_passphrase"
    assert "env pull" in error["hint"]
    FAULTS.record(safe=True)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_a_signal_during_the_transplant_leaves_the_live_database(
    world: World, enabled: dict[str, Any], sig: signal.Signals
) -> None:
    before = world.project.checksum()
    proc = spawn(world.project, "restore", "--to-time", "latest", "--yes",
                 RECOVERCTL_FAILPOINT="pitr.restoring")  # fmt: skip
    wait_for(proc, "failpoint pitr.restoring reached")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=180)
    intact = world.project.checksum() == before
    FAULTS.record(safe=proc.returncode == 128 + sig and intact, lost=not intact)
    assert proc.returncode == 128 + sig, err
    assert "the live database is untouched" in err
    assert intact and world.throwaways() == []
    assert world.project.sql("SHOW archive_mode").strip() == "on"


def test_disable_keeps_the_repository_and_enable_archives_into_it_again(
    world: World, enabled: dict[str, Any]
) -> None:
    off = world.ok("pitr", "disable", "--yes")
    assert off["was_enabled"] and off["kept"]
    world.project.wait_healthy()
    assert world.project.sql("SHOW archive_mode").strip() == "off"
    assert (world.nas / NAME / "dev" / "pgbackrest" / "backup" / "vault" / "backup.info").is_file()
    code, error = world.failed("restore", "--to-time", "latest", "--yes")
    assert code == 1 and error["code"] == "pitr_not_configured"
    on = world.ok("pitr", "enable", "--yes")
    assert on["restarted"] and not on["new_passphrase"]
    assert world.project.sql("SHOW archive_mode").strip() == "on"


def test_doctor_judges_archiving_and_sees_a_repository_stop_it(
    world: World, enabled: dict[str, Any]
) -> None:
    """doctor's pitr group on the enabled stack; then the folder repository unwritable:
    pitr.archiving fails within one archive_timeout of the next write (and recovers)."""
    archive_timeout, io_timeout = 2.0, 3.0  # as the module's settings have them

    def pitr_rows() -> dict[str, dict[str, Any]]:
        done = world.run("doctor", "--only", "pitr", "--json")
        document = json.loads(done.stdout)
        contract.validate(document)
        checks = document["result"]["checks"]
        assert done.returncode == (0 if document["ok"] else 1), done.stderr
        return {c["name"]: c for c in checks}

    rows = pitr_rows()
    statuses = {name: row["status"] for name, row in rows.items()}
    assert statuses == {
        "pitr.enabled": "ok",
        "pitr.archiving": "ok",
        "pitr.rpo": "ok",
        "pitr.pg_wal": "ok",
        "pitr.repos.nas": "ok",
        "pitr.base_backup.nas": "ok",
        # Enabled minutes ago: the window is short of full_every x (keep_full - 1) = 7 days.
        "pitr.window.nas": "warn",
        "pitr.passphrase": "ok",
    }, rows
    assert "aes-256-cbc" in rows["pitr.repos.nas"]["evidence"]
    assert "pgBackRest 2." in rows["pitr.repos.nas"]["evidence"]
    assert "complete around" in rows["pitr.window.nas"]["evidence"]
    assert "off-site on nas" in rows["pitr.passphrase"]["evidence"]

    repo = world.nas / NAME / "dev" / "pgbackrest"
    mode = stat.S_IMODE(repo.stat().st_mode)
    os.chmod(repo, 0)
    try:
        world.canary("doctor-unwritable")
        written = time.monotonic()
        time.sleep(archive_timeout)
        # One archive_timeout after the write the server switches and tries; each doctor run
        # takes a moment of its own, allowed for below.
        deadline = written + archive_timeout + io_timeout + 15
        while True:
            archiving = pitr_rows()["pitr.archiving"]
            if archiving["status"] == "fail" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert archiving["status"] == "fail", archiving
        assert "archiving fails" in archiving["evidence"] and "failed at" in archiving["evidence"]
        assert "recoverctl logs db" in archiving["fix"]
    finally:
        os.chmod(repo, mode)
    # Writable again: the next segment goes, and the pending ones with it.
    world.project.sql("SELECT pg_switch_wal()")
    deadline = time.monotonic() + 90
    while (archiving := pitr_rows()["pitr.archiving"])["status"] != "ok":
        assert time.monotonic() < deadline, archiving
        time.sleep(2)
