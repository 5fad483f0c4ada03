"""upgrade-postgres for real: a PostgreSQL 15 stack moved to 17 (the local images built by
scripts/test-env.sh from Debian bookworm and trixie), its data, roles, grants and settings
carried and compared, the old volume kept; a rollback with writes made since (they are in
the dump taken aside); the kept volume forgotten; the upgrade again, and twice; a load
that fails half-way and a Ctrl-C, each with the old cluster serving again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.e2e.conftest import Project, make_project, tear_down
from tests.playbook import is_upgrade, playbook_commands

pytestmark = pytest.mark.e2e

OLD = "recoverctl-test/postgres:15"
NEW_VAR = "POSTGRES17_IMAGE"


@pytest.fixture(scope="module")
def new_image(docker_client: docker.DockerClient) -> str:
    image = os.environ.get(NEW_VAR)
    if not image:
        pytest.fail(f"{NEW_VAR} is not set: run the e2e tests through `make test`.", pytrace=False)
    try:
        docker_client.images.get(image)
    except docker.errors.ImageNotFound:
        pytest.fail(f"{NEW_VAR}={image} does not exist: run `make test-env`.", pytrace=False)
    return image


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, new_image: str
) -> Iterator[Project]:
    p = make_project(tmp_path_factory.mktemp("upgrade"), "rctl-e2e-upgrade", docker_client)
    # The env file names the image; the suite's exported POSTGRES_IMAGE would win over it.
    p.unset = ("POSTGRES_IMAGE",)
    p.force_clean()
    yield p
    tear_down(p)


def _json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def _major(p: Project) -> int:
    return int(p.sql("SHOW server_version_num").strip()) // 10000


def _env_file(p: Project) -> dict[str, str]:
    from dotenv import dotenv_values

    return {k: v or "" for k, v in dotenv_values(p.root / ".env").items()}


def _volumes(p: Project) -> set[str]:
    return {v.name for v in p.client.volumes.list(filters={"label": f"com.docker.compose.project={p.name}"})}


def _pg_version_in(p: Project, volume: str) -> str:
    out = p.client.containers.run(
        "recoverctl-test/postgres:15", ["cat", "/data/PG_VERSION"], entrypoint=[],
        remove=True, volumes={volume: {"bind": "/data", "mode": "ro"}},
    )  # fmt: skip
    return bytes(out).decode().strip()


def _fresh_15(p: Project, *, tmpfs_mb: int = 0) -> dict[str, str]:
    """A PostgreSQL 15 stack with vault data, a second role with a password and a grant,
    and a database setting: what must come across. tmpfs_mb: the data volume made first on
    a tmpfs of that size (compose adopts it by its labels), a small disk."""
    from tests.e2e.vaultclient import Vault

    p.force_clean()
    if tmpfs_mb:
        p.client.volumes.create(
            f"{p.name}_db-data", driver="local",
            driver_opts={"type": "tmpfs", "device": "tmpfs", "o": f"size={tmpfs_mb}m"},
            labels={"com.docker.compose.project": p.name, "com.docker.compose.volume": "db-data"},
        )  # fmt: skip
    p.write_env(".env", POSTGRES_IMAGE=OLD)
    up = p.run("up")
    assert up.returncode == 0, up.stderr
    Vault(p).seed()
    p.sql("CREATE TABLE upgrade_canary (id int PRIMARY KEY, note text)")
    p.sql("INSERT INTO upgrade_canary SELECT g, 'row ' || g FROM generate_series(1, 500) g")
    p.sql("CREATE ROLE reader LOGIN PASSWORD 'reader-secret-1'")
    p.sql("GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader")
    p.sql(f"ALTER DATABASE {p.env['POSTGRES_DB']} SET statement_timeout = '41s'")
    assert _major(p) == 15
    return p.checksum()


def _carried(p: Project) -> dict[str, str]:
    return {
        "reader": p.sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'reader'").strip(),
        "grant": p.sql(
            "SELECT has_table_privilege('reader', 'public.upgrade_canary', 'SELECT')"
        ).strip(),
        "setting": p.sql(
            "SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting s JOIN pg_database d "
            "ON d.oid = s.setdatabase WHERE d.datname = current_database()"
        ).strip(),
        "owner": p.sql("SELECT tableowner FROM pg_tables WHERE tablename = 'upgrade_canary'").strip(),
    }


# What the test below runs, each as playbook.md shows it (then --yes --json for the test).
PLAYBOOK_RUN = {
    ("upgrade-postgres", "--to", "17", "--dry-run"),
    ("upgrade-postgres", "--to", "17"),
    ("upgrade-postgres", "--rollback"),
    ("upgrade-postgres", "--forget-old"),
}


def test_the_playbook_shows_the_upgrade_commands_run_here() -> None:
    assert {c for c in playbook_commands() if is_upgrade(c)} == PLAYBOOK_RUN


def test_upgrade_rollback_forget_and_again(project: Project, new_image: str) -> None:
    p = project
    before = _fresh_15(p)
    carried = _carried(p)
    assert carried["setting"] == "statement_timeout=41s" and carried["grant"] == "t"

    # POSTGRES_IMAGE exported in the shell (the suite exports 15's) would undo the switch.
    exported = subprocess.run(
        [sys.executable, "-m", "recoverctl", "upgrade-postgres", "--to", "17", "--yes", "--json"],
        cwd=p.root, capture_output=True, text=True, timeout=300,
        env={**os.environ, "RECOVERCTL_PROJECT_NAME": p.name, "POSTGRES_IMAGE": "postgres:15",
             "RECOVERCTL_CONFIG": str(p.root / "recoverctl-config.toml")},
    )  # fmt: skip
    assert exported.returncode == 1, exported.stderr
    error = _json(exported)["error"]
    assert error["code"] == "upgrade_refused" and "unset POSTGRES_IMAGE" in error["hint"]
    missing = p.run("upgrade-postgres", "--to", "17", "--image", "recoverctl-test/nothing:17",
                    "--yes", "--json")  # fmt: skip
    assert missing.returncode == 1
    assert "is not on this machine and no registry has it" in _json(missing)["error"]["message"]
    assert _major(p) == 15 and f"{p.name}_db-data-17" not in _volumes(p)

    dry = p.run("upgrade-postgres", "--to", "17", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert _json(dry)["result"]["outcome"] == "dry_run"
    assert _major(p) == 15 and _env_file(p)["POSTGRES_IMAGE"] == OLD

    done = p.run("upgrade-postgres", "--to", "17", "--yes", "--json")
    assert done.returncode == 0, done.stderr + done.stdout
    result = _json(done)["result"]
    assert result["outcome"] == "upgraded"
    assert (result["from_major"], result["to_major"]) == (15, 17)
    assert result["new_image"] == new_image
    assert result["old_volume"] == f"{p.name}_db-data"
    assert result["new_volume"] == f"{p.name}_db-data-17"
    assert result["app_downtime_seconds"] is not None and result["app_downtime_seconds"] > 0
    assert result["rows"] > 500 and Path(result["backup"]).is_file()
    assert [s["step"] for s in result["steps"]][-1] == "checking the stack and the key-check endpoint"

    assert _major(p) == 17
    env = _env_file(p)
    assert (env["POSTGRES_IMAGE"], env["POSTGRES_VOLUME"]) == (new_image, "db-data-17")
    assert p.checksum() == before  # every row of every table
    assert _carried(p) == carried  # the role's password hash, the grant, the setting, the owner
    assert _pg_version_in(p, f"{p.name}_db-data") == "15"  # the old cluster, kept untouched
    status, _ = p.get("/healthz")
    assert status == 200

    doctor = p.run("doctor", "--json")
    checks = {c["name"]: c for c in _json(doctor)["result"]["checks"]}
    assert checks["postgres.version"]["status"] == "ok", checks["postgres.version"]
    assert checks["postgres.upgrade"]["status"] == "ok"
    assert "db-data kept since" in checks["postgres.upgrade"]["evidence"]

    again = p.run("upgrade-postgres", "--to", "17", "--yes", "--json")
    assert again.returncode == 0, again.stderr
    assert _json(again)["result"]["outcome"] == "nothing_to_do"

    # A 15 dump restores into 17; a drill drills 17; neither the drill's nor another
    # project's down --volumes reaches the live or the kept volume.
    restored = p.run("restore", result["backup"], "--yes", "--no-safety-backup", "--json")
    assert restored.returncode == 0, restored.stderr
    assert p.checksum() == before and _major(p) == 17
    drill = p.run("drill", "--json")
    assert drill.returncode == 0, drill.stderr
    other = p.run("down", "--volumes", "--yes", "--no-safety-backup",
                  RECOVERCTL_PROJECT_NAME=f"{p.name}-other")  # fmt: skip
    assert other.returncode == 0, other.stderr
    assert {f"{p.name}_db-data", f"{p.name}_db-data-17"} <= _volumes(p)
    assert _pg_version_in(p, f"{p.name}_db-data") == "15" and _major(p) == 17

    # Writes after the upgrade, then back: they are in the dump taken aside, not in 15.
    p.sql("INSERT INTO upgrade_canary VALUES (9001, 'written on 17')")
    back = p.run("upgrade-postgres", "--rollback", "--yes", "--json")
    assert back.returncode == 0, back.stderr + back.stdout
    rolled = _json(back)["result"]
    assert rolled["outcome"] == "rolled_back"
    aside = Path(rolled["aside"])
    assert aside.is_file() and aside.parent.name == "upgrade-aside"
    listed = p.run("list", "--json")
    assert aside.name not in listed.stdout  # never what restore latest or the routine picks
    assert rolled["kept_volume"] == f"{p.name}_db-data-17"
    assert _major(p) == 15
    assert "POSTGRES_VOLUME" not in _env_file(p) and _env_file(p)["POSTGRES_IMAGE"] == OLD
    assert p.sql("SELECT count(*) FROM upgrade_canary WHERE id = 9001").strip() == "0"
    assert p.checksum() == before
    # The 17 dump does not go into 15: refused before anything is touched.
    newer = p.run("restore", str(aside), "--yes", "--json")
    assert newer.returncode == 1
    said = json.dumps(_json(newer)["error"])
    assert "made by pg_dump 17" in said and "PostgreSQL 15" in said, said
    assert p.checksum() == before
    manifest = json.loads(aside.with_name(aside.name + ".json").read_text())
    assert manifest["tables"]["public.upgrade_canary"] == 501, manifest["tables"]

    refused = p.run("upgrade-postgres", "--to", "17", "--yes", "--json")
    assert refused.returncode == 1
    error = _json(refused)["error"]
    assert error["code"] == "upgrade_refused" and "forget-old" in error["hint"]

    forgot = p.run("upgrade-postgres", "--forget-old", "--yes", "--json")
    assert forgot.returncode == 0, forgot.stderr
    assert _json(forgot)["result"]["removed"] == f"{p.name}_db-data-17"
    assert f"{p.name}_db-data-17" not in _volumes(p)
    assert f"{p.name}_db-data" in _volumes(p)

    fresh = p.run("upgrade-postgres", "--to", "17", "--yes", "--json")
    assert fresh.returncode == 0, fresh.stderr + fresh.stdout
    assert _major(p) == 17
    assert p.checksum() == before


def test_the_rollback_point_and_the_env_files_go_off_site(project: Project, new_image: str) -> None:
    """Step 2's backup is pushed to every target, the env files again right after the
    switch (they name 17 now) and after a rollback (15 again). A target that fails makes
    it exit 3 with the upgrade done, saying so: nobody undoes a good switch for it."""
    from recoverctl.adapters import seal

    p = project
    before = _fresh_15(p)
    identity = p.root.parent / "upgrade-identity.txt"
    recipient = seal.new_identity(identity)
    nas = p.root.parent / "upgrade-nas"
    nas.mkdir(mode=0o700, exist_ok=True)
    blocked = p.root.parent / "upgrade-not-a-folder"
    blocked.write_text("a file where the target's folder should be\n")
    config = p.root / "recoverctl-config.toml"
    targets = f'[encryption]\nrecipients = ["{recipient}"]\n\n[targets.nas]\ntype = "dir"\npath = "{nas}"\n'
    config.write_text(targets + f'\n[targets.broken]\ntype = "dir"\npath = "{blocked}/nas"\n')
    try:
        done = p.run("upgrade-postgres", "--to", "17", "--yes", "--json")
        assert done.returncode == 3, done.stderr + done.stdout
        document = _json(done)
        result, error = document["result"], document["error"]
        assert result["outcome"] == "upgraded" and _major(p) == 17
        assert error["code"] == "offsite_failed"
        assert error["message"].startswith(f"PostgreSQL 17 ({new_image}, volume db-data-17) serves"), error
        assert "broken" in error["message"]
        backup = Path(result["backup"]).name
        assert [(c["target"], c["status"]) for c in result["offsite"] if c["target"] == "nas"] == [
            ("nas", "pushed")
        ], result["offsite"]
        assert any(backup in str(f) for f in nas.rglob("*")), sorted(nas.rglob("*"))
        env = {c["target"]: c["status"] for c in result["env"]["copies"]}
        assert env == {"nas": "pushed", "broken": "failed"}, result["env"]
        assert p.checksum() == before
        journal = json.loads((p.root / ".recoverctl" / f"upgrade-{p.name}.json").read_text())
        assert journal["phase"] == "done"

        config.write_text(targets)
        back = p.run("upgrade-postgres", "--rollback", "--yes", "--json")
        assert back.returncode == 0, back.stderr + back.stdout
        rolled = _json(back)["result"]
        assert [(c["target"], c["status"]) for c in rolled["env"]["copies"]] == [("nas", "pushed")]
        assert _major(p) == 15 and p.checksum() == before
        forgot = p.run("upgrade-postgres", "--forget-old", "--yes", "--json")
        assert forgot.returncode == 0, forgot.stderr
    finally:
        config.write_text("")


def test_a_load_that_fails_half_way_leaves_the_old_cluster_serving(project: Project) -> None:
    p = project
    before = _fresh_15(p)
    # The failpoint waits 20 s, then the upgrade goes on: time to make the conflict.
    env = {"RECOVERCTL_FAILPOINT": "upgrade.new_cluster", "RECOVERCTL_FAILPOINT_SECONDS": "20"}
    proc = _start(p, env)
    _wait_for(proc, "failpoint upgrade.new_cluster reached")
    # A role of the same name made in the new cluster: pg_dumpall's CREATE ROLE conflicts.
    new = p.client.containers.get(f"{p.name}-upgrade-db")
    code, out = new.exec_run(
        ["psql", "-U", p.env["POSTGRES_USER"], "-d", "postgres", "-c", "CREATE ROLE reader"],
        user="postgres",
    )
    assert code == 0, out
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 1, stderr
    error = json.loads(stdout)["error"]
    assert error["code"] == "upgrade_failed"
    assert "The old cluster (PostgreSQL 15) serves again, with the app." in error["message"]
    assert _major(p) == 15 and p.checksum() == before
    assert f"{p.name}_db-data-17" not in _volumes(p)
    assert not p.client.containers.list(all=True, filters={"name": f"{p.name}-upgrade-db"})
    assert not (p.root / ".recoverctl" / f"upgrade-{p.name}.json").exists()
    p.wait_healthy()
    status, _ = p.get("/healthz")
    assert status == 200


def test_a_new_cluster_that_does_not_start_leaves_the_old_one_serving(project: Project) -> None:
    p = project
    before = _fresh_15(p)
    # An image that says 17 and carries no PostgreSQL: the new cluster's container exits.
    p.client.images.get(os.environ["PYTHON_IMAGE"]).tag("recoverctl-test/broken", "17")
    try:
        done = p.run("upgrade-postgres", "--to", "17", "--image", "recoverctl-test/broken:17",
                     "--yes", "--json")  # fmt: skip
    finally:
        p.client.images.remove("recoverctl-test/broken:17")
    assert done.returncode == 1, done.stderr
    error = _json(done)["error"]
    assert error["code"] == "upgrade_failed"
    # The engine refuses to start it ("postgres": executable file not found), said as is.
    assert f"start container {p.name}-upgrade-db" in error["message"], error
    assert error["message"].endswith("The old cluster (PostgreSQL 15) serves again, with the app.")
    assert _major(p) == 15 and p.checksum() == before
    assert f"{p.name}_db-data-17" not in _volumes(p)
    assert _env_file(p)["POSTGRES_IMAGE"] == OLD and "POSTGRES_VOLUME" not in _env_file(p)
    assert not p.client.containers.list(all=True, filters={"name": f"{p.name}-upgrade-db"})
    p.wait_healthy()


def test_another_database_in_the_cluster_is_refused(project: Project) -> None:
    p = project
    _fresh_15(p)
    p.sql("CREATE DATABASE side_app", "postgres")
    done = p.run("upgrade-postgres", "--to", "17", "--yes", "--json")
    assert done.returncode == 1, done.stderr
    error = _json(done)["error"]
    assert error["code"] == "upgrade_refused" and "side_app" in error["message"], error
    assert _major(p) == 15 and f"{p.name}_db-data-17" not in _volumes(p)


def test_a_volume_of_the_new_name_made_by_someone_else_is_refused_and_kept(
    project: Project,
) -> None:
    p = project
    before = _fresh_15(p)
    volume = f"{p.name}_db-data-17"
    labels = {"com.docker.compose.project": p.name, "com.docker.compose.volume": "db-data-17"}
    p.client.volumes.create(volume, labels=labels)
    p.client.containers.run(
        OLD, ["sh", "-c", "echo theirs > /data/mark"], entrypoint=[], remove=True,
        volumes={volume: {"bind": "/data", "mode": "rw"}},
    )  # fmt: skip
    try:
        done = p.run("upgrade-postgres", "--to", "17", "--yes", "--json")
        assert done.returncode == 1, done.stderr
        error = _json(done)["error"]
        assert error["code"] == "upgrade_refused", error
        assert f"Volume {volume} exists already" in error["message"], error
        mark = p.client.containers.run(
            OLD, ["cat", "/data/mark"], entrypoint=[], remove=True,
            volumes={volume: {"bind": "/data", "mode": "ro"}},
        )  # fmt: skip
        assert bytes(mark).decode().strip() == "theirs"
        assert _major(p) == 15 and p.checksum() == before
        assert not (p.root / ".recoverctl" / f"upgrade-{p.name}.json").exists()
    finally:
        p.client.volumes.get(volume).remove(force=True)


def test_doctor_reads_the_volumes_major_when_the_image_refuses_it(
    project: Project, new_image: str
) -> None:
    p = project
    before = _fresh_15(p)
    env_file = p.root / ".env"
    text = env_file.read_text()
    env_file.write_text(text.replace(f"POSTGRES_IMAGE={OLD}", f"POSTGRES_IMAGE={new_image}"))
    try:
        up = p.run("up", RECOVERCTL_UP_TIMEOUT="8s")
        assert up.returncode != 0, up.stdout  # 17 refuses the 15 data directory, and exits
        doctor = p.run("doctor", "--json")
        checks = {c["name"]: c for c in _json(doctor)["result"]["checks"]}
        found = checks["postgres.version"]
        assert found["status"] == "fail", found
        assert found["evidence"].startswith("the data directory is PostgreSQL 15, and compose "
                                            f"would start {new_image}"), found  # fmt: skip
        assert not p.client.containers.list(all=True, filters={"name": f"{p.name}-doctor"})
    finally:
        env_file.write_text(text)
    up = p.run("up")
    assert up.returncode == 0, up.stderr
    assert _major(p) == 15 and p.checksum() == before


def test_a_disk_too_small_is_refused_before_anything(project: Project) -> None:
    p = project
    _fresh_15(p, tmpfs_mb=256)
    p.sql("CREATE TABLE ballast AS SELECT g, repeat('x', 900) AS pad FROM generate_series(1, 60000) g")
    p.sql("CHECKPOINT")  # its WAL recycled: the small disk holds the data, not the log
    before = p.checksum()
    backups = p.backups()
    done = p.run("upgrade-postgres", "--to", "17", "--yes", "--json")
    assert done.returncode == 1, done.stderr
    error = _json(done)["error"]
    assert error["code"] == "disk_full", error
    assert "MiB free; the upgrade needs" in error["message"]
    assert p.backups() == backups  # refused in preflight: not even the backup was taken
    assert _major(p) == 15 and p.checksum() == before
    assert f"{p.name}_db-data-17" not in _volumes(p)


# Each step the upgrade can be stopped at, with its signal (both at the app's stop).
STOPS = [
    ("upgrade.backed_up", signal.SIGTERM),
    ("upgrade.new_cluster", signal.SIGINT),
    ("upgrade.app_stopped", signal.SIGINT),
    ("upgrade.app_stopped", signal.SIGTERM),
    ("upgrade.loaded", signal.SIGTERM),
    ("upgrade.switched", signal.SIGINT),
]


@pytest.mark.parametrize(("failpoint", "sig"), STOPS)
def test_interrupted_at_each_step_the_old_cluster_serves(
    project: Project, failpoint: str, sig: signal.Signals
) -> None:
    p = project
    before = _fresh_15(p)
    backups = p.backups()
    env = {"RECOVERCTL_FAILPOINT": failpoint, "RECOVERCTL_FAILPOINT_SECONDS": "120"}
    proc = _start(p, env)
    _wait_for(proc, f"failpoint {failpoint} reached")
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), stderr
    error = json.loads(stdout)["error"]
    assert "old cluster (PostgreSQL 15)" in error["message"], error
    assert "serves again" in error["message"], error
    assert _major(p) == 15 and p.checksum() == before
    assert _env_file(p)["POSTGRES_IMAGE"] == OLD and "POSTGRES_VOLUME" not in _env_file(p)
    assert f"{p.name}_db-data-17" not in _volumes(p)
    assert not p.client.containers.list(all=True, filters={"name": f"{p.name}-upgrade-db"})
    assert not (p.root / ".recoverctl" / f"upgrade-{p.name}.json").exists()
    # The rollback point taken before the stop stays, whole: a backup like any other.
    made = set(p.backups()) - set(backups)
    assert any(name + ".json" in made for name in made), made
    p.wait_healthy()
    status, _ = p.get("/healthz")
    assert status == 200


def test_kill_9_half_way_is_undone_by_the_next_run(project: Project) -> None:
    p = project
    before = _fresh_15(p)
    env = {"RECOVERCTL_FAILPOINT": "upgrade.app_stopped", "RECOVERCTL_FAILPOINT_SECONDS": "120"}
    proc = _start(p, env)
    _wait_for(proc, "failpoint upgrade.app_stopped reached")
    proc.kill()
    proc.communicate(timeout=60)
    doctor = p.run("doctor", "--json")
    checks = {c["name"]: c for c in _json(doctor)["result"]["checks"]}
    assert checks["postgres.upgrade"]["status"] == "fail"
    assert "stopped half-way (app_stopped)" in checks["postgres.upgrade"]["evidence"]
    back = p.run("upgrade-postgres", "--rollback", "--yes", "--json")
    assert back.returncode == 0, back.stderr
    assert _json(back)["result"]["outcome"] == "undone"
    assert _major(p) == 15 and p.checksum() == before
    assert f"{p.name}_db-data-17" not in _volumes(p)
    p.wait_healthy()


def _start(p: Project, extra: dict[str, str]) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "RECOVERCTL_PROJECT_NAME": p.name,
        "RECOVERCTL_CONFIG": str(p.root / "recoverctl-config.toml"),
        **extra,
    }
    env.pop("POSTGRES_IMAGE", None)
    env.pop("RECOVERCTL_PROJECT_DIR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "recoverctl", "upgrade-postgres", "--to", "17", "--yes", "--json"],
        cwd=p.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for(proc: subprocess.Popen[str], line: str, timeout: float = 600) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        got = proc.stderr.readline()
        if not got:
            break
        seen.append(got)
        if line in got:
            return
    proc.kill()
    raise AssertionError(f"never saw {line!r}: {''.join(seen)[-2000:]}")
