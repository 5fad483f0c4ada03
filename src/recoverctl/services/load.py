"""Loading a dump into a database of the db service: the stream in, hashed as it goes, and
the throwaway databases such loads use."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from recoverctl import signals
from recoverctl.adapters import fsio
from recoverctl.adapters.pgexec import Db, ExecResult, cause_of
from recoverctl.core import grants, pg
from recoverctl.core.checks import FAIL, Check
from recoverctl.core.dumpcheck import NotADump
from recoverctl.core.naming import Format
from recoverctl.core.progress import OnBytes
from recoverctl.core.restore_plan import FAILED_TAG, KEEP_TAG, SCRATCH_TAG, name_base
from recoverctl.core.script import ScriptFilter
from recoverctl.errors import ErrorCode, RecoverctlError

# How much of an archive is read for its table of contents (its privileges are there).
TOC_BYTES = 16 * 1024 * 1024
VERIFY_PREFIX = "recoverctl_verify"


def _no_progress(_: int) -> None:
    return None


@dataclass(frozen=True)
class Loaded:
    """A restore of the file into a database: its failure, if any, the file's sha256, and
    the rows of each table the load copied into, as the server's COPY tags said."""

    failed: Check | None
    sha256: str
    counts: dict[str, int] = field(default_factory=dict)


class Loader:
    """The role one load runs as: made for it, owner of its database and of nothing else,
    granted no role (pg.create_loader_sql). Whatever the file holds runs as this role, and
    so do recoverctl's own queries of the loaded database (its counts, ANALYZE, which
    evaluates index expressions as the tables' owner) until hand_over: no function a file
    defines ever runs as the superuser before the restored database serves.

    contain() undoes what the load may have set for its database or itself; hand_over()
    (a restore, before the swap) gives the database and its objects to the stack's user,
    as a load of its own would have left them, and drops the role; drop() removes the role
    once its database is gone (a throwaway, a rollback), best effort."""

    def __init__(self, db: Db, database: str):
        self.db = db
        self.database = database
        self.role = pg.LOADER_PREFIX + secrets.token_hex(6)
        db.query(pg.create_loader_sql(self.role, database), database="postgres")

    def query(self, sql: str) -> str:
        return self.db.query_as(self.role, sql, self.database)

    def contain(self) -> None:
        self.db.query(pg.contain_loader_sql(self.role, self.database), database="postgres")

    def hand_over(self) -> None:
        with signals.deferred():
            self.db.query(pg.release_loader_sql(self.role, self.db.user), database=self.database)
            self.db.query(pg.drop_loader_sql(self.role), database="postgres")

    def drop(self) -> None:
        with signals.deferred(reraise=False), contextlib.suppress(RecoverctlError):
            self.db.query(pg.drop_loader_sql(self.role), database="postgres")


