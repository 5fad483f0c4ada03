"""Dumps recoverctl did not make, against the real stack: the ones teams make before they
adopt it (the playbook's `pg_dump`, with --create, --clean, pg_dumpall, and as a pg_dump
older than 15.14 writes them, without \\restrict lines), and files that try to reach beyond
the scratch database. Each is adopted exactly or refused with its cause; none touches the
live data, and restore and verify --deep judge each the same way.

The data is the project's own zoo: partitions, inheritance, triggers, domains, views, a
large object and grants, in a schema beside the vault's tables.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from tests.e2e.conftest import FAULTS, Project, make_project, tear_down, up_seeded
from tests.e2e.vaultclient import Vault

pytestmark = pytest.mark.e2e

ZOO = """
CREATE ROLE zoo_reader NOLOGIN;
CREATE SCHEMA zoo;
CREATE DOMAIN zoo.positive AS integer CHECK (VALUE > 0);
CREATE TABLE zoo.measure (at date NOT NULL, v zoo.positive) PARTITION BY RANGE (at);
CREATE TABLE zoo.measure_2025 PARTITION OF zoo.measure
    FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE zoo.measure_2026 PARTITION OF zoo.measure
    FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO zoo.measure SELECT date '2025-06-01' + g % 400, g FROM generate_series(1, 300) g;
CREATE TABLE zoo.animal (id serial PRIMARY KEY, name text, touched int DEFAULT 0);
CREATE TABLE zoo.bird (wings int) INHERITS (zoo.animal);
INSERT INTO zoo.animal (name) SELECT 'a' || g FROM generate_series(1, 20) g;
INSERT INTO zoo.bird (name, wings) SELECT 'b' || g, 2 FROM generate_series(1, 10) g;
CREATE FUNCTION zoo.touch() RETURNS trigger LANGUAGE plpgsql
    AS $$ BEGIN NEW.touched := NEW.touched + 1; RETURN NEW; END $$;
CREATE TRIGGER animal_touch BEFORE UPDATE ON zoo.animal FOR EACH ROW EXECUTE FUNCTION zoo.touch();
CREATE VIEW zoo.names AS SELECT name FROM zoo.animal;
SELECT lo_from_bytea(424242, '\\x0102030405'::bytea);
GRANT USAGE ON SCHEMA zoo TO zoo_reader;
GRANT SELECT ON zoo.names TO zoo_reader;
"""


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, docker_client: docker.DockerClient
) -> Iterator[tuple[Project, Vault]]:
    project = make_project(tmp_path_factory.mktemp("fd"), "rctl-e2e-fd", docker_client)
    vault = up_seeded(project)
    project.sql(ZOO)
    yield project, vault
    tear_down(project)


def pg_dump(project: Project, name: str, *options: str, tool: str = "pg_dump") -> Path:
    """A dump made as the playbook makes it: the tool in the db container, to a host file."""
    db = project.container("db")
    user = project.env["POSTGRES_USER"]
    args = [tool, "-U", user, *options] + (
        [project.env["POSTGRES_DB"]] if tool == "pg_dump" else []
    )
    code, out = db.exec_run(args, demux=True)
    assert code == 0, out[1]
    path = project.root / "legacy" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(out[0])
    return path


def tampered(project: Project, name: str, statements: str) -> Path:
    """The playbook's plain dump with statements slipped in before its first table, as a
    tampered file or a hostile one would hold them among pg_dump's lines."""
    plain = pg_dump(project, "plain-" + name).read_bytes().decode()
    at = plain.index("CREATE TABLE")
    path = project.root / "legacy" / name
    path.write_text(plain[:at] + statements + plain[at:])
    return path


def as_older_pg_dump(path: Path) -> Path:
    """The file as a pg_dump older than 15.14 writes it: no \\restrict lines."""
    data = re.sub(rb"(?m)^\\(?:un)?restrict \S+\n", b"", path.read_bytes())
    assert b"\\restrict" not in data
    older = path.with_name("old-" + path.name)
    older.write_bytes(data)
    return older


def no_loader_roles(project: Project) -> bool:
    return (
        project.sql("SELECT count(*) FROM pg_roles WHERE rolname LIKE 'recoverctl_load_%'").strip()
        == "0"
    )


