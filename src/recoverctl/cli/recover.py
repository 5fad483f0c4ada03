"""recover: the playbook's quick recovery, on this machine or a new one."""

from __future__ import annotations

from typing import Annotated

import typer

from recoverctl.cli import options, render


def recover(
    prod: options.Prod = False,
    from_: Annotated[
        str | None,
        typer.Option("--from", help="A backup file or `latest` (default: newest verified)."),
    ] = None,
    yes: options.Yes = False,
    allow_newer_data: Annotated[
        bool,
        typer.Option(
            "--allow-newer-data",
            help="Restore even when the backup's data has a migration this checkout lacks.",
        ),
    ] = False,
    target: options.Target = None,
    identity: options.Identity = None,
    to_time: Annotated[
        str | None,
        typer.Option(
            "--to-time",
            metavar="TIME|latest",
            help="With --target naming a pgBackRest repository (pitr repos): the whole "
            "cluster as it was at TIME (ISO 8601 with a zone, or a local time), or latest "
            "(the default there).",
        ),
    ] = None,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """The playbook's quick recovery: env check, up, restore if the database is empty, checks.

    With --target, the backup comes from that off-site target (--from names the copy). When
    that target holds this stack's pgBackRest repository (pitr repos) and nothing of the
    stack exists here, the whole cluster comes back from it instead, to --to-time (default:
    latest), and the recovered cluster archives from then on."""
    from recoverctl.actions import recover as action
    from recoverctl.actions.recover import RestorePlan
    from recoverctl.cli import plans

    session = options.session(prod, project_dir, json)

    def show(plan: RestorePlan) -> None:
        plans.show(plan, render.err)

    def confirm(plan: RestorePlan) -> None:
        if not yes:
            plans.confirm(plan)

    with render.spinner("recovering") as progress:
        result = action.recover(
            session,
            spec=from_,
            show=show,
            confirm=confirm,
            progress=progress,
            allow_newer_data=allow_newer_data,
            target=target or None,
            identity=identity,
            to_time=to_time,
        )

    def human() -> None:
        for path in result.env_restored:
            render.out.print(f"[green]env file brought back[/] {path} (mode 0600)")
        point = result.point_in_time
        if point is not None:
            render.out.print(
                f"[green]cluster restored[/] from repository {point.repo} (base backup "
                f"{point.base_backup}), asked {point.asked}: reached {point.reached_said}; "
                "archiving on"
            )
        elif result.restored_from:
            render.out.print(f"[green]restored[/] from {result.restored_from}")
        elif result.restore_skipped:
            render.out.print(f"not restored: {result.restore_skipped}")
        render.checks_table(f"recover: {result.project} ({result.stack})", result.checks)
        render.out.print(f"[bold]one step left:[/] {result.manual_step}")
        verdict = "[green]recovered[/]" if result.ok else "[red]recovered with problems[/]"
        serving = (
            f" (serving after {result.serving_seconds:.0f} s: the recovery time)"
            if result.serving_seconds is not None
            else ""
        )
        render.out.print(f"{verdict} in {result.seconds:.0f} s{serving}")

    render.emit(result, human)
    if not result.ok:
        raise render.checks_failed(
            "recovered with problems",
            result.checks,
            "Each failing row says what to do; `recoverctl doctor` checks again.",
        )
