"""The routine's order and stops, its lock and its report, with the steps replaced by fakes
and monitoring sent to a real local HTTP server."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from recoverctl import signals
from recoverctl.actions import routine as action
from recoverctl.adapters import fsio
from recoverctl.cli import app as app_module
from recoverctl.core.checks import FAIL, OK, Check
from recoverctl.core.drill import CheckRow, DrillError, DrillRecord, record_name
from recoverctl.core.manifest import Manifest
from recoverctl.errors import ConfigError, ErrorCode, Interrupted, RecoverctlError
from recoverctl.services import catalog, offsite
from recoverctl.services import routine as service
from recoverctl.services.drill import DrillResult
from recoverctl.services.dump import BackupResult
from recoverctl.services.offsite import Copy, PushResult
from recoverctl.services.routine import Pushed
from recoverctl.services.session import StackSession
from recoverctl.services.verification import VerifyReport
from tests.unit.fakes import make_backup, make_settings
from tests.unit.test_monitor import Recorder

pytestmark = pytest.mark.usefixtures("private_locks")


@pytest.fixture
def server() -> Iterator[Recorder]:
    recorder = Recorder().start()
    yield recorder
    recorder.stop()


def drill_record(result: str = "passed", days_old: float = 0.0, **extra: Any) -> DrillRecord:
    started = datetime.now(UTC) - timedelta(days=days_old)
    values: dict[str, Any] = {
        "result": result,
        "project": "x",
        "drill_project": "x-drill",
        "stack": "dev",
        "source": "local",
        "backup": "backup_2026-11-01_030000.dump",
        "started_at": started,
        "finished_at": started + timedelta(seconds=40),
        "recovery_seconds": 30.0,
        "seconds": 40.0,
        "recoverctl_version": "test",
    }
    return DrillRecord.model_validate({**values, **extra})


def save_drill(session: StackSession, record: DrillRecord) -> None:
    folder = catalog.drill_dir(session.settings)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / record_name(record.started_at)).write_text(json.dumps(record.to_json()))


class Fake:
    """The routine's steps, recording the order they ran in."""

    def __init__(
        self,
        folder: Path,
        *,
        verify_ok: bool = True,
        backup_fails: bool = False,
        drilled: DrillResult | Callable[[], DrillResult] | None = None,
    ):
        self.folder = folder
        self.calls: list[str] = []
        self.verify_ok = verify_ok
        self.backup_fails = backup_fails
        self.deep_asked: bool | None = None
        self.drilled = drilled

    def backup(self, session: StackSession, _on_bytes: object) -> BackupResult:
        self.calls.append("backup")
        if self.backup_fails:
            raise RecoverctlError("pg_dump failed; no backup was written.", "Check the db.",
                                  code=ErrorCode.BACKUP_FAILED)  # fmt: skip
        path = make_backup(self.folder, datetime.now(UTC), state="never")
        manifest = Manifest.model_validate_json(path.with_name(path.name + ".json").read_bytes())
        return BackupResult(path, path.with_name(path.name + ".json"), manifest)

    def verify(self, _s: StackSession, _path: Path, deep: bool, _on_bytes: object) -> VerifyReport:
        self.calls.append("verify")
        self.deep_asked = deep
        check = Check("integrity", OK if self.verify_ok else FAIL, "x")
        return VerifyReport(_path, "custom", deep, (check,), None, 0.1)

    def prune(self, _s: StackSession, _step: object) -> tuple[int, list[str]]:
        self.calls.append("prune")
        return 2, ["local: kept 3, deleted 2"]

    def push(self, _s: StackSession, _p: Path) -> Pushed:
        self.calls.append("push")
        return Pushed(("nas",))

    def drill(self, _s: StackSession, _progress: object) -> DrillResult | None:
        self.calls.append("drill")
        return self.drilled() if callable(self.drilled) else self.drilled

    def steps(self, **extra: object) -> action.Steps:
        given: dict[str, Any] = {"backup": self.backup, "verify": self.verify, "prune": self.prune}
        return action.Steps(**{**given, **extra})

    def all_steps(self, **extra: object) -> action.Steps:
        """With push and drill faked too: the routine's every step."""
        return self.steps(push=self.push, drill=self.drill, **extra)


