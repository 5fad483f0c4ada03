"""The one error type every layer raises; the CLI catches it in one place.

Every error carries a stable code (`ErrorCode`): scripts read it from `--json`, code
branches on it, and it alone decides the exit status. Messages are for people and may
change; codes may not (docs/json.md lists them).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypedDict

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_OFFSITE = 3  # the local part succeeded; an off-site step failed
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class ErrorCode(StrEnum):
    # the command line, the settings and the confirmations (exit 2)
    USAGE = "usage"
    CONFIG_INVALID = "config_invalid"
    PROJECT_NOT_FOUND = "project_not_found"
    CONFIRMATION_REQUIRED = "confirmation_required"
    CONFIRMATION_MISMATCH = "confirmation_mismatch"
    # the project's files and code
    COMPOSE_INVALID = "compose_invalid"
    ENV_INVALID = "env_invalid"
    FILE_EXISTS = "file_exists"
    CODE_BEHIND_DATA = "code_behind_data"  # the backup's data has a migration the checkout lacks
    # the engine and the stack
    ENGINE_UNREACHABLE = "engine_unreachable"
    ENGINE_REFUSED = "engine_refused"
    COMPOSE_FAILED = "compose_failed"
    SERVICE_MISSING = "service_missing"
    DB_NOT_RUNNING = "db_not_running"
    SERVICE_NOT_RUNNING = "service_not_running"
    STACK_UNHEALTHY = "stack_unhealthy"
    COMMAND_FAILED = "command_failed"
    DB_QUERY_FAILED = "db_query_failed"
    DB_IN_USE = "db_in_use"
    LOCKED = "locked"
    # local files and the disk
    UNSAFE_PATH = "unsafe_path"
    DISK_FULL = "disk_full"
    WRITE_FAILED = "write_failed"
    # backups: finding, judging and taking them
    BACKUP_NOT_FOUND = "backup_not_found"
    OTHER_STACK = "other_stack"
    BACKUP_CORRUPT = "backup_corrupt"
    MANIFEST_DAMAGED = "manifest_damaged"
    BACKUP_FAILED = "backup_failed"
    # restores
    UPDATE_REFUSED = "update_refused"
    RESTORE_FAILED = "restore_failed"
    ROLLBACK_INCOMPLETE = "rollback_incomplete"
    UPGRADE_REFUSED = "upgrade_refused"  # upgrade-postgres's preflight: nothing was touched
    UPGRADE_FAILED = "upgrade_failed"  # a step failed: the message says which cluster serves
    DATA_PRESENT = "data_present"
    PITR_OUTSIDE_WINDOW = "pitr_outside_window"  # --to-time outside what the archive reaches
    # keys
    KEY_FILE_INVALID = "key_file_invalid"
    KEY_MISMATCH = "key_mismatch"
    # off-site copies and the age identity
    OFFSITE_FAILED = "offsite_failed"  # exit 3: the local part succeeded
    TARGET_UNREACHABLE = "target_unreachable"
    TARGET_REFUSED = "target_refused"
    TARGET_NOT_FOUND = "target_not_found"
    TARGET_FAILED = "target_failed"  # the target answered, with an error no other code names
    OBJECT_NOT_FOUND = "object_not_found"
    OBJECT_CORRUPT = "object_corrupt"
    ENV_NOT_FOUND = "env_not_found"  # the target holds no copy of this project's env files
    ENCRYPTION_REQUIRED = "encryption_required"
    IDENTITY_INVALID = "identity_invalid"
    DECRYPT_FAILED = "decrypt_failed"
    # point-in-time recovery (pgBackRest)
    PITR_NOT_CONFIGURED = "pitr_not_configured"  # no [pitr], or archiving not enabled
    PITR_FAILED = "pitr_failed"  # pgBackRest failed, or answered what recoverctl cannot read
    PITR_PASSPHRASE = "pitr_passphrase"  # noqa: S105 (a code) the passphrase is missing or wrong
    # unattended operation and drills
    ROUTINE_RUNNING = "routine_running"  # another routine holds this stack: this one did nothing
    PRUNE_REFUSED = "prune_refused"  # the plan would leave no verified backup: nothing deleted
    CLEANUP_INCOMPLETE = "cleanup_incomplete"  # a drill's throwaway stack was not all removed
    # a result whose own verdict is bad: doctor's or recover's checks (result.checks says which)
    CHECKS_FAILED = "checks_failed"
    # the run itself
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # Ctrl-C (exit 130)
    TERMINATED = "terminated"  # SIGTERM, with the same clean-up as Ctrl-C (exit 143)
    INTERNAL_ERROR = "internal_error"  # a bug in recoverctl: the traceback goes to a file

EXIT_STATUS: dict[ErrorCode, int] = {
    ErrorCode.USAGE: EXIT_USAGE,
    ErrorCode.CONFIG_INVALID: EXIT_USAGE,
    ErrorCode.PROJECT_NOT_FOUND: EXIT_USAGE,
    ErrorCode.CONFIRMATION_REQUIRED: EXIT_USAGE,
    ErrorCode.OFFSITE_FAILED: EXIT_OFFSITE,
    ErrorCode.INTERRUPTED: EXIT_INTERRUPTED,
    ErrorCode.TERMINATED: EXIT_TERMINATED,
}


# Ctrl-C and SIGTERM: codes that a step catching failures to report them must let through.
STOP_CODES = (ErrorCode.INTERRUPTED, ErrorCode.TERMINATED)


def exit_status(code: ErrorCode) -> int:
    return EXIT_STATUS.get(code, EXIT_FAILED)


class RecoverctlError(Exception):
    """A failure a person can act on: what went wrong, and what to do next."""

    default_code: ErrorCode = ErrorCode.FAILED

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        code: ErrorCode | None = None,
        details: str | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code or self.default_code
        # Supporting evidence shown below the message, such as a service's last log lines.
        self.details = details

    @property
    def exit_code(self) -> int:
        return exit_status(self.code)

    def brief(self) -> dict[str, str | None]:
        """Code, message and hint, as JSON shows a failure (the envelope adds details)."""
        return {"code": str(self.code), "message": self.message, "hint": self.hint}

    def with_message(self, message: str, hint: str | None = None) -> RecoverctlError:
        """The same failure, told differently: code and details kept (one class for all)."""
        return RecoverctlError(
            message, hint if hint is not None else self.hint, code=self.code, details=self.details
        )


class CopyError(TypedDict):
    """A copy's failure in a result's JSON (`RecoverctlError.brief`), as its schema types it."""

    code: ErrorCode
    message: str
    hint: str | None


class UsageError(RecoverctlError):
    default_code = ErrorCode.USAGE


class ConfigError(RecoverctlError):
    """Settings, env files or compose files are missing or wrong."""

    default_code = ErrorCode.CONFIG_INVALID


class EngineError(RecoverctlError):
    """The Docker engine cannot be reached or refused a request."""

    default_code = ErrorCode.ENGINE_UNREACHABLE


class CommandFailed(RecoverctlError):
    """An external command exited non-zero; message carries its masked stderr tail."""

    default_code = ErrorCode.COMMAND_FAILED


class StackError(RecoverctlError):
    """A service is missing, stopped or unhealthy."""

    default_code = ErrorCode.STACK_UNHEALTHY


class Interrupted(RecoverctlError):
    default_code = ErrorCode.INTERRUPTED


class ProjectFileError(RecoverctlError):
    """The compose file (or another file of the project) is missing or malformed."""

    default_code = ErrorCode.COMPOSE_INVALID
