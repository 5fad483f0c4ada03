"""init through the CLI: the file it writes (mode, secrets, images, hosts), what it refuses,
and doctor's env checks passing on the result. The engine is a fake here where it
matters (which images exist, whether a registry answers); tests/e2e use the real one."""

from __future__ import annotations

import io
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from dotenv import dotenv_values
from typer.testing import CliRunner

from recoverctl.adapters.engine import Engine
from recoverctl.cli import contract
from recoverctl.cli import init as init_cli
from recoverctl.cli.app import app
from recoverctl.core import envgen
from recoverctl.errors import EngineError

# New stacks get PostgreSQL 17, pinned in the env file (the compose default stays 16).
OFFICIAL = ("postgres:17", "python:3.12-slim")
LOCAL = tuple(envgen.LOCAL_IMAGES.values())


@dataclass
class FakeEngine:
    images: set[str] = field(default_factory=set)
    registry: bool = False
    pulls_asked: list[str] = field(default_factory=list)
    down: bool = False  # then connecting fails as with no engine (doctor runs so)

    def has_image(self, name: str) -> bool:
        return name in self.images

    def can_pull(self, name: str) -> bool:
        self.pulls_asked.append(name)
        return self.registry


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()

    def connect(cls: type[Engine], timeout: int = 30) -> FakeEngine:
        if fake.down:
            raise EngineError("Cannot reach the Docker engine (a test without one).")
        return fake

    monkeypatch.setattr(Engine, "connect", classmethod(connect))
    return fake


def values(path: Path) -> dict[str, str | None]:
    return dotenv_values(path)


def envelope(runner: CliRunner, *args: str, input: str | None = None) -> dict[str, Any]:
    result = runner.invoke(app, [*args, "--json"], input=input)
    document = json.loads(result.stdout)
    contract.validate(document)
    assert document["exit_code"] == result.exit_code
    return dict(document)


def env_checks(runner: CliRunner, engine: FakeEngine, *args: str) -> dict[str, str]:
    engine.down = True
    document = envelope(runner, "doctor", "--only", "env", *args)
    return {c["name"]: c["status"] for c in document["result"]["checks"]}


# --- dev --------------------------------------------------------------------------------


def test_dev_init_writes_a_private_file_that_doctor_passes(
    runner: CliRunner, project: Path, engine: FakeEngine
) -> None:
    engine.images = set(LOCAL)
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    path = project / ".env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    env = values(path)
    assert len(env["POSTGRES_PASSWORD"] or "") == len(env["DJANGO_SECRET_KEY"] or "") == 64
    assert env["POSTGRES_PASSWORD"] != env["DJANGO_SECRET_KEY"]
    assert "random POSTGRES_PASSWORD, DJANGO_SECRET_KEY" in result.stdout
    # The secrets stay in the file: not on the terminal.
    assert str(env["POSTGRES_PASSWORD"]) not in result.output
    assert str(env["DJANGO_SECRET_KEY"]) not in result.output
    assert "start the stack: recoverctl up" in result.stdout

    checks = env_checks(runner, engine)
    # env.running compares with running containers: the real engine's part (tests/e2e).
    assert checks.pop("env.running") == "fail"
    assert set(checks.values()) == {"ok"}, checks


def test_two_runs_give_different_secrets(
    runner: CliRunner, project: Path, engine: FakeEngine
) -> None:
    assert runner.invoke(app, ["init"]).exit_code == 0
    first = values(project / ".env")
    (project / ".env").unlink()
    assert runner.invoke(app, ["init"]).exit_code == 0
    second = values(project / ".env")
    assert first["POSTGRES_PASSWORD"] != second["POSTGRES_PASSWORD"]
    assert first["DJANGO_SECRET_KEY"] != second["DJANGO_SECRET_KEY"]


def test_an_existing_file_is_never_overwritten(
    runner: CliRunner, project: Path, engine: FakeEngine
) -> None:
    path = project / ".env"
    path.write_text("POSTGRES_PASSWORD=mine\n")
    document = envelope(runner, "init")
    assert (document["exit_code"], document["error"]["code"]) == (1, "file_exists")
    assert document["error"]["message"] == (
        f".env already exists in {project}; init never overwrites it."
    )
    assert path.read_text() == "POSTGRES_PASSWORD=mine\n"
    assert engine.pulls_asked == []  # refused before asking anything


