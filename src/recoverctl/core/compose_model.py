"""What recoverctl needs to know of a compose file: its project name and services."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from recoverctl.errors import ProjectFileError

PROJECT_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


@dataclass(frozen=True)
class ComposeModel:
    name: str
    services: tuple[str, ...]
    # Services whose containers talk to the database: stopped during a restore's swap.
    db_clients: tuple[str, ...]


def parse_compose(data: Any, source: str) -> ComposeModel:
    """Reads the parsed YAML of a compose file; raises ConfigError naming the file."""
    hint = f"Fix {source}; `docker compose -f {source} config` shows the exact problem."
    if not isinstance(data, dict):
        raise ProjectFileError(f"{source} is not a compose file (no top-level mapping).", hint)
    name = data.get("name")
    if not isinstance(name, str) or not PROJECT_NAME_RE.match(name):
        raise ProjectFileError(
            f"{source} has no valid top-level `name:` (lowercase letters, digits, - and _).",
            hint,
        )
    services = data.get("services")
    if not isinstance(services, dict) or not services:
        raise ProjectFileError(f"{source} defines no services.", hint)
    if "db" not in services:
        raise ProjectFileError(f"{source} has no `db` service; recoverctl backs up that one.", hint)
    clients = tuple(
        sorted(
            svc
            for svc, spec in services.items()
            if svc != "db" and isinstance(spec, dict) and _depends_on_db(spec)
        )
    )
    return ComposeModel(name=name, services=tuple(sorted(services)), db_clients=clients)


def _depends_on_db(spec: dict[str, Any]) -> bool:
    deps = spec.get("depends_on")
    if isinstance(deps, list):
        return "db" in deps
    if isinstance(deps, dict):
        return "db" in deps
    return False
