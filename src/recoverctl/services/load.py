"""Loading a dump into a database of the db service: the stream in, hashed as it goes, and
the throwaway databases such loads use."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from recoverctl.adapters import fsio
from recoverctl.adapters.pgexec import Db, ExecResult, cause_of
from recoverctl.core import dumpcheck, pg
from recoverctl.core.checks import FAIL, Check
from recoverctl.core.naming import Format
from recoverctl.core.restore_plan import FAILED_TAG, KEEP_TAG, SCRATCH_TAG, name_base

OnBytes = Callable[[int], None]
VERIFY_PREFIX = "recoverctl_verify"
_RESTRICT = re.compile(rb"^\\(?:un)?restrict \S+[ \t]*\r?$")


def _no_progress(_: int) -> None:
    return None


@dataclass(frozen=True)
class Loaded:
    """A restore of the file into a database: its failure, if any, the file's sha256, and
    the rows of each table the load copied into, as the server's COPY tags said."""

    failed: Check | None
    sha256: str
    counts: dict[str, int] = field(default_factory=dict)


def restore_stream(
    db: Db,
    path: Path,
    fmt: Format,
    database: str,
    on_bytes: OnBytes = _no_progress,
    *,
    one_transaction: bool = False,
    psql_restricts: bool | None = None,
) -> Loaded:
    """Restores the file into an existing empty database, hashing the bytes it sends and
    counting the rows the load copies (pg.parse_copy_counts).

    one_transaction, for a throwaway that is counted once and dropped: about 0.2 s faster
    at 6 M rows (no commit per item) but it leaves every row without its hint bits, which
    the first scan sets. A restore keeps a transaction per item, as pg_restore into a
    database does, so its index builds set them during the load, not autovacuum while the
    restored app starts (bench/: its downtime grew 0.15 s otherwise).

    psql_restricts: psql_knows_restrict's answer, when the caller asked it already."""
    if psql_restricts is None and fmt == "sql":
        psql_restricts = psql_knows_restrict(db)
    digest = hashlib.sha256()
    sent = [0]

    def hashed() -> Iterator[bytes]:
        for chunk in fsio.read_chunks(path, on_bytes):
            digest.update(chunk)
            sent[0] += len(chunk)
            yield chunk

    chunks = hashed()
    if fmt == "custom":
        argv = pg.pg_restore_counted(db.user, database, one_transaction=one_transaction)
    else:
        argv = pg.psql_counted_script(db.user, database, one_transaction=one_transaction)
        if not psql_restricts:
            chunks = strip_restrict(chunks)
    echo = Echo()
    result = db.run(argv, stdin=chunks, on_stdout=echo)
    echo.finish()
    # The command may stop reading early (an error, or trailing bytes it ignores): the
    # sha256 then comes from a pass of its own, since it must cover the whole file.
    whole = result.stdin_error is None and sent[0] == path.stat().st_size
    sha256 = digest.hexdigest() if whole else fsio.sha256_file(path)[0]
    piped = fmt == "custom"
    if result.ok and (not piped or echo.ends_with(pg.ARCHIVE_WHOLE)):
        return Loaded(None, sha256, pg.parse_copy_counts(echo.text()))
    # An archive piped into psql: pg_restore's own error says why, before what psql made of
    # the SQL it stopped sending (a COPY "missing data", a COMMIT of a part). psql may have
    # gone through with the part it got: then only the missing end line tells.
    cause = (
        (_archive_error(result.stderr_tail) if piped else None)
        or cause_of(result.stderr_tail)
        or _how_it_ended(result)
    )
    tool = "pg_restore" if piped else "psql"
    return Loaded(Check("restore", FAIL, f"{tool}: {cause}", _HINT), sha256)


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


def all_counts(db: Db, database: str, loaded: Loaded) -> dict[str, int]:
    """Every table's rows as count(*) gives them (the manifest's way): the load's own
    counts, and a count of the tables it did not COPY into (a partitioned table's parent,
    a table whose data was not in the dump) and of those with inheritance children, whose
    COPY holds only their own rows; listed from the database itself."""
    parents = {row[0] for row in pg.parse_rows(db.query(pg.INHERITANCE_PARENTS_SQL, database))}
    counts = {t: n for t, n in loaded.counts.items() if t not in parents}
    rest = [t for t in db.tables(database) if t not in counts]
    if rest:
        counts.update(db.count_rows(database, tables=rest))
    return counts


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


_HINT = "See the lines above; use another backup."


def strip_restrict(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Drops \\restrict and \\unrestrict for a psql older than them.

    pg_dump writes \\restrict as the first line after the header comments and \\unrestrict
    near the end: only the leading comment lines, the first line after them and the last
    TAIL_BYTES are searched (a full scan would cost a pass over every row). Both are read
    as whole lines, wherever the reads happen to cut them."""
    pending = b""
    in_head = True
    for chunk in chunks:
        pending += chunk
        if in_head:
            pending, in_head, head = _strip_head(pending, final=False)
            if head:
                yield head
            if in_head:
                continue
        # Keep the last TAIL_BYTES and the line they start in; send the rest unsearched.
        keep_from = pending.rfind(b"\n", 0, max(0, len(pending) - dumpcheck.TAIL_BYTES)) + 1
        if keep_from:
            yield pending[:keep_from]
            pending = pending[keep_from:]
    if in_head:
        pending, _, head = _strip_head(pending, final=True)
        if head:
            yield head
    lines = pending.split(b"\n")
    tail = b"\n".join(line for line in lines if not _RESTRICT.match(line))
    if tail:
        yield tail


def _strip_head(data: bytes, *, final: bool) -> tuple[bytes, bool, bytes]:
    """Over the complete lines of data (and, when final, the unfinished last one): skips
    header comments and blank lines, then drops the first other line if it is \\restrict.
    Returns (the rest, still in the head, the bytes to send now)."""
    pos = 0
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            if not final or pos >= len(data):
                return data[pos:], True, data[:pos]
            end = len(data)
        line = data[pos:end]
        if line.startswith(b"--") or not line.strip():
            pos = end + 1
            continue
        if _RESTRICT.match(line):
            return data[end + 1 :], False, data[:pos]
        return data[pos:], False, data[:pos]


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
