"""The swap-in restore (restore, recover): load a verified backup into a new database,
then swap it in by rename.

At every point before the swap the live database is untouched; after it, the previous
database is kept under a dated name until the restored one serves and is checked, and a
failure swaps it back. Whatever happens, the message says which database is serving.
"""

from __future__ import annotations

import time
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recoverctl import failpoints, signals
from recoverctl.adapters import fsio
from recoverctl.adapters.pgexec import Db
from recoverctl.core import pg
from recoverctl.core.checks import FAIL, Check
from recoverctl.core.codematch import CodeMatch
from recoverctl.core.manifest import VerifyResult, compare_counts
from recoverctl.core.progress import OnBytes, Step, StepClock
from recoverctl.core.restore_plan import CurrentDb, RestorePlan, name_base, names_for
from recoverctl.core.result import INTERNAL, JsonResult, computed, meta
from recoverctl.core.stack import StackName
from recoverctl.errors import ErrorCode, Interrupted, RecoverctlError
from recoverctl.services import catalog, code
from recoverctl.services.background import Background
from recoverctl.services.checks import Inspected, load_integrity, quick_checks
from recoverctl.services.dump import BackupResult, take_backup
from recoverctl.services.load import (
    LOAD_HINT,
    Counted,
    Loaded,
    Loader,
    all_counts,
    file_grants,
    leftovers,
    related_databases,
    restore_stream,
    server_roles,
)
from recoverctl.services.session import StackRef, StackSession
from recoverctl.services.stack import wait_ready

SWAP_ATTEMPTS = 5


def _quiet(_: object) -> None:
    return None


class RestoreFailed(RecoverctlError):
    default_code = ErrorCode.RESTORE_FAILED


@dataclass(frozen=True)
class Prepared:
    """A plan plus what carrying it out needs; made by prepare(), used by restore()."""

    plan: RestorePlan
    path: Path
    inspected: Inspected
    ref: StackRef
    db: Db


@dataclass(frozen=True)
class StepSeconds(JsonResult):
    """One step of a restore and how long it took."""

    step: str
    seconds: float = field(metadata=meta(digits=2))

    @classmethod
    def of(cls, steps: tuple[tuple[str, float], ...]) -> tuple[StepSeconds, ...]:
        return tuple(cls(step, seconds) for step, seconds in steps)


@dataclass(frozen=True)
class RestoreResult(JsonResult):
    plan: RestorePlan = field(metadata=INTERNAL)
    safety_backup: Path | None
    tables: int
    rows: int
    seconds: float = field(metadata=meta(digits=2))
    steps: tuple[tuple[str, float], ...] = field(
        metadata=meta(encode=StepSeconds.of, schema=list[StepSeconds])
    )
    # Row count changes made by the app after it started.
    drift: tuple[str, ...] = field(default=(), metadata=meta(name="drift_after_start", after=""))
    # The previous database, when dropping it failed.
    kept: str | None = field(
        default=None, metadata=meta(name="previous_database_kept_as", after="drift_after_start")
    )
    # Seconds the app was stopped; None: no app to stop.
    app_downtime: float | None = field(
        default=None, metadata=meta(name="app_downtime_seconds", digits=2, after="seconds")
    )

    @property
    @computed(after="previous_database_kept_as")
    def backup(self) -> str:
        return self.plan.backup

    @property
    @computed(after="backup")
    def database(self) -> str:
        return self.plan.database

    @property
    @computed(after="database", schema=StackName)
    def stack(self) -> str:
        return self.plan.stack


def prepare(
    session: StackSession,
    spec: str,
    *,
    safety_backup: bool = True,
    hash_now: bool = False,
    allow_newer_data: bool = False,
) -> Prepared:
    """Quick-verifies the backup (refusing a bad one, and one whose data is newer than
    this checkout's code unless allow_newer_data) and plans; changes nothing.

    The sha256 is left to the load, which reads every byte anyway and is checked before
    anything is swapped; hash_now (a dry run) reads the file for it here instead."""
    settings = session.settings
    path = catalog.resolve_backup(settings, spec)
    ref = session.ref
    db = session.db()
    with db.session():
        inspected = quick_checks(db, path, hash_now=hash_now)
        if inspected.sha256 is not None or not inspected.ok:
            catalog_note(path, inspected.ok, inspected.sha256)
        if not inspected.ok or inspected.info is None:
            raise _refused(path, inspected.checks)
        related = related_databases(db)
        current = _current(db, related)
        roles = server_roles(db)
        privileges = file_grants(path, inspected.info.format, roles)
    m = inspected.manifest
    notes = _code_notes(code.match(m, settings.project_dir), path, allow_newer_data)
    notes += privileges.notes(foreign=m is None)
    notes += tuple(
        f"role {r} was left by an interrupted load: once no database is named after it, "
        f'DROP OWNED BY "{r}"; DROP ROLE "{r}"'
        for r in sorted(roles)
        if r.startswith(pg.LOADER_PREFIX)
    )
    scratch, keep_as, _ = names_for(db.database, datetime.now(UTC))
    plan = RestorePlan(
        backup=str(path),
        backup_format=inspected.info.format,
        backup_created=m.started_at if m else None,
        backup_stack=m.stack if m else None,
        backup_tables=len(m.tables) if m else None,
        backup_rows=sum(v for v in m.tables.values() if v) if m else None,
        project=ref.project,
        stack=settings.stack,
        database=db.database,
        current=current,
        scratch=scratch,
        keep_as=keep_as,
        app_services=ref.compose.db_clients,
        safety_backup=safety_backup,
        leftovers=tuple(leftovers(db, related)),
        notes=notes,
    )
    return Prepared(plan, path, inspected, ref, db)


