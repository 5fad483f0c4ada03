import pytest

from recoverctl.core import dumpcheck

SQL_HEAD = (
    b"--\n-- PostgreSQL database dump\n--\n\n\\restrict abc123\n\n"
    b"-- Dumped from database version 15.18 (Debian)\n-- Dumped by pg_dump version 15.18 (Debian)\n"
)
SQL_TAIL = b"\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict abc123\n\n"


def _int(value: int) -> bytes:
    return bytes([0]) + value.to_bytes(4, "little")


def _str(text: str) -> bytes:
    return _int(len(text)) + text.encode()


def custom_header(vmin: int = 14) -> bytes:
    head = b"PGDMP" + bytes([1, vmin, 0, 4, 8, 1])
    head += bytes([1]) if vmin >= 15 else _int(6)  # compression: algorithm byte, or level
    head += b"".join(_int(v) for v in (1, 2, 3, 24, 10, 126, 0))
    return head + _str("vault") + _str("15.18 (Debian)") + _str("15.18 (Debian)") + b"\x00" * 64


def test_plain_dump_is_whole() -> None:
    info = dumpcheck.inspect(SQL_HEAD, SQL_TAIL)
    assert (info.format, info.problems, info.pg_dump_major) == ("sql", (), 15)
    assert info.server_version == "15.18 (Debian)"


def test_plain_dump_truncated_or_altered() -> None:
    cut = dumpcheck.inspect(SQL_HEAD, b"INSERT INTO t VALUES (1);\n")
    assert "no 'dump complete' trailer at the end: the file is truncated" in cut.problems
    assert "\\restrict is never closed by \\unrestrict: the file is truncated" in cut.problems
    other = dumpcheck.inspect(SQL_HEAD, SQL_TAIL.replace(b"abc123", b"zzz"))
    assert other.problems == (
        "\\restrict and \\unrestrict keys do not match: the file was altered",
    )


def test_create_dump_pairs_its_first_restrict_with_its_last_unrestrict() -> None:
    # pg_dump --create writes \\unrestrict, \\connect, \\restrict near the top: one key.
    head = SQL_HEAD + b"CREATE DATABASE v;\n\\unrestrict abc123\n\\connect v\n\\restrict abc123\n"
    assert dumpcheck.inspect(head, SQL_TAIL).problems == ()
    assert dumpcheck.inspect(head + SQL_TAIL, head + SQL_TAIL).problems == ()  # a small file


def test_cluster_and_compressed_files_are_named() -> None:
    with pytest.raises(dumpcheck.NotADump, match="pg_dumpall") as caught:
        dumpcheck.inspect(b"--\n-- PostgreSQL database cluster dump\n--\n", b"")
    assert "psql" in caught.value.hint
    for magic, tool in ((b"\x1f\x8b\x08", "gzip"), (b"\x28\xb5\x2f\xfd", "zstd")):
        with pytest.raises(dumpcheck.NotADump, match=f"compressed with {tool}") as caught:
            dumpcheck.inspect(magic + b"rest", b"")
        assert "Decompress" in caught.value.hint


@pytest.mark.parametrize("vmin", [14, 15])
def test_custom_header(vmin: int) -> None:
    info = dumpcheck.inspect(custom_header(vmin), b"")
    assert (info.format, info.database, info.pg_dump_version) == (
        "custom",
        "vault",
        "15.18 (Debian)",
    )
    assert info.archive_version == f"1.{vmin}"


def test_not_a_dump_and_cut_header() -> None:
    with pytest.raises(dumpcheck.NotADump, match="not a PostgreSQL dump"):
        dumpcheck.inspect(b"hello", b"hello")
    with pytest.raises(dumpcheck.NotADump, match="cut short"):
        dumpcheck.inspect(custom_header()[:20], b"")
    assert dumpcheck.detect_format(b"PGDMP...") == "custom"
    assert dumpcheck.detect_format(b"\xef\xbb\xbf--\n-- PostgreSQL database dump\n") == "sql"
