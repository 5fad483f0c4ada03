"""Recovery drills: a backup brought back in a throwaway copy of the stack, checked, timed,
and the copy removed whatever happens.

The drill's stack is a second compose project from the same compose file and env file,
named `<project>-drill` (core/drill.py): its own containers, volume and network, the app
published on a free loopback port. Nothing here addresses the live project: its containers,
volume and data are never touched, and it keeps serving throughout.

    fetch the backup (a local file, or pulled from an off-site target into a private folder)
    start the drill stack (compose up --build, healthy)          } the recovery time:
    restore it (services/restore.py: load, prove, swap in, serve) } start -> serving the data
    check it: row counts, services, migrations, admin, key-check, the key export's secrets
    remove the drill stack (containers, volume, network, built image), then write the record

The removal runs whatever happened before it (a failure, Ctrl-C, SIGTERM, a dead engine
call), with Ctrl-C and SIGTERM held off; a drill that finds an earlier drill's leftovers
(the process was killed) removes them first.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from recoverctl import __version__, failpoints, signals
from recoverctl.adapters import files, fsio
from recoverctl.core import commands
from recoverctl.core.checks import FAIL, OK, WARN, Check
from recoverctl.core.drill import (
    CheckRow,
    DrillError,
    DrillPoint,
    DrillRecord,
    Outcome,
    StepTime,
    drill_project,
    is_due,
    record_name,
)
from recoverctl.core.duration import DAY, in_units
from recoverctl.core.keyfile import KeyFile, unwrap_private_key
from recoverctl.core.manifest import Manifest
from recoverctl.core.pitrtime import PointInTime
from recoverctl.core.progress import Step, StepClock
from recoverctl.core.result import INTERNAL, JsonResult, computed, meta
from recoverctl.errors import ErrorCode, Interrupted, RecoverctlError
from recoverctl.services import catalog, doctor, keys, restore
from recoverctl.services.session import StackSession
from recoverctl.services.stack import bring_up
from recoverctl.settings import Settings

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import rsa


# doctor's checks that prove the restored stack serves (services/doctor/), run on the drill.
STACK_CHECKS = ("db.not_empty", "db.migrations", "app.admin", "app.key_check")


def _quiet(_: str) -> None:
    return None


# --- where the backup comes from ---------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    """The backup's local path (its manifest beside it); with drill --to-time, the point
    its cluster was restored to."""

    path: Path
    point: DrillPoint | None = None


@dataclass(frozen=True)
class Source:
    """The drill's first step: what it drills, and how the file gets here. fetch is given
    a private scratch folder (removed after the drill)."""

    label: str  # "local", "target NAME", or "pitr NAME"
    wanted: str  # the file's name, or "latest" (or the time asked for) until it is fetched
    fetch: Callable[[Path], Fetched]
    doing: str = ""  # the first step's name, when "fetching the backup" is not what it does


def local_source(settings: Settings, spec: str = "latest") -> Source:
    """A backup of the backups folder; resolved now, so a missing one fails before anything
    starts."""
    path = catalog.resolve_backup(settings, spec)
    return Source("local", path.name, lambda _scratch: Fetched(path))


def pitr_source(session: StackSession, point: PointInTime, target: str | None) -> Source:
    """The vault database as it was at point, from the live stack's pgBackRest repository
    (target's, else the first): the cluster restored into a throwaway of its own (archiving
    off, the repository read-only, as restore --to-time does), its vault database dumped
    into the drill's scratch folder; the drill then restores that dump as any other. The
    settings and the repository's name are checked now, the window when it is fetched."""
    from recoverctl.services import pitr, pitr_restore

    pitr.require_enabled(session)
    repo = pitr_restore.repo_named(session, target)

    def fetch(scratch: Path) -> Fetched:
        backup, reached = pitr_restore.dump_at_point(
            session,
            point,
            repo.name,
            scratch,
            interrupted="Drill interrupted while restoring the cluster in its throwaway; "
            "that copy was removed, and the live stack was not touched.",
        )
        return Fetched(
            backup.path,
            DrillPoint(
                asked=reached.asked,
                asked_at=reached.asked_at,
                reached=reached.reached,
                reached_said=reached.reached_said,
                repo=reached.repo,
                base_backup=reached.base_backup,
                restore_seconds=round(reached.seconds, 2),
            ),
        )

    return Source(
        f"pitr {repo.name}",
        point.said,
        fetch,
        doing=f"restoring the cluster to {point.said} from {repo.name} in a throwaway, and "
        "dumping its vault database",
    )


