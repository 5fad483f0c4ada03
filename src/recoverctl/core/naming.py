"""Backup file names: backup_YYYY-MM-DD_HHMMSS.{dump,sql}, as in the playbook."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal

Format = Literal["custom", "sql"]
EXTENSIONS: dict[str, str] = {"custom": ".dump", "sql": ".sql"}
PARTIAL_SUFFIX = ".partial"
MANIFEST_SUFFIX = ".json"
NAME_RE = re.compile(r"^backup_(\d{4}-\d{2}-\d{2}_\d{6})(?:_(\d+))?\.(dump|sql)$")
STAMP = "%Y-%m-%d_%H%M%S"


def backup_name(when: datetime, fmt: Format, taken: Iterable[str] = ()) -> str:
    """A fresh name; a numeric suffix keeps two backups in one second apart."""
    base = f"backup_{when.strftime(STAMP)}"
    ext = EXTENSIONS[fmt]
    used = set(taken)
    name = base + ext
    n = 1
    while name in used or name + PARTIAL_SUFFIX in used:
        n += 1
        name = f"{base}_{n}{ext}"
    return name


def parse_backup_name(name: str) -> datetime | None:
    m = NAME_RE.match(name)
    if not m:
        return None
    return datetime.strptime(m.group(1), STAMP).replace(tzinfo=UTC)


def is_backup_name(name: str) -> bool:
    return NAME_RE.match(name) is not None


def manifest_name(backup: str) -> str:
    return backup + MANIFEST_SUFFIX


def sort_key(name: str) -> tuple[datetime, int]:
    m = NAME_RE.match(name)
    if not m:
        return (datetime.min.replace(tzinfo=UTC), 0)
    return (datetime.strptime(m.group(1), STAMP).replace(tzinfo=UTC), int(m.group(2) or 1))


def newest(names: Iterable[str]) -> str | None:
    candidates = [n for n in names if is_backup_name(n)]
    return max(candidates, key=sort_key) if candidates else None


def age(when: datetime, now: datetime | None = None) -> str:
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(0, int(seconds))}s"
