"""verify (actions/verify.py, services/checks.py, services/load.py, services/catalog.py)
over the fake engine and database.

Every branch, and the test that takes it:

catalog.resolve_backup
  latest: newest backup of this stack with a manifest      -> test_latest_is_the_newest_of_this_stack
  latest: none (BACKUP_NOT_FOUND)                           -> test_latest_without_backups
  a path that does not exist (USAGE)                        -> test_missing_file
  a symlink out of its folder (UNSAFE_PATH) / within it     -> test_symlink_out_of_its_folder, test_symlink_within_its_folder
  not a regular file (USAGE)                                -> test_a_directory
  a relative path (from the current folder)                 -> test_relative_path
session.db(): db stopped / engine unreachable               -> test_db_not_running, test_engine_unreachable
quick_checks
  empty file                                                -> test_empty_file
  not a dump                                                -> test_not_a_dump
  named .dump, content sql (WARN)                           -> test_name_and_content_differ
  manifest damaged (FAIL) / none (WARN)                     -> test_damaged_manifest, test_no_manifest_custom_reads_all_data
  integrity: sha256 differs / size differs / format differs -> test_integrity_sha256_differs, test_integrity_size_differs,
                                                               test_manifest_of_another_format
  version: unknown pg_dump (WARN) / newer pg_dump (FAIL)    -> test_unknown_pg_dump_version, test_newer_pg_dump_is_refused
  version query fails (raised, nothing recorded)            -> test_version_query_fails
  structure sql: problems                                   -> test_truncated_plain_dump
  structure custom: --list fails / fails without stderr     -> test_list_fails, test_list_fails_without_stderr
  structure custom vouched (no full read) / unvouched read  -> test_quick_custom, test_no_manifest_custom_reads_all_data,
    fails                                                      test_no_manifest_truncated_custom
deep_check
  not run when the quick checks fail; sha256 taken anyway   -> test_deep_skipped_when_quick_fails
  the throwaway is made while the quick checks run          -> test_deep_creates_while_the_quick_checks_run
    they fail, or raise, or Ctrl-C: it is dropped            -> test_integrity_size_differs, test_deep_skipped_when_quick_fails,
                                                               test_deep_quick_checks_raise, test_ctrl_c_during_deep_quick_checks
  custom: structure proven by the load, not read before     -> test_deep_custom
  create of the throwaway fails (raised; dropped anyway)    -> test_throwaway_cannot_be_created
  load fails (restore FAIL), stdin cut: sha256 from a pass  -> test_deep_load_fails
  load's sha256 differs from the manifest (integrity FAIL)  -> test_deep_integrity_from_the_load
  rows: no manifest (WARN) / differ (FAIL) / match (OK)     -> test_deep_without_manifest, test_deep_rows_differ, test_deep_custom
  rows from the load's COPY tags, no count query            -> test_deep_counts_come_from_the_load
    a table the load did not COPY into: counted by a query  -> test_deep_counts_a_table_the_load_did_not_copy
    the archive not read whole (no line after it): FAIL     -> test_deep_archive_not_read_whole
    both tools fail: pg_restore's own error is the cause    -> test_deep_archive_error_before_psqls
  Ctrl-C during the load / at verify.restored               -> test_ctrl_c_during_deep_load, test_ctrl_c_at_verify_restored
  the throwaway will not drop (left over, report stands)    -> test_throwaway_that_will_not_drop
  sessions still in the throwaway: ended, waited out, dropped -> test_throwaway_sessions_waited_out
  plain dump; psql without \\restrict: refused   -> test_deep_plain, test_deep_refused_by_a_psql_without_restricted_mode
verify: one db session; quick checks once with --deep       -> test_deep_custom
_remember: record written (quick/deep, ok, sha, detail)     -> test_quick_custom, test_deep_load_fails
  read-only folder: verified, not noted                     -> test_read_only_folder
"""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from recoverctl import failpoints
from recoverctl.actions.verify import verify
from recoverctl.core import pg
from recoverctl.core.checks import FAIL, OK, WARN, Check
from recoverctl.errors import EngineError, ErrorCode, RecoverctlError
from recoverctl.services import catalog
from recoverctl.services import checks as checks_service
from recoverctl.services.verification import VerifyReport
from tests.unit.fakes import (
    FakeStack,
    app_tables,
    custom_dump,
    load_skips_copy_of,
    make_stack,
    plain_dump,
    write_backup,
)


