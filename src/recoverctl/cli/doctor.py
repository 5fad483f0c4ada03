"""doctor: env files, git hygiene, the key export, the stack and the backups, checked."""

from __future__ import annotations

from typing import Annotated

import typer

from recoverctl.cli import options, render


def doctor(
    prod: options.Prod = False,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Only these checks, repeatable: a group (env, git, key, stack, backups, "
            "targets, pitr), a check's name, or the start of names (db). See --list.",
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
