"""In-memory stand-ins for the Docker engine and the db container's PostgreSQL, for fast
unit tests of the actions (the e2e tests run the real ones).

They model just enough to be honest:

- FakeDb: databases (name -> table -> rows), each row an opaque line, as in a COPY block.
  pg_dump writes a dump of them that dumpcheck accepts (a custom archive's real header, or
  a plain dump's header, \\restrict pair and trailer), pg_restore and psql load such a dump
  back, row by row; a load of a cut file stops where the bytes stop, as the real tools do.
  A snapshot session freezes a copy, and pg_dump --snapshot dumps that copy.
  Queries answer the exact SQL of core/pg.py and nothing else: an unknown statement fails
  the test. A failing query fails the way Db.query does (through the real Db.check, so its
  ErrorCode comes from the real classifier: DB_IN_USE only from PostgreSQL's wording).
- FakeEngine: containers (real docker Container objects over attrs dicts) with compose
  labels, running or stopped, healthy or not; stop, start, reload, logs, version.
- Scripted failures at named points (Fault): a query or command of a given kind, for a given
  database, after letting some calls through, a number of times. A fault either raises
  (CommandFailed, EngineError, KeyboardInterrupt, ...), sends Ctrl-C for real (SIGINT, so
  that signals.deferred is exercised), or makes a command exit non-zero with a stderr,
  optionally after `cut` bytes of its output (pg_dump) or input (pg_restore, psql).
  Unknown kinds raise at once: a misspelled fault would otherwise never fire.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import gzip
import hashlib
import json
import re
import shlex
import signal
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import pytest
from docker.models.containers import Container

from recoverctl import __version__
from recoverctl.adapters import compose, process
from recoverctl.adapters.engine import ENGINE_HINT, PROJECT_LABEL, SERVICE_LABEL, Engine
from recoverctl.adapters.pgexec import Db, ExecResult, SnapshotSession
from recoverctl.core import naming, pg
from recoverctl.core.commands import Argv
from recoverctl.core.manifest import Manifest
from recoverctl.errors import EngineError, ErrorCode
from recoverctl.services.session import StackSession
from recoverctl.settings import Settings

Tables = dict[str, list[str]]  # "public.auth_user" -> rows (one line each, as in COPY)
PROJECT = "vault-dev"
SERVER_VERSION = "16.4 (Debian 16.4-1.pgdg120+2)"
PG_DUMP_VERSION = "16.4 (Debian 16.4-1.pgdg120+2)"
RESTRICT_KEY = "Xq3ZkVb1rT"

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
IN_USE_STDERR = (
    'ERROR:  database "{db}" is being accessed by other users\n'
    "DETAIL:  There is 1 other session using the database."
)


# --- scripted failures -------------------------------------------------------------------


@dataclass
class Fault:
    kind: str
    database: str | None = None  # only calls aimed at this database
    error: BaseException | None = None  # raised
    sigint: bool = False  # Ctrl-C for real: SIGINT to this process (main thread only)
    exit_code: int | None = 1  # else: the command exits so (None: the container stopped)
    stderr: str = ""
    cut: int | None = None  # bytes of output (pg_dump) or input (loads) before failing
    output: bytes | None = None  # pg_dump writes these bytes instead of its dump
    after: int = 0  # matching calls let through first
    times: int | None = 1  # matching calls that fail; None: all of them
    seen: int = 0
    fired: int = 0


class Faults:
    def __init__(self, kinds: frozenset[str]):
        self.kinds = kinds
        self.items: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        if fault.kind not in self.kinds:
            raise ValueError(f"no point {fault.kind!r}; known: {', '.join(sorted(self.kinds))}")
        self.items.append(fault)
        return fault

    def take(self, kind: str, database: str | None = None) -> Fault | None:
        with self._lock:
            for f in self.items:
                if f.kind != kind or (f.database is not None and f.database != database):
                    continue
                f.seen += 1
                if f.seen <= f.after or (f.times is not None and f.fired >= f.times):
                    continue
                f.fired += 1
                return f
        return None


def _act(fault: Fault) -> None:
    """A fault's exception or Ctrl-C; exit-code faults are the caller's to apply."""
    if fault.sigint:
        signal.raise_signal(signal.SIGINT)
    if fault.error is not None:
        raise fault.error


# --- dumps as bytes ------------------------------------------------------------------------


def _int(value: int) -> bytes:
    return bytes([0]) + value.to_bytes(4, "little")


def _str(text: str) -> bytes:
    return _int(len(text.encode())) + text.encode()


def custom_header(database: str = "vault", pg_dump: str = PG_DUMP_VERSION) -> bytes:
    """The header pg_dump's WriteHead() writes for archive version 1.15 (PostgreSQL 16)."""
    head = b"PGDMP" + bytes([1, 15, 0, 4, 8, 1]) + bytes([1])  # versions, sizes, gzip
    head += b"".join(_int(v) for v in (1, 2, 3, 24, 10, 124, 0))  # creation time
    return head + _str(database) + _str(SERVER_VERSION) + _str(pg_dump)