def target_source(
    session: StackSession, target: str, identity: Path | None, spec: str = "latest"
) -> Source:
    """The copy an off-site target holds (spec: its name, or latest), pulled, checked and
    decrypted into the drill's scratch folder (services/offsite/pull.py): the drill then proves
    the off-site copy alone brings the vault back, and the pulled file goes with the
    drill. The target and the identity are checked now: a wrong name or key fails before
    anything starts."""
    from recoverctl.services import offsite

    offsite.check_source(session, target, identity)

    def fetch(scratch: Path) -> Fetched:
        return Fetched(offsite.pull(session, target, spec, identity, scratch).path)

    return Source(f"target {target}", spec, fetch)


# --- the key export ----------------------------------------------------------------------


@dataclass(frozen=True)
class KeyProof:
    """The key export the drill opens secrets with; private_key None: no passphrase given
    (the drill then only checks the restored vault knows the key)."""

    path: Path
    keyfile: KeyFile
    private_key: rsa.RSAPrivateKey | None = None


def key_proof(settings: Settings, given: Path | None, passphrase: str | None) -> KeyProof | None:
    """The key export (given, else key_file from the settings), read and unwrapped now: a
    wrong file or passphrase fails before anything starts. None when there is none."""
    if given is None and settings.key_file is None:
        return None
    path = keys.key_path(settings, given)
    kf = keys.read_keyfile(path)
    private_key = unwrap_private_key(kf, passphrase) if passphrase is not None else None
    return KeyProof(path, kf, private_key)


# --- the result --------------------------------------------------------------------------


@dataclass(frozen=True)
class DrillResult(JsonResult):
    # The JSON is the record, but for what only its file needs.
    record: DrillRecord = field(
        metadata=meta(flatten=True, omit=("record_version", "recoverctl_version"))
    )
    # The record's file; None when it could not be written.
    path: Path | None = field(metadata=meta(name="record"))
    warnings: tuple[str, ...] = field(default=(), metadata=INTERNAL)

    @property
    @computed(after="")
    def ok(self) -> bool:
        """The recovery was proven and nothing of the drill stack was left behind."""
        return self.record.passed and not self.record.leftovers

    @property
    def checks(self) -> tuple[Check, ...]:
        return tuple(row.check() for row in self.record.checks)


def failure(result: DrillResult, *, unattended: bool = False) -> RecoverctlError | None:
    """A drill that did not pass, as its error (None when it passed): the error of the
    step that failed, else the drill stack's leftovers, else the failing checks. The
    checks' wording differs by who reads it: `drill` has just shown their rows, while the
    routine's reader (a ping, a notification) finds them only in the drill record."""
    if result.ok:
        return None
    r = result.record
    if r.error is not None:
        try:
            code = ErrorCode(r.error.code)
        except ValueError:  # a record written by a later version, with a code this lacks
            code = ErrorCode.FAILED
        return RecoverctlError(r.error.message, r.error.hint, code=code, details=r.error.details)
    if r.leftovers:
        return RecoverctlError(
            f"The drill passed, but its stack {r.drill_project} is not all removed: "
            f"{', '.join(r.leftovers[:4])}.",
            f"Remove it by hand: docker compose -p {r.drill_project} down --volumes --rmi local",
            code=ErrorCode.CLEANUP_INCOMPLETE,
        )
    failing = ", ".join(c.name for c in result.checks if c.status == FAIL)
    if not unattended:
        return RecoverctlError(
            f"The drill brought the vault back with problems: {failing}.",
            "Each failing row says what to fix; run the drill again once done.",
            code=ErrorCode.CHECKS_FAILED,
        )
    return RecoverctlError(
        f"The drill of {r.backup} brought the vault back with failing checks ({failing or '?'}).",
        "Each check's evidence is in the drill record"
        + (f" ({result.path})" if result.path else "")
        + "; fix the cause, then run recoverctl drill.",
        code=ErrorCode.CHECKS_FAILED,
    )


# --- the reader the routine and doctor use -----------------------------------------------


def last_drill(settings: Settings, *, passed: bool = False) -> DrillRecord | None:
    """This stack's newest drill record (the newest that passed, with passed)."""
    return catalog.last_drill(settings, passed=passed)


