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
from tests.unit.test_monitor import Recorder

# Another name lets two checkouts run this module at once on one engine.
NAME = os.environ.get("RCTL_E2E_PITR_NAME", "rctl-e2e-pitr")
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
    before = world.project.checksum()
    planned = world.ok("restore", "--to-time", middle.isoformat(), "--dry-run")
    assert planned["steps"] and planned["database"] == "vault"
    assert datetime.fromisoformat(planned["point_in_time"]["reached"]) <= middle
    assert world.project.checksum() == before and world.throwaways() == []
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


def test_a_folder_the_db_cannot_write_is_refused_before_db_restarts(
    world: World, enabled: dict[str, Any]
) -> None:
    config = world.project.root / "recoverctl-config.toml"
    kept = config.read_text()
    second = world.nas.parent / "nas2"
    locked = second / NAME / "dev" / "pgbackrest"
    locked.mkdir(parents=True, exist_ok=True)
    os.chmod(locked, 0o700)  # root's: the container's postgres cannot write it
    started = world.project.container("db").attrs["State"]["StartedAt"]
    config.write_text(
        kept.replace('repos = ["nas"]', 'repos = ["nas", "nas2"]')
        + f'\n[targets.nas2]\ntype = "dir"\npath = "{second}"\n'
    )
    try:
        code, error = world.failed("pitr", "enable", "--yes")
        missing = world.nas.parent / "not-mounted"
        config.write_text(
            kept.replace('repos = ["nas"]', 'repos = ["nas", "nas3"]')
            + f'\n[targets.nas3]\ntype = "dir"\npath = "{missing}"\n'
        )
        code3, error3 = world.failed("pitr", "enable", "--yes")
    finally:
        config.write_text(kept)
    assert code == 1 and error["code"] == "write_failed"
    assert "not writable by the db container's postgres user" in error["message"]
    assert "chown" in error["hint"]
    assert code3 == 1 and error3["code"] == "target_not_found" and not missing.exists()
    # Refused before anything changed: db was not restarted, it still archives to nas.
    assert world.project.container("db").attrs["State"]["StartedAt"] == started
    assert world.ok("pitr", "status")["ok"]
    FAULTS.record(safe=True)
    FAULTS.record(safe=True)


def test_a_nas_mounted_again_after_db_started_is_named(
    world: World, enabled: dict[str, Any]
) -> None:
    """The NAS's folder mounted again on this machine after db started: the container keeps
    the folder it was given, and archiving goes on out of the NAS's sight. Status says so."""
    other = world.nas.parent / "remounted"
    other.mkdir(exist_ok=True)
    subprocess.run(["mount", "--bind", str(other), str(world.nas)], check=True)
    try:
        (other / NAME / "dev" / "pgbackrest").mkdir(parents=True, exist_ok=True)
        status = world.ok("pitr", "status")
    finally:
        subprocess.run(["umount", str(world.nas)], check=True)
    (repo,) = status["repos"]
    assert not status["ok"] and not repo["ok"]
    assert "mounted again after db started" in repo["message"]
    assert "recoverctl restart db" in repo["message"]
    FAULTS.record(safe=True)
    again = world.ok("pitr", "status")
    assert again["ok"] and again["repos"][0]["ok"]


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
    # Written while archiving is off, in a segment that is never archived.
    world.canary("while-off")
    world.project.sql("SELECT pg_switch_wal()")
    on = world.ok("pitr", "enable", "--yes")
    assert on["restarted"] and not on["new_passphrase"]
    assert world.project.sql("SHOW archive_mode").strip() == "on"
    # The archive misses that WAL: enable took a full backup, which closes the gap.
    assert len(on["full_backups"]) == 1, on
    (repo,) = world.ok("pitr", "status")["repos"]
    assert repo["ok"] and all(g["closed_by"] for g in repo["gaps"]), repo
    world.canary("after-on")
    world.ok("restore", "--to-time", "latest", "--yes")
    assert {"while-off", "after-on"} <= set(world.canaries())


def test_archive_timeout_holds_right_after_db_restarts(
    world: World, enabled: dict[str, Any]
) -> None:
    """PostgreSQL's checkpointer, started while the server recovers, first honours
    archive_timeout after a whole checkpoint_timeout (5 min): the db service's healthcheck
    wakes it once per start, so that a commit made just after a restart leaves within
    archive_timeout. Restarted by the engine, not recoverctl, as a reboot restarts it."""
    world.project.container("db").restart()
    world.project.wait_healthy()
    world.canary("just-after-restart")
    segment = world.project.sql("SELECT pg_walfile_name(pg_current_wal_lsn())").strip()
    _archived(world, segment, timeout=2 + 3 + 20)  # archive_timeout + io_timeout + a margin


