"""strip_restrict must find \\restrict and \\unrestrict wherever the 1 MiB reads cut them."""

from __future__ import annotations

from pathlib import Path

import pytest

from recoverctl.adapters import fsio
from recoverctl.services.load import strip_restrict

KEY = b"AbC123xyz"
HEADER = b"--\n-- PostgreSQL database dump\n--\n\n"
RESTRICT = b"\\restrict " + KEY + b"\n"
UNRESTRICT = b"\\unrestrict " + KEY + b"\n"
TRAILER = b"--\n-- PostgreSQL database dump complete\n--\n\n"


def _dump(comment_bytes: int, body_bytes: int) -> bytes:
    """A plain dump whose \\restrict line starts comment_bytes in and whose body is sized
    so that the reads cut where the test wants."""
    line = b"-- " + b"c" * 60 + b"\n"
    comments = (line * (comment_bytes // len(line) + 1))[: comment_bytes - 1] + b"\n"
    row = b"SELECT 1;\n"
    body = (row * (body_bytes // len(row) + 1))[: body_bytes - 1] + b"\n"
    comments = comments if comment_bytes else b""
    body = body if body_bytes else b""
    return HEADER + comments + RESTRICT + body + TRAILER + UNRESTRICT + b"\n"


def _expected(dump: bytes) -> bytes:
    return dump.replace(RESTRICT, b"").replace(UNRESTRICT, b"")


def _through_file(tmp_path: Path, data: bytes) -> bytes:
    path = tmp_path / "d.sql"
    path.write_bytes(data)
    return b"".join(strip_restrict(fsio.read_chunks(path)))


def test_restrict_line_straddles_the_first_read_boundary(tmp_path: Path) -> None:
    # The \restrict line starts 5 bytes before the 1 MiB boundary.
    lead = fsio.READ_CHUNK - 5 - len(HEADER)
    dump = _dump(lead, 3 * 1024)
    start = dump.index(RESTRICT)
    assert start < fsio.READ_CHUNK < start + len(RESTRICT)
    assert _through_file(tmp_path, dump) == _expected(dump)


def test_unrestrict_line_straddles_the_last_read_boundary(tmp_path: Path) -> None:
    # The \unrestrict line starts 4 bytes before the end of the second 1 MiB read, and the
    # last read holds only the end of that line and the final newline.
    probe = _dump(0, 0)
    tail_len = len(TRAILER) + len(UNRESTRICT) + 1
    before_body = len(probe) - tail_len  # header and \\restrict
    dump = _dump(0, 2 * fsio.READ_CHUNK - 4 - before_body - len(TRAILER))
    start = dump.index(UNRESTRICT)
    assert start < 2 * fsio.READ_CHUNK < start + len(UNRESTRICT)
    assert _through_file(tmp_path, dump) == _expected(dump)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 4096])
def test_any_cut_gives_the_same_bytes(size: int) -> None:
    dump = _dump(200, 300_000)
    # Small pieces over the head, one large middle, then the last 20 bytes one by one.
    head = 4000 - 4000 % size
    chunks = [dump[i : i + size] for i in range(0, head, size)]
    chunks.append(dump[head:-20])
    chunks.extend(dump[i : i + 1] for i in range(len(dump) - 20, len(dump)))
    assert b"".join(strip_restrict(iter(chunks))) == _expected(dump)


def test_a_dump_without_restrict_lines_passes_unchanged() -> None:
    dump = HEADER + b"SET x = 1;\n" + TRAILER
    assert b"".join(strip_restrict(iter([dump[:7], dump[7:]]))) == dump


def test_a_data_line_is_never_taken_for_the_restrict_line() -> None:
    # COPY text escapes a backslash as two: a row cannot begin with a lone \restrict.
    dump = HEADER + b"SET x = 1;\n\\\\restrict a\n" + TRAILER
    assert b"".join(strip_restrict(iter([dump]))) == dump
