"""verify: a local backup's quick or deep check, or a copy's on an off-site target."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from recoverctl.cli import options, render
from recoverctl.errors import ErrorCode, RecoverctlError

if TYPE_CHECKING:
    from recoverctl.actions.verify import OffsiteReport
    from recoverctl.cli.options import StackSession


def verify(
    spec: options.Spec,
    deep: Annotated[
        bool, typer.Option("--deep", help="Also restore it into a throwaway database.")
    ] = False,
    prod: options.Prod = False,
    target: options.Target = None,
    identity: options.Identity = None,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Check a backup; exit 0 only when it is good. --deep proves it restores.

    With --target, a copy there: its sealed objects, or with an identity the backup itself."""
    from recoverctl.actions import verify as action

    session = options.session(prod, project_dir, json)
    if target:
        verify_target(session, spec, target=target, identity=identity, deep=deep)
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
