"""keys new-identity: the age key pair that seals the off-site copies."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from recoverctl.adapters import seal
from recoverctl.core.result import JsonResult, computed
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.settings import Settings


@dataclass(frozen=True)
class NewIdentity(JsonResult):
    path: Path
    recipient: str

    @property
    @computed()
    def mode(self) -> Literal["0600"]:
        return "0600"  # the identity file's, written so

    @property
    @computed()
    def next_steps(self) -> tuple[str, ...]:
        return (
            f'Put the public key in the settings file: [encryption] recipients = ["{self.recipient}"]',
            f"Keep {self.path} where the browser key export is kept, off this server: "
            "without it no off-site copy can be opened",
            "Check the pair once: recoverctl backup, then recoverctl pull latest --target NAME "
            f"--identity {self.path} --output-dir /tmp/check",
        )


def new_identity(settings: Settings, path: Path) -> NewIdentity:
    """Creates it (mode 0600, never over a file, never in the project or the backups)."""
    where = path.expanduser().absolute()
    if where.resolve().is_relative_to(settings.backup_dir.resolve()):
        raise RecoverctlError(
            f"The identity file {where} is inside the backups folder {settings.backup_dir}: "
            "refused (the key would travel with what it protects).",
            "Keep it where the browser key export is kept, off this server.",
            code=ErrorCode.IDENTITY_INVALID,
        )
    recipient = seal.new_identity(where, project_dir=settings.project_dir)
    return NewIdentity(where, recipient)
