"""routine: what the timer runs, each step in order, and its report."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from recoverctl.cli import options, render


def routine(
    prod: options.Prod = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """What the timer runs: backup, verify (deep when due), push, pitr (the base backup
    that is due, verified, then expired), drill (when due), prune, report.

    A failed step stops every later one but the report. Exit 0 when all went well, 1 when
    a step failed or archiving has stalled, 3 when only the off-site copy failed (the local
    backup is good)."""
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
