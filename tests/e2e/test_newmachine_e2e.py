"""A new machine, as a user meets it: a clean clone, `make up`, the vault answering; and a
checkout older than the backup's data, refused by restore and recover until told.

The clone is of the repository's HEAD (commit before running this), under its own compose
project and a free loopback port, so it never meets another test's stack or a user's."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from recoverctl.cli import contract
from tests.e2e.conftest import REPO, Project, init_git, make_project, tear_down

pytestmark = pytest.mark.e2e

CLONE_PROJECT = "rctl-e2e-newmachine"
FUTURE = "0002_e2e_future"
FUTURE_MIGRATION = """from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("vault", "0001_initial")]
    operations = [migrations.RunSQL("SELECT 1", migrations.RunSQL.noop)]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def user_env(tmp: Path, project: str) -> dict[str, str]:
    """A user's shell: none of the test run's image or make settings leak into the clone."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("POSTGRES_IMAGE", "PYTHON_IMAGE", "VAULT_HTTP_PORT", "VIRTUAL_ENV")
        and not k.startswith(("MAKE", "MFLAGS", "RECOVERCTL_"))
    }
    env["RECOVERCTL_PROJECT_NAME"] = project  # the one thing a user would not set
    env["RECOVERCTL_CONFIG"] = str(tmp / "no-config.toml")
    return env


def healthz(port: int) -> tuple[int, dict[str, str]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=30) as reply:
        return reply.status, json.loads(reply.read())


def remove_project(client: docker.DockerClient, project: str) -> None:
    label: dict[str, Any] = {"label": f"com.docker.compose.project={project}"}
    for c in client.containers.list(all=True, filters=label):
        c.remove(force=True, v=True)
    for n in client.networks.list(filters=label):
        n.remove()
    for v in client.volumes.list(filters=label):
        v.remove(force=True)
    for image in client.images.list(filters=label):
        for tag in image.tags:
            client.images.remove(tag)


@pytest.fixture
def clone(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[Path]:
    root = tmp_path / "vault"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(root)], check=True)
    remove_project(docker_client, CLONE_PROJECT)
    yield root
    subprocess.run(
        [str(root / ".venv/bin/recoverctl"), "down", "--volumes", "--yes"],
        cwd=root,
        env=user_env(tmp_path, CLONE_PROJECT),
        capture_output=True,
        timeout=300,
        check=False,
    )
    remove_project(docker_client, CLONE_PROJECT)  # and the backend image it built


def test_make_up_on_a_clean_clone(clone: Path, tmp_path: Path) -> None:
    env = user_env(tmp_path, CLONE_PROJECT)
    port = free_port()
    assert not (clone / ".env").exists() and not (clone / ".venv").exists()

    up = subprocess.run(
        ["make", "up", f"PORT={port}"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    url = f"http://127.0.0.1:{port}/"
    assert f"make up: the vault's dev stack is up at {url}" in up.stdout
    assert "make test" in up.stdout.rsplit("next:", 1)[1]
    assert healthz(port) == (200, {"status": "ok", "database": "ok", "migrations": "ok"})

    # init wrote .env: private, random, and doctor's env checks pass with the stack running.
    env_file = clone / ".env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert "change-me" not in env_file.read_text()
    recoverctl = str(clone / ".venv/bin/recoverctl")

    def run(*args: str, project: str = CLONE_PROJECT) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [recoverctl, *args], cwd=clone, env={**env, "RECOVERCTL_PROJECT_NAME": project},
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip

    doctor = run("doctor", "--only", "env", "--json")
    assert doctor.returncode == 0, doctor.stdout
    checks = {c["name"]: c["status"] for c in json.loads(doctor.stdout)["result"]["checks"]}
    assert set(checks.values()) == {"ok"}, checks

    # The prod env file for a host name; its doctor run is against a stack that is not up.
    init = run("init", "--prod", "--host", "vault.example.com", "--json")
    assert init.returncode == 0, init.stderr
    result = contract.validate(json.loads(init.stdout)).result
    assert result is not None and result.model_dump()["allowed_hosts"][0] == "vault.example.com"
    doctor = run("doctor", "--prod", "--only", "env", "--json", project=CLONE_PROJECT + "-prod")
    assert doctor.returncode == 0, doctor.stdout
    fails = [c for c in json.loads(doctor.stdout)["result"]["checks"] if c["status"] == "fail"]
    assert fails == []
    again = run("init")
    assert again.returncode == 1 and "init never overwrites it" in again.stderr

    # A second `make up` keeps the env file and leaves the stack serving.
    up = subprocess.run(
        ["make", "up"], cwd=clone, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    assert "make up: .env exists: kept as it is" in up.stdout
    assert healthz(port)[0] == 200


def test_without_root_the_step_that_needs_it_is_named() -> None:
    """No Docker on the machine, and no root to install it: make up says so and stops."""
    with tempfile.TemporaryDirectory() as tmp:
        # A PATH with no docker: what the script needs before it finds Docker missing.
        bin_dir = Path(tmp)
        bin_dir.chmod(0o755)
        for tool in ("dirname", "id", "python3"):
            found = Path("/usr/bin", tool)
            (bin_dir / tool).symlink_to(found if found.exists() else str(shutil.which(tool)))
        argv = [str(shutil.which("bash")), str(REPO / "scripts/test-env.sh"), "--up"]
        if os.getuid() == 0:
            argv = [str(shutil.which("runuser")), "-u", "nobody", "--", *argv]
        done = subprocess.run(
            argv, env={"PATH": tmp}, capture_output=True, text=True, timeout=60, check=False
        )
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "setup: error: need root to install docker.io (apt-get): run this again as root, "
        "or install them yourself"
    )


# --- the code that matches the data ------------------------------------------------------


@pytest.fixture
def checkout(tmp_path: Path, docker_client: docker.DockerClient) -> Iterator[Project]:
    project = make_project(tmp_path, "rctl-e2e-codematch", docker_client)
    project.force_clean()
    (project.root / "vault/vault/migrations" / f"{FUTURE}.py").write_text(FUTURE_MIGRATION)
    project.write_env(".env")
    init_git(project)
    yield project
    tear_down(project)
    remove_project(docker_client, project.name)  # and the backend image it built


def git(project: Project, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(project.root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return done.stdout.strip()


def test_a_checkout_older_than_the_data_is_refused(checkout: Project) -> None:
    project = checkout
    assert project.run("up").returncode == 0
    made = project.run("backup", "--json")
    assert made.returncode == 0, made.stderr
    backup = json.loads(made.stdout)["result"]["path"]
    manifest_path = Path(json.loads(made.stdout)["result"]["manifest"])
    manifest = json.loads(manifest_path.read_text())
    commit = git(project, "rev-parse", "HEAD")
    assert manifest["migrations"]["vault"] == FUTURE  # the database applied it at start
    assert manifest["code"] == {"commit": commit, "dirty": False, "migrations": {"vault": FUTURE}}

    # Today's code, without that migration: what a new machine's clone could be.
    git(project, "rm", "-q", f"vault/vault/migrations/{FUTURE}.py")
    git(project, "commit", "-qm", "drop the migration")
    databases = project.databases()

    refused = project.run("restore", backup, "--yes", "--json")
    document = json.loads(refused.stdout)
    assert (refused.returncode, document["error"]["code"]) == (1, "code_behind_data")
    name = Path(backup).name
    assert document["error"]["message"] == (
        f"Refusing to restore {name}: its data has migration vault.{FUTURE}, which this "
        "checkout lacks: the data is newer than the code. Nothing was changed."
    )
    assert f"git checkout {commit[:12]}" in document["error"]["hint"]
    assert "--allow-newer-data" in document["error"]["hint"]
    assert project.databases() == databases

    recovered = project.run("recover", "--from", backup, "--yes", "--json")
    document = json.loads(recovered.stdout)
    assert (recovered.returncode, document["error"]["code"]) == (1, "code_behind_data")

    allowed = project.run("restore", backup, "--yes", "--allow-newer-data")
    assert allowed.returncode == 0, allowed.stderr
    assert f"vault.{FUTURE}, which this checkout lacks" in allowed.stderr  # the plan's warning
    assert project.get("/healthz")[0] == 200

    # Back on the backup's commit, it restores with no flag.
    git(project, "checkout", "-q", commit)
    plain = project.run("restore", backup, "--yes")
    assert plain.returncode == 0, plain.stderr
    assert "checkout lacks" not in plain.stderr
