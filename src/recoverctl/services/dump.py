"""A dump of the running database, streamed to a file that appears only when whole: the
backup command and restore's safety copy both take theirs here."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recoverctl import __version__, failpoints
from recoverctl.adapters import fsio
from recoverctl.adapters.pgexec import Db, SnapshotSession
from recoverctl.core import dumpcheck, naming, pg
from recoverctl.core.manifest import Manifest
from recoverctl.core.progress import OnBytes
from recoverctl.core.result import JsonResult, meta
from recoverctl.errors import ErrorCode, Interrupted, RecoverctlError
from recoverctl.services.background import Background
from recoverctl.services.catalog import load_manifest
from recoverctl.services.code import code_info
from recoverctl.services.session import StackRef

SHRINK_WARNING = 0.5  # a new backup under half the size of the previous one is suspicious
NOTHING_WRITTEN = "; no backup was written"


def _no_progress(_: int) -> None:
    return None


# What of the manifest a backup's JSON repeats, for a script that needs no second read.
_FROM_MANIFEST = ("sha256", "size", "format", "database", "stack", "tables", "duration_seconds")


@dataclass(frozen=True)
class BackupResult(JsonResult):
    path: Path
    manifest_path: Path = field(metadata=meta(name="manifest"))
    manifest: Manifest = field(metadata=meta(flatten=True, pick=_FROM_MANIFEST))
    warnings: tuple[str, ...] = field(default_factory=tuple)


class _Sink:
    """Writes the dump, hashing and counting as it goes, keeping its head and tail.

    A plain dump arrives gzipped (pg_dump --compress) and is inflated here, so the file,
    its hash and its size are those of the plain SQL the playbook expects."""

    def __init__(self, f: Any, fmt: naming.Format, on_bytes: OnBytes):
        self.f = f
        self.hash = hashlib.sha256()
        self.size = 0
        self.head = bytearray()
        self.recent: deque[bytes] = deque()
        self.recent_size = 0
        self.on_bytes = on_bytes
        self.inflate = zlib.decompressobj(wbits=31) if fmt == "sql" else None

    def __call__(self, chunk: bytes) -> None:
        if self.inflate is not None:
            try:
                chunk = self.inflate.decompress(chunk)
            except zlib.error as exc:
                raise RecoverctlError(
                    f"pg_dump's compressed output is damaged ({exc}).",
                    "Check `recoverctl logs db` and run the backup again.",
                    code=ErrorCode.BACKUP_FAILED,
                ) from None
            if not chunk:
                return
        self.f.write(chunk)
        self.hash.update(chunk)
        self.size += len(chunk)
        if len(self.head) < dumpcheck.HEAD_BYTES:
            self.head += chunk[: dumpcheck.HEAD_BYTES - len(self.head)]
        self.recent.append(chunk)
        self.recent_size += len(chunk)
        while self.recent_size - len(self.recent[0]) >= dumpcheck.TAIL_BYTES:
            self.recent_size -= len(self.recent.popleft())
        self.on_bytes(self.size)

    @property
    def tail(self) -> bytes:
        return b"".join(self.recent)[-dumpcheck.TAIL_BYTES :]

    @property
    def complete(self) -> bool:
        """A gzip stream that ended before its trailer means pg_dump's output was cut."""
        return self.inflate is None or self.inflate.eof


