"""Settings: one pydantic model, resolved from flags, then RECOVERCTL_* variables, then defaults.

Every validation problem is reported at once, in one ConfigError.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from recoverctl.core.compose_model import PROJECT_NAME_RE, ComposeModel
from recoverctl.errors import ConfigError

Stack = Literal["dev", "prod"]

COMPOSE_FILES: dict[str, str] = {"dev": "docker-compose.dev.yml", "prod": "docker-compose.yml"}
ENV_FILES: dict[str, str] = {"dev": ".env", "prod": ".env.production"}
ENV_PREFIX = "RECOVERCTL_"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    project_dir: Path
    stack: Stack = "dev"
    compose_file: Path
    env_file: Path
    # Overrides the compose file's `name:`; the e2e tests use it to stay off a user's stack.
    project_name: str | None = None
    backup_dir: Path
    up_timeout: float = Field(default=300.0, gt=0, le=3600)
    rpo_hours: float = Field(default=24.0, gt=0)
    key_file: Path | None = None
    # From the settings file only: --log-file and RECOVERCTL_LOG_FILE win, and are read by the
    # CLI before the settings are resolved, so that a settings error is logged too.
    log_file: Path | None = None

    @field_validator("project_name")
    @classmethod
    def _valid_project_name(cls, value: str | None) -> str | None:
        if value is not None and not PROJECT_NAME_RE.match(value):
            raise ValueError("must be lowercase letters, digits, '-' and '_'")
        return value

    @field_validator("log_file")
    @classmethod
    def _absolute_log_file(cls, value: Path | None) -> Path | None:
        # A timer's or cron's current folder is nobody's choice: only an absolute path is clear.
        if value is not None and not value.expanduser().is_absolute():
            raise ValueError("must be an absolute path (or start with ~/)")
        return value.expanduser() if value is not None else None

    @property
    def compose_rel(self) -> str:
        return _rel(self.compose_file, self.project_dir)

    @property
    def env_rel(self) -> str:
        return _rel(self.env_file, self.project_dir)


def _rel(path: Path, base: Path) -> str:
    try:
        return str(path.relative_to(base))
    except ValueError:
        return str(path)


CONFIG_KEYS = ("key_file", "backup_dir", "up_timeout", "rpo_hours", "log_file")


def config_path(env: Mapping[str, str]) -> Path:
    """The user's settings file: where the key backup's location belongs (never in .env)."""
    if env.get(f"{ENV_PREFIX}CONFIG"):
        return Path(env[f"{ENV_PREFIX}CONFIG"])
    base = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else None
    if base is None:
        base = Path(env.get("HOME") or Path.home()) / ".config"
    return base / "recoverctl" / "config.toml"


def read_config(path: Path) -> dict[str, object]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"Settings file {path} is unreadable: {exc}.",
            "Fix it (TOML, keys under [recoverctl]) or move it away.",
            exit_code=2,
        ) from None
    table = data.get("recoverctl", {})
    if not isinstance(table, dict):
        raise ConfigError(f"Settings file {path}: [recoverctl] must be a table.", None, exit_code=2)
    unknown = sorted(set(table) - set(CONFIG_KEYS))
    if unknown:
        raise ConfigError(
            f"Settings file {path}: unknown keys {', '.join(unknown)}.",
            "Known keys: " + ", ".join(CONFIG_KEYS) + ".",
            exit_code=2,
        )
    return dict(table)


def find_project_dir(start: Path) -> Path | None:
    """The nearest folder, from start upwards, that holds one of the stacks' compose files."""
    for folder in (start, *start.parents):
        if any((folder / name).is_file() for name in COMPOSE_FILES.values()):
            return folder
    return None


def resolve_settings(
    *,
    prod: bool = False,
    project_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    env = os.environ if environ is None else environ
    explicit = project_dir or (
        Path(env[f"{ENV_PREFIX}PROJECT_DIR"]) if env.get(f"{ENV_PREFIX}PROJECT_DIR") else None
    )
    base = (cwd or Path.cwd()).resolve()
    if explicit is not None:
        root = (base / explicit).resolve()
        if not root.is_dir():
            raise ConfigError(
                f"Project folder {root} does not exist.",
                "Pass --project-dir (or RECOVERCTL_PROJECT_DIR) pointing at the vault's checkout.",
                exit_code=2,
            )
    else:
        found = find_project_dir(base)
        if found is None:
            raise ConfigError(
                f"No vault project here: no docker-compose.yml or docker-compose.dev.yml in "
                f"{base} or its parents.",
                "Run recoverctl inside the vault's checkout, or pass --project-dir.",
                exit_code=2,
            )
        root = found

    stack: Stack = "prod" if prod else "dev"
    raw: dict[str, object] = {
        "project_dir": root,
        "stack": stack,
        "compose_file": root / COMPOSE_FILES[stack],
        "env_file": root / ENV_FILES[stack],
        "backup_dir": root / "backups",
    }
    raw.update(read_config(config_path(env)))
    for field, var in (
        ("project_name", "PROJECT_NAME"),
        ("backup_dir", "BACKUP_DIR"),
        ("up_timeout", "UP_TIMEOUT"),
        ("rpo_hours", "RPO_HOURS"),
        ("key_file", "KEY_FILE"),
    ):
        value = env.get(ENV_PREFIX + var)
        if value:
            raw[field] = value
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(
            "Invalid settings:\n" + "\n".join(_describe(err) for err in exc.errors()),
            "Fix the RECOVERCTL_* variables named above.",
            exit_code=2,
        ) from None
    # Relative paths from the environment are relative to the project, not to the cwd.
    updates: dict[str, object] = {}
    if not settings.backup_dir.is_absolute():
        updates["backup_dir"] = root / settings.backup_dir
    if settings.key_file is not None and not settings.key_file.is_absolute():
        updates["key_file"] = root / settings.key_file
    return settings.model_copy(update=updates) if updates else settings


def _describe(err: object) -> str:
    assert isinstance(err, dict)
    loc = ".".join(str(p) for p in err.get("loc", ()))
    var = ENV_PREFIX + loc.upper()
    return f"  {var}: {err.get('msg')} (got {err.get('input')!r})"


def project_name(settings: Settings, compose: ComposeModel) -> str:
    return settings.project_name or compose.name
