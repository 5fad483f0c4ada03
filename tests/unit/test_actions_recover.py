"""recover (actions/recover.py, with services/stack.py bring_up and wait_ready, and the
restore service) over the fake engine and database. `docker compose up` is faked (it starts
the fake containers); services/doctor's run is replaced by a stub returning canned checks,
since its own checks are tested elsewhere and only recover's use of its report is under test
here.

Every branch, and the test that takes it:

bring_up
  env file missing (ENV_INVALID), compose never run        -> test_env_file_missing
  engine unreachable (ENGINE_UNREACHABLE), compose never run -> test_engine_unreachable
  docker compose up fails (COMMAND_FAILED, masked)         -> test_compose_up_fails
  wait_ready: a service crashes (STACK_UNHEALTHY + log tail) -> test_stack_unhealthy_after_up
  wait_ready: never healthy (timeout)                      -> test_stack_times_out_after_up
data_rows
  none of the data tables exist (no count query)           -> test_no_data_tables_is_empty
  rows > 0 without --from: restore skipped, stack checked  -> test_data_present_is_kept
rows == 0 or --from
  pick_backup: --from / newest verified / else latest      -> test_from_is_used, test_fresh_machine_restores_the_newest_verified,
                                                              test_unverified_backups_take_the_latest
  no backup, no --from: BACKUP_NOT_FOUND told for recover  -> test_empty_database_and_no_backup
  --from missing: its own error, not rewritten             -> test_from_a_missing_file
  latest refused (BACKUP_CORRUPT) passes through           -> test_latest_is_corrupt
  rows > 0 with --from: confirmation asked, refused        -> test_data_present_confirmation_refused
  rows > 0 with --from: confirmed, safety backup taken     -> test_data_present_confirmed
  restore fails / Ctrl-C inside recover                    -> test_restore_fails_inside_recover, test_ctrl_c_inside_recover
after the restore
  final wait_ready fails                                   -> test_final_wait_fails
  health checks asked for (service, db, app, key); a FAIL makes it not ok
                                                           -> test_fresh_machine_restores_the_newest_verified,
                                                              test_failing_check
  no published backend port: no url                       -> test_no_backend_port
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest

from recoverctl.actions.recover import DATA_TABLES, RecoverResult, recover
from recoverctl.core.checks import FAIL, OK, WARN, Check
from recoverctl.core.manifest import VerifyResult
from recoverctl.core.restore_plan import RestorePlan
from recoverctl.errors import CommandFailed, EngineError, ErrorCode, RecoverctlError
from recoverctl.services import catalog
from recoverctl.services import doctor as checks
from recoverctl.services.doctor import DoctorReport
from recoverctl.services.session import StackSession
from tests.unit.fakes import FakeStack, Tables, app_tables, make_stack, write_backup

BACKUP = app_tables(users=4, secrets=6)
DOCTOR_CHECKS = (
    Check("service.backend", OK, "running, healthy"),
    Check("db.reachable", OK, "answers"),
    Check("app.migrations", OK, "all applied"),
    Check("key.configured", WARN, "no key file configured"),
)


def empty_tables() -> Tables:
    """What a new machine's stack holds after up: the app's migrations, no users' data."""
    return {t: [] for t in DATA_TABLES} | {"public.django_migrations": ["auth\t0012_x"]}


class Doctor:
    """doctor.run's stand-in: records what it was asked for, returns canned checks."""

    def __init__(self, checks: tuple[Check, ...] = DOCTOR_CHECKS):
        self.checks = checks
        self.calls: list[tuple[str, ...]] = []

    def __call__(
        self,
        session: StackSession,
        groups: Iterable[str] = checks.GROUPS,
        only: Iterable[str] | None = None,
    ) -> DoctorReport:
        self.calls.append(tuple(only or ()))
        return DoctorReport(session.project, session.settings.stack, self.checks, 0.01)


@pytest.fixture
def doctor(monkeypatch: pytest.MonkeyPatch) -> Doctor:
    stub = Doctor()
    monkeypatch.setattr(checks, "run", stub)
    return stub


def _stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tables: Tables | None, **kwargs: Any
) -> FakeStack:
    st = make_stack(tmp_path, monkeypatch, tables, **kwargs)
    for c in st.engine.all:  # a machine after a reboot: nothing runs until up
        st.engine.stop(c)
    st.engine.calls.clear()
    return st


