"""A major PostgreSQL upgrade of the live stack: the new cluster made beside the live one
on a volume of its own, loaded with the new version's pg_dump, compared, then switched to
by the env file (POSTGRES_IMAGE, POSTGRES_VOLUME); the old volume kept to roll back to.

Until the env file names the new cluster, any failure (or Ctrl-C, SIGTERM, a kill -9 read
back from the journal) puts the old cluster back in service with the app; after it, the
upgrade is finished, or undone by --rollback. The journal (.recoverctl/upgrade-PROJECT.json)
says which."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from recoverctl import failpoints
from recoverctl.adapters import fsio
from recoverctl.adapters.engine import Engine
from recoverctl.adapters.pgexec import Db
from recoverctl.core import envgen, upgrade
from recoverctl.core.checks import FAIL, Check
from recoverctl.core.pg import parse_version
from recoverctl.core.pitr import PGDATA, data_volume
from recoverctl.core.progress import Step, StepClock
from recoverctl.core.result import INTERNAL, JsonResult, meta
from recoverctl.errors import EXIT_OK, STOP_CODES, ErrorCode, Interrupted, RecoverctlError
from recoverctl.services import offsite_push
from recoverctl.services import pitr as pitr_svc
from recoverctl.services.dump import take_backup
from recoverctl.services.pitr_restore import _env_of
from recoverctl.services.restore import StepSeconds
from recoverctl.services.session import StackSession
from recoverctl.services.stack import bring_up
from recoverctl.services.verification import verify_file

if TYPE_CHECKING:
    from docker.models.containers import Container

    from recoverctl.services.envcopy import EnvPushResult
    from recoverctl.services.offsite import Copy

ASIDE_DIR = "upgrade-aside"


def _quiet(_: str) -> None:
    return None


class UpgradeRefused(RecoverctlError):
    default_code = ErrorCode.UPGRADE_REFUSED


class UpgradeFailed(RecoverctlError):
    default_code = ErrorCode.UPGRADE_FAILED


# --- the journal ---------------------------------------------------------------------------


def journal_path(session: StackSession) -> Path:
    return session.settings.project_dir / ".recoverctl" / upgrade.journal_name(session.project)


def read_journal(session: StackSession) -> upgrade.Journal | None:
    path = journal_path(session)
    try:
        raw = fsio.read_bounded(path, 64 * 1024)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UpgradeRefused(
            f"Cannot read the upgrade's journal {path}: {exc.strerror or exc}.",
            "Fix its permissions, then run the command again.",
        ) from None
    try:
        return upgrade.Journal.model_validate_json(raw)
    except ValidationError as exc:
        raise UpgradeRefused(
            f"The upgrade's journal {path} is damaged ({exc.error_count()} problems): "
            "recoverctl cannot tell which cluster is which.",
            "Read it, and `docker volume ls` for the project's volumes; move it aside only "
            "once the stack serves from the cluster you mean.",
        ) from None


def write_journal(session: StackSession, journal: upgrade.Journal) -> None:
    path = journal_path(session)
    fsio.ensure_private_dir(path.parent)
    fsio.write_atomic(path, journal.model_dump_json(indent=2).encode() + b"\n")


def remove_journal(session: StackSession) -> None:
    fsio.remove_quietly(journal_path(session))
    fsio.fsync_dir(journal_path(session).parent)


# --- what the stack runs now ---------------------------------------------------------------


@dataclass(frozen=True)
class Current:
    """The live cluster: its image, major, volume, and the env file's own settings."""

    image: str
    major: int
    volume: str  # the compose volume's short name (db-data, db-data-17)
    image_setting: str | None  # POSTGRES_IMAGE as the env file has it (None: not set)
    user: str
    database: str
    password_env: dict[str, str] = field(repr=False)


def env_settings(session: StackSession) -> dict[str, str | None]:
    from dotenv import dotenv_values

    values = dotenv_values(session.settings.env_file)
    return {
        upgrade.IMAGE_VARIABLE: values.get(upgrade.IMAGE_VARIABLE) or None,
        upgrade.VOLUME_VARIABLE: values.get(upgrade.VOLUME_VARIABLE) or None,
    }


def _volume_of(session: StackSession, container: Container) -> str:
    prefix = f"{session.project}_"
    name = data_volume(container.attrs)
    if name is not None:
        if name.startswith(prefix):
            return name[len(prefix) :]
        raise UpgradeRefused(
            f"The db service's data volume {name} is not one of project "
            f"{session.project}'s own.",
            "Give the db service its named volume (db-data) as the compose file has it.",
        )
    raise UpgradeRefused(
        f"The db service has no named volume at {PGDATA}.",
        "Give the db service its named volume (db-data) as the compose file has it.",
    )


def current(session: StackSession) -> Current:
    db = session.db()
    container = db.container
    version = parse_version(db.query("SHOW server_version"))
    settings = env_settings(session)
    env = _env_of(container)
    return Current(
        image=str(container.attrs["Config"]["Image"]),
        major=version.major,
        volume=_volume_of(session, container),
        image_setting=settings[upgrade.IMAGE_VARIABLE],
        user=db.user,
        database=db.database,
        password_env={"POSTGRES_PASSWORD": env.get("POSTGRES_PASSWORD", "")},
    )


