"""schedule install / status / remove on a machine seen from a folder: systemd where its
runtime folder exists, else /etc/cron.d (root) or the crontab; one schedule per stack."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from recoverctl.actions import schedule as action
from recoverctl.adapters import scheduler
from recoverctl.adapters.scheduler import Host
from recoverctl.errors import ErrorCode, RecoverctlError
from recoverctl.services.session import StackSession
from tests.unit.fakes import make_settings


@pytest.fixture
def session(tmp_path: Path) -> StackSession:
    return StackSession(make_settings(tmp_path / "project", "[retention]\nkeep_daily = 7\n"))


def test_systemd_where_it_runs(tmp_path: Path, session: StackSession) -> None:
    host = Host(root=tmp_path / "machine", run_programs=False)
    (host.root / "run/systemd/system").mkdir(parents=True)
    (host.root / "etc/cron.d").mkdir(parents=True)
    result = action.install(session, every="6h", host=host)
    name = "recoverctl-x-dev"
    assert result.name == name
    assert [i.kind for i in result.installed] == ["systemd"]
    assert result.installed[0].when == "*-*-* 00/6:00:00"
    service = host.unit_dir() / f"{name}.service"
    assert service.exists() and (host.unit_dir() / f"{name}.timer").exists()
    assert f"--project-dir {session.settings.project_dir}" in service.read_text()
    assert "Environment=\"RECOVERCTL_CONFIG=" in service.read_text()
    assert not result.warnings
    removed = action.remove(session, host=host)
    assert len(removed.removed) == 2 and removed.installed == ()
    assert action.remove(session, host=host).removed == ()


def test_cron_d_for_root_without_systemd_then_switching_to_systemd(
    tmp_path: Path, session: StackSession
) -> None:
    host = Host(root=tmp_path / "machine", run_programs=False)
    (host.root / "etc/cron.d").mkdir(parents=True)
    result = action.install(session, every="1d", host=host)
    assert [i.kind for i in result.installed] == ["cron.d"]
    cron_file = host.cron_dir() / "recoverctl-x-dev"
    text = cron_file.read_text()
    assert " 3 * * * root cd " in text
    assert result.installed[0].next_run is not None
    # Installing again with systemd present replaces the cron entry: one schedule per stack.
    (host.root / "run/systemd/system").mkdir(parents=True)
    again = action.install(session, every="1h", host=host)
    assert [i.kind for i in again.installed] == ["systemd"]
    assert not cron_file.exists()


def test_on_calendar_needs_systemd(tmp_path: Path, session: StackSession) -> None:
    host = Host(root=tmp_path / "machine", run_programs=False)
    (host.root / "etc/cron.d").mkdir(parents=True)
    with pytest.raises(RecoverctlError, match="needs systemd"):
        action.install(session, on_calendar="*-*-* 02:30:00", host=host)
    with pytest.raises(RecoverctlError, match="choose one of"):
        action.install(session, every="7m", host=host)
    with pytest.raises(RecoverctlError, match="not both"):
        action.install(session, every="1h", on_calendar="daily", host=host)


def test_print_writes_nothing_and_shows_both_forms(tmp_path: Path, session: StackSession) -> None:
    host = Host(root=tmp_path / "machine", run_programs=False)
    result = action.install(session, every="1h", print_only=True, host=host)
    assert set(result.units) == {
        "recoverctl-x-dev.service",
        "recoverctl-x-dev.timer",
        "cron.d/recoverctl-x-dev",
    }
    assert not (tmp_path / "machine").exists()
    assert result.command[-3:] == ("routine", "--project-dir", str(session.settings.project_dir))


def test_status_reports_the_last_routine(tmp_path: Path, session: StackSession) -> None:
    host = Host(root=tmp_path / "machine", run_programs=False)
    result = action.status(session, host=host)
    assert result.installed == () and result.last_routine is None


def test_no_retention_policy_is_warned_about(tmp_path: Path) -> None:
    session = StackSession(make_settings(tmp_path / "p2", ""))
    host = Host(root=tmp_path / "machine", run_programs=False)
    (host.root / "etc/cron.d").mkdir(parents=True)
    result = action.install(session, host=host)
    assert any("no [retention] policy" in w for w in result.warnings)


def test_doctor_sees_what_install_wrote(tmp_path: Path, session: StackSession) -> None:
    from recoverctl.services.routine import scheduled

    host = Host(root=tmp_path / "machine", run_programs=False)
    (host.root / "etc/cron.d").mkdir(parents=True)
    assert scheduled(session.settings, session.project, host) is None
    action.install(session, host=host)
    assert scheduled(session.settings, session.project, host) == (
        f"cron entry {host.cron_dir() / 'recoverctl-x-dev'}"
    )
    action.remove(session, host=host)
    assert scheduled(session.settings, session.project, host) is None


def _analyze(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str | None, mode: int = 0o755) -> None:
    """systemd-analyze, as `which` finds it: a script running body (None: gone since)."""
    path = tmp_path / "bin" / "systemd-analyze"
    if body is not None:
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"#!{sys.executable}\n{body}\n")
        path.chmod(mode)
    real = shutil.which

    def which(name: str, *args: object, **kwargs: object) -> str | None:
        return str(path) if name == "systemd-analyze" else real(name)

    monkeypatch.setattr(shutil, "which", which)


def _systemd_host(tmp_path: Path) -> Host:
    host = Host(root=tmp_path / "machine", run_programs=False)
    (host.root / "run/systemd/system").mkdir(parents=True, exist_ok=True)
    return host


@pytest.mark.parametrize(
    ("body", "mode", "said"),
    [
        (None, 0o755, "not installed"),
        ("import time; time.sleep(30)", 0o755, "did not finish"),
        ("print('x')", 0o644, "could not run"),
    ],
    ids=["missing", "hangs", "not-executable"],
)
def test_a_calendar_check_that_cannot_run_is_an_error_with_a_hint(
    tmp_path: Path,
    session: StackSession,
    monkeypatch: pytest.MonkeyPatch,
    body: str | None,
    mode: int,
    said: str,
) -> None:
    _analyze(tmp_path, monkeypatch, body, mode)
    monkeypatch.setattr(scheduler, "CALENDAR_TIMEOUT", 0.5, raising=False)
    with pytest.raises(RecoverctlError) as info:  # not a traceback: a code and a hint
        action.install(session, on_calendar="*-*-* 02:30:00", host=_systemd_host(tmp_path))
    assert info.value.code is ErrorCode.COMMAND_FAILED
    assert said in info.value.message and "systemd-analyze" in info.value.message
    assert info.value.hint and "--every" in info.value.hint
    assert not (tmp_path / "machine" / "etc").exists()  # nothing was installed


def test_the_calendar_is_checked_by_systemd_analyze(
    tmp_path: Path, session: StackSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    _analyze(tmp_path, monkeypatch, "import sys; sys.exit(0 if sys.argv[2] == 'daily' else 1)")
    host = _systemd_host(tmp_path)
    with pytest.raises(RecoverctlError) as info:
        action.install(session, on_calendar="every tuesday-ish", host=host)
    assert info.value.code is ErrorCode.USAGE and "not a systemd calendar spec" in info.value.message
    result = action.install(session, on_calendar="daily", host=host)
    assert result.installed[0].when == "daily"