def _code_notes(found: CodeMatch, path: Path, allowed: bool) -> tuple[str, ...]:
    """Django would start over data whose schema its models do not know: refused before
    anything changes, unless the person said to."""
    if found.ok:
        return ()
    if not allowed:
        raise RestoreFailed(
            f"Refusing to restore {path.name}: {found.message}. Nothing was changed.",
            found.hint("--allow-newer-data"),
            code=ErrorCode.CODE_BEHIND_DATA,
        )
    return (f"{path.name}: {found.message} (--allow-newer-data)",)


def _refused(path: Path, checks: tuple[Check, ...], *, unchanged: bool = True) -> RestoreFailed:
    """The refusal of a backup that failed a check; `unchanged` says so in the message
    (a refusal during the run leaves that to the rollback's own report)."""
    bad = [c for c in checks if c.status == FAIL]
    return RestoreFailed(
        f"Refusing to restore {path.name}: {bad[0].name}: {bad[0].evidence}"
        + (". Nothing was changed." if unchanged else ""),
        bad[0].fix or "Use another backup; `recoverctl list` shows them.",
        code=ErrorCode.BACKUP_CORRUPT,
    )


def catalog_note(path: Path, ok: bool, sha256: str | None) -> None:
    with suppress(OSError):
        catalog.record(path, VerifyResult(kind="quick", ok=ok, at=datetime.now(UTC), sha256=sha256))


def _current(db: Db, related: dict[str, str]) -> CurrentDb:
    if db.database not in related:
        return CurrentDb(False, 0, 0, 0)
    # The plan describes what is replaced; estimates do that without counting every row.
    tables, rows = (int(v) for v in pg.parse_rows(db.query(pg.ESTIMATE_SQL))[0])
    return CurrentDb(True, tables, rows, int(related[db.database] or 0))


