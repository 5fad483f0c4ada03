"""doctor's checks (recover and drill run some of them): every check runs, each ok / warn /
fail with one line of evidence and one of fix.

framework.py is what a check is and how a run goes; one module per group holds its checks;
registry.py lists the groups in order. The rest of the code comes in through here."""

from __future__ import annotations

import time
from collections.abc import Iterable

from recoverctl.errors import RecoverctlError
from recoverctl.services.doctor.framework import (
    GROUPS,
    CheckList,
    CheckSpec,
    Context,
    DoctorReport,
    Group,
    Need,
    run_checks,
)
from recoverctl.services.doctor.framework import select as _select
from recoverctl.services.doctor.registry import REGISTRY
from recoverctl.services.session import StackSession

__all__ = [
    "GROUPS",
    "REGISTRY",
    "CheckList",
    "CheckSpec",
    "Context",
    "DoctorReport",
    "Group",
    "Need",
    "run",
    "run_checks",
    "select",
]


def select(
    groups: Iterable[str] = GROUPS, only: Iterable[str] | None = None
) -> tuple[CheckSpec, ...]:
    """The registry's checks of groups, or those only picks (see framework.select)."""
    return _select(REGISTRY, groups, only)


def run(
    session: StackSession, groups: Iterable[str] = GROUPS, only: Iterable[str] | None = None
) -> DoctorReport:
    """Runs the checks of groups (every group by default), or those only selects (see
    select); never raises for a failed check, only for an unknown group or selector."""
    started = time.monotonic()
    selectors = tuple(only or ())
    ctx = Context(session)
    rows = run_checks(ctx, select(groups, selectors), selectors)
    try:
        project = ctx.ref().project
    except RecoverctlError:
        project = session.settings.project_name or session.settings.project_dir.name
    return DoctorReport(project, session.settings.stack, tuple(rows), time.monotonic() - started)
