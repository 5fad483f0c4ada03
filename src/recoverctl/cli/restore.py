"""restore: a backup swapped in for the database, after its plan is shown and confirmed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recoverctl.cli import options, plans, render

AllowNewerData = Annotated[
    bool,
    typer.Option(
        "--allow-newer-data",
        help="Restore even when the backup's data has a migration this checkout lacks "
        "(refused otherwise: check out the commit the error names).",
    ),
]


def restore(
    spec: options.Spec,
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
    target: options.Target = None,
    identity: options.Identity = None,
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
