"""What a dump's bytes say about it: its format, who made it, and whether it is whole.

Only the head and the tail of a file are read: a plain dump's structure is its header,
its trailer and the pairing of its \\restrict lines; a custom archive's header names the
database and the versions that made it (pg_restore --list proves the rest).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from recoverctl.core.naming import Format

HEAD_BYTES = 64 * 1024
TAIL_BYTES = 64 * 1024
CUSTOM_MAGIC = b"PGDMP"
SQL_HEADER = b"-- PostgreSQL database dump"
SQL_TRAILER = b"-- PostgreSQL database dump complete"
CLUSTER_HEADER = b"-- PostgreSQL database cluster dump"
_RESTRICT_RE = re.compile(rb"^\\restrict (\S+)\s*$", re.M)
_UNRESTRICT_RE = re.compile(rb"^\\unrestrict (\S+)\s*$", re.M)
_FROM_RE = re.compile(rb"^-- Dumped from database version (.+)$", re.M)
_BY_RE = re.compile(rb"^-- Dumped by pg_dump version (.+)$", re.M)


@dataclass(frozen=True)
class DumpInfo:
    format: Format
    database: str | None
    server_version: str | None
    pg_dump_version: str | None
    archive_version: str | None  # custom format only, e.g. "1.14"
    problems: tuple[str, ...]  # structural problems found in head and tail

    @property
    def pg_dump_major(self) -> int | None:
        m = re.match(r"(\d+)", self.pg_dump_version or "")
        return int(m.group(1)) if m else None


class NotADump(ValueError):
    def __init__(self, message: str, hint: str = "Use another backup."):
        super().__init__(message)
        self.hint = hint


_COMPRESSED = {b"\x1f\x8b": ("gzip", "gunzip -k"), b"\x28\xb5\x2f\xfd": ("zstd", "unzstd -k")}


def detect_format(head: bytes) -> Format | None:
    if head.startswith(CUSTOM_MAGIC):
        return "custom"
    # pg_dump starts a plain dump with a comment block; tolerate a BOM or blank lines.
    if SQL_HEADER in head[:512]:
        return "sql"
    return None


def inspect(head: bytes, tail: bytes) -> DumpInfo:
    fmt = detect_format(head)
    if fmt == "custom":
        return _inspect_custom(head)
    if fmt == "sql":
        return _inspect_sql(head, tail)
    if CLUSTER_HEADER in head[:512]:
        raise NotADump(
            "a pg_dumpall file (a whole cluster: its roles and every database), "
            "not one database's pg_dump",
            "Restore one database's dump (recoverctl backup, or pg_dump of it); a cluster "
            "file loads by hand with psql into a new, empty cluster.",
        )
    for magic, (tool, command) in _COMPRESSED.items():
        if head.startswith(magic):
            raise NotADump(
                f"compressed with {tool}; recoverctl reads a dump as pg_dump wrote it",
                f"Decompress it first ({command} FILE) and give the file that gives.",
            )
    raise NotADump("not a PostgreSQL dump (neither a custom archive nor a plain SQL dump)")


def _inspect_sql(head: bytes, tail: bytes) -> DumpInfo:
    problems: list[str] = []
    if SQL_TRAILER not in tail:
        problems.append("no 'dump complete' trailer at the end: the file is truncated")
    # pg_dump uses one key per file; --create writes the pair twice (around its \\connect),
    # so the first \\restrict is paired with the last \\unrestrict, not line for line.
    opened = _RESTRICT_RE.findall(head)[:1]
    closed = _UNRESTRICT_RE.findall(tail)[-1:]
    if opened and not closed:
        problems.append("\\restrict is never closed by \\unrestrict: the file is truncated")
    elif opened != closed:
        problems.append("\\restrict and \\unrestrict keys do not match: the file was altered")
    return DumpInfo(
        format="sql",
        database=None,
        server_version=_first(_FROM_RE, head),
        pg_dump_version=_first(_BY_RE, head),
        archive_version=None,
        problems=tuple(problems),
    )


def _first(pattern: re.Pattern[bytes], data: bytes) -> str | None:
    m = pattern.search(data)
    return m.group(1).decode("utf-8", "replace").strip() if m else None


class _Reader:
    def __init__(self, data: bytes, int_size: int = 4):
        self.data = data
        self.pos = 0
        self.int_size = int_size

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise NotADump("custom archive header is cut short")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def int(self) -> int:
        sign = self.byte()
        raw = self.data[self.pos : self.pos + self.int_size]
        if len(raw) != self.int_size:
            raise NotADump("custom archive header is cut short")
        self.pos += self.int_size
        value = int.from_bytes(raw, "little")
        return -value if sign else value

    def str(self) -> str | None:
        n = self.int()
        if n < 0:
            return None
        if n > 4096:
            raise NotADump("custom archive header is damaged (absurd string length)")
        raw = self.data[self.pos : self.pos + n]
        if len(raw) != n:
            raise NotADump("custom archive header is cut short")
        self.pos += n
        return raw.decode("utf-8", "replace")


def _inspect_custom(head: bytes) -> DumpInfo:
    """Reads the header pg_dump's WriteHead() writes (archive versions 1.12 to 1.16)."""
    r = _Reader(head)
    r.pos = len(CUSTOM_MAGIC)
    vmaj, vmin, vrev = r.byte(), r.byte(), r.byte()
    version = (vmaj, vmin)
    r.int_size = r.byte()
    r.byte()  # offset size
    archive_format = r.byte()
    if vmaj != 1 or not 0 < r.int_size <= 8 or archive_format != 1:
        raise NotADump(
            f"unsupported custom archive (version {vmaj}.{vmin}, format {archive_format})"
        )
    if version >= (1, 15):
        r.byte()  # compression algorithm
    else:
        r.int()  # compression level
    for _ in range(7):  # creation time: sec, min, hour, mday, mon, year, isdst
        r.int()
    database = r.str()
    server = r.str()
    by = r.str()
    return DumpInfo(
        format="custom",
        database=database,
        server_version=server,
        pg_dump_version=by,
        archive_version=f"{vmaj}.{vmin}" + (f".{vrev}" if vrev else ""),
        problems=(),
    )