def restore_stream(
    db: Db,
    path: Path,
    fmt: Format,
    loader: Loader,
    on_bytes: OnBytes = _no_progress,
    *,
    one_transaction: bool = False,
    psql_restricts: bool | None = None,
) -> Loaded:
    """Restores the file into an existing empty database, confined to it, hashing the bytes
    it sends and counting the rows the load copies (pg.parse_copy_counts).

    Confined: the load runs in psql's restricted mode as the loader's role (Loader), so a
    file recoverctl did not write can reach nothing but this database, whatever it holds;
    what it set for the database or the role is undone when it ends (Loader.contain).

    one_transaction, for a throwaway that is counted once and dropped: about 0.2 s faster
    at 6 M rows (no commit per item) but it leaves every row without its hint bits, which
    the first scan sets. A restore keeps a transaction per item, as pg_restore into a
    database does, so its index builds set them during the load, not autovacuum while the
    restored app starts (bench/: its downtime grew 0.15 s otherwise).

    psql_restricts: psql_knows_restrict's answer, when the caller asked it already."""
    if psql_restricts is None:
        psql_restricts = psql_knows_restrict(db)
    if not psql_restricts:
        raise RecoverctlError(
            "The db container's psql has no restricted mode (\\restrict, PostgreSQL 15.14, "
            "16.10, 17.6 and later): recoverctl loads no dump without it.",
            "Use a newer image of the same major version (POSTGRES_IMAGE), "
            "then `recoverctl up`, and run this again.",
            code=ErrorCode.UPDATE_REFUSED,
        )
    digest = hashlib.sha256()
    sent = [0]

    def hashed() -> Iterator[bytes]:
        for chunk in fsio.read_chunks(path, on_bytes):
            digest.update(chunk)
            sent[0] += len(chunk)
            yield chunk

    key = secrets.token_hex(16)
    role, database = loader.role, loader.database
    roles = server_roles(db)
    script = ScriptFilter(roles=roles)
    privileges = archive_grants(path, roles).applied if fmt == "custom" else ()
    chunks: Iterator[bytes]
    if fmt == "custom":
        argv = pg.pg_restore_counted(
            role, database, one_transaction=one_transaction, restrict_key=key
        )
        chunks = hashed()
    else:
        argv = pg.psql_counted_script(role, database, one_transaction=one_transaction)
        chunks = itertools.chain((pg.restrict_line(key),), script(hashed()))
    echo = Echo()
    try:
        result = db.run(argv, stdin=chunks, on_stdout=echo)
        echo.finish()
        if result.ok and privileges:
            granted = _grant(db, role, database, key, privileges)
            if not granted.ok:
                result = granted
    except BaseException:
        with contextlib.suppress(RecoverctlError):  # the load's own error is the one to tell
            loader.contain()
        raise
    loader.contain()
    # The command may stop reading early (an error, or trailing bytes it ignores): the
    # sha256 then comes from a pass of its own, since it must cover the whole file.
    whole = result.stdin_error is None and sent[0] == path.stat().st_size
    sha256 = digest.hexdigest() if whole else fsio.sha256_file(path)[0]
    piped = fmt == "custom"
    if result.ok and (not piped or echo.ends_with(pg.ARCHIVE_WHOLE)):
        return Loaded(None, sha256, pg.parse_copy_counts(echo.text()))
    # An archive piped into psql: pg_restore's own error says why, before what psql made of
    # the SQL it stopped sending (a COPY "missing data", a COMMIT of a part). psql may have
    # gone through with the part it got: then only the missing end line tells. For a plain
    # dump, what the filter saw (pg_dump --clean, a meta-command) says why best.
    tool = "pg_restore" if piped else "psql"
    said = (
        (_archive_error(result.stderr_tail) if piped else None)
        or cause_of(result.stderr_tail)
        or _how_it_ended(result)
    )
    cause = script.notes.cause()
    if cause is not None:
        return Loaded(
            Check("restore", FAIL, f"{cause} ({tool}: {said})", script.notes.hint() or LOAD_HINT),
            sha256,
        )
    return Loaded(Check("restore", FAIL, f"{tool}: {said}", LOAD_HINT), sha256)


def server_roles(db: Db) -> frozenset[str]:
    return frozenset(r[0] for r in pg.parse_rows(db.query(pg.ROLES_SQL, database="postgres")))


def file_grants(path: Path, fmt: Format, roles: frozenset[str]) -> grants.Judged:
    return archive_grants(path, roles) if fmt == "custom" else plain_grants(path, roles)


def archive_grants(path: Path, roles: frozenset[str]) -> grants.Judged:
    """An archive's GRANTs and REVOKEs, judged against the server's roles. An archive
    whose table of contents cannot be read (a newer format) keeps none: the plan says so."""
    head, _ = fsio.head_and_tail(path, TOC_BYTES, 0)
    try:
        return grants.judge(grants.archive_statements(head), roles)
    except NotADump as exc:
        return grants.Judged((), (), (), unread=str(exc))


def plain_grants(path: Path, roles: frozenset[str]) -> grants.Judged:
    """A plain dump's GRANT and REVOKE lines, read in one pass, judged against the roles."""
    found: list[str] = []
    rest = b""
    for chunk in fsio.read_chunks(path):
        data = rest + chunk
        cut = data.rfind(b"\n") + 1
        found += grants.plain_statements(data[:cut])
        rest = data[cut:]
    found += grants.plain_statements(rest)
    return grants.judge(found, roles)


def _grant(db: Db, role: str, database: str, key: str, statements: tuple[str, ...]) -> ExecResult:
    """An archive's privileges, after its load (pg_restore --no-acl): the statements are
    the archive's own, so they run as confined as the load."""
    script = pg.restrict_line(key) + "\n".join(statements).encode() + b"\n"
    return db.run(pg.psql_counted_script(role, database, one_transaction=True), stdin=iter([script]))


class Echo:
    """What a counted load's echo is read for, kept as it streams in: the COPY statements
    and tags (pg.parse_copy_counts) and the last line (the archive's end). The echo holds
    every statement the load ran, a large object's bytes among them (its lowrite calls):
    other lines are let go as they end, and one that grows long is let go before it ends."""

    LONG = 4096

    def __init__(self) -> None:
        self.kept: list[bytes] = []
        self.last = b""
        self.pending = b""
        self.cut = False  # the pending line was let go: its rest goes too

    def __call__(self, chunk: bytes) -> None:
        lines = (self.pending + chunk).split(b"\n")
        self.pending = lines.pop()
        for line in lines:
            self._line(line)
        if len(self.pending) > self.LONG and not self.pending.startswith(b"COPY "):
            self.pending, self.cut, self.last = b"", True, b"(a long line)"

    def finish(self) -> None:
        if self.pending or self.cut:
            self._line(self.pending)
            self.pending = b""

    def _line(self, line: bytes) -> None:
        if self.cut:
            self.cut = False
            return
        line = line.rstrip(b"\r")
        if line.strip():
            self.last = line
        if line.startswith(b"COPY "):
            self.kept.append(line)

    def ends_with(self, line: str) -> bool:
        return self.last == line.encode()

    def text(self) -> str:
        return b"\n".join(self.kept).decode("utf-8", "replace")


