"""PostgreSQL commands and SQL as data: argv builders, quoting, and parsers for their output.

Credentials never appear here: the commands run inside the db container as its
POSTGRES_USER over the local socket, which the official image trusts.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from recoverctl.core.commands import Argv
from recoverctl.core.naming import Format

# pg_dump gives up instead of waiting forever behind a migration's exclusive lock.
LOCK_WAIT = "120s"
DUMP_COMPRESSION = 1


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _client(tool: str, user: str, db: str | None = None) -> Argv:
    """What every PostgreSQL client here starts with: the user, no password prompt, the db."""
    return (tool, "--username", user, "--no-password", *(("--dbname", db) if db else ()))


def _psql(user: str, db: str) -> Argv:
    """Tuples only, tab-separated, for parse_rows; stopping at the first error."""
    return (
        *_client("psql", user, db),
        "--no-psqlrc",
        "--no-align",
        "--tuples-only",
        "--field-separator=\t",
        "--set",
        "ON_ERROR_STOP=1",
    )


def pg_dump(user: str, db: str, fmt: Format, snapshot: str | None = None) -> Argv:
    return (
        *_client("pg_dump", user, db),
        f"--lock-wait-timeout={LOCK_WAIT}",
        "--format=custom" if fmt == "custom" else "--format=plain",
        # Level 1: the vault's data is ciphertext, which higher levels cannot shrink; for a
        # plain dump it gzips the stream, so fewer bytes cross the engine (inflated on the host).
        f"--compress={DUMP_COMPRESSION}",
        *((f"--snapshot={snapshot}",) if snapshot else ()),
    )


def pg_restore_list(user: str) -> Argv:
    """Reads an archive's table of contents from stdin: proves its structure, restores nothing."""
    return (*_client("pg_restore", user), "--list")


def psql_session(user: str, db: str) -> Argv:
    """A quiet psql reading statements from stdin, tuples only, tab-separated."""
    return (*_psql(user, db), "--quiet")


def pg_restore_to_null(user: str) -> Argv:
    """Reads every data block of an archive from stdin, writing the script nowhere."""
    return (*_client("pg_restore", user), "--file=/dev/null")


# Every load is counted: the SQL goes through psql with --echo-queries, which prints each
# statement and then the server's command tag. A COPY's tag is the exact number of rows it
# loaded: the row counts come from the load itself, without a scan of every table afterwards
# (0.2 to 0.4 s at 6 M rows). An archive goes through pg_restore --file=- first, as fast as
# pg_restore into the database (bench/). dash has no pipefail: the line after the archive
# shows that pg_restore read it whole.
ARCHIVE_WHOLE = "recoverctl: archive read whole"


def psql_counted_script(user: str, db: str, *, one_transaction: bool) -> Argv:
    """Runs SQL from stdin, stopping at the first error, printing each statement and its
    command tag (parse_copy_counts). one_transaction: all of it, or nothing (a throwaway;
    but a plain dump's own BEGIN and COMMIT around a large object end it early); else a
    transaction per statement, as pg_restore into a database does."""
    return (
        *_client("psql", user, db),
        "--no-psqlrc",
        "--set",
        "ON_ERROR_STOP=1",
        *(("--single-transaction",) if one_transaction else ()),
        "--echo-queries",
    )


def restrict_line(key: str) -> bytes:
    """The first line of a load: psql's restricted mode, so that no meta-command of the
    file runs (only `\\unrestrict KEY` ends it, and the file cannot know the key)."""
    return f"\\restrict {key}\n".encode()


def pg_restore_counted(user: str, db: str, *, one_transaction: bool, restrict_key: str) -> Argv:
    """An archive from stdin, as SQL, into psql_counted_script; ARCHIVE_WHOLE after it.
    --no-owner: the load's role could not give its objects away. --no-acl: the archive's
    privileges follow the load, those whose roles exist here (services/load, core/grants). pg_restore writes the script inside
    `\\restrict KEY` … `\\unrestrict KEY` itself, so the archive's entries run restricted.
    one_transaction is pg_restore's to write: it then leaves out the BEGIN and COMMIT it
    puts around each large object, which would end psql's own transaction early."""
    whole = " --single-transaction" if one_transaction else ""
    restore = f"pg_restore --no-owner --no-acl{whole} --restrict-key={restrict_key} --file=-"
    then = shlex.quote("\\echo " + ARCHIVE_WHOLE)
    psql = shlex.join(psql_counted_script(user, db, one_transaction=False))
    return ("sh", "-c", f"{{ {restore} && printf '%s\\n' {then}; }} | {psql}")


