"""verify: a local backup's quick or deep check, or a copy's on an off-site target."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from recoverctl.cli import options, render
from recoverctl.errors import ErrorCode, RecoverctlError, UsageError

if TYPE_CHECKING:
    from recoverctl.actions.verify import OffsiteReport, PitrVerifyReport
    from recoverctl.cli.options import StackSession


def verify(
    spec: Annotated[
        str | None,
        typer.Argument(
            help="A backup file, or `latest` for this stack's newest; none with --pitr."
        ),
    ] = None,
    deep: Annotated[
        bool,
        typer.Option(
            "--deep",
            help="Also restore it into a throwaway database (with --pitr: the cluster, to "
            "its latest point, in a throwaway copy).",
        ),
    ] = False,
    pitr: Annotated[
        bool,
        typer.Option(
            "--pitr",
            help="The pgBackRest repositories instead (recoverctl pitr): every WAL segment "
            "and base backup read back; --target names one repository.",
        ),
    ] = False,
    prod: options.Prod = False,
    target: options.Target = None,
    identity: options.Identity = None,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Check a backup; exit 0 only when it is good. --deep proves it restores.

    With --target, a copy there: its sealed objects, or with an identity the backup itself.
    With --pitr, the point-in-time repositories."""
    from recoverctl.actions import verify as action

    if pitr == (spec is not None):
        raise UsageError(
            "Give a backup (SPEC) or --pitr, one of the two.",
            "recoverctl verify latest, or recoverctl verify --pitr",
        )
    session = options.session(prod, project_dir, json)
    if pitr:
        verify_pitr(session, target=target, deep=deep)
        return
    assert spec is not None
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


def verify_pitr(session: StackSession, *, target: str | None, deep: bool) -> None:
    from recoverctl.actions import verify as action

    what = "restoring the cluster to its latest point" if deep else "pgbackrest verify"
    with render.spinner(what) as step:
        report = action.verify_pitr(session, target=target, deep=deep, step=step)
    render.emit(report, lambda: show_pitr_report(report))
    if not report.ok:
        bad = report.failed[0]
        failing = next(c for c in bad.checks if c.status == "fail")
        raise RecoverctlError(
            f"Repository {bad.name} failed verification: {failing.evidence}"
            + ("" if failing.evidence.endswith(".") else "."),
            failing.fix or "Each failing check says why.",
            code=bad.code or ErrorCode.PITR_FAILED,
        )


def show_pitr_report(report: PitrVerifyReport) -> None:
    kind = "deep" if report.deep else "quick"
    for repo in report.repos:
        render.checks_table(f"repository {repo.name}: {repo.location} ({kind})", repo.checks)
        if repo.point is not None:
            render.out.print(f"  latest reached: {repo.point.reached_said}")
    verdict = "[green]good[/]" if report.ok else "[red]BAD: do not rely on it[/]"
    render.out.print(f"{verdict} ({report.seconds:.1f} s)")


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
