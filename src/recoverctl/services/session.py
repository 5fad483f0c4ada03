"""One session per command: the settings, the compose project, the engine and the database,
each made on first use and kept for the rest of the command."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dotenv import dotenv_values

from recoverctl.adapters import compose, files
from recoverctl.core import commands, pitr, upgrade
from recoverctl.core.compose_model import ComposeModel
from recoverctl.errors import ConfigError, ErrorCode, RecoverctlError
from recoverctl.settings import PITR_FILES, Settings, project_name

if TYPE_CHECKING:
    from recoverctl.adapters.engine import Engine
    from recoverctl.adapters.pgexec import Db
    from recoverctl.adapters.targets import Target


@dataclass(frozen=True)
class StackRef:
    """The compose project a command works on: settings, parsed compose file, project name."""

    settings: Settings
    compose: ComposeModel
    project: str

    @classmethod
    def load(cls, settings: Settings) -> StackRef:
        model = files.load_compose(settings)
        return cls(settings=settings, compose=model, project=project_name(settings, model))

    @property
    def pitr_override(self) -> Path:
        """recoverctl's compose override that turns archiving on (pitr enable writes it)."""
        return self.settings.project_dir / pitr.STATE_DIR / pitr.override_name(self.project)

    def target(self) -> commands.ComposeTarget:
        s = self.settings
        _judge_volume(s)
        override = self.pitr_override
        return commands.ComposeTarget(
            cli=compose.detect_cli(),
            project=self.project,
            compose_file=str(s.compose_file),
            env_file=str(s.env_file),
            project_dir=str(s.project_dir),
            overrides=(str(override),) if override.is_file() else (),
        )

    def require_service(self, service: str) -> None:
        if service not in self.compose.services:
            raise ConfigError(
                f"No service {service!r} in {self.settings.compose_rel}.",
                "Services: " + ", ".join(self.compose.services) + ".",
                code=ErrorCode.USAGE,
            )


def _judge_volume(settings: Settings) -> None:
    """POSTGRES_VOLUME goes into the db service's volume line: a path there would mount a
    folder of the host (another project's data among them) as the data directory. Only the
    compose file's own volume names pass, before compose is ever run."""
    try:
        from_file = dotenv_values(settings.env_file).get(upgrade.VOLUME_VARIABLE)
    except (OSError, UnicodeError, ValueError):
        from_file = None  # an unreadable env file is told by the command's own checks
    problem = upgrade.volume_problem(
        [
            ("the environment", os.environ.get(upgrade.VOLUME_VARIABLE)),
            (settings.env_file.name, from_file),
        ]
    )
    if problem:
        raise ConfigError(f"{problem}.", f"{upgrade.VOLUME_FIX}.", code=ErrorCode.ENV_INVALID)


# Variables whose values are secret by their name, whatever the project adds later.
_SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY)($|_)", re.I)
_MIN_MASKED = 6  # shorter values (a port, "1") would mask ordinary text


# compose's own grammar for an env file line (compose-go): a bare name takes its value from
# the environment and is never quoted back; any other line is, whole, in compose's errors.
_COMPOSE_NAME = re.compile(r"[A-Za-z0-9_.\-\[\]]+")
_COMPOSE_LINE = re.compile(r"\s*(?:export\s+)?([A-Za-z0-9_.\-\[\]]+)\s*=(.*)")
_BREAKS = re.compile(r"[\x00-\x20\x7f=]+")