def shell_image_conflict(session: StackSession, wanted: str) -> str | None:
    """POSTGRES_IMAGE exported in the shell wins over the env file in compose: set to
    another image, it would undo the switch silently."""
    exported = os.environ.get(upgrade.IMAGE_VARIABLE)
    if exported is None or exported == wanted:
        return None
    return exported


# --- the result ----------------------------------------------------------------------------


@dataclass(frozen=True)
class UpgradeResult(JsonResult):
    project: str
    stack: str
    # upgraded, nothing_to_do (already on the major), dry_run, finished (a run cut after the
    # switch, completed now)
    outcome: str
    from_major: int
    to_major: int
    old_image: str
    new_image: str
    old_volume: str | None  # kept, untouched: the rollback point
    new_volume: str | None
    serving: str  # which cluster serves now
    backup: Path | None  # the verified backup taken first
    app_downtime_seconds: float | None = field(default=None, metadata=meta(digits=2))
    seconds: float = field(default=0.0, metadata=meta(digits=2))
    steps: tuple[tuple[str, float], ...] = field(
        default=(), metadata=meta(encode=StepSeconds.of, schema=list[StepSeconds])
    )
    tables: int = 0
    rows: int = 0
    undone: str | None = None  # a half-made upgrade found and undone first
    plan: tuple[str, ...] = ()  # with --dry-run: what it would do
    warnings: tuple[str, ...] = ()
    offsite: tuple[Copy, ...] = ()  # the backup's copies on the off-site targets
    env: EnvPushResult | None = None  # the env files pushed after the switch (new image)
    # With point-in-time recovery: the full backups taken once the stanza moved ("REPO: LABEL").
    pitr_backups: tuple[str, ...] = ()
    checks: tuple[Check, ...] = field(default=(), metadata=INTERNAL)
    # An off-site step that failed once the upgrade was done (exit 3): it stays done.
    error: RecoverctlError | None = field(default=None, compare=False, metadata=INTERNAL)

    @property
    def exit_status(self) -> int:
        return self.error.exit_code if self.error is not None else EXIT_OK


@dataclass(frozen=True)
class RollbackResult(JsonResult):
    project: str
    stack: str
    outcome: str  # rolled_back, undone (a half-made upgrade), nothing_to_do
    serving: str
    image: str
    volume: str | None
    aside: Path | None  # the new cluster's dump, taken first: the writes since the upgrade
    kept_volume: str | None  # the new cluster's volume, kept until --forget-old
    seconds: float = field(default=0.0, metadata=meta(digits=2))
    steps: tuple[tuple[str, float], ...] = field(
        default=(), metadata=meta(encode=StepSeconds.of, schema=list[StepSeconds])
    )
    env: EnvPushResult | None = None  # the env files pushed after the switch back
    pitr_backups: tuple[str, ...] = ()  # the full backups taken once the stanza moved back
    error: RecoverctlError | None = field(default=None, compare=False, metadata=INTERNAL)

    @property
    def exit_status(self) -> int:
        return self.error.exit_code if self.error is not None else EXIT_OK


@dataclass(frozen=True)
class ForgetResult(JsonResult):
    project: str
    stack: str
    removed: str | None  # the volume removed
    serving: str


# --- the steps -----------------------------------------------------------------------------


@dataclass
class Target:
    major: int
    image: str
    volume: str

    @property
    def said(self) -> str:
        return f"PostgreSQL {self.major} ({self.image}, volume {self.volume})"


def target_for(cur: Current, to: int, image: str | None) -> Target:
    if to not in upgrade.TARGETS:
        raise UpgradeRefused(
            f"recoverctl upgrades to PostgreSQL {', '.join(map(str, upgrade.TARGETS))} only, "
            f"not {to}.",
            "Run: recoverctl upgrade-postgres --to 17",
            code=ErrorCode.USAGE,
        )
    chosen = image or upgrade.image_for(cur.image, to)
    if chosen is None:
        raise UpgradeRefused(
            f"The db image {cur.image} names no major version to replace by {to}.",
            f"Name the new image: recoverctl upgrade-postgres --to {to} --image IMAGE",
            code=ErrorCode.USAGE,
        )
    if not upgrade.is_image_name(chosen):
        raise UpgradeRefused(
            f"{chosen!r} is not an image name (letters, digits and . _ - / : @ only).",
            f"Name the new image as docker does: recoverctl upgrade-postgres --to {to} --image "
            f"postgres:{to}",
            code=ErrorCode.USAGE,
        )
    named = upgrade.image_major(chosen)
    if named is not None and named != to:
        raise UpgradeRefused(
            f"Image {chosen} is PostgreSQL {named}, not {to}.",
            f"Name a PostgreSQL {to} image with --image.",
            code=ErrorCode.USAGE,
        )
    return Target(to, chosen, upgrade.volume_for(to))


def remove_new_cluster(session: StackSession, volume: str | None) -> list[str]:
    """The new cluster's container and, before the switch, its volume: what undoing a
    half-made upgrade removes. Never the live cluster's volume."""
    engine = session.engine
    name = upgrade.new_cluster_name(session.project)
    removed = [name] if engine.remove_container(name) else []
    if volume is not None:
        live = _volume_of(session, session.db().container) if _db_running(session) else None
        if volume != live and engine.volume_exists(upgrade.full_volume(session.project, volume)):
            engine.remove_volume(upgrade.full_volume(session.project, volume))
            removed.append(upgrade.full_volume(session.project, volume))
    return removed