def in_db_container(project: Project, path: str) -> bool:
    code, _ = project.container("db").exec_run(["test", "-e", path])
    return bool(code == 0)


@pytest.mark.parametrize("older", [False, True], ids=["with-restrict", "older-pg_dump"])
def test_a_create_clean_dump_restores_exactly_and_the_safety_backup_holds_what_was_live(
    stack: tuple[Project, Vault], older: bool
) -> None:
    """The file that once emptied the live database: DROP DATABASE, CREATE DATABASE and
    \\connect, as pg_dump --clean --create writes them. The preamble is neutralised, the
    rest loads into the scratch database, and its data is what serves afterwards."""
    project, vault = stack
    made = pg_dump(project, f"create-{older}.sql", "--create", "--clean")
    path = as_older_pg_dump(made) if older else made
    at_dump = project.checksum()
    project.sql("INSERT INTO zoo.animal (name) VALUES ('canary')")  # after the dump: live only
    deep = project.run("verify", str(path), "--deep")
    assert deep.returncode == 0, deep.stderr + deep.stdout
    result = project.run("restore", str(path), "--yes")
    assert result.returncode == 0, result.stderr
    assert project.checksum() == at_dump  # the file's data, exactly: the canary is gone
    project.wait_healthy()
    assert vault.alice_reads() == vault.alice_secrets
    # Owned by the stack's user, as a restore of recoverctl's own backup leaves them; the
    # file's grants and its large object are there.
    owners = project.sql(
        "SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE nspname = 'zoo'"
    ).split()
    assert owners == [project.env["POSTGRES_USER"]]
    assert (
        project.sql("SELECT has_table_privilege('zoo_reader', 'zoo.names', 'SELECT')").strip()
        == "t"
    )
    assert project.sql("SELECT lo_get(424242)").strip() == "\\x0102030405"
    assert no_loader_roles(project)
    # The safety backup holds what was live when the restore began: the canary.
    safety = re.search(r"safety backup of the previous data: (\S+\.dump)", result.stdout)
    assert safety is not None, result.stdout
    with open(safety.group(1), "rb") as safety_file:
        listing = subprocess.run(
            ["docker", "exec", "-i", project.container("db").name, "pg_restore", "--data-only",
             "--table=animal", "--file=-"],
            stdin=safety_file, capture_output=True, check=True,
        )  # fmt: skip
    assert b"\tcanary\t" in listing.stdout


ESCAPES = {
    "connect": "\\connect postgres\nDROP DATABASE vault;\n",
    "shell": "\\! touch /tmp/recoverctl-pwned\n",
    "copy-to-program": "COPY (SELECT 1) TO PROGRAM 'touch /tmp/recoverctl-pwned';\n",
    "drop-in-do": "DO $$ BEGIN EXECUTE 'DROP DATABASE vault'; END $$;\n",
    "create-role": "CREATE ROLE intruder SUPERUSER LOGIN;\n",
    "alter-system": "ALTER SYSTEM SET archive_command = 'touch /tmp/recoverctl-pwned';\n",
    "lo-export": "SELECT lo_export(424242, '/tmp/recoverctl-pwned');\n",
}


@pytest.mark.parametrize("escape", sorted(ESCAPES))
def test_a_file_that_reaches_beyond_the_scratch_database_is_refused(
    stack: tuple[Project, Vault], escape: str
) -> None:
    project, _ = stack
    path = tampered(project, f"escape-{escape}.sql", ESCAPES[escape])
    before = project.checksum()
    databases = project.databases()
    backups = project.backups()
    for args in (("verify", str(path), "--deep"), ("restore", str(path), "--yes")):
        result = project.run(*args)
        unchanged = project.checksum() == before
        left = [f for f in project.backups() if f not in backups and not f.endswith(".json")]
        FAULTS.record(safe=result.returncode == 1 and unchanged, lost=not unchanged,
                      misleading=len(left))  # fmt: skip
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        if escape in ("connect", "shell"):
            assert "meta-command" in result.stdout + result.stderr, result.stderr
    assert project.checksum() == before
    assert project.databases() == databases
    assert not in_db_container(project, "/tmp/recoverctl-pwned")
    assert project.sql("SELECT count(*) FROM pg_roles WHERE rolname = 'intruder'").strip() == "0"
    assert no_loader_roles(project)