def drill_due(settings: Settings, now: datetime | None = None) -> bool:
    """Whether the scheduled routine should drill now: drill_every is set and no drill
    passed within it."""
    every = in_units(settings.drill_every, DAY)
    return is_due(catalog.drill_records(settings), every, now or datetime.now(UTC))


def routine_drill(session: StackSession, *, progress: Step = _quiet) -> DrillResult | None:
    """For the scheduled routine: a drill of the newest local backup when one is due
    (drill_due), else None. The key export from the settings is checked as the restored
    vault's registered key: a timer has no passphrase to open secrets with."""
    settings = session.settings
    if not drill_due(settings):
        return None
    source = local_source(settings)
    try:
        key = key_proof(settings, None, None)
    except RecoverctlError:
        key = None  # missing or unreadable: doctor's key checks say so; the drill says no key
    return run_drill(session, source=source, key=key, progress=progress)


# --- the drill ---------------------------------------------------------------------------


def drill_session(session: StackSession) -> StackSession:
    """A session on the drill's own compose project, sharing the live session's engine."""
    settings = session.settings.model_copy(update={"project_name": drill_project(session.project)})
    return StackSession(settings, connect=lambda: session.engine)


@dataclass
class _Run:
    """What the drill learned, step by step, for its record."""

    source: Source
    project: str  # the live project
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    t0: float = field(default_factory=time.monotonic)
    backup: str = ""
    manifest: Manifest | None = None
    point: DrillPoint | None = None
    recovery: float | None = None
    checks: tuple[Check, ...] = ()


def run_drill(
    session: StackSession,
    *,
    source: Source,
    key: KeyProof | None = None,
    progress: Step = _quiet,
) -> DrillResult:
    """Drills source's backup in `<project>-drill` and records it (see the module's doc).

    Returns the result whether the drill passed or failed (result.ok, result.record.error);
    raises only when no drill could start (no env file, no engine, another drill running,
    leftovers that will not go), and Interrupted on Ctrl-C or SIGTERM once it cleaned up."""
    settings = session.settings
    files.require_env_file(settings)
    drill = drill_session(session)
    # Not the drill project's own lock: the restore inside the drill takes that one.
    with fsio.project_lock(f"{drill.project}.run", "drill"):
        left = drill.engine.remove_project(drill.project)  # an earlier, killed drill's
        if left:
            raise RecoverctlError(
                f"An earlier drill left {', '.join(left[:4])}, and it will not go.",
                _cleanup_hint(drill.project),
                code=ErrorCode.CLEANUP_INCOMPLETE,
            )
        return _drill(drill, session.project, source, key, progress)


def _drill(
    drill: StackSession, live: str, source: Source, key: KeyProof | None, progress: Step
) -> DrillResult:
    settings = drill.settings
    clock = StepClock(progress)
    run = _Run(source, live, backup=source.wanted)
    error: BaseException | None = None
    scratch: Path | None = None
    try:
        clock.step(source.doing or f"fetching the backup ({source.label}: {source.wanted})")
        scratch = _scratch(settings)
        got = source.fetch(scratch)
        fetched, run.point = got.path, got.point
        run.backup = fetched.name
        run.manifest = catalog.load_manifest(fetched)
        clock.step(f"starting the drill stack {drill.project}")
        _start(drill, progress)
        failpoints.reach("drill.up")
        clock.step("checking the backup and planning the restore")
        prep = restore.prepare(drill, str(fetched), safety_backup=False)
        done = restore.restore(prep, drill, step=lambda text: clock.step(f"restore: {text}"))
        run.recovery = time.monotonic() - run.t0
        clock.step("checking the restored vault")
        run.checks = _checks(drill, done, run.manifest, key)
        failpoints.reach("drill.checked")
    except BaseException as exc:  # told apart below, once the drill stack is gone
        error = exc
    failed_at = clock.current
    with signals.deferred(reraise=False):  # the tear-down and the record are never cut short
        clock.step(f"removing the drill stack {drill.project}")
        leftovers = _tear_down(drill)
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
        clock.stop()
        interrupted = isinstance(error, KeyboardInterrupt) or (
            isinstance(error, RecoverctlError) and error.code is ErrorCode.INTERRUPTED
        )
        failure = _as_failure(error, failed_at, drill.project, leftovers)
        record = _record(drill, run, clock, failure, leftovers, interrupted)
        written, warnings = _write(settings, record)
    if interrupted:
        raise Interrupted(
            f"Drill interrupted while {failed_at}; {_teardown_outcome(drill.project, leftovers)}",
            "The live stack was not touched. Run the drill again when ready.",
        )
    if error is not None and not isinstance(error, RecoverctlError):
        raise error  # a bug: recorded as failed, and its traceback shown
    return DrillResult(record, written, warnings)


