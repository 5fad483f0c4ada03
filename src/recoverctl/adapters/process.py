"""The one way recoverctl runs a program: argv as data, no shell, secrets masked in
everything it reports, and the tail of stderr kept for the error message."""

from __future__ import annotations

import subprocess
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from recoverctl.errors import CommandFailed

MASK = "***"
TAIL_LINES = 15


def mask(text: str, secrets: Sequence[str]) -> str:
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def shown(argv: Sequence[str], secrets: Sequence[str] = ()) -> str:
    return mask(" ".join(argv), secrets)


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr_tail: str


def run(
    argv: Sequence[str],
    *,
    secrets: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    timeout: float | None = None,
    check: bool = True,
    what: str | None = None,
    hint: str | None = None,
) -> Completed:
    """Runs argv; stdout is returned whole, stderr only as its masked tail."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            text=True,
            errors="replace",
        )
    except FileNotFoundError:
        raise CommandFailed(
            f"{argv[0]} is not installed or not on PATH.",
            hint or f"Install {argv[0]} and try again.",
        ) from None
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise CommandFailed(
            f"{what or shown(argv, secrets)} did not finish within {timeout:.0f} s.",
            hint,
        ) from None
    except KeyboardInterrupt:
        proc.terminate()
        proc.communicate()
        raise
    tail = mask("\n".join(deque(stderr.splitlines(), maxlen=TAIL_LINES)), secrets)
    done = Completed(tuple(argv), proc.returncode, mask(stdout, secrets), tail)
    if check and proc.returncode != 0:
        raise CommandFailed(
            f"{what or shown(argv, secrets)} failed (exit {proc.returncode}).",
            hint,
            details=tail or None,
        )
    return done