def session_for(tmp_path: Path, toml: str) -> StackSession:
    return StackSession(make_settings(tmp_path, toml))


def monitoring(server: Recorder, textfile: Path, on: str = '["fail", "success"]') -> str:
    return (
        "[monitoring]\n"
        f'healthchecks_url = "{server.url}/ping/uuid"\n'
        f'notify = ["json://127.0.0.1:{server.port}/hook"]\n'
        f"notify_on = {on}\n"
        f'prometheus_textfile = "{textfile}"\n'
    )


def test_all_steps_in_order_and_a_success_reported(tmp_path: Path, server: Recorder) -> None:
    prom = tmp_path / "recoverctl.prom"
    session = session_for(tmp_path, "[retention]\nkeep_last = 3\n" + monitoring(server, prom))
    fake = Fake(session.settings.backup_dir)
    report = action.routine(session, steps=fake.steps())
    assert report.ok and report.exit_status == 0
    assert fake.calls == ["backup", "verify", "prune"]
    assert fake.deep_asked is True  # no deep verification yet: it is due
    assert [(s.name, s.status) for s in report.steps] == [
        ("backup", "ok"), ("verify", "ok"), ("push", "skipped"), ("pitr", "skipped"),
        ("drill", "skipped"), ("prune", "ok"), ("report", "ok"),
    ]  # fmt: skip
    paths = server.paths()
    assert paths[0].startswith("/ping/uuid/start?rid=")
    assert paths[1].startswith("/ping/uuid?rid=")
    assert paths[0].split("rid=")[1] == paths[1].split("rid=")[1]
    assert paths[2] == "/hook"
    assert json.loads(server.received[2].body)["type"] == "success"
    record = service.load_record(session.settings)
    assert record is not None and record.ok and record.pruned == 2
    assert record.last_success_at is not None
    text = prom.read_text()
    assert 'recoverctl_routine_last_exit_status{project="x",stack="dev"} 0' in text
    assert "recoverctl_backup_last_size_bytes" in text


def test_a_failed_backup_stops_everything_and_pings_fail_with_the_log(
    tmp_path: Path, server: Recorder
) -> None:
    prom = tmp_path / "recoverctl.prom"
    session = session_for(tmp_path, "[retention]\nkeep_last = 3\n" + monitoring(server, prom, '["fail"]'))
    fake = Fake(session.settings.backup_dir, backup_fails=True)
    report = action.routine(session, steps=fake.steps())
    assert report.error is not None and report.error.code == ErrorCode.BACKUP_FAILED
    assert report.exit_status == 1
    assert fake.calls == ["backup"]
    assert [(s.name, s.status) for s in report.steps][:6] == [
        ("backup", "failed"), ("verify", "skipped"), ("push", "skipped"), ("pitr", "skipped"),
        ("drill", "skipped"), ("prune", "skipped"),
    ]  # fmt: skip
    fail = next(r for r in server.received if r.path.startswith("/ping/uuid/fail"))
    assert b"pg_dump failed" in fail.body and b"last log lines" in fail.body
    assert b"backup: failed" in fail.body
    hook = next(r for r in server.received if r.path == "/hook")
    assert json.loads(hook.body)["type"] == "failure"
    record = service.load_record(session.settings)
    assert record is not None and not record.ok and record.error_code == "backup_failed"
    assert 'recoverctl_routine_last_exit_status{project="x",stack="dev"} 1' in prom.read_text()


def test_success_is_not_notified_unless_asked(tmp_path: Path, server: Recorder) -> None:
    session = session_for(tmp_path, "[retention]\nkeep_last = 3\n"
                          + monitoring(server, tmp_path / "m.prom", '["fail"]'))  # fmt: skip
    action.routine(session, steps=Fake(session.settings.backup_dir).steps())
    assert "/hook" not in server.paths()


