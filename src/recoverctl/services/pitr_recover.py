"""The whole cluster back from a pgBackRest repository on a machine with no stack: what
`recover --target NAME` does when that target holds this stack's repository.

Unlike `restore --to-time` (a throwaway copy, one database dumped and swapped in), the
cluster restored here becomes the live one: pgBackRest fills the db service's own volume
(made by compose, so that compose owns it as any other), then the db service starts on it
with archiving on. After its promotion it is on a timeline of its own, so its WAL never
clashes with the old server's in the repository; `pgbackrest check` proves it archives.
"""

from __future__ import annotations

import contextlib
import os
import time

from recoverctl.adapters import process
from recoverctl.adapters.engine import PROJECT_LABEL, Engine
from recoverctl.core import commands, pitr
from recoverctl.core.pitrtime import PointInTime, check_window, pgbackrest_target, say
from recoverctl.core.progress import Step
from recoverctl.core.upgrade import image_major
from recoverctl.errors import ErrorCode, Interrupted, RecoverctlError
from recoverctl.services import pitr as svc
from recoverctl.services.pitr import PitrError
from recoverctl.services.pitr_restore import (
    PointReached,
    _base_for,
    _code,
    _env_of,
    _mounts,
    _repo,
    _wait_promoted,
    throwaway_project,
)
from recoverctl.services.session import StackSession


def _quiet(_: str) -> None:
    return None


def holds_repository(session: StackSession, target: str) -> bool:
    """The target is one of the [pitr] repositories and its passphrase is here (pulled
    with the env files): the cluster can come back from it."""
    wanted = session.settings.pitr
    if wanted is None or target not in wanted.repos:
        return False
    return svc.read_passphrase(svc.paths(session).passphrase) is not None


def nothing_here(session: StackSession) -> list[str]:
    """What the engine holds of this compose project that a cluster restore would meet (a
    container or a volume); empty on a new machine."""
    return [
        x
        for x in session.engine.project_leftovers(session.project)
        if x.startswith(("container ", "volume "))
    ]


def _compose(session: StackSession, argv: tuple[str, ...], what: str) -> None:
    process.run(
        argv,
        cwd=str(session.settings.project_dir),
        secrets=session.secrets(),
        what=f"docker compose {what} ({session.project})",
        hint="Its last lines are above; fix the cause and run recoverctl recover again.",
    )


def _one_off(
    engine: Engine,
    image: str,
    argv: tuple[str, ...],
    *,
    name: str,
    labels: dict[str, str],
    env: dict[str, str],
    mounts: list[dict[str, object]],
    network: str,
    timeout: float,
    what: str,
) -> bytes:
    """pgBackRest in a container of its own; its standard output, or PitrError."""
    container = engine.run_detached(
        image, argv[1:], name=name, labels=labels, environment=env, mounts=mounts,
        network=network, user="postgres", entrypoint=[argv[0]],
    )  # fmt: skip
    try:
        code = engine.wait(container, timeout)
        if code != 0:
            tail = engine.log_tail(container, 30)
            raise PitrError(
                f"{what} failed: {svc.pgbackrest_cause(tail) or 'see its last lines above.'}",
                "Check the repository (recoverctl verify --pitr) and its passphrase "
                "(.env.pitr, brought back with the env files).",
                code=_code(tail),
                details=tail,
            )
        return engine.stdout_of(container)
    finally:
        with contextlib.suppress(Exception):
            container.remove(force=True)


