"""verify: prove a backup is what its manifest says, whole, and (with --deep) restorable."""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from recoverctl import failpoints, signals
from recoverctl.actions import catalog
from recoverctl.actions.backup import db_of
from recoverctl.actions.stack import StackRef
from recoverctl.adapters import fsio
from recoverctl.adapters.engine import Engine
from recoverctl.adapters.pgexec import Db, cause_of
from recoverctl.core import dumpcheck, pg
from recoverctl.core.checks import FAIL, OK, WARN, Check, worst
from recoverctl.core.manifest import Manifest, VerifyResult, compare_counts
from recoverctl.core.naming import EXTENSIONS, Format
from recoverctl.errors import Interrupted, RecoverctlError
from recoverctl.settings import Settings

OnBytes = Callable[[int], None]
VERIFY_PREFIX = "recoverctl_verify"


def _no_progress(_: int) -> None:
    return None


@dataclass(frozen=True)
class VerifyReport:
    path: Path
    format: Format | None
    deep: bool
    checks: tuple[Check, ...]
    manifest: Manifest | None
    seconds: float

    @property
    def ok(self) -> bool:
        return worst(self.checks) != FAIL

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "ok": self.ok,
            "format": self.format,
            "deep": self.deep,
            "provenance": "manifest" if self.manifest else "unverified",
            "checks": [c.to_json() for c in self.checks],
            "seconds": round(self.seconds, 2),
        }


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


@dataclass(frozen=True)
class Loaded:
    """A restore of the file into a database: its failure, if any, and the file's sha256."""

    failed: Check | None
    sha256: str


def verify(
    settings: Settings, spec: str, *, deep: bool = False, on_bytes: OnBytes = _no_progress
) -> VerifyReport:
    path = catalog.resolve_backup(settings, spec)
    ref = StackRef.load(settings)
    db = db_of(Engine.connect(), ref)
    started = time.monotonic()
    with db.session():
        # A deep check reads every byte anyway: the sha256 is taken on that pass, not another.
        found = quick_checks(db, path, hash_now=not deep)
        checks = list(found.checks)
        sha256 = found.sha256
        if deep and found.ok and found.info is not None:
            deep_checks, sha256 = deep_check(db, path, found, on_bytes)
            checks = [c for c in checks if c.name != "integrity" or c.status != OK] + deep_checks
        elif sha256 is None:
            found = quick_checks(db, path)  # no load after all: hash the file on its own
            checks, sha256 = list(found.checks), found.sha256
    report = VerifyReport(
        path,
        found.info.format if found.info else None,
        deep,
        tuple(checks),
        found.manifest,
        time.monotonic() - started,
    )
    _remember(path, report, sha256)
    return report


def _remember(path: Path, report: VerifyReport, sha256: str | None) -> None:
    failed = [c for c in report.checks if c.status == FAIL]
    result = VerifyResult(
        kind="deep" if report.deep else "quick",
        ok=report.ok,
        at=datetime.now(UTC),
        sha256=sha256,
        detail="; ".join(f"{c.name}: {c.evidence}" for c in failed),
    )
    # A read-only copy (USB stick, mounted share) can be verified, just not noted.
    with contextlib.suppress(OSError):
        catalog.record(path, result)


def quick_checks(db: Db, path: Path, *, hash_now: bool = True) -> Inspected:
    """The checks that need no restore. Without hash_now the sha256 is left to the caller's
    load (integrity then vouches only for the size and format until load_integrity)."""
    checks: list[Check] = []
    size = path.stat().st_size
    if size == 0:
        checks.append(Check("file", FAIL, f"{path.name} is empty", "Use another backup."))
        return Inspected(tuple(checks), None, None, None)
    head, tail = fsio.head_and_tail(path, dumpcheck.HEAD_BYTES, dumpcheck.TAIL_BYTES)
    try:
        info = dumpcheck.inspect(head, tail)
    except dumpcheck.NotADump as exc:
        checks.append(Check("format", FAIL, f"{path.name}: {exc}", "Use another backup."))
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
            f"pg_restore --list: {cause_of(listing.stderr_tail)}",
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
            f"pg_restore reading the data: {cause_of(full.stderr_tail)}",
            "The file is damaged or truncated; use another backup.",
        )
    return Check("structure", OK, f"pg_restore reads all {entries} entries and their data")