def test_a_failed_verification_stops_push_and_prune(tmp_path: Path) -> None:
    session = session_for(tmp_path, "[retention]\nkeep_last = 3\n")
    fake = Fake(session.settings.backup_dir, verify_ok=False)
    report = action.routine(session, steps=fake.steps())
    assert report.error is not None and report.error.code == ErrorCode.BACKUP_CORRUPT
    assert fake.calls == ["backup", "verify"]
    assert "nothing was pushed or pruned" in report.error.message


def with_nas(tmp_path: Path, extra: str = "") -> StackSession:
    nas = tmp_path / "nas"
    nas.mkdir(exist_ok=True)
    return session_for(
        tmp_path,
        f'[recoverctl]\n{extra}[retention]\nkeep_last = 3\n'
        f'[targets.nas]\ntype = "dir"\npath = "{nas}"\n',
    )


def test_the_push_step_is_the_off_site_service_under_the_project_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = with_nas(tmp_path)
    seen: list[Path] = []

    def push_backup(s: StackSession, path: Path, **_progress: object) -> PushResult:
        seen.append(path)
        # One writer per target: the push holds the project lock.
        with pytest.raises(RecoverctlError) as held, fsio.project_lock(s.project, "push 2"):
            pass
        assert held.value.code is ErrorCode.LOCKED
        copy = Copy("nas", "nas", path.name, "failed", "none",
                    error=RecoverctlError("nas is full.", code=ErrorCode.DISK_FULL))  # fmt: skip
        return PushResult(path, (copy,))

    monkeypatch.setattr(offsite, "push_backup", push_backup)
    fake = Fake(session.settings.backup_dir)
    report = action.routine(session, steps=fake.steps())
    assert report.error is not None and report.error.code == ErrorCode.OFFSITE_FAILED
    assert report.exit_status == 3 and len(seen) == 1
    assert fake.calls == ["backup", "verify"]
    assert [(s.name, s.status) for s in report.steps][2:6] == [
        ("push", "failed"), ("pitr", "skipped"), ("drill", "skipped"), ("prune", "skipped"),
    ]  # fmt: skip
    record = service.load_record(session.settings)
    assert record is not None and record.targets["nas"].ok is False


def test_a_push_failure_of_any_kind_is_an_off_site_failure(tmp_path: Path) -> None:
    nas = tmp_path / "nas"
    nas.mkdir()
    session = session_for(
        tmp_path, f'[retention]\nkeep_last = 3\n[targets.nas]\ntype = "dir"\npath = "{nas}"\n'
    )

    def unreachable(_s: StackSession, _p: Path) -> Pushed:
        raise RecoverctlError("target nas: unreachable.", "Mount it.",
                              code=ErrorCode.TARGET_UNREACHABLE)  # fmt: skip

    def pushed(_s: StackSession, _p: Path) -> Pushed:
        return Pushed(("nas",))

    fake = Fake(session.settings.backup_dir)
    report = action.routine(session, steps=fake.steps(push=unreachable))
    assert report.error is not None and report.error.code == ErrorCode.OFFSITE_FAILED
    assert report.error.message == "target nas: unreachable."
    fake = Fake(session.settings.backup_dir)
    report = action.routine(session, steps=fake.steps(push=pushed))
    assert report.ok and fake.calls == ["backup", "verify", "prune"]
    record = service.load_record(session.settings)
    assert record is not None and record.targets["nas"].ok


def test_a_monitoring_endpoint_that_is_down_never_fails_the_routine(tmp_path: Path) -> None:
    down = Recorder().start()
    down.stop()
    session = session_for(tmp_path, "[retention]\nkeep_last = 3\n"
                          + monitoring(down, tmp_path / "no-such-dir" / "m.prom"))  # fmt: skip
    report = action.routine(session, steps=Fake(session.settings.backup_dir).steps())
    assert report.ok and report.exit_status == 0
    assert report.steps[-1].name == "report" and report.steps[-1].status == "failed"
    assert any("healthchecks start ping" in w for w in report.warnings)
    assert any("prometheus textfile" in w for w in report.warnings)
    # The report step names the monitoring problems themselves (kept in their own list,
    # not told apart from other warnings by their text).
    detail = report.steps[-1].detail
    assert detail.startswith("healthchecks start ping") and "prometheus textfile" in detail
    assert "monitoring:" not in detail and "result is unchanged" not in detail


