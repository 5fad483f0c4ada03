"""Off-site copies: push, pull, keys new-identity; and what list, verify, restore, recover
and backup show of a target (their own modules call in here for it)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from recoverctl.cli import options, render

if TYPE_CHECKING:
    from recoverctl.actions.backup import BackupDone
    from recoverctl.actions.verify import OffsiteReport
    from recoverctl.services.dump import BackupResult
    from recoverctl.services.offsite import Copy, TargetListing
    from recoverctl.services.session import StackSession

log = logging.getLogger("recoverctl")

Target = Annotated[
    str | None,
    typer.Option(
        "--target",
        "-t",
        metavar="NAME",
        help="An off-site target: [targets.NAME] in the settings file.",
        show_default=False,
    ),
]
Identity = Annotated[
    Path | None,
    typer.Option(
        "--identity",
        "-i",
        metavar="FILE",
        dir_okay=False,
        help="The age identity (private key) that opens the off-site copies. Default: "
        "RECOVERCTL_IDENTITY_FILE, then identity_file in the settings file.",
        show_default=False,
    ),
]
OutputDir = Annotated[
    Path | None,
    typer.Option(
        "--output-dir", "-o", help="Where to put it (default: backups/).", show_default=False
    ),
]


def push(
    spec: Annotated[
        str | None,
        typer.Argument(help="A backup file, or `latest` (the default) for this stack's newest."),
    ] = None,
    target: options.Targets = None,
    missing: Annotated[
        bool,
        typer.Option("--missing", help="Push every local backup a target lacks, newest first."),
    ] = False,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Upload again over a complete copy (one verify --target found damaged).",
        ),
    ] = False,
    prod: options.Prod = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Copy a backup to the off-site targets (sealed with age), or every one they lack."""
    from recoverctl.actions import push as action

    session = options.session(prod, project_dir, json)
    with render.transfer("uploading") as on_bytes:
        report = action.push(
            session, spec, targets=target, missing=missing, replace=replace,
            step=log.info, on_bytes=on_bytes,
        )  # fmt: skip

    def human() -> None:
        for c in report.copies:
            show_copy(c)

    render.emit(report, human)
    if report.error is not None:
        raise report.error


def show_copy(c: Copy) -> None:
    where = f"{c.target} ({c.location})" if c.location else c.target
    if c.status == "pushed":
        sealed = "sealed" if c.encryption == "age" else "[yellow]in clear[/]"
        render.out.print(
            f"[green]pushed[/] {c.backup} to {escape(where)}: "
            f"{render.size(c.size)} {sealed}, {c.seconds:.1f} s"
        )
    elif c.status == "present":
        render.out.print(f"[green]already there[/] {c.backup} on {escape(where)}, complete")
    else:
        render.out.print(f"[red]NOT copied[/] {c.backup} to {escape(where)}")
    if c.removed:
        render.out.print(f"  removed what an unfinished upload left: {', '.join(c.removed)}")


