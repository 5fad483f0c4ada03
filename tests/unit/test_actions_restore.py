"""restore (actions/restore.py, services/restore.py and the services it uses) over the fake
engine and database. After every failure: which database serves is what the message says,
the previous one is back under its name (the same object in the fake), no scratch copy is
left, and the app containers run again.

Every branch, and the test that takes it:

prepare
  resolve / db not running                                 -> test_prepare_latest_without_backups, test_prepare_db_not_running
  quick checks fail: refused, noted as failed (BACKUP_CORRUPT, hint from the check)
                                                           -> test_refuses_a_changed_file, test_refuses_newer_pg_dump,
                                                              test_refuses_an_empty_file
  dry run (hash_now): noted with its sha256                -> test_dry_run_hashes_and_notes
  live database exists / does not (CurrentDb)              -> test_plan, test_restore_into_a_missing_database
  leftovers of killed runs listed                          -> test_plan_lists_leftovers
restore
  project lock held (LOCKED), nothing touched              -> test_restore_while_locked
  load: scratch cannot be created                          -> test_scratch_cannot_be_created
  load: pg_restore fails (BACKUP_CORRUPT)                  -> test_load_fails
  load: psql went through, pg_restore stopped short         -> test_archive_not_read_whole
  load: the file changed since prepare (integrity)         -> test_file_changed_since_prepare
  load: a psql without restricted mode: refused            -> test_restore_refused_by_a_psql_without_restricted_mode
  Ctrl-C during the load                                   -> test_ctrl_c_during_the_load
  prove: rows differ from the manifest / ANALYZE fails     -> test_rows_do_not_match_the_manifest, test_analyze_fails
  prove: the load's COPY tags, a query for the rest        -> test_restore_replaces_the_database,
                                                              test_counts_a_table_the_load_did_not_copy
  safety backup: taken / skipped / fails / Ctrl-C in it    -> test_restore_replaces_the_database,
                                                              test_restore_without_safety_backup,
                                                              test_safety_backup_fails, test_ctrl_c_during_the_safety_backup
  stop the app: engine refuses                             -> test_app_will_not_stop
  no app service: nothing stopped, no downtime             -> test_no_app_service
  checkpoint beside the counts, before the stop; may fail  -> test_checkpoint_before_the_stop,
                                                              test_checkpoint_refused
  failpoint restore.before-swap (Ctrl-C)                   -> test_ctrl_c_before_the_swap
  swap: DB_IN_USE retried / never free / other error       -> test_swap_retried_while_in_use,
                                                              test_clients_keep_reconnecting, test_swap_fails_otherwise
  swap: Ctrl-C (SIGINT) during it waits, then rolls back   -> test_sigint_during_the_swap
  failpoint restore.after-swap (Ctrl-C)                    -> test_ctrl_c_after_the_swap
  serve: app crashes on the restored copy (rollback)       -> test_app_fails_on_the_restored_database
  serve: crash when there was no database before           -> test_app_fails_when_there_was_no_database
  serve: never healthy (timeout), probed fast              -> test_app_never_healthy
  serve: engine refuses start once                         -> test_engine_refuses_to_start_the_app
  downtime: stop to healthy; probed on its port at once    -> test_app_downtime_is_stop_to_healthy,
                                                              test_app_probed_on_its_port
  downtime: its port asked every 20 ms until it answers    -> test_app_port_probed_until_it_answers
  rollback: swap back fails (ROLLBACK_INCOMPLETE, after swap) -> test_rollback_cannot_swap_back
  rollback: fails before the swap                          -> test_rollback_fails_before_the_swap
  rollback: engine gone for good after the swap            -> test_engine_gone_after_the_swap
  rollback with a long database name (names cut at 63)     -> test_rollback_with_a_long_database_name
  rollback: Ctrl-C during it is held off; it finishes       -> test_sigint_during_the_rollback
  settle: Ctrl-C only waits for the report                 -> test_sigint_while_settling
  settle: drift / recount fails / previous copy will not drop
                                                           -> test_drift_after_start, test_recount_fails,
                                                              test_previous_copy_will_not_drop
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from recoverctl import failpoints
from recoverctl.actions.restore import prepare, restore
from recoverctl.adapters import fsio, http
from recoverctl.core import pg
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.services import stack as stack_service
from recoverctl.services.restore import Prepared, RestoreResult
from tests.unit.fakes import (
    COMPOSE_YML,
    FakeStack,
    Tables,
    app_tables,
    custom_dump,
    engine_lost,
    in_use,
    load_skips_copy_of,
    make_stack,
    parse_dump,
    write_backup,
)

UNCHANGED = "Nothing was changed: vault is as it was."
SERVING_AGAIN = "The previous database is serving again as vault."
BACKUP = app_tables(users=5, secrets=7)  # what the backup holds; the live database: app_tables()


@pytest.fixture
def st(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeStack:
    return make_stack(tmp_path, monkeypatch, app_tables())


@pytest.fixture
def path(st: FakeStack) -> Path:
    return write_backup(st.backups, BACKUP)


def _prep(st: FakeStack, spec: str | Path, **kwargs: Any) -> Prepared:
    return prepare(st.session(), str(spec), **kwargs)


def _run(st: FakeStack, spec: str | Path, *, safety: bool = True, **kwargs: Any) -> RestoreResult:
    session = st.session()
    return restore(prepare(session, str(spec), safety_backup=safety), session, **kwargs)


def _fails(st: FakeStack, spec: str | Path, **kwargs: Any) -> RecoverctlError:
    with pytest.raises(RecoverctlError) as info:
        _run(st, spec, **kwargs)
    return info.value


def _unchanged(st: FakeStack, live: Tables | None) -> None:
    """The previous database serves under its name, nothing else is left, the app runs."""
    if live is None:
        assert "vault" not in st.db.databases
    else:
        assert st.db.databases["vault"] is live
    assert st.db.names() == ({"vault"} if live is not None else set())
    assert st.app_states() == {"backend": "running", "frontend": "running"}


def _notes(path: Path) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = json.loads(
        path.with_name(path.name + ".verify.json").read_text()
    )["results"]
    return results


def _on_step(text_start: str, action: Any) -> Any:
    def step(text: str) -> None:
        if text.startswith(text_start):
            action()

    return step


# --- prepare -----------------------------------------------------------------------------------


def test_plan(st: FakeStack, path: Path) -> None:
    plan = _prep(st, path).plan
    assert plan.backup == str(path) and plan.backup_format == "custom"
    assert (plan.backup_stack, plan.backup_tables, plan.backup_rows) == ("dev", 4, 19)
    assert (plan.project, plan.stack, plan.database) == ("vault-dev", "dev", "vault")
    assert (plan.current.exists, plan.current.tables, plan.current.rows) == (True, 4, 9)
    assert plan.scratch.startswith("vault__restore_") and plan.keep_as.startswith(
        "vault__pre_restore_"
    )
    assert plan.app_services == ("backend",) and plan.safety_backup and plan.leftovers == ()
    assert plan.warnings == ()
    assert not any(line.split()[0] in ("create", "drop", "swap") for line in st.db.log)
    assert st.db.sessions_opened == 1


def test_plan_lists_leftovers(st: FakeStack, path: Path) -> None:
    for name in (
        "vault__restore_20240101_000000",
        "vault__pre_restore_20240101_000000",
        "recoverctl_verify_20240101_000000_abcdef",
        "vault_other",
    ):
        st.db.databases[name] = {}
    assert set(_prep(st, path).plan.leftovers) == {
        "vault__restore_20240101_000000",
        "vault__pre_restore_20240101_000000",
        "recoverctl_verify_20240101_000000_abcdef",
    }


def test_prepare_latest_without_backups(st: FakeStack) -> None:
    with pytest.raises(RecoverctlError) as info:
        _prep(st, "latest")
    assert info.value.code is ErrorCode.BACKUP_NOT_FOUND


def test_prepare_db_not_running(st: FakeStack, path: Path) -> None:
    st.engine.stop(st.engine.of("db")[0])
    with pytest.raises(RecoverctlError) as info:
        _prep(st, path)
    assert info.value.code is ErrorCode.DB_NOT_RUNNING


def _refused(st: FakeStack, path: Path) -> RecoverctlError:
    with pytest.raises(RecoverctlError) as info:
        _prep(st, path)
    err = info.value
    assert err.code is ErrorCode.BACKUP_CORRUPT
    assert err.message.startswith(f"Refusing to restore {path.name}: ")
    assert err.message.endswith(". Nothing was changed.")
    assert _notes(path)[-1]["ok"] is False
    assert not any(line.startswith("create") for line in st.db.log)
    return err


def test_refuses_a_changed_file(st: FakeStack, path: Path) -> None:
    with path.open("ab") as f:
        f.write(b"x")
    err = _refused(st, path)
    assert err.message.startswith(f"Refusing to restore {path.name}: integrity: ")
    assert err.hint == "Use another backup; keep this one aside for inspection."


def test_refuses_newer_pg_dump(st: FakeStack) -> None:
    data = custom_dump(BACKUP, pg_dump="17.2 (Debian 17.2-1)")
    path = write_backup(st.backups, BACKUP, data=data)
    err = _refused(st, path)
    assert "version: made by pg_dump 17.2" in err.message
    assert err.hint == "Restore it into PostgreSQL 17 or newer (POSTGRES_IMAGE), not 16."


def test_refuses_an_empty_file(st: FakeStack) -> None:
    path = write_backup(st.backups, {}, data=b"", manifest=False)
    err = _refused(st, path)
    assert (
        err.message
        == f"Refusing to restore {path.name}: file: {path.name} is empty. Nothing was changed."
    )
    assert err.hint == "Use another backup."


def test_dry_run_hashes_and_notes(st: FakeStack, path: Path) -> None:
    prep = _prep(st, path, dry_run=True)
    assert prep.inspected.sha256 is not None
    (note,) = _notes(path)
    assert (note["kind"], note["ok"], note["sha256"]) == ("quick", True, prep.inspected.sha256)


# --- success -----------------------------------------------------------------------------------


def test_restore_replaces_the_database(st: FakeStack, path: Path) -> None:
    original = st.db.databases["vault"]
    steps: list[str] = []
    result = _run(st, path, step=steps.append)
    assert st.db.databases["vault"] == BACKUP
    assert st.db.names() == {"vault"}  # scratch renamed, previous copy dropped
    assert (result.tables, result.rows, result.drift, result.kept) == (4, 19, (), None)
    assert result.safety_backup is not None
    assert parse_dump(result.safety_backup.read_bytes()) == original
    assert result.safety_backup.with_name(result.safety_backup.name + ".json").exists()
    assert st.app_states() == {"backend": "running", "frontend": "running"}
    stops = [c for c in st.engine.calls if c.startswith(("stop", "start"))]
    assert stops == ["stop vault-dev-backend-1", "start vault-dev-backend-1"]
    assert [s.split(" ")[0] for s in steps] == [
        "creating", "restoring", "checking", "safety", "stopping", "swapping",
        "starting", "waiting", "comparing",
    ]  # fmt: skip
    assert [name for name, _ in result.steps] == steps
    assert result.app_downtime is not None
    assert _notes(path)[-1]["ok"] is True and _notes(path)[-1]["sha256"]
    assert st.db.sessions_opened == 2  # one for prepare, one for the restore
    # The copy is counted on itself before the swap, and must hold what its load reported.
    counted = {line.split()[1] for line in st.db.log if line.startswith("count_rows")}
    assert counted == {"vault", result.plan.scratch}
    # The load ran as a role of its own, whose database went back to the stack's user.
    assert len(st.db.released) == 1 and not st.db.loaders
    # A transaction per statement, as pg_restore does: the rows get their hint bits then.
    assert [one for _, one in st.db.loads] == [False]


def test_restore_without_safety_backup(st: FakeStack, path: Path) -> None:
    prep = _prep(st, path, safety_backup=False)
    assert "no safety backup: the current data cannot be brought back" in prep.plan.warnings
    result = _run(st, path, safety=False)
    assert result.safety_backup is None
    assert not any(line.startswith("pg_dump") for line in st.db.log)
    assert st.db.databases["vault"] == BACKUP


def test_restore_into_a_missing_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = make_stack(tmp_path, monkeypatch, None)
    path = write_backup(st.backups, BACKUP)
    plan = _prep(st, path).plan
    assert not plan.current.exists
    result = _run(st, path)
    assert result.safety_backup is None  # nothing to save
    assert st.db.databases["vault"] == BACKUP and st.db.names() == {"vault"}
    assert any(line.startswith("rename ") for line in st.db.log)


def test_restore_refused_by_a_psql_without_restricted_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psql 15.8 predates \\restrict: no file is loaded without it, and nothing changes."""
    st = make_stack(tmp_path, monkeypatch, app_tables(), psql="15.8")
    original = st.db.databases["vault"]
    path = write_backup(st.backups, BACKUP, "sql")
    err = _fails(st, path)
    assert err.code is ErrorCode.UPDATE_REFUSED
    assert "no restricted mode" in err.message and "POSTGRES_IMAGE" in (err.hint or "")
    assert not st.db.loads
    _unchanged(st, original)


