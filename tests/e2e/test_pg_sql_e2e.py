"""The statements the unit tests' FakeDb answers (tests/unit/fakes/sql.py), run against the
dev stack's real PostgreSQL through the same psql command lines recoverctl uses: each runs
without error and answers rows of the shape the fake answers. A statement of core/pg.py
that the server refuses, or whose rows the fake misdescribes, fails here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from recoverctl.core import pg
from tests.e2e.conftest import Project
from tests.unit.fakes import sql as fake_sql

pytestmark = pytest.mark.e2e

# Between the snapshot session's statements: where one's output ends and the next begins.
MARK = "@@recoverctl-next@@"


@pytest.fixture(scope="module")
def stack(dev_project: Project) -> Iterator[Project]:
    up = dev_project.run("up")
    assert up.returncode == 0, up.stderr
    assert dev_project.env["POSTGRES_DB"] == fake_sql.LIVE
    assert dev_project.env["POSTGRES_USER"] == fake_sql.USER
    yield dev_project


def _exec(project: Project, argv: tuple[str, ...]) -> str:
    code, (out, err) = project.container("db").exec_run(list(argv), demux=True)
    stdout, stderr = (out or b"").decode(), (err or b"").decode()
    assert code == 0, f"{argv[-1]!r} exited {code}: {stderr}"
    return stdout


def _query(project: Project, sql: str, database: str) -> str:
    return _exec(project, pg.psql_query(fake_sql.USER, database, sql))


def _snapshot_session(project: Project, statements: list[fake_sql.Statement]) -> list[str]:
    """One psql, as the snapshot session is (quiet, one connection, one transaction): each
    statement's output, in order."""
    argv: tuple[str, ...] = pg.psql_session(fake_sql.USER, fake_sql.LIVE)
    for s in statements:
        argv += ("--command", s.sql, "--command", f"\\echo {MARK}")
    argv += ("--command", "COMMIT")
    parts = _exec(project, argv).split(MARK + "\n")
    assert parts[-1] == "", parts
    return parts[:-1]


def test_every_statement_the_fake_answers_runs_on_the_server_in_its_shape(
    stack: Project,
) -> None:
    results: list[tuple[fake_sql.Statement, str]] = []
    snapshot = [s for s in fake_sql.STATEMENTS if s.snapshot]
    results += zip(snapshot, _snapshot_session(stack, snapshot), strict=True)
    try:
        for statement in fake_sql.STATEMENTS:
            if statement.snapshot:
                continue
            if statement.kind == "contain_loader":
                _query(stack, fake_sql.SCRATCH_SETUP, fake_sql.SCRATCH)
            database = fake_sql.database_of(statement.where)
            results.append((statement, _query(stack, statement.sql, database)))
    finally:  # a failed statement leaves nothing behind for the next module
        for name in (fake_sql.SCRATCH, fake_sql.KEEP_AS, fake_sql.FAILED):
            _query(stack, pg.drop_database_sql(name), "postgres")
        _query(stack, pg.drop_loader_sql(fake_sql.ROLE), "postgres")
    wrong: dict[str, Any] = {
        s.sql: (errors, out) for s, out in results if (errors := fake_sql.shape_errors(s, out))
    }
    assert wrong == {}
    assert len(results) == len(fake_sql.STATEMENTS)
    parents = [out for s, out in results if s.kind == "inheritance_parents"]
    assert [{row[0] for row in pg.parse_rows(out)} for out in parents] == [fake_sql.SCRATCH_PARENTS]
    # The scratch database's life left the live database alone and nothing beside it.
    leftovers = _query(stack, pg.databases_like_sql(fake_sql.LIVE), "postgres").split()
    assert leftovers == [fake_sql.LIVE]
