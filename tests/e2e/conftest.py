"""e2e: a real Docker engine, real compose, real PostgreSQL, the real vault container.

Never skipped: without an engine or the local images the run fails and says how to get them.
Each stack runs under its own compose project (rctl-e2e-*) in a copy of the project, so a
user's own stacks, env files and backups are never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker
import pytest

from tests.projectcopy import copy_project, env_values, write_env_file

if TYPE_CHECKING:
    from tests.e2e.vaultclient import Vault

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:
        pytest.fail(
            f"e2e needs a Docker engine and none answers ({exc}). "
            "Run `make test-env` (as root it installs and starts one).",
            pytrace=False,
        )
    for var in ("POSTGRES_IMAGE", "PYTHON_IMAGE"):
        image = os.environ.get(var)
        if not image:
            pytest.fail(f"{var} is not set: run the e2e tests through `make test`.", pytrace=False)
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            pytest.fail(f"{var}={image} does not exist: run `make test-env`.", pytrace=False)
    yield client
    client.close()


@dataclass
class Project:
    """A copy of the vault project on disk, driven by the real recoverctl CLI."""

    root: Path
    name: str
    client: docker.DockerClient
    env: dict[str, str] = field(default_factory=dict)
    # Variables of this process kept from recoverctl's (the upgrade's tests drop the
    # POSTGRES_IMAGE the suite exports: the env file names the stack's image there).
    unset: tuple[str, ...] = ()

    def run(
        self, *args: str, input: str | None = None, timeout: float = 900, **extra_env: str
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "RECOVERCTL_PROJECT_NAME": self.name,
            # Never the person's own settings file: each test says what it configures.
            "RECOVERCTL_CONFIG": str(self.root / "recoverctl-config.toml"),
            **extra_env,
        }
        env.pop("RECOVERCTL_PROJECT_DIR", None)
        for name in self.unset:
            env.pop(name, None)
        return subprocess.run(
            [sys.executable, "-m", "recoverctl", *args],
            cwd=self.root,
            env=env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def write_env(self, name: str, **overrides: str) -> Path:
        images = {v: os.environ[v] for v in ("POSTGRES_IMAGE", "PYTHON_IMAGE")}
        values = {**env_values(images, debug=name == ".env"), **overrides}
        self.env = values
        return write_env_file(self.root / name, values)

    def leftovers(self) -> dict[str, list[str]]:
        label: dict[str, Any] = {"label": f"com.docker.compose.project={self.name}"}
        return {
            "containers": [
                str(c.name) for c in self.client.containers.list(all=True, filters=label)
            ],
            "networks": [str(n.name) for n in self.client.networks.list(filters=label)],
            "volumes": [v.name for v in self.client.volumes.list(filters=label)],
        }

    def force_clean(self) -> None:
        """Last resort after a failed test: nothing of the project may outlive the run."""
        label: dict[str, Any] = {"label": f"com.docker.compose.project={self.name}"}
        for c in self.client.containers.list(all=True, filters=label):
            c.remove(force=True, v=True)
        for n in self.client.networks.list(filters=label):
            n.remove()
        for v in self.client.volumes.list(filters=label):
            v.remove(force=True)

    def container(self, service: str) -> Any:
        found = self.client.containers.list(
            all=True,
            filters={
                "label": [
                    f"com.docker.compose.project={self.name}",
                    f"com.docker.compose.service={service}",
                ]
            },
        )
        assert found, f"no {service} container in {self.name}"
        return found[0]

    def sql(self, statement: str, database: str | None = None) -> str:
        """Runs SQL in the db container as its POSTGRES_USER; fails the test on error."""
        db = self.container("db")
        code, out = db.exec_run(
            ["psql", "-U", self.env["POSTGRES_USER"], "-d", database or self.env["POSTGRES_DB"],
             "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", statement],
        )  # fmt: skip
        assert code == 0, out.decode()
        return str(out.decode())

    def checksum(self) -> dict[str, str]:
        """Every table's full content, hashed: equal before and after means nothing lost."""
        tables = self.sql(
            "SELECT pg_catalog.format('%I.%I', schemaname, tablename) FROM pg_catalog.pg_tables "
            "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
        ).split()
        return {
            t: self.one_row(
                f"SELECT count(*) || ':' || md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM {t} x"
            )
            for t in tables
        }

    def one_row(self, statement: str) -> str:
        """A query that returns exactly one row. Under load the engine may hand back a short
        exec's exit code without its output (seen: an empty answer to a count, exit 0):
        asked again then, up to three times, rather than compared as a value."""
        for _ in range(3):
            out = self.sql(statement).strip()
            if out:
                return out
            time.sleep(0.5)
        raise AssertionError(f"no row, three times, from: {statement}")

    def databases(self) -> list[str]:
        return self.sql("SELECT datname FROM pg_database ORDER BY 1", "postgres").split()

    def create_user(self, username: str, password: str) -> None:
        backend = self.container("backend")
        api = self.client.api
        exec_id = api.exec_create(
            backend.id, ["python", "manage.py", "vault_create_user", username, "--password-stdin"],
            stdin=True, stdout=True, stderr=True,
        )["Id"]  # fmt: skip
        sock = api.exec_start(exec_id, socket=True)
        raw: Any = getattr(sock, "_sock", sock)
        raw.sendall(password.encode() + b"\n")
        raw.shutdown(1)
        while raw.recv(4096):
            pass
        raw.close()
        assert api.exec_inspect(exec_id)["ExitCode"] == 0

    def backups(self, folder: Path | None = None) -> list[str]:
        where = folder or self.root / "backups"
        return sorted(p.name for p in where.iterdir()) if where.exists() else []

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ps = self.run("ps", "--json")
            if ps.returncode == 0 and json.loads(ps.stdout)["result"]["ready"]:
                return
            time.sleep(1)
        raise AssertionError(f"{self.name} did not become healthy")

    def http_port(self) -> int:
        ps = self.run("ps", "--json")
        assert ps.returncode == 0, ps.stderr
        status = json.loads(ps.stdout)["result"]
        backend = next(s for s in status["services"] if s["service"] == "backend")
        # "127.0.0.1:49153->8000/tcp"
        first = backend["ports"][0]
        host, _, rest = first.partition(":")
        assert host == "127.0.0.1", f"published beyond loopback: {first}"
        return int(rest.split("->")[0])

    def get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.http_port()}{path}"
        try:
            with urllib.request.urlopen(url, timeout=30) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()


