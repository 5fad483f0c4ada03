"""The typed confirmation every destructive command asks for (or --yes)."""

from __future__ import annotations

import typer

from recoverctl.errors import ErrorCode, Interrupted, RecoverctlError


def typed(expected: str, prompt: str, unchanged: str) -> None:
    """Asks the person to type `expected`; `unchanged` says what was left alone otherwise."""
    try:
        answer = typer.prompt(prompt, err=True)
    except (typer.Abort, EOFError) as exc:
        # click turns Ctrl-C and end of input alike into Abort; the context tells them apart.
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise Interrupted(
                f"Stopped at the confirmation; {unchanged}.", "Run it again when ready."
            ) from None
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


def asked(prompt: str, unchanged: str) -> None:
    """A yes/no question for what is not destructive but interrupts (a restart)."""
    try:
        answer = typer.confirm(prompt, default=False, err=True)
    except (typer.Abort, EOFError) as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            raise Interrupted(
                f"Stopped at the confirmation; {unchanged}.", "Run it again when ready."
            ) from None
        raise RecoverctlError(
            f"No confirmation given; {unchanged}.",
            "Run it in a terminal and answer y, or pass --yes.",
            code=ErrorCode.CONFIRMATION_REQUIRED,
        ) from None
    if not answer:
        raise RecoverctlError(
            f"Not confirmed; {unchanged}.",
            "Answer y to go on, or pass --yes.",
            code=ErrorCode.CONFIRMATION_MISMATCH,
        )