@pytest.fixture
def st(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeStack:
    return make_stack(tmp_path, monkeypatch, app_tables())


def checks(report: VerifyReport) -> dict[str, Check]:
    found = {c.name: c for c in report.checks}
    assert len(found) == len(report.checks), "one check of each name"
    return found


def statuses(report: VerifyReport) -> dict[str, str]:
    return {c.name: c.status for c in report.checks}


def record(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.with_name(path.name + ".verify.json").read_text())
    return data


def _fails(st: FakeStack, spec: str, **kwargs: Any) -> RecoverctlError:
    with pytest.raises(RecoverctlError) as info:
        verify(st.session(), spec, **kwargs)
    return info.value


# --- finding the file --------------------------------------------------------------------------


def test_latest_is_the_newest_of_this_stack(st: FakeStack) -> None:
    from datetime import UTC, datetime

    older = write_backup(st.backups, app_tables(), when=datetime(2025, 1, 1, tzinfo=UTC))
    write_backup(st.backups, app_tables(), when=datetime(2025, 2, 1, tzinfo=UTC), stack="prod")
    write_backup(st.backups, app_tables(), when=datetime(2025, 3, 1, tzinfo=UTC), manifest=False)
    assert verify(st.session(), "latest").path == older


def test_latest_without_backups(st: FakeStack) -> None:
    err = _fails(st, "latest")
    assert err.code is ErrorCode.BACKUP_NOT_FOUND
    assert err.message == f"No dev backup in {st.backups}."
    assert err.hint == "Make one: recoverctl backup"


def test_missing_file(st: FakeStack, tmp_path: Path) -> None:
    err = _fails(st, str(tmp_path / "nope.dump"))
    assert err.code is ErrorCode.USAGE
    assert err.hint == "Check the path; `recoverctl list` shows backups."


def test_a_directory(st: FakeStack, tmp_path: Path) -> None:
    err = _fails(st, str(tmp_path))
    assert (err.code, err.message) == (ErrorCode.USAGE, f"{tmp_path} is not a regular file.")


def test_symlink_out_of_its_folder(st: FakeStack, tmp_path: Path) -> None:
    real = write_backup(tmp_path / "other", app_tables())
    (tmp_path / "sub").mkdir()
    inner = tmp_path / "sub" / "link.dump"
    inner.symlink_to(real)
    err = _fails(st, str(inner))
    assert err.code is ErrorCode.UNSAFE_PATH
    assert "outside its folder; refusing to follow it" in err.message
    assert st.db.log == []  # refused before the database was asked anything


def test_symlink_within_its_folder(st: FakeStack) -> None:
    real = write_backup(st.backups / "kept", app_tables())
    link = st.backups / "link.dump"
    link.symlink_to(real)
    assert verify(st.session(), str(link)).path == real


def test_relative_path(st: FakeStack, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_backup(st.backups, app_tables())
    monkeypatch.chdir(st.backups)
    assert verify(st.session(), path.name).ok


def test_db_not_running(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables())
    st.engine.of("db")[0].attrs["State"]["Status"] = "restarting"
    err = _fails(st, str(path))
    assert err.code is ErrorCode.DB_NOT_RUNNING
    assert not path.with_name(path.name + ".verify.json").exists()


def test_engine_unreachable(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables())

    def refuse() -> Any:
        raise EngineError("Cannot reach the Docker engine at unix:///x: refused")

    with pytest.raises(RecoverctlError) as info:
        verify(st.session(connect=refuse), str(path))
    assert info.value.code is ErrorCode.ENGINE_UNREACHABLE


# --- quick checks ------------------------------------------------------------------------------


def test_quick_custom(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables())
    report = verify(st.session(), str(path))
    assert report.ok and report.format == "custom" and not report.deep
    assert statuses(report) == {
        "format": OK, "manifest": OK, "integrity": OK, "version": OK, "structure": OK,
    }  # fmt: skip
    assert checks(report)["structure"].evidence == "pg_restore --list reads 4 entries"
    assert "pg_restore_to_null" not in " ".join(st.db.log)  # the manifest vouches for the rest
    assert report.to_json()["provenance"] == "manifest"
    (result,) = record(path)["results"]
    assert (result["kind"], result["ok"], result["detail"]) == ("quick", True, "")
    assert result["sha256"] == json.loads(path.with_name(path.name + ".json").read_text())["sha256"]


def test_empty_file(st: FakeStack) -> None:
    path = write_backup(st.backups, {}, data=b"", manifest=False)
    report = verify(st.session(), str(path), deep=True)
    assert not report.ok and report.format is None
    assert report.checks == (Check("file", FAIL, f"{path.name} is empty", "Use another backup."),)
    (result,) = record(path)["results"]
    assert result["ok"] is False and result["detail"] == f"file: {path.name} is empty"


def test_not_a_dump(st: FakeStack) -> None:
    path = write_backup(st.backups, {}, data=b"hello, not a dump\n" * 10, manifest=False)
    report = verify(st.session(), str(path))
    assert checks(report)["format"].status == FAIL
    assert "not a PostgreSQL dump" in checks(report)["format"].evidence
    assert st.db.log == []


def test_name_and_content_differ(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables(), data=plain_dump(app_tables()), manifest=False)
    assert path.suffix == ".dump"
    report = verify(st.session(), str(path))
    assert report.ok and report.format == "sql"
    assert checks(report)["format"] == Check(
        "format",
        WARN,
        "named .dump but its content is a sql dump",
        "Rename it to match; recoverctl reads the content, not the name.",
    )


def test_damaged_manifest(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables())
    path.with_name(path.name + ".json").write_text("{not json")
    report = verify(st.session(), str(path))
    c = checks(report)["manifest"]
    assert (
        c.status == FAIL and c.evidence == f"The manifest {path.name}.json is unreadable or damaged"
    )
    assert "moving the manifest away" in c.fix
    assert report.manifest is None and not report.ok


def test_integrity_sha256_differs(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables())
    data = bytearray(path.read_bytes())
    data[-20] ^= 1  # same size, one bit flipped in the data
    path.write_bytes(data)
    report = verify(st.session(), str(path))
    c = checks(report)["integrity"]
    assert c.status == FAIL and "differ from the manifest's" in c.evidence
    assert c.evidence.endswith("the file changed after the backup")
    assert record(path)["results"][0]["detail"].startswith("integrity: sha256 ")


def test_integrity_size_differs(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables())
    with path.open("ab") as f:
        f.write(b"\n")
    report = verify(st.session(), str(path), deep=True)
    assert checks(report)["integrity"].status == FAIL
    assert "structure" in checks(report)  # read, since no load follows to prove it
    assert not any(line.startswith("pg_restore_into") for line in st.db.log)  # no deep load
    assert st.db.names() == {"vault"}  # the throwaway made meanwhile is gone


def test_manifest_of_another_format(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables(), format="sql")
    c = checks(verify(st.session(), str(path)))["integrity"]
    assert (c.status, c.evidence) == (FAIL, "content is custom but the manifest says sql")


def test_unknown_pg_dump_version(st: FakeStack) -> None:
    data = plain_dump(app_tables(), pg_dump=None)
    path = write_backup(st.backups, app_tables(), "sql", data=data)
    report = verify(st.session(), str(path))
    assert checks(report)["version"] == Check(
        "version", WARN, "the dump does not say which pg_dump made it"
    )
    assert report.ok


def test_newer_pg_dump_is_refused(st: FakeStack) -> None:
    data = custom_dump(app_tables(), pg_dump="17.2 (Debian 17.2-1)")
    path = write_backup(st.backups, app_tables(), data=data, pg_dump_version="17.2")
    c = checks(verify(st.session(), str(path)))["version"]
    assert c.status == FAIL
    assert c.evidence == "made by pg_dump 17.2 (Debian 17.2-1); this server runs PostgreSQL 16.4"
    assert c.fix == "Restore it into PostgreSQL 17 or newer (POSTGRES_IMAGE), not 16."


def test_version_query_fails(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables())
    st.db.fail("server_version", exit_code=2, stderr="psql: error: connection to server failed")
    err = _fails(st, str(path))
    assert err.code is ErrorCode.COMMAND_FAILED
    assert err.message == (
        "a query in the db container failed (exit 2): psql: error: connection to server failed"
    )
    assert not path.with_name(path.name + ".verify.json").exists()


def test_truncated_plain_dump(st: FakeStack) -> None:
    data = plain_dump(app_tables())[:-100]
    path = write_backup(st.backups, app_tables(), "sql", data=data, manifest=False)
    c = checks(verify(st.session(), str(path)))["structure"]
    assert c.status == FAIL and "no 'dump complete' trailer" in c.evidence


def test_list_fails(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables())
    st.db.fail(
        "pg_restore_list", stderr="pg_restore: error: unsupported version (1.99) in file header"
    )
    c = checks(verify(st.session(), str(path)))["structure"]
    assert c == Check(
        "structure",
        FAIL,
        "pg_restore --list: pg_restore: error: unsupported version (1.99) in file header",
        "Use another backup.",
    )


def test_list_fails_without_stderr(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables())
    st.db.fail("pg_restore_list", exit_code=None)  # the container stopped: no stderr, no code
    c = checks(verify(st.session(), str(path)))["structure"]
    assert c.status == FAIL and "None" not in c.evidence


def test_no_manifest_custom_reads_all_data(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables(), manifest=False)
    report = verify(st.session(), str(path))
    assert report.ok and report.to_json()["provenance"] == "unverified"
    assert checks(report)["manifest"].status == WARN
    assert "integrity" not in checks(report)
    assert checks(report)["structure"].evidence == "pg_restore reads all 4 entries and their data"


def test_no_manifest_truncated_custom(st: FakeStack) -> None:
    data = custom_dump(app_tables())[:-30]
    path = write_backup(st.backups, app_tables(), data=data, manifest=False)
    c = checks(verify(st.session(), str(path)))["structure"]
    assert c == Check(
        "structure",
        FAIL,
        "pg_restore reading the data: pg_restore: error: could not read from input file: end of file",
        "The file is damaged or truncated; use another backup.",
    )


# --- deep --------------------------------------------------------------------------------------


def test_deep_custom(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables())
    before = st.db.names()
    report = verify(st.session(), str(path), deep=True)
    assert report.ok and report.deep
    assert statuses(report) == {
        "format": OK, "manifest": OK, "version": OK, "structure": OK,
        "integrity": OK, "restore": OK, "rows": OK,
    }  # fmt: skip
    assert checks(report)["structure"].evidence == "pg_restore read every entry in the restore"
    assert not any(line.startswith("pg_restore_list") for line in st.db.log)
    assert checks(report)["integrity"].evidence.startswith("sha256 and size match")
    assert checks(report)["rows"].evidence == "4 tables, 9 rows, as in the manifest"
    assert st.db.names() == before  # the throwaway is gone
    assert st.db.sessions_opened == 1
    assert sum(line.startswith("server_version") for line in st.db.log) == 1  # quick checks once
    assert [one for _, one in st.db.loads] == [True]  # a throwaway: one transaction
    (result,) = record(path)["results"]
    assert (result["kind"], result["ok"]) == ("deep", True)


def test_deep_plain(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables(), "sql")
    assert verify(st.session(), str(path), deep=True).ok
    assert [one for _, one in st.db.loads] == [True]


def test_deep_refused_by_a_psql_without_restricted_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psql 16.4 predates \\restrict: no file is loaded without it."""
    st = make_stack(tmp_path, monkeypatch, app_tables(), psql="16.4")
    path = write_backup(st.backups, app_tables(), "sql")
    with pytest.raises(RecoverctlError) as caught:
        verify(st.session(), str(path), deep=True)
    assert caught.value.code is ErrorCode.UPDATE_REFUSED
    assert "psql_version" in st.db.log and not st.db.loads
    assert st.db.names() == {"vault"}  # the throwaway is gone


def test_deep_skipped_when_quick_fails(st: FakeStack) -> None:
    data = custom_dump(app_tables(), pg_dump="17.2 (Debian 17.2-1)")
    path = write_backup(st.backups, app_tables(), data=data, pg_dump_version="17.2")
    report = verify(st.session(), str(path), deep=True)
    assert statuses(report)["version"] == FAIL and "restore" not in statuses(report)
    assert checks(report)["integrity"].evidence.startswith("sha256 and size match")
    assert not any(line.startswith("pg_restore_into") for line in st.db.log)
    assert st.db.names() == {"vault"}  # the throwaway made meanwhile is gone
    assert record(path)["results"][0]["sha256"] is not None


def test_deep_without_manifest(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables(), manifest=False)
    report = verify(st.session(), str(path), deep=True)
    assert checks(report)["rows"] == Check("rows", WARN, "4 tables, 9 rows; no manifest to compare")
    assert report.ok


def test_deep_rows_differ(st: FakeStack) -> None:
    counts = {**{t: len(r) for t, r in app_tables().items()}, "public.vault_secret": 5}
    path = write_backup(st.backups, app_tables(), tables=counts)
    c = checks(verify(st.session(), str(path), deep=True))["rows"]
    assert c.status == FAIL
    assert c.evidence == "table public.vault_secret has 3 rows, the backup had 5"


def test_deep_integrity_from_the_load(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables())
    data = bytearray(path.read_bytes())
    data[-20] ^= 1
    path.write_bytes(data)
    report = verify(st.session(), str(path), deep=True)
    assert statuses(report)["integrity"] == FAIL and not report.ok
    assert "sha256 pending" not in checks(report)["integrity"].evidence


def test_deep_load_fails(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables())
    manifest_sha = json.loads(path.with_name(path.name + ".json").read_text())["sha256"]
    stderr = 'pg_restore: error: could not execute query: ERROR:  type "vector" does not exist'
    st.db.fail("pg_restore_into", stderr=stderr, cut=100)  # stops reading at 100 bytes
    before = st.db.names()
    report = verify(st.session(), str(path), deep=True)
    assert checks(report)["restore"] == Check(
        "restore",
        FAIL,
        'pg_restore: pg_restore: error: could not execute query: ERROR:  type "vector" does not exist',
        "See the lines above; use another backup.",
    )
    assert checks(report)["integrity"].status == OK  # the sha256 came from a pass of its own
    assert "rows" not in checks(report)
    assert st.db.names() == before
    (result,) = record(path)["results"]
    assert (result["ok"], result["sha256"]) == (False, manifest_sha)
    assert result["detail"].startswith("restore: pg_restore: pg_restore: error")


def test_throwaway_cannot_be_created(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables())
    st.db.fail("create", stderr="ERROR:  permission denied to create database")
    err = _fails(st, str(path), deep=True)
    assert err.code is ErrorCode.COMMAND_FAILED
    assert "permission denied to create database" in err.message
    assert any(line.startswith("drop recoverctl_verify_") for line in st.db.log)


def test_throwaway_that_will_not_drop(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables())
    st.db.fail("drop", stderr="ERROR:  could not drop")
    report = verify(st.session(), str(path), deep=True)
    assert report.ok
    (left,) = st.db.names() - {"vault"}
    assert left.startswith("recoverctl_verify_")


def _sessions_linger(st: FakeStack, monkeypatch: pytest.MonkeyPatch, polls: int) -> None:
    """Each throwaway, once created, lists sessions for `polls` looks before they are gone."""
    real_query = st.db.query

    def query(sql: str, database: str | None = None) -> str:
        out = real_query(sql, database)
        if sql.startswith("CREATE DATABASE "):
            st.db.lingering[sql.split('"')[1]] = polls
        return out

    monkeypatch.setattr(st.db, "query", query)


def test_throwaway_sessions_waited_out(st: FakeStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The drop waits until the throwaway lists no session (DROP … WITH (FORCE) would sleep
    100 ms for one still exiting), polling every UNUSED_POLL seconds, then drops it."""
    monkeypatch.setattr(checks_service, "time", st.clock)
    path = write_backup(st.backups, app_tables())
    _sessions_linger(st, monkeypatch, 2)  # the counting session, then autovacuum
    report = verify(st.session(), str(path), deep=True)
    assert report.ok and st.db.names() == {"vault"}  # the throwaway is gone
    ends = [line.split()[0] for line in st.db.log if line.split()[0] in ("terminate", "drop")]
    assert ends == ["terminate", "terminate", "terminate", "drop"]
    assert st.clock.sleeps == [checks_service.UNUSED_POLL] * 2


def test_throwaway_sessions_never_gone(st: FakeStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Best effort: after UNUSED_WAIT the drop is asked anyway (FORCE ends what is left)."""
    monkeypatch.setattr(checks_service, "time", st.clock)
    path = write_backup(st.backups, app_tables())
    _sessions_linger(st, monkeypatch, 10**6)
    report = verify(st.session(), str(path), deep=True)
    assert report.ok and st.db.names() == {"vault"}  # the throwaway is gone
    assert sum(st.clock.sleeps) == pytest.approx(checks_service.UNUSED_WAIT, abs=0.01)


INTERRUPTED = "Deep verification interrupted; its throwaway database was dropped."


def test_ctrl_c_during_deep_load(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables())
    st.db.fail("pg_restore_into", error=KeyboardInterrupt(), cut=200)
    err = _fails(st, str(path), deep=True)
    assert (err.code, err.message) == (ErrorCode.INTERRUPTED, INTERRUPTED)
    assert err.hint == "Run it again when ready; the backup itself was not touched."
    assert st.db.names() == {"vault"}


def test_ctrl_c_at_verify_restored(st: FakeStack, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_backup(st.backups, app_tables())

    def reach(name: str) -> None:
        if name == "verify.restored":
            raise KeyboardInterrupt

    monkeypatch.setattr(failpoints, "reach", reach)
    err = _fails(st, str(path), deep=True)
    assert (err.code, err.message) == (ErrorCode.INTERRUPTED, INTERRUPTED)
    assert st.db.names() == {"vault"}


def test_read_only_folder(st: FakeStack, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_backup(st.backups, app_tables())

    def read_only(*_: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(catalog, "record", read_only)
    assert verify(st.session(), str(path)).ok


# --- the throwaway made beside the quick checks ---------------------------------------------


def test_deep_creates_while_the_quick_checks_run(
    st: FakeStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CREATE DATABASE runs in a thread of its own (an exec beside the session)."""
    created_in: list[str] = []
    real = st.db.query

    def query(sql: str, database: str | None = None) -> str:
        if sql.startswith("CREATE DATABASE"):
            created_in.append(threading.current_thread().name)
        return real(sql, database)

    monkeypatch.setattr(st.db, "query", query)
    path = write_backup(st.backups, app_tables())
    assert verify(st.session(), str(path), deep=True).ok
    assert created_in == ["recoverctl-create"]
    assert st.db.names() == {"vault"}


def test_deep_quick_checks_raise(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables())
    st.db.fail("server_version", exit_code=2, stderr="psql: error: connection to server failed")
    err = _fails(st, str(path), deep=True)
    assert err.code is ErrorCode.COMMAND_FAILED
    assert st.db.names() == {"vault"}  # the throwaway made meanwhile is gone


def test_ctrl_c_during_deep_quick_checks(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables())
    st.db.fail("server_version", error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        verify(st.session(), str(path), deep=True)
    assert st.db.names() == {"vault"}


# --- the rows counted by the load ------------------------------------------------------------


def test_deep_counts_come_from_the_load(st: FakeStack) -> None:
    path = write_backup(st.backups, app_tables())
    report = verify(st.session(), str(path), deep=True)
    assert checks(report)["rows"].evidence == "4 tables, 9 rows, as in the manifest"
    assert not any(line.startswith("count_rows") for line in st.db.log)


def test_deep_counts_a_table_the_load_did_not_copy(
    st: FakeStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_skips_copy_of(monkeypatch, st.db, "public.vault_secret")
    path = write_backup(st.backups, app_tables())
    report = verify(st.session(), str(path), deep=True)
    assert checks(report)["rows"].evidence == "4 tables, 9 rows, as in the manifest"
    assert sum(line.startswith("count_rows") for line in st.db.log) == 1


def test_deep_archive_not_read_whole(st: FakeStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """psql went through with what it got, but pg_restore stopped short (no pipefail in
    the container's sh): the line it adds after the archive is missing."""
    real = st.db._echoed

    def cut(kind: str, database: str) -> bytes:
        return real(kind, database).replace(pg.ARCHIVE_WHOLE.encode(), b"")

    monkeypatch.setattr(st.db, "_echoed", cut)
    path = write_backup(st.backups, app_tables())
    report = verify(st.session(), str(path), deep=True)
    restore = checks(report)["restore"]
    assert (restore.status, restore.evidence) == (
        FAIL,
        "pg_restore: it stopped before the end",
    )
    assert not report.ok and "rows" not in checks(report)
    assert st.db.names() == {"vault"}


def test_deep_archive_error_before_psqls(st: FakeStack) -> None:
    """A damaged archive: pg_restore stops, and psql then fails on the COPY it was cut in;
    what the person reads is why the archive could not be read."""
    path = write_backup(st.backups, app_tables())
    stderr = (
        "pg_restore: error: could not read from input file: end of file\n"
        'ERROR:  missing data for column "bid"\n'
        'CONTEXT:  COPY pgbench_accounts, line 1035368: "10353"'
    )
    st.db.fail("pg_restore_into", stderr=stderr, exit_code=3)
    report = verify(st.session(), str(path), deep=True)
    assert checks(report)["restore"] == Check(
        "restore",
        FAIL,
        "pg_restore: pg_restore: error: could not read from input file: end of file",
        "See the lines above; use another backup.",
    )
    assert st.db.names() == {"vault"}