def _copy_blocks(tables: Tables) -> bytes:
    out = bytearray()
    for name in sorted(tables):
        out += f"CREATE TABLE {name} (line text);\n".encode()
        out += f"COPY {name} (line) FROM stdin;\n".encode()
        for row in tables[name]:
            out += row.encode() + b"\n"
        out += b"\\.\n\n"
    return bytes(out)


def custom_dump(tables: Tables, database: str = "vault", pg_dump: str = PG_DUMP_VERSION) -> bytes:
    """A custom archive: the real header and an empty real table of contents, then the
    fake's own table of contents and the data blocks."""
    toc = b"".join(
        f"{i};{len(tables[n])} TABLE DATA {n}\n".encode() for i, n in enumerate(sorted(tables), 1)
    )
    return (
        custom_header(database, pg_dump)
        + bytes(5)  # the real table of contents' entry count: none (core/grants reads it)
        + b"\n@@TOC\n"
        + toc
        + b"@@DATA\n"
        + _copy_blocks(tables)
        + b"@@END\n"
    )


def plain_dump(
    tables: Tables, *, pg_dump: str | None = PG_DUMP_VERSION, key: str = RESTRICT_KEY
) -> bytes:
    """A plain dump as pg_dump 16.10+ writes it: header, \\restrict, data, trailer, \\unrestrict."""
    by = f"-- Dumped by pg_dump version {pg_dump}\n" if pg_dump else ""
    return (
        b"--\n-- PostgreSQL database dump\n--\n\n"
        + f"\\restrict {key}\n\n".encode()
        + f"-- Dumped from database version {SERVER_VERSION}\n{by}\n".encode()
        + _copy_blocks(tables)
        + b"--\n-- PostgreSQL database dump complete\n--\n\n"
        + f"\\unrestrict {key}\n\n".encode()
    )


class _Cut(Exception):
    """The input ended in the middle: what was loaded so far stays loaded."""


def _load_copy(lines: Iterator[str], into: Tables) -> None:
    """As psql runs a script: a first `\\restrict KEY` puts it in restricted mode, where
    every meta-command but `\\unrestrict KEY` is refused (and a second \\restrict too)."""
    key: str | None = None
    for line in lines:
        if line.startswith("\\"):
            word, _, arg = line.partition(" ")
            if key is None and word == "\\restrict":
                key = arg.strip()
            elif key is not None and word == "\\unrestrict" and arg.strip() == key:
                key = None
            elif key is not None:
                raise ValueError("backslash commands are restricted; only \\unrestrict is allowed")
            continue
        m = re.match(r"^CREATE TABLE (\S+) ", line)
        if m:
            into.setdefault(m.group(1), [])
            continue
        m = re.match(r"^COPY (\S+) \(line\) FROM stdin;$", line)
        if not m:
            continue
        rows = into.setdefault(m.group(1), [])
        for row in lines:
            if row == "\\.":
                break
            rows.append(row)
        else:
            raise _Cut("unexpected end of COPY data")


def _archive_body(data: bytes) -> bytes:
    """The custom archive's data part, or _Cut/ValueError when the archive is not whole."""
    if not data.startswith(b"PGDMP"):
        raise ValueError("input file does not appear to be a valid archive")
    start = data.find(b"\n@@DATA\n")
    if data.find(b"\n@@TOC\n") < 0 or start < 0:
        raise _Cut("could not read from input file: end of file")
    return data[start + len(b"\n@@DATA\n") :]


def parse_dump(data: bytes) -> Tables:
    """What a load of these bytes puts in a database (for assertions)."""
    tables: Tables = {}
    body = _archive_body(data) if data.startswith(b"PGDMP") else data
    _load_copy(iter(body.decode().splitlines()), tables)
    return tables


