"""schedule install, status, remove: the routine on a systemd timer or a cron entry."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from recoverctl.cli import options, render

schedule_app = typer.Typer(
    help="Run the routine on a systemd timer (or cron where systemd does not run).",
    no_args_is_help=True,
)


@schedule_app.command("install")
def schedule_install(
    prod: options.Prod = False,
    every: Annotated[
        str | None,
        typer.Option("--every", help="How often: 15m, 30m, 1h (default), 6h, 1d, 1w..."),
    ] = None,
    on_calendar: Annotated[
        str | None,
        typer.Option("--on-calendar", help="A systemd OnCalendar= spec instead (systemd only)."),
    ] = None,
    print_only: Annotated[
        bool, typer.Option("--print", help="Print the units and cron entry; install nothing.")
    ] = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Install the routine: a systemd service and timer (enabled), else a cron entry."""
    from recoverctl.actions import schedule as action

    session = options.session(prod, project_dir, json)
    result = action.install(session, every=every, on_calendar=on_calendar, print_only=print_only)
    for w in result.warnings:
        render.warn(w)

    def human() -> None:
        if result.action == "print":
            for name, text in result.units.items():
                render.out.print(f"[bold]# {escape(name)}[/]")
                render.out.print(escape(text), end="")
                render.out.print()
            return
        for path in result.units:
            render.out.print(f"wrote {escape(path)}")
        _installations(result)

    render.emit(result, human)


@schedule_app.command("status")
def schedule_status(
    prod: options.Prod = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Whether the routine is scheduled, when it runs next, and how the last one ended."""
    from recoverctl.actions import schedule as action

    session = options.session(prod, project_dir, json)
    result = action.status(session)

    def human() -> None:
        _installations(result)
        last = result.last_routine
        if last is None:
            render.out.print("last routine: none has run for this stack")
        else:
            verdict = "[green]ok[/]" if last["ok"] else f"[red]failed[/] ({last['error_code']})"
            render.out.print(
                f"last routine: {verdict}, ended {escape(last['finished_at'])}"
                + (f": {escape(last['message'])}" if last["message"] else "")
            )

    render.emit(result, human)


@schedule_app.command("remove")
def schedule_remove(
    prod: options.Prod = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Remove the routine's timer (or cron entry)."""
    from recoverctl.actions import schedule as action

    session = options.session(prod, project_dir, json)
    result = action.remove(session)

    def human() -> None:
        if not result.removed:
            render.out.print(f"no schedule was installed for {result.name}")
        for what in result.removed:
            render.out.print(f"removed {escape(what)}")

    render.emit(result, human)


def _installations(result: object) -> None:
    from recoverctl.actions.schedule import ScheduleResult

    assert isinstance(result, ScheduleResult)
    if not result.installed:
        render.out.print(f"[yellow]not scheduled[/]: {result.name} ({result.stack})")
    for i in result.installed:
        state = {True: "active", False: "[red]inactive[/]", None: "installed"}[i.active]
        render.out.print(
            f"[green]{i.kind}[/] {result.name}: {state}, when {escape(i.when)}"
            + (f", next run {escape(i.next_run)}" if i.next_run else "")
        )
