"""FakeDb's statements are exactly those of fakes/sql.py, which the e2e suite runs against a
real PostgreSQL (tests/e2e/test_pg_sql_e2e.py): a statement added to core/pg.py, or to
the fake, must be added there too, and so be run against the server."""

from __future__ import annotations

import inspect

from recoverctl.core import pg
from tests.unit.fakes import FakeDb, FakeEngine, FakeSnapshot, app_tables
from tests.unit.fakes import sql as fake_sql
from tests.unit.fakes.database import FIXED_SQL, PREFIXED_SQL


def _pg_statements() -> set[str]:
    """core/pg.py's SQL: its *_SQL strings and its *_sql builders, by name."""
    constants = {n for n, v in vars(pg).items() if n.endswith("_SQL") and isinstance(v, str)}
    builders = {n for n, v in vars(pg).items() if n.endswith("_sql") and inspect.isfunction(v)}
    return constants | builders


def test_each_listed_statement_is_answered_as_its_kind() -> None:
    for statement in fake_sql.STATEMENTS:
        assert FakeDb._kind(statement.sql) == statement.kind, statement


def test_the_list_covers_every_statement_the_fake_answers() -> None:
    known = set(FIXED_SQL.values()) | {kind for _, kind in PREFIXED_SQL}
    assert {s.kind for s in fake_sql.STATEMENTS} == known
    listed = {s.sql for s in fake_sql.STATEMENTS}
    assert set(FIXED_SQL) <= listed, set(FIXED_SQL) - listed


def test_the_list_covers_every_statement_of_core_pg() -> None:
    sources = {s.source for s in fake_sql.STATEMENTS}
    assert _pg_statements() - fake_sql.NOT_ANSWERED <= sources, _pg_statements() - sources
    assert not fake_sql.NOT_ANSWERED & sources
    assert _pg_statements() >= fake_sql.NOT_ANSWERED
    for source in sources:
        assert source in _pg_statements() or source.endswith(".py"), source


def test_the_fake_answers_the_sequence_in_the_declared_shapes() -> None:
    """The same sequence the e2e test runs, against the fake: no statement fails, and each
    answers rows of the shape the server is held to."""
    db = FakeDb(FakeEngine(), app_tables(), database=fake_sql.LIVE, user=fake_sql.USER)
    db.parents = set(fake_sql.SCRATCH_PARENTS)
    snapshot: FakeSnapshot | None = None
    for statement in fake_sql.STATEMENTS:
        database = fake_sql.database_of(statement.where)
        if statement.snapshot:
            if snapshot is None:
                snapshot = FakeSnapshot(db)
            if statement.kind == "begin":
                continue  # the session's export sends BEGIN and the export together
            if statement.kind == "export_snapshot":
                output = snapshot.export() + "\n"
            else:
                output = snapshot.query(statement.sql)
        else:
            output = db.query(statement.sql, database)
        assert fake_sql.shape_errors(statement, output) == [], (statement, output)
    assert db.names() == {fake_sql.LIVE}  # nothing outlives the sequence
    assert db.loaders == {}
