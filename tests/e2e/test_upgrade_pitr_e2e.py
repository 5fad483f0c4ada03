"""upgrade-postgres with point-in-time recovery on, for real: a PostgreSQL 15 stack that
archives to a folder repository moved to 17, its pgBackRest stanza upgraded and a full
backup taken at once; a restore to a point on 17; a rollback that puts archiving back on
15; and the stanza step failing after the switch (the repository made read-only at that
moment): 17 serves, the error says so, and the same command run again finishes it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from recoverctl.adapters import seal
from recoverctl.cli import contract
from tests.e2e.conftest import Project, make_project, tear_down
from tests.e2e.test_faults_e2e import wait_for
from tests.e2e.test_upgrade_e2e import OLD, _env_file, _major, new_image

pytestmark = pytest.mark.e2e

__all__ = ["new_image"]  # the fixture, shared with the upgrade's own tests

NAME = "rctl-e2e-uppitr"


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient, new_image: str
) -> Iterator[tuple[Project, Path]]:
    root = tmp_path_factory.mktemp("uppitr")
    p = make_project(root / "project", NAME, docker_client)
    p.unset = ("POSTGRES_IMAGE",)
    p.force_clean()
    nas = root / "nas"
    nas.mkdir()
    recipient = seal.new_identity(root / "identity.txt")
    (p.root / "recoverctl-config.toml").write_text(
        f'[encryption]\nrecipients = ["{recipient}"]\n\n'
        f'[targets.nas]\ntype = "dir"\npath = "{nas}"\n\n'
        '[pitr]\nrepos = ["nas"]\narchive_timeout = "2s"\nio_timeout = "3s"\n'
    )
    p.write_env(".env", POSTGRES_IMAGE=OLD)
    yield p, nas / NAME / "dev" / "pgbackrest"
    tear_down(p)


def _ok(p: Project, *args: str) -> dict[str, Any]:
    done = p.run(*args, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    document = json.loads(done.stdout)
    contract.validate(document)
    return dict(document["result"])


def _canary(p: Project, value: str) -> None:
    p.sql(f"INSERT INTO canary VALUES ('{value}')")


def _canaries(p: Project) -> set[str]:
    return set(p.sql("SELECT v FROM canary").split())


def _files(folder: Path) -> set[str]:
    return {str(f.relative_to(folder)) for f in folder.rglob("*") if f.is_file()}


def _read_only(repo: Path) -> dict[Path, int]:
    """The stanza's info files and folders made read-only; their modes before."""
    modes: dict[Path, int] = {}
    for folder in (repo / "archive" / "vault", repo / "backup" / "vault"):
        for path in (folder, *folder.glob("*.info*")):
            modes[path] = stat.S_IMODE(path.stat().st_mode)
            path.chmod(0o555 if path.is_dir() else 0o444)
    return modes


def test_the_stanza_follows_the_upgrade_and_the_rollback(project: tuple[Project, Path]) -> None:
    p, repo = project
    assert p.run("up").returncode == 0
    enabled = _ok(p, "pitr", "enable", "--yes")
    assert len(enabled["full_backups"]) == 1
    p.sql("CREATE TABLE canary (v text PRIMARY KEY)")
    _canary(p, "on-15")
    plan = _ok(p, "upgrade-postgres", "--to", "17", "--dry-run")
    assert any("move the pgBackRest stanza to PostgreSQL 17" in line for line in plan["plan"])

    # The stanza step fails after the switch: 17 serves, and the error says so first.
    env = {
        **os.environ,
        "RECOVERCTL_PROJECT_NAME": p.name,
        "RECOVERCTL_CONFIG": str(p.root / "recoverctl-config.toml"),
        "RECOVERCTL_FAILPOINT": "upgrade.checked",
        "RECOVERCTL_FAILPOINT_SECONDS": "3",
    }
    env.pop("POSTGRES_IMAGE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "recoverctl", "upgrade-postgres", "--to", "17", "--yes", "--json"],
        cwd=p.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(proc, "failpoint upgrade.checked reached", timeout=600)
    modes = _read_only(repo)
    stdout, stderr = proc.communicate(timeout=600)
    for path, mode in modes.items():
        path.chmod(mode)
    assert proc.returncode == 1, stderr
    document = json.loads(stdout)
    contract.validate(document)
    error = document["error"]
    assert error["code"].startswith("pitr_"), error
    assert error["message"].startswith("PostgreSQL 17 (") and "serves, switched and checked, but archiving does not follow it yet" in error["message"], error
    assert "again to finish" in error["hint"], error
    assert _major(p) == 17 and _canaries(p) == {"on-15"}
    journal = json.loads((p.root / ".recoverctl" / f"upgrade-{p.name}.json").read_text())
    assert journal["phase"] == "switched"

    finished = _ok(p, "upgrade-postgres", "--to", "17", "--yes")
    assert finished["outcome"] == "finished"
    (taken,) = finished["pitr_backups"]
    label = taken.removeprefix("nas: ")
    status = _ok(p, "pitr", "status")
    assert status["ok"] and not status["archive"]["failing"], status
    (held,) = status["repos"]
    # Only 17's backups make its window: 15's stay in the repository, for 15's image.
    assert [b["label"] for b in held["backups"]] == [label], held
    assert {f.name for f in (repo / "archive" / "vault").iterdir() if f.is_dir()} == {"15-1", "17-2"}

    _canary(p, "on-17")
    restored = _ok(p, "restore", "--to-time", "latest", "--yes")
    assert restored["point_in_time"]["base_backup"] == label
    assert _canaries(p) == {"on-15", "on-17"}

    back = _ok(p, "upgrade-postgres", "--rollback", "--yes")
    assert back["outcome"] == "rolled_back" and len(back["pitr_backups"]) == 1
    assert _major(p) == 15 and _env_file(p)["POSTGRES_IMAGE"] == OLD
    on_17 = _files(repo / "archive" / "vault" / "17-2")
    _canary(p, "on-15-again")
    status = _ok(p, "pitr", "status")
    assert status["ok"] and not status["archive"]["failing"], status
    restored = _ok(p, "restore", "--to-time", "latest", "--yes")
    # The writes on 17 are in the dump the rollback took aside, not in 15's archive.
    assert _canaries(p) == {"on-15", "on-15-again"}
    # 15 archives into its own history again, never into 17's.
    assert _files(repo / "archive" / "vault" / "17-2") == on_17
    again = _ok(p, "upgrade-postgres", "--rollback")
    assert again["outcome"] == "nothing_to_do" and again["pitr_backups"] == []
