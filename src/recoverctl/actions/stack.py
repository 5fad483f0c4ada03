"""Lifecycle actions: up, down, ps, logs, restart."""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recoverctl.adapters import compose, files, process
from recoverctl.adapters.engine import Engine
from recoverctl.core import commands
from recoverctl.core.compose_model import ComposeModel
from recoverctl.core.stack import StackStatus, describe_problem, merge
from recoverctl.errors import ConfigError, StackError
from recoverctl.settings import Settings, project_name

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class StackRef:
    settings: Settings
    compose: ComposeModel
    project: str

    @classmethod
    def load(cls, settings: Settings, *, need_env: bool = False) -> StackRef:
        model = files.load_compose(settings)
        if need_env:
            files.require_env_file(settings)
        return cls(settings=settings, compose=model, project=project_name(settings, model))

    def target(self) -> commands.ComposeTarget:
        s = self.settings
        return commands.ComposeTarget(
            cli=compose.detect_cli(),
            project=self.project,
            compose_file=str(s.compose_file),
            env_file=str(s.env_file),
            project_dir=str(s.project_dir),
        )

    def require_service(self, service: str) -> None:
        if service not in self.compose.services:
            raise ConfigError(
                f"No service {service!r} in {self.settings.compose_rel}.",
                "Services: " + ", ".join(self.compose.services) + ".",
                exit_code=2,
            )


@dataclass(frozen=True)
class UpResult:
    status: StackStatus
    built: bool
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {**self.status.to_json(), "built": self.built, "seconds": round(self.seconds, 1)}


@dataclass(frozen=True)
class DownPlan:
    project: str
    stack: str
    newest_backup: Path | None


@dataclass(frozen=True)
class DownResult:
    project: str
    stack: str
    volumes_removed: bool
    newest_backup: Path | None

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "stack": self.stack,
            "volumes_removed": self.volumes_removed,
            "newest_backup": str(self.newest_backup) if self.newest_backup else None,
        }


def status(engine: Engine, ref: StackRef) -> StackStatus:
    return merge(
        ref.project, ref.settings.stack, ref.compose.services, engine.statuses(ref.project)
    )


def ps(settings: Settings) -> StackStatus:
    ref = StackRef.load(settings)
    return status(Engine.connect(), ref)


def wait_ready(
    engine: Engine,
    ref: StackRef,
    timeout: float,
    progress: Progress = _quiet,
    *,
    probe: bool = False,
) -> StackStatus:
    """Polls until every service is running and healthy; fails fast on a dead one.

    With probe, a starting service's own healthcheck is run at once rather than waiting for
    the engine's next interval: a restore's downtime is then the app's real start time."""
    deadline = time.monotonic() + timeout
    while True:
        current = status(engine, ref)
        if probe and not current.ready and not current.failed:
            current = _probed(engine, ref, current)
        if current.ready:
            return current
        if current.failed:
            bad = current.failed[0]
            raise StackError(
                f"Service {describe_problem(bad)}; the stack is not healthy.",
                f"Read its logs (recoverctl logs {bad.service}), fix the cause, then run up again.",
                details=_tail_of(engine, ref, bad.service),
            )
        if time.monotonic() >= deadline:
            slow = current.waiting[0] if current.waiting else current.services[0]
            raise StackError(
                f"Timed out after {timeout:.0f} s waiting for the stack: {describe_problem(slow)}.",
                f"Read its logs (recoverctl logs {slow.service}); raise RECOVERCTL_UP_TIMEOUT "
                "if it is only slow.",
                details=_tail_of(engine, ref, slow.service),
            )
        progress("waiting for " + ", ".join(describe_problem(s) for s in current.waiting))
        time.sleep(0.1 if probe else 1.0)


