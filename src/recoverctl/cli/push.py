"""push: backups copied to the off-site targets, sealed with age."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from recoverctl.cli import options, pushing, render

log = logging.getLogger("recoverctl")


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
            pushing.show_copy(c)

    render.emit(report, human)
    if report.error is not None:
        raise report.error
