"""The stack's state: its services as the engine sees them, readiness, bringing it up."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping

from recoverctl.adapters import files, process
from recoverctl.adapters.engine import Engine
from recoverctl.core import commands
from recoverctl.core.progress import Step
from recoverctl.core.stack import StackStatus, describe_problem, merge
from recoverctl.errors import StackError
from recoverctl.services.session import StackRef, StackSession

# With probe: between two looks at the engine, the app's published port is asked this often
# for this long, so that the wait ends within a few ms of the app answering.
PROBE_EVERY = 0.02
PROBE_BURST = 0.5


def _quiet(_: str) -> None:
    return None


def status(engine: Engine, ref: StackRef) -> StackStatus:
    return merge(
        ref.project, ref.settings.stack, ref.compose.services, engine.statuses(ref.project)
    )


def wait_ready(
    engine: Engine,
    ref: StackRef,
    timeout: float,
    progress: Step = _quiet,
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
            current = _probed(engine, ref, current, min(deadline, time.monotonic() + PROBE_BURST))
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


def _probed(engine: Engine, ref: StackRef, current: StackStatus, until: float) -> StackStatus:
    """Runs the healthcheck (exec form only: no shell) of each running, starting service.

    The app's own healthcheck is a GET of /healthz on port 8000: where that port is
    published on loopback, the same GET is made from here, which costs a millisecond where
    an exec of the check costs a Python start inside the container it slows down; it is
    repeated every PROBE_EVERY seconds until `until` (the caller looks at the engine again
    after that, to fail fast on a service that died)."""
    from recoverctl.adapters import http
    from recoverctl.adapters.pgexec import exec_in

    rows = []
    for s in current.services:
        if s.state == "running" and s.health == "starting":
            port = http.published_port(s.ports)
            if port is not None:
                if _answers(port, until):
                    s = dataclasses.replace(s, health="healthy")
                rows.append(s)
                continue
            for c in engine.containers(ref.project, s.service):
                test = ((c.attrs.get("Config") or {}).get("Healthcheck") or {}).get("Test") or []
                if test[:1] == ["CMD"] and len(test) > 1 and exec_in(engine, c, tuple(test[1:])).ok:
                    s = dataclasses.replace(s, health="healthy")
        rows.append(s)
    return dataclasses.replace(current, services=tuple(rows))


def _answers(port: int, until: float) -> bool:
    """GET /healthz on the published port until it answers 200 or `until` has passed."""
    from recoverctl.adapters import http

    while http.get(port, "/healthz", timeout=2).status != 200:
        if time.monotonic() >= until:
            return False
        time.sleep(PROBE_EVERY)
    return True


def _tail_of(engine: Engine, ref: StackRef, service: str) -> str | None:
    containers = engine.containers(ref.project, service)
    if not containers:
        return None
    tail = engine.log_tail(containers[0], 15)
    return f"last log lines of {service}:\n{tail}" if tail else None


def bring_up(
    session: StackSession,
    *,
    build: bool = True,
    progress: Step = _quiet,
    env: Mapping[str, str] | None = None,
    probe: bool = False,
) -> StackStatus:
    """docker compose up, then wait until every service is healthy. env: variables for
    compose's interpolation over the env file's (a drill's free port: commands.port_env).
    probe: as wait_ready's (where the app's downtime is measured, as an upgrade's)."""
    settings = session.settings
    files.require_env_file(settings)
    ref = session.ref
    engine = session.engine
    progress("building and starting containers" if build else "starting containers")
    process.run(
        commands.compose_up(ref.target(), build=build),
        cwd=str(settings.project_dir),
        env={**os.environ, **env} if env else None,
        secrets=session.secrets(),
        what=f"docker compose up ({ref.project})",
        hint="Its last lines are above; fix the cause and run recoverctl up again.",
    )
    session.forget_db()  # up may have recreated the db container
    return wait_ready(engine, ref, settings.up_timeout.total_seconds(), progress, probe=probe)
