"""restore: a backup swapped in for the database, after its plan is shown and confirmed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from recoverctl.cli import options, plans, render
from recoverctl.errors import UsageError

if TYPE_CHECKING:
    from recoverctl.actions.restore import StackSession

AllowNewerData = Annotated[
    bool,
    typer.Option(
        "--allow-newer-data",
        help="Restore even when the backup's data has a migration this checkout lacks "
        "(refused otherwise: check out the commit the error names).",
    ),
]


ToTime = Annotated[
    str | None,
    typer.Option(
        "--to-time",
        metavar="TIME|latest",
        help="Restore the database as it was at TIME (ISO 8601 with a zone, or a local "
        "time, said back with its zone), or latest: from the pgBackRest repository "
        "(recoverctl pitr), through a throwaway copy; no SPEC then.",
    ),
]


def restore(
    spec: Annotated[
        str | None,
        typer.Argument(help="A backup file, or `latest` for this stack's newest."),
    ] = None,
    to_time: ToTime = None,
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

    With --target, the backup is pulled from that off-site target first. With --to-time,
    --target names the repository to restore from (the first of the pitr repos otherwise)."""
    from recoverctl.actions import restore as action

    if (spec is None) == (to_time is None):
        raise UsageError(
            "Give a backup (SPEC) or --to-time TIME, one of the two.",
            "recoverctl restore latest, or recoverctl restore --to-time 2026-12-02T14:03:00+01:00",
        )
    session = options.session(prod, project_dir, json)
    if to_time is not None:
        _to_time(session, to_time, target, yes, dry_run, not no_safety_backup, allow_newer_data)
        return
    assert spec is not None
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


def _to_time(
    session: StackSession,
    when: str,
    target: str | None,
    yes: bool,
    dry_run: bool,
    safety_backup: bool,
    allow_newer_data: bool,
) -> None:
    from recoverctl.actions import restore as action

    with render.spinner("restoring the cluster to the point in a throwaway copy") as step:
        prep = action.prepare_to_time(
            session,
            when,
            target=target,
            safety_backup=safety_backup,
            allow_newer_data=allow_newer_data,
            step=step,
        )
    plan, point = prep.prepared.plan, prep.point

    def reached(console: Console) -> None:
        console.print(
            f"point in time: asked {point.asked}; reached {point.reached_said} (the last "
            f"commit replayed, from {point.repo}, base backup {point.base_backup}, "
            f"{point.seconds:.1f} s)"
        )

    if dry_run:

        def show() -> None:
            reached(render.out)
            plans.show(plan, render.out)

        render.emit(action.ToTimePlan(plan, point), show)
        return
    reached(render.err)
    plans.show(plan, render.err)
    if not yes:
        plans.confirm(plan)
    with render.spinner("restoring") as step:
        result = action.restore_to_time(prep, session, step=step)

    def human() -> None:
        done = result.restore
        render.out.print(
            f"[green]restored[/] {plan.database} to {point.reached_said} "
            f"(asked: {point.asked}): {done.tables} tables, {done.rows} rows, "
            f"{point.seconds + done.seconds:.1f} s"
        )
        if done.safety_backup:
            render.out.print(f"  safety backup of the previous data: {done.safety_backup}")
        for line in done.drift:
            render.warn(f"since the app started: {line}")

    render.emit(result, human)