def _db_running(session: StackSession) -> bool:
    try:
        session.engine.service_container(session.project, "db", running=True)
    except RecoverctlError:
        return False
    return True


def volume_taken(session: StackSession, target: Target) -> None:
    """Refuses a new cluster's volume that exists before any journal names it: someone
    else's, which an undo would remove. Preflight asks, before the journal is written."""
    volume = upgrade.full_volume(session.project, target.volume)
    if session.engine.volume_exists(volume):
        raise UpgradeRefused(
            f"Volume {volume} exists already, and no upgrade's journal names it.",
            "Look at what it holds (docker volume inspect); remove it yourself if it is not "
            "needed, then run the upgrade again.",
        )


def launch_new_cluster(session: StackSession, cur: Current, target: Target, step: Step) -> Db:
    """The new cluster's container on its new volume, started: its first start (initdb)
    runs while the rollback point is taken; wait_ready waits for it."""
    engine = session.engine
    project = session.project
    volume = upgrade.full_volume(project, target.volume)
    engine.create_volume(volume, upgrade.volume_labels(project, target.volume))
    live = session.db().container
    network = engine.networks_of(live)[0]
    # Not under the project's compose label: compose would take it for one of its own.
    labels = {"org.recoverctl.upgrade": project}
    env = {
        "POSTGRES_USER": cur.user,
        # No database of the app's name yet: the load creates it, with its encoding,
        # locale, settings and grants (pg_dump --create).
        "POSTGRES_DB": "postgres",
        **cur.password_env,
    }
    step(f"starting PostgreSQL {target.major} on volume {volume} beside the live cluster")
    container = engine.run_detached(
        target.image,
        ("postgres",),
        name=upgrade.new_cluster_name(project),
        labels=labels,
        environment=env,
        mounts=[{"type": "volume", "source": volume, "target": PGDATA}],
        network=network,
    )
    return Db(engine, container, cur.user, cur.database)


def wait_ready(session: StackSession, new: Db) -> Db:
    _wait_accepting(session.engine, new, session.settings.up_timeout.total_seconds())
    return new


def _wait_accepting(engine: Engine, db: Db, timeout: float) -> None:
    """Until the new server takes TCP connections: the image's first start runs initdb on
    a server that listens on no address, then restarts it."""
    deadline = time.monotonic() + timeout
    while True:
        engine.reload(db.container)
        if db.container.status not in ("created", "running"):
            tail = engine.log_tail(db.container, 15)
            raise UpgradeFailed(
                f"The new cluster stopped while starting: {tail.splitlines()[-1] if tail else 'no log'}.",
                "Its last lines are in the details; the old cluster serves on.",
                details=tail,
            )
        result = db.run(("pg_isready", "-q", "-h", "127.0.0.1", "-U", db.user))
        if result.ok:
            return
        if time.monotonic() > deadline:
            raise UpgradeFailed(
                f"The new cluster did not accept connections within {timeout:.0f} s.",
                "See its log (docker logs); the old cluster serves on.",
                details=engine.log_tail(db.container, 15),
            )
        time.sleep(0.3)


def check_extensions(live: Db, new: Db, database: str, major: int) -> None:
    used = [r for r in live.query(upgrade.MISSING_EXTENSIONS, database).split() if r]
    available = new.query(upgrade.AVAILABLE_EXTENSIONS, "postgres").split()
    missing = upgrade.missing_extensions(used, available)
    if missing:
        raise UpgradeRefused(
            f"Database {database} uses {', '.join(missing)}, which the PostgreSQL {major} "
            "image has no build of.",
            "Use an image that carries them (--image), or drop them first.",
        )


def carried(db: Db, database: str) -> dict[str, str]:
    return {what: db.query(sql, database) for what, sql in upgrade.CARRIED.items()}


def load(live: Db, new: Db, cur: Current) -> tuple[int, int]:
    """The final dump, with the new version's tools, loaded and compared table by table,
    roles, grants and settings whole; ANALYZE. Raises on any difference."""
    result = new.run(upgrade.transfer_script(cur.user, cur.database))
    new.check(
        result,
        "Carrying the data into the new cluster",
        "Nothing was switched: the old cluster serves again.",
    )
    with live.session(), new.session():  # one psql each for the comparisons below
        return _compare(live, new, cur)


def _compare(live: Db, new: Db, cur: Current) -> tuple[int, int]:
    before = live.count_rows(cur.database)
    after = new.count_rows(cur.database, tables=list(before))
    wrong = [f"{t}: {n} rows, {after.get(t)} in the new cluster" for t, n in before.items() if after.get(t) != n]
    if wrong:
        raise UpgradeFailed(
            f"The new cluster's rows differ from the live one's: {'; '.join(wrong[:3])}.",
            "Nothing was switched: the old cluster serves again.",
        )
    found = upgrade.differences(carried(live, cur.database), carried(new, cur.database))
    if found:
        raise UpgradeFailed(
            "What the new cluster holds differs from the live one: "
            + "; ".join(d.text() for d in found[:2])
            + ".",
            "Nothing was switched: the old cluster serves again.",
        )
    new.query("ANALYZE", cur.database)
    return len(before), sum(before.values())


