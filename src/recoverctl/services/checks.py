"""The checks that prove a backup: quick (no restore) and deep (a restore into a
throwaway database). verify reports them; restore refuses a file that fails them."""

from __future__ import annotations

import contextlib
import dataclasses
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from recoverctl import failpoints, signals
from recoverctl.adapters import fsio
from recoverctl.adapters.pgexec import Db, ExecResult, cause_of
from recoverctl.core import dumpcheck, pg
from recoverctl.core.checks import FAIL, OK, WARN, Check, worst
from recoverctl.core.manifest import Manifest, compare_counts
from recoverctl.core.naming import EXTENSIONS, Format
from recoverctl.core.progress import OnBytes
from recoverctl.errors import ErrorCode, Interrupted, RecoverctlError
from recoverctl.services import catalog
from recoverctl.services.load import (
    VERIFY_PREFIX,
    Counted,
    Loaded,
    Loader,
    all_counts,
    psql_knows_restrict,
    restore_stream,
    throwaway_name,
)


@dataclass(frozen=True)
class Inspected:
    """What the quick checks learned, for deep verification and restore to build on."""

    checks: tuple[Check, ...]
    info: dumpcheck.DumpInfo | None
    manifest: Manifest | None
    sha256: str | None  # None when not read yet: a load hashes the bytes it streams
    size: int = 0

    @property
    def ok(self) -> bool:
        return worst(self.checks) != FAIL


def quick_checks(
    db: Db, path: Path, *, hash_now: bool = True, load_follows: bool = False
) -> Inspected:
    """The checks that need no restore. Without hash_now the sha256 is left to the caller's
    load (integrity then vouches only for the size and format until load_integrity). With
    load_follows an archive's structure is left to that load, which reads all of it."""
    checks: list[Check] = []
    size = path.stat().st_size
    if size == 0:
        checks.append(Check("file", FAIL, f"{path.name} is empty", "Use another backup."))
        return Inspected(tuple(checks), None, None, None)
    head, tail = fsio.head_and_tail(path, dumpcheck.HEAD_BYTES, dumpcheck.TAIL_BYTES)
    try:
        info = dumpcheck.inspect(head, tail)
    except dumpcheck.NotADump as exc:
        checks.append(Check("format", FAIL, f"{path.name}: {exc}", exc.hint))
        return Inspected(tuple(checks), None, None, None)
    named = "custom" if path.suffix == EXTENSIONS["custom"] else "sql" if path.suffix else None
    checks.append(
        Check("format", OK, f"{info.format} dump, {size} bytes")
        if named in (None, info.format)
        else Check(
            "format",
            WARN,
            f"named {path.suffix} but its content is a {info.format} dump",
            "Rename it to match; recoverctl reads the content, not the name.",
        )
    )
    manifest, manifest_check = _manifest_check(path)
    sha256 = fsio.sha256_file(path)[0] if hash_now else None
    checks.append(manifest_check)
    if manifest is not None:
        checks.append(_integrity(manifest, sha256, size, info.format))
    checks.append(_version_check(db, info))
    if not (load_follows and info.format == "custom"):
        checks.append(_structure(db, path, info, vouched=_vouched(checks)))
    return Inspected(tuple(checks), info, manifest, sha256, size)


def _vouched(checks: list[Check]) -> bool:
    return any(c.name == "integrity" and c.status == OK for c in checks)


def _manifest_check(path: Path) -> tuple[Manifest | None, Check]:
    try:
        manifest = catalog.load_manifest(path, strict=True)
    except catalog.ManifestError as exc:
        return None, Check("manifest", FAIL, exc.message.split(" (")[0], exc.hint or "")
    if manifest is None:
        return None, Check(
            "manifest",
            WARN,
            "no manifest beside it: provenance unverified",
            "Prefer backups made by recoverctl backup; this one is checked for structure only.",
        )
    return manifest, Check(
        "manifest",
        OK,
        f"{manifest.stack} backup of {manifest.database} "
        f"from {manifest.started_at:%Y-%m-%d %H:%M} UTC",
    )