def _scratch(settings: Settings) -> Path:
    """A private folder beside the records, on the backups disk (a pulled backup can be
    large), for what the source fetches."""
    folder = catalog.drill_dir(settings)
    fsio.ensure_private_dir(folder)
    return Path(tempfile.mkdtemp(prefix=".fetch-", dir=folder))


def _start(drill: StackSession, progress: Step) -> None:
    try:
        bring_up(drill, build=True, progress=progress, env=commands.port_env(None))
    except RecoverctlError as exc:
        raise _StepFailed(
            f"The drill stack did not come up: {exc.message}",
            "Its last log lines are above; fix the cause (recoverctl up shows the same on the "
            "live stack), then run the drill again.",
            code=exc.code,
            details=exc.details,
        ) from None


def _checks(
    drill: StackSession,
    done: restore.RestoreResult,
    manifest: Manifest | None,
    key: KeyProof | None,
) -> tuple[Check, ...]:
    """What the recovery must give back, each a row: the data, the app, the key. The restore
    has waited until the app answers its health probe: the engine's own healthcheck, which
    lags by up to its interval, is not waited for."""
    rows = [_rows(done, manifest)]
    rows += doctor.run(drill, only=STACK_CHECKS).checks
    rows += _key_rows(drill, key)
    return tuple(rows)


def _rows(done: restore.RestoreResult, manifest: Manifest | None) -> Check:
    counted = f"{done.tables} tables, {done.rows} rows"
    if manifest is None:
        return Check("rows", WARN, f"{counted}; no manifest beside the backup to compare",
                     "Drill backups made by recoverctl backup: their manifest holds the counts")  # fmt: skip
    if done.drift:
        return Check(
            "rows",
            WARN,
            f"{counted} as in the manifest when loaded; since the app started: "
            + "; ".join(done.drift[:2]),
            "The app changed rows as it started (migrations?): compare the vault's version "
            "with the backup's",
        )
    return Check("rows", OK, f"{counted}, as in the manifest")


def _key_rows(drill: StackSession, key: KeyProof | None) -> list[Check]:
    if key is None:
        return [
            Check(
                "key.secrets",
                WARN,
                "no key export given: the drill opened no secret",
                "Pass --key-file FILE --passphrase-stdin, or set key_file in the settings",
            )
        ]
    engine, project = drill.engine, drill.project
    if key.private_key is None:
        try:
            user = keys.owner(engine, project, key.keyfile)
        except RecoverctlError as exc:
            return [Check("key.registered", FAIL, _line(exc.message), _line(exc.hint or ""))]
        return [
            Check("key.registered", OK, f"{key.path.name} is {user}'s registered key"),
            Check(
                "key.secrets",
                WARN,
                "no passphrase given: the drill opened no secret",
                "Pass --passphrase-stdin and the passphrase on stdin",
            ),
        ]
    try:
        found = keys.open_sample(engine, project, key.keyfile, key.private_key)
    except RecoverctlError as exc:
        return [Check("key.secrets", FAIL, _line(exc.message), _line(exc.hint or ""))]
    if not found.sampled:
        return [
            Check(
                "key.secrets",
                WARN,
                f"no secret is stored under {found.user}'s key: nothing to open",
            )
        ]
    return [
        Check(
            "key.secrets",
            OK,
            f"opened {found.opened} of {found.sampled} sampled secrets of {found.user} "
            f"({found.secrets_total} stored) with {key.path.name}",
        )
    ]


def _line(text: str) -> str:
    return " ".join(text.split())


def _tear_down(drill: StackSession) -> tuple[str, ...]:
    try:
        return tuple(drill.engine.remove_project(drill.project))
    except RecoverctlError as exc:
        return (f"unknown: the engine could not say ({_line(exc.message)})",)


def _cleanup_hint(project: str) -> str:
    return (
        f"Remove it by hand: docker compose -p {project} down --volumes --rmi local "
        f"(or docker rm -f, docker volume rm, docker network rm on what carries the label "
        f"com.docker.compose.project={project})."
    )


