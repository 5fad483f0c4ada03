"""Dumps as bytes: what the fake pg_dump writes and the fake loads read back.

A custom archive has pg_dump's real header (dumpcheck accepts it), then the fake's own
table of contents and data blocks; a plain dump has the real header, \\restrict pair and
trailer. A load of a cut file stops where the bytes stop, as the real tools do.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

Tables = dict[str, list[str]]  # "public.auth_user" -> rows (one line each, as in COPY)
SERVER_VERSION = "16.4 (Debian 16.4-1.pgdg120+2)"
PG_DUMP_VERSION = "16.4 (Debian 16.4-1.pgdg120+2)"
RESTRICT_KEY = "Xq3ZkVb1rT"


def _int(value: int) -> bytes:
    return bytes([0]) + value.to_bytes(4, "little")


def _str(text: str) -> bytes:
    return _int(len(text.encode())) + text.encode()


def custom_header(database: str = "vault", pg_dump: str = PG_DUMP_VERSION) -> bytes:
    """The header pg_dump's WriteHead() writes for archive version 1.15 (PostgreSQL 16)."""
    head = b"PGDMP" + bytes([1, 15, 0, 4, 8, 1]) + bytes([1])  # versions, sizes, gzip
    head += b"".join(_int(v) for v in (1, 2, 3, 24, 10, 124, 0))  # creation time
    return head + _str(database) + _str(SERVER_VERSION) + _str(pg_dump)


def _copy_blocks(tables: Tables) -> bytes:
    out = bytearray()
    for name in sorted(tables):
        out += f"CREATE TABLE {name} (line text);\n".encode()
        out += f"COPY {name} (line) FROM stdin;\n".encode()
        for row in tables[name]:
            out += row.encode() + b"\n"
        out += b"\\.\n\n"
    return bytes(out)


def custom_dump(tables: Tables, database: str = "vault", pg_dump: str = PG_DUMP_VERSION) -> bytes:
    """A custom archive: the real header and an empty real table of contents, then the
    fake's own table of contents and the data blocks."""
    toc = b"".join(
        f"{i};{len(tables[n])} TABLE DATA {n}\n".encode() for i, n in enumerate(sorted(tables), 1)
    )
    return (
        custom_header(database, pg_dump)
        + bytes(5)  # the real table of contents' entry count: none (core/grants reads it)
        + b"\n@@TOC\n"
        + toc
        + b"@@DATA\n"
        + _copy_blocks(tables)
        + b"@@END\n"
    )


def plain_dump(
    tables: Tables, *, pg_dump: str | None = PG_DUMP_VERSION, key: str = RESTRICT_KEY
) -> bytes:
    """A plain dump as pg_dump 16.10+ writes it: header, \\restrict, data, trailer, \\unrestrict."""
    by = f"-- Dumped by pg_dump version {pg_dump}\n" if pg_dump else ""
    return (
        b"--\n-- PostgreSQL database dump\n--\n\n"
        + f"\\restrict {key}\n\n".encode()
        + f"-- Dumped from database version {SERVER_VERSION}\n{by}\n".encode()
        + _copy_blocks(tables)
        + b"--\n-- PostgreSQL database dump complete\n--\n\n"
        + f"\\unrestrict {key}\n\n".encode()
    )


class _Cut(Exception):
    """The input ended in the middle: what was loaded so far stays loaded."""


def _load_copy(lines: Iterator[str], into: Tables) -> None:
    """As psql runs a script: a first `\\restrict KEY` puts it in restricted mode, where
    every meta-command but `\\unrestrict KEY` is refused (and a second \\restrict too)."""
    key: str | None = None
    for line in lines:
        if line.startswith("\\"):
            word, _, arg = line.partition(" ")
            if key is None and word == "\\restrict":
                key = arg.strip()
            elif key is not None and word == "\\unrestrict" and arg.strip() == key:
                key = None
            elif key is not None:
                raise ValueError("backslash commands are restricted; only \\unrestrict is allowed")
            continue
        m = re.match(r"^CREATE TABLE (\S+) ", line)
        if m:
            into.setdefault(m.group(1), [])
            continue
        m = re.match(r"^COPY (\S+) \(line\) FROM stdin;$", line)
        if not m:
            continue
        rows = into.setdefault(m.group(1), [])
        for row in lines:
            if row == "\\.":
                break
            rows.append(row)
        else:
            raise _Cut("unexpected end of COPY data")


def _archive_body(data: bytes) -> bytes:
    """The custom archive's data part, or _Cut/ValueError when the archive is not whole."""
    if not data.startswith(b"PGDMP"):
        raise ValueError("input file does not appear to be a valid archive")
    start = data.find(b"\n@@DATA\n")
    if data.find(b"\n@@TOC\n") < 0 or start < 0:
        raise _Cut("could not read from input file: end of file")
    return data[start + len(b"\n@@DATA\n") :]


def parse_dump(data: bytes) -> Tables:
    """What a load of these bytes puts in a database (for assertions)."""
    tables: Tables = {}
    body = _archive_body(data) if data.startswith(b"PGDMP") else data
    _load_copy(iter(body.decode().splitlines()), tables)
    return tables
