"""The backups folder: finding a backup, its manifest and its verification record; list."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from recoverctl.adapters import fsio
from recoverctl.core import naming
from recoverctl.core.drill import DRILL_DIR, DrillRecord, Outcome, is_record_name, newest
from recoverctl.core.manifest import Manifest, VerifyRecord, VerifyResult, VerifyState, verify_state
from recoverctl.core.naming import Format
from recoverctl.core.outside import MAX_JSON_BYTES
from recoverctl.core.result import JsonResult, computed, meta
from recoverctl.core.stack import StackName, prod_flag
from recoverctl.errors import ErrorCode, RecoverctlError, UsageError
from recoverctl.settings import Settings

VERIFY_SUFFIX = ".verify.json"


def manifest_path(backup: Path) -> Path:
    return backup.with_name(naming.manifest_name(backup.name))


def verify_path(backup: Path) -> Path:
    return backup.with_name(backup.name + VERIFY_SUFFIX)


class ManifestError(RecoverctlError):
    default_code = ErrorCode.MANIFEST_DAMAGED


def load_manifest(backup: Path, *, strict: bool = False) -> Manifest | None:
    """The backup's manifest; None when there is none (or, unless strict, when unreadable)."""
    path = manifest_path(backup)
    try:
        return Manifest.model_validate_json(fsio.read_bounded(path, MAX_JSON_BYTES))
    except FileNotFoundError:
        return None
    except (OSError, ValidationError, ValueError) as exc:
        if not strict:
            return None
        raise ManifestError(
            f"The manifest {path.name} is unreadable or damaged ({_first_line(exc)}).",
            "Verify the backup without it by moving the manifest away; it will be reported "
            "as of unverified provenance.",
        ) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_record(backup: Path) -> VerifyRecord | None:
    try:
        return VerifyRecord.model_validate_json(
            fsio.read_bounded(verify_path(backup), MAX_JSON_BYTES)
        )
    except (OSError, ValidationError, ValueError):
        return None


def record(backup: Path, result: VerifyResult) -> None:
    current = load_record(backup) or VerifyRecord(file=backup.name)
    payload = current.add(result).model_dump(mode="json")
    target = verify_path(backup)
    fsio.remove_quietly(target.with_name(target.name + ".partial"))
    fsio.write_atomic(target, json.dumps(payload, indent=2).encode())


def candidates(settings: Settings) -> list[Path]:
    """The folder's backups, newest first: regular files (a symlink counts when it leads
    to one) named as recoverctl names them. _strays tells of the rest."""
    folder = settings.backup_dir
    if not folder.is_dir():
        return []
    names = [p.name for p in folder.iterdir() if naming.is_backup_name(p.name) and _is_file(p)]
    return [folder / n for n in sorted(names, key=naming.sort_key, reverse=True)]


def _is_file(path: Path) -> bool:
    """A regular file, or a symlink to one; False for one that cannot be looked at (a
    link into a folder this user may not read)."""
    try:
        return path.is_file()
    except OSError:
        return False


def newest_backup(settings: Settings) -> Path | None:
    """This stack's newest backup (one with a manifest saying so), or None."""
    for path in candidates(settings):
        m = load_manifest(path)
        if m is not None and m.stack == settings.stack:
            return path
    return None


def resolve_backup(settings: Settings, spec: str, cwd: Path | None = None) -> Path:
    """FILE or `latest` (the newest backup of this stack); refuses what is not a plain file."""
    if spec == "latest":
        found = newest_backup(settings)
        if found is not None:
            return found
        raise RecoverctlError(
            f"No {settings.stack} backup in {settings.backup_dir}.",
            "Make one: recoverctl backup" + prod_flag(settings.stack),
            code=ErrorCode.BACKUP_NOT_FOUND,
        )
    given = Path(spec)
    path = given if given.is_absolute() else (cwd or Path.cwd()) / given
    if not path.exists() and not path.is_symlink():
        raise UsageError(
            f"No backup at {spec}.",
            "Check the path; `recoverctl list` shows backups.",
        )
    if path.is_symlink():
        target = path.resolve()
        home = path.parent.resolve()
        if home not in target.parents:
            raise RecoverctlError(
                f"{spec} is a symlink to {target}, outside its folder; refusing to follow it.",
                "Pass the real file's path if you trust it.",
                code=ErrorCode.UNSAFE_PATH,
            )
        path = target
    if not path.is_file():
        raise UsageError(f"{spec} is not a regular file.", "Pass a backup file.")
    return path


