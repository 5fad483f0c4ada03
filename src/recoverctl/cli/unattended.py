"""prune, routine, schedule install/status/remove: running without a person."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from recoverctl.cli import confirm, options, render

if TYPE_CHECKING:
    from recoverctl.actions.prune import ScopePlan, ScopeResult

TargetOpt = Annotated[
    str | None,
    typer.Option("--target", help="Prune this target ([targets.NAME]) instead of the local folder."),
]
AllTargets = Annotated[
    bool, typer.Option("--all-targets", help="Prune every configured target.")
]


def _age(when: datetime) -> str:
    from recoverctl.core.naming import age

    return age(when.astimezone(UTC))


def _plan_table(
    plan: ScopePlan, deleted: tuple[str, ...], dry_run: bool, console: Console
) -> None:
    where = "local folder" if plan.where == "local" else f"target {plan.where}"
    if not plan.items:
        console.print(f"{where}: {escape(plan.location)}: no backup of this stack")
        return
    table = Table(title=f"{where}: {plan.location} ({plan.policy})", title_justify="left")
    for column in ("backup", "age", "verified", "size", "decision"):
        table.add_column(column, overflow="fold")
    for item in plan.items:
        if item.keep:
            decision = "[green]keep[/]: " + escape(", ".join(item.reasons))
        elif item.name in deleted:
            decision = "[red]deleted[/]"
        else:
            decision = "[yellow]delete[/]" + (" (dry run)" if dry_run else "")
        table.add_row(
            escape(item.name), _age(item.created), item.state, render.size(item.size), decision
        )
    render.print_table(table, console)
    for name in plan.leftovers:
        console.print(f"  leftover of an interrupted deletion: {escape(name)}")


def _show(scopes: tuple[ScopeResult, ...], dry_run: bool, console: Console | None = None) -> None:
    for s in scopes:
        _plan_table(s.plan, s.deleted, dry_run, console or render.out)


def prune(
    prod: options.Prod = False,
    target: TargetOpt = None,
    all_targets: AllTargets = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what it keeps and deletes; delete nothing.")
    ] = False,
    yes: options.Yes = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Delete the backups the retention policy no longer keeps (asks first, unless --yes).

    Never deletes the newest backup or the newest deep-verified one; refuses an empty
    policy, and a plan that would leave no verified backup."""
    from recoverctl.actions import prune as action
    from recoverctl.errors import UsageError

    if target is not None and all_targets:
        raise UsageError("Pass --target NAME or --all-targets, not both.", "recoverctl prune --help")
    session = options.session(prod, project_dir, json)
    if dry_run:
        preview = action.plan(session, target=target, all_targets=all_targets)

        def human_preview() -> None:
            _show(preview.scopes, True)
            doomed = sum(len(s.plan.doomed) for s in preview.scopes)
            render.out.print(f"dry run: {doomed} backup(s) would be deleted; nothing was")

        render.emit(preview, human_preview)
        return
    confirmed = None
    if not yes:
        shown = action.plan(session, target=target, all_targets=all_targets)
        if shown.doomed:
            # What the number deletes, before it is asked for; with --json on stderr (stdout
            # carries the envelope alone), as restore shows its plan.
            _show(shown.scopes, False, render.err if json else render.out)
            n = str(len(shown.doomed))
            confirm.typed(n, f"Type {n} to delete these {n} backups", "nothing was deleted")
        confirmed = set(shown.doomed)
    with render.spinner("pruning") as step:
        result = action.prune(
            session, target=target, all_targets=all_targets, confirmed=confirmed, step=step
        )

    def human() -> None:
        _show(result.scopes, False)
        render.out.print(f"[green]pruned[/]: {result.deleted} backup(s) deleted")

    render.emit(result, human)


def routine(
    prod: options.Prod = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """What the timer runs: backup, verify (deep when due), push, drill (when due), prune,
    report.

    A failed step stops every later one but the report. Exit 0 when all went well, 1 when
    a step failed, 3 when only the off-site copy failed (the local backup is good)."""
    from recoverctl.actions import routine as action

    session = options.session(prod, project_dir, json)
    with render.spinner(f"routine ({session.settings.stack})") as step:
        report = action.routine(session, progress=step)
    for w in report.warnings:
        render.warn(w)

    def human() -> None:
        table = Table(title=f"routine: {report.project} ({report.stack})", title_justify="left")
        for column in ("step", "status", "seconds", "detail"):
            table.add_column(column, overflow="fold")
        style = {"ok": "green", "failed": "red", "skipped": "yellow"}
        for s in report.steps:
            table.add_row(
                s.name,
                f"[{style[s.status]}]{s.status}[/]",
                f"{s.seconds:.1f}" if s.status != "skipped" else "-",
                escape(s.detail),
            )
        render.print_table(table)
        verdict = "[green]routine ok[/]" if report.ok else "[red]routine FAILED[/]"
        render.out.print(f"{verdict} in {report.seconds:.1f} s")

    render.emit(report, human)
    if report.error is not None:
        raise report.error


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


def register(app: typer.Typer) -> None:
    app.command()(prune)
    app.command()(routine)
    app.add_typer(schedule_app, name="schedule")
