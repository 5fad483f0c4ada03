"""init: the stack's env file, with random secrets, for a new machine."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from recoverctl.cli import options, render
from recoverctl.errors import UsageError

Hosts = Annotated[
    list[str] | None,
    typer.Option(
        "--host",
        help="prod: a host name the vault is served at, behind TLS (repeatable); "
        "asked for when missing.",
        show_default=False,
    ),
]
Port = Annotated[
    int | None,
    typer.Option(
        "--port",
        min=1,
        max=65535,
        help="The loopback port the stack publishes the vault on (default: 8000 dev, 8080 prod).",
        show_default=False,
    ),
]


def init(
    prod: options.Prod = False,
    host: Hosts = None,
    port: Port = None,
    project_dir: options.ProjectDir = None,
    json: options.Json = False,
) -> None:
    """Write .env (or .env.production) from .env.example with random secrets; never over one.

    Mode 600 from the first byte; the images this machine can run; for --prod, the hosts and
    origins of each --host."""
    from recoverctl.actions import init as action

    session = options.session(prod, project_dir, json)
    action.ensure_absent(session.settings)  # before asking anything
    hosts = list(host or [])
    if prod and not hosts:
        hosts.append(_ask_host())
    with render.spinner("writing the env file"):
        result = action.init(session, hosts=hosts, port=port)
    for w in result.warnings:
        render.warn(w)

    def human() -> None:
        images = ", ".join(f"{image}" for image in result.images.values() if image)
        render.out.print(
            f"[green]created[/] {result.path} (mode 600)\n"
            f"  random {', '.join(result.secrets) or 'nothing'}\n"
            f"  images ({result.image_source}): {images}\n"
            f"  served at {', '.join(result.csrf_trusted_origins)}"
        )
        render.out.print("next:")
        for step in result.next_steps:
            render.out.print(f"  {step}")

    render.emit(result, human)


def _interactive() -> bool:
    return sys.stdin.isatty()


def _ask_host() -> str:
    if not _interactive():
        raise UsageError(
            "init --prod needs the host name the vault is served at, and there is no terminal "
            "to ask it.",
            "Pass --host NAME (repeatable), e.g. recoverctl init --prod --host vault.example.com.",
        )
    return str(
        typer.prompt("Host name the vault is served at (e.g. vault.example.com)", err=True)
    ).strip()