def test_a_clean_dump_is_refused_with_its_cause(stack: tuple[Project, Vault]) -> None:
    project, _ = stack
    path = pg_dump(project, "clean.sql", "--clean")
    before = project.checksum()
    for args in (("verify", str(path), "--deep"), ("restore", str(path), "--yes")):
        result = project.run(*args)
        assert result.returncode == 1, result.stderr
        shown = result.stdout + result.stderr
        assert "pg_dump --clean" in shown and "--if-exists" in shown, shown
    assert project.checksum() == before
    # With --if-exists its DROPs do nothing on an empty database: it restores.
    path = pg_dump(project, "clean-if-exists.sql", "--clean", "--if-exists")
    assert project.run("verify", str(path), "--deep").returncode == 0


def test_a_pg_dumpall_file_is_refused_with_its_cause(stack: tuple[Project, Vault]) -> None:
    project, _ = stack
    path = pg_dump(project, "all.sql", tool="pg_dumpall")
    before = project.checksum()
    result = project.run("restore", str(path), "--yes")
    FAULTS.record(safe=result.returncode == 1, lost=project.checksum() != before)
    assert result.returncode == 1
    assert "pg_dumpall" in result.stderr and "Traceback" not in result.stderr
    assert project.checksum() == before


def test_a_gzipped_dump_is_named_and_refused(stack: tuple[Project, Vault]) -> None:
    """What cron scripts and docker-db-backup-style tools leave: backup_….sql.gz."""
    project, _ = stack
    plain = pg_dump(project, "for-gzip.sql")
    gz = project.root / "backups" / "backup_2026-01-15_030000.sql.gz"
    gz.parent.mkdir(mode=0o700, exist_ok=True)
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    try:
        listed = project.run("list")
        assert listed.returncode == 0, listed.stderr
        assert f"{gz.name}: compressed; decompress it" in listed.stdout + listed.stderr
        before = project.checksum()
        result = project.run("restore", str(gz), "--yes")
        FAULTS.record(safe=result.returncode == 1, lost=project.checksum() != before)
        assert result.returncode == 1
        assert "compressed with gzip" in result.stderr and "gunzip -k" in result.stderr
        assert project.checksum() == before
    finally:
        gz.unlink()


def privileges(project: Project) -> str:
    return project.sql(
        "SELECT nspname || ':' || coalesce(nspacl::text, '') FROM pg_namespace "
        "WHERE nspname IN ('public', 'zoo') ORDER BY 1"
    ) + project.sql(
        "SELECT relname || ':' || coalesce(relacl::text, '') FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE nspname = 'zoo' ORDER BY 1"
    )


@pytest.mark.parametrize("fmt", ["custom", "sql"])
def test_a_restore_keeps_the_privileges_exactly(stack: tuple[Project, Vault], fmt: str) -> None:
    """recoverctl's own backups, in either format: the same grants and revokes after."""
    project, _ = stack
    project.sql("REVOKE USAGE ON SCHEMA public FROM PUBLIC")
    try:
        before = privileges(project)
        made = project.run("backup", "--format", fmt, "--json")
        assert made.returncode == 0, made.stderr
        result = project.run("restore", "latest", "--yes")
        assert result.returncode == 0, result.stderr
        assert privileges(project) == before
        assert "=U/" not in project.sql(
            "SELECT nspacl::text FROM pg_namespace WHERE nspname = 'public'"
        )
    finally:
        project.sql("GRANT USAGE ON SCHEMA public TO PUBLIC")