def test_only_monitoring_problems_fail_the_report_step(tmp_path: Path) -> None:
    # A step's own warning, whatever its words, is not a monitoring problem.
    session = session_for(tmp_path, '[recoverctl]\ndrill_every = 7\n[retention]\nkeep_last = 3\n')
    said = "monitoring: the drill record could not be written"
    fake = Fake(session.settings.backup_dir, drilled=DrillResult(drill_record(), None, (said,)))
    report = action.routine(session, steps=fake.all_steps())
    assert report.ok and said in report.warnings
    assert (report.steps[-1].name, report.steps[-1].status) == ("report", "ok")


def test_no_policy_skips_prune_and_warns(tmp_path: Path) -> None:
    session = session_for(tmp_path, "")
    fake = Fake(session.settings.backup_dir)
    report = action.routine(session, steps=fake.steps())
    assert report.ok and fake.calls == ["backup", "verify"]
    assert any("no [retention] policy" in w for w in report.warnings)


def test_deep_verification_only_when_due(tmp_path: Path) -> None:
    session = session_for(tmp_path, '[recoverctl]\ndeep_every = "1d"\n')
    folder = session.settings.backup_dir
    make_backup(folder, datetime.now(UTC) - timedelta(hours=2), state="deep ok")
    assert not service.deep_due(session.settings)
    fake = Fake(folder)
    action.routine(session, steps=fake.steps())
    assert fake.deep_asked is False
    assert service.deep_due(session.settings, datetime.now(UTC) + timedelta(days=1))


def test_a_second_routine_exits_at_once_without_a_ping(tmp_path: Path, server: Recorder) -> None:
    session = session_for(tmp_path, monitoring(server, tmp_path / "m.prom"))
    fake = Fake(session.settings.backup_dir)
    with service.routine_lock(session.project, "dev"), pytest.raises(RecoverctlError) as caught:
        action.routine(session, steps=fake.steps())
    assert caught.value.code == ErrorCode.ROUTINE_RUNNING
    assert "already running" in caught.value.message
    assert fake.calls == [] and server.received == []
    assert service.load_record(session.settings) is None


def test_doctor_reports_how_the_last_routine_ended(tmp_path: Path) -> None:
    from recoverctl.services import doctor

    session = session_for(tmp_path, "[retention]\nkeep_last = 3\n")
    assert doctor.run(session, only=["backups.routine"]).checks == ()
    action.routine(session, steps=Fake(session.settings.backup_dir, backup_fails=True).steps())
    (check,) = doctor.run(session, only=["backups.routine"]).checks
    assert check.status == "fail" and "backup_failed" in check.evidence
    action.routine(session, steps=Fake(session.settings.backup_dir).steps())
    (check,) = doctor.run(session, only=["backups.routine"]).checks
    assert check.status == "ok"


# --- SIGTERM -------------------------------------------------------------------------------


