"""e2e: the whole cluster back on a new machine from a pgBackRest repository alone.

A "server" archives to a folder repository (pitr enable, its passphrase sealed off-site with
the env files), commits canary rows, and is gone with its volume. A fresh copy of the
project with only the settings file (the target, [pitr], the identity) runs `recover
--target nas --to-time latest`: the env files come back, pgBackRest fills the db service's
own volume, the db starts on it with archiving on, the stack comes up. The last canary is
there, the cluster archives (on a timeline of its own) and `pitr status` is ok."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from recoverctl.adapters import seal
from recoverctl.cli import contract
from tests.e2e.conftest import Project, make_project, tear_down

pytestmark = pytest.mark.e2e

NAME = "rctl-e2e-pitrnm"
ARCHIVE_TIMEOUT = 2  # seconds
# The timeline the server writes now (a checkpoint's may still name the one before).
TIMELINE_SQL = "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"


def _clean(client: docker.DockerClient) -> None:
    for project in (NAME, f"{NAME}-pitr"):
        label: dict[str, Any] = {"label": f"com.docker.compose.project={project}"}
        for c in client.containers.list(all=True, filters=label):
            c.remove(force=True, v=True)
        for n in client.networks.list(filters=label):
            n.remove()
        for v in client.volumes.list(filters=label):
            v.remove(force=True)


def _ok(project: Project, *args: str) -> dict[str, Any]:
    done = project.run(*args, "--json")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    document = json.loads(done.stdout)
    contract.validate(document)
    return dict(document["result"])


@pytest.fixture
def root(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[Path]:
    _clean(docker_client)
    yield tmp_path
    for folder in ("new", "server"):
        if (tmp_path / folder).is_dir():
            tear_down(Project(tmp_path / folder, NAME, docker_client))
    _clean(docker_client)


def test_the_whole_cluster_comes_back_on_a_new_machine_from_the_repository(
    root: Path, docker_client: docker.DockerClient
) -> None:
    nas = root / "nas"
    nas.mkdir()
    safe = root / "safe"
    safe.mkdir(mode=0o700)
    identity = safe / "identity.txt"
    recipient = seal.new_identity(identity)
    settings = (
        f'[recoverctl]\nidentity_file = "{identity}"\n\n'
        f'[encryption]\nrecipients = ["{recipient}"]\n\n'
        f'[targets.nas]\ntype = "dir"\npath = "{nas}"\n\n'
        f'[pitr]\nrepos = ["nas"]\narchive_timeout = "{ARCHIVE_TIMEOUT}s"\nio_timeout = "3s"\n'
    )

    # --- the server -------------------------------------------------------------------
    server = make_project(root / "server", NAME, docker_client)
    server.write_env(".env")
    (server.root / "recoverctl-config.toml").write_text(settings)
    up = server.run("up")
    assert up.returncode == 0, up.stderr
    enabled = _ok(server, "pitr", "enable", "--yes")
    assert enabled["env_push"]["ok"] and ".env.pitr" in enabled["env_push"]["files"]
    server.sql("CREATE TABLE canary (v text PRIMARY KEY)")
    for n in range(3):
        server.sql(f"INSERT INTO canary VALUES ('row-{n}')")
    server.sql("INSERT INTO canary VALUES ('last')")
    old_timeline = server.sql(TIMELINE_SQL).strip()
    time.sleep(ARCHIVE_TIMEOUT + 5)  # the last commit's segment switched and archived
    server.force_clean()  # the machine is gone: containers, network, volume
    assert server.leftovers() == {"containers": [], "networks": [], "volumes": []}

    # --- the new machine: the project, the settings file, the identity ---------------------
    new = make_project(root / "new", NAME, docker_client)
    (new.root / "recoverctl-config.toml").write_text(settings)
    assert not (new.root / ".env").exists() and not (new.root / ".env.pitr").exists()
    t0 = time.monotonic()
    done = new.run(
        "recover", "--target", "nas", "--identity", str(identity), "--to-time", "latest",
        "--yes", "--json",
    )  # fmt: skip
    wall = time.monotonic() - t0
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    document = json.loads(done.stdout)
    contract.validate(document)
    result = document["result"]
    print(
        f"\nwhole-cluster recovery on a new machine: serving after {result['serving_seconds']} s "
        f"(cluster restored and promoted in {result['point_in_time']['restore_seconds']} s; "
        f"{wall:.1f} s wall)"
    )
    assert result["ok"] and result["restored_from"] is None
    assert {Path(p).name for p in result["env_restored"]} >= {".env", ".env.pitr"}
    point = result["point_in_time"]
    assert point["repo"] == "nas" and point["asked_at"] is None and point["base_backup"]
    assert point["reached"] is not None
    new.env = dict(
        line.split("=", 1) for line in (new.root / ".env").read_text().splitlines() if "=" in line
    )
    assert new.env["POSTGRES_PASSWORD"] == server.env["POSTGRES_PASSWORD"]

    # The last commit is there, the stack is healthy, and this cluster is the one archiving.
    assert new.sql("SELECT v FROM canary ORDER BY v").split() == ["last", "row-0", "row-1", "row-2"]
    new.wait_healthy(timeout=30)
    assert new.sql("SHOW archive_mode").strip() == "on"
    # The db service's own flag decides, and pgBackRest's restore left no archive_mode behind.
    row = new.sql("SELECT setting, source FROM pg_settings WHERE name = 'archive_mode'")
    assert row.strip().split("|") == ["on", "command line"]
    assert "archive_mode" not in new.sql("SELECT pg_read_file('postgresql.auto.conf')")
    assert new.sql("SELECT pg_is_in_recovery()").strip() == "f"
    timeline = new.sql(TIMELINE_SQL).strip()
    assert int(timeline, 16) > int(old_timeline, 16)
    status = _ok(new, "pitr", "status")
    assert status["ok"] and status["archive"]["archive_mode"] == "on"
    assert not status["archive"]["failing"]
    # Its own timeline's WAL reached the repository, beside the old server's.
    archive = nas / NAME / "dev" / "pgbackrest" / "archive" / "vault"
    assert list(archive.rglob(f"{timeline}*")), "the recovered cluster archives nothing"
    # The volume is compose's own: compose took it over (down --volumes removes it).
    volume = docker_client.volumes.get(f"{NAME}_db-data")
    assert volume.attrs["Labels"]["com.docker.compose.project"] == NAME
    assert result["serving_seconds"] < 180
