"""prune: delete the backups the retention policy no longer keeps, locally or on targets."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from recoverctl.adapters import fsio

# How old a backup is, as the CLI shows it.
from recoverctl.core.naming import age as age
from recoverctl.core.result import JsonResult, computed, meta
from recoverctl.core.stack import StackName
from recoverctl.services import retention
from recoverctl.services.retention import LOCAL

# The types of a PruneResult's scopes, named here for the CLI (which imports actions only).
from recoverctl.services.retention import ScopePlan as ScopePlan
from recoverctl.services.retention import ScopeResult as ScopeResult
from recoverctl.services.session import StackSession

UNCONFIRMED = "kept: not in the plan that was confirmed"


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class PruneResult(JsonResult):
    stack: str = field(metadata=meta(schema=StackName))
    dry_run: bool
    scopes: tuple[ScopeResult, ...]

    @property
    @computed(after="dry_run")
    def deleted(self) -> int:
        return sum(len(s.deleted) for s in self.scopes)

    @property
    def doomed(self) -> tuple[tuple[str, str], ...]:
        """(where, name) of each backup the plans delete: what a person confirms."""
        return tuple((s.plan.where, i.name) for s in self.scopes for i in s.plan.doomed)


def _plans(
    session: StackSession, *, target: str | None = None, all_targets: bool = False
) -> tuple[ScopePlan, ...]:
    settings = session.settings
    names = retention.target_names(settings, target, all_targets)
    if not names:
        return (retention.plan_local(settings),)
    return tuple(retention.plan_target(settings, name) for name in names)


def plan(
    session: StackSession, *, target: str | None = None, all_targets: bool = False
) -> PruneResult:
    """What prune would delete, deleting nothing: the dry run, and the plan a person
    confirms. Reads only (no lock: nothing changes)."""
    plans = _plans(session, target=target, all_targets=all_targets)
    return PruneResult(
        session.settings.stack, True, tuple(ScopeResult(p, (), ()) for p in plans)
    )


def prune(
    session: StackSession,
    *,
    target: str | None = None,
    all_targets: bool = False,
    confirmed: Collection[tuple[str, str]] | None = None,
    step: Callable[[str], None] = _quiet,
) -> PruneResult:
    """Plans again under the project lock (a backup may have landed since the plan was
    shown) and deletes what that plan deletes; with `confirmed` ((where, name) pairs), only
    the backups named there, so nothing is deleted that the person did not see."""
    settings = session.settings
    with fsio.project_lock(session.project, "prune"):
        plans = _plans(session, target=target, all_targets=all_targets)
        done: list[ScopeResult] = []
        for p in plans:
            p = _restrict(p, confirmed)
            if p.where == LOCAL:
                done.append(retention.delete_local(settings, p, step))
            else:
                done.append(retention.delete_target(settings, p, step))
    return PruneResult(settings.stack, False, tuple(done))


def _restrict(p: ScopePlan, confirmed: Collection[tuple[str, str]] | None) -> ScopePlan:
    if confirmed is None:
        return p
    items = tuple(
        i if i.keep or (p.where, i.name) in confirmed else dataclasses.replace(i, reasons=(UNCONFIRMED,))
        for i in p.items
    )
    return dataclasses.replace(p, items=items)
