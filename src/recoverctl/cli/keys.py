"""keys: the two keys a recovery needs. `keys check` is about the browser's key export
(*.zkkey.json, the user's RSA key); `keys new-identity` makes the age identity that opens
the off-site copies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from recoverctl.cli import options, render

keys_app = typer.Typer(
    help="The keys: the browser's key export (*.zkkey.json, your RSA key) and the "
    "age identity that opens the off-site copies.",
    no_args_is_help=True,
)


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
    """Check the browser's key export (*.zkkey.json, your RSA key), not the age identity.

    Validates it; with its passphrase, proves it opens the vault's secrets."""
    from recoverctl.actions import keys as action

    session = options.session(prod, project_dir, json)
    passphrase = options.passphrase(passphrase_stdin, "Passphrase")
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


@keys_app.command("new-identity")
def new_identity(
    file: Annotated[
        Path, typer.Argument(help="Where to write the private key: outside the project.")
    ],
    prod: options.Prod = False,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Create the age identity that opens the off-site copies; print its public key.

    The age identity, not the browser's key export (that one is `keys check`'s)."""
    from recoverctl.actions import identity as action

    made = action.new_identity(options.settings(prod, project_dir, json), file)

    def human() -> None:
        render.out.print(made.recipient, markup=False)
        render.err.print(f"[green]created[/] {escape(str(made.path))} (mode 0600)")
        for line in made.next_steps:
            render.err.print(f"  - {escape(line)}")

    render.emit(made, human)