@pytest.fixture
def fresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doctor: Doctor) -> FakeStack:
    return _stack(tmp_path, monkeypatch, empty_tables())


@pytest.fixture
def used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doctor: Doctor) -> FakeStack:
    return _stack(tmp_path, monkeypatch, app_tables())


def _recover(st: FakeStack, **kwargs: Any) -> RecoverResult:
    return recover(st.session(), **kwargs)


def _fails(st: FakeStack, **kwargs: Any) -> RecoverctlError:
    with pytest.raises(RecoverctlError) as info:
        _recover(st, **kwargs)
    return info.value


def _verified(path: Path) -> Path:
    catalog.record(path, VerifyResult(kind="deep", ok=True, at=_at(path), sha256=None))
    return path


def _at(path: Path) -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _when(day: int) -> Any:
    from datetime import UTC, datetime

    return datetime(2025, 3, day, 12, 0, tzinfo=UTC)


# --- restoring on a new machine ----------------------------------------------------------------


def test_fresh_machine_restores_the_newest_verified(fresh: FakeStack, doctor: Doctor) -> None:
    verified = _verified(write_backup(fresh.backups, BACKUP, when=_when(1)))
    write_backup(fresh.backups, app_tables(users=1), when=_when(2))  # newer, never verified
    progress: list[str] = []
    result = _recover(fresh, progress=progress.append)
    assert result.restored_from == verified and result.restore_skipped is None
    assert fresh.db.databases["vault"] == BACKUP
    assert not any(line.startswith("pg_dump") for line in fresh.db.log)  # nothing to save
    names = [name for name, _ in result.steps]
    assert names[:2] == ["bringing the stack up", f"restoring {verified.name}"]
    assert names[-2:] == [
        "waiting until the stack is ready",
        "checking the database, migrations, admin and key",
    ]
    assert names[2:-2] and all(name.startswith("restore: ") for name in names[2:-2])
    assert all(seconds >= 0 for _, seconds in result.steps)
    assert result.to_json()["steps"][0] == {"step": "bringing the stack up", "seconds": ANY}
    assert progress[0] == "bringing the stack up" and "building and starting containers" in progress
    assert [argv[-4:] for argv in fresh.compose_runs] == [
        ("up", "--detach", "--build", "--remove-orphans")
    ]
    assert doctor.calls == [("service", "db", "app", "key")]
    assert result.checks == DOCTOR_CHECKS
    assert result.ok and result.url == "http://127.0.0.1:18000"
    assert "open http://127.0.0.1:18000/" in result.manual_step
    assert result.to_json()["restored_from"] == str(verified)
    assert fresh.app_states() == {"backend": "running", "frontend": "running"}


def test_unverified_backups_take_the_latest(fresh: FakeStack) -> None:
    write_backup(fresh.backups, app_tables(users=1), when=_when(1))
    newest = write_backup(fresh.backups, BACKUP, when=_when(2))
    write_backup(fresh.backups, app_tables(users=9), when=_when(3), stack="prod")
    assert _recover(fresh).restored_from == newest
    assert fresh.db.databases["vault"] == BACKUP


def test_from_is_used(fresh: FakeStack) -> None:
    _verified(write_backup(fresh.backups, app_tables(users=1), when=_when(2)))
    chosen = write_backup(fresh.backups, BACKUP, when=_when(1))
    assert _recover(fresh, spec=str(chosen)).restored_from == chosen


def test_no_data_tables_is_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doctor: Doctor
) -> None:
    st = _stack(tmp_path, monkeypatch, {"public.django_migrations": []})
    write_backup(st.backups, BACKUP)
    assert _recover(st).restored_from is not None
    assert "count_rows vault" not in st.db.log[: st.db.log.index("related postgres")]


def test_empty_database_and_no_backup(fresh: FakeStack) -> None:
    err = _fails(fresh)
    assert err.code is ErrorCode.BACKUP_NOT_FOUND
    assert err.message == (f"The database is empty and there is no dev backup in {fresh.backups}.")
    assert err.hint == (
        "Copy your newest backup (and its .json manifest) there, then: recoverctl recover --from FILE"
    )
    assert fresh.app_states() == {"backend": "running", "frontend": "running"}  # up happened


