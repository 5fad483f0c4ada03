"""The file system: compose and env files, the backups folder."""

from __future__ import annotations

from pathlib import Path

import yaml

from recoverctl.core.compose_model import ComposeModel, parse_compose
from recoverctl.errors import ErrorCode, ProjectFileError
from recoverctl.settings import Settings


def load_compose(settings: Settings) -> ComposeModel:
    path = settings.compose_file
    rel = settings.compose_rel
    if not path.is_file():
        raise ProjectFileError(
            f"Compose file {rel} is missing in {settings.project_dir}.",
            f"Restore it from git (`git checkout -- {rel}`) or pass --project-dir.",
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ProjectFileError(
            f"Compose file {rel} is not valid YAML{line}.",
            f"Fix {rel}; `docker compose -f {rel} config` shows the exact problem.",
        ) from None
    except UnicodeDecodeError as exc:
        raise ProjectFileError(
            f"Compose file {rel} is not UTF-8 (byte {exc.start}).",
            f"Save {rel} as UTF-8 (or restore it from git: `git checkout -- {rel}`).",
            code=ErrorCode.COMPOSE_INVALID,
        ) from None
    except OSError as exc:
        raise ProjectFileError(f"Cannot read {rel}: {exc.strerror}.", "Check its permissions.") from None
    except RecursionError:
        raise ProjectFileError(
            f"Compose file {rel} nests too deep to read.",
            f"Fix {rel}; `docker compose -f {rel} config` shows the exact problem.",
            code=ErrorCode.COMPOSE_INVALID,
        ) from None
    return parse_compose(data, rel)


def require_env_file(settings: Settings) -> Path:
    path = settings.env_file
    if not path.is_file():
        rel = settings.env_rel
        raise ProjectFileError(
            f"Env file {rel} is missing: the {settings.stack} stack reads its settings from it.",
            f"Create it from the template: cp .env.example {rel} && chmod 600 {rel}, "
            "then replace every change-me value.",
            code=ErrorCode.ENV_INVALID,
        )
    return path
