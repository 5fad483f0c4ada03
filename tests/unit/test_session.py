"""services/session.py: the env file's secrets and their masking in a failing compose run;
the session's lazy, once-only engine, compose file and database."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from recoverctl.adapters import compose
from recoverctl.adapters.engine import Engine
from recoverctl.errors import CommandFailed, EngineError, ErrorCode, RecoverctlError
from recoverctl.services.session import StackSession, env_secrets
from recoverctl.services.stack import bring_up
from recoverctl.settings import Settings
from tests.unit.fakes import COMPOSE_YML, FakeEngine


def test_secret_values_by_name(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "POSTGRES_PASSWORD=pg-pass-123456\n"
        "DJANGO_SECRET_KEY=django-insecure-abcdefgh\n"
        "api_token=tok-abcdef\n"  # names match whatever their case
        "AWS_SECRET_ACCESS_KEY=aws/secret+value\n"
        "SIGNING_KEY='quoted value'\n"
        "GITHUB_TOKEN_2=ghp_0123456789\n"
        "POSTGRES_USER=vault_admin\n"  # not secret by its name
        "KEYBOARD_LAYOUT=dvorak-intl\n"  # KEY, but not _KEY
        "TOKENIZER=bert-base-uncased\n"  # TOKEN, but inside a word
        "SHORT_PASSWORD=12345\n"  # too short to mask without masking ordinary text
        "EMPTY_SECRET=\n"
        "NO_VALUE_TOKEN\n"
    )
    assert set(env_secrets(env)) == {
        "pg-pass-123456",
        "django-insecure-abcdefgh",
        "tok-abcdef",
        "aws/secret+value",
        "quoted value",
        "ghp_0123456789",
    }
    # Lines compose would quote back in an error: each run between blanks, control
    # characters and `=`, and as Go's %q shows it; a bare valid name is never quoted back.
    env.write_bytes(
        b"POSTGRES_USER=vault\nPOSTGRES_USER\nhunter2-alone\nTr0ub4dor&3 horse\n"
        b"\x00planted-secret-1\nMY@VAR=atsignsecret99\nSAY=\"a\nPOSTGRES_PASSWORD=\"abcdefgh1\n"
        b'q"uoted-secret\n'
    )
    assert set(env_secrets(env)) == {
        "Tr0ub4dor&3", "planted-secret-1", "MY@VAR", "atsignsecret99", "abcdefgh1",
        'q"uoted-secret', 'q\\"uoted-secret',
    }  # fmt: skip


def test_secrets_of_a_missing_or_unreadable_file(tmp_path: Path) -> None:
    assert env_secrets(tmp_path / "missing.env") == ()
    binary = tmp_path / "binary.env"
    binary.write_bytes(b"POSTGRES_PASSWORD=\xff\xfe\xfa-not-utf8\n")
    assert env_secrets(binary) == ()
    assert env_secrets(tmp_path) == ()  # a folder


SECRET = "pg-S3cret-value-42"
KEY = "django-Secret-key-0123456789"
# A stand-in for `docker compose`: echoes the env file's values back on stderr and stdout
# (as compose does in some of its errors), then fails.
FAKE_COMPOSE = """\
import sys
args = sys.argv[1:]
env = open(args[args.index("--env-file") + 1]).read()
for line in env.splitlines():
    print("invalid interpolation format for " + line, file=sys.stderr)
print("stdout too: " + env)
sys.exit(1)
"""


def _project(tmp_path: Path, compose_yml: str = COMPOSE_YML) -> Settings:
    root = tmp_path / "project"
    root.mkdir()
    (root / "docker-compose.dev.yml").write_text(compose_yml)
    (root / ".env").write_text(
        f"POSTGRES_DB=vault\nPOSTGRES_USER=vault\nPOSTGRES_PASSWORD={SECRET}\n"
        f"DJANGO_SECRET_KEY={KEY}\nDEBUG=1\n"
    )
    return Settings(
        project_dir=root,
        compose_file=root / "docker-compose.dev.yml",
        env_file=root / ".env",
        backup_dir=root / "backups",
    )


def test_failing_compose_up_never_shows_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / "fake_compose.py"
    script.write_text(FAKE_COMPOSE)
    monkeypatch.setattr(compose, "detect_cli", lambda: (sys.executable, str(script)))
    session = StackSession(_project(tmp_path), connect=FakeEngine)
    with pytest.raises(CommandFailed) as info:
        bring_up(session)
    err = info.value
    assert err.code is ErrorCode.COMMAND_FAILED
    assert err.message == "docker compose up (vault-dev) failed (exit 1)."
    assert err.details is not None
    assert "invalid interpolation format for POSTGRES_PASSWORD=***" in err.details
    assert "DJANGO_SECRET_KEY=***" in err.details
    assert "POSTGRES_USER=vault" in err.details  # only secrets are masked
    shown = " ".join(str(x) for x in (err.message, err.hint, err.details, err))
    assert SECRET not in shown and KEY not in shown


# --- the session -----------------------------------------------------------------------------


def test_engine_and_compose_file_are_made_once(tmp_path: Path) -> None:
    made: list[FakeEngine] = []

    def connect() -> Engine:
        made.append(FakeEngine())
        return made[-1]

    session = StackSession(_project(tmp_path), connect=connect)
    assert made == []  # nothing connected until asked for
    assert session.engine is session.engine and len(made) == 1
    assert session.ref is session.ref and session.project == "vault-dev"
    assert session.compose.db_clients == ("backend",)
    assert session.secrets() == (SECRET, KEY)
    session.settings.env_file.write_text("")
    assert session.secrets() == (SECRET, KEY)  # read once per command


def test_db_attaches_by_the_containers_environment(tmp_path: Path) -> None:
    engine = FakeEngine()
    db_container = engine.add("db")
    db_container.attrs["Config"]["Env"] = [
        "POSTGRES_USER=vault_admin",
        "POSTGRES_DB=vault_data",
        f"POSTGRES_PASSWORD={SECRET}",
    ]
    session = StackSession(_project(tmp_path), connect=lambda: engine)
    db = session.db()
    assert (db.user, db.database, db.container) == ("vault_admin", "vault_data", db_container)
    assert SECRET not in repr(vars(db))  # the password stays in the container
    assert session.db() is db
    session.forget_db()
    assert session.db() is not db


def test_db_not_running(tmp_path: Path) -> None:
    engine = FakeEngine()
    engine.add("db", status="exited")
    session = StackSession(_project(tmp_path), connect=lambda: engine)
    with pytest.raises(RecoverctlError) as info:
        session.db()
    assert info.value.code is ErrorCode.DB_NOT_RUNNING


def test_a_broken_compose_file_is_told_before_a_missing_engine(tmp_path: Path) -> None:
    calls: list[str] = []

    def connect() -> Any:
        calls.append("connect")
        raise EngineError("Cannot reach the Docker engine")

    session = StackSession(_project(tmp_path, "name: vault-dev\nservices: {}\n"), connect=connect)
    with pytest.raises(RecoverctlError) as info:
        session.db()
    assert info.value.code is ErrorCode.COMPOSE_INVALID
    assert calls == []


def test_require_service(tmp_path: Path) -> None:
    session = StackSession(_project(tmp_path), connect=FakeEngine)
    session.ref.require_service("backend")
    with pytest.raises(RecoverctlError) as info:
        session.ref.require_service("worker")
    assert info.value.code is ErrorCode.USAGE
    assert info.value.hint == "Services: backend, db, frontend."
