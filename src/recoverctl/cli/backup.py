"""backup: pg_dump to a timestamped file, then to every off-site target when there are some."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from recoverctl.cli import options, pushing, render
from recoverctl.errors import UsageError

FormatOpt = Annotated[
    str,
    typer.Option(
        "--format", "-F", help="custom (pg_dump -Fc, the default) or sql (plain, as the playbook)."
    ),
]


def backup(
    prod: options.Prod = False,
    fmt: FormatOpt = "custom",
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", "-o", help="Where to write it (default: backups/)."),
    ] = None,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Dump the database to a timestamped file with a manifest; nothing half-written stays."""
    from recoverctl.actions import backup as action

    if fmt not in ("custom", "sql"):
        raise UsageError(f"Unknown format {fmt!r}.", "Use --format custom or --format sql.")
    session = options.session(prod, project_dir, json)
    warmed = pushing.prewarm(session)
    with render.transfer(f"pg_dump ({fmt})") as on_bytes:
        result = action.backup(session, fmt=fmt, output_dir=output_dir, on_bytes=on_bytes)  # type: ignore[arg-type]
    for w in result.warnings:
        render.warn(w)
    done = pushing.push_after_backup(session, result, warmed)

    def human() -> None:
        m = result.manifest
        rows = sum(v for v in m.tables.values() if v)
        render.out.print(
            f"[green]backup written[/] {result.path}\n"
            f"  {render.size(m.size)}, {m.format}, {len(m.tables)} tables, {rows} rows, "
            f"{m.duration_seconds:.1f} s\n  sha256 {m.sha256}"
        )
        pushing.show_copies(done)
        for c in done.env.copies if done.env is not None else ():
            if c.status == "pushed":
                render.out.print(f"[green]pushed[/] the env files to {c.target}: they changed")

    render.emit(done, human)
    if done.error is not None:
        raise done.error