def recover_cluster(
    session: StackSession, point: PointInTime, target: str, *, step: Step = _quiet
) -> PointReached:
    """The cluster restored from target's repository to point into the db service's volume,
    the db service started on it with archiving on and promoted. The rest of the stack is
    the caller's to bring up. On a failure before the promotion, what this made (the db
    container and its volume) is removed, so that a new run starts clean."""
    settings = session.settings
    engine = session.engine
    repo = _repo(session, target)
    passphrase = svc.read_passphrase(svc.paths(session).passphrase)
    if passphrase is None:
        raise PitrError(
            "The repositories' passphrase is not here.",
            f"Bring it back with the env files: recoverctl env pull --target {target}",
            code=ErrorCode.PITR_PASSPHRASE,
        )
    found = nothing_here(session)
    if found:
        raise RecoverctlError(
            f"A cluster restore needs an empty stack, and project {session.project} has "
            f"{', '.join(found)}.",
            "Recover into this stack with recoverctl restore --to-time TIME, or erase it "
            "first (recoverctl down --volumes) to install the whole cluster.",
            code=ErrorCode.USAGE,
        )
    timeout = settings.up_timeout.total_seconds()
    t0 = time.monotonic()
    promoted = False
    try:
        # The override names the private env file, and compose reads both at create.
        step("writing the archive settings (as pitr enable does)")
        user = _env_user(session)
        svc.install(session, svc.config(session, passphrase, user))
        step("creating the db service's volume (nothing started)")
        _compose(session, commands.compose_create(session.ref.target(), ("db",)), "create db")
        container = engine.service_container(session.project, "db", running=False)
        volume = _data_volume(container)
        image = str(container.attrs["Config"]["Image"])
        env = svc.environment_of(session)
        live = _env_of(container)
        for key in ("POSTGRES_USER", "POSTGRES_DB"):
            if key in live:
                env[key] = live[key]
        mounts = _mounts(svc.repos(session), volume)
        networks = engine.networks_of(container)
        network = "none" if repo.kind == "posix" or not networks else networks[0]
        # Under the throwaway project's label: one remove_project clears a killed run's.
        labels = {PROJECT_LABEL: throwaway_project(session.project)}
        engine.remove_project(labels[PROJECT_LABEL])
        step(f"reading the window of {repo.name}")
        out = _one_off(
            engine, image, pitr.info(), name=f"{session.project}-pitr-info", labels=labels,
            env=env, mounts=mounts, network=network, timeout=timeout,
            what=f"Reading repository {repo.name} (pgbackrest info)",
        )  # fmt: skip
        held = pitr.parse_info(out.decode("utf-8", "replace")).repo(repo.index)
        if held is None or not held.ok:
            raise PitrError(
                f"Repository {repo.name} cannot be read: "
                f"{held.message if held else 'pgBackRest does not list it'}.",
                "Check the target and the passphrase (.env.pitr), then run recover again.",
            )
        refusal = pitr.wrong_image(repo.name, held.version, image, image_major(image))
        if refusal is not None:
            raise PitrError(*refusal)
        # The newest archived point is unknown here (the server that wrote it is gone).
        check_window(point, held.earliest, None)
        base = _base_for(held, point)
        asked = None if point.latest or point.at is None else pgbackrest_target(point.at)
        step(f"restoring the whole cluster from {repo.name} into {volume}")
        _one_off(
            engine, image, pitr.restore(repo.index, asked, archive=True),
            name=f"{session.project}-pitr-restore", labels=labels, env=env, mounts=mounts,
            network=network, timeout=timeout, what=f"Restoring from {repo.name}",
        )  # fmt: skip
        step("starting the db on it, archiving on")
        _compose(
            session,
            commands.compose_up(session.ref.target(), build=False, services=("db",)),
            "up db",
        )
        session.forget_db()
        db_container = engine.service_container(session.project, "db", running=False)
        db, reached = _wait_promoted(engine, db_container, timeout, step)
        promoted = True
        seconds = time.monotonic() - t0
    except KeyboardInterrupt:
        raise Interrupted(
            "Cluster recovery interrupted before the db was promoted: what it made is removed.",
            "Run recoverctl recover again.",
        ) from None
    finally:
        if not promoted:
            with contextlib.suppress(Exception):
                engine.remove_project(session.project)
    step("checking that the recovered cluster archives (pgbackrest check)")
    svc.run(
        db,
        pitr.check(),
        "pgbackrest check on the recovered cluster",
        "Archiving does not work yet: see recoverctl pitr status, then recoverctl pitr enable.",
    )
    return PointReached(
        asked=point.said,
        asked_at=point.at,
        reached=reached,
        reached_said=say(reached, point.zone) if reached else "the base backup's end",
        repo=repo.name,
        base_backup=base,
        seconds=seconds,
    )


def _env_user(session: StackSession) -> str:
    from dotenv import dotenv_values

    values = dotenv_values(session.settings.env_file)
    return values.get("POSTGRES_USER") or os.environ.get("POSTGRES_USER") or "postgres"


def _data_volume(container: object) -> str:
    """The named volume compose mounted at the data directory of the db container."""
    found = pitr.data_volume(getattr(container, "attrs", {}))
    if found is not None:
        return found
    raise PitrError(
        f"The db service has no named volume at {pitr.PGDATA}: nothing to restore into.",
        "Give the db service its named volume (db-data) as the compose file has it.",
        code=ErrorCode.PITR_FAILED,
    )
