"""doctor: env files, git hygiene, the key backup, the stack and the backups.

The checks and their registry are services/doctor/, which recover and drill share."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from recoverctl.services import doctor as checks
from recoverctl.services.doctor import GROUPS, CheckList, DoctorReport
from recoverctl.services.session import StackSession


def doctor(
    session: StackSession, groups: Iterable[str] = GROUPS, only: Iterable[str] | None = None
) -> DoctorReport:
    return checks.run(session, groups, only)


def check_list(only: Sequence[str] | None = None) -> CheckList:
    """The registry's checks that `only` selects, for `doctor --list`; needs no project."""
    return CheckList(checks.select(only=only))
