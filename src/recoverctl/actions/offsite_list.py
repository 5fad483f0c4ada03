"""list --target: what an off-site target holds, each backup complete or not."""

from __future__ import annotations

from recoverctl.services import offsite
from recoverctl.services.offsite import TargetListing
from recoverctl.services.session import StackSession


def list_target(session: StackSession, target: str) -> TargetListing:
    return offsite.list_target(session, target)