def env_secrets(path: Path) -> tuple[str, ...]:
    """The values of secret-named variables (as python-dotenv reads them, and raw, so that
    a broken quote cannot hide one); and the text of every line compose would quote back in
    an error (no `NAME=value`, a name compose refuses: a value pasted without its name, a
    line cut by a control character): each run of it between blanks, control characters
    and `=`, also as Go's %q quoting shows it."""
    try:
        values = dotenv_values(path)
        raw = path.read_text(errors="replace")
    except (OSError, UnicodeDecodeError):
        return ()
    found = [
        v for k, v in values.items() if v and len(v) >= _MIN_MASKED and _SECRET_NAME.search(k)
    ]
    for line in raw.splitlines():
        text = line.strip()
        if not text or text.startswith("#") or _COMPOSE_NAME.fullmatch(text):
            continue
        m = _COMPOSE_LINE.fullmatch(line)
        if m is not None:
            value = m.group(2).strip().strip("'\"")
            if _SECRET_NAME.search(m.group(1)) and len(value) >= _MIN_MASKED:
                found.append(value)
            continue
        for part in _BREAKS.split(line):
            if len(part) >= _MIN_MASKED:
                found.append(part)
                quoted = part.replace("\\", "\\\\").replace('"', '\\"')
                if quoted != part:
                    found.append(quoted)
    return tuple(dict.fromkeys(found))


def _connect() -> Engine:
    # Imported here: the SDK is slow to import and commands such as `list` never need it.
    from recoverctl.adapters.engine import Engine

    return Engine.connect()


class StackSession:
    """Built once per command by the CLI and handed to the action.

    Nothing is connected until asked for, so a command that only reads the backups folder
    never needs an engine; whatever is asked for twice is made once."""

    def __init__(self, settings: Settings, *, connect: Callable[[], Engine] = _connect):
        self.settings = settings
        self._connect = connect
        self._ref: StackRef | None = None
        self._engine: Engine | None = None
        self._db: Db | None = None
        self._secrets: tuple[str, ...] | None = None
        self._targets: dict[str, Target] = {}  # by name, or "name:namespace"
        self._on_close: list[Callable[[], None]] = []

    @property
    def ref(self) -> StackRef:
        if self._ref is None:
            self._ref = StackRef.load(self.settings)
        return self._ref

    @property
    def compose(self) -> ComposeModel:
        return self.ref.compose

    @property
    def project(self) -> str:
        return self.ref.project

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = self._connect()
        return self._engine

    def db(self) -> Db:
        """The running db service, attached on first use."""
        if self._db is None:
            from recoverctl.adapters.pgexec import Db

            project = self.project  # a broken compose file is reported before a missing engine
            container = self.engine.service_container(project, "db")
            self._db = Db.attach(self.engine, container)
        return self._db

    def secrets(self) -> tuple[str, ...]:
        """The env file's secret values, to mask in whatever a command reports or logs
        (compose echoes them back in some of its errors)."""
        if self._secrets is None:
            s = self.settings
            self._secrets = env_secrets(s.env_file) + env_secrets(
                s.project_dir / PITR_FILES[s.stack]
            )
        return self._secrets

    def forget_db(self) -> None:
        """After the stack was (re)created: the next db() finds the new container."""
        self._db = None

    def target(self, name: str, namespace: str = "") -> Target:
        """The storage target configured as [targets.NAME], opened on first use (it connects
        on its first operation) and closed with the session. With namespace (a folder or
        key prefix such as "vault/prod", services/offsite/lookup.py), only what lies inside it."""
        key = f"{name}:{namespace}" if namespace else name
        if key not in self._targets:
            found = self.settings.targets.get(name)
            if found is None:
                known = ", ".join(sorted(self.settings.targets)) or "none is configured"
                raise RecoverctlError(
                    f"No target {name!r} in the settings.",
                    f"Targets: {known} ([targets.NAME] in the settings file).",
                    code=ErrorCode.TARGET_NOT_FOUND,
                )
            from recoverctl.adapters.targets import open_target

            self._targets[key] = open_target(name, found, namespace)
        return self._targets[key]

    def on_close(self, fn: Callable[[], None]) -> None:
        """Runs fn when the command ends (a temporary folder to remove), last added first."""
        self._on_close.append(fn)

    def close(self) -> None:
        """The end of the command: targets disconnected, temporary things removed. Never
        raises: the command's own outcome is what is reported."""
        targets, self._targets = self._targets, {}
        for t in targets.values():
            with contextlib.suppress(Exception):
                t.close()
        while self._on_close:
            with contextlib.suppress(Exception):
                self._on_close.pop()()