def make_project(tmp: Path, name: str, client: docker.DockerClient) -> Project:
    return Project(root=copy_project(tmp), name=name, client=client)


def init_git(project: Project) -> None:
    """A real checkout: the repo's .gitignore, everything committed, as a user's would be."""
    shutil.copy(REPO / ".gitignore", project.root / ".gitignore")
    for args in (
        ["init", "-q"],
        ["add", "-A"],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"],
    ):
        subprocess.run(["git", "-C", str(project.root), *args], check=True)


def up_seeded(project: Project, *, git: bool = False) -> Vault:
    """A fresh stack for the project, up and healthy, with users, keys and secrets."""
    from tests.e2e.vaultclient import Vault

    project.force_clean()
    project.write_env(".env")
    if git:
        init_git(project)
    up = project.run("up")
    assert up.returncode == 0, up.stderr
    vault = Vault(project)
    vault.seed()
    return vault


def tear_down(project: Project) -> None:
    project.run("down", "--volumes", "--yes", "--no-safety-backup")
    project.force_clean()


@pytest.fixture(scope="module")
def dev_project(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    docker_client: docker.DockerClient,
) -> Iterator[Project]:
    # A compose project per module: two modules on two xdist workers never share one.
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").removesuffix("_e2e")
    name = f"rctl-e2e-dev-{module.replace('_', '-')}"
    project = make_project(tmp_path_factory.mktemp("dev"), name, docker_client)
    project.force_clean()
    project.write_env(".env")
    yield project
    tear_down(project)


@dataclass
class FaultReport:
    """Tallied by the fault-injection suite, printed as its last line."""

    injected: int = 0
    failed_safely: int = 0
    data_lost: int = 0
    misleading: int = 0

    def record(self, *, safe: bool, lost: bool = False, misleading: int = 0) -> None:
        self.injected += 1
        self.failed_safely += int(safe)
        self.data_lost += int(lost)
        self.misleading += misleading


FAULTS = FaultReport()
_FAULT_FIELDS = ("injected", "failed_safely", "data_lost", "misleading")


# Under pytest-xdist each worker tallies its own modules: a worker hands its tally over as
# it finishes, and the controller, which prints the line, adds them up.
def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["faults"] = {f: getattr(FAULTS, f) for f in _FAULT_FIELDS}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    tally = getattr(node, "workeroutput", {}).get("faults") or {}
    for f in _FAULT_FIELDS:
        setattr(FAULTS, f, getattr(FAULTS, f) + int(tally.get(f, 0)))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FAULTS.injected:
        terminalreporter.write_line(
            f"fault-injection: {FAULTS.injected} faults injected, {FAULTS.failed_safely} "
            f"operations failed safely, {FAULTS.data_lost} data lost, "
            f"{FAULTS.misleading} misleading files left"
        )