# The role a load runs as: it owns the database loaded into and nothing else; it cannot
# create databases or roles and is granted no role (pg_read_server_files,
# pg_execute_server_program: none), so COPY … TO PROGRAM, lo_export, ALTER SYSTEM, DROP
# DATABASE of another database fail on the server whatever the file says. It inherits:
# the public schema belongs to pg_database_owner, whose rights it has as the owner.
LOADER_PREFIX = "recoverctl_load_"


def create_loader_sql(role: str, db: str) -> str:
    return (
        f"CREATE ROLE {quote_ident(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
        "NOREPLICATION NOBYPASSRLS; "
        f"ALTER DATABASE {quote_ident(db)} OWNER TO {quote_ident(role)}"
    )


def contain_loader_sql(role: str, db: str) -> str:
    """From another database, after the load and before anything else connects to db:
    what the load, as db's owner, may have set for db or for itself is undone (a
    search_path, read-only transactions, a role to become, IS_TEMPLATE, no connections)."""
    r, d = quote_ident(role), quote_ident(db)
    return (
        f"ALTER ROLE {r} RESET ALL; ALTER ROLE {r} IN DATABASE {d} RESET ALL; "
        f"ALTER DATABASE {d} RESET ALL; "
        f"ALTER DATABASE {d} WITH ALLOW_CONNECTIONS true CONNECTION LIMIT -1 IS_TEMPLATE false"
    )


def release_loader_sql(role: str, owner: str) -> str:
    """In the loaded database: its objects and the database itself to owner (as a load by
    owner would have left them), then the privileges the role still holds dropped."""
    return f"REASSIGN OWNED BY {quote_ident(role)} TO {quote_ident(owner)}; DROP OWNED BY {quote_ident(role)}"


def drop_loader_sql(role: str) -> str:
    return f"DROP ROLE IF EXISTS {quote_ident(role)}"


_IDENT = r'(?:"(?:[^"]|"")*"|[^\s."(]+)'
_COPY_START = re.compile(rf"^COPY ({_IDENT}\.{_IDENT})(?: \(.*\))? FROM stdin;$")
_COPY_TAG = re.compile(r"^COPY (\d+)$")


def ident_key(qualified: str) -> tuple[str, ...]:
    """A qualified name's identifiers, unquoted: `public."select"` and `public.select`
    (quoted or not by another version's keywords) are the same table."""
    parts = re.findall(r'"((?:[^"]|"")*)"|([^."]+)', qualified)
    return tuple(quoted.replace('""', '"') if quoted else bare for quoted, bare in parts)


def parse_copy_counts(output: str) -> dict[str, int]:
    """Each COPY's table and the rows its tag says were loaded, from psql --echo-queries.
    Names are as pg_dump wrote them, quoted only when needed, as format('%I.%I') does."""
    counts: dict[str, int] = {}
    pending: str | None = None
    for line in output.splitlines():
        if started := _COPY_START.match(line):
            pending = started.group(1)
        elif pending is not None and (tag := _COPY_TAG.match(line)):
            counts[pending] = counts.get(pending, 0) + int(tag.group(1))
            pending = None
    return counts


def psql_query(user: str, db: str, sql: str) -> Argv:
    """One query, tuples only, fields separated by a tab."""
    return (*_psql(user, db), "--command", sql)


def psql_version() -> Argv:
    return ("psql", "--version")


# Planner statistics: cheap, approximate; good enough to describe what a restore replaces.
ESTIMATE_SQL = "SELECT count(*), coalesce(sum(n_live_tup), 0) FROM pg_stat_user_tables"