def _probed(engine: Engine, ref: StackRef, current: StackStatus) -> StackStatus:
    """Runs the healthcheck (exec form only: no shell) of each running, starting service.

    The app's own healthcheck is a GET of /healthz on port 8000: where that port is
    published on loopback, the same GET is made from here, which costs a millisecond where
    an exec of the check costs a Python start inside the container it slows down."""
    from recoverctl.adapters import http
    from recoverctl.adapters.pgexec import exec_in

    rows = []
    for s in current.services:
        if s.state == "running" and s.health == "starting":
            port = http.published_port(s.ports)
            if port is not None:
                if http.get(port, "/healthz", timeout=2).status == 200:
                    s = dataclasses.replace(s, health="healthy")
                rows.append(s)
                continue
            for c in engine.containers(ref.project, s.service):
                test = ((c.attrs.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []
                if test[:1] == ["CMD"] and len(test) > 1 and exec_in(engine, c, tuple(test[1:])).ok:
                    s = dataclasses.replace(s, health="healthy")
        rows.append(s)
    return dataclasses.replace(current, services=tuple(rows))


def _tail_of(engine: Engine, ref: StackRef, service: str) -> str | None:
    containers = engine.containers(ref.project, service)
    if not containers:
        return None
    tail = engine.log_tail(containers[0], 15)
    return f"last log lines of {service}:\n{tail}" if tail else None


def up(settings: Settings, *, build: bool = True, progress: Progress = _quiet) -> UpResult:
    started = time.monotonic()
    ref = StackRef.load(settings, need_env=True)
    engine = Engine.connect()
    progress("building and starting containers" if build else "starting containers")
    process.run(
        commands.compose_up(ref.target(), build=build),
        cwd=str(settings.project_dir),
        what=f"docker compose up ({ref.project})",
        hint="Its last lines are above; fix the cause and run recoverctl up again.",
    )
    ready = wait_ready(engine, ref, settings.up_timeout, progress)
    return UpResult(status=ready, built=build, seconds=time.monotonic() - started)


def plan_down(settings: Settings) -> DownPlan:
    ref = StackRef.load(settings)
    return DownPlan(ref.project, settings.stack, files.newest_backup(settings.backup_dir))


def down(settings: Settings, *, volumes: bool) -> DownResult:
    ref = StackRef.load(settings)
    Engine.connect()
    # compose reads the env file for interpolation; down works without one.
    target = ref.target()
    if not settings.env_file.is_file():
        target = dataclasses.replace(target, env_file="/dev/null")
    process.run(
        commands.compose_down(target, volumes=volumes),
        cwd=str(settings.project_dir),
        what=f"docker compose down ({ref.project})",
        hint="Its last lines are above; check `recoverctl ps` and try again.",
    )
    return DownResult(
        ref.project, settings.stack, volumes, files.newest_backup(settings.backup_dir)
    )


def restart(settings: Settings, service: str | None, progress: Progress = _quiet) -> StackStatus:
    ref = StackRef.load(settings)
    if service is not None:
        ref.require_service(service)
    engine = Engine.connect()
    targets = engine.containers(ref.project, service)
    if not targets:
        raise StackError(
            f"No container to restart for {service or 'project ' + ref.project}.",
            "Bring the stack up first: recoverctl up",
        )
    for container in targets:
        progress(f"restarting {container.name}")
        engine.restart(container)
    return wait_ready(engine, ref, settings.up_timeout, progress)


def logs(
    settings: Settings,
    service: str | None,
    *,
    follow: bool,
    tail: int | None,
    sink: Callable[[str, bytes], None],
) -> None:
    """Streams log lines to sink(service, line); follows all containers at once with -f."""
    ref = StackRef.load(settings)
    if service is not None:
        ref.require_service(service)
    engine = Engine.connect()
    containers = sorted(engine.containers(ref.project, service), key=lambda c: str(c.name))
    if not containers:
        raise StackError(
            f"No container for {service or 'project ' + ref.project}.",
            "Bring the stack up first: recoverctl up",
        )
    tail_arg: int | str = "all" if tail is None else tail
    if not follow:
        for c in containers:
            raw = bytes(engine.logs(c, tail=tail_arg))
            for line in raw.splitlines(keepends=True):
                sink(str(c.labels.get("com.docker.compose.service", c.name)), line)
        return
    lines: queue.Queue[tuple[str, bytes] | None] = queue.Queue()

    def pump(c: Any) -> None:
        name = str(c.labels.get("com.docker.compose.service", c.name))
        try:
            for chunk in engine.logs(c, tail=tail_arg, follow=True):
                lines.put((name, chunk))
        finally:
            lines.put(None)

    for c in containers:
        threading.Thread(target=pump, args=(c,), daemon=True).start()
    open_streams = len(containers)
    while open_streams:
        item = lines.get()
        if item is None:
            open_streams -= 1
        else:
            sink(*item)
