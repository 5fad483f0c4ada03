"""backup (actions/backup.py, services/dump.py) over the fake engine and database.

Every branch, and the test that takes it:

actions/backup.py
  session.db(): db stopped / no db container (DB_NOT_RUNNING) -> test_db_not_running, test_db_has_no_container
  session.engine: engine unreachable (ENGINE_UNREACHABLE)     -> test_engine_unreachable
  the engine goes away after attaching (query/exec refused)   -> test_engine_lost_before_the_dump
  project_lock held by another operation (LOCKED)             -> test_another_operation_holds_the_lock
  output_dir given / default backup_dir                       -> test_output_dir_is_used, test_custom_backup
services/dump.py take_backup
  ensure_private_dir fails (WRITE_FAILED)                     -> test_unusable_output_dir
  the folder refuses the .partial (open_partial OSError)      -> test_folder_refuses_new_files
  name taken this second: numbered                            -> test_two_backups_in_one_second_and_the_shrink_warning
  BEGIN / pg_export_snapshot fails                            -> test_snapshot_cannot_start
  the facts thread fails (query error / Ctrl-C)               -> test_row_counts_fail, test_ctrl_c_while_counting_rows
  pg_dump exits non-zero (stderr cause, code, details)        -> test_pg_dump_fails
  pg_dump's container stops (no exit code)                    -> test_pg_dump_container_stops
  the engine's stream breaks mid-dump (EngineError)           -> test_engine_stream_breaks_mid_dump
  failpoint backup.written (Ctrl-C after the fsync)           -> test_ctrl_c_at_backup_written
  Ctrl-C during pg_dump                                       -> test_ctrl_c_during_pg_dump
  disk full (ENOSPC) / other OSError while writing            -> test_disk_full, test_other_write_error
  manifest cannot be written                                  -> test_manifest_write_fails
  publish fails after the manifest landed (manifest removed)  -> test_publish_fails_after_manifest
  Ctrl-C after the manifest landed (manifest removed)         -> test_ctrl_c_after_manifest
  another BaseException (not a gzip stream): nothing left     -> test_plain_stream_not_gzip_leaves_nothing
                                            -> test_plain_stream_not_gzip_is_backup_failed
_check_written
  gzip stream cut (sink incomplete)                           -> test_plain_stream_cut_mid_gzip
  not a dump at all                                           -> test_output_not_a_dump
  plain dump without its trailer (problems)                   -> test_plain_dump_without_trailer
  format other than asked                                     -> test_format_other_than_asked
  pg_dump_version missing -> "unknown"                        -> test_pg_dump_version_unknown
_read_facts: no django_migrations table / with it           -> test_no_migrations_table, test_custom_backup
_warnings / _previous_manifest: smaller than half -> warning; -> test_two_backups_in_one_second_and_the_shrink_warning
  other format or other stack not compared                   -> test_previous_of_another_format_or_stack_is_not_compared
happy paths: custom, plain (inflated), counts from the snapshot -> test_custom_backup,
  test_plain_backup_is_inflated, test_counts_come_from_the_dump_snapshot
the fake's dumps are what core/dumpcheck reads as whole      -> test_fake_dump_is_what_dumpcheck_reads
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import stat
import zlib
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, Self

import pytest

from recoverctl import failpoints
from recoverctl.actions.backup import backup
from recoverctl.adapters import fsio
from recoverctl.adapters.engine import ENGINE_HINT
from recoverctl.errors import EngineError, ErrorCode, RecoverctlError
from recoverctl.services import dump
from tests.unit.fakes import (
    PG_DUMP_VERSION,
    SERVER_VERSION,
    FakeSnapshot,
    FakeStack,
    app_tables,
    custom_dump,
    make_stack,
    parse_dump,
    plain_dump,
)

NOTHING = "; no backup was written."
LOGS_HINT = "Check `recoverctl logs db` and run the backup again."


@pytest.fixture
def st(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeStack:
    return make_stack(tmp_path, monkeypatch, app_tables())


class FrozenNow(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> Self:
        return cls(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def _fails(st: FakeStack, **kwargs: Any) -> RecoverctlError:
    with pytest.raises(RecoverctlError) as info:
        backup(st.session(), **kwargs)
    return info.value


def _nothing_left(st: FakeStack) -> None:
    """No .partial, no dump without a manifest, no manifest without a dump."""
    assert st.files() == []


# --- happy paths -----------------------------------------------------------------------------


def test_custom_backup(st: FakeStack) -> None:
    seen: list[int] = []
    result = backup(st.session(), on_bytes=seen.append)
    data = result.path.read_bytes()
    assert st.files() == [result.path.name, result.manifest_path.name]
    assert result.path.name.startswith("backup_") and result.path.suffix == ".dump"
    assert parse_dump(data) == app_tables()
    m = json.loads(result.manifest_path.read_text())
    assert m["sha256"] == hashlib.sha256(data).hexdigest() and m["size"] == len(data)
    assert m["tables"] == st.db.rows()
    assert m["migrations"] == {"auth": "0012_alter_user_first_name", "vault": "0003_secret"}
    assert (m["server_version"], m["pg_dump_version"]) == (SERVER_VERSION, PG_DUMP_VERSION)
    assert (m["format"], m["stack"], m["project"], m["database"]) == (
        "custom", "dev", "vault-dev", "vault",
    )  # fmt: skip
    assert seen and seen[-1] == len(data) and seen == sorted(seen)
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(st.backups.stat().st_mode) == 0o700
    assert result.warnings == ()
    assert any(line.startswith("pg_dump vault") for line in st.db.log)
    # The counts beside the dump run serial and uncompiled, set in the snapshot's transaction.
    facts = [
        ln.split()[0] for ln in st.db.log if ln.split()[0] in ("counts_beside_dump", "count_rows")
    ]
    assert facts == ["counts_beside_dump", "count_rows"]
    assert st.db.snapshots == {}  # the snapshot session ended


def test_plain_backup_is_inflated(st: FakeStack) -> None:
    result = backup(st.session(), fmt="sql")
    data = result.path.read_bytes()
    assert result.path.suffix == ".sql"
    assert data == plain_dump(app_tables())  # gzip on the wire, plain SQL on disk
    assert result.manifest.sha256 == hashlib.sha256(data).hexdigest()


def test_output_dir_is_used(st: FakeStack, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "deeper"
    result = backup(st.session(), output_dir=out)
    assert result.path.parent == out and st.files() == []


def test_counts_come_from_the_dump_snapshot(st: FakeStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows the app writes once the snapshot is taken are in neither the dump nor the
    manifest: both describe the snapshot pg_dump was given."""

    class AppWritesMeanwhile(FakeSnapshot):
        def export(self) -> str:
            snapshot = super().export()
            st.db.databases["vault"]["public.vault_secret"].append("99\tnew")
            return snapshot

    monkeypatch.setattr(st.db, "snapshot", lambda: AppWritesMeanwhile(st.db))
    result = backup(st.session())
    in_file = {t: len(r) for t, r in parse_dump(result.path.read_bytes()).items()}
    assert result.manifest.tables == in_file == {t: len(r) for t, r in app_tables().items()}
    assert st.db.rows()["public.vault_secret"] == in_file["public.vault_secret"] + 1


