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
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """The playbook's quick recovery: env check, up, restore if the database is empty, checks.

    With --target, the backup comes from that off-site target (--from names the copy)."""
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
        )

    def human() -> None:
        for path in result.env_restored:
            render.out.print(f"[green]env file brought back[/] {path} (mode 0600)")
        if result.restored_from:
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
