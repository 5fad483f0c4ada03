"""verify --pitr: what the pgBackRest repositories hold, read back whole, and (with --deep)
the cluster restored from each to its latest point in a throwaway and judged there.

pgBackRest's `verify` reads every WAL segment and base backup file of a repository and
checks each against its checksum and size; it exits 0 whatever it finds, so its verdict is
read from what it prints (core/pitr.parse_verify). The deep check restores with
services/pitr_restore.restored_copy (archiving off, the repository mounted read-only: the
copy never writes it) and judges the copy as verify --deep and drill judge a restored
database: the point it reached, its tables and row counts, and the vault's own checks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, tzinfo

from recoverctl.adapters.pgexec import Db, cause_of
from recoverctl.core import pg, pitr
from recoverctl.core.checks import FAIL, OK, WARN, Check, worst
from recoverctl.core.pitrtime import PointInTime, say
from recoverctl.core.progress import Step
from recoverctl.core.result import INTERNAL, JsonResult, computed, meta
from recoverctl.core.stack import StackName
from recoverctl.errors import ErrorCode, Interrupted, RecoverctlError
from recoverctl.services import pitr as svc
from recoverctl.services.doctor.stack import not_empty
from recoverctl.services.pitr_restore import Copy, PointReached, restored_copy
from recoverctl.services.session import StackSession


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class RepoVerdict(JsonResult):
    """One repository: pgBackRest's verify, and with --deep the copy restored from it."""

    name: str
    kind: str
    location: str
    problems: tuple[str, ...]  # the files pgBackRest names as damaged
    checks: tuple[Check, ...]
    point: PointReached | None  # --deep: the point the copy reached; None otherwise
    seconds: float = field(metadata=meta(digits=2))
    code: ErrorCode | None = field(default=None, metadata=INTERNAL)  # the failure's kind

    @property
    @computed(after="location")
    def ok(self) -> bool:
        return worst(self.checks) != FAIL


@dataclass(frozen=True)
class PitrVerifyReport(JsonResult):
    stack: str = field(metadata=meta(schema=StackName))
    project: str
    deep: bool
    repos: tuple[RepoVerdict, ...]
    seconds: float = field(metadata=meta(digits=2))

    @property
    @computed(after="project")
    def ok(self) -> bool:
        return all(r.ok for r in self.repos)

    @property
    def failed(self) -> tuple[RepoVerdict, ...]:
        return tuple(r for r in self.repos if not r.ok)


def verify(
    session: StackSession,
    target: str | None,
    *,
    deep: bool,
    zone: tzinfo = UTC,
    step: Step = _quiet,
) -> PitrVerifyReport:
    """Every [pitr] repository, or the one of target; each judged, none raising for what it
    finds (a damaged repository, a restore that fails): the report says it. zone: the one
    points are said in."""
    from recoverctl.services.pitr_restore import repo_named

    started = time.monotonic()
    db = session.db()
    chosen = [repo_named(session, target)] if target else svc.repos(session)
    verdicts = [_verdict(session, db, repo, deep=deep, zone=zone, step=step) for repo in chosen]
    return PitrVerifyReport(
        stack=session.settings.stack,
        project=session.project,
        deep=deep,
        repos=tuple(verdicts),
        seconds=time.monotonic() - started,
    )


def _verdict(
    session: StackSession, db: Db, repo: pitr.Repo, *, deep: bool, zone: tzinfo, step: Step
) -> RepoVerdict:
    t0 = time.monotonic()
    step(f"pgbackrest verify of {repo.name}: reading every WAL segment and backup file")
    check, problems, code = _pgbackrest_verify(db, repo)
    checks = [check]
    point: PointReached | None = None
    if deep:
        deep_checks, point, deep_code = _deep(session, repo, zone, step)
        checks += deep_checks
        code = code or deep_code
    return RepoVerdict(
        repo.name, repo.kind, repo.location, problems, tuple(checks), point,
        time.monotonic() - t0, code,
    )  # fmt: skip


def _pgbackrest_verify(db: Db, repo: pitr.Repo) -> tuple[Check, tuple[str, ...], ErrorCode | None]:
    result = db.run(pitr.verify(repo.index))
    stdout = result.stdout.decode("utf-8", "replace")
    if not result.ok:
        said = svc.pgbackrest_cause(result.stderr_tail) or cause_of(result.stderr_tail)
        code = svc.code_of(result.stderr_tail)
        return (
            Check(
                "pgbackrest.verify",
                FAIL,
                f"pgBackRest could not verify {repo.name}: "
                + (said or f"exit {result.exit_code} with no message"),
                "Check its passphrase (.env.pitr) and that the repository is reachable "
                "(recoverctl pitr status, recoverctl doctor).",
            ),
            (),
            code,
        )
    found = pitr.parse_verify(f"{stdout}\n{result.stderr_tail}")
    if not found.ok:
        return (
            Check(
                "pgbackrest.verify",
                FAIL,
                found.cause or "damaged",
                "A restore cannot replay past a damaged WAL segment: take a full base backup "
                "now (recoverctl pitr backup --type full) to start a good window.",
            ),
            found.problems,
            ErrorCode.PITR_FAILED,
        )
    return (
        Check(
            "pgbackrest.verify",
            OK,
            "every WAL segment and backup file matches its checksum and size"
            + (f" ({found.summary})" if found.summary else ""),
        ),
        (),
        None,
    )