# Queries that run in a restored database name pg_catalog's functions and operators: a
# dump's own function with a closer signature (public.format(text, name, name)) would
# otherwise be called instead.
# Tables of the user's schemas, as qualified identifiers ready for SQL.
LIST_TABLES_SQL = (
    "SELECT pg_catalog.format('%I.%I', schemaname, tablename) FROM pg_catalog.pg_tables "
    "WHERE schemaname OPERATOR(pg_catalog.<>) ALL "
    "(ARRAY['pg_catalog', 'information_schema']::pg_catalog.name[]) ORDER BY 1"
)
# Tables with inheritance children: count(*) of one adds its children's rows (as the
# manifest counts it), while pg_dump's COPY of it holds only its own.
INHERITANCE_PARENTS_SQL = (
    "SELECT DISTINCT pg_catalog.format('%I.%I', n.nspname, c.relname) "
    "FROM pg_catalog.pg_inherits i "
    "JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhparent "
    "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace ORDER BY 1"
)
# The row counts read beside pg_dump, in its snapshot: on one core, not compiled. Parallel
# workers and JIT would take the CPUs the dump they accompany runs on.
COUNTS_BESIDE_DUMP_SQL = "SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL jit = off"
MIGRATIONS_SQL = "SELECT DISTINCT ON (app) app, name FROM django_migrations ORDER BY app, id DESC"
HAS_MIGRATIONS_SQL = "SELECT to_regclass('public.django_migrations') IS NOT NULL"
SERVER_VERSION_SQL = "SHOW server_version"
ROLES_SQL = "SELECT rolname FROM pg_catalog.pg_roles ORDER BY 1"
DB_SIZE_SQL = "SELECT pg_database_size(current_database())"


def count_rows_sql(tables: list[str]) -> str:
    """Exact counts of every table in one statement (tables already quoted by LIST_TABLES_SQL)."""
    parts = [f"SELECT {quote_literal(t)}, (SELECT pg_catalog.count(*) FROM {t})" for t in tables]
    return " UNION ALL ".join(parts) if parts else "SELECT NULL, NULL WHERE false"


def create_database_sql(db: str) -> str:
    return f"CREATE DATABASE {quote_ident(db)} TEMPLATE template0"


def drop_database_sql(db: str) -> str:
    # FORCE ends stray connections (PostgreSQL 13+); a throwaway never keeps anything.
    return f"DROP DATABASE IF EXISTS {quote_ident(db)} WITH (FORCE)"


def terminate_sql(db: str) -> str:
    return (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        f"WHERE datname = {quote_literal(db)} AND pid <> pg_backend_pid()"
    )


def swap_sql(live: str, new: str, keep_as: str) -> str:
    """Both renames in one transaction: the database name always points at one whole copy."""
    return (
        "BEGIN; "
        f"ALTER DATABASE {quote_ident(live)} RENAME TO {quote_ident(keep_as)}; "
        f"ALTER DATABASE {quote_ident(new)} RENAME TO {quote_ident(live)}; "
        "COMMIT;"
    )


def databases_like_sql(prefix: str) -> str:
    return (
        "SELECT datname FROM pg_database WHERE starts_with(datname, "
        f"{quote_literal(prefix)}) ORDER BY 1"
    )


def related_databases_sql(db: str, prefixes: tuple[str, ...]) -> str:
    """db itself, with its size, and every database named with one of the prefixes."""
    named = " OR ".join(f"starts_with(datname, {quote_literal(p)})" for p in prefixes)
    return (
        f"SELECT datname, CASE WHEN datname = {quote_literal(db)} "
        "THEN pg_database_size(datname) END FROM pg_database "
        f"WHERE datname = {quote_literal(db)}" + (f" OR {named}" if named else "") + " ORDER BY 1"
    )


def parse_rows(output: str) -> list[list[str]]:
    return [line.split("\t") for line in output.splitlines() if line]


def parse_counts(output: str) -> dict[str, int]:
    return {name: int(count) for name, count in parse_rows(output)}


@dataclass(frozen=True)
class PgVersion:
    major: int
    minor: int
    text: str

    def __str__(self) -> str:
        return self.text


_VERSION_RE = re.compile(r"(\d+)(?:\.(\d+))?")


def parse_version(text: str) -> PgVersion:
    """'pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)' or '15.18 (Debian ...)'."""
    tail = text.split(")", 1)[1] if text.startswith(("pg_dump", "psql", "pg_restore")) else text
    m = _VERSION_RE.search(tail)
    if not m:
        raise ValueError(f"no version in {text!r}")
    return PgVersion(int(m.group(1)), int(m.group(2) or 0), m.group(0))


# The first minor releases whose psql knows \restrict (the August 2025 security release).
_RESTRICT_SINCE = {13: 22, 14: 19, 15: 14, 16: 10, 17: 6}


def psql_knows_restrict(v: PgVersion) -> bool:
    if v.major >= 18:
        return True
    since = _RESTRICT_SINCE.get(v.major)
    return since is not None and v.minor >= since
