"""upgrade-postgres: a major PostgreSQL upgrade of the stack (services/upgrade.py does the
steps), its rollback to the kept cluster, and the kept volume's removal."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from recoverctl.core.progress import Step
from recoverctl.services import upgrade as svc
from recoverctl.services.session import StackSession
from recoverctl.services.upgrade import ForgetResult, RollbackResult, UpgradeResult

if TYPE_CHECKING:
    from recoverctl.services.envcopy import EnvPushResult as EnvPushResult

__all__ = ["ForgetResult", "RollbackResult", "UpgradeResult", "forget_old", "rollback", "upgrade"]


def _quiet(_: str) -> None:
    return None


def upgrade(
    session: StackSession,
    to: int,
    *,
    image: str | None = None,
    dry_run: bool = False,
    confirm: svc.Confirm,
    step: Step = _quiet,
) -> UpgradeResult:
    return svc.run_upgrade(session, to, image=image, dry_run=dry_run, confirm=confirm, step=step)


def rollback(session: StackSession, *, confirm: svc.Confirm, step: Step = _quiet) -> RollbackResult:
    return svc.rollback(session, confirm=confirm, step=step)


def forget_old(session: StackSession, *, confirm: Callable[[str], None]) -> ForgetResult:
    return svc.forget_old(session, confirm=confirm)