def test_grants_to_missing_roles_and_to_public_are_said_before_the_restore(
    stack: tuple[Project, Vault],
) -> None:
    project, _ = stack
    project.sql("CREATE ROLE zoo_gone NOLOGIN; GRANT SELECT ON zoo.animal TO zoo_gone; "
                "GRANT SELECT ON zoo.bird TO PUBLIC")  # fmt: skip
    try:
        path = pg_dump(project, "foreign.dump", "--format=custom")
    finally:
        project.sql("REVOKE SELECT ON zoo.animal FROM zoo_gone; DROP ROLE zoo_gone; "
                    "REVOKE SELECT ON zoo.bird FROM PUBLIC")  # fmt: skip
    plan = project.run("restore", str(path), "--dry-run")
    assert plan.returncode == 0, plan.stderr
    shown = plan.stdout + plan.stderr
    assert (
        "skipped, its role does not exist here: GRANT SELECT ON TABLE zoo.animal TO zoo_gone;"
        in shown
    )
    assert (
        "the file grants access to every role: GRANT SELECT ON TABLE zoo.bird TO PUBLIC;" in shown
    )
    result = project.run("restore", str(path), "--yes")
    assert result.returncode == 0, result.stderr
    assert (
        project.sql("SELECT has_table_privilege('zoo_reader', 'zoo.names', 'SELECT')").strip()
        == "t"
    )
    assert project.sql("SELECT has_table_privilege('public', 'zoo.bird', 'SELECT')").strip() == "t"
    project.sql("REVOKE SELECT ON zoo.bird FROM PUBLIC")


def test_verify_deep_counts_each_row_once(stack: tuple[Project, Vault]) -> None:
    """A partitioned table's rows are stored in its partitions, an inheritance parent's
    children's in the children: the summary counts each row once, where it is stored."""
    project, _ = stack
    made = project.run("backup", "--json")
    assert made.returncode == 0, made.stderr
    tables = project.sql(
        "SELECT pg_catalog.format('%I.%I', schemaname, tablename) FROM pg_catalog.pg_tables "
        "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
    ).split()
    stored = sum(int(project.sql(f"SELECT count(*) FROM ONLY {t}")) for t in tables)
    result = project.run("verify", "latest", "--deep", "--json")
    assert result.returncode == 0, result.stderr
    rows = next(c for c in json.loads(result.stdout)["result"]["checks"] if c["name"] == "rows")
    assert rows["status"] == "ok" and f" {stored} rows, as in the manifest" in rows["evidence"]


TIME_BOMBS = {
    # A closer match than pg_catalog.format(text, VARIADIC "any") for recoverctl's own
    # table listing, were it called unqualified as the superuser.
    "format-shadow": (
        "CREATE FUNCTION public.format(text, name, name) RETURNS text LANGUAGE plpgsql AS $f$ "
        "BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch /tmp/recoverctl-pwned'''; "
        "RETURN ''; END $f$;\n"
    ),
    # What the database's owner may set for its own database: undone after the load.
    "own-database": (
        "DO $d$ BEGIN EXECUTE pg_catalog.format('ALTER DATABASE %I SET "
        "default_transaction_read_only = on', current_database()); EXECUTE "
        "pg_catalog.format('ALTER DATABASE %I WITH IS_TEMPLATE true CONNECTION LIMIT 0', "
        "current_database()); EXECUTE pg_catalog.format('ALTER ROLE %I SET search_path = "
        "nowhere', current_user); END $d$;\n"
    ),
}


@pytest.mark.parametrize("bomb", sorted(TIME_BOMBS))
def test_what_a_file_defines_never_runs_as_the_superuser_nor_outlives_its_load(
    stack: tuple[Project, Vault], bomb: str
) -> None:
    """These load (creating them is within the role's rights) and the file restores; none
    of them runs as the superuser, and nothing the load set for its database stays."""
    project, vault = stack
    path = tampered(project, f"bomb-{bomb}.sql", TIME_BOMBS[bomb])
    at_dump = project.checksum()
    try:
        for args in (("verify", str(path), "--deep"), ("restore", str(path), "--yes")):
            result = project.run(*args)
            assert result.returncode == 0, (args, result.stdout, result.stderr)
            assert not in_db_container(project, "/tmp/recoverctl-pwned"), args
    finally:  # the next tests' dumps must not hold it
        project.sql("DROP FUNCTION IF EXISTS public.format(text, name, name)")
    settings = project.sql(
        "SELECT datistemplate, datconnlimit, "
        "(SELECT count(*) FROM pg_db_role_setting s WHERE s.setdatabase = d.oid) "
        "FROM pg_database d WHERE datname = current_database()"
    ).strip()
    assert settings == "f|-1|0", settings
    assert project.checksum() == at_dump
    project.wait_healthy()
    assert vault.alice_reads() == vault.alice_secrets
    assert no_loader_roles(project)