def _integrity(manifest: Manifest, sha256: str | None, size: int, fmt: Format) -> Check:
    if (sha256 is not None and manifest.sha256 != sha256) or manifest.size != size:
        ours = f"sha256 {sha256[:12]}… and {size} bytes" if sha256 else f"{size} bytes"
        theirs = (
            f"{manifest.sha256[:12]}… and {manifest.size} bytes" if sha256 else f"{manifest.size}"
        )
        return Check(
            "integrity",
            FAIL,
            f"{ours} differ from the manifest's {theirs}: the file changed after the backup",
            "Use another backup; keep this one aside for inspection.",
        )
    if manifest.format != fmt:
        return Check(
            "integrity",
            FAIL,
            f"content is {fmt} but the manifest says {manifest.format}",
            "The manifest belongs to another file; use another backup.",
        )
    if sha256 is None:
        return Check("integrity", OK, "size matches the manifest; sha256 pending (checked on load)")
    return Check("integrity", OK, f"sha256 and size match the manifest ({sha256[:12]}…)")


def load_integrity(found: Inspected, loaded: Loaded) -> Check | None:
    """The integrity check a load makes possible when quick_checks left the sha256 to it."""
    if found.manifest is None or found.sha256 is not None or found.info is None:
        return None
    return _integrity(found.manifest, loaded.sha256, found.size, found.info.format)


def _version_check(db: Db, info: dumpcheck.DumpInfo) -> Check:
    server = pg.parse_version(db.query(pg.SERVER_VERSION_SQL).strip())
    made_by = info.pg_dump_major
    if made_by is None:
        return Check("version", WARN, "the dump does not say which pg_dump made it")
    if made_by > server.major:
        return Check(
            "version",
            FAIL,
            f"made by pg_dump {info.pg_dump_version}; this server runs PostgreSQL {server}",
            f"Restore it into PostgreSQL {made_by} or newer (POSTGRES_IMAGE), not {server.major}.",
        )
    return Check("version", OK, f"made by pg_dump {info.pg_dump_version}; server {server}")


def _structure(db: Db, path: Path, info: dumpcheck.DumpInfo, *, vouched: bool) -> Check:
    if info.format == "sql":
        if info.problems:
            return Check("structure", FAIL, "; ".join(info.problems), "Use another backup.")
        return Check("structure", OK, "header, 'dump complete' trailer and \\restrict pairing")
    listing = db.run(pg.pg_restore_list(db.user), stdin=fsio.read_chunks(path))
    if not listing.ok:
        return Check(
            "structure",
            FAIL,
            f"pg_restore --list: {_cause(listing)}",
            "Use another backup.",
        )
    entries = len(re.findall(rb"^\d+;", listing.stdout, re.M))
    if vouched:
        return Check("structure", OK, f"pg_restore --list reads {entries} entries")
    # No manifest vouches for the bytes after the table of contents: read them all.
    full = db.run(pg.pg_restore_to_null(db.user), stdin=fsio.read_chunks(path))
    if not full.ok:
        return Check(
            "structure",
            FAIL,
            f"pg_restore reading the data: {_cause(full)}",
            "The file is damaged or truncated; use another backup.",
        )
    return Check("structure", OK, f"pg_restore reads all {entries} entries and their data")


class Throwaway:
    """The database a deep verification restores into, created in a thread of its own
    from the start, while the quick checks run (CREATE DATABASE copies template0: 0.1 to
    0.2 s). `ready` waits for it and raises what the creation raised; `drop` removes it,
    whatever happened, once the creation is over."""

    def __init__(self, db: Db):
        self.db = db
        self.name = throwaway_name(VERIFY_PREFIX)
        self.loader: Loader | None = None
        self._error: BaseException | None = None
        # Another thread: its query runs in an exec of its own, beside the session's psql.
        self._thread = threading.Thread(target=self._create, name="recoverctl-create", daemon=True)
        self._thread.start()

    def _create(self) -> None:
        try:
            self.db.query(pg.create_database_sql(self.name), database="postgres")
        except BaseException as exc:
            self._error = exc

    def ready(self) -> str:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.name

    def drop(self) -> None:
        with signals.deferred(reraise=False):
            self._thread.join()
        _drop_quietly(self.db, self.name)
        if self.loader is not None:  # its role owned only this database: gone with it
            self.loader.drop()


