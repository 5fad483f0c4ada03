"""pull: a copy from an off-site target back as an ordinary local backup and its manifest."""

from __future__ import annotations

from pathlib import Path

from recoverctl.services import offsite
from recoverctl.services.offsite import OnBytes, Pulled
from recoverctl.services.session import StackSession


def pull(
    session: StackSession,
    spec: str,
    *,
    target: str,
    identity: Path | None = None,
    output_dir: Path | None = None,
    on_bytes: OnBytes | None = None,
) -> Pulled:
    """NAME or latest from the target into the backups folder (or output_dir). The identity
    is the flag's, else RECOVERCTL_IDENTITY_FILE's, else the settings file's."""
    settings = session.settings
    return offsite.pull(
        session,
        target,
        spec,
        identity or settings.identity_file,
        output_dir or settings.backup_dir,
        on_bytes=on_bytes,
    )
