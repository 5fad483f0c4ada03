"""list: this stack's backups, with their verification state."""

from __future__ import annotations

from recoverctl.services import catalog
from recoverctl.services.catalog import Listing
from recoverctl.settings import Settings


def list_backups(settings: Settings) -> Listing:
    return catalog.list_backups(settings)