def test_a_file_that_appears_meanwhile_is_not_replaced(
    runner: CliRunner, project: Path, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = project / ".env"
    real = envgen.render

    def render_then_race(*args: Any, **kwargs: Any) -> envgen.Generated:
        path.write_text("POSTGRES_PASSWORD=theirs\n")
        return real(*args, **kwargs)

    monkeypatch.setattr(envgen, "render", render_then_race)
    document = envelope(runner, "init")
    assert document["error"]["code"] == "file_exists"
    assert path.read_text() == "POSTGRES_PASSWORD=theirs\n"
    assert sorted(p.name for p in project.iterdir() if p.name.startswith(".env")) == [
        ".env",
        ".env.example",
    ]


def test_the_file_is_private_from_its_first_byte(
    runner: CliRunner, project: Path, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    real_link = os.link

    def link(src: Any, dst: Any) -> None:
        seen.append(stat.S_IMODE(os.stat(src).st_mode))
        real_link(src, dst)

    monkeypatch.setattr(os, "link", link)
    old = os.umask(0)  # the loosest umask: the mode must not depend on it
    try:
        result = runner.invoke(app, ["init"])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output
    assert seen == [0o600]
    assert stat.S_IMODE((project / ".env").stat().st_mode) == 0o600


def test_a_failed_write_leaves_nothing(
    runner: CliRunner, project: Path, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(_fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    document = envelope(runner, "init")
    assert document["error"]["code"] == "disk_full"
    assert "no env file was written" in document["error"]["message"]
    assert sorted(p.name for p in project.iterdir() if p.name.startswith(".env")) == [
        ".env.example"
    ]


def test_a_disk_full_without_hard_links_leaves_no_truncated_file(
    runner: CliRunner, project: Path, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file system without hard links: the file is created in place (O_EXCL); a disk that
    # fills while it is written must not leave a truncated .env that the next init refuses.
    def no_links(_src: Any, _dst: Any) -> None:
        raise OSError(1, "Operation not permitted")

    real_fsync = os.fsync
    calls: list[int] = []

    def full_on_the_second(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 2:  # the first is the private temporary file's
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    with monkeypatch.context() as m:
        m.setattr(os, "link", no_links)
        m.setattr(os, "fsync", full_on_the_second)
        document = envelope(runner, "init")
    assert len(calls) == 2
    assert document["error"]["code"] == "disk_full"
    assert "no env file was written" in document["error"]["message"]
    assert sorted(p.name for p in project.iterdir() if p.name.startswith(".env")) == [
        ".env.example"
    ]
    assert runner.invoke(app, ["init"]).exit_code == 0  # room again: init writes it


def test_host_is_for_prod(runner: CliRunner, project: Path, engine: FakeEngine) -> None:
    document = envelope(runner, "init", "--host", "vault.example.com")
    assert (document["exit_code"], document["error"]["code"]) == (2, "usage")
    assert not (project / ".env").exists()


def test_port(runner: CliRunner, project: Path, engine: FakeEngine) -> None:
    document = envelope(runner, "init", "--port", "18123")
    assert document["result"]["port"] == 18123
    env = values(project / ".env")
    assert env["VAULT_HTTP_PORT"] == "18123"
    assert env["DJANGO_CSRF_TRUSTED_ORIGINS"] == "http://localhost:18123,http://127.0.0.1:18123"


# --- images -----------------------------------------------------------------------------


def test_official_images_where_a_registry_answers(
    runner: CliRunner, project: Path, engine: FakeEngine
) -> None:
    engine.registry = True
    engine.images = set(LOCAL)  # built for the tests, but the official ones are reachable
    document = envelope(runner, "init")
    assert document["result"]["image_source"] == "official"
    assert document["result"]["images"] == dict(zip(envgen.IMAGE_VARIABLES, OFFICIAL, strict=True))
    env = values(project / ".env")
    assert env["POSTGRES_IMAGE"] == "postgres:17" and "PYTHON_IMAGE" not in env


def test_official_images_already_here_ask_no_registry(
    runner: CliRunner, project: Path, engine: FakeEngine
) -> None:
    engine.images = set(OFFICIAL)
    document = envelope(runner, "init")
    assert document["result"]["image_source"] == "official"
    assert engine.pulls_asked == []


def test_local_images_where_no_registry_answers(
    runner: CliRunner, project: Path, engine: FakeEngine
) -> None:
    engine.images = set(LOCAL)
    document = envelope(runner, "init")
    assert document["result"]["image_source"] == "local"
    assert document["warnings"] == []
    env = values(project / ".env")
    assert (env["POSTGRES_IMAGE"], env["PYTHON_IMAGE"]) == LOCAL


def test_local_images_not_built_yet_say_how(
    runner: CliRunner, project: Path, engine: FakeEngine
) -> None:
    document = envelope(runner, "init")
    assert document["ok"]
    assert document["result"]["image_source"] == "local"
    assert "`make test-env` builds them" in document["warnings"][0]


def test_without_an_engine_the_file_is_still_written(runner: CliRunner, project: Path) -> None:
    document = envelope(runner, "init")
    assert document["ok"]
    assert document["result"]["image_source"] == "unknown"
    assert "could not ask the Docker engine" in document["warnings"][0]
    assert stat.S_IMODE((project / ".env").stat().st_mode) == 0o600


# --- prod -------------------------------------------------------------------------------


def test_prod_with_host_passes_doctor(runner: CliRunner, project: Path, engine: FakeEngine) -> None:
    document = envelope(
        runner, "init", "--prod", "--host", "vault.example.com", "--host", "VAULT.example.com"
    )
    result = document["result"]
    assert result["path"] == str(project / ".env.production")
    assert result["allowed_hosts"] == ["vault.example.com", "localhost", "127.0.0.1"]
    assert result["csrf_trusted_origins"][0] == "https://vault.example.com"
    assert result["port"] == 8080
    env = values(project / ".env.production")
    assert (env["DJANGO_DEBUG"], env["DJANGO_SECURE_COOKIES"]) == ("false", "true")
    assert not (project / ".env").exists()

    checks = env_checks(runner, engine, "--prod")
    assert checks.pop("env.running") == "fail"  # no engine here
    assert set(checks.values()) == {"ok"}, checks


def test_prod_without_host_and_no_terminal_refuses(
    runner: CliRunner, project: Path, engine: FakeEngine
) -> None:
    document = envelope(runner, "init", "--prod")
    assert (document["exit_code"], document["error"]["code"]) == (2, "usage")
    assert "there is no terminal to ask it" in document["error"]["message"]
    assert "--host" in document["error"]["hint"]
    assert not (project / ".env.production").exists()


def test_prod_without_host_asks_for_it(
    runner: CliRunner, project: Path, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(init_cli, "_interactive", lambda: True)
    result = runner.invoke(app, ["init", "--prod"], input="vault.example.com\n")
    assert result.exit_code == 0, result.output
    assert "Host name the vault is served at" in result.stderr
    env = values(project / ".env.production")
    assert env["DJANGO_ALLOWED_HOSTS"] == "vault.example.com,localhost,127.0.0.1"


@pytest.mark.parametrize("host", ["https://vault.example.com", "vault.example.com:443", "a b"])
def test_prod_bad_host(runner: CliRunner, project: Path, engine: FakeEngine, host: str) -> None:
    document = envelope(runner, "init", "--prod", "--host", host)
    assert document["error"]["code"] == "usage"
    assert document["error"]["message"].startswith("--host ")
    assert not (project / ".env.production").exists()


def test_no_template_says_so(runner: CliRunner, project: Path, engine: FakeEngine) -> None:
    (project / ".env.example").unlink()
    document = envelope(runner, "init")
    assert document["error"]["code"] == "env_invalid"
    assert not (project / ".env").exists()


def test_human_output_names_the_images(
    runner: CliRunner, project: Path, engine: FakeEngine
) -> None:
    engine.images = set(LOCAL)
    result = runner.invoke(app, ["init"])
    assert f"images (local): {LOCAL[0]}, {LOCAL[1]}" in result.stdout
    assert io.StringIO(result.stderr).read() == ""
