"""env push, env pull: the env files off-site."""

from __future__ import annotations

import logging

import typer
from rich.markup import escape

from recoverctl.cli import options, render

log = logging.getLogger("recoverctl")


env_app = typer.Typer(
    help="The env files (.env, .env.production) and the key export, sealed off-site.",
    no_args_is_help=True,
)


@env_app.command("push")
def push(
    target: options.Targets = None,
    prod: options.Prod = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Seal .env and .env.production (and key_file) to the targets, with the backups' recipients.

    Whichever env files exist; the browser key export when key_file is set (already
    passphrase-wrapped, sealed once more). Never a value in clear off this server."""
    from recoverctl.actions import envfiles as action

    session = options.session(prod, project_dir, json)
    result = action.push(session, target, step=log.info)

    def human() -> None:
        for c in result.copies:
            where = f"{c.target} ({c.location})" if c.location else c.target
            if c.status == "pushed":
                render.out.print(
                    f"[green]pushed[/] {', '.join(c.files)} to {escape(where)}: sealed, "
                    f"{render.size(c.size)}, {c.seconds:.1f} s"
                )
            elif c.status == "unchanged":
                render.out.print(f"[green]unchanged[/] on {escape(where)}")
            else:
                render.out.print(f"[red]NOT copied[/] the env files to {escape(where)}")

    render.emit(result, human)
    if result.error is not None:
        raise result.error


@env_app.command("pull")
def pull(
    target: options.Target = None,
    identity: options.Identity = None,
    prod: options.Prod = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Bring the env files back from a target: each missing one written, mode 0600.

    Never over a file that exists; says what it wrote and what it kept."""
    from recoverctl.actions import envfiles as action

    session = options.session(prod, project_dir, json)
    name = options.require_target(target, "env pull")
    result = action.pull(session, name, identity, step=log.info)

    def human() -> None:
        for p in result.written:
            render.out.print(f"[green]written[/] {escape(str(p))} (mode 0600)")
        for p in result.kept:
            render.out.print(f"kept {escape(str(p))}: it exists, never overwritten")
        for s in result.skipped:
            render.out.print(f"[yellow]not written[/]: {escape(s)}")
        render.out.print(
            f"from target {result.target} ({escape(result.location)}), pushed "
            f"{result.pushed_at:%Y-%m-%d %H:%M} UTC"
        )

    render.emit(result, human)