def test_no_migrations_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    st = make_stack(tmp_path, monkeypatch, {"public.t": ["1"]})
    assert backup(st.session()).manifest.migrations == {}


def test_two_backups_in_one_second_and_the_shrink_warning(
    st: FakeStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dump, "datetime", FrozenNow)
    st.db.databases["vault"]["public.vault_secret"] = [f"{i}\t{'x' * 200}" for i in range(50)]
    first = backup(st.session())
    st.db.databases["vault"]["public.vault_secret"] = []
    second = backup(st.session())
    assert (first.path.name, second.path.name) == (
        "backup_2025-03-01_120000.dump",
        "backup_2025-03-01_120000_2.dump",
    )
    (warning,) = second.warnings
    assert "under half of the previous one (backup_2025-03-01_120000.dump" in warning


def test_previous_of_another_format_or_stack_is_not_compared(st: FakeStack) -> None:
    st.db.databases["vault"]["public.vault_secret"] = [f"{i}\t{'x' * 200}" for i in range(50)]
    backup(st.session(), fmt="sql")
    st.db.databases["vault"]["public.vault_secret"] = []
    assert backup(st.session()).warnings == ()


def test_pg_dump_version_unknown(st: FakeStack) -> None:
    data = gzip.compress(plain_dump(app_tables(), pg_dump=None))
    st.db.fail("pg_dump", output=data, exit_code=0)
    assert backup(st.session(), fmt="sql").manifest.pg_dump_version == "unknown"