# --- the engine ----------------------------------------------------------------------------


def _container(
    project: str, service: str, index: int, *, status: str, health: str | None
) -> Container:
    name = f"{project}-{service}-1" if index == 1 else f"{project}-{service}-{index}"
    attrs: dict[str, Any] = {
        "Id": hashlib.sha256(name.encode()).hexdigest(),
        "Name": "/" + name,
        "State": {
            "Status": status,
            "ExitCode": 0,
            **({"Health": {"Status": health}} if health else {}),
        },
        "Config": {
            "Labels": {PROJECT_LABEL: project, SERVICE_LABEL: service},
            "Env": [],
            "User": "",
        },
        "NetworkSettings": {"Ports": {}},
    }
    return Container(attrs=attrs)


class FakeEngine(Engine):
    """The engine's public API over a list of containers; every call is logged in calls."""

    def __init__(self, project: str = PROJECT):
        # No SDK client: every method that would use one is replaced here.
        self.project = project
        self.all: list[Container] = []
        self.calls: list[str] = []
        self.faults = Faults(ENGINE_KINDS)
        self.unreachable = False
        self.crashes: dict[str, int] = {}  # service -> starts that end in a crash
        self.warming: dict[str, int] = {}  # service -> status reads it stays "starting"
        self.log_lines: dict[str, str] = {}  # container name -> its log
        self._lock = threading.RLock()

    # --- set-up and inspection for tests ---

    def add(
        self,
        service: str,
        *,
        status: str = "running",
        health: str | None = "healthy",
        port: int | None = None,
    ) -> Container:
        index = 1 + sum(1 for c in self.all if c.labels.get(SERVICE_LABEL) == service)
        c = _container(self.project, service, index, status=status, health=health)
        if port is not None:
            c.attrs["NetworkSettings"]["Ports"] = {
                "8000/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
            }
        self.all.append(c)
        return c

    def unpublish(self, service: str) -> None:
        """No published port: readiness is then the engine's word (or an exec'd check)."""
        for c in self.of(service):
            c.attrs["NetworkSettings"]["Ports"] = {}

    def of(self, service: str) -> list[Container]:
        return [c for c in self.all if c.labels.get(SERVICE_LABEL) == service]

    def fail(
        self, kind: str, error: BaseException, *, after: int = 0, times: int | None = 1
    ) -> Fault:
        return self.faults.add(Fault(kind, error=error, after=after, times=times))

    def crash_on_start(self, service: str, times: int = 1, log: str = "") -> None:
        """The next starts of service end at once (exit 1), as an app that cannot migrate."""
        self.crashes[service] = times
        for c in self.of(service):
            self.log_lines[str(c.name)] = log

    def up(self) -> None:
        """What `docker compose up` leaves: every container running (and healthy), but
        those set to crash."""
        with self._lock:
            for c in self.all:
                if c.status != "running":
                    self.calls.append(f"up {c.name}")
                    self._start(c)

    # --- the public API ---

    def _enter(self, kind: str, what: str) -> None:
        self.calls.append(f"{kind} {what}".rstrip())
        if self.unreachable:
            raise engine_lost(f"{kind} {what}".rstrip())
        fault = self.faults.take(kind)
        if fault is not None:
            _act(fault)

    def _set(self, c: Container, status: str, exit_code: int = 0) -> None:
        state = c.attrs["State"]
        state["Status"] = status
        state["ExitCode"] = exit_code
        if "Health" in state:
            service = c.labels[SERVICE_LABEL]
            starting = status == "running" and self.warming.get(service, 0) > 0
            state["Health"]["Status"] = "starting" if starting else "healthy"

    def containers(self, project: str, service: str | None = None) -> list[Container]:
        self._enter("containers", service or "")
        with self._lock:
            found = [
                c
                for c in self.all
                if c.labels.get(PROJECT_LABEL) == project
                and (service is None or c.labels.get(SERVICE_LABEL) == service)
            ]
            for c in found:  # a starting service turns healthy after a few looks
                name = c.labels[SERVICE_LABEL]
                health = c.attrs["State"].get("Health")
                if health and health["Status"] == "starting" and self.warming.get(name, 0) > 0:
                    self.warming[name] -= 1
                    if self.warming[name] == 0:
                        health["Status"] = "healthy"
            return list(found)

    def stop(self, container: Container, timeout: int = 30) -> None:
        self._enter("stop", str(container.name))
        with self._lock:
            self._set(container, "exited")

    def start(self, container: Container) -> None:
        self._enter("start", str(container.name))
        with self._lock:
            self._start(container)

    def _start(self, container: Container) -> None:
        service = container.labels[SERVICE_LABEL]
        if self.crashes.get(service, 0) > 0:
            self.crashes[service] -= 1
            self._set(container, "exited", exit_code=1)
        else:
            self._set(container, "running")

    def restart(self, container: Container, timeout: int = 30) -> None:
        self.stop(container, timeout)
        self.start(container)

    def reload(self, container: Container) -> None:
        self._enter("reload", str(container.name))

    def logs(self, container: Container, *, tail: int | str = "all", follow: bool = False) -> Any:
        self._enter("logs", str(container.name))
        lines = self.log_lines.get(str(container.name), "").splitlines()
        if isinstance(tail, int):
            lines = lines[-tail:]
        return "".join(line + "\n" for line in lines).encode()

    def version(self) -> dict[str, Any]:
        self._enter("version", "")
        return {"Version": "27.3.1", "ApiVersion": "1.47"}

    def exec_open(
        self, container: Container, argv: Sequence[str], *, stdin: bool, user: str = ""
    ) -> tuple[str, socket.socket]:
        raise AssertionError(f"the fakes never exec for real: {argv[0]}")

    def exec_exit_code(self, exec_id: str, wait: float = 15) -> int | None:
        raise AssertionError("the fakes never exec for real")