def _deep(
    session: StackSession, repo: pitr.Repo, zone: tzinfo, step: Step
) -> tuple[list[Check], PointReached | None, ErrorCode | None]:
    latest = PointInTime(latest=True, at=None, said="latest", zone=zone)
    try:
        with restored_copy(
            session,
            latest,
            repo,
            interrupted="Deep verification interrupted; its throwaway copy was removed. The "
            "live database and the repository are untouched.",
            step=step,
        ) as copy:
            step("checking the restored copy")
            return _judge(session.db(), copy, zone), copy.point, None
    except Interrupted:
        raise
    except RecoverctlError as exc:
        return (
            [
                Check(
                    "restore",
                    FAIL,
                    " ".join(exc.message.split()),
                    " ".join((exc.hint or "").split()),
                )
            ],
            None,
            exc.code,
        )


def _judge(live: Db, copy: Copy, zone: tzinfo) -> list[Check]:
    point = copy.point
    checks = [
        Check(
            "restore",
            OK,
            f"restored from {point.repo} (base backup {point.base_backup}), replayed and "
            f"promoted in {point.seconds:.1f} s",
        ),
        _point_check(copy, zone),
    ]
    checks.append(_rows(live, copy.db))
    checks.append(not_empty(copy.db).named("db.not_empty"))
    checks.append(_migrations(live, copy.db))
    return checks


def _point_check(copy: Copy, zone: tzinfo) -> Check:
    """latest must reach the archive's newest commit (Copy.short_of_latest)."""
    point, latest = copy.point, copy.latest
    if latest is None:
        return Check(
            "point", WARN, f"reached {point.reached_said}; the archive's newest point is unknown"
        )
    held = say(latest, zone)
    if copy.short_of_latest():
        return Check(
            "point",
            FAIL,
            f"latest reached {point.reached_said}, but the archive holds commits until {held}: "
            "the WAL between could not be replayed",
            "Check the repository (its damaged files are named above), then take a full "
            "base backup (recoverctl pitr backup --type full).",
        )
    return Check("point", OK, f"reached {point.reached_said}, the archive's newest commit")


def _rows(live: Db, copy: Db) -> Check:
    restored = copy.count_rows()
    if not restored:
        return Check(
            "rows",
            FAIL,
            f"the restored database {copy.database} has no tables",
            "The repository holds no vault data: take a full base backup "
            "(recoverctl pitr backup --type full).",
        )
    stored = sum(restored.values())
    now = live.count_rows()
    differ = [
        f"{t}: {restored.get(t, 'absent')} restored, {now.get(t, 'absent')} now"
        for t in sorted(set(restored) | set(now))
        if restored.get(t) != now.get(t)
    ]
    if differ:
        return Check(
            "rows",
            WARN,
            f"{len(restored)} tables, {stored} rows; the live database differs (written since "
            "the archive's newest point?): " + "; ".join(differ[:3]),
            "Run it again on a quiet stack to compare the counts exactly.",
        )
    return Check("rows", OK, f"{len(restored)} tables, {stored} rows, as in the live database")


_MIGRATIONS_SQL = "SELECT app || '.' || name FROM public.django_migrations ORDER BY 1"


def _migrations(live: Db, copy: Db) -> Check:
    """The copy's applied migrations, as the live database's: the schema the code expects."""
    if copy.query(pg.HAS_MIGRATIONS_SQL).strip() != "t":
        return Check("db.migrations", WARN, "the restored database has no django_migrations table")
    restored = set(copy.query(_MIGRATIONS_SQL).split())
    applied = (
        set(live.query(_MIGRATIONS_SQL).split())
        if live.query(pg.HAS_MIGRATIONS_SQL).strip() == "t"
        else set()
    )
    lacking = sorted(applied - restored)
    if lacking:
        return Check(
            "db.migrations",
            WARN,
            f"{len(restored)} migrations applied; the live database has more: "
            + ", ".join(lacking[:3]),
            "Applied after the archive's newest point? The app migrates a restored "
            "database as it starts.",
        )
    return Check(
        "db.migrations", OK, f"{len(restored)} migrations applied, as in the live database"
    )
