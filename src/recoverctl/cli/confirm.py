"""The typed confirmation every destructive command asks for (or --yes)."""

from __future__ import annotations

import typer

from recoverctl.errors import ErrorCode, RecoverctlError


def typed(expected: str, prompt: str, unchanged: str) -> None:
    """Asks the person to type `expected`; `unchanged` says what was left alone otherwise."""
    try:
        answer = typer.prompt(prompt, err=True)
    except (typer.Abort, EOFError):
        raise RecoverctlError(
            f"No confirmation given; {unchanged}.",
            f"Run it in a terminal and type {expected}, or pass --yes.",
            code=ErrorCode.CONFIRMATION_REQUIRED,
        ) from None
    if answer.strip() != expected:
        raise RecoverctlError(
            f"You typed {answer.strip()!r}, not {expected!r}; {unchanged}.",
            "Type it exactly, or pass --yes.",
            code=ErrorCode.CONFIRMATION_MISMATCH,
        )