@dataclass(frozen=True)
class DrillSummary(JsonResult):
    """A drill record, as far as a listing tells it."""

    result: Outcome
    started_at: datetime
    backup: str
    source: str
    recovery_seconds: float | None
    failed_checks: tuple[str, ...]
    error: str | None

    @classmethod
    def of(cls, record: DrillRecord) -> DrillSummary:
        return cls(
            record.result,
            record.started_at,
            record.backup,
            record.source,
            record.recovery_seconds,
            tuple(c.name for c in record.checks if c.status == "fail"),
            record.error.message if record.error else None,
        )


@dataclass(frozen=True)
class BackupEntry(JsonResult):
    path: Path
    size: int
    created: datetime
    format: str = field(metadata=meta(schema=Format))
    stack: str
    state: VerifyState = field(metadata=meta(name="verification"))
    state_at: datetime | None = field(metadata=meta(name="verified_at"))

    @property
    @computed(after="path")
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Listing(JsonResult):
    folder: Path
    stack: str = field(metadata=meta(schema=StackName))
    entries: tuple[BackupEntry, ...] = field(metadata=meta(name="backups"))
    strays: tuple[str, ...]  # leftovers that need a person's attention
    # This stack's newest recovery drill; the JSON has its summary.
    last_drill: DrillRecord | None = field(
        default=None,
        metadata=meta(encode=DrillSummary.of, schema=DrillSummary | None),
    )


def drill_dir(settings: Settings) -> Path:
    return settings.backup_dir / DRILL_DIR


def drill_records(settings: Settings) -> list[DrillRecord]:
    """This stack's drill records (backups/drills/DRILL-*.json); unreadable ones are skipped."""
    folder = drill_dir(settings)
    if not folder.is_dir():
        return []
    found: list[DrillRecord] = []
    for path in folder.iterdir():
        if not is_record_name(path.name):
            continue
        try:
            record = DrillRecord.model_validate_json(fsio.read_bounded(path, MAX_JSON_BYTES))
        except (OSError, ValidationError, ValueError):
            continue
        if record.stack == settings.stack:
            found.append(record)
    return found


def last_drill(settings: Settings, *, passed: bool = False) -> DrillRecord | None:
    """This stack's newest drill (the newest that passed, with passed)."""
    return newest(drill_records(settings), passed=passed)


def list_backups(settings: Settings) -> Listing:
    entries: list[BackupEntry] = []
    for path in candidates(settings):
        m = load_manifest(path)
        if m is not None and m.stack != settings.stack:
            continue
        try:
            st = path.stat()
        except OSError:
            continue  # gone since the listing, or unreadable: _strays names it
        state, at = verify_state(load_record(path))
        created = m.started_at if m else naming.parse_backup_name(path.name)
        entries.append(
            BackupEntry(
                path=path,
                size=st.st_size,
                created=created or datetime.fromtimestamp(st.st_mtime, UTC),
                format=m.format if m else ("custom" if path.suffix == ".dump" else "sql"),
                stack=m.stack if m else "?",
                state=state,
                state_at=at,
            )
        )
    return Listing(
        settings.backup_dir,
        settings.stack,
        tuple(entries),
        _strays(settings.backup_dir),
        last_drill(settings),
    )


def _strays(folder: Path) -> tuple[str, ...]:
    if not folder.is_dir():
        return ()
    found: list[str] = []
    for p in sorted(folder.iterdir()):
        shown = ascii(p.name)[1:-1] if not p.name.isprintable() else p.name
        if naming.is_backup_name(p.name) and not _is_file(p):
            why = (
                "a symlink that leads to no file (an unmounted disk?)"
                if p.is_symlink()
                else "not a regular file"
            )
            found.append(f"{shown}: {why}; skipped")
        elif naming.looks_like_backup(p.name):
            compressed = p.name.endswith((".gz", ".zst"))
            found.append(
                f"{shown}: compressed; decompress it (gunzip -k or unzstd -k) to restore it"
                if compressed
                else f"{shown}: not a backup name recoverctl makes; skipped (restore it by path)"
            )
        elif p.name.endswith(".partial"):
            found.append(f"{p.name}: left by an interrupted run; delete it")
        elif p.name.endswith(naming.MANIFEST_SUFFIX) and not p.name.endswith(VERIFY_SUFFIX):
            dump = p.with_name(p.name[: -len(naming.MANIFEST_SUFFIX)])
            if naming.is_backup_name(dump.name) and not dump.exists():
                found.append(f"{p.name}: manifest whose backup is missing")
    mode = folder.stat().st_mode & 0o777
    if mode & 0o077:
        found.append(f"{folder} is mode {oct(mode)}; run chmod 700 {folder}")
    return tuple(found)
