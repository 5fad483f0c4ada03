"""The targets by name, from the settings: which are configured, whose copies a session
reads and writes (its project and stack), each opened inside that namespace only; and what
a pull or a recovery from a target needs before it starts (the identity)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from recoverctl.adapters import seal
from recoverctl.core.offsite import Encryption, Owner
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.services.session import StackSession
from recoverctl.settings import Settings

if TYPE_CHECKING:
    from recoverctl.adapters.targets import Target


def target_names(session: StackSession, names: Sequence[str] | None = None) -> list[str]:
    """The targets named (each must be configured), or every configured one, in order;
    none at all is an error (no_target)."""
    configured = session.settings.targets
    if names is None:
        found = sorted(configured)
    else:
        unknown = [n for n in names if n not in configured]
        if unknown:
            raise unknown_target(session, unknown[0])
        found = list(dict.fromkeys(names))
    if not found:
        raise no_target()
    return found


def no_target() -> RecoverctlError:
    """A command that copies off-site, on a machine with no target in its settings."""
    return RecoverctlError(
        "No off-site target is configured.",
        "Add a [targets.NAME] table to the settings file (README: Off-site copies).",
        code=ErrorCode.TARGET_NOT_FOUND,
    )


def unknown_target(session: StackSession | Settings, name: str) -> RecoverctlError:
    settings = session.settings if isinstance(session, StackSession) else session
    known = ", ".join(sorted(settings.targets)) or "none is configured"
    return RecoverctlError(
        f"No target {name!r} in the settings.",
        f"Targets: {known} ([targets.NAME] in the settings file; README: Off-site copies).",
        code=ErrorCode.TARGET_NOT_FOUND,
    )


def encryption_of(session: StackSession, name: str) -> Encryption:
    return session.settings.targets[name].encryption


def owner(session: StackSession) -> Owner:
    """Whose copies this session pushes and reads: its compose project and stack."""
    return Owner(session.project, session.settings.stack)


def owner_of(settings: Settings) -> Owner:
    """owner(), from the settings alone (reads the compose file for the project's name)."""
    from recoverctl.adapters import files
    from recoverctl.settings import project_name

    return Owner(project_name(settings, files.load_compose(settings)), settings.stack)


def open_target(session: StackSession, name: str) -> Target:
    """Target NAME, seen through this project's and stack's namespace only."""
    if name not in session.settings.targets:
        raise unknown_target(session, name)
    return session.target(name, owner(session).namespace)


def load_identities(session: StackSession, identity: Path | None) -> list[seal.Identity] | None:
    if identity is None:
        return None
    return seal.load_identity(identity, project_dir=session.settings.project_dir)


def check_source(session: StackSession, target_name: str, identity: Path | None) -> None:
    """Before a recovery from a target starts anything: the target is configured and
    answers, and the identity (needed unless the target is in clear) loads."""
    target = open_target(session, target_name)
    if identity is not None:
        load_identities(session, identity)
    elif encryption_of(session, target_name) == "age":
        raise RecoverctlError(
            f"Copies on target {target_name} are sealed with age: recovering from them needs "
            "the private key.",
            "Pass --identity FILE (or set RECOVERCTL_IDENTITY_FILE): the identity made by "
            "recoverctl keys new-identity, kept with the browser key export.",
            code=ErrorCode.IDENTITY_INVALID,
        )
    target.check()


def prewarm(session: StackSession) -> Callable[[], None]:
    """Opens the S3 targets in a thread (importing boto3 and making its client take about a
    quarter of a second) while the caller does something else, such as backup's dump.
    Returns the function that waits for it: the session's targets are touched by no other
    thread before it returns. A failure here is left for the push itself to report."""
    names = [n for n, t in session.settings.targets.items() if t.type == "s3"]
    if not names:
        return lambda: None
    try:
        namespace = owner(session).namespace  # here: the thread never touches the session's
    except RecoverctlError:
        return lambda: None  # the push says why

    def warm() -> None:
        for name in names:
            with contextlib.suppress(Exception):
                getattr(session.target(name, namespace), "client", None)

    thread = threading.Thread(target=warm, name="recoverctl-prewarm", daemon=True)
    thread.start()
    return thread.join
