"""list: this stack's backups with their verification state, or what an off-site target
holds (--target), each backup complete or not."""

from __future__ import annotations

from recoverctl.services import catalog, offsite
from recoverctl.services.catalog import Listing
from recoverctl.services.offsite import TargetListing
from recoverctl.services.session import StackSession
from recoverctl.settings import Settings


def list_backups(settings: Settings) -> Listing:
    return catalog.list_backups(settings)


def list_target(session: StackSession, target: str) -> TargetListing:
    return offsite.list_target(session, target)