# --- before anything is written ----------------------------------------------------------------


def test_db_not_running(st: FakeStack) -> None:
    st.engine.stop(st.engine.of("db")[0])
    err = _fails(st)
    assert err.code is ErrorCode.DB_NOT_RUNNING
    assert err.message == "Service db is not running (exited)."
    assert err.hint == "Start it: recoverctl up (or recoverctl restart db)"
    assert not st.backups.exists()


def test_db_has_no_container(st: FakeStack) -> None:
    st.engine.all.remove(st.engine.of("db")[0])
    err = _fails(st)
    assert err.code is ErrorCode.DB_NOT_RUNNING
    assert err.message == "Service db has no container in project vault-dev."


def test_engine_unreachable(st: FakeStack) -> None:
    def refuse() -> Any:
        raise EngineError("Cannot reach the Docker engine at unix:///x.sock: refused", ENGINE_HINT)

    with pytest.raises(RecoverctlError) as info:
        backup(st.session(connect=refuse))
    assert (info.value.code, info.value.hint) == (ErrorCode.ENGINE_UNREACHABLE, ENGINE_HINT)
    assert not st.backups.exists()


def test_another_operation_holds_the_lock(st: FakeStack) -> None:
    with fsio.project_lock("vault-dev", "restore"):
        err = _fails(st)
    assert err.code is ErrorCode.LOCKED
    assert err.message == f"Another operation is running on vault-dev: restore (pid {os.getpid()})."
    assert not st.backups.exists() and st.db.log == []


