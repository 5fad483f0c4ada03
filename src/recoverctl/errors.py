"""The one error type every layer raises; the CLI catches it in one place."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class RecoverctlError(Exception):
    """A failure a person can act on: what went wrong, and what to do next."""

    exit_code: int = EXIT_FAILED

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        details: str | None = None,
        exit_code: int | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.hint = hint
        # Supporting evidence shown below the message, such as a service's last log lines.
        self.details = details
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(RecoverctlError):
    exit_code = EXIT_USAGE


class ConfigError(RecoverctlError):
    """Settings, env files or compose files are missing or wrong."""


class EngineError(RecoverctlError):
    """The Docker engine cannot be reached or refused a request."""


class CommandFailed(RecoverctlError):
    """An external command exited non-zero; message carries its masked stderr tail."""


class StackError(RecoverctlError):
    """A service is missing, stopped or unhealthy."""


class Interrupted(RecoverctlError):
    exit_code = EXIT_INTERRUPTED