# --- verify --pitr ------------------------------------------------------------------------


def _envelope(world: World, *args: str) -> tuple[int, dict[str, Any]]:
    done = world.run(*args, "--json")
    document = json.loads(done.stdout)
    contract.validate(document)
    return done.returncode, dict(document)


def _archive(world: World) -> Path:
    return world.nas / NAME / "dev" / "pgbackrest" / "archive" / "vault"


def test_verify_pitr_reads_the_repository_back_and_deep_restores_its_latest_point(
    world: World, enabled: dict[str, Any]
) -> None:
    quick = world.ok("verify", "--pitr")
    assert quick["ok"] and not quick["deep"]
    (repo,) = quick["repos"]
    assert repo["name"] == "nas" and repo["problems"] == [] and repo["point"] is None
    assert [(c["name"], c["status"]) for c in repo["checks"]] == [("pgbackrest.verify", "ok")]
    assert "total valid WAL" in repo["checks"][0]["evidence"]

    world.canary("verified-deep")
    before, timeline = world.project.checksum(), world.timeline()
    deep = world.ok("verify", "--pitr", "--deep", "--target", "nas")
    (repo,) = deep["repos"]
    assert deep["ok"] and deep["deep"] and repo["ok"]
    statuses = {c["name"]: c["status"] for c in repo["checks"]}
    assert list(statuses) == [
        "pgbackrest.verify", "restore", "point", "rows", "db.not_empty", "db.migrations",
    ]  # fmt: skip
    assert statuses["point"] == "ok" and statuses["restore"] == "ok"
    # Nothing writes the live database meanwhile: the copy's counts are the live ones.
    assert statuses["rows"] == "ok" and statuses["db.migrations"] == "ok"
    point = repo["point"]
    assert point["asked"] == "latest" and point["asked_at"] is None
    assert point["repo"] == "nas" and point["base_backup"]
    assert datetime.fromisoformat(point["reached"]) <= datetime.now(UTC)
    # The live cluster is only read, the copy is gone, and it never archived.
    assert world.project.checksum() == before and world.timeline() == timeline
    assert world.throwaways() == []
    assert not list(_archive(world).rglob("00000002*")), "the restored copy wrote the repository"

    code, document = _envelope(world, "verify", "--pitr", "--target", "nowhere")
    assert code == 2 and document["error"]["code"] == "usage", document
    code, document = _envelope(world, "verify", "latest", "--pitr")
    assert code == 2 and document["error"]["code"] == "usage", document


def test_drill_to_a_time_recovers_that_moment_in_its_own_stack(
    world: World, enabled: dict[str, Any]
) -> None:
    """drill --to-time: the repository restored to the moment in a throwaway, its vault
    database restored into <project>-drill and checked there; the record keeps the point
    reached. The live stack is only read, and nothing of the drill's is left."""
    committed = world.canary("drill-before")
    time.sleep(1.5)
    middle = datetime.now(UTC)
    time.sleep(1.5)
    world.canary("drill-after")
    before, timeline = world.project.checksum(), world.timeline()
    result = world.ok("drill", "--to-time", middle.isoformat())
    assert result["ok"] and result["result"] == "passed", result
    assert result["source"] == "pitr nas"
    point = result["point_in_time"]
    reached = datetime.fromisoformat(point["reached"])
    assert committed <= reached <= middle, point
    assert point["repo"] == "nas" and point["base_backup"] and point["restore_seconds"] > 0
    assert result["recovery_seconds"] > point["restore_seconds"]
    statuses = {c["name"]: c["status"] for c in result["checks"]}
    assert statuses["rows"] == "ok" and statuses["app.key_check"] == "ok", result["checks"]
    # The record on disk keeps the point; the live stack is as it was; nothing is left.
    record = json.loads(Path(result["record"]).read_text())
    assert record["point_in_time"] == point
    assert world.project.checksum() == before and world.timeline() == timeline
    assert world.throwaways() == []
    drill_label: dict[str, Any] = {"label": f"com.docker.compose.project={NAME}-drill"}
    assert world.project.client.containers.list(all=True, filters=drill_label) == []
    assert world.project.client.volumes.list(filters=drill_label) == []
    assert not list(_archive(world).rglob("00000002*")), "the drill's copy wrote the repository"

    code, error = world.failed("drill", "--to-time", "2001-01-01T00:00:00Z")
    assert code == 1 and error["code"] == "pitr_outside_window", error
    code, error = world.failed("drill", "--to-time", "latest", "--from", "backup.dump")
    assert code == 2 and error["code"] == "usage", error
    FAULTS.record(safe=world.project.checksum() == before)


