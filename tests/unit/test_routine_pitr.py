"""The routine's point-in-time recovery: the base backup each repository is due, verified,
then expired only after a verification passed; a stalled archiver failing the routine and
its ping; archiving's state in the record and the Prometheus textfile. pgBackRest and the
archiver are an in-memory fake (tests/unit/fakes/pgbackrest.py); the e2e suite runs the
real ones (tests/e2e/test_pitr_e2e.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from recoverctl.actions import routine as action
from recoverctl.core import pitr
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.services import routine as service
from recoverctl.services.routine import PitrState
from recoverctl.services.session import StackSession
from tests.unit.fakes import make_settings
from tests.unit.fakes.pgbackrest import Archiving, FakePgBackRest
from tests.unit.test_monitor import Recorder
from tests.unit.test_monitor_routine import Fake, monitoring

pytestmark = pytest.mark.usefixtures("private_locks")
DAY = timedelta(days=1)


@pytest.fixture
def server() -> Iterator[Recorder]:
    recorder = Recorder().start()
    yield recorder
    recorder.stop()


def pitr_session(tmp_path: Path, extra: str = "", *, enabled: bool = True) -> StackSession:
    for name in ("nas", "usb"):
        (tmp_path / name).mkdir(exist_ok=True)
    session = StackSession(make_settings(tmp_path, (
        "[retention]\nkeep_last = 3\n"
        f'[targets.nas]\ntype = "dir"\npath = "{tmp_path / "nas"}"\n'
        f'[targets.usb]\ntype = "dir"\npath = "{tmp_path / "usb"}"\n'
        '[pitr]\nrepos = ["nas", "usb"]\narchive_timeout = "60s"\nfull_every = "7d"\n'
        'diff_every = "1d"\n' + extra
    )))  # fmt: skip
    if enabled:
        session.ref.pitr_override.parent.mkdir(parents=True, exist_ok=True)
        session.ref.pitr_override.write_text("services: {}\n")
    return session


def attach(session: StackSession, db: FakePgBackRest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "db", lambda: db)


def no_sleep(_: float) -> None:
    return None


# --- when archiving counts as stalled ------------------------------------------------------


def archiver(*, lag: float = 0.0, ready: int = 0, failed: bool = False) -> pitr.Archiver:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    last = now - timedelta(seconds=lag)
    return pitr.Archiver("w1", last, 3 if failed else 0, "w2" if failed else None,
                         now if failed else None, "w3", ready, 1, "on", now)  # fmt: skip


def test_archiving_is_stalled_when_failing_or_lagging_past_its_timeout_and_margin() -> None:
    minute = timedelta(seconds=60)
    assert pitr.stalled(archiver(), minute) is None
    assert pitr.stalled(archiver(lag=500), minute) is None  # idle: nothing waits
    assert pitr.stalled(archiver(lag=119, ready=1), minute) is None  # within the margin
    lagging = pitr.stalled(archiver(lag=121, ready=2), minute)
    assert lagging is not None and "2 segment(s) wait" in lagging and "121 s" in lagging
    failing = pitr.stalled(archiver(lag=30, failed=True), minute)
    assert failing is not None and "w2 failed 3 time(s)" in failing


def test_a_lag_alone_is_measured_again_before_it_counts(tmp_path: Path) -> None:
    db = FakePgBackRest()
    old = db.now - timedelta(hours=5)
    # The first segment after an idle spell: lagging once, archived by the second look.
    db.archiver_rows = [Archiving(old, ready=1), Archiving(db.now)]
    slept: list[float] = []
    assert service.archiving_stalled(db, timedelta(seconds=60), slept.append) is None
    assert slept == [service.STALL_RECHECK_SECONDS]
    db.archiver_rows = [Archiving(old, ready=1), Archiving(old, ready=2)]
    why = service.archiving_stalled(db, timedelta(seconds=60), slept.append)
    assert why is not None and "2 segment(s)" in why
    # A failure is the archiver's own word: no second look.
    db.archiver_rows = [Archiving(old, failed_at=db.now, failed_count=1)]
    slept.clear()
    assert service.archiving_stalled(db, timedelta(seconds=60), slept.append) is not None
    assert slept == []


# --- the base backups ---------------------------------------------------------------------


def test_a_full_to_every_repository_then_verified_then_expired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = pitr_session(tmp_path)
    db = FakePgBackRest(keep_full=2)
    for repo in (1, 2):
        db.hold(repo, "full", 15 * DAY)
        db.hold(repo, "full", 8 * DAY)
    attach(session, db, monkeypatch)
    done = service.base_backups(session, sleep=no_sleep)
    assert done.error is None
    assert db.ran == ["info", "backup 1", "backup 2", "info", "verify 1", "verify 2",
                      "expire 1", "expire 2"]  # fmt: skip
    assert [(r.repo, r.taken, r.verified, r.expired) for r in done.repos] == [
        ("nas", "full", True, True), ("usb", "full", True, True),
    ]  # fmt: skip
    assert all(r.label and r.label.endswith("F") for r in done.repos)
    assert [len(db.repos[k]) for k in (1, 2)] == [2, 2]  # expire kept keep_full


def test_a_differential_when_only_diff_every_has_passed_and_nothing_when_fresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = pitr_session(tmp_path)
    db = FakePgBackRest()
    db.hold(1, "full", 2 * DAY)  # nas: a diff is due
    db.hold(2, "full", timedelta(hours=2))  # usb: nothing is due
    attach(session, db, monkeypatch)
    done = service.base_backups(session, sleep=no_sleep)
    assert done.error is None
    assert [(r.repo, r.taken, r.expired) for r in done.repos] == [
        ("nas", "diff", True), ("usb", None, False),
    ]  # fmt: skip
    assert db.ran == ["info", "backup 1", "info", "verify 1", "expire 1"]
    db.ran.clear()
    again = service.base_backups(session, sleep=no_sleep)
    assert again.error is None and db.ran == ["info"]  # nothing due: nothing to verify


def test_a_failed_verification_expires_nothing_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = pitr_session(tmp_path)
    db = FakePgBackRest(keep_full=1)
    db.failing[("verify", 2)] = "verify command encountered 1 error(s)"
    attach(session, db, monkeypatch)
    done = service.base_backups(session, sleep=no_sleep)
    assert done.error is not None and done.error.code == ErrorCode.PITR_FAILED
    assert "verification of usb failed" in done.error.message
    assert "encountered 1 error" in done.error.message
    assert done.error.message.endswith("Nothing was expired.")
    assert "expire" not in " ".join(db.ran)
    assert [(r.verified, r.expired) for r in done.repos] == [(True, False), (False, False)]


def test_a_failed_backup_to_one_repository_still_backs_up_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = pitr_session(tmp_path)
    db = FakePgBackRest()
    db.failing[("backup", 1)] = "unable to open file '/repo/backup.info': permission denied"
    attach(session, db, monkeypatch)
    done = service.base_backups(session, sleep=no_sleep)
    assert done.error is not None and "full base backup to nas failed" in done.error.message
    assert db.ran == ["info", "backup 1", "backup 2", "info", "verify 2"]
    assert [(r.repo, r.taken, r.verified) for r in done.repos] == [
        ("nas", None, False), ("usb", "full", True),
    ]  # fmt: skip


def test_a_stalled_archiver_takes_no_base_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = pitr_session(tmp_path)
    db = FakePgBackRest()
    db.archiving = Archiving(db.now - DAY, failed_at=db.now, failed_count=9, ready=40)
    attach(session, db, monkeypatch)
    done = service.base_backups(session, sleep=no_sleep)
    assert done.error is not None and done.error.message.startswith("Archiving has stalled")
    assert db.ran == [] and done.repos == ()


# --- in the routine -----------------------------------------------------------------------


def routine_steps(fake: Fake) -> action.Steps:
    def pitr_step(s: StackSession, progress: object) -> service.PitrRun:
        return service.base_backups(s, sleep=no_sleep)

    return fake.steps(push=fake.push, pitr=pitr_step)


def test_the_routine_reports_its_base_backups_and_archiving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: Recorder
) -> None:
    prom = tmp_path / "m.prom"
    session = pitr_session(tmp_path, monitoring(server, prom))
    db = FakePgBackRest()
    db.hold(1, "full", 2 * DAY)
    db.hold(2, "full", 2 * DAY)
    db.archiving = Archiving(db.now - timedelta(seconds=7), ready=1)
    attach(session, db, monkeypatch)
    fake = Fake(session.settings.backup_dir)
    report = action.routine(session, steps=routine_steps(fake))
    assert report.ok, report.error
    assert [(s.name, s.status) for s in report.steps][:5] == [
        ("backup", "ok"), ("verify", "ok"), ("push", "ok"), ("pitr", "ok"), ("drill", "skipped"),
    ]  # fmt: skip
    step = report.steps[3]
    assert "nas: diff" in step.detail and "verified, expired" in step.detail
    assert report.pitr is not None and report.pitr.archive_lag_seconds == pytest.approx(7, abs=1)
    assert report.pitr.archive_failing is False
    assert [(r.repo, r.taken) for r in report.pitr.repos] == [("nas", "diff"), ("usb", "diff")]
    record = service.load_record(session.settings)
    assert record is not None and record.pitr is not None
    assert set(record.pitr.base_backups) == {"nas", "usb"}
    text = prom.read_text()
    assert 'recoverctl_pitr_archive_lag_seconds{project="x",stack="dev"} 7' in text
    assert 'recoverctl_pitr_archive_failing{project="x",stack="dev"} 0' in text
    # The diff just taken is the newest base backup: its age is the moments since.
    ages = [ln for ln in text.splitlines() if ln.startswith("recoverctl_pitr_base_backup_age")]
    assert len(ages) == 2 and 'repo="nas"' in ages[0] and 'repo="usb"' in ages[1]
    assert all(float(a.split()[-1]) < 60 for a in ages)
    body = next(r for r in server.received if r.path.startswith("/ping/uuid?")).body
    assert b"pitr: ok" in body and b"archiving: ok, lag 7 s" in body


def test_a_stalled_archiver_fails_the_routine_its_ping_and_its_notification(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: Recorder
) -> None:
    prom = tmp_path / "m.prom"
    session = pitr_session(tmp_path, monitoring(server, prom))
    db = FakePgBackRest()
    db.archiving = Archiving(db.now - timedelta(minutes=30), failed_at=db.now, failed_count=4,
                             ready=30)  # fmt: skip
    attach(session, db, monkeypatch)
    fake = Fake(session.settings.backup_dir)
    report = action.routine(session, steps=routine_steps(fake))
    assert report.error is not None and report.error.code == ErrorCode.PITR_FAILED
    assert report.exit_status == 1 and "prune" not in fake.calls
    assert [(s.name, s.status) for s in report.steps][3:6] == [
        ("pitr", "failed"), ("drill", "skipped"), ("prune", "skipped"),
    ]  # fmt: skip
    fail = next(r for r in server.received if r.path.startswith("/ping/uuid/fail"))
    assert b"Archiving has stalled" in fail.body and b"archiving: FAILING" in fail.body
    hook = json.loads(next(r for r in server.received if r.path == "/hook").body)
    assert hook["type"] == "failure" and "Archiving has stalled" in hook["message"]
    assert 'recoverctl_pitr_archive_failing{project="x",stack="dev"} 1' in prom.read_text()
    assert 'recoverctl_pitr_archive_lag_seconds{project="x",stack="dev"} 1800' in prom.read_text()


def test_a_failed_verification_fails_the_routine_and_says_nothing_was_expired(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = pitr_session(tmp_path)
    db = FakePgBackRest()
    db.failing[("verify", 1)] = "verify command encountered 2 error(s)"
    attach(session, db, monkeypatch)
    fake = Fake(session.settings.backup_dir)
    report = action.routine(session, steps=routine_steps(fake))
    assert report.error is not None and "Nothing was expired" in report.error.message
    assert report.pitr is not None and not any(r.expired for r in report.pitr.repos)
    assert [r.taken for r in report.pitr.repos] == ["full", "full"]  # kept though it failed
    record = service.load_record(session.settings)
    assert record is not None and record.error_code == "pitr_failed"
    assert next(s for s in record.steps if s.name == "pitr").status == "failed"


def test_pitr_set_but_archiving_off_is_skipped_with_a_warning(tmp_path: Path) -> None:
    session = pitr_session(tmp_path, enabled=False)
    fake = Fake(session.settings.backup_dir)
    report = action.routine(session, steps=fake.steps(push=fake.push))
    assert report.ok and report.pitr is None
    step = next(s for s in report.steps if s.name == "pitr")
    assert step.status == "skipped" and "not enabled" in step.detail
    assert any("pitr enable" in w for w in report.warnings)


def test_an_unreadable_archiving_state_is_a_warning_not_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session = pitr_session(tmp_path)
    db = FakePgBackRest()
    attach(session, db, monkeypatch)

    def unreadable(_s: StackSession) -> PitrState:
        raise RecoverctlError("pgbackrest info failed: no answer.", code=ErrorCode.PITR_FAILED)

    fake = Fake(session.settings.backup_dir)
    steps = routine_steps(fake)
    report = action.routine(session, steps=action.Steps(**{**steps.__dict__,
                                                           "pitr_state": unreadable}))  # fmt: skip
    assert report.ok, report.error
    assert report.pitr is not None and report.pitr.archive_lag_seconds is None
    assert any("archiving's state" in w for w in report.warnings)
    record = service.load_record(session.settings)
    assert record is not None and record.pitr is None