def restore_stream(
    db: Db, path: Path, fmt: Format, database: str, on_bytes: OnBytes = _no_progress
) -> Loaded:
    """Restores the file into an existing empty database, hashing the bytes it sends."""
    psql_ok = fmt == "custom" or pg.psql_knows_restrict(db.version_of(pg.psql_version()))
    digest = hashlib.sha256()
    sent = [0]

    def hashed() -> Iterator[bytes]:
        for chunk in fsio.read_chunks(path, on_bytes):
            digest.update(chunk)
            sent[0] += len(chunk)
            yield chunk

    chunks = hashed()
    if fmt == "custom":
        argv = pg.pg_restore_into(db.user, database)
    else:
        argv = pg.psql_script(db.user, database)
        if not psql_ok:
            chunks = strip_restrict(chunks)
    result = db.run(argv, stdin=chunks)
    # The command may stop reading early (an error, or trailing bytes it ignores): the
    # sha256 then comes from a pass of its own, since it must cover the whole file.
    whole = result.stdin_error is None and sent[0] == path.stat().st_size
    sha256 = digest.hexdigest() if whole else fsio.sha256_file(path)[0]
    if result.ok:
        return Loaded(None, sha256)
    cause = cause_of(result.stderr_tail) or (
        "the container stopped" if result.exit_code is None else f"exit {result.exit_code}"
    )
    failed = Check(
        "restore", FAIL, f"{argv[0]}: {cause}", "See the lines above; use another backup."
    )
    return Loaded(failed, sha256)


def strip_restrict(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Drops \\restrict/\\unrestrict for a psql older than them; they sit in the first and
    last lines only, so only the first and the last two chunks are searched."""
    pattern = re.compile(rb"^\\(?:un)?restrict \S+[ \t]*\r?\n?", re.M)
    first = True
    held = b""
    for chunk in chunks:
        if first:
            chunk = pattern.sub(b"", chunk)
            first = False
        if held:
            yield held
        held = chunk
    if held:
        yield pattern.sub(b"", held)


def throwaway_name(prefix: str) -> str:
    return f"{prefix}_{datetime.now(UTC):%Y%m%d_%H%M%S}_{secrets.token_hex(3)}"


def deep_check(db: Db, path: Path, found: Inspected, on_bytes: OnBytes) -> tuple[list[Check], str]:
    """The restore into a throwaway database and its row counts; with the integrity check
    when quick_checks left the sha256 to this load. Also returns the file's sha256."""
    assert found.info is not None
    scratch = throwaway_name(VERIFY_PREFIX)
    checks: list[Check] = []
    started = time.monotonic()
    try:
        db.query(pg.create_database_sql(scratch), database="postgres")
        loaded = restore_stream(db, path, found.info.format, scratch, on_bytes)
        integrity = load_integrity(found, loaded)
        if integrity is not None:
            checks.append(integrity)
        if loaded.failed is not None:
            return [*checks, loaded.failed], loaded.sha256
        checks.append(
            Check(
                "restore",
                OK,
                f"restored into a throwaway database in {time.monotonic() - started:.1f} s",
            )
        )
        checks.append(_counts_check(db, scratch, found.manifest))
        failpoints.reach("verify.restored")
        return checks, loaded.sha256
    except KeyboardInterrupt:
        raise Interrupted(
            "Deep verification interrupted; its throwaway database was dropped.",
            "Run it again when ready; the backup itself was not touched.",
        ) from None
    finally:
        _drop_quietly(db, scratch)


def _counts_check(db: Db, database: str, manifest: Manifest | None) -> Check:
    counts = db.count_rows(database)
    if manifest is None:
        return Check(
            "rows",
            WARN,
            f"{len(counts)} tables, {sum(counts.values())} rows; no manifest to compare",
        )
    problems, compared = compare_counts(manifest.tables, counts)
    if problems:
        return Check(
            "rows",
            FAIL,
            "; ".join(problems[:3]) + (" …" if len(problems) > 3 else ""),
            "The backup does not hold what the manifest recorded; use another backup.",
        )
    return Check("rows", OK, f"{compared} tables, {sum(counts.values())} rows, as in the manifest")


def _drop_quietly(db: Db, database: str) -> None:
    """Best effort, and never interrupted half-way by a second Ctrl-C."""
    # On failure, restore --dry-run lists the leftover; the verification result stands.
    with signals.deferred(reraise=False), contextlib.suppress(RecoverctlError):
        db.query(pg.drop_database_sql(database), database="postgres")
