"""The db container's PostgreSQL, in memory: databases (name -> table -> rows), each row
an opaque line, as in a COPY block.

pg_dump writes a dump of them (dumps.py), pg_restore and psql load such a dump back, row by
row. A snapshot session freezes a copy, and pg_dump --snapshot dumps that copy. Queries
answer the exact SQL of core/pg.py and nothing else (the statements are in sql.py, which
the e2e suite runs against a real server): an unknown statement fails the test. A failing
query fails the way Db.query does (through the real Db.check, so its ErrorCode comes from
the real classifier: DB_IN_USE only from PostgreSQL's wording).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gzip
import re
import shlex
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Self

import pytest

from recoverctl.adapters.engine import ENGINE_HINT
from recoverctl.adapters.pgexec import Db, ExecResult, SnapshotSession
from recoverctl.core import pg
from recoverctl.core.commands import Argv
from recoverctl.errors import EngineError, ErrorCode

from .dumps import SERVER_VERSION, Tables, _archive_body, _Cut, _load_copy, custom_dump, plain_dump
from .engine import FakeEngine
from .faults import Fault, Faults, _act

SQL_KINDS = frozenset(
    {
        "server_version",
        "roles",
        "list_tables",
        "count_rows",
        "has_migrations",
        "migrations",
        "estimate",
        "create",
        "create_loader",
        "contain_loader",
        "release_loader",
        "drop_loader",
        "drop",
        "terminate",
        "swap",
        "rename",
        "databases_like",
        "related",
        "analyze",
        "checkpoint",
        "begin",
        "export_snapshot",
        "counts_beside_dump",
    }
)
RUN_KINDS = frozenset(
    {
        "psql_version",
        "pg_dump",
        "pg_restore_list",
        "pg_restore_to_null",
        "pg_restore_into",
        "psql_script",
    }
)
ENGINE_KINDS = frozenset({"containers", "stop", "start", "reload", "logs", "version"})
# The statements FakeDb answers: these exact strings, or those that start so (each built
# by one of core/pg.py's builders). sql.py holds one of each with realistic arguments; the
# e2e suite runs those against a real server, and a unit test keeps both lists equal.
FIXED_SQL: dict[str, str] = {
    pg.SERVER_VERSION_SQL: "server_version",
    pg.ROLES_SQL: "roles",
    pg.LIST_TABLES_SQL: "list_tables",
    pg.INHERITANCE_PARENTS_SQL: "inheritance_parents",
    pg.HAS_MIGRATIONS_SQL: "has_migrations",
    pg.MIGRATIONS_SQL: "migrations",
    pg.ESTIMATE_SQL: "estimate",
    "ANALYZE": "analyze",
    "CHECKPOINT": "checkpoint",
    "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY": "begin",
    "SELECT pg_export_snapshot()": "export_snapshot",
    pg.COUNTS_BESIDE_DUMP_SQL: "counts_beside_dump",
    pg.count_rows_sql([]): "count_rows",
}
PREFIXED_SQL: tuple[tuple[str, str], ...] = (
    ("SELECT '", "count_rows"),
    ("CREATE DATABASE ", "create"),
    ("CREATE ROLE ", "create_loader"),
    ("ALTER ROLE ", "contain_loader"),
    ("REASSIGN OWNED BY ", "release_loader"),
    ("DROP ROLE IF EXISTS ", "drop_loader"),
    ("DROP DATABASE IF EXISTS ", "drop"),
    ("SELECT count(pg_terminate_backend(pid))", "terminate"),
    ("BEGIN; ALTER DATABASE ", "swap"),
    ("ALTER DATABASE ", "rename"),
    ("SELECT datname FROM pg_database WHERE starts_with", "databases_like"),
    ("SELECT datname, CASE WHEN", "related"),
)
IN_USE_STDERR = (
    'ERROR:  database "{db}" is being accessed by other users\n'
    "DETAIL:  There is 1 other session using the database."
)


def _names(sql: str) -> list[str]:
    return [n.replace('""', '"') for n in re.findall(r'"((?:[^"]|"")*)"', sql)]


def _literals(sql: str) -> list[str]:
    return [v.replace("''", "'") for v in re.findall(r"'((?:[^']|'')*)'", sql)]


def _arg(argv: Argv, flag: str) -> str | None:
    for i, a in enumerate(argv):
        if a == flag and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


class FakeDb(Db):
    """The db service's PostgreSQL: one cluster of databases, queried and loaded in memory."""

    def __init__(
        self,
        engine: FakeEngine,
        tables: Tables | None = None,
        *,
        database: str = "vault",
        user: str = "vault",
        psql: str = "16.10",
    ):
        container = engine.add("db")
        super().__init__(engine, container, user, database)
        self.fake_engine = engine
        self.psql = psql
        self.databases: dict[str, Tables] = {"postgres": {}, "template0": {}}
        if tables is not None:
            self.databases[database] = tables
        self.faults = Faults(SQL_KINDS | RUN_KINDS)
        self.reconnecting: set[str] = set()  # databases whose clients come back at once
        self.lingering: dict[str, int] = {}  # sessions a database still lists, one gone per ask
        self.snapshots: dict[str, Tables] = {}
        self.sessions_opened = 0
        self.log: list[str] = []  # kind and target of every query and command
        # Every load: its database, and whether it ran in one transaction.
        self.loads: list[tuple[str, bool]] = []
        self.parents: set[str] = set()  # tables with inheritance children
        self.loaders: dict[str, str] = {}  # a load's role -> the database it owns
        self.released: list[str] = []  # loaders whose database went back to the user
        self.contained: list[str] = []  # loaders whose settings were undone after their load
        self.queried_as: list[tuple[str, str]] = []  # (role, statement kind) of query_as
        self._lock = threading.RLock()

    # --- for tests ---

    def fail(
        self,
        kind: str,
        *,
        error: BaseException | None = None,
        sigint: bool = False,
        exit_code: int | None = 1,
        stderr: str = "",
        cut: int | None = None,
        output: bytes | None = None,
        database: str | None = None,
        after: int = 0,
        times: int | None = 1,
    ) -> Fault:
        return self.faults.add(
            Fault(kind, database, error, sigint, exit_code, stderr, cut, output, after, times)
        )

    def rows(self, database: str | None = None) -> dict[str, int]:
        return {t: len(r) for t, r in self.databases[database or self.database].items()}

    def names(self) -> set[str]:
        return set(self.databases) - {"postgres", "template0"}

    # --- what Db offers ---

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        if self._session_thread:
            yield
            return
        self.sessions_opened += 1
        self._session_thread = threading.get_ident()
        try:
            yield
        finally:
            self._session_thread = 0

    def snapshot(self) -> SnapshotSession:
        return FakeSnapshot(self)

    def query(self, sql: str, database: str | None = None) -> str:
        return self.answer(sql, database or self.database, None)

    def query_as(self, role: str, sql: str, database: str) -> str:
        """A query as a load's role: only in the database it owns, and only once its load
        was contained."""
        assert self.loaders.get(role) == database, f"{role} does not own {database}"
        assert role in self.contained, f"{role} queried before its load was contained"
        self.queried_as.append((role, self._kind(sql)))
        return self.answer(sql, database, None)

    def answer(self, sql: str, database: str, frozen: Tables | None) -> str:
        kind = self._kind(sql)
        self._guard(kind)
        target = self._target(kind, sql, database)
        self.log.append(f"{kind} {target}")
        fault = self.faults.take(kind, target)
        if fault is not None:
            _act(fault)
            if fault.error is None and not fault.sigint:
                self._failed_query(sql, database, fault.exit_code, fault.stderr)
        with self._lock:
            try:
                return self._answer(kind, sql, database, frozen)
            except _SqlError as exc:
                self._failed_query(sql, database, 1, f"ERROR:  {exc}")
        raise AssertionError("unreachable")

    def snapshot_step(self, sql: str) -> None:
        """BEGIN and the export, in a snapshot session: guarded and scriptable as queries."""
        kind = self._kind(sql)
        self._guard(kind)
        self.log.append(f"{kind} {self.database}")
        fault = self.faults.take(kind, self.database)
        if fault is not None:
            _act(fault)
            if fault.error is None and not fault.sigint:
                self._failed_query(sql, self.database, fault.exit_code, fault.stderr)

    def _failed_query(self, sql: str, database: str, code: int | None, stderr: str) -> None:
        result = ExecResult(pg.psql_query(self.user, database, sql), code, b"", stderr, None)
        self.check(result, "a query in the db container", "Check `recoverctl logs db`.")

    def _guard(self, what: str) -> None:
        """The engine must answer and the db container run, as for a real exec."""
        engine = self.fake_engine
        if engine.unreachable:
            raise EngineError(
                f"Lost the Docker engine while trying to start {what} in {self.container.name}: "
                "[Errno 111] Connection refused",
                ENGINE_HINT,
            )
        if self.container.status != "running":
            raise EngineError(
                f"Docker engine refused to start {what} in {self.container.name}: "
                f"container {self.container.id} is not running",
                code=ErrorCode.ENGINE_REFUSED,
            )

    @staticmethod
    def _kind(sql: str) -> str:
        if sql in FIXED_SQL:
            return FIXED_SQL[sql]
        for prefix, kind in PREFIXED_SQL:
            if sql.startswith(prefix):
                return kind
        raise AssertionError(f"FakeDb does not know this statement: {sql!r}")

    @staticmethod
    def _target(kind: str, sql: str, database: str) -> str:
        if kind in ("create", "drop", "rename", "swap"):
            return _names(sql)[0]
        if kind == "create_loader":
            return _names(sql)[1]
        if kind == "terminate":
            return _literals(sql)[0]
        return database

    def _tables(self, database: str, frozen: Tables | None) -> Tables:
        if frozen is not None:
            return frozen
        if database not in self.databases:
            raise _SqlError(f'database "{database}" does not exist')  # as FATAL, in fact
        return self.databases[database]

    def _answer(self, kind: str, sql: str, database: str, frozen: Tables | None) -> str:
        dbs = self.databases
        if kind == "server_version":
            return SERVER_VERSION + "\n"
        if kind == "roles":
            return "".join(f"{r}\n" for r in sorted({self.user, "pg_database_owner"}))
        if kind == "inheritance_parents":
            return "".join(t + "\n" for t in sorted(self.parents))
        if kind == "list_tables":
            return "".join(t + "\n" for t in sorted(self._tables(database, frozen)))
        if kind == "count_rows":
            tables = self._tables(database, frozen)
            out = []
            for name, quoted in re.findall(
                r"SELECT '([^']*)', \(SELECT pg_catalog\.count\(\*\) FROM ([^)]*)\)", sql
            ):
                if quoted not in tables:
                    raise _SqlError(f'relation "{quoted}" does not exist')
                out.append(f"{name}\t{len(tables[quoted])}\n")
            return "".join(out)
        if kind == "has_migrations":
            return "t\n" if "public.django_migrations" in self._tables(database, frozen) else "f\n"
        if kind == "migrations":
            latest: dict[str, str] = {}
            for row in self._tables(database, frozen).get("public.django_migrations", []):
                app, name = row.split("\t", 1)
                latest[app] = name
            return "".join(f"{a}\t{n}\n" for a, n in sorted(latest.items()))
        if kind == "estimate":
            tables = self._tables(database, frozen)
            return f"{len(tables)}\t{sum(len(r) for r in tables.values())}\n"
        if kind == "counts_beside_dump":
            return ""
        if kind == "checkpoint":
            return ""
        if kind == "create_loader":
            role, database = _names(sql)[0], _names(sql)[1]
            if database not in dbs:
                raise _SqlError(f'database "{database}" does not exist')
            self.loaders[role] = database
            return ""
        if kind == "contain_loader":
            role, database = _names(sql)[0], _names(sql)[2]
            if self.loaders.get(role) != database:
                raise _SqlError(f'role "{role}" does not own "{database}"')
            self.contained.append(role)
            return ""
        if kind == "release_loader":
            role = _names(sql)[0]
            if self.loaders.get(role) != database:
                raise _SqlError(f'role "{role}" owns nothing in "{database}"')
            self.released.append(role)
            return ""
        if kind == "drop_loader":
            self.loaders.pop(_names(sql)[0], None)
            return ""
        if kind == "analyze":
            self._tables(database, frozen)
            return ""
        if kind == "create":
            (name,) = _names(sql)
            if name in dbs:
                raise _SqlError(f'database "{name}" already exists')
            dbs[name] = {}
            return ""
        if kind == "drop":
            (name,) = _names(sql)
            dbs.pop(name, None)
            return ""
        if kind == "terminate":
            (name,) = _literals(sql)
            listed = self.lingering.get(name, 0)
            self.lingering[name] = max(0, listed - 1)
            return f"{listed}\n"
        if kind in ("swap", "rename"):
            pairs = list(zip(_names(sql)[::2], _names(sql)[1::2], strict=True))
            staged = dict(dbs)
            for old, new in pairs:  # one transaction: all renames or none
                if old in self.reconnecting:
                    raise _SqlError(IN_USE_STDERR.format(db=old).removeprefix("ERROR:  "))
                if old not in staged:
                    raise _SqlError(f'database "{old}" does not exist')
                if new in staged:
                    raise _SqlError(f'database "{new}" already exists')
                staged[new] = staged.pop(old)
            dbs.clear()
            dbs.update(staged)
            return ""
        if kind == "databases_like":
            (prefix,) = _literals(sql)
            return "".join(n + "\n" for n in sorted(dbs) if n.startswith(prefix))
        if kind == "related":
            lits = _literals(sql)
            me, prefixes = lits[0], lits[2:]
            rows = []
            for n in sorted(dbs):
                if n == me:
                    rows.append(f"{n}\t{sum(len(r) for r in dbs[n].values()) * 100 + 8000}\n")
                elif any(n.startswith(p) for p in prefixes):
                    rows.append(f"{n}\t\n")
            return "".join(rows)
        raise AssertionError(f"{kind} outside a snapshot session")

    # --- commands ---

    def run(
        self,
        argv: Argv,
        *,
        stdin: Iterable[bytes] | None = None,
        on_stdout: Callable[[bytes], None] | None = None,
    ) -> ExecResult:
        piped = argv[0] == "sh"  # pg.pg_restore_counted: the archive through psql, in one line
        counted = piped or "--echo-queries" in argv  # every load
        one_transaction = "--single-transaction" in " ".join(argv)
        if piped:
            argv = ("pg_restore", "--dbname", _counted_target(argv[2]), "<counted>")
        kind = self._run_kind(argv)
        self._guard(argv[0])
        target = _arg(argv, "--dbname") or ""
        self.log.append(f"{kind} {target}".rstrip())
        if counted:
            self.loads.append((target, one_transaction))
        fault = self.faults.take(kind, target or None)
        if kind == "pg_dump":
            return self._pg_dump(argv, target, fault, on_stdout)
        if kind == "psql_version":
            if fault is not None:
                _act(fault)
                return ExecResult(argv, fault.exit_code, b"", fault.stderr, None)
            return ExecResult(argv, 0, f"psql (PostgreSQL) {self.psql}\n".encode(), "", None)
        assert stdin is not None, f"{kind} reads its input from stdin"
        result = self._load(kind, argv, target, stdin, fault)
        echoed = self._echoed(kind, target) if counted and result.ok else b""
        if piped and result.exit_code == 1 and result.stderr_tail.startswith("pg_restore:"):
            # dash has no pipefail: the pipe ends as psql does, which went through with the
            # part pg_restore sent; only the line written after the archive is missing.
            echoed = self._echoed(kind, target).replace(pg.ARCHIVE_WHOLE.encode() + b"\n", b"")
            result = dataclasses.replace(result, exit_code=0)
        if echoed and on_stdout is None:
            return dataclasses.replace(result, stdout=echoed)
        for i in range(0, len(echoed), 7):  # frames cut lines anywhere
            assert on_stdout is not None
            on_stdout(echoed[i : i + 7])
        return result

    def _echoed(self, kind: str, database: str) -> bytes:
        """What psql --echo-queries prints of a load: each table's COPY and its tag (and,
        for an archive, the line pg.pg_restore_counted adds after it)."""
        lines = []
        for table, rows in sorted((self._into(database) or {}).items()):
            lines += [f"COPY {table} (id) FROM stdin;", f"COPY {len(rows)}"]
        if kind == "pg_restore_into":
            lines.append(pg.ARCHIVE_WHOLE)
        return ("\n".join(lines) + "\n").encode()

    @staticmethod
    def _run_kind(argv: Argv) -> str:
        if argv[0] == "psql" and "--version" in argv:
            return "psql_version"
        if argv[0] == "pg_dump":
            return "pg_dump"
        if argv[0] == "pg_restore":
            if "--list" in argv:
                return "pg_restore_list"
            if "--file=/dev/null" in argv:
                return "pg_restore_to_null"
            return "pg_restore_into"
        if argv[0] == "psql" and "--echo-queries" in argv:
            return "psql_script"
        raise AssertionError(f"FakeDb does not know this command: {argv}")

    def _pg_dump(
        self,
        argv: Argv,
        database: str,
        fault: Fault | None,
        on_stdout: Callable[[bytes], None] | None,
    ) -> ExecResult:
        assert on_stdout is not None
        snapshot = _arg(argv, "--snapshot")
        with self._lock:
            if snapshot is not None:
                if snapshot not in self.snapshots:
                    return ExecResult(
                        argv, 1, b"", 'pg_dump: error: invalid snapshot identifier: "x"', None
                    )
                tables = copy.deepcopy(self.snapshots[snapshot])
            elif database in self.databases:
                tables = copy.deepcopy(self.databases[database])
            else:
                return ExecResult(
                    argv,
                    1,
                    b"",
                    f'pg_dump: error: FATAL:  database "{database}" does not exist',
                    None,
                )
        fmt = _arg(argv, "--format")
        data = custom_dump(tables, database) if fmt == "custom" else plain_dump(tables)
        if fmt == "plain":
            data = gzip.compress(data, compresslevel=pg.DUMP_COMPRESSION)
        if fault is not None and fault.output is not None:
            data = fault.output
        if fault is not None and fault.cut is not None:
            data = data[: fault.cut]
        for i in range(0, len(data), 4096):  # the engine's frames
            on_stdout(data[i : i + 4096])
        if fault is not None:
            _act(fault)
            return ExecResult(argv, fault.exit_code, b"", fault.stderr, None)
        return ExecResult(argv, 0, b"", "", None)

    def _load(
        self, kind: str, argv: Argv, database: str, stdin: Iterable[bytes], fault: Fault | None
    ) -> ExecResult:
        """pg_restore or psql reading a dump from stdin; a fault stops it after `cut` bytes."""
        limit = fault.cut if fault is not None and fault.cut is not None else None
        data = bytearray()
        stopped = False
        for chunk in stdin:
            data += chunk
            if limit is not None and len(data) >= limit:
                del data[limit:]
                stopped = True  # the command stopped reading: the sender sees a broken pipe
                break
        stdin_error = "Broken pipe" if stopped else None
        if fault is not None:
            _act(fault)
        # What was read is loaded (a failed load leaves its part behind, as the tools do).
        code, stdout, stderr = self._load_bytes(kind, database, bytes(data))
        if fault is not None and fault.exit_code != 0:
            return ExecResult(argv, fault.exit_code, b"", fault.stderr, stdin_error)
        return ExecResult(argv, code, stdout, stderr, stdin_error)

    def _load_bytes(self, kind: str, database: str, data: bytes) -> tuple[int | None, bytes, str]:
        tool = "pg_restore" if kind.startswith("pg_restore") else "psql"
        if kind == "psql_script":
            into = self._into(database)
            if into is None:
                return 2, b"", f'psql: error: FATAL:  database "{database}" does not exist'
            if not data.startswith(b"\\restrict "):
                raise AssertionError("a load must start in psql's restricted mode")
            try:
                with self._lock:
                    _load_copy(iter(data.decode().splitlines()), into)
            except ValueError as exc:
                return 3, b"", f"psql:<stdin>:5: error: {exc}"
            except _Cut as exc:
                return 3, b"", f"psql:<stdin>: ERROR:  {exc}"
            return 0, b"", ""
        try:
            body = _archive_body(data)
        except ValueError as exc:
            return 1, b"", f"{tool}: error: {exc}"
        except _Cut as exc:
            return 1, b"", f"{tool}: error: {exc}"
        if kind == "pg_restore_list":
            toc = data[data.find(b"\n@@TOC\n") + 7 : data.find(b"@@DATA\n")]
            return 0, b";\n; Archive created by fake\n;\n" + toc, ""
        whole = body.endswith(b"@@END\n")
        if kind == "pg_restore_to_null":
            return (
                (0, b"", "")
                if whole
                else (1, b"", "pg_restore: error: could not read from input file: end of file")
            )
        into = self._into(database)
        if into is None:
            return (
                1,
                b"",
                f'pg_restore: error: connection to server failed: FATAL:  database "{database}" does not exist',
            )
        try:
            with self._lock:
                _load_copy(iter(body.decode().splitlines()), into)
        except _Cut:
            whole = False
        if not whole:
            return 1, b"", "pg_restore: error: could not read from input file: end of file"
        return 0, b"", ""

    def _into(self, database: str) -> Tables | None:
        with self._lock:
            return self.databases.get(database)


