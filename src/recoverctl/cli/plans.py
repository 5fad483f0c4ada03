"""A restore plan on screen, and the confirmation it needs (restore, recover)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from recoverctl.cli import confirm as confirmation
from recoverctl.cli import render

if TYPE_CHECKING:
    from recoverctl.actions.restore import RestorePlan


def show(plan: RestorePlan, console: Console) -> None:
    created = f"{plan.backup_created:%Y-%m-%d %H:%M} UTC" if plan.backup_created else "unknown"
    what = (
        f"{plan.backup_tables} tables, {plan.backup_rows} rows"
        if plan.backup_tables is not None
        else "no manifest"
    )
    current = (
        f"{plan.current.tables} tables, about {plan.current.rows} rows, "
        f"{render.size(plan.current.size)}"
        if plan.current.exists
        else "does not exist"
    )
    console.print(
        f"[bold]Restore plan[/] ({plan.project}, {plan.stack})\n"
        f"  replace   database {plan.database}: {current}\n"
        f"  with      {plan.backup} ({plan.backup_format}, {what})\n"
        f"  from      {created}"
    )
    for i, s in enumerate(plan.steps, 1):
        console.print(f"  {i}. {escape(s)}")
    for w in plan.warnings:
        render.warn(w)


def confirm(plan: RestorePlan) -> None:
    confirmation.typed(
        plan.database,
        f"Type the database name ({plan.database}) to replace it",
        "nothing was changed",
    )
