"""Backups on disk as `recoverctl backup` leaves them, for the tests that read a backups
folder: the file, its manifest (one writer, its fields overridable) and, for retention,
its verify record. Each writer keeps the manifest its tests were written against.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from recoverctl import __version__
from recoverctl.core import naming
from recoverctl.core.manifest import Manifest, VerifyRecord, VerifyResult
from recoverctl.settings import Settings, resolve_settings

from .dumps import PG_DUMP_VERSION, SERVER_VERSION, Tables, custom_dump, plain_dump
from .engine import PROJECT

# The tables and migrations of the backups the off-site tests push and pull.
OFFSITE_TABLES: dict[str, int | None] = {"public.vault_secret": 42, "public.auth_user": 3}


def write_manifest(path: Path, data: bytes, **fields: Any) -> Manifest:
    """The manifest beside path, describing data; fields override the fake's defaults."""
    values: dict[str, Any] = {
        "file": path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "format": "custom",
        "database": "vault",
        "project": PROJECT,
        "stack": "dev",
        "server_version": SERVER_VERSION,
        "pg_dump_version": PG_DUMP_VERSION,
        "tables": {},
        "migrations": {},
        "duration_seconds": 0.5,
        "recoverctl_version": __version__,
        **fields,
    }
    manifest = Manifest.model_validate(values)
    path.with_name(path.name + ".json").write_text(json.dumps(manifest.to_json()))
    return manifest


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
            "format": fmt,
            "stack": stack,
            "tables": {t: len(r) for t, r in contents.items()},
            "started_at": when,
            **overrides,
        }
        write_manifest(path, data, **fields)
    return path


def write_backup_file(folder: Path, name: str, data: bytes) -> Path:
    """A local backup named name, holding data, as the off-site tests push it."""
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    write_manifest(
        path,
        data,
        project="vault-dev",
        server_version="16.4",
        pg_dump_version="16.4",
        tables=OFFSITE_TABLES,
        migrations={"vault": "0003_x"},
        started_at=datetime.strptime(name[7:24], "%Y-%m-%d_%H%M%S").replace(tzinfo=UTC),
        duration_seconds=1.0,
        recoverctl_version="0.1.0",
    )
    return path


def make_backup(folder: Path, when: datetime, state: str = "quick ok", stack: str = "dev") -> Path:
    """A backup made at when, with its verify record in state: "quick ok", "deep ok",
    "failed" (a failed quick check), or "never" (no record)."""
    folder.mkdir(mode=0o700, exist_ok=True)
    name = f"backup_{when:%Y-%m-%d_%H%M%S}.dump"
    data = b"PGDMP" + name.encode()
    (folder / name).write_bytes(data)
    manifest = write_manifest(
        folder / name,
        data,
        project="x",
        stack=stack,
        server_version="15",
        pg_dump_version="15",
        started_at=when,
        duration_seconds=1.0,
        recoverctl_version="test",
    )
    if state != "never":
        kind: Literal["quick", "deep"] = "deep" if state == "deep ok" else "quick"
        result = VerifyResult(kind=kind, ok=state != "failed", at=when, sha256=manifest.sha256)
        record = VerifyRecord(file=name, results=(result,))
        (folder / f"{name}.verify.json").write_text(record.model_dump_json())
    return folder / name


def make_settings(tmp_path: Path, toml: str = "[retention]\nkeep_last = 2\n") -> Settings:
    """Settings of a project named x in tmp_path, from toml as its settings file."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "docker-compose.dev.yml").write_text("name: x\nservices:\n  db:\n    image: pg\n")
    config = tmp_path / "config.toml"
    config.write_text(toml)
    return resolve_settings(environ={"RECOVERCTL_CONFIG": str(config)}, cwd=tmp_path)
