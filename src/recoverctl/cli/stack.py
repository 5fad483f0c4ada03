"""up, down, ps, logs, restart."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from recoverctl.cli import confirm, options, render

if TYPE_CHECKING:
    from recoverctl.actions import stack as actions


def up(
    prod: options.Prod = False,
    no_build: Annotated[
        bool, typer.Option("--no-build", help="Start without rebuilding images.")
    ] = False,
    backup: Annotated[
        bool | None,
        typer.Option(
            "--backup/--no-backup",
            help="Back up a running stack first (quick-verified, pushed when targets exist); "
            "stops if that fails. Default: on with --prod, off for dev.",
            show_default=False,
        ),
    ] = None,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Build and start the stack, wait until every service is healthy, show its status."""
    from recoverctl.actions import stack as actions

    session = options.session(prod, project_dir, json)
    with render.spinner(f"starting the {session.settings.stack} stack") as progress:
        result = actions.up(session, build=not no_build, progress=progress, backup=backup)

    def human() -> None:
        if result.backup is not None:
            render.out.print(f"backup before the update: {result.backup}")
        render.stack_table(result.status)
        render.out.print(f"[green]ready[/] in {result.seconds:.0f} s")

    render.emit(result, human)


def down(
    prod: options.Prod = False,
    volumes: Annotated[
        bool,
        typer.Option("--volumes", "-v", help="Also erase the database volume (asks first)."),
    ] = False,
    no_safety_backup: Annotated[
        bool,
        typer.Option(
            "--no-safety-backup", help="With --volumes: skip the backup taken before erasing."
        ),
    ] = False,
    yes: options.Yes = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Stop and remove the stack's containers; --volumes also erases its database."""
    from recoverctl.actions import stack as actions

    session = options.session(prod, project_dir, json)
    if volumes and not yes:
        _confirm_erase(actions.plan_down(session))
    with render.spinner("stopping the stack") as progress:
        result = actions.down(
            session, volumes=volumes, safety_backup=not no_safety_backup, progress=progress
        )

    def human() -> None:
        what = "containers, network and database volume" if volumes else "containers and network"
        render.out.print(f"[green]removed[/] {what} of {result.project}")
        if result.safety_backup is not None:
            render.out.print(f"safety backup of the erased database: {result.safety_backup}")
        if volumes:
            newest = result.newest_backup
            render.out.print(
                f"newest backup: {newest}" if newest else "there was no backup in backups/"
            )

    render.emit(result, human)


def _confirm_erase(plan: actions.DownPlan) -> None:
    if plan.newest_backup is not None:
        render.warn(f"this erases the {plan.stack} database; newest backup: {plan.newest_backup}")
    else:
        render.warn(f"this erases the {plan.stack} database and there is NO backup in backups/")
    confirm.typed(
        plan.project,
        f"Type the project name ({plan.project}) to erase its database",
        "nothing was erased",
    )


def ps(
    prod: options.Prod = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Show each service's container, state, health and ports."""
    from recoverctl.actions import stack as actions

    session = options.session(prod, project_dir, json)
    result = actions.ps(session)
    render.emit(result, lambda: render.stack_table(result))


def logs(
    service: Annotated[str | None, typer.Argument(help="Only this service.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep following.")] = False,
    tail: Annotated[
        int | None, typer.Option("--tail", "-n", min=0, help="Only the last N lines.")
    ] = None,
    prod: options.Prod = False,
    project_dir: options.ProjectDir = None,
) -> None:
    """Show the services' logs."""
    from recoverctl.actions import stack as actions

    session = options.session(prod, project_dir)
    width = 0 if service else 10
    stdout = sys.stdout.buffer

    def sink(name: str, line: bytes) -> None:
        if width:
            stdout.write(f"{name:<{width}}| ".encode())
        stdout.write(line if line.endswith(b"\n") else line + b"\n")
        stdout.flush()

    actions.logs(session, service, follow=follow, tail=tail, sink=sink)


def restart(
    service: Annotated[str | None, typer.Argument(help="Only this service.")] = None,
    prod: options.Prod = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Restart the services (or one) and wait until they are healthy."""
    from recoverctl.actions import stack as actions

    session = options.session(prod, project_dir, json)
    with render.spinner("restarting") as progress:
        result = actions.restart(session, service, progress)
    render.emit(result, lambda: render.stack_table(result))