def _archived(world: World, segment: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while world.project.sql("SELECT last_archived_wal FROM pg_stat_archiver").strip() < segment:
        assert time.monotonic() < deadline, f"{segment} was never archived"
        time.sleep(0.5)


def test_a_damaged_wal_segment_is_named_and_never_restored_past(
    world: World, enabled: dict[str, Any]
) -> None:
    """Damages the repository, then mends it: the segment's own bytes go back and a fresh
    full base backup is taken, so that tests after this one still find a good window."""
    world.ok("pitr", "backup", "--type", "full")
    damaged_at = world.canary("in-the-damaged-segment")
    segment = world.project.sql("SELECT pg_walfile_name(pg_current_wal_lsn())").strip()
    world.project.sql("SELECT pg_switch_wal()")
    _archived(world, segment)
    time.sleep(1.5)
    world.canary("after-the-damage")
    time.sleep(1.5)
    past = datetime.now(UTC)
    (stored,) = _archive(world).rglob(f"{segment}-*")
    good = stored.read_bytes()
    middle = len(good) // 2
    flipped = bytes(b ^ 0xFF for b in good[middle : middle + 64])
    stored.write_bytes(good[:middle] + flipped + good[middle + 64 :])
    try:
        code, document = _envelope(world, "verify", "--pitr")
        assert code == 1 and document["error"]["code"] == "pitr_failed", document
        assert segment in document["error"]["message"]
        (repo,) = document["result"]["repos"]
        assert not repo["ok"] and any(segment in p for p in repo["problems"]), repo

        # A time past the damage: PostgreSQL never reaches it, and says so.
        before, timeline = world.project.checksum(), world.timeline()
        code, error = world.failed("restore", "--to-time", past.isoformat(), "--yes")
        assert code == 1 and error["code"] == "pitr_failed", error
        assert "recovery ended before configured recovery target was reached" in error["message"], (
            error
        )
        assert world.project.checksum() == before and world.timeline() == timeline
        assert world.throwaways() == []
        FAULTS.record(safe=world.project.checksum() == before)

        # latest has no target to miss, but the copy stops before the damage: short of the
        # archive's newest commit, the restore refuses before any swap.
        code, error = world.failed("restore", "--to-time", "latest", "--yes")
        assert code == 1 and error["code"] == "pitr_failed", error
        assert "could not be replayed" in error["message"] and "Nothing was swapped" in error["message"]
        assert world.project.checksum() == before and world.throwaways() == []
        FAULTS.record(safe=world.project.checksum() == before)

        # Deep verification fails it for the same reason.
        code, document = _envelope(world, "verify", "--pitr", "--deep")
        assert code == 1 and document["error"]["code"] == "pitr_failed", document
        (repo,) = document["result"]["repos"]
        statuses = {c["name"]: c["status"] for c in repo["checks"]}
        assert statuses["pgbackrest.verify"] == "fail" and statuses["point"] == "fail", repo
        reached = repo["point"]["reached"]  # null: no commit between the base and the damage
        assert reached is None or datetime.fromisoformat(reached) < damaged_at, repo
        assert world.project.checksum() == before and world.throwaways() == []
    finally:
        stored.write_bytes(good)
    assert world.ok("verify", "--pitr")["ok"]
    world.ok("pitr", "backup", "--type", "full")


def test_a_gap_in_the_archive_is_shown_until_a_full_backup_closes_it(
    world: World, enabled: dict[str, Any]
) -> None:
    """A segment gone from the repository (as pgBackRest drops WAL past its queue while a
    repository is down): status and doctor name the gap, and a full base backup closes it.
    The segment goes back afterwards, so that later tests find a whole window."""
    segments = []
    for i in range(2):
        world.canary(f"gap-{i}")
        segments.append(world.project.sql("SELECT pg_walfile_name(pg_current_wal_lsn())").strip())
        world.project.sql("SELECT pg_switch_wal()")
    _archived(world, segments[-1])
    (stored,) = _archive(world).rglob(f"{segments[0]}-*")
    aside = stored.with_name(stored.name + ".aside")
    stored.rename(aside)
    try:
        status = world.ok("pitr", "status")
        (repo,) = status["repos"]
        assert not status["ok"] and not repo["ok"], repo
        ours = [g for g in repo["gaps"] if g["first_missing"] == segments[0]]
        assert ours == [
            {"first_missing": segments[0], "last_missing": segments[0], "segments": 1,
             "closed_by": None}
        ], repo  # fmt: skip
        assert "the window has a gap" in repo["message"] and "--type full" in repo["message"]
        done = world.run("doctor", "--only", "pitr", "--json")
        window = {c["name"]: c for c in json.loads(done.stdout)["result"]["checks"]}
        assert done.returncode == 1 and window["pitr.window.nas"]["status"] == "fail", window
        assert segments[0] in window["pitr.window.nas"]["evidence"]
        label = world.ok("pitr", "backup", "--type", "full")["backups"][0]["label"]
        closed = world.ok("pitr", "status")
        (repo,) = closed["repos"]
        ours = [g for g in repo["gaps"] if g["first_missing"] == segments[0]]
        assert closed["ok"] and repo["ok"] and ours[0]["closed_by"] == label, repo
        FAULTS.record(safe=True)
    finally:
        aside.rename(stored)
    gaps = world.ok("pitr", "status")["repos"][0]["gaps"]
    assert not [g for g in gaps if g["first_missing"] == segments[0]], gaps


def test_an_outage_past_wal_max_drops_wal_and_the_gap_is_named(
    world: World, enabled: dict[str, Any]
) -> None:
    """The repository down for longer than pg_wal may grow: past [pitr] wal_max pgBackRest
    tells PostgreSQL the waiting WAL is archived and drops it, so that the disk never fills.
    The vault keeps serving; status names the gap; a full base backup closes it."""
    config = world.project.root / "recoverctl-config.toml"
    kept = config.read_text()
    repo = world.nas / NAME / "dev" / "pgbackrest"
    mode = stat.S_IMODE(repo.stat().st_mode)
    config.write_text(kept.replace("[pitr]\n", "[pitr]\nwal_max = 64\n"))  # 4 segments
    try:
        world.ok("pitr", "enable", "--yes")  # db restarted with the bound
        os.chmod(repo, 0)
        try:
            segments = []
            for i in range(8):
                world.canary(f"outage-{i}")
                segments.append(
                    world.project.sql("SELECT pg_walfile_name(pg_current_wal_lsn())").strip()
                )
                world.project.sql("SELECT pg_switch_wal()")
            assert world.project.get("/healthz")[0] == 200
            # "Archived": dropped past the bound. PostgreSQL retries a failing segment after
            # a pause that a new segment cuts short: one more every few seconds.
            deadline = time.monotonic() + 120
            while world.project.sql("SELECT last_archived_wal FROM pg_stat_archiver").strip() < segments[-1]:
                assert time.monotonic() < deadline, "pgBackRest never dropped the queue"
                world.canary(f"nudge-{time.monotonic()}")
                world.project.sql("SELECT pg_switch_wal()")
                time.sleep(3)
        finally:
            os.chmod(repo, mode)
        status = world.ok("pitr", "status")
        (held,) = status["repos"]
        dropped = [g for g in held["gaps"] if g["closed_by"] is None]
        assert not status["ok"] and dropped, held
        assert segments[0] <= dropped[0]["first_missing"] <= segments[-1], (segments, dropped)
        assert "the window has a gap" in held["message"]
        label = world.ok("pitr", "backup", "--type", "full")["backups"][0]["label"]
        (held,) = world.ok("pitr", "status")["repos"]
        assert held["ok"] and all(g["closed_by"] for g in held["gaps"]), held
        assert label in {g["closed_by"] for g in held["gaps"]}
        FAULTS.record(safe=True)
    finally:
        os.chmod(repo, mode)
        config.write_text(kept)
        world.ok("pitr", "enable", "--yes")


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
        # The routine run now fails its pitr step, and its ping says why.
        config = world.project.root / "recoverctl-config.toml"
        kept = config.read_text()
        server = Recorder().start()
        config.write_text(kept + f'\n[monitoring]\nhealthchecks_url = "{server.url}/ping/x"\n')
        try:
            routine = world.run("routine", "--json")
        finally:
            config.write_text(kept)
            server.stop()
        document = json.loads(routine.stdout)
        assert routine.returncode == 1 and document["error"]["code"] == "pitr_failed", document
        steps = {s["name"]: s["status"] for s in document["result"]["steps"]}
        assert steps["backup"] == "ok" and steps["pitr"] == "failed", steps
        fail = [r for r in server.received if r.path.startswith("/ping/x/fail")]
        assert fail and b"Archiving has stalled" in fail[0].body, server.received
    finally:
        os.chmod(repo, mode)
    # Writable again: the next segment goes, and the pending ones with it.
    world.project.sql("SELECT pg_switch_wal()")
    deadline = time.monotonic() + 90
    while (archiving := pitr_rows()["pitr.archiving"])["status"] != "ok":
        assert time.monotonic() < deadline, archiving
        time.sleep(2)