@pytest.fixture
def sigterm(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Sends the routine the CLI's own SIGTERM handler (it raises KeyboardInterrupt), and
    forgets it after the test."""
    monkeypatch.setattr(signals, "_terminated", False, raising=False)

    def send() -> None:
        app_module._on_sigterm(signal.SIGTERM, None)

    return send


def test_sigterm_is_recorded_as_terminated_as_the_process_exits(
    tmp_path: Path, sigterm: Callable[[], None]
) -> None:
    prom = tmp_path / "m.prom"
    session = session_for(tmp_path, f'[retention]\nkeep_last = 3\n[monitoring]\nprometheus_textfile = "{prom}"\n')
    fake = Fake(session.settings.backup_dir)

    def backup(_s: StackSession, _on_bytes: object) -> BackupResult:
        sigterm()
        raise AssertionError("not reached")

    report = action.routine(session, steps=fake.steps(backup=backup))
    assert report.error is not None and report.error.code == ErrorCode.TERMINATED
    assert report.exit_status == 143  # what cli/app.py exits with
    assert (report.steps[0].name, report.steps[0].status) == ("backup", "failed")
    assert report.steps[0].detail == "terminated"
    record = service.load_record(session.settings)
    assert record is not None and record.exit_status == 143
    assert record.error_code == "terminated"
    assert 'recoverctl_routine_last_exit_status{project="x",stack="dev"} 143' in prom.read_text()


def test_a_step_that_stops_as_interrupted_under_sigterm_is_terminated(
    tmp_path: Path, sigterm: Callable[[], None]
) -> None:
    session = with_nas(tmp_path)
    fake = Fake(session.settings.backup_dir)

    def push(_s: StackSession, _p: Path) -> Pushed:
        try:
            sigterm()
        except KeyboardInterrupt:  # as the push service stops: an Interrupted of its own
            raise Interrupted("Push interrupted; nothing incomplete counts as a copy.") from None
        raise AssertionError("not reached")

    report = action.routine(session, steps=fake.steps(push=push))
    assert report.error is not None and report.error.code == ErrorCode.TERMINATED
    assert report.error.message == "Push interrupted; nothing incomplete counts as a copy."
    record = service.load_record(session.settings)
    assert record is not None and (record.exit_status, record.error_code) == (143, "terminated")


def test_ctrl_c_stays_interrupted(tmp_path: Path, sigterm: Callable[[], None]) -> None:
    session = session_for(tmp_path, "")

    def backup(_s: StackSession, _on_bytes: object) -> BackupResult:
        raise KeyboardInterrupt

    report = action.routine(session, steps=Fake(session.settings.backup_dir).steps(backup=backup))
    assert report.error is not None and report.error.code == ErrorCode.INTERRUPTED
    assert report.exit_status == 130 and report.steps[0].detail == "interrupted"


# --- the drill ---------------------------------------------------------------------------


DRILL_EVERY = "drill_every = 7\n"


def test_a_due_drill_runs_after_push_and_before_prune(tmp_path: Path) -> None:
    session = with_nas(tmp_path, DRILL_EVERY)
    fake = Fake(session.settings.backup_dir, drilled=DrillResult(drill_record(), None))
    report = action.routine(session, steps=fake.all_steps())
    assert report.ok, report.error
    assert fake.calls == ["backup", "verify", "push", "drill", "prune"]
    assert [s.name for s in report.steps] == [
        "backup", "verify", "push", "pitr", "drill", "prune", "report",
    ]  # fmt: skip
    drill = report.steps[4]
    assert drill.status == "ok" and "passed" in drill.detail and "30 s" in drill.detail


def test_no_drill_unless_drill_every_is_set_and_due(tmp_path: Path) -> None:
    session = session_for(tmp_path, "[retention]\nkeep_last = 3\n")
    fake = Fake(session.settings.backup_dir, drilled=DrillResult(drill_record(), None))
    report = action.routine(session, steps=fake.all_steps())
    assert report.ok and "drill" not in fake.calls
    step = next(s for s in report.steps if s.name == "drill")
    assert step.status == "skipped" and "drill_every" in step.detail

    session = session_for(tmp_path, f"[recoverctl]\n{DRILL_EVERY}[retention]\nkeep_last = 3\n")
    save_drill(session, drill_record(days_old=2))  # passed 2 days ago: not due
    save_drill(session, drill_record("failed", days_old=1))  # a failed one does not count
    report = action.routine(session, steps=fake.all_steps())
    assert report.ok and "drill" not in fake.calls
    step = next(s for s in report.steps if s.name == "drill")
    assert step.status == "skipped" and "not due" in step.detail and "7 days" in step.detail

    save_drill(session, drill_record(days_old=8).model_copy(update={"backup": "old.dump"}))
    for path in catalog.drill_dir(session.settings).iterdir():
        if "old.dump" not in path.read_text():
            path.unlink()
    report = action.routine(session, steps=fake.all_steps())
    assert report.ok and fake.calls[-2:] == ["drill", "prune"]


def test_a_failed_drill_exits_1_keeps_what_was_done_and_prunes_nothing(tmp_path: Path) -> None:
    session = with_nas(tmp_path, DRILL_EVERY)
    error = DrillError(code="stack_unhealthy", message="The drill failed while starting the "
                       "drill stack x-drill: app unhealthy. The drill stack x-drill was removed.",
                       hint="Fix the cause, then run the drill again.")  # fmt: skip
    fake = Fake(session.settings.backup_dir,
                drilled=DrillResult(drill_record("failed", error=error), None))  # fmt: skip
    report = action.routine(session, steps=fake.all_steps())
    assert report.error is not None and report.error.code == ErrorCode.STACK_UNHEALTHY
    assert report.exit_status == 1
    assert fake.calls == ["backup", "verify", "push", "drill"]
    assert [(s.name, s.status) for s in report.steps] == [
        ("backup", "ok"), ("verify", "ok"), ("push", "ok"), ("pitr", "skipped"),
        ("drill", "failed"), ("prune", "skipped"), ("report", "ok"),
    ]  # fmt: skip
    assert report.error.message.startswith("The drill failed while starting")
    assert "nothing was pruned" in report.error.message
    assert report.backup is not None and report.backup.exists()  # the backup stays
    record = service.load_record(session.settings)
    assert record is not None and record.exit_status == 1 and record.error_code == "stack_unhealthy"
    assert record.targets["nas"].ok  # the push done before it stands
    assert record.backup == report.backup.name


def test_a_drill_with_failing_checks_or_leftovers_fails_the_routine(tmp_path: Path) -> None:
    session = session_for(tmp_path, f"[recoverctl]\n{DRILL_EVERY}[retention]\nkeep_last = 3\n")
    bad = CheckRow(name="rows", status="fail", evidence="3 tables, 0 rows")
    fake = Fake(session.settings.backup_dir,
                drilled=DrillResult(drill_record("failed", checks=(bad,)), None))  # fmt: skip
    report = action.routine(session, steps=fake.all_steps())
    assert report.error is not None and report.error.code == ErrorCode.CHECKS_FAILED
    assert "rows" in report.error.message and "prune" not in fake.calls

    fake = Fake(session.settings.backup_dir,
                drilled=DrillResult(drill_record(leftovers=("volume x-drill_db",)), None))  # fmt: skip
    report = action.routine(session, steps=fake.all_steps())
    assert report.error is not None and report.error.code == ErrorCode.CLEANUP_INCOMPLETE
    assert "x-drill_db" in report.error.message and report.exit_status == 1


def test_a_drill_that_cannot_start_fails_with_exit_1(tmp_path: Path) -> None:
    session = session_for(tmp_path, f"[recoverctl]\n{DRILL_EVERY}[retention]\nkeep_last = 3\n")

    def no_env() -> DrillResult:
        raise ConfigError("No .env in the project.", "Run recoverctl init.")  # exit 2 alone

    fake = Fake(session.settings.backup_dir, drilled=no_env)
    report = action.routine(session, steps=fake.all_steps())
    assert report.error is not None and report.exit_status == 1
    assert report.error.message.startswith("No .env in the project.")
    assert "prune" not in fake.calls
    assert next(s for s in report.steps if s.name == "drill").status == "failed"


def test_a_bug_in_a_step_is_recorded_then_raised(tmp_path: Path) -> None:
    session = session_for(tmp_path, f"[recoverctl]\n{DRILL_EVERY}[retention]\nkeep_last = 3\n")

    def bug() -> DrillResult:
        raise ZeroDivisionError("division by zero")

    fake = Fake(session.settings.backup_dir, drilled=bug)
    with pytest.raises(ZeroDivisionError):  # its traceback reaches the CLI
        action.routine(session, steps=fake.all_steps())
    record = service.load_record(session.settings)  # and the report ran first
    assert record is not None and record.error_code == "internal_error"
    assert record.backup is not None and "prune" not in fake.calls
