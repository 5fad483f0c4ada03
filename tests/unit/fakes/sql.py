"""Every statement FakeDb answers, once, with the arguments recoverctl gives it, in an order
a real server runs them in: the reads of the live database, a snapshot session, and a
scratch database's whole life (created, loaded by its role, contained, released, renamed,
swapped, dropped), so that nothing outlives the sequence.

Both sides run this list: tests/unit/test_fake_sql.py against FakeDb, and
tests/e2e/test_pg_sql_e2e.py against the stack's PostgreSQL. Each statement declares the
rows it answers (how many columns, and what each holds), so that the fake and the server
are held to one shape and cannot drift.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from recoverctl.core import pg
from recoverctl.core.restore_plan import name_base, names_for
from recoverctl.services.load import VERIFY_PREFIX

# What a cell holds: a number, a boolean as psql prints it, any text, or a number or NULL.
Cell = Literal["int", "bool", "text", "int?"]
# Where a statement runs: the live database, the maintenance one, or the scratch database.
Where = Literal["live", "postgres", "scratch"]

LIVE = "vault"  # the live database and its owner, as the fake and the dev stack name them
USER = "vault"
ROLE = pg.LOADER_PREFIX + "0123456789ab"  # a load's role, as services/load.py names one
SCRATCH, KEEP_AS, FAILED = names_for(LIVE, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
# Tables of the vault (Django's auth and its migrations): in the fake's app_tables too.
TABLES = ["public.auth_user", "public.django_migrations"]
# Run before the scratch database's reads, on the server only (the fake is told through
# FakeDb.parents): a table with an inheritance child, so that the parents query has a row.
SCRATCH_SETUP = (
    "CREATE TABLE public.drift_parent (line text); "
    "CREATE TABLE public.drift_child () INHERITS (public.drift_parent)"
)
SCRATCH_PARENTS = {"public.drift_parent"}


@dataclass(frozen=True)
class Statement:
    kind: str  # FakeDb's name for it (its fault point)
    sql: str
    where: Where
    columns: tuple[Cell, ...] = ()  # () : no rows at all
    rows: bool = True  # with columns: at least one row, on both sides
    source: str = ""  # what builds it: a name in core/pg.py, else the module that writes it
    snapshot: bool = False  # inside the snapshot session (one psql, one transaction)


STATEMENTS: tuple[Statement, ...] = (
    # The live database's reads (plan, backup, verify, doctor).
    Statement(
        "server_version", pg.SERVER_VERSION_SQL, "live", ("text",), source="SERVER_VERSION_SQL"
    ),
    Statement("roles", pg.ROLES_SQL, "postgres", ("text",), source="ROLES_SQL"),
    Statement("list_tables", pg.LIST_TABLES_SQL, "live", ("text",), source="LIST_TABLES_SQL"),
    Statement(
        "has_migrations", pg.HAS_MIGRATIONS_SQL, "live", ("bool",), source="HAS_MIGRATIONS_SQL"
    ),
    Statement("migrations", pg.MIGRATIONS_SQL, "live", ("text", "text"), source="MIGRATIONS_SQL"),
    Statement("estimate", pg.ESTIMATE_SQL, "live", ("int", "int"), source="ESTIMATE_SQL"),
    Statement("count_rows", pg.count_rows_sql([]), "live", source="count_rows_sql"),
    Statement(
        "count_rows", pg.count_rows_sql(TABLES), "live", ("text", "int"), source="count_rows_sql"
    ),
    Statement(
        "related",
        pg.related_databases_sql(LIVE, (name_base(LIVE) + "__", VERIFY_PREFIX)),
        "live",
        ("text", "int?"),
        source="related_databases_sql",
    ),
    # The snapshot session pg_dump --snapshot reads beside (services/dump.py, adapters/pgexec.py).
    Statement(
        "begin",
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
        "live",
        source="adapters/pgexec.py",
        snapshot=True,
    ),
    Statement(
        "export_snapshot",
        "SELECT pg_export_snapshot()",
        "live",
        ("text",),
        source="adapters/pgexec.py",
        snapshot=True,
    ),
    Statement(
        "counts_beside_dump",
        pg.COUNTS_BESIDE_DUMP_SQL,
        "live",
        source="COUNTS_BESIDE_DUMP_SQL",
        snapshot=True,
    ),
    Statement(
        "count_rows",
        pg.count_rows_sql(TABLES),
        "live",
        ("text", "int"),
        source="count_rows_sql",
        snapshot=True,
    ),
    # A scratch database's life (services/restore.py, services/load.py, services/checks.py).
    Statement("create", pg.create_database_sql(SCRATCH), "postgres", source="create_database_sql"),
    Statement(
        "create_loader", pg.create_loader_sql(ROLE, SCRATCH), "postgres", source="create_loader_sql"
    ),
    Statement(
        "contain_loader",
        pg.contain_loader_sql(ROLE, SCRATCH),
        "postgres",
        source="contain_loader_sql",
    ),
    Statement(
        "inheritance_parents",
        pg.INHERITANCE_PARENTS_SQL,
        "scratch",
        ("text",),
        source="INHERITANCE_PARENTS_SQL",
    ),
    Statement("analyze", "ANALYZE", "scratch", source="services/restore.py"),
    Statement(
        "release_loader", pg.release_loader_sql(ROLE, USER), "scratch", source="release_loader_sql"
    ),
    Statement("drop_loader", pg.drop_loader_sql(ROLE), "postgres", source="drop_loader_sql"),
    Statement("checkpoint", "CHECKPOINT", "postgres", source="services/restore.py"),
    Statement("terminate", pg.terminate_sql(SCRATCH), "postgres", ("int",), source="terminate_sql"),
    Statement(
        "databases_like",
        pg.databases_like_sql(name_base(LIVE)),
        "postgres",
        ("text",),
        source="databases_like_sql",
    ),
    # The rename restore writes when there is no live database to keep (services/restore.py).
    Statement(
        "rename",
        f"ALTER DATABASE {pg.quote_ident(SCRATCH)} RENAME TO {pg.quote_ident(KEEP_AS)}",
        "postgres",
        source="services/restore.py",
    ),
    Statement("create", pg.create_database_sql(SCRATCH), "postgres", source="create_database_sql"),
    # KEEP_AS plays the live database: the dev stack's own data is never renamed.
    Statement("swap", pg.swap_sql(KEEP_AS, SCRATCH, FAILED), "postgres", source="swap_sql"),
    Statement("drop", pg.drop_database_sql(FAILED), "postgres", source="drop_database_sql"),
    Statement("drop", pg.drop_database_sql(KEEP_AS), "postgres", source="drop_database_sql"),
)

# Built in core/pg.py but never sent to FakeDb (doctor's size check runs on a real engine).
NOT_ANSWERED = frozenset({"DB_SIZE_SQL"})

_TAG = re.compile(r"[A-Z]+(?: [A-Z]+)*(?: \d+)*")
_CELLS: dict[Cell, re.Pattern[str]] = {
    "int": re.compile(r"-?\d+"),
    "bool": re.compile(r"[tf]"),
    "text": re.compile(r".+", re.DOTALL),
    "int?": re.compile(r"(-?\d+)?"),
}


def database_of(where: Where) -> str:
    return {"live": LIVE, "postgres": "postgres", "scratch": SCRATCH}[where]


def shape_errors(statement: Statement, output: str) -> list[str]:
    """What in psql's tuples-only, tab-separated output does not have the declared shape.
    A statement that answers no rows may print its command tag (psql does, unless quiet;
    the fake does not): those lines are not rows."""
    rows = pg.parse_rows(output)
    if not statement.columns:
        rows = [r for r in rows if not (len(r) == 1 and _TAG.fullmatch(r[0]))]
    if not statement.columns:
        return [f"rows where none are expected: {rows!r}"] if rows else []
    errors = [] if rows or not statement.rows else ["no row"]
    for row in rows:
        if len(row) != len(statement.columns):
            errors.append(f"{len(row)} columns, not {len(statement.columns)}: {row!r}")
            continue
        for cell, kind in zip(row, statement.columns, strict=True):
            if not _CELLS[kind].fullmatch(cell):
                errors.append(f"{cell!r} is not {kind}: {row!r}")
    return errors
