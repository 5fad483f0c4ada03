"""Every check doctor has, in the order it runs and lists them: its groups in this order,
each group's checks in its module's order. Adding a group is a module and a line here."""

from __future__ import annotations

from recoverctl.services.doctor import backups, env, git, key, pitr, postgres, stack, targets
from recoverctl.services.doctor.framework import CheckSpec, GroupChecks

GROUPS_IN_ORDER: tuple[GroupChecks, ...] = (
    env.checks,
    git.checks,
    key.checks,
    stack.checks,
    postgres.checks,
    backups.checks,
    targets.checks,
    pitr.checks,
)

REGISTRY: tuple[CheckSpec, ...] = tuple(spec for group in GROUPS_IN_ORDER for spec in group.specs)
