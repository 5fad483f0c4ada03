import pytest

from recoverctl.core import pg


def test_pg_dump_argv_exact() -> None:
    assert pg.pg_dump("vault", "vault", "custom", "00000003-0000003C-1") == (
        "pg_dump", "--username", "vault", "--no-password", "--dbname", "vault",
        "--lock-wait-timeout=120s", "--format=custom", "--compress=1",
        "--snapshot=00000003-0000003C-1",
    )  # fmt: skip
    assert pg.pg_dump("u", "d", "sql")[-2:] == ("--format=plain", "--compress=1")


def test_restore_argv_exact() -> None:
    assert pg.pg_restore_list("u") == ("pg_restore", "--username", "u", "--no-password", "--list")
    assert pg.pg_restore_to_null("u")[-1] == "--file=/dev/null"


def test_session_argv_exact() -> None:
    assert pg.psql_session("vault", "d") == (
        "psql", "--username", "vault", "--no-password", "--dbname", "d", "--no-psqlrc",
        "--no-align", "--tuples-only", "--field-separator=\t", "--set", "ON_ERROR_STOP=1",
        "--quiet",
    )  # fmt: skip


def test_query_argv_carries_sql_as_one_argument() -> None:
    argv = pg.psql_query("vault", "postgres", "SELECT 1; DROP TABLE x")
    assert argv[-2:] == ("--command", "SELECT 1; DROP TABLE x")
    assert "--tuples-only" in argv and "ON_ERROR_STOP=1" in argv


def test_quoting() -> None:
    assert pg.quote_ident('we"ird') == '"we""ird"'
    assert pg.quote_literal("it's") == "'it''s'"
    assert pg.swap_sql("vault", "vault__restore_1", "vault__pre_restore_1") == (
        'BEGIN; ALTER DATABASE "vault" RENAME TO "vault__pre_restore_1"; '
        'ALTER DATABASE "vault__restore_1" RENAME TO "vault"; COMMIT;'
    )
    assert pg.drop_database_sql('a"b') == 'DROP DATABASE IF EXISTS "a""b" WITH (FORCE)'
    assert "datname = 'o''brien'" in pg.terminate_sql("o'brien")


def test_counts_sql_and_parsing() -> None:
    sql = pg.count_rows_sql(['public."T"', "public.u"])
    assert sql == (
        'SELECT \'public."T"\', (SELECT pg_catalog.count(*) FROM public."T") UNION ALL '
        "SELECT 'public.u', (SELECT pg_catalog.count(*) FROM public.u)"
    )
    assert pg.count_rows_sql([]) == "SELECT NULL, NULL WHERE false"
    assert pg.parse_counts("public.a\t3\npublic.b\t0\n") == {"public.a": 3, "public.b": 0}


@pytest.mark.parametrize(
    ("text", "major", "minor"),
    [
        ("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)", 15, 18),
        ("psql (PostgreSQL) 16.4", 16, 4),
        ("17.2 (Debian 17.2-1)", 17, 2),
        ("18beta1", 18, 0),
    ],
)
def test_versions(text: str, major: int, minor: int) -> None:
    v = pg.parse_version(text)
    assert (v.major, v.minor) == (major, minor)


def test_which_psql_knows_restrict() -> None:
    assert pg.psql_knows_restrict(pg.PgVersion(15, 14, "15.14"))
    assert not pg.psql_knows_restrict(pg.PgVersion(15, 13, "15.13"))
    assert not pg.psql_knows_restrict(pg.PgVersion(12, 99, "12.99"))
    assert pg.psql_knows_restrict(pg.PgVersion(18, 0, "18.0"))
    with pytest.raises(ValueError):
        pg.parse_version("no digits")


def test_session_argv_reads_stdin() -> None:
    argv = pg.psql_session("vault", "vault")
    assert argv[-1] == "--quiet" and "--command" not in argv
    assert argv[:-1] == pg.psql_query("vault", "vault", "x")[:-2]