def take_backup(
    db: Db, ref: StackRef, out: Path, fmt: naming.Format, on_bytes: OnBytes = _no_progress
) -> BackupResult:
    """The backup itself (also restore's safety copy); the caller holds the project lock."""
    started = datetime.now(UTC)
    t0 = time.monotonic()
    try:
        fsio.ensure_private_dir(out)
        final = out / naming.backup_name(started, fmt, (p.name for p in out.iterdir()))
        partial, f = fsio.open_partial(final)
    except OSError as exc:
        raise RecoverctlError(
            f"Cannot use {out} for backups: {exc.strerror or exc}{NOTHING_WRITTEN}.",
            "Check that the folder is writable (mode 0700, yours) and has room, "
            "or pass --output-dir.",
            code=ErrorCode.DISK_FULL if exc.errno == errno.ENOSPC else ErrorCode.WRITE_FAILED,
        ) from None
    manifest_path = final.with_name(naming.manifest_name(final.name))
    manifest_written = False
    try:
        with f, db.snapshot() as session:
            snapshot = session.export()
            reading = Background(lambda: _read_facts(session), "backup-facts")
            # git's few milliseconds run beside pg_dump, not before it.
            coding = Background(lambda: code_info(ref.settings.project_dir), "backup-code")
            sink = _Sink(f, fmt, on_bytes)
            result = db.run(pg.pg_dump(db.user, db.database, fmt, snapshot), on_stdout=sink)
            db.check(
                result,
                "pg_dump",
                "Check `recoverctl logs db`, then run the backup again.",
            )
            f.flush()
            os.fsync(f.fileno())
            facts = reading.finish()
            assert facts is not None
            code = coding.finish()
            failpoints.reach("backup.written")
        info = _check_written(sink, fmt)
        manifest = Manifest(
            file=final.name,
            sha256=sink.hash.hexdigest(),
            size=sink.size,
            format=fmt,
            database=db.database,
            project=ref.project,
            stack=ref.settings.stack,
            server_version=facts.server_version,
            pg_dump_version=info.pg_dump_version or "unknown",
            tables=dict(facts.counts),
            migrations=facts.migrations,
            started_at=started,
            duration_seconds=round(time.monotonic() - t0, 3),
            recoverctl_version=__version__,
            code=code,
        )
        # The manifest lands first: a manifest without its dump is an orphan that list
        # reports; a dump without its manifest would pass for one of unknown provenance.
        fsio.write_atomic(manifest_path, json.dumps(manifest.to_json(), indent=2).encode())
        manifest_written = True
        fsio.publish(partial, final)
    except KeyboardInterrupt:
        _discard(partial, manifest_path if manifest_written else None)
        raise Interrupted(
            "Backup interrupted; the partial file was removed and no backup was written.",
            "Run the backup again when ready.",
        ) from None
    except OSError as exc:
        _discard(partial, manifest_path if manifest_written else None)
        if exc.errno == errno.ENOSPC:
            raise RecoverctlError(
                f"Disk full while writing the backup in {out}{NOTHING_WRITTEN}.",
                "Free space there, or pass --output-dir with a disk that has room.",
                code=ErrorCode.DISK_FULL,
            ) from None
        raise RecoverctlError(
            f"Could not write the backup in {out}: {exc.strerror or exc}{NOTHING_WRITTEN}.",
            "Check the folder's permissions and free space, then run the backup again.",
            code=ErrorCode.WRITE_FAILED,
        ) from None
    except RecoverctlError as exc:
        _discard(partial, manifest_path if manifest_written else None)
        message = exc.message.rstrip(".")
        message += NOTHING_WRITTEN  # the failures raised inside say what failed, not this
        raise exc.with_message(message + ".") from None
    except BaseException:
        _discard(partial, manifest_path if manifest_written else None)
        raise
    return BackupResult(final, manifest_path, manifest, _warnings(manifest, out))


def _discard(partial: Path, manifest: Path | None) -> None:
    fsio.remove_quietly(partial)
    if manifest is not None:
        fsio.remove_quietly(manifest)


def _check_written(sink: _Sink, fmt: naming.Format) -> dumpcheck.DumpInfo:
    """pg_dump said it succeeded; the bytes must say so too before the file gets a name."""
    if not sink.complete:
        raise RecoverctlError(
            "pg_dump's output ended in the middle of its compressed stream.",
            "Check `recoverctl logs db` and run the backup again.",
            code=ErrorCode.BACKUP_FAILED,
        )
    try:
        info = dumpcheck.inspect(bytes(sink.head), sink.tail)
    except dumpcheck.NotADump as exc:
        raise RecoverctlError(
            f"pg_dump's output is not a valid dump ({exc}).",
            "Check `recoverctl logs db` and run the backup again.",
            code=ErrorCode.BACKUP_FAILED,
        ) from None
    if info.format != fmt or info.problems:
        raise RecoverctlError(
            "pg_dump's output is incomplete ("
            + ("; ".join(info.problems) or f"expected {fmt}, got {info.format}")
            + ").",
            "Check `recoverctl logs db` and run the backup again.",
            code=ErrorCode.BACKUP_FAILED,
        )
    return info


@dataclass
class _Facts:
    """Row counts and migrations, read in the dump's snapshot while pg_dump streams."""

    server_version: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    migrations: dict[str, str] = field(default_factory=dict)


def _read_facts(s: SnapshotSession) -> _Facts:
    facts = _Facts(server_version=s.query(pg.SERVER_VERSION_SQL).strip())
    tables = [row[0] for row in pg.parse_rows(s.query(pg.LIST_TABLES_SQL))]
    s.query(pg.COUNTS_BESIDE_DUMP_SQL)
    facts.counts = pg.parse_counts(s.query(pg.count_rows_sql(tables)))
    if s.query(pg.HAS_MIGRATIONS_SQL).strip() == "t":
        facts.migrations = {row[0]: row[1] for row in pg.parse_rows(s.query(pg.MIGRATIONS_SQL))}
    return facts


def _warnings(manifest: Manifest, out: Path) -> tuple[str, ...]:
    previous = _previous_manifest(manifest, out)
    if previous is not None and manifest.size < previous.size * SHRINK_WARNING:
        return (
            f"this backup is {manifest.size} bytes, under half of the previous one "
            f"({previous.file}, {previous.size} bytes): check that no data went missing",
        )
    return ()


def _previous_manifest(current: Manifest, out: Path) -> Manifest | None:
    names = sorted(
        (p.name for p in out.iterdir() if naming.is_backup_name(p.name) and p.name != current.file),
        key=naming.sort_key,
        reverse=True,
    )
    for name in names:
        m = load_manifest(out / name)
        if m is not None and m.stack == current.stack and m.format == current.format:
            return m
    return None