def deep_check(
    db: Db, path: Path, found: Inspected, on_bytes: OnBytes, scratch: Throwaway
) -> tuple[list[Check], str]:
    """The restore into the throwaway database scratch and its row counts;
    with the integrity check when quick_checks left the sha256 to this load, and the
    structure check when they left it to the load. Also returns the file's sha256. The
    throwaway is dropped, whatever happens."""
    assert found.info is not None
    started = time.monotonic()
    checks: list[Check] = []
    try:
        # Asked while the throwaway is still being made: one exec less before the load.
        restricts = psql_knows_restrict(db)
        loader = Loader(db, scratch.ready())
        scratch.loader = loader
        loaded = restore_stream(
            db,
            path,
            found.info.format,
            loader,
            on_bytes,
            one_transaction=True,
            psql_restricts=restricts,
        )
        integrity = load_integrity(found, loaded)
        if integrity is not None:
            checks.append(integrity)
        if loaded.failed is not None:
            return [*checks, loaded.failed], loaded.sha256
        if not any(c.name == "structure" for c in found.checks):
            checks.append(Check("structure", OK, "pg_restore read every entry in the restore"))
        checks.append(
            Check(
                "restore",
                OK,
                f"restored into a throwaway database in {time.monotonic() - started:.1f} s",
            )
        )
        try:
            counted = all_counts(loader, loaded)
        except RecoverctlError as exc:
            if exc.code is not ErrorCode.BACKUP_CORRUPT:
                raise
            return [*checks, Check("rows", FAIL, exc.message, exc.hint or "")], loaded.sha256
        checks.append(_counts_check(counted, found.manifest))
        failpoints.reach("verify.restored")
        return checks, loaded.sha256
    except KeyboardInterrupt:
        raise Interrupted(
            "Deep verification interrupted; its throwaway database was dropped.",
            "Run it again when ready; the backup itself was not touched.",
        ) from None
    finally:
        scratch.drop()


def _counts_check(counted: Counted, manifest: Manifest | None) -> Check:
    counts = counted.counts
    if manifest is None:
        return Check(
            "rows",
            WARN,
            f"{len(counts)} tables, {counted.stored} rows; no manifest to compare",
        )
    problems, compared = compare_counts(manifest.tables, counts)
    if problems:
        return Check(
            "rows",
            FAIL,
            "; ".join(problems[:3]) + (" …" if len(problems) > 3 else ""),
            "The backup does not hold what the manifest recorded; use another backup.",
        )
    return Check("rows", OK, f"{compared} tables, {counted.stored} rows, as in the manifest")


# How long the drop of a throwaway waits for the sessions still in it to be gone.
UNUSED_WAIT = 1.0
UNUSED_POLL = 0.005


def _drop_quietly(db: Db, database: str) -> None:
    """Best effort, and never interrupted half-way by a second Ctrl-C."""
    # On failure, restore --dry-run lists the leftover; the verification result stands.
    with signals.deferred(reraise=False), contextlib.suppress(RecoverctlError):
        _until_unused(db, database)
        db.query(pg.drop_database_sql(database), database="postgres")


def _until_unused(db: Db, database: str) -> None:
    """Ends the sessions still in the database and waits until none is listed: the one that
    counted its rows is still exiting when the drop follows at once, and an autovacuum
    worker may have started on the new tables. DROP DATABASE … WITH (FORCE) ends them too,
    but then sleeps 100 ms whenever one has not quite gone, which happens often here.
    Best effort: the drop follows whatever this finds."""
    deadline = time.monotonic() + UNUSED_WAIT
    with contextlib.suppress(RecoverctlError):
        while db.query(pg.terminate_sql(database), database="postgres").strip() not in ("", "0"):
            if time.monotonic() >= deadline:
                return
            time.sleep(UNUSED_POLL)


def without_load(db: Db, found: Inspected, path: Path) -> Inspected:
    """What a load was to prove, when none follows (the quick checks failed): the file is
    hashed and its integrity judged again, an archive's structure read; no other check is
    repeated."""
    checks = found.checks
    sha256 = found.sha256
    if sha256 is None:
        sha256 = fsio.sha256_file(path)[0]
        if found.manifest is not None and found.info is not None:
            judged = _integrity(found.manifest, sha256, found.size, found.info.format)
            checks = tuple(judged if c.name == "integrity" else c for c in checks)
    if found.info is not None and not any(c.name == "structure" for c in checks):
        vouched = _vouched(list(checks))
        checks = (*checks, _structure(db, path, found.info, vouched=vouched))
    return dataclasses.replace(found, checks=checks, sha256=sha256)


def _cause(result: ExecResult) -> str:
    """What a failed command said, or, when it said nothing, how it ended."""
    if said := cause_of(result.stderr_tail):
        return said
    if result.exit_code is None:
        return "no exit code and no message: the container stopped"
    return f"exit {result.exit_code} with no message"
