"""Options every command shares, and the one place settings are resolved from them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from recoverctl.cli import render

if TYPE_CHECKING:
    from recoverctl.services.session import StackSession
    from recoverctl.settings import Settings

Prod = Annotated[
    bool,
    typer.Option("--prod", help="Use the prod stack (docker-compose.yml + .env.production)."),
]
ProjectDir = Annotated[
    Path | None,
    typer.Option(
        "--project-dir",
        help="The vault's checkout (default: found upwards from here; RECOVERCTL_PROJECT_DIR).",
        show_default=False,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
Targets = Annotated[
    list[str] | None,
    typer.Option(
        "--target",
        "-t",
        metavar="NAME",
        help="Only this target (repeatable). Default: every configured target.",
        show_default=False,
    ),
]


def settings(prod: bool, project_dir: Path | None, json: bool = False) -> Settings:
    # Here, not at import: pydantic is a fifth of --help's start-up, which needs no settings.
    from recoverctl.settings import resolve_settings

    render.json_mode.set(json)
    # An old setting name is read still, and said once per run (stderr, the envelope).
    return resolve_settings(prod=prod, project_dir=project_dir, warn=render.warn_once)


def session(prod: bool, project_dir: Path | None, json: bool = False) -> StackSession:
    """The one session a command's action works with (see services/session.py)."""
    from typer._click.globals import get_current_context

    from recoverctl.services.session import StackSession

    made = StackSession(settings(prod, project_dir, json))
    # Closed when the command ends, however it ends: targets disconnected, temp files gone.
    ctx = get_current_context(silent=True)
    if ctx is not None:
        ctx.call_on_close(made.close)
    return made
