"""Stack status: what each service's container is doing, and whether the stack is ready."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from recoverctl.core.result import JsonResult, computed, meta

# The two stacks a project runs, as the JSON names them.
StackName = Literal["dev", "prod"]



def prod_flag(stack: str) -> str:
    """What a command given in a hint adds for the stack it is about."""
    return " --prod" if stack == "prod" else ""


# Docker states from which a container will not become healthy on its own; "restarting"
# is a crash loop under a restart policy (a manual restart is stop + start, never this).
DEAD_STATES = frozenset({"exited", "dead", "removing", "restarting"})


@dataclass(frozen=True)
class ServiceStatus(JsonResult):
    service: str
    container: str | None  # None: no container exists for the service
    state: str  # running, exited, restarting, ..., or "missing"
    health: str | None  # healthy, unhealthy, starting, or None without a healthcheck
    ports: tuple[str, ...] = ()
    exit_code: int | None = None

    @property
    def ready(self) -> bool:
        return self.state == "running" and self.health in (None, "healthy")

    @property
    def failed(self) -> bool:
        return self.state in DEAD_STATES or self.health == "unhealthy"


@dataclass(frozen=True)
class StackStatus(JsonResult):
    project: str
    stack: str = field(metadata=meta(schema=StackName))
    services: tuple[ServiceStatus, ...] = field(default_factory=tuple)

    @property
    @computed(after="stack")
    def ready(self) -> bool:
        return bool(self.services) and all(s.ready for s in self.services)

    @property
    def failed(self) -> tuple[ServiceStatus, ...]:
        return tuple(s for s in self.services if s.failed)

    @property
    def waiting(self) -> tuple[ServiceStatus, ...]:
        return tuple(s for s in self.services if not s.ready and not s.failed)


def merge(
    project: str, stack: str, expected: Iterable[str], found: Iterable[ServiceStatus]
) -> StackStatus:
    """One row per expected service (missing ones included) plus any extra found."""
    by_service: dict[str, ServiceStatus] = {}
    for status in found:
        # Several containers for one service (scale, leftovers): keep the worst one visible.
        current = by_service.get(status.service)
        if current is None or (current.ready and not status.ready):
            by_service[status.service] = status
    rows = [
        by_service.pop(
            name, ServiceStatus(service=name, container=None, state="missing", health=None)
        )
        for name in expected
    ]
    rows.extend(by_service.values())
    return StackStatus(
        project=project, stack=stack, services=tuple(sorted(rows, key=lambda s: s.service))
    )


def describe_problem(status: ServiceStatus) -> str:
    if status.state == "missing":
        return f"{status.service} has no container"
    if status.state == "restarting":
        return f"{status.service} is restarting over and over (it crashes on start)"
    if status.state in DEAD_STATES:
        code = f" with code {status.exit_code}" if status.exit_code is not None else ""
        return f"{status.service} {status.state}{code}"
    if status.health:
        return f"{status.service} is {status.state}, {status.health}"
    return f"{status.service} is {status.state}"