def test_related_databases_sql_is_one_query_with_quoted_names() -> None:
    sql = pg.related_databases_sql("va'ult", ("va'ult__", "recoverctl_verify"))
    assert sql == (
        "SELECT datname, CASE WHEN datname = 'va''ult' THEN pg_database_size(datname) END "
        "FROM pg_database WHERE datname = 'va''ult' OR starts_with(datname, 'va''ult__') "
        "OR starts_with(datname, 'recoverctl_verify') ORDER BY 1"
    )
    assert pg.related_databases_sql("v", ()).endswith("WHERE datname = 'v' ORDER BY 1")


def test_counted_loads_echo_their_tags_in_one_transaction_or_one_per_statement() -> None:
    assert pg.psql_counted_script("vault", "d", one_transaction=True) == (
        "psql", "--username", "vault", "--no-password", "--dbname", "d", "--no-psqlrc",
        "--set", "ON_ERROR_STOP=1", "--single-transaction", "--echo-queries",
    )  # fmt: skip
    assert pg.psql_counted_script("vault", "d", one_transaction=False) == (
        "psql", "--username", "vault", "--no-password", "--dbname", "d", "--no-psqlrc",
        "--set", "ON_ERROR_STOP=1", "--echo-queries",
    )  # fmt: skip
    sh, c, script = pg.pg_restore_counted(
        "vault", "we'ird", one_transaction=True, restrict_key="K3y"
    )
    assert (sh, c) == ("sh", "-c")
    # One transaction is pg_restore's to write (no BEGIN/COMMIT per large object then).
    assert script == (
        "{ pg_restore --no-owner --no-acl --single-transaction --restrict-key=K3y --file=- && "
        "printf '%s\\n' '\\echo recoverctl: archive read whole'; } | "
        "psql --username vault --no-password --dbname 'we'\"'\"'ird' --no-psqlrc "
        "--set ON_ERROR_STOP=1 --echo-queries"
    )
    _, _, per_statement = pg.pg_restore_counted(
        "vault", "d", one_transaction=False, restrict_key="K3y"
    )
    assert per_statement.startswith("{ pg_restore --no-owner --no-acl --restrict-key=K3y --file=- && ")
    assert "--single-transaction" not in per_statement


# What psql --echo-queries printed for a load (trimmed): statements, then their tags.
ECHOED = """\
SET
CREATE TABLE public.vault_secret (
    id bigint NOT NULL
);
CREATE TABLE
COPY public.vault_secret (id, owner_id, ciphertext) FROM stdin;
COPY 3
COPY "Odd ""Schema"".x"."T b" (x) FROM stdin;
COPY 12
COPY public.empty FROM stdin;
COPY 0
ALTER TABLE ONLY public.vault_secret
    ADD CONSTRAINT vault_secret_pkey PRIMARY KEY (id);
ALTER TABLE
recoverctl: archive read whole
"""


def test_copy_counts_pair_each_copy_with_its_tag() -> None:
    assert pg.parse_copy_counts(ECHOED) == {
        "public.vault_secret": 3,
        '"Odd ""Schema"".x"."T b"': 12,
        "public.empty": 0,
    }


def test_copy_counts_ignore_a_copy_without_its_tag_and_stray_tags() -> None:
    # A load cut in a COPY: no tag follows, nothing is counted for that table.
    assert pg.parse_copy_counts("COPY public.a (x) FROM stdin;\nERROR:  boom\n") == {}
    assert pg.parse_copy_counts("COPY 5\nCOPY public.a FROM stdin;\nCOPY 2\n") == {"public.a": 2}


def test_ident_key_reads_quoted_and_bare_names_alike() -> None:
    """pg_dump of one version and format('%I') of another quote keywords differently."""
    assert pg.ident_key('public."json_object"') == pg.ident_key("public.json_object")
    assert pg.ident_key('"a.b"."c""d"') == ("a.b", 'c"d')
    assert pg.ident_key('public."T"') != pg.ident_key("public.t")
