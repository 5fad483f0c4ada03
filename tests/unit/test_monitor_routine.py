"""The routine's order and stops, its lock and its report, with the steps replaced by fakes
and monitoring sent to a real local HTTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recoverctl.actions import routine as action
from recoverctl.core.checks import FAIL, OK, Check
from recoverctl.core.manifest import Manifest
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.services import routine as service
from recoverctl.services.dump import BackupResult
from recoverctl.services.routine import Pushed
from recoverctl.services.session import StackSession
from recoverctl.services.verification import VerifyReport
from tests.unit.test_monitor import Recorder
from tests.unit.test_retention_prune import make_backup, make_settings


@pytest.fixture(autouse=True)
def private_locks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("RECOVERCTL_LOCK_DIR", str(runtime))


@pytest.fixture
def server() -> Iterator[Recorder]:
    recorder = Recorder().start()
    yield recorder
    recorder.stop()


class Fake:
    """The routine's steps, recording the order they ran in."""

    def __init__(self, folder: Path, *, verify_ok: bool = True, backup_fails: bool = False):
        self.folder = folder
        self.calls: list[str] = []
        self.verify_ok = verify_ok
        self.backup_fails = backup_fails
        self.deep_asked: bool | None = None

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

    def steps(self, **extra: object) -> action.Steps:
        return action.Steps(
            backup=self.backup, verify=self.verify, prune=self.prune, **extra  # type: ignore[arg-type]
        )


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
        ("backup", "ok"), ("verify", "ok"), ("push", "skipped"), ("prune", "ok"), ("report", "ok"),
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
    assert [(s.name, s.status) for s in report.steps][:4] == [
        ("backup", "failed"), ("verify", "skipped"), ("push", "skipped"), ("prune", "skipped"),
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


def test_targets_without_a_push_service_fail_with_exit_3_and_never_prune(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "PUSH_SERVICE", "recoverctl.services.no_such_push_service")
    nas = tmp_path / "nas"
    nas.mkdir()
    session = session_for(
        tmp_path, f'[retention]\nkeep_last = 3\n[targets.nas]\ntype = "dir"\npath = "{nas}"\n'
    )
    fake = Fake(session.settings.backup_dir)
    report = action.routine(session, steps=fake.steps())
    assert report.error is not None and report.error.code == ErrorCode.OFFSITE_FAILED
    assert report.exit_status == 3
    assert fake.calls == ["backup", "verify"]
    assert [(s.name, s.status) for s in report.steps][2:4] == [("push", "failed"), ("prune", "skipped")]
    assert "cannot push" in report.error.message


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
    from recoverctl.services import health

    session = session_for(tmp_path, "[retention]\nkeep_last = 3\n")
    assert health.doctor(session, only=["backups.routine"]).checks == ()
    action.routine(session, steps=Fake(session.settings.backup_dir, backup_fails=True).steps())
    (check,) = health.doctor(session, only=["backups.routine"]).checks
    assert check.status == "fail" and "backup_failed" in check.evidence
    action.routine(session, steps=Fake(session.settings.backup_dir).steps())
    (check,) = health.doctor(session, only=["backups.routine"]).checks
    assert check.status == "ok"
