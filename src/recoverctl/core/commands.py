"""External commands as data. Pure builders, unit-tested for their exact argv.

No secret ever goes in an argv: credentials reach commands through env files or the
container's own environment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Argv = tuple[str, ...]


@dataclass(frozen=True)
class ComposeTarget:
    cli: Argv  # ("docker", "compose") or ("docker-compose",)
    project: str
    compose_file: str
    env_file: str
    project_dir: str
    # recoverctl's own overrides of this project (core/pitr.py's archive settings), after it.
    overrides: tuple[str, ...] = ()


def compose_base(t: ComposeTarget) -> Argv:
    return (
        *t.cli,
        "--project-name",
        t.project,
        "--project-directory",
        t.project_dir,
        "--file",
        t.compose_file,
        *(arg for path in t.overrides for arg in ("--file", path)),
        "--env-file",
        t.env_file,
    )


def compose_up(t: ComposeTarget, *, build: bool, services: Sequence[str] = ()) -> Argv:
    """services: only those (and what they depend on); none: the whole stack."""
    return (
        *compose_base(t),
        "up",
        "--detach",
        *(("--build",) if build else ()),
        *(() if services else ("--remove-orphans",)),
        *services,
    )


def compose_create(t: ComposeTarget, services: Sequence[str]) -> Argv:
    """The services' containers, network and volumes made by compose, nothing started: a
    volume to fill before its service first runs."""
    return (*compose_base(t), "create", *services)


def compose_down(t: ComposeTarget, *, volumes: bool) -> Argv:
    return (*compose_base(t), "down", *(("--volumes",) if volumes else ()), "--remove-orphans")


# The compose files publish the app on 127.0.0.1:${VAULT_HTTP_PORT-…}; empty picks a free port.
PORT_VARIABLE = "VAULT_HTTP_PORT"


def port_env(port: int | None = None) -> dict[str, str]:
    """Variables for a compose run that publishes the app on another loopback port than the
    env file's (None: a free one, as a drill's stack does). Compose's interpolation takes the
    process's variables over the env file's."""
    return {PORT_VARIABLE: "" if port is None else str(port)}


def compose_config_check(t: ComposeTarget) -> Argv:
    return (*compose_base(t), "config", "--quiet")


def compose_version(cli: Sequence[str]) -> Argv:
    return (*cli, "version", "--short")
