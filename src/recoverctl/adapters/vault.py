"""The vault's management commands, run in the backend container through docker exec."""

from __future__ import annotations

import json
from typing import Any

from recoverctl.adapters.engine import Engine
from recoverctl.adapters.pgexec import cause_of, exec_in
from recoverctl.errors import CommandFailed


def manage(engine: Engine, project: str, *args: str) -> Any:
    container = engine.service_container(project, "backend")
    result = exec_in(engine, container, ("python", "manage.py", *args))
    if not result.ok:
        raise CommandFailed(
            f"The vault's {args[0]} command failed: {cause_of(result.stderr_tail) or 'no output'}.",
            "Check `recoverctl logs backend`.",
            details=result.stderr_tail or None,
        )
    try:
        return json.loads(result.stdout)
    except ValueError:
        raise CommandFailed(
            f"The vault's {args[0]} command printed something other than JSON.",
            "Check that the backend runs this version of the vault.",
        ) from None


def report(engine: Engine, project: str) -> dict[str, Any]:
    data: dict[str, Any] = manage(engine, project, "vault_report")
    return data


def envelopes(engine: Engine, project: str, fingerprint: str, limit: int) -> dict[str, Any]:
    data: dict[str, Any] = manage(
        engine, project, "vault_envelopes", fingerprint, "--limit", str(limit)
    )
    return data