class _Run:
    def __init__(self, prep: Prepared, step: Step, on_bytes: OnBytes, timeout: float):
        self.prep = prep
        self.plan = prep.plan
        self.db = prep.db
        self.on_bytes = on_bytes
        self.timeout = timeout
        self.clock = StepClock(step)
        self.apps: list[Any] = []  # app containers this run stopped, to start again
        self.swapped = False
        self.loader: Loader | None = None
        self.load_counts = (0, 0)
        # The app's downtime: from the first stop asked of the engine to healthy again.
        self.stopping_at: float | None = None
        self.serving_at: float | None = None

    def step(self, text: str) -> None:
        self.clock.step(text)

    def sql(self, statement: str, database: str = "postgres") -> str:
        return self.db.query(statement, database=database)

    # --- the steps -------------------------------------------------------------------------

    def load(self) -> Loaded:
        plan = self.plan
        self.step(f"creating {plan.scratch}")
        self.sql(pg.create_database_sql(plan.scratch))
        self.loader = Loader(self.db, plan.scratch)
        self.step(f"restoring {Path(plan.backup).name} into {plan.scratch}")
        found = self.prep.inspected
        loaded = restore_stream(
            self.db, self.prep.path, plan.backup_format, self.loader, self.on_bytes
        )
        integrity = load_integrity(found, loaded)
        if integrity is not None:
            catalog_note(self.prep.path, integrity.status != FAIL, loaded.sha256)
            if integrity.status == FAIL:  # the bytes explain a failed load best, if they differ
                raise _refused(self.prep.path, (integrity,), unchanged=False)
        if loaded.failed is not None:
            fix = loaded.failed.fix
            raise RestoreFailed(
                f"Loading the backup failed: {loaded.failed.evidence}.",
                fix
                if fix and fix != LOAD_HINT
                else "The backup does not restore; try another one (`recoverctl list`).",
                code=ErrorCode.BACKUP_CORRUPT,
            )
        return loaded

    def prove(self, loaded: Loaded) -> None:
        """Row counts against the manifest (the load's own, and a count of any table it did
        not copy into), then planner statistics (they move with the rename), on the loaded
        copy, while the app still serves: statistics take longer as the database grows, and
        the app's downtime must not.

        Meanwhile a CHECKPOINT writes the loaded copy to disk. Left to the kernel, those
        writes would be waited for by the app's stop (the engine syncs the disk when it
        unmounts a stopped container's filesystem: 0.55 s instead of 0.25 s after a 1 GB
        load, measured), and so would grow the downtime with the database."""
        plan = self.plan
        self.step(f"checking {plan.scratch}: row counts, ANALYZE")
        flush = Background(self.checkpoint, "restore-checkpoint") if plan.app_services else None
        try:
            assert self.loader is not None
            # As the load's role: ANALYZE evaluates index expressions as the tables' owner.
            self.load_counts = self.compare(all_counts(self.loader, loaded, exact=True))
            self.loader.query("ANALYZE")
            self.loader.hand_over()
        finally:
            if flush is not None:
                flush.finish(reraise=False)

    def checkpoint(self) -> None:
        """Best effort (a role without pg_checkpoint may not): only the downtime depends
        on it. Its own exec, beside the session the counts use."""
        with suppress(RecoverctlError):
            self.db.query("CHECKPOINT", database="postgres")

    def compare(self, counted: Counted) -> tuple[int, int]:
        counts = counted.counts
        manifest = self.prep.inspected.manifest
        if manifest is not None:
            problems, _ = compare_counts(manifest.tables, counts)
            if problems:
                raise RestoreFailed(
                    f"The restored data does not match the manifest: {'; '.join(problems[:3])}.",
                    "The backup is inconsistent; try another one (`recoverctl list`).",
                    code=ErrorCode.BACKUP_CORRUPT,
                )
        return len(counts), counted.stored

    def stop_apps(self) -> None:
        engine = self.db.engine
        running = [
            c
            for service in self.plan.app_services
            for c in engine.containers(self.plan.project, service)
            if c.status == "running"
        ]
        if self.stopping_at is None:  # the downtime starts with the first stop asked
            self.stopping_at = time.monotonic()
        for c in running:
            engine.stop(c, timeout=30)
            if all(c.id != seen.id for seen in self.apps):
                self.apps.append(c)

    def start_apps(self) -> None:
        """Starts every app container this run stopped, whatever state it is in now."""
        engine = self.db.engine
        for c in self.apps:
            engine.reload(c)
            if c.status != "running":
                engine.start(c)

    def swap(self) -> None:
        plan = self.plan
        self.step(f"swapping {plan.scratch} in as {plan.database}")
        if plan.current.exists:
            statement = pg.swap_sql(plan.database, plan.scratch, plan.keep_as)
        else:
            statement = (
                f"ALTER DATABASE {pg.quote_ident(plan.scratch)} RENAME TO "
                f"{pg.quote_ident(plan.database)}"
            )
        last: RecoverctlError | None = None
        for attempt in range(SWAP_ATTEMPTS):
            try:
                # Ctrl-C here acts once the swap is whole; the rollback then undoes it.
                with signals.deferred():
                    self.sql(pg.terminate_sql(plan.database))
                    failpoints.reach("restore.swap")
                    self.sql(statement)
                    self.swapped = True
                return
            except RecoverctlError as exc:
                last = exc
                if exc.code is not ErrorCode.DB_IN_USE:
                    raise
                time.sleep(0.5 * (attempt + 1))
        assert last is not None
        raise RestoreFailed(
            f"Could not swap the databases: clients kept reconnecting to {plan.database}.",
            "Stop whatever else connects to the database, then restore again.",
            code=ErrorCode.DB_IN_USE,
        )

    def serve(self) -> None:
        """Starts the app on the restored database and waits until it is healthy."""
        if self.apps:
            self.step("starting the app")
            for c in self.apps:  # stopped by this run a moment ago: no need to look first
                self.db.engine.start(c)
        self.step("waiting until the app is healthy")
        if self.plan.app_services:
            wait_ready(self.db.engine, self.prep.ref, self.timeout, probe=True)
        self.serving_at = time.monotonic()

    def drop_old(self) -> None:
        self.sql(pg.drop_database_sql(self.plan.keep_as))

    def settle(self) -> tuple[tuple[str, ...], str | None]:
        """After success: counts again, and the previous copy dropped meanwhile.

        Counts were proven equal to the manifest before the swap; the app's own start
        (migrations) may change a few since, so differences now are reported, not rolled
        back. A previous copy that will not drop is reported too: the restore stands."""
        plan = self.plan
        dropping = plan.current.exists
        self.step(
            "comparing row counts again" + (", dropping the previous copy" if dropping else "")
        )
        dropper = Background(self.drop_old, "restore-drop") if dropping else None
        drift: tuple[str, ...] = ()
        manifest = self.prep.inspected.manifest
        try:
            if manifest is not None:
                counts = self.db.count_rows(plan.database)
                drift = tuple(compare_counts(manifest.tables, counts)[0])
        except RecoverctlError as exc:
            drift = (f"could not count the rows again ({exc.message.rstrip('.')})",)
        finally:
            if dropper is not None:
                dropper.finish(reraise=False)
        kept = plan.keep_as if dropper is not None and dropper.error is not None else None
        return drift, kept

    # --- rollback --------------------------------------------------------------------------

    def rollback(self) -> tuple[str, bool]:
        """Back to the previous database, from whatever point the run reached. Says what
        is serving now, and whether the rollback finished."""
        plan = self.plan
        with signals.deferred(reraise=False):
            try:
                existing = set(
                    self.sql(pg.databases_like_sql(name_base(plan.database))).splitlines()
                )
                if plan.keep_as in existing:
                    # The swap happened: put the previous database back under its name.
                    _, _, failed = names_for(plan.database, datetime.now(UTC))
                    self.stop_apps()  # the app may be up, or crash-looping, on the bad copy
                    self.sql(pg.terminate_sql(plan.database))
                    self.sql(pg.swap_sql(plan.database, plan.keep_as, failed))
                    self.sql(pg.drop_database_sql(failed))
                elif not plan.current.exists and plan.database in existing and self.swapped:
                    self.sql(pg.terminate_sql(plan.database))
                    self.sql(pg.drop_database_sql(plan.database))
                if plan.scratch in existing:
                    self.sql(pg.drop_database_sql(plan.scratch))
                if self.loader is not None:
                    self.loader.drop()
            except RecoverctlError as exc:
                self.start_apps_quietly()
                state = (
                    f"{plan.database} may be the restored copy; the previous one is {plan.keep_as}"
                    if self.swapped
                    else f"{plan.database} still holds the previous data"
                )
                return (
                    f"Rolling back could not finish ({exc.message.rstrip('.')}): {state}. Once the "
                    "database answers: recoverctl up, then recoverctl restore latest --dry-run lists "
                    "the leftovers.",
                    False,
                )
            self.start_apps_quietly()
        if not self.swapped:
            return f"Nothing was changed: {plan.database} is as it was.", True
        if plan.current.exists:
            return f"The previous database is serving again as {plan.database}.", True
        return f"{plan.database} did not exist before and still does not.", True

    def start_apps_quietly(self) -> None:
        with suppress(RecoverctlError):
            self.start_apps()