# --- the database --------------------------------------------------------------------------


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
        fixed = {
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
        if sql in fixed:
            return fixed[sql]
        prefixes = (
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
        for prefix, kind in prefixes:
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


# --- a session and a project on disk -------------------------------------------------------


class FakeSession(StackSession):
    """The real session (settings, compose file, secrets), over the fake engine and db."""

    def __init__(
        self,
        settings: Settings,
        engine: FakeEngine,
        db: FakeDb,
        *,
        connect: Callable[[], Engine] | None = None,
    ):
        super().__init__(settings, connect=connect or (lambda: engine))
        self.fake_db = db

    def db(self) -> Db:
        if self._db is None:
            project = self.project  # as the real one: a broken compose file comes first
            self.engine.service_container(project, "db")  # no container, or not running
            self._db = self.fake_db
        return self._db


COMPOSE_YML = """\
name: vault-dev
services:
  db:
    image: postgres:16
  backend:
    image: vault-backend
    depends_on:
      db:
        condition: service_healthy
  frontend:
    image: vault-frontend
    depends_on: [backend]
"""
ENV_SECRET = "s3cret-Pa55word-xyz"
ENV_FILE = f"""\
POSTGRES_DB=vault
POSTGRES_USER=vault
POSTGRES_PASSWORD={ENV_SECRET}
DJANGO_SECRET_KEY=django-insecure-0123456789abcdef
DEBUG=1
"""


def app_tables(users: int = 2, secrets: int = 3) -> Tables:
    """The vault's tables, small."""
    return {
        "public.auth_user": [f"{i}\tuser{i}" for i in range(1, users + 1)],
        "public.vault_userkey": [f"{i}\tkey-of-{i}" for i in range(1, users + 1)],
        "public.vault_secret": [f"{i}\tciphertext-{i}" for i in range(1, secrets + 1)],
        "public.django_migrations": ["auth\t0012_alter_user_first_name", "vault\t0003_secret"],
    }


class FakeClock:
    """time for a module that waits: sleep() advances monotonic() instead of waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass
class FakeStack:
    settings: Settings
    engine: FakeEngine
    db: FakeDb
    clock: FakeClock
    compose_runs: list[Argv] = field(default_factory=list)
    compose_error: BaseException | None = None

    def session(self, *, connect: Callable[[], Engine] | None = None) -> FakeSession:
        return FakeSession(self.settings, self.engine, self.db, connect=connect)

    @property
    def backups(self) -> Path:
        return self.settings.backup_dir

    def files(self) -> list[str]:
        """The backups folder's entries, sorted."""
        if not self.backups.is_dir():
            return []
        return sorted(p.name for p in self.backups.iterdir())

    def app_states(self) -> dict[str, str]:
        return {
            s: self.engine.of(s)[0].status for s in ("backend", "frontend") if self.engine.of(s)
        }


def make_stack(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tables: Tables | None = None,
    *,
    up_timeout: float = 30,
    psql: str = "16.10",
    database: str = "vault",
) -> FakeStack:
    """A project folder (compose file, env file, backups folder), the fake engine with db,
    backend and frontend running, the lock folder in tmp_path, and the waits of restore and
    stack on a fake clock. tables=None: the live database does not exist."""
    from recoverctl.adapters import http
    from recoverctl.services import restore as restore_service
    from recoverctl.services import stack as stack_service

    root = tmp_path / "project"
    root.mkdir()
    (root / "docker-compose.dev.yml").write_text(COMPOSE_YML)
    (root / ".env").write_text(ENV_FILE)
    settings = Settings(
        project_dir=root,
        compose_file=root / "docker-compose.dev.yml",
        env_file=root / ".env",
        backup_dir=root / "backups",
        up_timeout=timedelta(seconds=up_timeout),
    )
    monkeypatch.setenv("RECOVERCTL_LOCK_DIR", str(tmp_path / "run"))
    clock = FakeClock()
    monkeypatch.setattr(restore_service, "time", clock)
    monkeypatch.setattr(stack_service, "time", clock)
    engine = FakeEngine()
    db = FakeDb(engine, tables, database=database, psql=psql)
    engine.add("backend", port=18000)
    engine.add("frontend", health=None)
    stack = FakeStack(settings, engine, db, clock)

    def healthz(port: int, path: str, timeout: float = 10) -> http.Reply:
        backend = engine.of("backend")
        return http.Reply(200 if backend and backend[0].status == "running" else 0, "")

    real_run = process.run

    def run(argv: Sequence[str], **kwargs: Any) -> process.Completed:
        if tuple(argv[:2]) != ("docker", "compose"):
            return real_run(argv, **kwargs)  # git and the like run for real
        stack.compose_runs.append(tuple(argv))
        assert "up" in argv, f"only compose up is faked: {argv}"
        if stack.compose_error is not None:
            raise stack.compose_error
        engine.up()
        return process.Completed(tuple(argv), 0, "", "")

    monkeypatch.setattr(http, "get", healthz)
    monkeypatch.setattr(compose, "detect_cli", lambda: ("docker", "compose"))
    monkeypatch.setattr(process, "run", run)
    return stack


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


def write_backup(
    folder: Path,
    contents: Tables,
    fmt: naming.Format = "custom",
    *,
    when: datetime | None = None,
    stack: str = "dev",
    manifest: bool = True,
    data: bytes | None = None,
    **overrides: Any,
) -> Path:
    """A backup file as `recoverctl backup` leaves it (its bytes may be given), with its
    manifest (fields may be overridden)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    when = when or datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
    path = folder / naming.backup_name(when, fmt, (p.name for p in folder.iterdir()))
    if data is None:
        data = custom_dump(contents) if fmt == "custom" else plain_dump(contents)
    path.write_bytes(data)
    if manifest:
        fields: dict[str, Any] = {
            "file": path.name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "size": len(data),
            "format": fmt,
            "database": "vault",
            "project": PROJECT,
            "stack": stack,
            "server_version": SERVER_VERSION,
            "pg_dump_version": PG_DUMP_VERSION,
            "tables": {t: len(r) for t, r in contents.items()},
            "migrations": {},
            "started_at": when,
            "duration_seconds": 0.5,
            "recoverctl_version": __version__,
        }
        fields.update(overrides)
        m = Manifest.model_validate(fields)
        path.with_name(path.name + ".json").write_text(json.dumps(m.to_json()))
    return path


def in_use(database: str) -> str:
    """PostgreSQL's stderr when a database has other sessions (SQLSTATE 55006)."""
    return IN_USE_STDERR.format(db=database)


def engine_lost(what: str = "list containers") -> EngineError:
    return EngineError(
        f"Lost the Docker engine while trying to {what}: [Errno 111] Connection refused",
        ENGINE_HINT,
    )


def _counted_target(script: str) -> str:
    """The --dbname of the psql in pg.pg_restore_counted's shell line."""
    words = shlex.split(script.split("|", 1)[1])
    return words[words.index("--dbname") + 1]
