"""A cluster restored to a point in time, in a throwaway volume, and its vault database
dumped: what `restore --to-time` swaps in through the ordinary, verified path.

The throwaway is a compose project of its own (`PROJECT-pitr`, by labels), so that one
`remove_project` takes it all away, including after a kill. pgBackRest restores into its
empty volume from a one-off container; a second container starts PostgreSQL on it with
archiving off (pgBackRest's `--archive-mode=off`, and `-c archive_mode=off` on top), so the
copy never writes the repository. The live cluster is only read: its timeline goes on.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from recoverctl import failpoints
from recoverctl.adapters import fsio
from recoverctl.adapters.engine import PROJECT_LABEL, Engine
from recoverctl.adapters.pgexec import Db
from recoverctl.core import pitr
from recoverctl.core.pitrtime import PointInTime, check_window, pgbackrest_target, say
from recoverctl.core.progress import Step
from recoverctl.core.result import JsonResult, meta
from recoverctl.errors import ErrorCode, Interrupted, RecoverctlError
from recoverctl.services import dump
from recoverctl.services import pitr as svc
from recoverctl.services.pitr import PitrError
from recoverctl.services.session import StackSession

if TYPE_CHECKING:
    from docker.models.containers import Container


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class PointReached(JsonResult):
    """What a point-in-time restore asked for and what it reached: the last commit replayed
    (a restore stops before the first commit after the time asked for)."""

    asked: str  # as said back to the person, with its zone
    asked_at: datetime | None  # None: latest
    reached: datetime | None  # None: no commit after the base backup's end
    reached_said: str
    repo: str
    base_backup: str
    seconds: float = field(metadata=meta(name="restore_seconds", digits=2))


def throwaway_project(project: str) -> str:
    return f"{project}-pitr"


def _repo(session: StackSession, name: str | None) -> pitr.Repo:
    found = svc.repos(session)
    if name is None:
        return found[0]
    for repo in found:
        if repo.name == name:
            return repo
    raise RecoverctlError(
        f"Target {name!r} holds no repository of this stack: [pitr] repos are "
        f"{', '.join(r.name for r in found)}.",
        "Name one of those with --target, or leave --target out.",
        code=ErrorCode.USAGE,
    )


def _mounts(repos: list[pitr.Repo], volume: str) -> list[dict[str, object]]:
    mounts: list[dict[str, object]] = [{"type": "volume", "source": volume, "target": pitr.PGDATA}]
    for repo in repos:
        if repo.host_path and repo.mount:
            # Read-only: a restored copy never writes the repository.
            mounts.append(
                {"type": "bind", "source": repo.host_path, "target": repo.mount, "read_only": True}
            )
        if repo.ca_host_file and repo.ca_mount:
            mounts.append(
                {"type": "bind", "source": repo.ca_host_file, "target": repo.ca_mount,
                 "read_only": True}
            )  # fmt: skip
    return mounts


def _env_of(container: Container) -> dict[str, str]:
    return dict(
        item.split("=", 1) for item in container.attrs["Config"].get("Env") or [] if "=" in item
    )


@dataclass(frozen=True)
class Window:
    held: pitr.RepoInfo
    latest: datetime | None  # the newest point the archive holds, as far as is known
    # The time of a commit made and archived just now (archive_now): a restore to latest
    # that replays everything reaches it. None when archiving failed (latest is then the
    # last archiving's time, which no commit need reach).
    marked: datetime | None


def window(session: StackSession, db: Db, repo: pitr.Repo) -> Window:
    """The repository's window now: its earliest point, and the newest point the archive
    holds. Everything committed until now is archived first (a commit of its own, a
    switch, and a wait), so that the window reaches the present."""
    latest: datetime | None
    marked: datetime | None
    try:
        latest = marked = svc.archive_now(db)
    except PitrError:
        latest, marked = svc.archiver(db).last_archived_at, None  # archiving fails
    held = svc.info(db).repo(repo.index)
    if held is None or not held.ok:
        raise PitrError(
            f"Repository {repo.name} cannot be read: "
            f"{held.message if held else 'pgBackRest does not list it'}.",
            "See recoverctl pitr status and recoverctl doctor.",
        )
    return Window(held, latest, marked)


def _wait_promoted(
    engine: Engine, container: Container, timeout: float, step: Step
) -> tuple[Db, datetime | None]:
    deadline = time.monotonic() + timeout
    db: Db | None = None
    while True:
        engine.reload(container)
        if container.status in ("exited", "dead"):
            tail = engine.log_tail(container, 30)
            reason = _recovery_failure(tail)
            raise PitrError(
                f"The restored copy did not start: {reason}",
                "Pick a time inside the window (recoverctl pitr status), or check the "
                "repository (recoverctl verify --pitr).",
                details=tail,
            )
        if db is None:
            db = Db.attach(engine, container)
        try:
            row = db.query(pitr.REPLAYED_SQL, "postgres")
        except RecoverctlError:
            row = ""  # still starting
        if row.strip():
            reached, in_recovery = pitr.parse_replayed(row)
            if not in_recovery:
                return db, reached
        if time.monotonic() > deadline:
            raise PitrError(
                f"The restored copy was still replaying WAL after {timeout:.0f} s.",
                "Raise RECOVERCTL_UP_TIMEOUT if the archive is only long, then run it again.",
                details=engine.log_tail(container, 30),
            )
        step("replaying WAL up to the point asked for")
        time.sleep(0.5)


# What PostgreSQL tells a client it turned away while it started (recoverctl's own polls):
# never the cause of a failed recovery.
_TURNED_AWAY = ("the database system is starting up", "not yet accepting connections")


def _recovery_failure(tail: str) -> str:
    said = [
        line.split("FATAL:", 1)[1].strip().rstrip(".")
        for line in tail.splitlines()
        if "FATAL:" in line
    ]
    causes = [s for s in said if not any(t in s for t in _TURNED_AWAY)]
    if causes:
        return causes[-1] + "."
    return "PostgreSQL stopped (its last lines are above)."


@dataclass(frozen=True)
class Copy:
    """The throwaway cluster, restored and promoted: its server, and the point it reached."""

    db: Db
    point: PointReached
    # The archive's newest commit when the restore began; None when unknown (archiving
    # was failing).
    latest: datetime | None

    def short_of_latest(self) -> bool:
        """latest asked, and the copy stopped before the archive's newest commit: it met WAL
        it could not replay (damaged, missing), and PostgreSQL promotes there silently."""
        reached = self.point.reached
        return self.latest is not None and (reached is None or reached < self.latest)


UNTOUCHED = (
    "Point-in-time restore interrupted before anything was swapped: the live database is "
    "untouched."
)


@contextlib.contextmanager
def restored_copy(
    session: StackSession,
    point: PointInTime,
    repo: pitr.Repo,
    *,
    interrupted: str = UNTOUCHED,
    step: Step = _quiet,
) -> Iterator[Copy]:
    """The cluster restored from repo to point in a throwaway (archiving off, the
    repositories mounted read-only), started and promoted, for the body to read; removed
    when the body ends, whatever happens. interrupted: what Ctrl-C then says. One at a
    time per stack (restore, drill and verify --pitr --deep share the throwaway's name):
    a second is refused (locked) rather than remove the first one's copy."""
    lock = fsio.project_lock(throwaway_project(session.project), "a point-in-time copy")
    with lock, _restored_copy(session, point, repo, interrupted=interrupted, step=step) as copy:
        yield copy


@contextlib.contextmanager
def _restored_copy(
    session: StackSession,
    point: PointInTime,
    repo: pitr.Repo,
    *,
    interrupted: str,
    step: Step,
) -> Iterator[Copy]:
    settings = session.settings
    db = session.db()
    engine = session.engine
    step("archiving everything committed until now")
    now = window(session, db, repo)
    held = now.held
    check_window(point, held.earliest, now.latest)
    base = _base_for(held, point)
    env = svc.environment_of(session)
    live = _env_of(db.container)
    for key in ("POSTGRES_USER", "POSTGRES_DB"):
        if key in live:
            env[key] = live[key]
    image = str(db.container.attrs["Config"]["Image"])
    throwaway = throwaway_project(session.project)
    labels = {PROJECT_LABEL: throwaway}
    volume = f"{throwaway}_data"
    network = engine.networks_of(db.container)[0] if repo.kind != "posix" else "none"
    t0 = time.monotonic()
    try:
        engine.remove_project(throwaway)  # what a killed run left
        engine.create_volume(volume, labels)
        mounts = _mounts(svc.repos(session), volume)
        step(f"restoring the cluster from {repo.name} into a throwaway volume")
        asked = None if point.latest or point.at is None else pgbackrest_target(point.at)
        # latest from the base backup the window was judged with: one that finished since
        # (a routine's) would start after the archive's mark, which the copy must reach.
        chosen = base if asked is None and base != "?" else None
        argv = pitr.restore(repo.index, asked, backup_set=chosen)
        one_off = engine.run_detached(
            image, argv[1:], name=f"{throwaway}-restore", labels=labels, environment=env,
            mounts=mounts, network=network, user="postgres", entrypoint=[argv[0]],
        )  # fmt: skip
        failpoints.reach("pitr.restoring")
        code = engine.wait(one_off, settings.up_timeout.total_seconds())
        if code != 0:
            tail = engine.log_tail(one_off, 30)
            raise PitrError(
                f"pgBackRest could not restore from {repo.name}: "
                f"{svc.pgbackrest_cause(tail) or 'see its last lines above.'}",
                "Check the repository (recoverctl verify --pitr) and its passphrase.",
                code=_code(tail),
                details=tail,
            )
        step("starting the restored copy (archiving off)")
        copy = engine.run_detached(
            image,
            ("postgres", "-c", "archive_mode=off", "-c", "listen_addresses="),
            name=f"{throwaway}-db", labels=labels, environment=env, mounts=mounts,
            network=network,
        )  # fmt: skip
        copy_db, reached = _wait_promoted(engine, copy, settings.up_timeout.total_seconds(), step)
        yield Copy(
            copy_db,
            PointReached(
                asked=point.said,
                asked_at=point.at,
                reached=reached,
                reached_said=say(reached, point.zone) if reached else "the base backup's end",
                repo=repo.name,
                base_backup=base,
                seconds=time.monotonic() - t0,
            ),
            now.marked,
        )
    except KeyboardInterrupt:
        raise Interrupted(interrupted, "Run it again when ready.") from None
    finally:
        with contextlib.suppress(Exception):
            engine.remove_project(throwaway)


def repo_named(session: StackSession, name: str | None) -> pitr.Repo:
    """The [pitr] repository of target name; the first of them for None."""
    return _repo(session, name)


def restore_to_point(
    session: StackSession,
    point: PointInTime,
    target: str | None,
    *,
    step: Step = _quiet,
) -> tuple[dump.BackupResult, PointReached]:
    """The vault database as it was at point, as a backup file of this stack (manifest and
    counts from the restored copy), in a private folder removed when the session ends."""
    folder = session.settings.backup_dir / f".pitr-{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
    fsio.ensure_private_dir(folder)
    session.on_close(lambda: shutil.rmtree(folder, ignore_errors=True))
    return dump_at_point(session, point, target, folder, step=step)


def dump_at_point(
    session: StackSession,
    point: PointInTime,
    target: str | None,
    folder: Path,
    *,
    interrupted: str = UNTOUCHED,
    step: Step = _quiet,
) -> tuple[dump.BackupResult, PointReached]:
    """The vault database as it was at point, dumped into folder (a private one, the
    caller's to remove) with its manifest: restore --to-time and drill --to-time."""
    repo = _repo(session, target)
    with restored_copy(session, point, repo, interrupted=interrupted, step=step) as copy:
        if point.latest and copy.short_of_latest():
            held = say(copy.latest, point.zone) if copy.latest else "?"
            raise PitrError(
                f"latest reached only {copy.point.reached_said}, but the archive holds "
                f"commits until {held}: the WAL between could not be replayed. Nothing was "
                "swapped.",
                "Check the repository (recoverctl verify --pitr names the damaged files); "
                f"restore to a time up to {copy.point.reached_said} instead if that will "
                "do, and take a full base backup (recoverctl pitr backup --type full).",
            )
        step("dumping the vault database of the restored copy")
        backup = dump.take_backup(copy.db, session.ref, folder, "custom")
    return backup, copy.point


def _base_for(held: pitr.RepoInfo, point: PointInTime) -> str:
    """The base backup pgBackRest starts from: the newest that ended before the point."""
    good = [b for b in held.backups if not b.error]
    if point.at is not None:
        good = [b for b in good if b.stopped <= point.at]
    return good[-1].label if good else "?"


def _code(tail: str) -> ErrorCode:
    if "CryptoError" in tail or "[043]" in tail:
        return ErrorCode.PITR_PASSPHRASE
    return ErrorCode.PITR_FAILED


def cleanup(session: StackSession) -> list[str]:
    """Removes a throwaway a killed run left; what is still there afterwards."""
    return session.engine.remove_project(throwaway_project(session.project))
