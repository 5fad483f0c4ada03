"""pull: a copy brought back from an off-site target as an ordinary local backup."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from recoverctl.cli import options, render

OutputDir = Annotated[
    Path | None,
    typer.Option(
        "--output-dir", "-o", help="Where to put it (default: backups/).", show_default=False
    ),
]


def pull(
    spec: Annotated[
        str, typer.Argument(help="A backup's name on the target, or `latest` (its newest).")
    ],
    target: options.Target = None,
    identity: options.Identity = None,
    output_dir: OutputDir = None,
    prod: options.Prod = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Bring a copy back from a target: checked, decrypted, an ordinary local backup."""
    from recoverctl.actions import pull as action

    session = options.session(prod, project_dir, json)
    name = options.require_target(target, "pull")
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