def test_no_app_service(st: FakeStack, path: Path) -> None:
    compose = COMPOSE_YML.replace(
        "    depends_on:\n      db:\n        condition: service_healthy\n", ""
    )
    st.settings.compose_file.write_text(compose)
    result = _run(st, path)
    assert result.app_downtime is None
    assert not any(c.startswith(("stop", "start")) for c in st.engine.calls)
    assert not any(line.startswith("checkpoint") for line in st.db.log)  # no stop to speed up


def test_checkpoint_before_the_stop(st: FakeStack, path: Path) -> None:
    """The loaded copy is written to disk while the app serves, so that its stop does not
    wait for that writeback."""
    seen: list[str] = []
    _run(st, path, step=_on_step("stopping", lambda: seen.extend(st.db.log)))
    assert "checkpoint postgres" in seen


def test_checkpoint_refused(st: FakeStack, path: Path) -> None:
    """Best effort: a role that may not CHECKPOINT restores all the same."""
    st.db.fail("checkpoint", stderr="ERROR:  permission denied to execute CHECKPOINT")
    result = _run(st, path)
    assert result.app_downtime is not None and st.db.databases["vault"] == BACKUP


def test_app_downtime_is_stop_to_healthy(st: FakeStack, path: Path) -> None:
    st.engine.warming["backend"] = 4  # health "starting" for four looks after its start
    st.engine.unpublish("backend")
    result = _run(st, path)
    assert st.clock.sleeps and set(st.clock.sleeps) == {0.1}  # probed fast, not every second
    assert result.app_downtime == pytest.approx(sum(st.clock.sleeps))