def switch_env(session: StackSession, image: str | None, volume: str | None) -> None:
    """The env file names the cluster compose starts: POSTGRES_IMAGE and POSTGRES_VOLUME
    (removed when None: today's default)."""
    path = session.settings.env_file
    text = path.read_text(encoding="utf-8")
    new = envgen.with_values(
        text, {upgrade.IMAGE_VARIABLE: image, upgrade.VOLUME_VARIABLE: volume}
    )
    mode = path.stat().st_mode & 0o777
    fsio.write_atomic(path, new.encode("utf-8"))
    path.chmod(mode)


def stop_apps(session: StackSession) -> list[Container]:
    engine = session.engine
    stopped = []
    for service in session.ref.compose.db_clients:
        for c in engine.containers(session.project, service):
            if c.status == "running":
                engine.stop(c, timeout=30)
                stopped.append(c)
    return stopped


def start_apps(session: StackSession, containers: list[Container]) -> None:
    for c in containers:
        session.engine.reload(c)
        if c.status != "running":
            session.engine.start(c)


def serving_checks(session: StackSession) -> tuple[Check, ...]:
    from recoverctl.services import doctor  # doctor's postgres group reads the journal here

    report = doctor.run(session, only=("service", "db", "app"))
    return report.checks


def failing(checks: tuple[Check, ...]) -> list[Check]:
    return [c for c in checks if c.status == FAIL]


Confirm = Callable[[list[str]], None]


def preflight(session: StackSession, cur: Current, target: Target) -> list[str]:
    """What must hold before anything is touched; raises the first refusal, returns
    warnings."""
    engine = session.engine
    conflict = shell_image_conflict(session, target.image)
    if conflict is not None:
        raise UpgradeRefused(
            f"POSTGRES_IMAGE={conflict} is exported in this shell: compose would prefer it "
            "to the env file and undo the switch.",
            "unset POSTGRES_IMAGE, then run the upgrade again.",
        )
    from recoverctl.services import doctor

    checks = doctor.run(session, only=("env", "engine", "compose", "service", "db", "app")).checks
    bad = failing(checks)
    if bad:
        raise UpgradeRefused(
            f"The stack is not ready to upgrade: {bad[0].name}: {bad[0].evidence}.",
            bad[0].fix or "Run recoverctl doctor, fix what fails, then upgrade.",
        )
    if not engine.has_image(target.image) and not engine.can_pull(target.image):
        local = target.image.startswith("recoverctl-test/")
        raise UpgradeRefused(
            f"Image {target.image} is not on this machine and no registry has it.",
            "Build it: make test-env (scripts/test-env.sh builds the local images)"
            if local
            else f"Pull it (docker pull {target.image}), or name another with --image.",
        )
    volume_taken(session, target)
    db = session.db()
    others = db.query(upgrade.OTHER_DATABASES).split()
    if others:
        raise UpgradeRefused(
            f"The cluster holds other databases than {cur.database} ({', '.join(others)}): "
            "the upgrade carries the app's database and the roles only.",
            "Back them up and drop them (or move them elsewhere) first, then upgrade.",
        )
    size = int(db.query("SELECT pg_database_size(current_database())").strip() or 0)
    out = db.run(("df", "-Pk", PGDATA))
    free = upgrade.parse_df(out.stdout.decode("utf-8", "replace")) if out.ok else None
    need = upgrade.disk_needed(size, size)
    if free is None:
        return [f"the free space under {PGDATA} could not be read: not checked"]
    if free < need:
        raise UpgradeRefused(
            f"The disk holding the volumes has {free // 2**20} MiB free; the upgrade needs "
            f"{need // 2**20} MiB (a second copy of the database and a dump).",
            "Free some space (docker system df), then run the upgrade again.",
            code=ErrorCode.DISK_FULL,
        )
    return []


def plan_lines(cur: Current, target: Target, session: StackSession) -> list[str]:
    project = session.project
    lines = [
        f"take a backup of {cur.database} and verify it deeply (the rollback point)",
        f"start {target.said} beside the live PostgreSQL {cur.major}",
        "stop the app; carry roles, the database, ownership, grants and settings with "
        f"PostgreSQL {target.major}'s pg_dump; compare every table's rows",
        f"switch the env file to POSTGRES_IMAGE={target.image} and "
        f"POSTGRES_VOLUME={target.volume}; start the stack; check it",
        f"keep the old volume {upgrade.full_volume(project, cur.volume)} untouched, to roll back to",
    ]
    if pitr_svc.enabled(session):
        lines.insert(
            4,
            f"move the pgBackRest stanza to PostgreSQL {target.major} and take a full backup "
            f"at once (the window before stays restorable with {cur.image})",
        )
    return lines