def _teardown_outcome(project: str, leftovers: tuple[str, ...], start: str = "the") -> str:
    if not leftovers:
        return f"{start} drill stack {project} was removed."
    return f"{start} drill stack {project} is not all removed: {', '.join(leftovers[:4])}."


# Failures whose own hint is about the backup or the key, which the drill did not change.
KEEP_HINT = frozenset(
    {
        ErrorCode.BACKUP_NOT_FOUND,
        ErrorCode.BACKUP_CORRUPT,
        ErrorCode.MANIFEST_DAMAGED,
        ErrorCode.UNSAFE_PATH,
        ErrorCode.KEY_FILE_INVALID,
        ErrorCode.KEY_MISMATCH,
    }
)
DRILL_HINT = (
    "The live stack was not touched. Fix the cause, then run the drill again; its record "
    "in backups/drills has each step's time."
)
_SENTENCE_END = re.compile(r"\.\s+(?=[A-Z])")


class _StepFailed(RecoverctlError):
    """A failure the drill told in its own words (its hint is for the drill)."""


def _cause(message: str) -> str:
    """The failure's first sentence: what a restore adds after it (how it rolled back, what
    to run on the live stack) is moot once the drill stack is removed."""
    return _SENTENCE_END.split(message.strip(), maxsplit=1)[0].rstrip(".")


def _as_failure(
    error: BaseException | None, step: str, project: str, leftovers: tuple[str, ...]
) -> RecoverctlError | None:
    if error is None or isinstance(error, KeyboardInterrupt):
        return None
    if isinstance(error, RecoverctlError):
        if error.code is ErrorCode.INTERRUPTED:
            return None
        if leftovers:
            hint: str | None = _cleanup_hint(project)
        elif isinstance(error, _StepFailed) or error.code in KEEP_HINT:
            hint = error.hint
        else:  # the step's own advice is for the live stack: this one is gone already
            hint = DRILL_HINT
        return RecoverctlError(
            f"The drill failed while {step}: {_cause(error.message)}. "
            + _teardown_outcome(project, leftovers, start="The"),
            hint,
            code=error.code,
            details=error.details,
        )
    return RecoverctlError(
        f"The drill failed while {step}: {type(error).__name__}: {error}",
        code=ErrorCode.INTERNAL_ERROR,
    )


def _record(
    drill: StackSession,
    run: _Run,
    clock: StepClock,
    failure: RecoverctlError | None,
    leftovers: tuple[str, ...],
    interrupted: bool,
) -> DrillRecord:
    outcome: Outcome
    if interrupted:
        outcome = "interrupted"
    elif failure is not None or any(c.status == FAIL for c in run.checks):
        outcome = "failed"
    else:
        outcome = "passed"
    settings = drill.settings
    m = run.manifest
    return DrillRecord(
        result=outcome,
        project=run.project,
        drill_project=drill.project,
        stack=settings.stack,
        source=run.source.label,
        backup=run.backup,
        backup_sha256=m.sha256 if m else None,
        backup_created=m.started_at if m else None,
        started_at=run.started_at,
        finished_at=datetime.now(UTC),
        recovery_seconds=round(run.recovery, 2) if run.recovery is not None else None,
        seconds=round(time.monotonic() - run.t0, 2),
        steps=tuple(StepTime(step=s, seconds=round(t, 2)) for s, t in clock.steps),
        checks=tuple(CheckRow.of(c) for c in run.checks),
        error=(
            DrillError(
                code=str(failure.code),
                message=failure.message,
                hint=failure.hint,
                details=failure.details,
            )
            if failure is not None
            else None
        ),
        leftovers=leftovers,
        point_in_time=run.point,
        recoverctl_version=__version__,
    )


def _write(settings: Settings, record: DrillRecord) -> tuple[Path | None, tuple[str, ...]]:
    """The record, beside the backups: whole or not at all, 0600 in a 0700 folder."""
    folder = catalog.drill_dir(settings)
    try:
        fsio.ensure_private_dir(folder)
        path = folder / record_name(record.started_at, (p.name for p in folder.iterdir()))
        fsio.write_atomic(path, json.dumps(record.to_json(), indent=2).encode())
    except OSError as exc:
        return None, (f"the drill record could not be written in {folder}: {exc.strerror or exc}",)
    return path, ()