@dataclass(frozen=True)
class Counted:
    """A loaded database's rows: each table's as count(*) gives them (the manifest's way:
    a parent's includes its partitions' and children's), and every row once, in the
    table that stores it."""

    counts: dict[str, int]
    stored: int


def all_counts(loader: Loader, loaded: Loaded, *, exact: bool = False) -> Counted:
    """Every table's rows, from the database itself: each table the load reported must be
    there (a load that left it would have reported another database's). Without exact,
    the load's own counts stand, and only a table it did not COPY into (a partitioned
    table's parent, a table whose data was not in the dump) or one with inheritance
    children, whose COPY holds only its own rows, is counted. With exact (before a swap),
    every table is counted and must hold what the load reported."""
    database = loader.database
    parents = {row[0] for row in pg.parse_rows(loader.query(pg.INHERITANCE_PARENTS_SQL))}
    present = [row[0] for row in pg.parse_rows(loader.query(pg.LIST_TABLES_SQL))]
    # The load's names are pg_dump's, the server's format('%I')'s: the same identifiers,
    # quoted differently when their versions' keywords differ.
    named = {pg.ident_key(t): t for t in present}
    reported: dict[str, int] = {}
    absent: list[str] = []
    for table, rows in sorted(loaded.counts.items()):
        name = named.get(pg.ident_key(table))
        if name is None:
            absent.append(table)
        else:
            reported[name] = reported.get(name, 0) + rows
    if absent:
        raise RecoverctlError(
            f"The load reported rows for {_some(absent)}, which {database} does not hold: "
            "the file's statements did not stay in the database they were loaded into.",
            "Nothing was swapped in; use another backup (`recoverctl list`).",
            code=ErrorCode.BACKUP_CORRUPT,
        )
    if exact:
        counts = pg.parse_counts(loader.query(pg.count_rows_sql(present)))
        differ = [
            f"{t}: {counts[t]} rows, the load reported {n}"
            for t, n in sorted(reported.items())
            if t not in parents and counts.get(t) != n
        ]
        if differ:
            raise RecoverctlError(
                f"{database} does not hold what the load reported: {_some(differ)}.",
                "Nothing was swapped in; use another backup (`recoverctl list`).",
                code=ErrorCode.BACKUP_CORRUPT,
            )
    else:
        counts = {t: n for t, n in reported.items() if t not in parents}
        rest = [t for t in present if t not in counts]
        if rest:
            counts.update(pg.parse_counts(loader.query(pg.count_rows_sql(rest))))
    stored = sum(n for t, n in counts.items() if t not in parents)
    stored += sum(reported.get(p, 0) for p in parents)
    return Counted(counts, stored)


def _some(items: list[str]) -> str:
    return ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")


def psql_knows_restrict(db: Db) -> bool:
    """Whether the db container's psql takes the \\restrict lines of a newer pg_dump."""
    return pg.psql_knows_restrict(db.version_of(pg.psql_version()))


def _how_it_ended(result: ExecResult) -> str:
    """A failed load's cause when no tool said one."""
    if result.ok:  # psql went through; only the archive's end line is missing
        return "it stopped before the end"
    return "the container stopped" if result.exit_code is None else f"exit {result.exit_code}"


def _archive_error(stderr: str) -> str | None:
    return next((ln for ln in stderr.splitlines() if ln.startswith("pg_restore: error:")), None)


LOAD_HINT = "See the lines above; use another backup."


def throwaway_name(prefix: str) -> str:
    return f"{prefix}_{datetime.now(UTC):%Y%m%d_%H%M%S}_{secrets.token_hex(3)}"


def related_databases(db: Db) -> dict[str, str]:
    """db and the databases named after it or a verification: name -> size (db's only)."""
    sql = pg.related_databases_sql(db.database, (name_base(db.database) + "__", VERIFY_PREFIX))
    return {row[0]: row[1] for row in pg.parse_rows(db.query(sql, database="postgres"))}


def leftovers(db: Db, related: dict[str, str] | None = None) -> list[str]:
    """Databases an interrupted (killed) restore or deep verification left behind."""
    tags = (SCRATCH_TAG, KEEP_TAG, FAILED_TAG)
    return [
        name
        for name in (related if related is not None else related_databases(db))
        if name.startswith(VERIFY_PREFIX)
        or (name.startswith(name_base(db.database) + "__") and any(t in name for t in tags))
    ]