def run_upgrade(
    session: StackSession,
    to: int,
    *,
    image: str | None,
    dry_run: bool,
    confirm: Confirm,
    step: Step = _quiet,
) -> UpgradeResult:
    started = time.monotonic()
    clock = StepClock(step)
    with fsio.project_lock(session.project, "upgrade-postgres"):
        undone = None
        journal = read_journal(session)
        if journal is not None:
            if journal.phase == "switched":
                return _finish(session, journal, clock, started)
            if journal.half_made:
                if dry_run:
                    raise UpgradeRefused(
                        f"A previous upgrade to {journal.to_major} stopped half-way "
                        f"({journal.phase}).",
                        "Run it without --dry-run to undo it and upgrade, or --rollback.",
                    )
                clock.step(f"undoing the upgrade that stopped half-way ({journal.phase})")
                _undo(session, journal)
                undone = journal.phase
                journal = None
            elif journal.phase == "rolled_back":
                kept = upgrade.full_volume(session.project, journal.new_volume)
                if session.engine.volume_exists(kept):
                    raise UpgradeRefused(
                        f"The cluster abandoned by the rollback is kept in {kept}.",
                        "Remove it first (its writes are in "
                        f"{journal.aside or 'the dump taken aside'}): "
                        "recoverctl upgrade-postgres --forget-old",
                    )
                remove_journal(session)
                journal = None
        cur = current(session)
        target = target_for(cur, to, image)
        if cur.major == to:
            return UpgradeResult(
                project=session.project, stack=session.settings.stack, outcome="nothing_to_do",
                from_major=cur.major, to_major=to, old_image=cur.image, new_image=cur.image,
                old_volume=journal.old_volume if journal else None, new_volume=cur.volume,
                serving=f"PostgreSQL {cur.major} ({cur.image}, volume {cur.volume})",
                backup=None, seconds=time.monotonic() - started, undone=undone,
            )  # fmt: skip
        if cur.major > to:
            raise UpgradeRefused(
                f"The live cluster is PostgreSQL {cur.major}, newer than {to}: there is no "
                "way down by upgrade.",
                "Restore a backup of the older version, or stay on this one.",
            )
        clock.step("preflight: the stack, the image, the disk")
        warnings = preflight(session, cur, target)
        plan = plan_lines(cur, target, session)
        if dry_run:
            clock.stop()
            return UpgradeResult(
                project=session.project, stack=session.settings.stack, outcome="dry_run",
                from_major=cur.major, to_major=to, old_image=cur.image, new_image=target.image,
                old_volume=None, new_volume=None,
                serving=f"PostgreSQL {cur.major} ({cur.image}, volume {cur.volume})",
                backup=None, seconds=time.monotonic() - started, steps=clock.timed(),
                plan=tuple(plan), warnings=tuple(warnings), undone=undone,
            )  # fmt: skip
        confirm(plan)
        return _upgrade(session, cur, target, clock, started, undone, warnings)


def _journal_for(session: StackSession, cur: Current, target: Target) -> upgrade.Journal:
    now = datetime.now(UTC)
    return upgrade.Journal(
        project=session.project,
        stack=session.settings.stack,
        from_major=cur.major,
        to_major=target.major,
        old_image=cur.image,
        new_image=target.image,
        old_image_setting=cur.image_setting,
        old_volume=cur.volume,
        new_volume=target.volume,
        phase="started",
        started_at=now,
        updated_at=now,
    )


def _upgrade(
    session: StackSession,
    cur: Current,
    target: Target,
    clock: StepClock,
    started: float,
    undone: str | None,
    warnings: list[str],
) -> UpgradeResult:
    journal = _journal_for(session, cur, target)
    write_journal(session, journal)  # before the volume exists: a kill leaves it named
    live = session.db()
    stopped: list[Container] = []
    down_at: float | None = None
    try:
        # Its initdb and first start overlap the backup: the whole is shorter by them.
        new = launch_new_cluster(session, cur, target, clock.step)
        clock.step(f"backing up {cur.database} (the rollback point)")
        made = take_backup(live, session.ref, session.settings.backup_dir, "custom")
        clock.step(f"verifying {made.path.name} deeply (a restore into a throwaway database)")
        report = verify_file(session, made.path, deep=True)
        if not report.ok:
            raise UpgradeFailed(
                f"The backup taken before the upgrade, {made.path.name}, failed its checks.",
                "Nothing was changed. See recoverctl verify on it.",
                code=ErrorCode.BACKUP_CORRUPT,
            )
        journal = journal.at("backed_up", backup=str(made.path))
        write_journal(session, journal)
        # Off-site too, like any backup: a failed copy is said at the end (exit 3), and
        # does not stop the upgrade, whose rollback point is the local file.
        pushed = offsite_push.push_held(session, made.path, step=clock.step)
        failpoints.reach("upgrade.backed_up")
        journal = journal.at("new_cluster")
        write_journal(session, journal)
        clock.step(f"waiting for the PostgreSQL {target.major} cluster to accept connections")
        wait_ready(session, new)
        failpoints.reach("upgrade.new_cluster")
        check_extensions(live, new, cur.database, target.major)
        if pitr_svc.enabled(session):
            pitr_svc.image_ready(new, pitr_svc.repos(session), target.image)
            clock.step(f"archiving PostgreSQL {cur.major}'s newest WAL (its window reaches here)")
            pitr_svc.archive_now(live)
        clock.step("stopping the app")
        down_at = time.monotonic()
        stopped = stop_apps(session)
        journal = journal.at("app_stopped")
        write_journal(session, journal)
        failpoints.reach("upgrade.app_stopped")
        clock.step(
            f"carrying {cur.database} across with PostgreSQL {target.major}'s pg_dump; "
            "comparing every table"
        )
        tables, rows = load(live, new, cur)
        journal = journal.at("loaded")
        write_journal(session, journal)
        failpoints.reach("upgrade.loaded")
        clock.step("stopping the new cluster for the switch")
        session.engine.remove_container(upgrade.new_cluster_name(session.project))
    except KeyboardInterrupt:
        _undo(session, journal, stopped)
        raise Interrupted(
            f"Upgrade interrupted: the old cluster (PostgreSQL {cur.major}) serves again, "
            "with the app.",
            "Run it again when ready.",
        ) from None
    except RecoverctlError as exc:
        _undo(session, journal, stopped)
        raise UpgradeFailed(
            f"{exc.message.rstrip('.')}. The old cluster (PostgreSQL {cur.major}) serves "
            "again, with the app.",
            exc.hint,
            # The cause is in the message; the code says what the upgrade did about it.
            code=exc.code if exc.code is ErrorCode.UPGRADE_REFUSED else ErrorCode.UPGRADE_FAILED,
            details=exc.details,
        ) from None
    except BaseException:
        _undo(session, journal, stopped)
        raise
    return _switch(session, journal, cur, target, clock, started, down_at, (tables, rows), undone, warnings, pushed)