class _SqlError(Exception):
    pass


class FakeSnapshot(SnapshotSession):
    """One REPEATABLE READ transaction: a frozen copy, exported under an id for pg_dump."""

    db: FakeDb

    def __init__(self, db: FakeDb):
        super().__init__(db)
        self.id: str | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.id is not None:
            self.db.snapshots.pop(self.id, None)

    def export(self) -> str:
        self.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        self.id = self.query("SELECT pg_export_snapshot()").strip()
        return self.id

    def query(self, sql: str, database: str | None = None) -> str:
        db = self.db
        if sql.startswith("BEGIN ISOLATION") or sql == "SELECT pg_export_snapshot()":
            db.snapshot_step(sql)
            if sql.startswith("BEGIN"):
                return ""
            sid = f"00000003-0000001B-{len(db.snapshots) + 1}"
            with db._lock:
                db.snapshots[sid] = copy.deepcopy(db.databases[db.database])
            return sid + "\n"
        assert self.id is not None, "a snapshot session queries after its export"
        return db.answer(sql, db.database, db.snapshots[self.id])


def load_skips_copy_of(monkeypatch: pytest.MonkeyPatch, db: FakeDb, table: str) -> None:
    """The load's echo as if it had not copied into TABLE (a partitioned table's parent, a
    table whose data is not in the dump): its COPY statement and tag are left out."""
    real = db._echoed

    def echoed(kind: str, database: str) -> bytes:
        lines: list[str] = []
        skip_tag = False
        for line in real(kind, database).decode().splitlines():
            if line.startswith(f"COPY {table} "):
                skip_tag = True
            elif skip_tag:
                skip_tag = False
            else:
                lines.append(line)
        return ("\n".join(lines) + "\n").encode()

    monkeypatch.setattr(db, "_echoed", echoed)


def in_use(database: str) -> str:
    """PostgreSQL's stderr when a database has other sessions (SQLSTATE 55006)."""
    return IN_USE_STDERR.format(db=database)


def _counted_target(script: str) -> str:
    """The --dbname of the psql in pg.pg_restore_counted's shell line."""
    words = shlex.split(script.split("|", 1)[1])
    return words[words.index("--dbname") + 1]
