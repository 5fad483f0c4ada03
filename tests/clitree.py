"""recoverctl's command tree as the tests walk it: every command and subcommand by its
path ("keys check"), and those that take --json."""

from __future__ import annotations

import typer.main
from typer import _click
from typer.core import TyperGroup

from recoverctl.cli.app import app


def commands() -> dict[str, _click.Command]:
    found: dict[str, _click.Command] = {}

    def walk(group: TyperGroup, prefix: str) -> None:
        for name, command in group.commands.items():
            path = f"{prefix}{name}"
            found[path] = command
            if isinstance(command, TyperGroup):
                walk(command, path + " ")

    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    walk(root, "")
    return found


def json_commands(found: dict[str, _click.Command]) -> list[str]:
    return sorted(path for path, c in found.items() if any(p.name == "json" for p in c.params))