def restore(
    prep: Prepared,
    session: StackSession,
    *,
    step: Step = _quiet,
    on_bytes: OnBytes = _quiet,
) -> RestoreResult:
    started = time.monotonic()
    plan = prep.plan
    settings = session.settings
    run = _Run(prep, step, on_bytes, settings.up_timeout.total_seconds())
    safety: BackupResult | None = None
    with fsio.project_lock(plan.project, "restore"), prep.db.session():
        try:
            loaded = run.load()
            # The safety copy comes as late as it can, so that it holds what the app wrote
            # while the backup loaded; the app keeps serving until it is taken.
            run.prove(loaded)
            if plan.safety_backup and plan.current.exists:
                run.step(f"safety backup of {plan.database}")
                safety = take_backup(prep.db, prep.ref, settings.backup_dir, "custom")
            if plan.app_services:
                run.step("stopping the app")
                run.stop_apps()
            failpoints.reach("restore.before-swap")
            run.swap()
            failpoints.reach("restore.after-swap")
            run.serve()
        except KeyboardInterrupt:
            outcome, _ = run.rollback()
            raise Interrupted(
                f"Restore interrupted. {outcome}",
                _safety_hint(safety) or "Run the restore again when ready.",
            ) from None
        except RecoverctlError as exc:
            outcome, whole = run.rollback()
            raise RestoreFailed(
                f"{exc.message.rstrip('.')}. {outcome}",
                " ".join(h for h in (exc.hint, _safety_hint(safety)) if h) or None,
                code=exc.code if whole else ErrorCode.ROLLBACK_INCOMPLETE,
                details=exc.details,
            ) from None
        # The restored copy serves: from here on nothing rolls back, and Ctrl-C only
        # waits for the report.
        with signals.deferred(reraise=False):
            drift, kept = run.settle()
    run.clock.stop()
    tables, rows = run.load_counts
    return RestoreResult(
        plan=plan,
        safety_backup=safety.path if safety else None,
        tables=tables,
        rows=rows,
        seconds=time.monotonic() - started,
        steps=run.clock.timed(),
        drift=drift,
        kept=kept,
        app_downtime=(
            run.serving_at - run.stopping_at
            if run.stopping_at is not None and run.serving_at is not None
            else None
        ),
    )


def _safety_hint(safety: BackupResult | None) -> str | None:
    return f"The safety backup is {safety.path}." if safety else None
