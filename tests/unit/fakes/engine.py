"""The Docker engine's public API over a list of containers (real docker Container
objects over attrs dicts) with compose labels, running or stopped, healthy or not: stop,
start, reload, logs, version; every call logged, each scriptable to fail (faults.py).
"""

from __future__ import annotations

import hashlib
import socket
import threading
from collections.abc import Sequence
from typing import Any

from docker.models.containers import Container

from recoverctl.adapters.engine import ENGINE_HINT, PROJECT_LABEL, SERVICE_LABEL, Engine
from recoverctl.errors import EngineError

from .faults import Fault, Faults, _act

PROJECT = "vault-dev"
ENGINE_KINDS = frozenset({"containers", "stop", "start", "reload", "logs", "version"})


def _container(
    project: str, service: str, index: int, *, status: str, health: str | None
) -> Container:
    name = f"{project}-{service}-1" if index == 1 else f"{project}-{service}-{index}"
    attrs: dict[str, Any] = {
        "Id": hashlib.sha256(name.encode()).hexdigest(),
        "Name": "/" + name,
        "State": {
            "Status": status,
            "ExitCode": 0,
            **({"Health": {"Status": health}} if health else {}),
        },
        "Config": {
            "Labels": {PROJECT_LABEL: project, SERVICE_LABEL: service},
            "Env": [],
            "User": "",
        },
        "NetworkSettings": {"Ports": {}},
    }
    return Container(attrs=attrs)


class FakeEngine(Engine):
    """The engine's public API over a list of containers; every call is logged in calls."""

    def __init__(self, project: str = PROJECT):
        # No SDK client: every method that would use one is replaced here.
        self.project = project
        self.all: list[Container] = []
        self.calls: list[str] = []
        self.faults = Faults(ENGINE_KINDS)
        self.unreachable = False
        self.crashes: dict[str, int] = {}  # service -> starts that end in a crash
        self.warming: dict[str, int] = {}  # service -> status reads it stays "starting"
        self.log_lines: dict[str, str] = {}  # container name -> its log
        self._lock = threading.RLock()

    # --- set-up and inspection for tests ---

    def add(
        self,
        service: str,
        *,
        status: str = "running",
        health: str | None = "healthy",
        port: int | None = None,
    ) -> Container:
        index = 1 + sum(1 for c in self.all if c.labels.get(SERVICE_LABEL) == service)
        c = _container(self.project, service, index, status=status, health=health)
        if port is not None:
            c.attrs["NetworkSettings"]["Ports"] = {
                "8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
            }
        self.all.append(c)
        return c

    def unpublish(self, service: str) -> None:
        """No published port: readiness is then the engine's word (or an exec'd check)."""
        for c in self.of(service):
            c.attrs["NetworkSettings"]["Ports"] = {}

    def of(self, service: str) -> list[Container]:
        return [c for c in self.all if c.labels.get(SERVICE_LABEL) == service]

    def fail(
        self, kind: str, error: BaseException, *, after: int = 0, times: int | None = 1
    ) -> Fault:
        return self.faults.add(Fault(kind, error=error, after=after, times=times))

    def crash_on_start(self, service: str, times: int = 1, log: str = "") -> None:
        """The next starts of service end at once (exit 1), as an app that cannot migrate."""
        self.crashes[service] = times
        for c in self.of(service):
            self.log_lines[str(c.name)] = log

    def up(self) -> None:
        """What `docker compose up` leaves: every container running (and healthy), but
        those set to crash."""
        with self._lock:
            for c in self.all:
                if c.status != "running":
                    self.calls.append(f"up {c.name}")
                    self._start(c)

    # --- the public API ---

    def _enter(self, kind: str, what: str) -> None:
        self.calls.append(f"{kind} {what}".rstrip())
        if self.unreachable:
            raise engine_lost(f"{kind} {what}".rstrip())
        fault = self.faults.take(kind)
        if fault is not None:
            _act(fault)

    def _set(self, c: Container, status: str, exit_code: int = 0) -> None:
        state = c.attrs["State"]
        state["Status"] = status
        state["ExitCode"] = exit_code
        if "Health" in state:
            service = c.labels[SERVICE_LABEL]
            starting = status == "running" and self.warming.get(service, 0) > 0
            state["Health"]["Status"] = "starting" if starting else "healthy"

    def containers(self, project: str, service: str | None = None) -> list[Container]:
        self._enter("containers", service or "")
        with self._lock:
            found = [
                c
                for c in self.all
                if c.labels.get(PROJECT_LABEL) == project
                and (service is None or c.labels.get(SERVICE_LABEL) == service)
            ]
            for c in found:  # a starting service turns healthy after a few looks
                name = c.labels[SERVICE_LABEL]
                health = c.attrs["State"].get("Health")
                if health and health["Status"] == "starting" and self.warming.get(name, 0) > 0:
                    self.warming[name] -= 1
                    if self.warming[name] == 0:
                        health["Status"] = "healthy"
            return list(found)

    def stop(self, container: Container, timeout: int = 30) -> None:
        self._enter("stop", str(container.name))
        with self._lock:
            self._set(container, "exited")

    def start(self, container: Container) -> None:
        self._enter("start", str(container.name))
        with self._lock:
            self._start(container)

    def _start(self, container: Container) -> None:
        service = container.labels[SERVICE_LABEL]
        if self.crashes.get(service, 0) > 0:
            self.crashes[service] -= 1
            self._set(container, "exited", exit_code=1)
        else:
            self._set(container, "running")

    def restart(self, container: Container, timeout: int = 30) -> None:
        self.stop(container, timeout)
        self.start(container)

    def reload(self, container: Container) -> None:
        self._enter("reload", str(container.name))

    def logs(self, container: Container, *, tail: int | str = "all", follow: bool = False) -> Any:
        self._enter("logs", str(container.name))
        lines = self.log_lines.get(str(container.name), "").splitlines()
        if isinstance(tail, int):
            lines = lines[-tail:]
        return "".join(line + "\n" for line in lines).encode()

    def version(self) -> dict[str, Any]:
        self._enter("version", "")
        return {"Version": "27.3.1", "ApiVersion": "1.47"}

    def exec_open(
        self, container: Container, argv: Sequence[str], *, stdin: bool, user: str = ""
    ) -> tuple[str, socket.socket]:
        raise AssertionError(f"the fakes never exec for real: {argv[0]}")

    def exec_exit_code(self, exec_id: str, wait: float = 15) -> int | None:
        raise AssertionError("the fakes never exec for real")


def engine_lost(what: str = "list containers") -> EngineError:
    return EngineError(
        f"Lost the Docker engine while trying to {what}: [Errno 111] Connection refused",
        ENGINE_HINT,
    )
