"""docker compose for what only compose does well: up (with build) and down."""

from __future__ import annotations

import functools
import shutil

from recoverctl.adapters import process
from recoverctl.core.commands import Argv, compose_version
from recoverctl.errors import ConfigError, ErrorCode

COMPOSE_HINT = (
    "Install the compose v2 plugin (`docker compose version` must answer), "
    "or docker-compose on PATH."
)


@functools.cache
def detect_cli() -> Argv:
    """The compose CLI to use, detected once per process: the v2 plugin, else docker-compose."""
    for cli in (("docker", "compose"), ("docker-compose",)):
        if shutil.which(cli[0]) is None:
            continue
        done = process.run(compose_version(cli), check=False, timeout=30)
        if done.returncode == 0:
            return cli
    raise ConfigError("No docker compose found.", COMPOSE_HINT, code=ErrorCode.COMPOSE_FAILED)
