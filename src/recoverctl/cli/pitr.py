"""pitr enable, disable, status, backup: continuous archiving with pgBackRest."""

from __future__ import annotations

import logging
from datetime import datetime
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape

from recoverctl.cli import confirm, options, render

log = logging.getLogger("recoverctl")

pitr_app = typer.Typer(
    help="Point-in-time recovery: WAL archived continuously with pgBackRest, restores to "
    "any moment (restore --to-time).",
    no_args_is_help=True,
)


def _when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z") if value else "none"


@pitr_app.command("enable")
def enable(
    prod: options.Prod = False,
    yes: options.Yes = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Turn archiving on: the db service's archive settings, the stanza, a first full backup.

    The settings go in a compose override recoverctl owns (.recoverctl/pitr-PROJECT.yml),
    never in the tracked compose files; pgBackRest's environment, secrets included, in a
    private env file only the db service reads. The repositories' passphrase is made once
    (.env.pitr, mode 0600) and sealed off-site with the env files. Restarts db (asks first);
    running it again changes only what the settings changed."""
    from recoverctl.actions import pitr as action

    session = options.session(prod, project_dir, json)
    plan = action.plan_enable(session)
    if plan.restart and not yes:
        render.warn(
            f"db restarts with archiving on: {', '.join(plan.services)} stop for the restart "
            "(usually under a minute)"
        )
        confirm.asked("Restart db now?", "nothing was changed")
    result = action.enable(session, plan, step=log.info)

    def human() -> None:
        for r in plan.repos:
            render.out.print(f"repository {r.name} ({r.kind}): {escape(r.location)}")
        if plan.new_passphrase:
            render.out.print(
                f"[green]made[/] the repositories' passphrase: {escape(str(plan.passphrase_file))}"
                " (mode 0600; keep it: without it the archive cannot be read)"
            )
        if result.restarted and result.restart_seconds is not None:
            render.out.print(f"db restarted with archiving on in {result.restart_seconds:.1f} s")
        else:
            render.out.print("archiving was already on: nothing restarted")
        for b in result.full_backups:
            render.out.print(f"[green]full backup[/] {escape(b)}")
        if result.env_push is not None and result.env_push.ok:
            render.out.print("the passphrase is sealed off-site with the env files")
        render.out.print("[green]archiving works[/]: recoverctl pitr status shows the window")

    render.emit(result, human)
    if result.error is not None:
        raise result.error


@pitr_app.command("disable")
def disable(
    prod: options.Prod = False,
    yes: options.Yes = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Turn archiving off; the repositories and the passphrase are kept.

    Restarts db without the override (asks first). The window stops growing: restores to a
    time already archived still work."""
    from recoverctl.actions import pitr as action

    session = options.session(prod, project_dir, json)
    if not yes:
        confirm.asked("Restart db with archiving off?", "nothing was changed")
    result = action.disable(session, step=log.info)

    def human() -> None:
        if not result.was_enabled:
            render.out.print("archiving was not enabled: nothing changed")
        else:
            render.out.print(
                f"archiving is off; db restarted in {result.restart_seconds or 0:.1f} s"
            )
        for where in result.kept:
            render.out.print(f"kept repository {escape(where)}")

    render.emit(result, human)


@pitr_app.command("status")
def status(
    prod: options.Prod = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """The recoverable window of each repository, its base backups, and the archiver now."""
    from recoverctl.actions import pitr as action

    session = options.session(prod, project_dir, json)
    result = action.status(session)

    def human() -> None:
        a = result.archive
        if a is None:
            render.out.print("[yellow]archiving is not enabled[/]: recoverctl pitr enable")
        else:
            state = "[red]FAILING[/]" if a.failing else "[green]archiving[/]"
            render.out.print(
                f"{state}: lag {a.lag_seconds:.0f} s, {a.ready_segments} segment(s) waiting, "
                f"pg_wal {render.size(a.pg_wal_bytes)}, last archived {a.last_archived_wal or 'none'}"
                f" at {_when(a.last_archived_at)}"
            )
            if a.last_failed_wal:
                render.out.print(
                    f"last failure: {a.last_failed_wal} at {_when(a.last_failed_at)} "
                    f"({a.failed_count} in all)"
                )
        for r in result.repos:
            mark = "[green]ok[/]" if r.ok else f"[red]{escape(r.message)}[/]"
            render.out.print(f"{r.name} ({r.kind}, {escape(r.location)}): {mark}")
            render.out.print(f"  window: {_when(r.earliest)} to {_when(r.latest)}")
            for b in r.backups:
                render.out.print(
                    f"  {b.label} {b.type}, ended {_when(b.stopped)}, {render.size(b.stored)} stored"
                )

    render.emit(result, human)


class Kind(StrEnum):
    full = "full"
    diff = "diff"
    incr = "incr"


@pitr_app.command("backup")
def backup(
    type_: Annotated[
        Kind, typer.Option("--type", help="full, diff (since the last full) or incr.")
    ] = Kind.full,
    prod: options.Prod = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """A pgBackRest base backup to every repository (the routine takes them when due)."""
    from recoverctl.actions import pitr as action

    session = options.session(prod, project_dir, json)
    result = action.backup(session, type_.value, step=log.info)

    def human() -> None:
        for b in result.backups:
            render.out.print(
                f"[green]{b.type} backup[/] {b.label} to {b.repo} in {b.seconds:.1f} s"
            )

    render.emit(result, human)
