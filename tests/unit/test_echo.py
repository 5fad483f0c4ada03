"""load.Echo: what a counted load's echo is read for, kept as the engine's frames bring it."""

from __future__ import annotations

from recoverctl.core import pg
from recoverctl.services.load import Echo

ECHO = (
    b"SET\n"
    b"CREATE TABLE public.vault_secret (\n    id bigint NOT NULL\n);\n"
    b"CREATE TABLE\n"
    b"COPY public.vault_secret (id, owner_id, ciphertext) FROM stdin;\n"
    b"COPY 3\n"
    b"ALTER TABLE\n" + pg.ARCHIVE_WHOLE.encode() + b"\n"
)


def _fed(data: bytes, size: int) -> Echo:
    echo = Echo()
    for i in range(0, len(data), size):
        echo(data[i : i + size])
    echo.finish()
    return echo


def test_copy_lines_and_the_last_line_kept_wherever_frames_cut_them() -> None:
    for size in (1, 2, 7, 64, len(ECHO)):
        echo = _fed(ECHO, size)
        assert pg.parse_copy_counts(echo.text()) == {"public.vault_secret": 3}, size
        assert echo.ends_with(pg.ARCHIVE_WHOLE), size


def test_the_archive_end_counts_only_as_the_last_line() -> None:
    # The words in a statement (a COMMENT, a function body) are not the line after the archive.
    said = b"COMMENT ON TABLE t IS '\n" + pg.ARCHIVE_WHOLE.encode() + b"\n';\nCOMMENT\n"
    assert not _fed(said, 5).ends_with(pg.ARCHIVE_WHOLE)
    assert not _fed(ECHO.replace(pg.ARCHIVE_WHOLE.encode() + b"\n", b""), 5).ends_with(
        pg.ARCHIVE_WHOLE
    )
    assert _fed(ECHO.rstrip(b"\n"), 3).ends_with(pg.ARCHIVE_WHOLE)  # no newline after it


def test_a_large_objects_bytes_are_let_go_as_they_stream() -> None:
    """pg_restore writes a large object as lowrite calls, which psql echoes whole: 8 MiB
    here, in 64 KiB frames, never held beyond a few KiB, and the lines after it still read."""
    echo = Echo()
    echo(b"SELECT pg_catalog.lowrite(0, '\\x")
    peak = 0
    for _ in range(128):
        echo(b"ab" * 32768)
        peak = max(peak, len(echo.pending))
    echo(b"');\n lowrite \n---------\n 1048576\n(1 row)\n\n" + ECHO)
    echo.finish()
    assert peak <= Echo.LONG + 65536
    assert sum(len(line) for line in echo.kept) < 200
    assert pg.parse_copy_counts(echo.text()) == {"public.vault_secret": 3}
    assert echo.ends_with(pg.ARCHIVE_WHOLE)


def test_a_long_last_line_is_not_the_archive_end() -> None:
    echo = Echo()
    echo(pg.ARCHIVE_WHOLE.encode() + b"\nSELECT '" + b"x" * 10_000)
    echo.finish()
    assert not echo.ends_with(pg.ARCHIVE_WHOLE)
