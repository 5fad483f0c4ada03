"""The last line of defence: an exception no code expected is a bug. The person sees one
line that says so and where its details are; the traceback, with every secret recoverctl
can name masked, goes to the log file or, with none set, to a private file in the backups
folder. --verbose shows it on the terminal as well."""

from __future__ import annotations

import logging
import os
import re
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path

from recoverctl import log as logs
from recoverctl.adapters.process import MASK, mask
from recoverctl.cli import render
from recoverctl.errors import ErrorCode, RecoverctlError

log = logging.getLogger("recoverctl")

# Secrets that have a shape of their own, wherever they came from.
_SHAPED = (
    re.compile(r"AGE-SECRET-KEY-1[0-9A-Z]+", re.I),
    re.compile(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.S
    ),
)
_SUMMARY_CHARS = 200


def internal_error(exc: BaseException, *, verbose: bool) -> RecoverctlError:
    trace = masked("".join(traceback.format_exception(exc)))
    where = _keep(trace)
    if verbose:
        render.err.print(trace, markup=False, highlight=False)
    first = (masked(str(exc)).strip().splitlines() or [""])[0][:_SUMMARY_CHARS]
    summary = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return RecoverctlError(
        f"internal error: {summary}, a bug: the details are in {where}",
        code=ErrorCode.INTERNAL_ERROR,
    )


def masked(text: str) -> str:
    for shape in _SHAPED:
        text = shape.sub(MASK, text)
    return mask(text, _known_secrets())


def _known_secrets() -> list[str]:
    """The values of the project's env files whose names say they are secret."""
    from recoverctl.services.session import env_secrets
    from recoverctl.settings import ENV_FILES, PITR_FILES, find_project_dir

    try:
        root = find_project_dir(Path.cwd())
    except OSError:
        return []
    if root is None:
        return []
    names = (*ENV_FILES.values(), *PITR_FILES.values())
    return [v for name in names for v in env_secrets(root / name)]


def _keep(trace: str) -> str:
    """Where the traceback was written: the log file, else a private file of its own."""
    destination = logs.file_destination()
    if destination is not None:
        log.error(trace.rstrip(), extra={"tag": "traceback"})
        return str(destination)
    name = f"internal-error-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}.log"
    for folder in (_backups_folder(), Path(tempfile.gettempdir())):
        if folder is None:
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            path = folder / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8", errors="replace") as f:
                f.write(trace)
            return str(path)
        except OSError:
            continue
    return "nowhere (no folder could be written; run it again with --verbose)"


def _backups_folder() -> Path | None:
    from recoverctl.settings import resolve_settings

    try:
        return resolve_settings().backup_dir
    except (RecoverctlError, OSError, ValueError):
        return None
