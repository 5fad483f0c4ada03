"""upgrade-postgres: a major PostgreSQL upgrade in one command, verified, the old cluster
kept to roll back to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from recoverctl.cli import confirm, options, pushing, render

if TYPE_CHECKING:
    from recoverctl.actions.upgrade import EnvPushResult


def upgrade_postgres(
    to: Annotated[
        int | None, typer.Option("--to", help="The major version to move to (17).")
    ] = None,
    rollback: Annotated[
        bool,
        typer.Option("--rollback", help="Back to the kept cluster (the new one is dumped aside first)."),
    ] = False,
    forget_old: Annotated[
        bool,
        typer.Option(
            "--forget-old",
            help="Remove the kept volume: the old cluster's, or after --rollback the new one's.",
        ),
    ] = False,
    image: Annotated[
        str | None,
        typer.Option("--image", help="The new version's image (default: the current one's at --to)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Check everything and print the plan; change nothing.")
    ] = False,
    prod: options.Prod = False,
    yes: options.Yes = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Upgrade the stack's PostgreSQL to a new major version (asks first, unless --yes).

    A deep-verified backup first; the new cluster on a volume of its own beside the live
    one; the app stopped; the new version's pg_dump loaded into it, every table's rows,
    roles, grants and settings compared; then the env file switched (POSTGRES_IMAGE,
    POSTGRES_VOLUME) and the stack checked. The old volume is kept, untouched. Any failure
    before the switch is checked puts the old cluster back in service; a run cut short is
    finished or undone by the next one."""
    from recoverctl.actions import upgrade as action
    from recoverctl.errors import UsageError

    session = options.session(prod, project_dir, json)
    modes = [name for name, on in (("--to", to is not None), ("--rollback", rollback),
                                   ("--forget-old", forget_old)) if on]  # fmt: skip
    if len(modes) != 1:
        raise UsageError(
            "Pass one of --to MAJOR, --rollback or --forget-old.",
            "recoverctl upgrade-postgres --to 17",
        )

    def ask(plan: list[str]) -> None:
        if yes:
            return
        console = render.err if json else render.out
        for line in plan:
            console.print(f"  - {escape(line)}")
        confirm.asked("Go on?", "nothing was changed")

    if forget_old:

        def typed(volume: str) -> None:
            if not yes:
                confirm.typed(
                    volume, f"Type {volume} to remove it for good", "the volume is kept"
                )

        forgotten = action.forget_old(session, confirm=typed)

        def human_forget() -> None:
            if forgotten.removed:
                render.out.print(f"[green]removed[/] volume {escape(forgotten.removed)}")
            else:
                render.out.print("no kept volume to remove")
            render.out.print(f"serving: {escape(forgotten.serving)}")

        render.emit(forgotten, human_forget)
        return
    if rollback:
        with render.spinner("rolling back") as step:
            back = action.rollback(session, confirm=ask, step=step)

        def human_back() -> None:
            if back.outcome == "nothing_to_do":
                render.out.print("no upgrade to roll back")
            elif back.outcome == "undone":
                render.out.print("the upgrade that stopped half-way is undone")
            else:
                render.out.print(f"[green]rolled back[/]: {escape(back.serving)} serves")
            if back.aside:
                render.out.print(
                    f"the new cluster's data, with every write since the upgrade: "
                    f"{escape(str(back.aside))} (a newer version's dump: recoverctl cannot "
                    "load it into this older server)"
                )
            if back.kept_volume:
                render.out.print(
                    f"kept: {escape(back.kept_volume)} (remove it: recoverctl upgrade-postgres "
                    "--forget-old)"
                )
            _full_backups(back.pitr_backups)
            _env_pushed(back.env)
            _steps(back.steps)

        render.emit(back, human_back)
        if back.error is not None:
            raise back.error
        return
    assert to is not None
    with render.spinner("upgrading") as step:
        result = action.upgrade(session, to, image=image, dry_run=dry_run, confirm=ask, step=step)

    def human() -> None:
        if result.undone:
            render.out.print(f"undone first: an upgrade that stopped half-way ({result.undone})")
        for w in result.warnings:
            render.warn(w)
        if result.outcome == "nothing_to_do":
            render.out.print(f"nothing to do: {escape(result.serving)} serves already")
            return
        if result.outcome == "dry_run":
            render.out.print(f"dry run: PostgreSQL {result.from_major} to {result.to_major}; would:")
            for line in result.plan:
                render.out.print(f"  - {escape(line)}")
            return
        render.out.print(
            f"[green]upgraded[/]: PostgreSQL {result.from_major} to {result.to_major}, "
            f"{result.tables} tables, {result.rows} rows compared"
        )
        render.out.print(f"serving: {escape(result.serving)}")
        if result.app_downtime_seconds is not None:
            render.out.print(f"the app was down for {result.app_downtime_seconds:.1f} s")
        if result.backup:
            render.out.print(f"backup before the upgrade: {escape(str(result.backup))}")
        for c in result.offsite:
            pushing.show_copy(c)
        _full_backups(result.pitr_backups)
        _env_pushed(result.env)
        if result.old_volume:
            render.out.print(
                f"kept, untouched: {escape(result.old_volume)} (back to it: recoverctl "
                "upgrade-postgres --rollback; remove it: --forget-old)"
            )
        _steps(result.steps)

    render.emit(result, human)
    if result.error is not None:
        raise result.error


def _env_pushed(env: EnvPushResult | None) -> None:
    for c in env.copies if env is not None else ():
        if c.status == "pushed":
            render.out.print(
                f"[green]pushed[/] the env files to {escape(c.target)}: they name the image now"
            )


def _full_backups(taken: tuple[str, ...]) -> None:
    for line in taken:
        render.out.print(
            f"archiving follows the serving cluster; full backup {escape(line)}"
        )


def _steps(steps: tuple[tuple[str, float], ...]) -> None:
    for name, seconds in steps:
        render.out.print(f"  {seconds:7.1f} s  {escape(name)}")
