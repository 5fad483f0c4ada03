"""A throwaway copy of the vault project under its own compose project, driven by recoverctl.

Made as the e2e tests make theirs (tests/projectcopy.py).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.projectcopy import copy_project, env_values, write_env_file

from bench import measure

COMPOSE_FILE = "docker-compose.dev.yml"
DB_USER = "vault"
DB_NAME = "vault"


def recoverctl_executable() -> str:
    """The recoverctl beside this interpreter (.venv/bin/recoverctl), else the one on PATH."""
    beside = Path(sys.executable).with_name("recoverctl")
    if beside.is_file():
        return str(beside)
    found = shutil.which("recoverctl")
    if found is None:
        raise SystemExit("recoverctl is not installed: run `make venv` first.")
    return found


class BenchStack:
    def __init__(self, root: Path, project: str, images: Mapping[str, str]):
        self.root = root
        self.project = project
        self.images = dict(images)
        self.recoverctl_bin = recoverctl_executable()
        self._db: str | None = None

    # --- the project on disk -----------------------------------------------------------

    @classmethod
    def create(cls, root: Path, project: str, images: Mapping[str, str]) -> BenchStack:
        copy_project(root)
        stack = cls(root, project, images)
        write_env_file(root / ".env", env_values(images, debug=True))
        return stack

    @property
    def env(self) -> dict[str, str]:
        """The caller's environment, minus every RECOVERCTL_* setting but the project name."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECOVERCTL_")}
        env["RECOVERCTL_PROJECT_NAME"] = self.project
        return env

    # --- commands ----------------------------------------------------------------------

    def recoverctl(self, *args: str, check: bool = True, timeout: float = 3600) -> measure.Run:
        return measure.run(
            [self.recoverctl_bin, *args],
            cwd=self.root,
            env=self.env,
            check=check,
            timeout=timeout,
            what="recoverctl " + " ".join(args),
        )

    def recoverctl_json(self, *args: str, timeout: float = 3600) -> tuple[measure.Run, Any]:
        done = self.recoverctl(*args, "--json", timeout=timeout)
        return done, json.loads(done.stdout)["result"]

    def shell(self, command: str, *, check: bool = True, timeout: float = 3600) -> measure.Run:
        """A playbook command line, run by bash (pipefail) in the project folder."""
        return measure.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=self.root,
            env=self.env,
            check=check,
            timeout=timeout,
            what=command,
        )

    @property
    def db(self) -> str:
        """The db service's container name."""
        if self._db is None:
            done = measure.run(
                ["docker", "ps", "--format", "{{.Names}}",
                 "--filter", f"label=com.docker.compose.project={self.project}",
                 "--filter", "label=com.docker.compose.service=db"],
                cwd=self.root,
            )  # fmt: skip
            names = done.stdout.split()
            if not names:
                raise RuntimeError(f"no running db container in {self.project}")
            self._db = names[0]
        return self._db

    def compose_prefix(self) -> str:
        return f"docker compose -p {shlex.quote(self.project)} -f {COMPOSE_FILE}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = measure.run(
            ["docker", "exec", self.db, "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1",
             "-U", DB_USER, "-d", database, "-c", sql],
            cwd=self.root,
            what=f"psql -c {sql!r}",
        )  # fmt: skip
        return done.stdout.strip()

    def docker_exec(self, *argv: str, timeout: float = 3600) -> measure.Run:
        return measure.run(
            ["docker", "exec", self.db, *argv],
            cwd=self.root,
            timeout=timeout,
            what=" ".join(argv),
        )

    # --- lifecycle ---------------------------------------------------------------------

    def up(self) -> measure.Run:
        return self.recoverctl("up", timeout=1800)

    def down(self) -> measure.Run:
        self._db = None
        return self.recoverctl("down", "--volumes", "--yes", check=False, timeout=600)

    def leftovers(self) -> list[str]:
        done = measure.run(
            ["docker", "ps", "-a", "--format", "{{.Names}}",
             "--filter", f"label=com.docker.compose.project={self.project}"],
            cwd=self.root,
            check=False,
        )  # fmt: skip
        return done.stdout.split()
