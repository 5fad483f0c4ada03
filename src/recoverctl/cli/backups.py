"""backup, list, verify, restore."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from recoverctl.cli import options, render
from recoverctl.errors import RecoverctlError, UsageError

FormatOpt = Annotated[
    str,
    typer.Option(
        "--format", "-F", help="custom (pg_dump -Fc, the default) or sql (plain, as the playbook)."
    ),
]
Spec = Annotated[str, typer.Argument(help="A backup file, or `latest` for this stack's newest.")]


def backup(
    prod: options.Prod = False,
    fmt: FormatOpt = "custom",
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", "-o", help="Where to write it (default: backups/)."),
    ] = None,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Dump the database to a timestamped file with a manifest; nothing half-written stays."""
    from recoverctl.actions import backup as action

    if fmt not in ("custom", "sql"):
        raise UsageError(f"Unknown format {fmt!r}.", "Use --format custom or --format sql.")
    settings = options.settings(prod, project_dir, json)
    with render.transfer(f"pg_dump ({fmt})") as on_bytes:
        result = action.backup(settings, fmt=fmt, output_dir=output_dir, on_bytes=on_bytes)  # type: ignore[arg-type]
    for w in result.warnings:
        render.warn(w)

    def human() -> None:
        m = result.manifest
        rows = sum(v for v in m.tables.values() if v)
        render.out.print(
            f"[green]backup written[/] {result.path}\n"
            f"  {render.size(m.size)}, {m.format}, {len(m.tables)} tables, {rows} rows, "
            f"{m.duration_seconds:.1f} s\n  sha256 {m.sha256}"
        )

    render.emit(result, human)


def list_(
    prod: options.Prod = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """List this stack's backups: age, size, format and verification state."""
    from rich.table import Table

    from recoverctl.actions import catalog

    settings = options.settings(prod, project_dir, json)
    listing = catalog.list_backups(settings)

    def human() -> None:
        if not listing.entries:
            render.out.print(f"no {listing.stack} backup in {listing.folder}")
        else:
            table = Table(title=f"{listing.folder} ({listing.stack})", title_justify="left")
            table.add_column("name", overflow="fold")
            for column in ("age", "size", "format", "stack", "verified"):
                table.add_column(column)
            for e in listing.entries:
                state = e.state + (f", {catalog.age(e.state_at)} ago" if e.state_at else "")
                style = {"failed": "red", "never": "yellow"}.get(e.state, "green")
                table.add_row(
                    e.path.name,
                    catalog.age(e.created),
                    render.size(e.size),
                    e.format,
                    e.stack,
                    f"[{style}]{state}[/]",
                )
            render.out.print(table)
        for stray in listing.strays:
            render.warn(stray)

    render.emit(listing, human)


def verify(
    spec: Spec,
    deep: Annotated[
        bool, typer.Option("--deep", help="Also restore it into a throwaway database.")
    ] = False,
    prod: options.Prod = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Check a backup; exit 0 only when it is good. --deep proves it restores."""
    from recoverctl.actions import verify as action

    settings = options.settings(prod, project_dir, json)
    with render.transfer("restoring into a throwaway database") as on_bytes:
        report = action.verify(settings, spec, deep=deep, on_bytes=on_bytes)

    def human() -> None:
        kind = "deep" if deep else "quick"
        render.checks_table(f"{report.path.name} ({kind} verification)", report.checks)
        verdict = "[green]good[/]" if report.ok else "[red]BAD: do not rely on it[/]"
        render.out.print(f"{verdict} ({report.seconds:.1f} s)")

    render.emit(report, human)
    if not report.ok:
        raise typer.Exit(1)


def restore(
    spec: Spec,
    prod: options.Prod = False,
    yes: options.Yes = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and change nothing.")
    ] = False,
    no_safety_backup: Annotated[
        bool,
        typer.Option("--no-safety-backup", help="Skip the backup of the current database."),
    ] = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Replace the database with a backup: verified first, swapped in whole, or not at all."""
    from recoverctl.actions import restore as action

    settings = options.settings(prod, project_dir, json)
    with render.spinner("verifying the backup and planning"):
        prep = action.prepare(settings, spec, safety_backup=not no_safety_backup, hash_now=dry_run)
    plan = prep.plan
    if dry_run:
        render.emit(plan, lambda: _show_plan(plan, render.out))
        return
    if not json:
        _show_plan(plan, render.err)
    if not yes:
        _confirm(plan.database)
    with render.spinner("restoring") as step:
        result = action.restore(prep, settings, step=step)

    def human() -> None:
        render.out.print(
            f"[green]restored[/] {plan.database} from {Path(plan.backup).name}: "
            f"{result.tables} tables, {result.rows} rows, {result.seconds:.1f} s"
        )
        if result.safety_backup:
            render.out.print(f"  safety backup of the previous data: {result.safety_backup}")
        for line in result.drift:
            render.warn(f"since the app started: {line}")
        if result.kept:
            render.warn(
                f"the previous database could not be dropped and is kept as {result.kept}; "
                "`recoverctl doctor` lists it"
            )

    render.emit(result, human)


def _show_plan(plan: object, console: Console) -> None:
    from recoverctl.core.restore_plan import RestorePlan

    assert isinstance(plan, RestorePlan)
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


def _confirm(database: str) -> None:
    try:
        typed = typer.prompt(f"Type the database name ({database}) to replace it")
    except (typer.Abort, EOFError):
        raise UsageError(
            "No confirmation given; nothing was changed.",
            "Run it in a terminal and type the database name, or pass --yes.",
        ) from None
    if typed.strip() != database:
        raise RecoverctlError(
            f"You typed {typed.strip()!r}, not {database!r}; nothing was changed.",
            "Type the database name exactly, or pass --yes.",
        )


def register(app: typer.Typer) -> None:
    app.command()(backup)
    app.command("list")(list_)
    app.command()(verify)
    app.command()(restore)
