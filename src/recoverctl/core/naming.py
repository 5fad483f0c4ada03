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
# ASCII digits only (\d matches any script's), the whole name (a `$` lets a newline end it).
NAME_RE = re.compile(r"backup_([0-9]{4}-[0-9]{2}-[0-9]{2}_[0-9]{6})(?:_([0-9]{1,6}))?\.(dump|sql)")
# What a person or a sync tool makes of a backup's name: "(copy)", a date that cannot be.
_LOOKS_LIKE = re.compile(r"backup_.*\.(dump|sql)(\.gz|\.zst)?", re.S)
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
    """The name's time, or None when it is not a name backup_name makes (an impossible
    date such as February 30 included)."""
    m = NAME_RE.fullmatch(name)
    if not m:
        return None
    try:
        return datetime.strptime(m.group(1), STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None


def is_backup_name(name: str) -> bool:
    return parse_backup_name(name) is not None


def looks_like_backup(name: str) -> bool:
    """Named almost like a backup, yet not one recoverctl makes: worth a word in `list`."""
    return _LOOKS_LIKE.fullmatch(name) is not None and not is_backup_name(name)


def manifest_name(backup: str) -> str:
    return backup + MANIFEST_SUFFIX


def sort_key(name: str) -> tuple[datetime, int]:
    when = parse_backup_name(name)
    m = NAME_RE.fullmatch(name)
    if when is None or m is None:
        return (datetime.min.replace(tzinfo=UTC), 0)
    return (when, int(m.group(2) or 1))


def newest(names: Iterable[str]) -> str | None:
    candidates = [n for n in names if is_backup_name(n)]
    return max(candidates, key=sort_key) if candidates else None


def age(when: datetime, now: datetime | None = None) -> str:
    seconds = ((now or datetime.now(UTC)) - when).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{max(0, int(seconds))}s"