def _switch(
    session: StackSession,
    journal: upgrade.Journal,
    cur: Current,
    target: Target,
    clock: StepClock,
    started: float,
    down_at: float | None,
    counted: tuple[int, int],
    undone: str | None,
    warnings: list[str],
    pushed: offsite_push.OffsitePush,
) -> UpgradeResult:
    try:
        clock.step(f"switching the env file to {target.image} on {target.volume}")
        switch_env(session, target.image, target.volume)
        journal = journal.at("switched", switched_at=datetime.now(UTC))
        write_journal(session, journal)
        failpoints.reach("upgrade.switched")
        clock.step("starting the stack on the new cluster")
        session.forget_db()
        status = bring_up(session, build=False, probe=True)
        served = time.monotonic()
        clock.step("checking the stack and the key-check endpoint")
        checks = serving_checks(session)
        bad = failing(checks)
        if not status.ready or bad:
            what = f"{bad[0].name}: {bad[0].evidence}" if bad else "the stack is not healthy"
            raise UpgradeFailed(
                f"The stack on PostgreSQL {target.major} does not pass its checks ({what})."
            )
    except KeyboardInterrupt:
        raise Interrupted(
            f"Upgrade interrupted at the switch. {_back(session, journal, clock, cur.major)}",
            "Run it again when ready.",
        ) from None
    except RecoverctlError as exc:
        raise UpgradeFailed(
            f"{exc.message.rstrip('.')}. {_back(session, journal, clock, cur.major)}",
            exc.hint,
            details=exc.details,
        ) from None
    except BaseException:
        _back(session, journal, clock, cur.major)
        raise
    failpoints.reach("upgrade.checked")
    taken, pitr_error = follow_archiving(session, target.major, target.said, clock.step)
    if pitr_error is None:
        journal = journal.at("done")
        write_journal(session, journal)
    env, env_error = push_env(session, clock.step)
    clock.stop()
    return UpgradeResult(
        project=session.project, stack=session.settings.stack, outcome="upgraded",
        from_major=cur.major, to_major=target.major, old_image=cur.image,
        new_image=target.image,
        old_volume=upgrade.full_volume(session.project, cur.volume),
        new_volume=upgrade.full_volume(session.project, target.volume),
        serving=target.said, backup=Path(journal.backup) if journal.backup else None,
        app_downtime_seconds=None if down_at is None else served - down_at,
        seconds=time.monotonic() - started, steps=clock.timed(), tables=counted[0],
        rows=counted[1], undone=undone, warnings=tuple(warnings),
        offsite=pushed.backup.copies if pushed.backup is not None else (), env=env,
        pitr_backups=taken, checks=checks,
        error=pitr_error or done_but(target.said, env_error, pushed.error),
    )  # fmt: skip


def _back(session: StackSession, journal: upgrade.Journal, clock: StepClock, major: int) -> str:
    """The switch undone, said as it went."""
    clock.step("switching back to the old cluster")
    if _switch_back(session, journal):
        return f"The env file is back on the old cluster (PostgreSQL {major}), which serves again."
    return (
        f"Switching back to the old cluster (PostgreSQL {major}) failed too: run "
        "recoverctl upgrade-postgres --rollback."
    )


def _switch_back(session: StackSession, journal: upgrade.Journal) -> bool:
    """After a failed start on the new cluster: the env file as it was, the old cluster
    up, the new volume removed (it never served), the journal gone. False when that did
    not work (the journal stays: --rollback reads it)."""
    try:
        switch_env(session, journal.old_image_setting, _volume_setting(journal.old_volume))
        # The env file names the old cluster again: a half-made upgrade, undone by the next run.
        write_journal(session, journal.at("loaded"))
        session.forget_db()
        status = bring_up(session, build=False, progress=_quiet, probe=True)
    except Exception:
        return False
    if not status.ready:
        return False
    with contextlib.suppress(Exception):
        remove_new_cluster(session, journal.new_volume)
    remove_journal(session)
    return True


