"""backup, list, verify, restore."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recoverctl.cli import offsite, options, plans, render
from recoverctl.errors import ErrorCode, RecoverctlError, UsageError

FormatOpt = Annotated[
    str,
    typer.Option(
        "--format", "-F", help="custom (pg_dump -Fc, the default) or sql (plain, as the playbook)."
    ),
]
Spec = Annotated[str, typer.Argument(help="A backup file, or `latest` for this stack's newest.")]
AllowNewerData = Annotated[
    bool,
    typer.Option(
        "--allow-newer-data",
        help="Restore even when the backup's data has a migration this checkout lacks "
        "(refused otherwise: check out the commit the error names).",
    ),
]


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
    session = options.session(prod, project_dir, json)
    warmed = offsite.prewarm(session)
    with render.transfer(f"pg_dump ({fmt})") as on_bytes:
        result = action.backup(session, fmt=fmt, output_dir=output_dir, on_bytes=on_bytes)  # type: ignore[arg-type]
    for w in result.warnings:
        render.warn(w)
    done = offsite.push_after_backup(session, result, warmed)

    def human() -> None:
        m = result.manifest
        rows = sum(v for v in m.tables.values() if v)
        render.out.print(
            f"[green]backup written[/] {result.path}\n"
            f"  {render.size(m.size)}, {m.format}, {len(m.tables)} tables, {rows} rows, "
            f"{m.duration_seconds:.1f} s\n  sha256 {m.sha256}"
        )
        offsite.show_copies(done)
        for c in done.env.copies if done.env is not None else ():
            if c.status == "pushed":
                render.out.print(f"[green]pushed[/] the env files to {c.target}: they changed")

    render.emit(done, human)
    if done.error is not None:
        raise done.error


def list_(
    prod: options.Prod = False,
    target: offsite.Target = None,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """List this stack's backups: age, size, format and verification state.

    With --target, what that off-site target holds, each backup complete or not."""
    if target:
        offsite.list_target(options.session(prod, project_dir, json), target)
        return
    from rich.table import Table

    from recoverctl.actions import listing as action
    from recoverctl.core.naming import age

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


def verify(
    spec: Spec,
    deep: Annotated[
        bool, typer.Option("--deep", help="Also restore it into a throwaway database.")
    ] = False,
    prod: options.Prod = False,
    target: offsite.Target = None,
    identity: offsite.Identity = None,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Check a backup; exit 0 only when it is good. --deep proves it restores.

    With --target, a copy there: its sealed objects, or with an identity the backup itself."""
    from recoverctl.actions import verify as action

    session = options.session(prod, project_dir, json)
    if target:
        offsite.verify_target(session, spec, target=target, identity=identity, deep=deep)
        return
    with render.transfer("restoring into a throwaway database") as on_bytes:
        report = action.verify(session, spec, deep=deep, on_bytes=on_bytes)

    def human() -> None:
        kind = "deep" if deep else "quick"
        render.checks_table(f"{report.path.name} ({kind} verification)", report.checks)
        verdict = "[green]good[/]" if report.ok else "[red]BAD: do not rely on it[/]"
        render.out.print(f"{verdict} ({report.seconds:.1f} s)")

    render.emit(report, human)
    if not report.ok:
        raise RecoverctlError(
            f"{report.path.name} failed verification: {render.failing(report.checks)}.",
            "Do not rely on it: each failing check says why; take or pick another backup.",
            code=ErrorCode.BACKUP_CORRUPT,
        )


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
    allow_newer_data: AllowNewerData = False,
    target: offsite.Target = None,
    identity: offsite.Identity = None,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Replace the database with a backup: verified first, swapped in whole, or not at all.

    With --target, the backup is pulled from that off-site target first."""
    from recoverctl.actions import restore as action

    session = options.session(prod, project_dir, json)
    with render.spinner("verifying the backup and planning"):
        prep = action.prepare(
            session,
            spec,
            safety_backup=not no_safety_backup,
            dry_run=dry_run,
            allow_newer_data=allow_newer_data,
            target=target or None,
            identity=identity,
        )
    plan = prep.plan
    if dry_run:
        render.emit(plan, lambda: plans.show(plan, render.out))
        return
    # On stderr with --json too: its warnings then reach the envelope, and a log the person.
    plans.show(plan, render.err)
    if not yes:
        plans.confirm(plan)
    with render.spinner("restoring") as step:
        result = action.restore(prep, session, step=step)

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


def register(app: typer.Typer) -> None:
    app.command()(backup)
    app.command("list")(list_)
    app.command()(verify)
    app.command()(restore)
