"""recover: the playbook's quick recovery, on the same machine or a new one, in one command."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from recoverctl.adapters import http
from recoverctl.core import pg, pitrtime
from recoverctl.core.checks import FAIL, Check, worst
from recoverctl.core.progress import Step, StepClock
from recoverctl.core.restore_plan import RestorePlan as RestorePlan
from recoverctl.core.result import JsonResult, computed, meta
from recoverctl.core.stack import StackName
from recoverctl.errors import ErrorCode, RecoverctlError, UsageError
from recoverctl.services import catalog, doctor, envcopy, offsite, pitr_recover, restore
from recoverctl.services.pitr_restore import PointReached
from recoverctl.services.restore import StepSeconds
from recoverctl.services.session import StackSession
from recoverctl.services.stack import bring_up, wait_ready
from recoverctl.settings import Settings

# Tables the app fills; migrations alone fill others (permissions, content types).
DATA_TABLES = ("public.auth_user", "public.vault_userkey", "public.vault_secret")
Confirm = Callable[[RestorePlan], None]


def _quiet(_: object) -> None:
    return None


@dataclass(frozen=True)
class RecoverResult(JsonResult):
    project: str
    stack: str = field(metadata=meta(schema=StackName))
    restored_from: Path | None
    restore_skipped: str | None
    checks: tuple[Check, ...]
    url: str | None
    seconds: float = field(metadata=meta(digits=1))
    steps: tuple[tuple[str, float], ...] = field(
        default=(), metadata=meta(encode=StepSeconds.of, schema=list[StepSeconds])
    )
    # The env files brought back from the target before the stack came up (none was here).
    env_restored: tuple[Path, ...] = ()
    # From the start to the vault serving (the recovery time); None when it never did.
    serving_seconds: float | None = field(default=None, metadata=meta(digits=1, after="seconds"))
    # When the whole cluster came back from a pgBackRest repository: the point it reached.
    point_in_time: PointReached | None = None

    @property
    @computed(after="stack")
    def ok(self) -> bool:
        return worst(self.checks) != FAIL

    @property
    @computed(after="url")
    def manual_step(self) -> str:
        where = self.url or "the vault's address"
        return (
            f"In the browser, open {where}/key-backup/ and sign in, then Import: choose your "
            f".zkkey.json export as Key file and type its Passphrase. Open {where}/key-check, "
            "then reveal one password. Never generate a new key: existing data would stay "
            "unreadable."
        )


def data_rows(session: StackSession) -> int:
    db = session.db()
    tables = set(db.tables())
    present = [t for t in DATA_TABLES if t in tables]
    counts = pg.parse_counts(db.query(pg.count_rows_sql(present))) if present else {}
    return sum(counts.values())


def pick_backup(settings: Settings, spec: str | None) -> str:
    """--from, else the newest verified backup of this stack, else the newest with a manifest."""
    if spec:
        return spec
    listing = catalog.list_backups(settings)
    verified = [e for e in listing.entries if e.state in ("deep ok", "quick ok")]
    if verified:
        return str(verified[0].path)
    return "latest"


def recover(
    session: StackSession,
    *,
    spec: str | None = None,
    confirm: Confirm = _quiet,
    show: Confirm = _quiet,
    progress: Step = _quiet,
    allow_newer_data: bool = False,
    target: str | None = None,
    identity: Path | None = None,
    to_time: str | None = None,
) -> RecoverResult:
    """With target, the backup comes from that off-site target (spec names the copy there,
    default its newest complete one): a machine with no local backup recovers from it.

    When target is one of the [pitr] repositories and its passphrase is here (pulled with
    the env files), and this project has no container or volume yet, the whole cluster
    comes back from the repository instead, to to_time (default latest), and archives on."""
    started = time.monotonic()
    settings = session.settings
    clock = StepClock(progress)
    step = clock.step
    identity = identity or settings.identity_file
    point: pitrtime.PointInTime | None = None
    if to_time is not None:
        if spec or target is None:
            raise UsageError(
                "--to-time recovers the whole cluster from a [pitr] repository: it takes "
                "--target NAME, and no --from.",
                "recoverctl recover --target NAME --to-time TIME|latest; for a stack that "
                "runs: recoverctl restore --to-time TIME",
            )
        point = _point(to_time)
    if target is not None:
        # Before the stack comes up: a wrong key or target name is told in a second.
        offsite.check_source(session, target, identity)

    env_restored: tuple[Path, ...] = ()
    if target is not None and not settings.env_file.exists():
        # A new machine: the env files first (mode 0600, never over one that exists), so
        # that the stack comes up with the secrets the data was written with.
        step(f"bringing the env files back from target {target}")
        env_restored = envcopy.pull(session, target, identity).written

    reached: PointReached | None = None
    if target is not None and not spec and pitr_recover.holds_repository(session, target):
        if point is not None or not pitr_recover.nothing_here(session):
            point = point or _point(pitrtime.LATEST)
            step(f"recovering the whole cluster from repository {target} to {point.said}")
            reached = pitr_recover.recover_cluster(
                session, point, target, step=lambda text: step(f"{target}: {text}")
            )
    elif point is not None:
        raise UsageError(
            f"--to-time needs target {target} to hold this stack's repository: a [pitr] repo "
            "whose passphrase (.env.pitr) is here or in the env files on the target.",
            "Name a [pitr] repository with --target, or recover a backup with --from.",
        )

    step("bringing the stack up")
    bring_up(session, build=True, progress=progress)
    rows = data_rows(session)
    restored: Path | None = None
    skipped: str | None = None
    if reached is not None:
        pass  # the cluster itself came back, with every database in it
    elif rows == 0 or spec:
        if target is not None:
            step(f"pulling {spec or 'the newest copy'} from target {target}")
            chosen = str(offsite.pull(session, target, spec or offsite.LATEST, identity).path)
        else:
            chosen = pick_backup(settings, spec)
        try:
            prep = restore.prepare(
                session, chosen, safety_backup=rows > 0, allow_newer_data=allow_newer_data
            )
        except RecoverctlError as exc:
            if spec is None and exc.code is ErrorCode.BACKUP_NOT_FOUND:
                raise RecoverctlError(
                    f"The database is empty and there is no {settings.stack} backup in "
                    f"{settings.backup_dir}.",
                    "Copy your newest backup (and its .json manifest) there, then: "
                    "recoverctl recover --from FILE"
                    + (
                        "; or recover from an off-site copy: recoverctl recover --target "
                        f"{sorted(settings.targets)[0]} --identity FILE"
                        if settings.targets
                        else ""
                    ),
                    code=ErrorCode.BACKUP_NOT_FOUND,
                ) from None
            raise
        plan = prep.plan
        if spec is None and plan.backup_stack not in (None, settings.stack):
            # Chosen by recoverctl, not by the person: never another stack's data.
            raise RecoverctlError(
                f"The newest backup found, {Path(plan.backup).name}, is a {plan.backup_stack} "
                f"backup; recover restores only {settings.stack} backups on its own.",
                "Name the backup to restore if you mean it: --from FILE (with --target, the "
                "copy's name).",
                code=ErrorCode.OTHER_STACK,
            )
        show(plan)  # its warnings too, even when there is nothing to confirm
        if rows > 0 or plan.backup_stack not in (None, settings.stack):
            confirm(plan)  # never over existing data, nor another stack's, unconfirmed
        step(f"restoring {prep.path.name}")
        restore.restore(prep, session, step=lambda text: step(f"restore: {text}"))
        restored = prep.path
    else:
        skipped = (
            f"the database already holds data ({rows} rows in users, keys and secrets); "
            "to replace it: recoverctl restore FILE"
        )
    # A restore declares the app ready by its own healthcheck; the checks below read the
    # engine's view, so let that catch up (and read the port again: a restart may move it).
    step("waiting until the stack is ready")
    final = wait_ready(session.engine, session.ref, settings.up_timeout.total_seconds(), progress)
    serving = time.monotonic() - started
    step("checking the database, migrations, admin and key")
    checks = doctor.run(session, only=("service", "db", "app", "key")).checks
    clock.stop()
    backend = next((s for s in final.services if s.service == "backend"), None)
    port = http.published_port(backend.ports) if backend else None
    return RecoverResult(
        project=final.project,
        stack=settings.stack,
        restored_from=restored,
        restore_skipped=skipped,
        checks=checks,
        url=f"http://127.0.0.1:{port}" if port else None,
        seconds=time.monotonic() - started,
        steps=clock.timed(),
        env_restored=env_restored,
        serving_seconds=serving if final.ready else None,
        point_in_time=reached,
    )


def _point(text: str) -> pitrtime.PointInTime:
    from recoverctl.actions.restore import local_zone

    return pitrtime.parse_point(text, zone=local_zone(), now=datetime.now(UTC))
