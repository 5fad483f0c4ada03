"""backup's off-site step: the S3 clients warmed while it dumps, the push to every target
after it, and each copy on screen (push shows its copies the same way)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.markup import escape

from recoverctl.cli import render

if TYPE_CHECKING:
    from recoverctl.actions.backup import BackupDone, BackupResult
    from recoverctl.actions.push import Copy
    from recoverctl.cli.options import StackSession

log = logging.getLogger("recoverctl")


def prewarm(session: StackSession) -> Callable[[], None]:
    """The S3 targets' clients made while backup dumps (see services/offsite/lookup.py).
    Without targets, the off-site services are not even imported (boto3 and paramiko are
    slow to import)."""
    if not session.settings.targets:
        return _nothing
    from recoverctl.actions import backup as action

    return action.prewarm(session)


def _nothing() -> None:
    return None


def push_after_backup(
    session: StackSession, made: BackupResult, warmed: Callable[[], None] | None = None
) -> BackupDone:
    """backup's push to every configured target, its failure in the result (exit 3, the
    local backup stays), raised once the backup's own result is out."""
    from recoverctl.actions import backup as action

    if warmed is not None:
        warmed()
    if not session.settings.targets:
        return action.BackupDone(made)
    with render.transfer("uploading to the off-site targets") as on_bytes:
        return action.push(session, made, step=log.info, on_bytes=on_bytes)


def show_copy(c: Copy) -> None:
    where = f"{c.target} ({c.location})" if c.location else c.target
    if c.status == "pushed":
        sealed = "sealed" if c.encryption == "age" else "[yellow]in clear[/]"
        render.out.print(
            f"[green]pushed[/] {c.backup} to {escape(where)}: "
            f"{render.size(c.size)} {sealed}, {c.seconds:.1f} s"
        )
    elif c.status == "present":
        render.out.print(f"[green]already there[/] {c.backup} on {escape(where)}, complete")
    else:
        render.out.print(f"[red]NOT copied[/] {c.backup} to {escape(where)}")
    if c.removed:
        render.out.print(f"  removed what an unfinished upload left: {', '.join(c.removed)}")


def show_copies(done: BackupDone) -> None:
    if done.pushed is not None:
        for c in done.pushed.copies:
            show_copy(c)
