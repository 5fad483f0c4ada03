"""prune: the backups the retention policy no longer keeps, deleted (locally or on targets)."""

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
    from recoverctl.actions.prune import age

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
