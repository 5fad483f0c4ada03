"""Options every command shares (--target, --identity, the passphrase on stdin among them),
and the one place settings and the session are resolved from them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from recoverctl.cli import render
from recoverctl.errors import UsageError

if TYPE_CHECKING:
    # Re-exported: the CLI's helpers name the session in their signatures from here.
    from recoverctl.services.session import StackSession as StackSession
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
Target = Annotated[
    str | None,
    typer.Option(
        "--target",
        "-t",
        metavar="NAME",
        help="An off-site target: [targets.NAME] in the settings file.",
        show_default=False,
    ),
]
Identity = Annotated[
    Path | None,
    typer.Option(
        "--identity",
        "-i",
        metavar="FILE",
        dir_okay=False,
        help="The age identity (private key) that opens the off-site copies. Default: "
        "RECOVERCTL_IDENTITY_FILE, then identity_file in the settings file.",
        show_default=False,
    ),
]
Spec = Annotated[str, typer.Argument(help="A backup file, or `latest` for this stack's newest.")]


def require_target(target: str | None, command: str) -> str:
    if not target:
        raise UsageError(
            f"{command} needs --target NAME.",
            "The targets are the [targets.NAME] tables of the settings file.",
        )
    return target


def passphrase(from_stdin: bool, prompt: str, *, ask: bool = True) -> str | None:
    """The key export's passphrase: stdin's first line with --passphrase-stdin, else asked
    in a terminal (when `ask`), else none (the passphrase is then not checked)."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise UsageError(
                "--passphrase-stdin given but stdin is empty.", "Pipe the passphrase in."
            )
        return line.rstrip("\r\n")
    if ask and sys.stdin.isatty():
        return str(typer.prompt(prompt, hide_input=True, err=True))
    return None


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