def test_from_a_missing_file(fresh: FakeStack, tmp_path: Path) -> None:
    err = _fails(fresh, spec=str(tmp_path / "missing.dump"))
    assert err.code is ErrorCode.USAGE
    assert err.message == f"No backup at {tmp_path / 'missing.dump'}."


def test_latest_is_corrupt(fresh: FakeStack) -> None:
    path = write_backup(fresh.backups, BACKUP)
    with path.open("ab") as f:
        f.write(b"junk")
    original = fresh.db.databases["vault"]
    err = _fails(fresh)
    assert err.code is ErrorCode.BACKUP_CORRUPT
    assert err.message.startswith(f"Refusing to restore {path.name}: integrity: ")
    assert fresh.db.databases["vault"] is original


# --- data present ------------------------------------------------------------------------------


def test_data_present_is_kept(used: FakeStack, doctor: Doctor) -> None:
    write_backup(used.backups, BACKUP)
    original = used.db.databases["vault"]
    result = _recover(used)
    assert result.restored_from is None
    assert result.restore_skipped == (
        "the database already holds data (7 rows in users, keys and secrets); "
        "to replace it: recoverctl restore FILE"
    )
    assert used.db.databases["vault"] is original
    assert doctor.calls == [("service", "db", "app", "key")] and result.ok


def test_data_present_confirmation_refused(used: FakeStack) -> None:
    path = write_backup(used.backups, BACKUP)
    original = used.db.databases["vault"]
    plans: list[RestorePlan] = []

    def refuse(plan: RestorePlan) -> None:
        plans.append(plan)
        raise RecoverctlError(
            "Restoring over existing data needs confirmation.",
            "Pass --yes or type the database name.",
            code=ErrorCode.CONFIRMATION_REQUIRED,
        )

    err = _fails(used, spec=str(path), confirm=refuse)
    assert (err.code, err.exit_code) == (ErrorCode.CONFIRMATION_REQUIRED, 2)
    (plan,) = plans
    assert plan.current.exists and plan.current.rows == 9 and plan.safety_backup
    assert used.db.databases["vault"] is original and used.db.names() == {"vault"}
    assert not any(line.split()[0] in ("create", "pg_dump") for line in used.db.log)


def test_data_present_confirmed(used: FakeStack) -> None:
    path = write_backup(used.backups, BACKUP)
    confirmed: list[RestorePlan] = []
    result = _recover(used, spec=str(path), confirm=confirmed.append)
    assert len(confirmed) == 1 and result.restored_from == path
    assert used.db.databases["vault"] == BACKUP
    assert any(line.startswith("pg_dump") for line in used.db.log)  # the safety backup


# --- failures ----------------------------------------------------------------------------------


def test_env_file_missing(fresh: FakeStack) -> None:
    fresh.settings.env_file.unlink()
    err = _fails(fresh)
    assert err.code is ErrorCode.ENV_INVALID
    assert err.message == "Env file .env is missing: the dev stack reads its settings from it."
    assert fresh.compose_runs == []


def test_engine_unreachable(fresh: FakeStack) -> None:
    def refuse() -> Any:
        raise EngineError("Cannot reach the Docker engine at unix:///x.sock: refused")

    with pytest.raises(RecoverctlError) as info:
        recover(fresh.session(connect=refuse))
    assert info.value.code is ErrorCode.ENGINE_UNREACHABLE
    assert fresh.compose_runs == []


def test_compose_up_fails(fresh: FakeStack) -> None:
    fresh.compose_error = CommandFailed(
        "docker compose up (vault-dev) failed (exit 1).",
        "Its last lines are above; fix the cause and run recoverctl up again.",
        details="Error response from daemon: pull access denied",
    )
    err = _fails(fresh)
    assert err.code is ErrorCode.COMMAND_FAILED
    assert err.details == "Error response from daemon: pull access denied"
    assert fresh.db.log == []


def test_stack_unhealthy_after_up(fresh: FakeStack) -> None:
    fresh.engine.crash_on_start("backend", log="ImproperlyConfigured: SECRET_KEY\nexit")
    write_backup(fresh.backups, BACKUP)
    err = _fails(fresh)
    assert err.code is ErrorCode.STACK_UNHEALTHY
    assert err.message == "Service backend exited with code 1; the stack is not healthy."
    assert err.details == "last log lines of backend:\nImproperlyConfigured: SECRET_KEY\nexit"
    assert fresh.db.log == []