def pull(
    spec: Annotated[
        str, typer.Argument(help="A backup's name on the target, or `latest` (its newest).")
    ],
    target: Target = None,
    identity: Identity = None,
    output_dir: OutputDir = None,
    prod: options.Prod = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Bring a copy back from a target: checked, decrypted, an ordinary local backup."""
    from recoverctl.actions import pull as action

    session = options.session(prod, project_dir, json)
    name = require_target(target, "pull")
    with render.transfer(f"downloading from target {name}") as on_bytes:
        pulled = action.pull(
            session, spec, target=name, identity=identity, output_dir=output_dir,
            on_bytes=on_bytes,
        )  # fmt: skip

    def human() -> None:
        render.out.print(
            f"[green]pulled[/] {pulled.path}\n"
            f"  from target {pulled.target} ({escape(pulled.location)}), "
            f"{render.size(pulled.manifest.size)}, {pulled.manifest.format}, "
            f"{pulled.manifest.stack} backup of {pulled.manifest.started_at:%Y-%m-%d %H:%M} UTC\n"
            f"  sha256 {pulled.manifest.sha256}, as in its manifest\n"
            f"  next: recoverctl verify {pulled.path} --deep"
        )

    render.emit(pulled, human)


def require_target(target: str | None, command: str) -> str:
    if not target:
        from recoverctl.errors import UsageError

        raise UsageError(
            f"{command} needs --target NAME.",
            "The targets are the [targets.NAME] tables of the settings file.",
        )
    return target


def new_identity(
    file: Annotated[
        Path, typer.Argument(help="Where to write the private key: outside the project.")
    ],
    prod: options.Prod = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Create the age identity that opens the off-site copies; print its public key."""
    from recoverctl.actions import identity as action

    made = action.new_identity(options.settings(prod, project_dir, json), file)

    def human() -> None:
        render.out.print(made.recipient, markup=False)
        render.err.print(f"[green]created[/] {escape(str(made.path))} (mode 0600)")
        for line in made.next_steps:
            render.err.print(f"  - {escape(line)}")

    render.emit(made, human)


# --- what other commands show of a target ----------------------------------------------


def list_target(session: StackSession, target: str) -> None:
    from recoverctl.actions import listing as action

    found = action.list_target(session, target)
    render.emit(found, lambda: show_listing(found))


def show_listing(found: TargetListing) -> None:
    from rich.table import Table

    from recoverctl.core.naming import age, parse_backup_name

    backups = found.listing.backups
    if not backups:
        render.out.print(f"no backup on target {found.target} ({escape(found.location)})")
    else:
        table = Table(
            title=f"target {found.target} ({escape(found.location)})", title_justify="left"
        )
        table.add_column("name", overflow="fold")
        for column in ("age", "size", "format", "state"):
            table.add_column(column)
        for b in backups:
            created = b.created_at or parse_backup_name(b.backup)
            state = (
                "[green]complete[/]"
                if b.complete
                else f"[red]incomplete[/]: {escape('; '.join(b.problems))}"
            )
            table.add_row(
                b.backup,
                age(created) if created else "?",
                render.size(b.stored_size),
                b.manifest.format if b.manifest else "?",
                state,
            )
        render.print_table(table)
    for obj in found.listing.foreign:
        log.info(f"not a backup of ours, left alone: {obj.name}")


def show_offsite_report(report: OffsiteReport) -> None:
    kind = ("deep" if report.deep else "quick") if report.decrypted else "sealed objects"
    render.checks_table(f"{report.backup} on target {report.target} ({kind})", report.checks)
    if not report.ok:
        verdict = "[red]BAD: do not rely on it[/]"
    elif report.decrypted:
        verdict = "[green]good[/]"
    else:
        # Only the stored bytes were compared with what was uploaded: nothing was opened.
        verdict = "[green]intact as uploaded[/] (not opened: --identity FILE decrypts it)"
    render.out.print(f"{verdict} ({report.seconds:.1f} s)")


def register(app: typer.Typer) -> None:
    from recoverctl.cli.care import keys_app

    app.command()(push)
    app.command()(pull)
    keys_app.command("new-identity")(new_identity)


def verify_target(
    session: StackSession, spec: str, *, target: str, identity: Path | None, deep: bool
) -> None:
    from recoverctl.actions import verify as action
    from recoverctl.errors import ErrorCode, RecoverctlError

    what = "restoring into a throwaway database" if deep else f"reading from target {target}"
    with render.transfer(what) as on_bytes:
        report = action.verify_offsite(
            session, spec, target=target, identity=identity, deep=deep, on_bytes=on_bytes
        )
    render.emit(report, lambda: show_offsite_report(report))
    if not report.ok:
        raise RecoverctlError(
            f"{report.backup} on target {target} failed verification: "
            f"{render.failing(report.checks)}.",
            "Do not rely on that copy: each failing check says why; push the backup again "
            "or use another copy.",
            code=ErrorCode.BACKUP_CORRUPT if report.decrypted else ErrorCode.OBJECT_CORRUPT,
        )


def prewarm(session: StackSession) -> Callable[[], None]:
    """The S3 targets' clients made while backup dumps (see services/offsite/lookup.py).
    Without targets, the off-site services are not even imported (boto3 and paramiko are
    slow to import)."""
    if not session.settings.targets:
        return _nothing
    from recoverctl.services import offsite

    return offsite.prewarm(session)


def _nothing() -> None:
    return None


def push_after_backup(
    session: StackSession, made: BackupResult, warmed: Callable[[], None] | None = None
) -> BackupDone:
    """backup's push to every configured target, its failure in the result (exit 3, the
    local backup stays), raised once the backup's own result is out."""
    from recoverctl.actions import backup as action

    if warmed is not None:
        warmed()
    if not session.settings.targets:
        return action.BackupDone(made)
    with render.transfer("uploading to the off-site targets") as on_bytes:
        return action.push(session, made, step=log.info, on_bytes=on_bytes)


def show_copies(done: BackupDone) -> None:
    if done.pushed is not None:
        for c in done.pushed.copies:
            show_copy(c)
