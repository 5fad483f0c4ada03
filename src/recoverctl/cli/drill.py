"""drill: a backup restored into a throwaway copy of the stack, checked, timed, removed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from recoverctl.cli import options, render
from recoverctl.errors import UsageError

if TYPE_CHECKING:
    from recoverctl.actions.drill import DrillResult


def drill(
    prod: options.Prod = False,
    from_: Annotated[
        str,
        typer.Option(
            "--from",
            help="The backup to drill: a file, or `latest` (the default); with --target, "
            "the copy's name there.",
        ),
    ] = "latest",
    to_time: Annotated[
        str | None,
        typer.Option(
            "--to-time",
            metavar="TIME|latest",
            help="Drill the live stack's pgBackRest repository instead of a dump: the cluster "
            "restored to TIME (ISO 8601 with a zone, or a local time) or latest in a "
            "throwaway, its vault database restored into the drill stack; with --target, "
            "that target's repository. No --from then.",
        ),
    ] = None,
    target: options.Target = None,
    identity: options.Identity = None,
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            dir_okay=False,
            help="The key export whose secrets the drill opens (default: key_file from settings).",
        ),
    ] = None,
    passphrase_stdin: Annotated[
        bool,
        typer.Option("--passphrase-stdin", help="Read the key export's passphrase from stdin."),
    ] = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Prove a backup brings the vault back: restore it into a throwaway copy of the stack
    (<project>-drill), check it, time it, then remove the copy. The live stack is never
    touched. With --target, the copy that off-site target holds is drilled. With
    --to-time TIME, the pgBackRest repository (recoverctl pitr) is drilled at that point,
    and the record keeps the point reached."""
    from recoverctl.actions import drill as action

    if to_time is not None and from_ != "latest":
        raise UsageError(
            "Give a backup (--from) or --to-time TIME, one of the two.",
            "recoverctl drill --from latest, or recoverctl drill --to-time latest",
        )
    session = options.session(prod, project_dir, json)
    known_key = key_file is not None or session.settings.key_file is not None
    passphrase = options.passphrase(passphrase_stdin, "Key export passphrase", ask=known_key)
    with render.spinner("drilling") as step:
        result = action.drill(
            session,
            spec=from_,
            target=target,
            identity=identity,
            key_file=key_file,
            passphrase=passphrase,
            to_time=to_time,
            progress=step,
        )
    for warning in result.warnings:
        render.warn(warning)
    render.emit(result, lambda: _show(result))
    failed = action.failure(result)
    if failed is not None:
        raise failed


def _show(result: DrillResult) -> None:
    from rich.table import Table

    r = result.record
    render.checks_table(f"drill: {r.backup} in {r.drill_project} ({r.stack})", result.checks)
    table = Table(title="steps", title_justify="left")
    table.add_column("step", overflow="fold")
    table.add_column("seconds", justify="right")
    for s in r.steps:
        table.add_row(s.step, f"{s.seconds:.1f}")
    render.print_table(table)
    if r.point_in_time is not None:
        p = r.point_in_time
        render.out.print(
            f"point in time: asked {p.asked}; reached {p.reached_said} (the last commit "
            f"replayed, from {p.repo}, base backup {p.base_backup}, {p.restore_seconds:.1f} s)"
        )
    took = f"{r.recovery_seconds:.1f} s" if r.recovery_seconds is not None else "not reached"
    verdict = "[green]drill passed[/]" if r.passed else "[red]drill FAILED[/]"
    render.out.print(
        f"{verdict}: recovery time {took} (start to the restored vault serving its data), "
        f"{r.seconds:.1f} s in all"
    )
    if result.path is not None:
        render.out.print(f"  record: {result.path}")