def _volume_setting(volume: str) -> str | None:
    return None if volume == upgrade.DEFAULT_VOLUME else volume


def _undo(
    session: StackSession, journal: upgrade.Journal, stopped: list[Container] | None = None
) -> None:
    """A half-made upgrade undone: the new cluster's container and volume removed, the
    app started again, the journal removed. The live cluster was never touched."""
    with contextlib.suppress(Exception):
        remove_new_cluster(session, journal.new_volume)
    if stopped:
        with contextlib.suppress(Exception):
            start_apps(session, stopped)
    else:
        with contextlib.suppress(Exception):
            bring_up(session, build=False, progress=_quiet)
    remove_journal(session)


def _finish(
    session: StackSession, journal: upgrade.Journal, clock: StepClock, started: float
) -> UpgradeResult:
    """A run cut after the switch (the env file names the new cluster): started and
    checked now."""
    clock.step("finishing the upgrade that stopped after the switch")
    session.forget_db()
    bring_up(session, build=False, probe=True)
    checks = serving_checks(session)
    bad = failing(checks)
    if bad:
        raise UpgradeFailed(
            f"The stack on PostgreSQL {journal.to_major} does not pass its checks "
            f"({bad[0].name}: {bad[0].evidence}).",
            "Roll back to the kept cluster: recoverctl upgrade-postgres --rollback",
        )
    serving = f"PostgreSQL {journal.to_major} ({journal.new_image}, volume {journal.new_volume})"
    taken, pitr_error = follow_archiving(session, journal.to_major, serving, clock.step)
    if pitr_error is None:
        journal = journal.at("done")
        write_journal(session, journal)
    env, env_error = push_env(session, clock.step)
    clock.stop()
    return UpgradeResult(
        project=session.project, stack=session.settings.stack, outcome="finished",
        from_major=journal.from_major, to_major=journal.to_major,
        old_image=journal.old_image, new_image=journal.new_image,
        old_volume=upgrade.full_volume(session.project, journal.old_volume),
        new_volume=upgrade.full_volume(session.project, journal.new_volume),
        serving=serving, backup=Path(journal.backup) if journal.backup else None,
        seconds=time.monotonic() - started, steps=clock.timed(), env=env, checks=checks,
        pitr_backups=taken, error=pitr_error or done_but(serving, env_error),
    )  # fmt: skip


def follow_archiving(
    session: StackSession, major: int, serving: str, step: Step
) -> tuple[tuple[str, ...], RecoverctlError | None]:
    """With point-in-time recovery on, the stanza moved to the cluster that serves now and
    a full backup taken (services/pitr.move_stanza); its failure, said after what serves
    (the switch stands: the journal keeps it for the next run to finish)."""
    if not pitr_svc.enabled(session):
        return (), None
    try:
        return pitr_svc.move_stanza(session, major, step), None
    except KeyboardInterrupt:
        raise Interrupted(
            f"Interrupted after the switch: {serving} serves, but archiving does not follow "
            "it yet.",
            "Run the same recoverctl upgrade-postgres command again to finish.",
        ) from None
    except RecoverctlError as exc:
        if exc.code in STOP_CODES:
            raise
        return (), RecoverctlError(
            f"{serving} serves, switched and checked, but archiving does not follow it "
            f"yet: {exc.message}",
            exc.hint,
            code=exc.code,
            details=exc.details,
        )


def push_env(
    session: StackSession, step: Step
) -> tuple[EnvPushResult | None, RecoverctlError | None]:
    """The env files, which now name another image, to every target whose copy differs:
    a new machine recovered from them must run the version its dumps were made by. The
    caller holds the project lock."""
    from recoverctl.services import envcopy

    try:
        env = envcopy.push_if_changed(session, step=step)
    except RecoverctlError as exc:
        if exc.code in STOP_CODES:
            raise
        return None, exc
    if env is not None and not env.ok:
        return env, envcopy.failure(env)
    return env, None


def done_but(serving: str, *causes: RecoverctlError | None) -> RecoverctlError | None:
    """The off-site steps' failures once the stack is switched: one off-site error (exit
    3) that says first what serves, so that nobody undoes a good switch for it."""
    failed = [offsite_push.as_offsite(c) for c in causes if c is not None]
    if not failed:
        return None
    message = " ".join(c.message.rstrip(".") + "." for c in failed)
    hint = " ".join(c.hint for c in failed if c.hint) or None
    return RecoverctlError(
        f"{serving} serves, switched and checked; an off-site step failed: {message}",
        hint,
        code=ErrorCode.OFFSITE_FAILED,
        details=failed[0].details,
    )


# --- rollback and forget -------------------------------------------------------------------


