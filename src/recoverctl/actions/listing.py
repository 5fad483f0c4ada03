"""list: this stack's backups with their verification state, or what an off-site target
holds (--target), each backup complete or not."""

from __future__ import annotations

# What the CLI shows of a listing: the names' ages, and a target's listing's type.
from recoverctl.core.naming import age as age
from recoverctl.core.naming import parse_backup_name as parse_backup_name
from recoverctl.services import catalog, offsite
from recoverctl.services.catalog import Listing
from recoverctl.services.offsite import TargetListing as TargetListing
from recoverctl.services.session import StackSession
from recoverctl.settings import Settings


def list_backups(settings: Settings) -> Listing:
    return catalog.list_backups(settings)


def list_target(session: StackSession, target: str) -> TargetListing:
    return offsite.list_target(session, target)
