"""core/script.ScriptFilter: pg_dump's own lines that cannot load in psql's restricted mode
go, wherever the reads cut them; COPY data and everything else passes byte for byte."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recoverctl.adapters import fsio
from recoverctl.core.script import ScriptFilter

KEY = b"AbC123xyz"
HEADER = b"--\n-- PostgreSQL database dump\n--\n\n"
RESTRICT = b"\\restrict " + KEY + b"\n"
UNRESTRICT = b"\\unrestrict " + KEY + b"\n"
SETTINGS = b"SET statement_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n"
TRAILER = b"--\n-- PostgreSQL database dump complete\n--\n\n"
TABLE = b"CREATE TABLE public.t (line text);\n\nALTER TABLE public.t OWNER TO vault;\n\n"
# Rows that look like what the filter drops: COPY text escapes a backslash as two, but a
# carriage return is "\r", so a row can begin with "\restrict".
ROWS = b"\\restrict not-a-command\nALTER TABLE public.t OWNER TO x;\n\\\\.\nplain\n"
COPY = b"COPY public.t (line) FROM stdin;\n" + ROWS + b"\\.\n\n"


def _filtered(data: bytes, cuts: list[int] | None = None) -> tuple[bytes, ScriptFilter]:
    f = ScriptFilter()
    points = [0, *(cuts or []), len(data)]
    chunks = [data[a:b] for a, b in itertools.pairwise(points)]
    return b"".join(f(iter(chunks))), f


def _dump(body: bytes = TABLE + COPY) -> bytes:
    return HEADER + RESTRICT + SETTINGS + body + TRAILER + UNRESTRICT


EXPECTED = HEADER + SETTINGS + b"CREATE TABLE public.t (line text);\n\n\n" + COPY + TRAILER


def test_restrict_and_owner_lines_go_copy_data_stays() -> None:
    out, f = _filtered(_dump())
    assert out == EXPECTED
    assert f.notes.owner_lines == 1 and f.notes.cause() is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(_dump()) - 1), max_size=12))
def test_any_cut_gives_the_same_bytes(cuts: list[int]) -> None:
    assert _filtered(_dump(), sorted(set(cuts)))[0] == EXPECTED


def test_through_the_reads_of_a_large_file(tmp_path: Path) -> None:
    rows = b"".join(b"row %d\n" % i for i in range(300_000))  # over two 1 MiB reads
    dump = _dump(TABLE + b"COPY public.t (line) FROM stdin;\n" + rows + b"\\.\n")
    path = tmp_path / "d.sql"
    path.write_bytes(dump)
    f = ScriptFilter()
    out = b"".join(f(fsio.read_chunks(path)))
    assert out == dump.replace(RESTRICT, b"").replace(UNRESTRICT, b"").replace(
        b"ALTER TABLE public.t OWNER TO vault;\n", b""
    )


def test_create_preamble_goes_with_its_one_connect() -> None:
    preamble = (
        b"DROP DATABASE vault;\n"
        b"CREATE DATABASE vault WITH TEMPLATE = template0 ENCODING = 'UTF8';\n\n"
        b"ALTER DATABASE vault OWNER TO vault;\n\n"
        + UNRESTRICT
        + b"\\connect vault\n"
        + RESTRICT
        + SETTINGS
    )
    out, f = _filtered(_dump(preamble + TABLE + COPY))
    assert b"DATABASE" not in out and b"\\connect" not in out
    assert f.notes.preamble_database == "vault" and f.notes.cause() is None


def test_a_connect_elsewhere_or_a_second_one_is_passed_on_and_named() -> None:
    preamble = b"CREATE DATABASE vault;\n\\connect vault\n"
    out, f = _filtered(_dump(preamble + TABLE + b"\\connect postgres\n" + COPY))
    assert b"\\connect postgres\n" in out
    cause = f.notes.cause()
    assert cause is not None and "\\connect postgres" in cause and "restricted" in cause
    # A \connect with no preamble before it is passed on too.
    out, f = _filtered(_dump(b"\\connect vault\n" + TABLE))
    assert b"\\connect vault" in out and f.notes.meta_command is not None


@pytest.mark.parametrize("line", [b"\\! rm -rf /", b"\\o /tmp/x", b"\\set ON_ERROR_STOP off"])
def test_any_other_meta_command_is_passed_on(line: bytes) -> None:
    out, f = _filtered(_dump(TABLE + line + b"\n" + COPY))
    assert line in out
    assert f.notes.meta_command is not None and line.decode() in f.notes.meta_command


def test_a_database_statement_after_the_preamble_is_passed_on() -> None:
    out, _ = _filtered(_dump(TABLE + b"DROP DATABASE vault;\n"))
    assert b"DROP DATABASE vault;" in out  # the server refuses it: the role owns no such thing


def test_clean_dump_is_named() -> None:
    out, f = _filtered(_dump(b"DROP TABLE public.t;\n" + TABLE + COPY))
    assert b"DROP TABLE public.t;" in out
    cause = f.notes.cause()
    assert cause is not None and "--clean" in cause and "line" in cause
    assert f.notes.hint() is not None and "--if-exists" in (f.notes.hint() or "")


def test_crlf_and_missing_final_newline() -> None:
    dump = _dump().replace(b"\n", b"\r\n").rstrip(b"\r\n")
    out, _ = _filtered(dump)
    assert b"OWNER TO vault" not in out and b"restrict " + KEY not in out
    assert b"\\restrict not-a-command" in out  # the COPY data


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(min_value=0, max_value=2000), max_size=6))
def test_random_bytes_never_raise_and_only_whole_lines_go(data: bytes, cuts: list[int]) -> None:
    cuts = sorted({c for c in cuts if 0 < c < len(data)})
    out, _ = _filtered(data, cuts)
    whole, _ = _filtered(data)
    assert out == whole  # the cuts never change the result
    assert len(out) <= len(data)


def test_rules_apply_only_where_a_statement_starts() -> None:
    """Inside a function's body, a multi-line string or a comment, lines that read like
    the rules' are the function's own: kept byte for byte."""
    body = (
        b"CREATE FUNCTION public.f() RETURNS void LANGUAGE sql AS $_$\n"
        b"SELECT 1;\n"
        b"ALTER TABLE public.t OWNER TO vault;\n"
        b"GRANT SELECT ON TABLE public.t TO gone;\n"
        b"$_$;\n"
        b"COMMENT ON TABLE public.t IS 'first\n"
        b"ALTER TABLE public.t OWNER TO vault;\n"
        b"it''s still the comment';\n"
        b"/* a /* nested */ comment\n"
        b"GRANT SELECT ON TABLE public.t TO gone;\n"
        b"*/\n"
        b"CREATE TABLE public.a$b$c (x int);\n"
        b"ALTER TABLE public.a$b$c OWNER TO vault;\n"
    )
    f = ScriptFilter(roles=frozenset({"vault"}))
    out = b"".join(f(iter([_dump(body)])))
    assert out.count(b"OWNER TO vault;") == 2  # the body's and the comment's; not the last
    assert out.count(b"TO gone;") == 2
    assert b"ALTER TABLE public.a$b$c OWNER TO vault;" not in out  # a$b$c opened no quote


def test_a_copy_spread_over_lines_by_a_quoted_name_keeps_its_data() -> None:
    rows = b"ALTER TABLE t OWNER TO y;\n\\restrict x\n"
    copy = b'COPY public."a\nb" (line) FROM stdin;\n' + rows + b"\\.\n"
    out, _ = _filtered(_dump(TABLE + copy))
    assert rows in out


def test_a_long_line_passes_through_in_linear_time() -> None:
    import time

    value = b"x" * (24 * 1024 * 1024)
    dump = _dump(TABLE + b"INSERT INTO public.t VALUES ('" + value + b"');\n" + COPY)
    chunks = [dump[i : i + 1024 * 1024] for i in range(0, len(dump), 1024 * 1024)]
    started = time.monotonic()
    out = b"".join(ScriptFilter()(iter(chunks)))
    assert time.monotonic() - started < 5
    assert value in out and b"OWNER TO vault" not in out and ROWS in out


def test_create_preamble_with_the_databases_comment_and_settings() -> None:
    """pg_dump --create writes the database's comment and settings after its \\connect,
    then \\connect again: all of it goes."""
    preamble = (
        b"CREATE DATABASE vault WITH TEMPLATE = template0;\n"
        b"ALTER DATABASE vault OWNER TO vault;\n"
        b"\\connect vault\n" + SETTINGS + b"COMMENT ON DATABASE vault IS 'the vault';\n"
        b"ALTER DATABASE vault SET search_path TO public;\n"
        b"\\connect vault\n" + SETTINGS
    )
    out, f = _filtered(_dump(preamble + TABLE + COPY))
    assert b"DATABASE" not in out and b"\\connect" not in out
    assert f.notes.cause() is None and f.notes.meta_command is None


def test_default_privileges_for_another_role_go() -> None:
    line = b"ALTER DEFAULT PRIVILEGES FOR ROLE vault IN SCHEMA public GRANT SELECT ON TABLES TO reader;\n"
    out, f = _filtered(_dump(TABLE + line + COPY))
    assert line not in out and f.notes.default_privileges == 1