def rollback(session: StackSession, *, confirm: Confirm, step: Step = _quiet) -> RollbackResult:
    started = time.monotonic()
    clock = StepClock(step)
    with fsio.project_lock(session.project, "upgrade-postgres --rollback"):
        journal = read_journal(session)
        if journal is None or journal.phase == "rolled_back":
            cur = current(session)
            serving = f"PostgreSQL {cur.major} ({cur.image}, volume {cur.volume})"
            # A rollback whose stanza step failed: done now.
            taken, pitr_error = (
                ((), None) if journal is None
                else follow_archiving(session, cur.major, serving, clock.step)
            )
            clock.stop()
            return RollbackResult(
                project=session.project, stack=session.settings.stack, outcome="nothing_to_do",
                serving=serving, image=cur.image, volume=cur.volume, aside=None,
                kept_volume=None if journal is None else upgrade.full_volume(session.project, journal.new_volume),
                seconds=time.monotonic() - started, steps=clock.timed(), pitr_backups=taken,
                error=pitr_error,
            )  # fmt: skip
        if journal.half_made:
            clock.step(f"undoing the upgrade that stopped half-way ({journal.phase})")
            _undo(session, journal)
            clock.stop()
            return RollbackResult(
                project=session.project, stack=session.settings.stack, outcome="undone",
                serving=f"PostgreSQL {journal.from_major} ({journal.old_image}, volume {journal.old_volume})",
                image=journal.old_image, volume=journal.old_volume, aside=None, kept_volume=None,
                seconds=time.monotonic() - started, steps=clock.timed(),
            )  # fmt: skip
        confirm(
            [
                f"dump PostgreSQL {journal.to_major}'s {session.db().database} aside first "
                f"(into {session.settings.backup_dir / ASIDE_DIR}): the writes made since the "
                "upgrade are in it, not in the cluster rolled back to",
                f"switch the env file back to {journal.old_image} on {journal.old_volume}; "
                "start the stack; check it",
                f"keep the PostgreSQL {journal.to_major} volume until --forget-old",
                *(
                    [f"move the pgBackRest stanza back to PostgreSQL {journal.from_major}; "
                     "take a full backup"]
                    if pitr_svc.enabled(session) else []
                ),
            ]
        )  # fmt: skip
        clock.step(f"dumping the PostgreSQL {journal.to_major} cluster aside")
        aside = take_backup(
            session.db(), session.ref, session.settings.backup_dir / ASIDE_DIR, "custom"
        ).path
        clock.step(f"switching the env file back to {journal.old_image} on {journal.old_volume}")
        switch_env(session, journal.old_image_setting, _volume_setting(journal.old_volume))
        journal = journal.at("rolled_back", aside=str(aside))
        write_journal(session, journal)
        clock.step("starting the stack on the old cluster")
        session.forget_db()
        bring_up(session, build=False, probe=True)
        clock.step("checking the stack")
        bad = failing(serving_checks(session))
        if bad:
            raise UpgradeFailed(
                f"The stack on the old cluster does not pass its checks ({bad[0].name}: "
                f"{bad[0].evidence}).",
                bad[0].fix or "Run recoverctl doctor.",
            )
        serving = f"PostgreSQL {journal.from_major} ({journal.old_image}, volume {journal.old_volume})"
        taken, pitr_error = follow_archiving(session, journal.from_major, serving, clock.step)
        env, env_error = push_env(session, clock.step)
        clock.stop()
        return RollbackResult(
            project=session.project, stack=session.settings.stack, outcome="rolled_back",
            serving=serving, image=journal.old_image, volume=journal.old_volume, aside=aside,
            kept_volume=upgrade.full_volume(session.project, journal.new_volume),
            seconds=time.monotonic() - started, steps=clock.timed(), env=env,
            pitr_backups=taken, error=pitr_error or done_but(serving, env_error),
        )  # fmt: skip


def kept_volume(session: StackSession, journal: upgrade.Journal) -> str | None:
    """The volume --forget-old removes: the old cluster's after an upgrade, the abandoned
    new one's after a rollback; None before either is finished."""
    if journal.phase == "done":
        return upgrade.full_volume(session.project, journal.old_volume)
    if journal.phase == "rolled_back":
        return upgrade.full_volume(session.project, journal.new_volume)
    return None


def forget_old(session: StackSession, *, confirm: Callable[[str], None]) -> ForgetResult:
    with fsio.project_lock(session.project, "upgrade-postgres --forget-old"):
        journal = read_journal(session)
        cur = current(session)
        serving = f"PostgreSQL {cur.major} ({cur.image}, volume {cur.volume})"
        if journal is None:
            return ForgetResult(session.project, session.settings.stack, None, serving)
        volume = kept_volume(session, journal)
        if volume is None:
            raise UpgradeRefused(
                f"The upgrade stopped half-way ({journal.phase}): there is no old cluster to forget yet.",
                "Run recoverctl upgrade-postgres again (it finishes or undoes it), or --rollback.",
            )
        if volume == upgrade.full_volume(session.project, cur.volume):
            raise UpgradeRefused(
                f"Volume {volume} is the one the stack serves from: it is not removed.",
                "Check the env file's POSTGRES_VOLUME and the journal.",
            )
        if session.engine.volume_exists(volume):
            confirm(volume)
            session.engine.remove_volume(volume)
            removed: str | None = volume
        else:
            removed = None
        remove_journal(session)
        return ForgetResult(session.project, session.settings.stack, removed, serving)