def test_unusable_output_dir(st: FakeStack, tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    err = _fails(st, output_dir=a_file)
    assert err.code is ErrorCode.WRITE_FAILED
    assert err.message == f"Cannot use {a_file} for backups: File exists; no backup was written."
    assert err.hint == (
        "Check that the folder is writable (mode 0700, yours) and has room, or pass --output-dir."
    )


def test_folder_refuses_new_files(st: FakeStack, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(final: Path) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied", str(final) + ".partial")

    monkeypatch.setattr(fsio, "open_partial", refuse)
    with pytest.raises(BaseException) as info:
        backup(st.session())
    assert isinstance(info.value, RecoverctlError)
    assert info.value.code is ErrorCode.WRITE_FAILED


# --- the dump fails: nothing is left -----------------------------------------------------------


def test_snapshot_cannot_start(st: FakeStack) -> None:
    st.db.fail("export_snapshot", stderr="ERROR:  out of shared memory")
    err = _fails(st)
    assert err.code is ErrorCode.COMMAND_FAILED
    assert err.message == (
        "a query in the db container failed (exit 1): ERROR:  out of shared memory" + NOTHING
    )
    _nothing_left(st)


def test_row_counts_fail(st: FakeStack) -> None:
    st.db.fail("count_rows", stderr='ERROR:  relation "public.x" does not exist')
    err = _fails(st)
    assert err.code is ErrorCode.COMMAND_FAILED and err.message.endswith(NOTHING)
    assert 'relation "public.x" does not exist' in err.message
    _nothing_left(st)


def test_pg_dump_fails(st: FakeStack) -> None:
    stderr = (
        "pg_dump: error: query failed: ERROR:  canceling statement due to lock timeout\n"
        "pg_dump: detail: Query was: LOCK TABLE public.vault_secret IN ACCESS SHARE MODE"
    )
    st.db.fail("pg_dump", stderr=stderr, cut=300)
    err = _fails(st)
    assert err.code is ErrorCode.COMMAND_FAILED
    assert err.message == (
        "pg_dump failed (exit 1): pg_dump: error: query failed: ERROR:  canceling statement "
        "due to lock timeout" + NOTHING
    )
    assert err.hint == "Check `recoverctl logs db`, then run the backup again."
    assert err.details == stderr
    _nothing_left(st)


def test_pg_dump_container_stops(st: FakeStack) -> None:
    st.db.fail("pg_dump", exit_code=None, cut=200)
    err = _fails(st)
    assert err.code is ErrorCode.COMMAND_FAILED
    assert err.message == "pg_dump failed (no exit code: the container stopped)" + NOTHING
    _nothing_left(st)


def test_engine_stream_breaks_mid_dump(st: FakeStack) -> None:
    st.db.fail("pg_dump", error=EngineError("The engine's stream broke: reset"), cut=500)
    err = _fails(st)
    assert err.code is ErrorCode.ENGINE_UNREACHABLE
    assert err.message == "The engine's stream broke: reset" + NOTHING
    _nothing_left(st)


def test_engine_lost_before_the_dump(st: FakeStack) -> None:
    session = st.session()
    session.db()
    st.engine.unreachable = True
    with pytest.raises(RecoverctlError) as info:
        backup(session)
    assert info.value.code is ErrorCode.ENGINE_UNREACHABLE
    assert info.value.message.endswith(NOTHING)
    _nothing_left(st)


def test_plain_stream_cut_mid_gzip(st: FakeStack) -> None:
    st.db.fail("pg_dump", cut=150, exit_code=0)
    err = _fails(st, fmt="sql")
    assert err.code is ErrorCode.BACKUP_FAILED
    assert err.message == "pg_dump's output ended in the middle of its compressed stream" + NOTHING
    assert err.hint == LOGS_HINT
    _nothing_left(st)


def test_output_not_a_dump(st: FakeStack) -> None:
    st.db.fail("pg_dump", output=b"pg_dump: warning: something\n" * 3, exit_code=0)
    err = _fails(st)
    assert err.code is ErrorCode.BACKUP_FAILED
    assert err.message == (
        "pg_dump's output is not a valid dump (not a PostgreSQL dump (neither a custom archive "
        "nor a plain SQL dump))" + NOTHING
    )
    _nothing_left(st)


def test_plain_dump_without_trailer(st: FakeStack) -> None:
    cut = plain_dump(app_tables())[:-80]
    st.db.fail("pg_dump", output=gzip.compress(cut), exit_code=0)
    err = _fails(st, fmt="sql")
    assert err.code is ErrorCode.BACKUP_FAILED
    assert err.message.startswith(
        "pg_dump's output is incomplete (no 'dump complete' trailer at the end: the file is truncated"
    )
    assert err.message.endswith(NOTHING)
    _nothing_left(st)


def test_format_other_than_asked(st: FakeStack) -> None:
    st.db.fail("pg_dump", output=plain_dump(app_tables()), exit_code=0)
    err = _fails(st)
    assert err.code is ErrorCode.BACKUP_FAILED
    assert err.message == "pg_dump's output is incomplete (expected custom, got sql)" + NOTHING
    _nothing_left(st)


def test_plain_stream_not_gzip_leaves_nothing(st: FakeStack) -> None:
    st.db.fail("pg_dump", output=plain_dump(app_tables()), exit_code=0)
    with pytest.raises(BaseException):  # noqa: B017 - whatever it is, nothing may be left
        backup(st.session(), fmt="sql")
    _nothing_left(st)


def test_plain_stream_not_gzip_is_backup_failed(st: FakeStack) -> None:
    st.db.fail("pg_dump", output=plain_dump(app_tables()), exit_code=0)
    with pytest.raises(BaseException) as info:
        backup(st.session(), fmt="sql")
    assert not isinstance(info.value, zlib.error)
    assert isinstance(info.value, RecoverctlError)
    assert info.value.code is ErrorCode.BACKUP_FAILED


# --- writing fails -----------------------------------------------------------------------------


def _fsync_fails(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    real = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".partial"):
            raise OSError(code, os.strerror(code))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_disk_full(st: FakeStack, monkeypatch: pytest.MonkeyPatch) -> None:
    _fsync_fails(monkeypatch, errno.ENOSPC)
    err = _fails(st)
    assert err.code is ErrorCode.DISK_FULL
    assert err.message == f"Disk full while writing the backup in {st.backups}{NOTHING}"
    assert err.hint == "Free space there, or pass --output-dir with a disk that has room."
    _nothing_left(st)


def test_other_write_error(st: FakeStack, monkeypatch: pytest.MonkeyPatch) -> None:
    _fsync_fails(monkeypatch, errno.EIO)
    err = _fails(st)
    assert err.code is ErrorCode.WRITE_FAILED
    assert err.message == (
        f"Could not write the backup in {st.backups}: Input/output error{NOTHING}"
    )
    _nothing_left(st)


def test_manifest_write_fails(st: FakeStack, monkeypatch: pytest.MonkeyPatch) -> None:
    def write_atomic(final: Path, data: bytes) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(fsio, "write_atomic", write_atomic)
    err = _fails(st)
    assert err.code is ErrorCode.WRITE_FAILED
    assert "Read-only file system" in err.message
    _nothing_left(st)


def _publish_dump_raises(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> None:
    real = fsio.publish

    def publish(partial: Path, final: Path) -> None:
        if final.suffix == ".dump":
            assert final.with_name(final.name + ".json").exists()  # the manifest landed first
            raise error
        real(partial, final)

    monkeypatch.setattr(fsio, "publish", publish)


def test_publish_fails_after_manifest(st: FakeStack, monkeypatch: pytest.MonkeyPatch) -> None:
    _publish_dump_raises(monkeypatch, OSError(errno.EIO, "Input/output error"))
    assert _fails(st).code is ErrorCode.WRITE_FAILED
    _nothing_left(st)


# --- Ctrl-C ------------------------------------------------------------------------------------

INTERRUPTED = "Backup interrupted; the partial file was removed and no backup was written."


def _interrupted(err: RecoverctlError) -> None:
    assert err.code is ErrorCode.INTERRUPTED and err.exit_code == 130
    assert (err.message, err.hint) == (INTERRUPTED, "Run the backup again when ready.")


def test_ctrl_c_during_pg_dump(st: FakeStack) -> None:
    st.db.fail("pg_dump", error=KeyboardInterrupt(), cut=400)
    _interrupted(_fails(st))
    _nothing_left(st)


def test_ctrl_c_while_counting_rows(st: FakeStack) -> None:
    st.db.fail("count_rows", error=KeyboardInterrupt())  # in the facts thread: handed back
    _interrupted(_fails(st))
    _nothing_left(st)


def test_ctrl_c_at_backup_written(st: FakeStack, monkeypatch: pytest.MonkeyPatch) -> None:
    reached: list[str] = []

    def reach(name: str) -> None:
        reached.append(name)
        if name == "backup.written":
            raise KeyboardInterrupt

    monkeypatch.setattr(failpoints, "reach", reach)
    _interrupted(_fails(st))
    assert reached == ["backup.written"]
    _nothing_left(st)


def test_ctrl_c_after_manifest(st: FakeStack, monkeypatch: pytest.MonkeyPatch) -> None:
    _publish_dump_raises(monkeypatch, KeyboardInterrupt())
    _interrupted(_fails(st))
    _nothing_left(st)


def test_fake_dump_is_what_dumpcheck_reads() -> None:
    """The fake's bytes are the real formats' heads and tails (else the tests above prove
    nothing about dumpcheck)."""
    from recoverctl.core import dumpcheck

    data = custom_dump(app_tables())
    info = dumpcheck.inspect(data[: dumpcheck.HEAD_BYTES], data[-dumpcheck.TAIL_BYTES :])
    assert (info.format, info.database, info.pg_dump_major) == ("custom", "vault", 16)
    plain = plain_dump(app_tables())
    info = dumpcheck.inspect(plain, plain)
    assert (info.format, info.problems) == ("sql", ())