def test_app_probed_on_its_port(st: FakeStack, path: Path) -> None:
    """Its published port answers /healthz: healthy at once, whatever the engine says yet."""
    st.engine.warming["backend"] = 10**6
    result = _run(st, path)
    assert st.clock.sleeps == [] and result.app_downtime == 0


def test_app_port_probed_until_it_answers(
    st: FakeStack, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wait ends within PROBE_EVERY of the app's first 200, not at the next look at the
    engine; the engine is looked at again after PROBE_BURST of refusals."""
    st.engine.warming["backend"] = 10**6
    answers = iter([0] * 30 + [200])
    monkeypatch.setattr(http, "get", lambda *_a, **_k: http.Reply(next(answers), ""))
    looks: list[str] = []
    real_statuses = st.engine.statuses

    def statuses(project: str) -> Any:
        looks.append(project)
        return real_statuses(project)

    monkeypatch.setattr(st.engine, "statuses", statuses)
    result = _run(st, path)
    assert next(answers, None) is None  # every answer asked for, the 200 last
    # 30 refusals: a burst of PROBE_BURST, one look at the engine again, the rest
    assert st.clock.sleeps.count(0.1) == 1 and len(looks) == 2
    assert set(st.clock.sleeps) == {0.1, stack_service.PROBE_EVERY}
    first = st.clock.sleeps.index(0.1)
    assert first * stack_service.PROBE_EVERY == pytest.approx(stack_service.PROBE_BURST, abs=0.03)
    assert result.app_downtime == pytest.approx(sum(st.clock.sleeps))


def test_drift_after_start(st: FakeStack, path: Path) -> None:
    def app_writes() -> None:
        st.db.databases["vault"]["public.auth_user"].append("6\tnew-user")

    result = _run(st, path, step=_on_step("comparing", app_writes))
    assert result.drift == ("table public.auth_user has 6 rows, the backup had 5",)
    assert result.to_json()["drift_after_start"] == list(result.drift)


def test_recount_fails(st: FakeStack, path: Path) -> None:
    def fault() -> None:
        st.db.fail("count_rows", database="vault", stderr="ERROR:  canceling statement")

    result = _run(st, path, step=_on_step("comparing", fault))
    assert result.drift == (
        "could not count the rows again (a query in the db container failed (exit 1): "
        "ERROR:  canceling statement)",
    )
    assert st.db.databases["vault"] == BACKUP


def test_previous_copy_will_not_drop(st: FakeStack, path: Path) -> None:
    original = st.db.databases["vault"]
    result = _run(st, path, step=_on_step("comparing", lambda: st.db.fail("drop")))
    assert result.kept is not None and result.kept.startswith("vault__pre_restore_")
    assert st.db.databases[result.kept] is original
    assert result.to_json()["previous_database_kept_as"] == result.kept


# --- failures before the swap: nothing changed -------------------------------------------------


def test_restore_while_locked(st: FakeStack, path: Path) -> None:
    original = st.db.databases["vault"]
    session = st.session()
    prep = prepare(session, str(path))
    with fsio.project_lock("vault-dev", "backup"), pytest.raises(RecoverctlError) as info:
        restore(prep, session)
    assert info.value.code is ErrorCode.LOCKED
    _unchanged(st, original)
    assert not any(line.startswith("create") for line in st.db.log)


def test_scratch_cannot_be_created(st: FakeStack, path: Path) -> None:
    original = st.db.databases["vault"]
    st.db.fail("create", stderr="ERROR:  permission denied to create database")
    err = _fails(st, path)
    assert err.code is ErrorCode.COMMAND_FAILED and err.exit_code == 1
    assert err.message == (
        "a query in the db container failed (exit 1): ERROR:  permission denied to create "
        f"database. {UNCHANGED}"
    )
    _unchanged(st, original)
    assert not any(c.startswith("stop") for c in st.engine.calls)


def test_load_fails(st: FakeStack, path: Path) -> None:
    original = st.db.databases["vault"]
    st.db.fail(
        "pg_restore_into",
        stderr="pg_restore: error: could not execute query: ERROR:  out of memory",
        cut=300,
    )
    err = _fails(st, path)
    assert err.code is ErrorCode.BACKUP_CORRUPT
    assert err.message == (
        "Loading the backup failed: pg_restore: pg_restore: error: could not execute query: "
        f"ERROR:  out of memory. {UNCHANGED}"
    )
    assert err.hint == "The backup does not restore; try another one (`recoverctl list`)."
    _unchanged(st, original)  # the half-loaded scratch copy was dropped


def test_archive_not_read_whole(st: FakeStack, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """psql committed what it got, but pg_restore stopped short (no pipefail in the
    container's sh): the line it adds after the archive is missing, nothing is swapped."""
    original = st.db.databases["vault"]
    real = st.db._echoed

    def cut(kind: str, database: str) -> bytes:
        return real(kind, database).replace(pg.ARCHIVE_WHOLE.encode(), b"")

    monkeypatch.setattr(st.db, "_echoed", cut)
    err = _fails(st, path)
    assert err.code is ErrorCode.BACKUP_CORRUPT
    assert err.message == (
        f"Loading the backup failed: pg_restore: it stopped before the end. {UNCHANGED}"
    )
    _unchanged(st, original)


def test_counts_a_table_the_load_did_not_copy(
    st: FakeStack, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_skips_copy_of(monkeypatch, st.db, "public.vault_secret")
    counted = _counted_tables(st, monkeypatch)
    result = _run(st, path, safety=False)
    assert (result.tables, result.rows) == (4, 19)
    assert counted == [ALL_TABLES]  # every table, on the copy itself, before the swap


def test_counts_an_inheritance_parent_as_the_manifest_does(
    st: FakeStack, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """count(*) of a table with inheritance children adds theirs (the manifest's count);
    its COPY holds only its own rows: that table is counted by a query, the rest by the load."""
    st.db.parents = {"public.auth_user"}
    real = st.db._echoed

    def own_rows_only(kind: str, database: str) -> bytes:
        lines = real(kind, database).decode().splitlines()
        at = next(i for i, ln in enumerate(lines) if ln.startswith("COPY public.auth_user "))
        lines[at + 1] = "COPY 0"
        return ("\n".join(lines) + "\n").encode()

    monkeypatch.setattr(st.db, "_echoed", own_rows_only)
    counted = _counted_tables(st, monkeypatch)
    result = _run(st, path, safety=False)
    # Each row once, where it is stored: the parent's own (its COPY, 0 here) and its
    # children's in theirs (none in this fake), so 5 fewer than the manifest's sum.
    assert (result.tables, result.rows) == (4, 14)
    assert counted == [ALL_TABLES]


ALL_TABLES = [
    "public.auth_user", "public.django_migrations", "public.vault_secret", "public.vault_userkey"
]  # fmt: skip


def _counted_tables(st: FakeStack, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The tables each count of the scratch copy asked for (as the load's role; the
    settled database's counts are not)."""
    asked: list[list[str]] = []
    real = st.db.query_as

    def query_as(role: str, sql: str, database: str) -> Any:
        if database.startswith("vault__restore") and sql.startswith("SELECT '"):
            asked.append(re.findall(r"SELECT '([^']*)'", sql))
        return real(role, sql, database)

    monkeypatch.setattr(st.db, "query_as", query_as)
    return asked


def test_file_changed_since_prepare(st: FakeStack, path: Path) -> None:
    original = st.db.databases["vault"]
    session = st.session()
    prep = prepare(session, str(path))
    data = bytearray(path.read_bytes())
    data[-30] ^= 1  # same size: only the load's sha256 can tell
    path.write_bytes(data)
    with pytest.raises(RecoverctlError) as info:
        restore(prep, session)
    assert info.value.code is ErrorCode.BACKUP_CORRUPT
    assert info.value.message.startswith(f"Refusing to restore {path.name}: integrity: sha256 ")
    assert info.value.message.endswith(UNCHANGED)
    assert _notes(path)[-1]["ok"] is False
    _unchanged(st, original)


def test_rows_do_not_match_the_manifest(st: FakeStack) -> None:
    original = st.db.databases["vault"]
    counts = {t: len(r) for t, r in BACKUP.items()} | {"public.vault_secret": 8}
    path = write_backup(st.backups, BACKUP, tables=counts)
    err = _fails(st, path)
    assert err.code is ErrorCode.BACKUP_CORRUPT
    assert err.message == (
        "The restored data does not match the manifest: table public.vault_secret has 7 rows, "
        f"the backup had 8. {UNCHANGED}"
    )
    _unchanged(st, original)


def test_analyze_fails(st: FakeStack, path: Path) -> None:
    original = st.db.databases["vault"]
    st.db.fail("analyze", stderr="ERROR:  could not resize shared memory segment")
    assert _fails(st, path).code is ErrorCode.COMMAND_FAILED
    _unchanged(st, original)


def test_ctrl_c_during_the_load(st: FakeStack, path: Path) -> None:
    original = st.db.databases["vault"]
    st.db.fail("pg_restore_into", error=KeyboardInterrupt(), cut=200)
    err = _fails(st, path)
    assert (err.code, err.exit_code) == (ErrorCode.INTERRUPTED, 130)
    assert err.message == f"Restore interrupted. {UNCHANGED}"
    assert err.hint == "Run the restore again when ready."
    _unchanged(st, original)


def test_safety_backup_fails(st: FakeStack, path: Path) -> None:
    original = st.db.databases["vault"]
    st.db.fail("pg_dump", stderr="pg_dump: error: could not open file", cut=100)
    err = _fails(st, path)
    assert err.code is ErrorCode.COMMAND_FAILED
    assert err.message == (
        "pg_dump failed (exit 1): pg_dump: error: could not open file; no backup was written. "
        + UNCHANGED
    )
    _unchanged(st, original)
    assert st.files() == sorted([path.name, path.name + ".json", path.name + ".verify.json"])
    assert not any(c.startswith("stop") for c in st.engine.calls)  # the app served throughout


def test_ctrl_c_during_the_safety_backup(st: FakeStack, path: Path) -> None:
    original = st.db.databases["vault"]
    st.db.fail("pg_dump", error=KeyboardInterrupt(), cut=100)
    err = _fails(st, path)
    assert (err.code, err.exit_code) == (ErrorCode.INTERRUPTED, 130)
    assert err.message.startswith("Backup interrupted; the partial file was removed")
    assert err.message.endswith(UNCHANGED)
    _unchanged(st, original)
    assert not any(name.endswith(".partial") for name in st.files())


def test_app_will_not_stop(st: FakeStack, path: Path) -> None:
    original = st.db.databases["vault"]
    st.engine.fail("stop", engine_lost("stop vault-dev-backend-1"))
    err = _fails(st, path)
    assert err.code is ErrorCode.ENGINE_UNREACHABLE
    assert err.message.endswith(UNCHANGED)
    _unchanged(st, original)


def test_ctrl_c_before_the_swap(st: FakeStack, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = st.db.databases["vault"]

    def reach(name: str) -> None:
        if name == "restore.before-swap":
            assert st.app_states()["backend"] == "exited"
            raise KeyboardInterrupt

    monkeypatch.setattr(failpoints, "reach", reach)
    err = _fails(st, path)
    assert err.code is ErrorCode.INTERRUPTED
    assert err.message == f"Restore interrupted. {UNCHANGED}"
    assert err.hint is not None and err.hint.startswith("The safety backup is ")
    _unchanged(st, original)


# --- the swap ----------------------------------------------------------------------------------


def test_swap_retried_while_in_use(st: FakeStack, path: Path) -> None:
    st.db.fail("swap", stderr=in_use("vault"), times=2)
    _run(st, path)
    assert st.clock.sleeps == [0.5, 1.0]
    assert st.db.databases["vault"] == BACKUP


def test_clients_keep_reconnecting(st: FakeStack, path: Path) -> None:
    original = st.db.databases["vault"]
    st.db.reconnecting.add("vault")
    err = _fails(st, path)
    assert err.code is ErrorCode.DB_IN_USE
    assert err.message == (
        f"Could not swap the databases: clients kept reconnecting to vault. {UNCHANGED}"
    )
    # The safety backup stays named beside the cause's own hint.
    assert err.hint is not None and err.hint.startswith(
        "Stop whatever else connects to the database, then restore again. The safety backup is "
    )
    assert st.clock.sleeps == [0.5, 1.0, 1.5, 2.0, 2.5]
    _unchanged(st, original)


def test_swap_fails_otherwise(st: FakeStack, path: Path) -> None:
    original = st.db.databases["vault"]
    fault = st.db.fail("swap", stderr="ERROR:  must be owner of database vault", times=None)
    err = _fails(st, path)
    assert err.code is ErrorCode.COMMAND_FAILED and fault.fired == 1  # not retried
    assert "must be owner of database vault" in err.message and err.message.endswith(UNCHANGED)
    _unchanged(st, original)


def test_sigint_during_the_swap(st: FakeStack, path: Path) -> None:
    """Ctrl-C while the swap runs: the swap finishes, then the rollback undoes it."""
    original = st.db.databases["vault"]
    st.db.fail("swap", sigint=True)
    err = _fails(st, path)
    assert err.code is ErrorCode.INTERRUPTED
    assert err.message == f"Restore interrupted. {SERVING_AGAIN}"
    assert any(
        line.startswith("swap vault") for line in st.db.log[st.db.log.index("swap vault") + 1 :]
    )
    _unchanged(st, original)


def test_ctrl_c_after_the_swap(st: FakeStack, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    original = st.db.databases["vault"]

    def reach(name: str) -> None:
        if name == "restore.after-swap":
            assert st.db.databases["vault"] == BACKUP
            raise KeyboardInterrupt

    monkeypatch.setattr(failpoints, "reach", reach)
    err = _fails(st, path)
    assert err.message == f"Restore interrupted. {SERVING_AGAIN}"
    _unchanged(st, original)


# --- after the swap: the rollback --------------------------------------------------------------


def test_app_fails_on_the_restored_database(st: FakeStack, path: Path) -> None:
    original = st.db.databases["vault"]
    st.engine.crash_on_start("backend", log="django.db.utils.ProgrammingError: no such column")
    err = _fails(st, path)
    assert err.code is ErrorCode.STACK_UNHEALTHY
    assert err.message == (
        f"Service backend exited with code 1; the stack is not healthy. {SERVING_AGAIN}"
    )
    assert err.hint is not None and err.hint.startswith(
        "Read its logs (recoverctl logs backend), fix the cause, then run up again. "
        "The safety backup is "
    )
    assert err.details == (
        "last log lines of backend:\ndjango.db.utils.ProgrammingError: no such column"
    )
    _unchanged(st, original)  # the failed copy was dropped; the app started again
    safety = [n for n in st.files() if n.endswith(".dump") and n != path.name]
    assert len(safety) == 1 and safety[0] + ".json" in st.files()


def test_app_fails_when_there_was_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    st = make_stack(tmp_path, monkeypatch, None)
    path = write_backup(st.backups, BACKUP)
    st.engine.crash_on_start("backend")
    err = _fails(st, path)
    assert err.code is ErrorCode.STACK_UNHEALTHY
    assert err.message.endswith(". vault did not exist before and still does not.")
    _unchanged(st, None)


def test_app_never_healthy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = make_stack(tmp_path, monkeypatch, app_tables(), up_timeout=2)
    path = write_backup(st.backups, BACKUP)
    original = st.db.databases["vault"]
    st.engine.warming["backend"] = 10**6
    st.engine.unpublish("backend")  # no port to probe, no exec-form healthcheck
    err = _fails(st, path)
    assert err.code is ErrorCode.STACK_UNHEALTHY
    assert err.message == (
        "Timed out after 2 s waiting for the stack: backend is running, starting. " + SERVING_AGAIN
    )
    assert set(st.clock.sleeps) == {0.1}
    st.engine.warming["backend"] = 0
    st.engine.of("backend")[0].attrs["State"]["Health"]["Status"] = "healthy"
    _unchanged(st, original)


def test_engine_refuses_to_start_the_app(st: FakeStack, path: Path) -> None:
    original = st.db.databases["vault"]
    st.engine.fail("start", engine_lost("start vault-dev-backend-1"))
    err = _fails(st, path)
    assert err.code is ErrorCode.ENGINE_UNREACHABLE  # the rollback finished: its own code
    assert err.message.endswith(SERVING_AGAIN)
    _unchanged(st, original)


def test_rollback_cannot_swap_back(st: FakeStack, path: Path) -> None:
    st.engine.crash_on_start("backend")
    st.db.fail("swap", after=1, stderr="ERROR:  could not write to file: No space left on device")
    err = _fails(st, path)
    assert (err.code, err.exit_code) == (ErrorCode.ROLLBACK_INCOMPLETE, 1)
    keep_as = next(n for n in st.db.names() if n.startswith("vault__pre_restore_"))
    assert err.message == (
        "Service backend exited with code 1; the stack is not healthy. Rolling back could not "
        "finish (a query in the db container failed (exit 1): ERROR:  could not write to file: "
        f"No space left on device): vault may be the restored copy; the previous one is {keep_as}. "
        "Once the database answers: recoverctl up, then recoverctl restore latest --dry-run "
        "lists the leftovers."
    )
    assert st.db.databases["vault"] == BACKUP  # exactly what the message says


def test_rollback_fails_before_the_swap(st: FakeStack, path: Path) -> None:
    original = st.db.databases["vault"]
    st.db.fail("pg_restore_into", stderr="pg_restore: error: out of memory")
    st.db.fail("databases_like", stderr="ERROR:  too many connections")
    err = _fails(st, path)
    assert err.code is ErrorCode.ROLLBACK_INCOMPLETE
    assert "): vault still holds the previous data. Once the database answers" in err.message
    assert st.db.databases["vault"] is original


def test_engine_gone_after_the_swap(
    st: FakeStack, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def reach(name: str) -> None:
        if name == "restore.after-swap":
            st.engine.unreachable = True

    monkeypatch.setattr(failpoints, "reach", reach)
    err = _fails(st, path)
    assert err.code is ErrorCode.ROLLBACK_INCOMPLETE
    assert "vault may be the restored copy; the previous one is vault__pre_restore_" in err.message
    assert st.db.databases["vault"] == BACKUP


def test_rollback_with_a_long_database_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "vault_production_database_of_the_company"  # 40 characters; PostgreSQL allows 63
    st = make_stack(tmp_path, monkeypatch, app_tables(), database=name)
    path = write_backup(st.backups, BACKUP)
    original = st.db.databases[name]
    st.engine.crash_on_start("backend")
    err = _fails(st, path)
    assert st.db.databases[name] is original, err.message


def test_sigint_during_the_rollback(st: FakeStack, path: Path) -> None:
    original = st.db.databases["vault"]
    st.engine.crash_on_start("backend")
    st.db.fail("databases_like", sigint=True)  # the rollback's first query
    err = _fails(st, path)
    assert err.code is ErrorCode.STACK_UNHEALTHY  # the failure, not the Ctrl-C
    assert err.message.endswith(SERVING_AGAIN)
    _unchanged(st, original)


def test_sigint_while_settling(st: FakeStack, path: Path) -> None:
    def ctrl_c() -> None:
        st.db.fail("count_rows", database="vault", sigint=True)

    result = _run(st, path, step=_on_step("comparing", ctrl_c))
    assert result.drift == () and result.kept is None
    assert st.db.databases["vault"] == BACKUP and st.db.names() == {"vault"}


def test_a_role_left_by_an_interrupted_load_is_named_in_the_plan(
    st: FakeStack, path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = st.db._answer

    def with_leftover(kind: str, sql: str, database: str, frozen: Any) -> str:
        extra = "recoverctl_load_0123456789ab\n" if kind == "roles" else ""
        return real(kind, sql, database, frozen) + extra

    monkeypatch.setattr(st.db, "_answer", with_leftover)
    prep = _prep(st, path)
    assert any("role recoverctl_load_0123456789ab was left" in n for n in prep.plan.notes)
