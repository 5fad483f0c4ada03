"""Logs for unattended runs: a timestamped line per step, warning and error.

Any module logs through the standard library under the `recoverctl` logger, which is what
`logging.getLogger(__name__)` gives inside the package:

    log = logging.getLogger(__name__)
    log.info("dumping %s", database)      # a step: the file, and stderr with --verbose
    log.warning("...")                    # the file only: tell the person with render.warn

Progress callbacks that reach `render.spinner` or `render.transfer` are logged already.
Nothing is written unless the CLI started a run with a destination (`--log-file FILE`,
RECOVERCTL_LOG_FILE or `log_file` in the settings file; `--verbose` for stderr). A line
holds what the terminal shows and no more: never log a value the person was not shown
(env files' values, passphrases, passwords), as the terminal never shows one either.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

LOGGER = logging.getLogger("recoverctl")
# Without a run (library use, tests) records go nowhere, not to logging's last-resort stderr.
LOGGER.addHandler(logging.NullHandler())

# A record may carry its own tag ("hint"); otherwise the level names it, as on the terminal.
_LEVEL_TAGS = {logging.WARNING: "warning: ", logging.ERROR: "error: ", logging.CRITICAL: "error: "}


def _tag_of(record: logging.LogRecord) -> str:
    tag = getattr(record, "tag", None)
    return f"{tag}: " if tag else _LEVEL_TAGS.get(record.levelno, "")


class _FileFormatter(logging.Formatter):
    """`2026-05-01T03:00:01.234+02:00 recoverctl[4242] backup: text`, on every line of a
    record, so that grep and journal readers see whose line each one is."""

    def __init__(self, command: str | None):
        super().__init__()
        self.command = command or "-"

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created).astimezone()
        prefix = (
            f"{when.isoformat(timespec='milliseconds')} recoverctl[{record.process}] "
            f"{self.command}: {_tag_of(record)}"
        )
        return "\n".join(prefix + line for line in record.getMessage().splitlines() or [""])


class _AppendFile(logging.Handler):
    """Appends to the log file, opened only when the first line comes (a `--help` creates
    nothing), created 0600 and never left readable by everyone."""

    def __init__(self, locate: Callable[[], Path | None], warn: Callable[[str], None]):
        super().__init__(logging.INFO)
        self._locate = locate
        self._warn = warn
        self._fd: int | None = None
        self._given_up = False

    def emit(self, record: logging.LogRecord) -> None:
        if self._given_up:
            return
        notice = None
        if self._fd is None:
            try:
                opened = self._open()
            except OSError as exc:
                self._give_up(f"not logging to a file: {exc}")
                return
            if opened is None:  # no log file configured: the usual case
                self._given_up = True
                return
            self._fd, notice = opened
        try:
            # One write per record: O_APPEND keeps concurrent runs' lines whole.
            os.write(self._fd, (self.format(record) + "\n").encode("utf-8", "replace"))
        except OSError as exc:
            # A full or gone log disk must not fail the backup it was logging.
            self._give_up(f"stopped logging to a file: {exc}")
            return
        if notice:
            self._warn(notice)  # logged too, now that the file is open

    def destination(self) -> Path | None:
        """Where this run's lines go, when a log file is set and usable."""
        if self._given_up and self._fd is None:
            return None
        try:
            return self._locate()
        except OSError:
            return None

    def _give_up(self, why: str) -> None:
        # First: the warning is logged as well, and must not come back here.
        self._given_up = True
        self._warn(why)

    def _open(self) -> tuple[int, str | None] | None:
        path = self._locate()
        if path is None:
            return None
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NONBLOCK
        fd = os.open(path, flags, 0o600)
        notice = None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise OSError(f"{path} is not a regular file")
            if st.st_mode & 0o007:
                # Made by hand or by an older tool: its owner may keep group access, nobody
                # else gets to read it (fchmod fails when the file is someone else's).
                try:
                    os.fchmod(fd, stat.S_IMODE(st.st_mode) & 0o770)
                except OSError as exc:
                    raise OSError(f"{path} is readable by everyone and cannot be fixed") from exc
                notice = f"log file {path} was readable by everyone; it no longer is"
        except BaseException:
            os.close(fd)
            raise
        return fd, notice

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        super().close()


class _Echo(logging.Handler):
    """--verbose: step lines on stderr (warnings and errors are printed there already)."""

    def __init__(self, echo: Callable[[str], None]):
        super().__init__(logging.DEBUG)
        self._echo = echo

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING:
            self._echo(
                f"{time.strftime('%H:%M:%S', time.localtime(record.created))} {record.getMessage()}"
            )


def _configured_file() -> Path | None:
    """`log_file` from the settings file, when it is usable; when it is not, the command
    reports why as it resolves its settings, so nothing is said here."""
    from recoverctl.errors import RecoverctlError
    from recoverctl.settings import config_path, read_config

    try:
        value = read_config(config_path(os.environ)).get("log_file")
    except RecoverctlError:
        return None
    if not isinstance(value, str) or not value:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else None


_handlers: list[logging.Handler] = []


def start(
    command: str | None,
    *,
    file: Path | None,
    verbose: bool,
    echo: Callable[[str], None],
    warn: Callable[[str], None],
) -> None:
    """Begins a command's run: where its lines go. `file` is the --log-file flag (or its
    variable); without it the settings file's `log_file` is looked up at the first line."""
    stop()
    file_handler = _AppendFile(lambda: file if file is not None else _configured_file(), warn)
    file_handler.setFormatter(_FileFormatter(command))
    _handlers.append(file_handler)
    if verbose:
        _handlers.append(_Echo(echo))
    for handler in _handlers:
        LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)


def file_destination() -> Path | None:
    """The log file this run writes to, if any (for the message that points at it)."""
    for handler in _handlers:
        if isinstance(handler, _AppendFile):
            return handler.destination()
    return None


def stop() -> None:
    """Ends the run: the file is closed, and later records go nowhere."""
    while _handlers:
        handler = _handlers.pop()
        LOGGER.removeHandler(handler)
        handler.close()
