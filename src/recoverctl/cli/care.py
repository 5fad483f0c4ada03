"""doctor, keys check, recover: the checks that matter before, and on, the bad day."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from recoverctl.cli import offsite, options, render
from recoverctl.errors import UsageError


def doctor(
    prod: options.Prod = False,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Only these checks, repeatable: a group (env, git, key, stack, backups, "
            "targets), a check's name, or the start of names (db). See --list.",
        ),
    ] = None,
    list_: Annotated[
        bool,
        typer.Option("--list", help="List the checks (name, group, what each needs); run none."),
    ] = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Check env files, git hygiene, the key backup, the stack and the backups."""
    from recoverctl.actions import doctor as action

    if list_:
        # No settings: the list is the same for every project, and needs none.
        render.json_mode.set(json)
        listing = action.check_list(only)

        def show_list() -> None:
            from rich.markup import escape
            from rich.table import Table

            table = Table(title="doctor's checks", title_justify="left")
            for column in ("check", "group", "needs", "what it checks"):
                table.add_column(column)
            for spec in listing.checks:
                needs = ", ".join(spec.needs) or "nothing"
                table.add_row(spec.label, spec.group, needs, escape(spec.about))
            render.print_table(table)

        render.emit(listing, show_list)
        return

    session = options.session(prod, project_dir, json)
    with render.spinner("checking"):
        report = action.doctor(session, only=only)

    def human() -> None:
        render.checks_table(f"doctor: {report.project} ({report.stack})", report.checks)
        counts = report.to_json()["summary"]
        verdict = "[green]healthy[/]" if report.ok else "[red]problems found[/]"
        render.out.print(
            f"{verdict}: {counts['ok']} ok, {counts['warn']} warn, {counts['fail']} fail"
        )

    render.emit(report, human)
    if not report.ok:
        raise render.checks_failed(
            "doctor found problems",
            report.checks,
            "Each failing row says what to do; run doctor again once done.",
        )


keys_app = typer.Typer(help="Key backup (*.zkkey.json) checks.", no_args_is_help=True)


@keys_app.command("check")
def keys_check(
    file: Annotated[
        Path | None, typer.Argument(help="The key export (default: key_file from settings).")
    ] = None,
    passphrase_stdin: Annotated[
        bool, typer.Option("--passphrase-stdin", help="Read the passphrase from stdin.")
    ] = False,
    prod: options.Prod = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Validate a key export; with its passphrase, prove it opens the vault's secrets."""
    from recoverctl.actions import keys as action

    session = options.session(prod, project_dir, json)
    passphrase = _passphrase(passphrase_stdin)
    with render.spinner("checking the key backup"):
        result = action.check(session, file, passphrase)

    def human() -> None:
        render.out.print(
            f"[green]valid[/] key backup {result.path}: RSA-{result.modulus}, {result.fingerprint}"
        )
        if not result.passphrase_checked:
            render.out.print(
                "passphrase not checked: run in a terminal, or pass --passphrase-stdin"
            )
            return
        render.out.print(f"passphrase ok; registered to {result.user}")
        if result.sampled:
            render.out.print(f"opened {result.opened} of {result.sampled} sampled secrets")
        else:
            render.out.print("no secret is stored under this key yet: nothing to open")

    render.emit(result, human)


def _passphrase(from_stdin: bool) -> str | None:
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise UsageError(
                "--passphrase-stdin given but stdin is empty.", "Pipe the passphrase in."
            )
        return line.rstrip("\r\n")
    if sys.stdin.isatty():
        return str(typer.prompt("Passphrase", hide_input=True, err=True))
    return None


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
    target: offsite.Target = None,
    identity: offsite.Identity = None,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """The playbook's quick recovery: env check, up, restore if the database is empty, checks.

    With --target, the backup comes from that off-site target (--from names the copy)."""
    from recoverctl.actions import recover as action
    from recoverctl.cli import plans
    from recoverctl.core.restore_plan import RestorePlan

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


def register(app: typer.Typer) -> None:
    app.command()(doctor)
    app.add_typer(keys_app, name="keys")
    app.command()(recover)
