"""Every recoverctl command the playbook shows parses against the real CLI."""

from __future__ import annotations

import typer
from typer.main import get_command

from recoverctl.cli.app import app
from tests.playbook import playbook_commands


def _parse(argv: tuple[str, ...]) -> None:
    group = get_command(app)
    ctx = group.make_context("recoverctl", list(argv))
    args = [*ctx._protected_args, *ctx.args]
    cmd: typer.core.TyperCommand | typer.core.TyperGroup = group  # type: ignore[assignment]
    while args:
        name, sub, rest = cmd.resolve_command(ctx, args)  # type: ignore[union-attr]
        assert sub is not None, f"unknown command {name!r} in {argv}"
        ctx = sub.make_context(str(name), list(rest), parent=ctx)
        cmd = sub  # type: ignore[assignment]
        args = [*getattr(ctx, "_protected_args", []), *ctx.args] if hasattr(sub, "commands") else []


def test_the_playbook_shows_commands() -> None:
    commands = playbook_commands()
    names = {c[0] for c in commands}
    assert {"up", "down", "ps", "logs", "restart", "backup", "list", "verify", "restore"} <= names
    assert {"doctor", "keys", "recover"} <= names


def test_every_playbook_command_parses() -> None:
    for argv in playbook_commands():
        _parse(argv)


def test_a_stale_option_would_be_caught() -> None:
    try:
        _parse(("backup", "--compress"))
    except Exception as exc:  # the CLI's own usage error
        assert "compress" in str(exc)
    else:
        raise AssertionError("an unknown option parsed")
