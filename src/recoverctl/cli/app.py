"""The Typer application: every command is registered here, and errors are caught here."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

import typer
from typer.core import TyperGroup

from recoverctl import __version__
from recoverctl.cli import render
from recoverctl.errors import EXIT_INTERRUPTED, RecoverctlError


class _Group(TyperGroup):
    """Turns every RecoverctlError into its message, hint and exit code: the one catch."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except RecoverctlError as exc:
            render.error(exc)
            code = exc.exit_code
            if code == EXIT_INTERRUPTED and _terminated_by is not None:
                code = 128 + _terminated_by
            raise typer.Exit(code) from None
        except KeyboardInterrupt:
            render.err.print("[bold red]interrupted[/]: stopped before finishing.")
            raise typer.Exit(128 + (_terminated_by or signal.SIGINT)) from None


app = typer.Typer(
    cls=_Group,
    name="recoverctl",
    help="Backups, restores and crash recovery for the vault's docker compose stacks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"recoverctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Backups, restores and crash recovery for the vault's docker compose stacks."""


def _register() -> None:
    from recoverctl.cli import backups, care, stack

    stack.register(app)
    backups.register(app)
    care.register(app)


_register()


_terminated_by: int | None = None


def _on_sigterm(signum: int, _frame: FrameType | None) -> None:
    # SIGTERM takes the same careful way out as Ctrl-C: partial files removed, rollbacks run.
    global _terminated_by
    _terminated_by = signum
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _on_sigterm)
    app()