def test_stack_times_out_after_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doctor: Doctor
) -> None:
    st = _stack(tmp_path, monkeypatch, empty_tables(), up_timeout=5)
    st.engine.warming["backend"] = 10**6
    st.engine.of("backend")[0].attrs["State"]["Health"]["Status"] = "starting"
    progress: list[str] = []
    with pytest.raises(RecoverctlError) as info:
        _recover(st, progress=progress.append)
    assert info.value.code is ErrorCode.STACK_UNHEALTHY
    assert info.value.message == (
        "Timed out after 5 s waiting for the stack: backend is running, starting."
    )
    assert info.value.hint is not None and "RECOVERCTL_UP_TIMEOUT" in info.value.hint
    assert set(st.clock.sleeps) == {1.0} and len(st.clock.sleeps) == 5
    assert progress.count("waiting for backend is running, starting") == 5


def test_restore_fails_inside_recover(fresh: FakeStack) -> None:
    write_backup(fresh.backups, BACKUP)
    original = fresh.db.databases["vault"]
    fresh.db.fail("pg_restore_into", stderr="pg_restore: error: out of memory")
    err = _fails(fresh)
    assert err.code is ErrorCode.BACKUP_CORRUPT
    assert err.message.endswith("Nothing was changed: vault is as it was.")
    assert fresh.db.databases["vault"] is original and fresh.db.names() == {"vault"}


def test_ctrl_c_inside_recover(fresh: FakeStack) -> None:
    write_backup(fresh.backups, BACKUP)
    fresh.db.fail("pg_restore_into", error=KeyboardInterrupt(), cut=100)
    err = _fails(fresh)
    assert (err.code, err.exit_code) == (ErrorCode.INTERRUPTED, 130)
    assert err.message == "Restore interrupted. Nothing was changed: vault is as it was."
    assert fresh.app_states() == {"backend": "running", "frontend": "running"}


def test_final_wait_fails(fresh: FakeStack) -> None:
    write_backup(fresh.backups, BACKUP)

    def progress(text: str) -> None:
        if text.startswith("restore: comparing row counts again"):  # the restore's last step
            fresh.engine.of("frontend")[0].attrs["State"].update(Status="exited", ExitCode=137)

    err = _fails(fresh, progress=progress)
    assert err.code is ErrorCode.STACK_UNHEALTHY
    assert err.message == "Service frontend exited with code 137; the stack is not healthy."
    assert fresh.db.databases["vault"] == BACKUP  # the restore itself stands


def test_failing_check(fresh: FakeStack, doctor: Doctor) -> None:
    write_backup(fresh.backups, BACKUP)
    doctor.checks = (*DOCTOR_CHECKS, Check("app.admin", FAIL, "no superuser", "createsuperuser"))
    result = _recover(fresh)
    assert not result.ok and result.checks[-1].name == "app.admin"
    assert fresh.db.databases["vault"] == BACKUP


def test_no_backend_port(fresh: FakeStack) -> None:
    fresh.engine.unpublish("backend")
    write_backup(fresh.backups, BACKUP)
    result = _recover(fresh)
    assert result.url is None
    assert "open the vault's address/" in result.manual_step


def test_to_time_without_target_is_refused_before_anything(fresh: FakeStack) -> None:
    with pytest.raises(RecoverctlError) as info:
        recover(fresh.session(), to_time="latest")
    assert info.value.code is ErrorCode.USAGE
    assert "--target" in info.value.message
    assert fresh.compose_runs == []


def test_to_time_with_from_is_refused_before_anything(fresh: FakeStack) -> None:
    with pytest.raises(RecoverctlError) as info:
        recover(fresh.session(), spec="latest", target="nas", to_time="latest")
    assert info.value.code is ErrorCode.USAGE
    assert fresh.compose_runs == []


def test_a_bad_time_is_refused_before_anything(fresh: FakeStack) -> None:
    with pytest.raises(RecoverctlError) as info:
        recover(fresh.session(), target="nas", to_time="2026-12-02")
    assert info.value.code is ErrorCode.USAGE and "date without a time" in info.value.message
    assert fresh.compose_runs == []
