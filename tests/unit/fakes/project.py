"""A project on disk over the fakes: the compose and env files, the real session over
the fake engine and db, a fake clock for the waits, and backups as `recoverctl backup`
leaves them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from recoverctl.adapters import compose, process
from recoverctl.adapters.engine import Engine
from recoverctl.adapters.pgexec import Db
from recoverctl.core.commands import Argv
from recoverctl.services.session import StackSession
from recoverctl.settings import Settings

from .database import FakeDb
from .dumps import Tables
from .engine import FakeEngine


class FakeSession(StackSession):
    """The real session (settings, compose file, secrets), over the fake engine and db."""

    def __init__(
        self,
        settings: Settings,
        engine: FakeEngine,
        db: FakeDb,
        *,
        connect: Callable[[], Engine] | None = None,
    ):
        super().__init__(settings, connect=connect or (lambda: engine))
        self.fake_db = db

    def db(self) -> Db:
        if self._db is None:
            project = self.project  # as the real one: a broken compose file comes first
            self.engine.service_container(project, "db")  # no container, or not running
            self._db = self.fake_db
        return self._db


COMPOSE_YML = """\
name: vault-dev
services:
  db:
    image: postgres:16
  backend:
    image: vault-backend
    depends_on:
      db:
        condition: service_healthy
  frontend:
    image: vault-frontend
    depends_on: [backend]
"""
ENV_SECRET = "s3cret-Pa55word-xyz"
ENV_FILE = f"""\
POSTGRES_DB=vault
POSTGRES_USER=vault
POSTGRES_PASSWORD={ENV_SECRET}
DJANGO_SECRET_KEY=django-insecure-0123456789abcdef
DEBUG=1
"""


def app_tables(users: int = 2, secrets: int = 3) -> Tables:
    """The vault's tables, small."""
    return {
        "public.auth_user": [f"{i}\tuser{i}" for i in range(1, users + 1)],
        "public.vault_userkey": [f"{i}\tkey-of-{i}" for i in range(1, users + 1)],
        "public.vault_secret": [f"{i}\tciphertext-{i}" for i in range(1, secrets + 1)],
        "public.django_migrations": ["auth\t0012_alter_user_first_name", "vault\t0003_secret"],
    }


class FakeClock:
    """time for a module that waits: sleep() advances monotonic() instead of waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class FakeStack:
    settings: Settings
    engine: FakeEngine
    db: FakeDb
    clock: FakeClock
    compose_runs: list[Argv] = field(default_factory=list)
    compose_error: BaseException | None = None

    def session(self, *, connect: Callable[[], Engine] | None = None) -> FakeSession:
        return FakeSession(self.settings, self.engine, self.db, connect=connect)

    @property
    def backups(self) -> Path:
        return self.settings.backup_dir

    def files(self) -> list[str]:
        """The backups folder's entries, sorted."""
        if not self.backups.is_dir():
            return []
        return sorted(p.name for p in self.backups.iterdir())

    def app_states(self) -> dict[str, str]:
        return {
            s: self.engine.of(s)[0].status for s in ("backend", "frontend") if self.engine.of(s)
        }


def make_stack(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tables: Tables | None = None,
    *,
    up_timeout: float = 30,
    psql: str = "16.10",
    database: str = "vault",
) -> FakeStack:
    """A project folder (compose file, env file, backups folder), the fake engine with db,
    backend and frontend running, the lock folder in tmp_path, and the waits of restore and
    stack on a fake clock. tables=None: the live database does not exist."""
    from recoverctl.adapters import http
    from recoverctl.services import restore as restore_service
    from recoverctl.services import stack as stack_service

    root = tmp_path / "project"
    root.mkdir()
    (root / "docker-compose.dev.yml").write_text(COMPOSE_YML)
    (root / ".env").write_text(ENV_FILE)
    settings = Settings(
        project_dir=root,
        compose_file=root / "docker-compose.dev.yml",
        env_file=root / ".env",
        backup_dir=root / "backups",
        up_timeout=timedelta(seconds=up_timeout),
    )
    monkeypatch.setenv("RECOVERCTL_LOCK_DIR", str(tmp_path / "run"))
    clock = FakeClock()
    monkeypatch.setattr(restore_service, "time", clock)
    monkeypatch.setattr(stack_service, "time", clock)
    engine = FakeEngine()
    db = FakeDb(engine, tables, database=database, psql=psql)
    engine.add("backend", port=18000)
    engine.add("frontend", health=None)
    stack = FakeStack(settings, engine, db, clock)

    def healthz(port: int, path: str, timeout: float = 10) -> http.Reply:
        backend = engine.of("backend")
        return http.Reply(200 if backend and backend[0].status == "running" else 0, "")

    real_run = process.run

    def run(argv: Sequence[str], **kwargs: Any) -> process.Completed:
        if tuple(argv[:2]) != ("docker", "compose"):
            return real_run(argv, **kwargs)  # git and the like run for real
        stack.compose_runs.append(tuple(argv))
        assert "up" in argv, f"only compose up is faked: {argv}"
        if stack.compose_error is not None:
            raise stack.compose_error
        engine.up()
        return process.Completed(tuple(argv), 0, "", "")

    monkeypatch.setattr(http, "get", healthz)
    monkeypatch.setattr(compose, "detect_cli", lambda: ("docker", "compose"))
    monkeypatch.setattr(process, "run", run)
    return stack
