"""list: this stack's backups, or what an off-site target holds (--target)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from rich.markup import escape

from recoverctl.cli import options, render

if TYPE_CHECKING:
    from recoverctl.actions.listing import TargetListing
    from recoverctl.cli.options import StackSession

log = logging.getLogger("recoverctl")


def list_(
    prod: options.Prod = False,
    target: options.Target = None,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """List this stack's backups: age, size, format and verification state.

    With --target, what that off-site target holds, each backup complete or not."""
    if target:
        list_target(options.session(prod, project_dir, json), target)
        return
    from rich.table import Table

    from recoverctl.actions import listing as action
    from recoverctl.actions.listing import age

    listing = action.list_backups(options.settings(prod, project_dir, json))

    def human() -> None:
        if not listing.entries:
            render.out.print(f"no {listing.stack} backup in {listing.folder}")
        else:
            table = Table(title=f"{listing.folder} ({listing.stack})", title_justify="left")
            table.add_column("name", overflow="fold")
            for column in ("age", "size", "format", "stack", "verified"):
                table.add_column(column)
            for e in listing.entries:
                state = e.state + (f", {age(e.state_at)} ago" if e.state_at else "")
                style = {"failed": "red", "never": "yellow"}.get(e.state, "green")
                table.add_row(
                    e.path.name,
                    age(e.created),
                    render.size(e.size),
                    e.format,
                    e.stack,
                    f"[{style}]{state}[/]",
                )
            render.print_table(table)
        drill = listing.last_drill
        if drill is not None:
            took = f"{drill.recovery_seconds:.0f} s" if drill.recovery_seconds is not None else "-"
            style = "green" if drill.passed else "red"
            render.out.print(
                f"last drill: [{style}]{drill.result}[/] {age(drill.started_at)} ago, "
                f"{drill.backup} ({drill.source}) back in {took}"
            )
        elif listing.entries:
            render.out.print("no recovery drill yet: recoverctl drill")
        for stray in listing.strays:
            render.warn(stray)

    render.emit(listing, human)


def list_target(session: StackSession, target: str) -> None:
    from recoverctl.actions import listing as action

    found = action.list_target(session, target)
    render.emit(found, lambda: show_listing(found))


def show_listing(found: TargetListing) -> None:
    from rich.table import Table

    from recoverctl.actions.listing import age, parse_backup_name

    backups = found.listing.backups
    if not backups:
        render.out.print(f"no backup on target {found.target} ({escape(found.location)})")
    else:
        table = Table(
            title=f"target {found.target} ({escape(found.location)})", title_justify="left"
        )
        table.add_column("name", overflow="fold")
        for column in ("age", "size", "format", "state"):
            table.add_column(column)
        for b in backups:
            created = b.created_at or parse_backup_name(b.backup)
            state = (
                "[green]complete[/]"
                if b.complete
                else f"[red]incomplete[/]: {escape('; '.join(b.problems))}"
            )
            table.add_row(
                b.backup,
                age(created) if created else "?",
                render.size(b.stored_size),
                b.manifest.format if b.manifest else "?",
                state,
            )
        render.print_table(table)
    for obj in found.listing.foreign:
        log.info(f"not a backup of ours, left alone: {obj.name}")
