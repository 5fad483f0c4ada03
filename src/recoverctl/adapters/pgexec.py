"""Commands inside the db container, streamed over the engine's raw exec socket.

exec_run(stream=True) reports no exit code, so every command here is exec_create +
exec_start(socket=True) + exec_inspect. The raw socket also carries stdin, which is how a
dump reaches psql or pg_restore without first being copied into the container.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

from recoverctl.adapters.engine import Engine
from recoverctl.core import pg
from recoverctl.core.commands import Argv
from recoverctl.errors import CommandFailed, EngineError, ErrorCode

if TYPE_CHECKING:
    from docker.models.containers import Container

READ_SIZE = 1 << 20
STDOUT, STDERR = 1, 2
Sink = Callable[[bytes], None]


@dataclass(frozen=True)
class ExecResult:
    argv: Argv
    exit_code: int | None  # None: the engine never saw the command finish
    stdout: bytes  # empty when stdout went to a sink
    stderr_tail: str
    stdin_error: str | None  # the command stopped reading its input early

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class Db:
    """The db service's container, and the user and database its environment names."""

    def __init__(self, engine: Engine, container: Container, user: str, database: str):
        self.engine = engine
        self.container = container
        self.user = user
        self.database = database
        self._session: Session | None = None
        self._session_thread = 0

    @classmethod
    def attach(cls, engine: Engine, container: Container) -> Db:
        env = dict(
            item.split("=", 1) for item in container.attrs["Config"].get("Env") or [] if "=" in item
        )
        user = env.get("POSTGRES_USER") or "postgres"
        # Only the names are kept; the password never leaves the container's environment.
        return cls(engine, container, user, env.get("POSTGRES_DB") or user)

    def run(
        self,
        argv: Argv,
        *,
        stdin: Iterable[bytes] | None = None,
        on_stdout: Sink | None = None,
    ) -> ExecResult:
        return exec_in(
            self.engine, self.container, argv, stdin=stdin, on_stdout=on_stdout, user=self.exec_user
        )

    @property
    def exec_user(self) -> str:
        # The official image runs the server as postgres; exec defaults to the image's user.
        as_root = (self.container.attrs["Config"].get("User") or "root") in ("root", "0", "")
        return "postgres" if as_root else ""

    def check(self, result: ExecResult, what: str, hint: str | None = None) -> ExecResult:
        if result.ok:
            return result
        cause = cause_of(result.stderr_tail)
        code = (
            "no exit code: the container stopped"
            if result.exit_code is None
            else (f"exit {result.exit_code}")
        )
        raise CommandFailed(
            f"{what} failed ({code})" + (f": {cause}" if cause else "."),
            hint,
            code=_classify(result.stderr_tail),
            details=result.stderr_tail or None,
        )

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Within it, this thread's queries share one psql process (other threads still
        get an exec each: one psql session answers one query at a time)."""
        if self._session is not None:
            yield
            return
        self._session, self._session_thread = Session(self), threading.get_ident()
        try:
            yield
        finally:
            session, self._session = self._session, None
            session.close()

    def query(self, sql: str, database: str | None = None) -> str:
        session = self._session
        if session is not None and self._session_thread == threading.get_ident():
            return session.query(sql, database or self.database)
        argv = pg.psql_query(self.user, database or self.database, sql)
        result = self.run(argv)
        self.check(result, "a query in the db container", "Check `recoverctl logs db`.")
        return result.stdout.decode("utf-8", "replace")

    def query_as(self, role: str, sql: str, database: str) -> str:
        """One query as another role (a load's, confined to its database): an exec of its
        own, never the session's psql."""
        result = self.run(pg.psql_query(role, database, sql))
        self.check(result, "a query in the db container", "Check `recoverctl logs db`.")
        return result.stdout.decode("utf-8", "replace")

    def tables(self, database: str | None = None) -> list[str]:
        """The user's tables, as quoted schema-qualified names."""
        return [row[0] for row in pg.parse_rows(self.query(pg.LIST_TABLES_SQL, database))]

    def count_rows(
        self, database: str | None = None, tables: list[str] | None = None
    ) -> dict[str, int]:
        """Exact row counts of every user table, or of these (names as `tables` gives them)."""
        tables = self.tables(database) if tables is None else tables
        return pg.parse_counts(self.query(pg.count_rows_sql(tables), database))

    def snapshot(self) -> SnapshotSession:
        return SnapshotSession(self)

    def version_of(self, argv: Argv) -> pg.PgVersion:
        result = self.check(self.run(argv), f"{argv[0]} --version")
        return pg.parse_version(result.stdout.decode().strip())


def exec_in(
    engine: Engine,
    container: Container,
    argv: Argv,
    *,
    stdin: Iterable[bytes] | None = None,
    on_stdout: Sink | None = None,
    user: str = "",
) -> ExecResult:
    """Runs argv in the container; stdout to on_stdout (or captured), stderr's tail kept."""
    exec_id, raw = engine.exec_open(container, argv, stdin=stdin is not None, user=user)
    captured = bytearray()
    stderr = _Lines()
    stdin_error: list[str] = []
    feeder: threading.Thread | None = None
    if stdin is not None:
        feeder = threading.Thread(
            target=_feed, args=(raw, stdin, stdin_error), name="exec-stdin", daemon=True
        )
        feeder.start()
    try:
        for stream, payload in _frames(raw):
            if stream == STDOUT:
                if on_stdout is not None:
                    on_stdout(payload)
                else:
                    captured += payload
            elif stream == STDERR:
                stderr.add(payload)
    finally:
        _close(raw)
        if feeder is not None:
            feeder.join(timeout=30)
        engine.exec_release(raw)
    return ExecResult(
        argv=argv,
        exit_code=engine.exec_exit_code(exec_id),
        stdout=bytes(captured),
        stderr_tail=stderr.tail(),
        stdin_error=stdin_error[0] if stdin_error else None,
    )


_FIRST_ERROR = re.compile(r"\b(ERROR|FATAL):")


class _Lines:
    """stderr's last lines; frames cut lines anywhere, so the unfinished one waits. The
    first error line and the one after it are kept too when the tail has lost them: a tool
    such as pgBackRest says its cause there, then dumps dozens of lines (an HTTP exchange)
    and ends with hints that are not the cause."""

    def __init__(self, keep: int = 20):
        self.lines: deque[str] = deque(maxlen=keep)
        self.partial = b""
        self.count = 0
        self.first_error: list[str] = []
        self.first_error_at = -1

    def add(self, payload: bytes) -> None:
        parts = (self.partial + payload).split(b"\n")
        self.partial = parts.pop()
        for part in parts:
            line = part.decode("utf-8", "replace")
            if self.first_error_at < 0 and _FIRST_ERROR.search(line):
                self.first_error_at = self.count
            if self.first_error_at >= 0 and self.count - self.first_error_at < 2:
                self.first_error.append(line)
            self.lines.append(line)
            self.count += 1

    def tail(self) -> str:
        rest = [self.partial.decode("utf-8", "replace")] if self.partial else []
        start = self.count - len(self.lines)  # the index of the first line still kept
        head = [ln for i, ln in enumerate(self.first_error, self.first_error_at) if i < start]
        if head and self.first_error_at + len(head) < start:
            head.append("…")
        return "\n".join([*head, *self.lines, *rest]).strip()


# PostgreSQL's own wording for SQLSTATE 55006 (object_in_use) on DROP/ALTER DATABASE: the
# one failure a caller acts on (by retrying), named here so callers branch on a code.
_IN_USE = "is being accessed by other users"


def _classify(stderr: str) -> ErrorCode:
    return ErrorCode.DB_IN_USE if _IN_USE in stderr else ErrorCode.COMMAND_FAILED


def cause_of(stderr: str) -> str | None:
    """The line of a PostgreSQL tool's stderr that says what went wrong."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        for tag in ("ERROR:", "FATAL:", "error:", "fatal:"):
            # A tag with nothing after it says nothing: keep looking.
            if tag in line and line.split(tag, 1)[1].strip():
                return line
    return lines[-1] if lines else None


def _feed(raw: socket.socket, chunks: Iterable[bytes], errors: list[str]) -> None:
    try:
        for chunk in chunks:
            raw.sendall(chunk)
    except OSError as exc:
        # The command exited (or failed) before reading all of its input.
        errors.append(exc.strerror or str(exc))
    except Exception as exc:  # reading the source failed: the command must not see EOF as done
        errors.append(f"reading the input failed: {exc}")
        _close(raw)
        return
    with contextlib.suppress(OSError):
        raw.shutdown(socket.SHUT_WR)


def _frames(raw: socket.socket) -> Iterator[tuple[int, bytes]]:
    """Demultiplexes the engine's stream: 8-byte headers (stream, 0, 0, 0, size BE32)."""
    buf = bytearray()
    chunk = bytearray(READ_SIZE)
    view = memoryview(chunk)
    while True:
        try:
            n = raw.recv_into(view)
        except OSError as exc:
            raise EngineError(f"The engine's stream broke: {exc}") from None
        if n == 0:
            break
        buf += view[:n]
        pos = 0
        end = len(buf)
        while end - pos >= 8:
            size = int.from_bytes(buf[pos + 4 : pos + 8], "big")
            if end - pos - 8 < size:
                break
            yield buf[pos], bytes(buf[pos + 8 : pos + 8 + size])
            pos += 8 + size
        if pos:
            del buf[:pos]


def _close(raw: socket.socket) -> None:
    # shutdown first: close() alone does not wake the stdin feeder blocked in sendall()
    # when the command stopped reading (pg_restore --list reads only the header).
    with contextlib.suppress(OSError):
        raw.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        raw.close()


class Session:
    """One psql process that runs statement after statement, switching databases with
    \\connect: a query costs a round trip on its socket instead of a new exec (a process started in
    the container).

    psql stops at the first error (ON_ERROR_STOP); the error is raised as Db.query raises
    it, and the next query opens a new process."""

    def __init__(self, db: Db, database: str | None = None):
        self.db = db
        self.database = database or db.database
        self._n = 0
        self._exec_id = ""
        self._raw: socket.socket | None = None
        self._frames: Iterator[tuple[int, bytes]] | None = None
        self._stderr = _Lines()
        # A snapshot session is closed by the command while its facts thread may be closing
        # it after a failed query (the db killed mid-backup): the socket is taken under it.
        self._taking = threading.Lock()

    def __enter__(self) -> Self:
        self._open(self.database)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self, database: str) -> None:
        argv = pg.psql_session(self.db.user, database)
        self._exec_id, self._raw = self.db.engine.exec_open(
            self.db.container, argv, stdin=True, user=self.db.exec_user
        )
        self._frames = iter(_frames(self._raw))
        self._stderr = _Lines()
        self.database = database

    def close(self, ending: bytes = b"\\q\n") -> None:
        with self._taking:
            raw, self._raw, self._frames = self._raw, None, None
        if raw is not None:
            with contextlib.suppress(OSError):
                raw.sendall(ending)
            _close(raw)
            self.db.engine.exec_release(raw)

    def query(self, sql: str, database: str | None = None) -> str:
        target = database or self.database
        if self._raw is None:
            self._open(target)
        raw, frames = self._raw, self._frames
        assert raw is not None and frames is not None
        switch = ""
        if target != self.database:
            switch = f"\\connect {pg.quote_literal(target)}\n"
            self.database = target
        self._n += 1
        marker = f"__recoverctl_done_{self._n}__"
        try:
            # If psql already exited, the frames below end and say why.
            with contextlib.suppress(OSError):
                raw.sendall(f"{switch}{sql};\n\\echo {marker}\n".encode())
            out = bytearray()
            for stream, payload in frames:
                if stream == STDERR:
                    self._stderr.add(payload)
                    continue
                out += payload
                if out.endswith(f"{marker}\n".encode()):
                    return out[: -len(marker) - 1].decode("utf-8", "replace")
        except BaseException:
            self.close(b"")  # cut mid-answer (Ctrl-C): this process cannot be trusted again
            raise
        self.close(b"")
        result = ExecResult(
            argv=pg.psql_query(self.db.user, target, sql),
            exit_code=self.db.engine.exec_exit_code(self._exec_id),
            stdout=b"",
            stderr_tail=self._stderr.tail(),
            stdin_error=None,
        )
        if result.ok:  # psql ended cleanly without answering: say so rather than guess
            result = dataclasses.replace(result, exit_code=1)
        self.db.check(result, "a query in the db container", "Check `recoverctl logs db`.")
        raise AssertionError("unreachable: check() raised")


class SnapshotSession(Session):
    """A psql session holding one REPEATABLE READ transaction whose snapshot it exports.

    pg_dump --snapshot=ID sees exactly what this session sees, so the row counts taken
    here describe the dump itself, not the database a moment before or after it.
    """

    def __exit__(self, *exc: object) -> None:
        self.close(b"COMMIT;\n\\q\n")

    def export(self) -> str:
        self.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return self.query("SELECT pg_export_snapshot()").strip()
