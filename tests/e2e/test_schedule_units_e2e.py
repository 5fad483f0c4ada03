"""e2e: the schedule's systemd units, as the schedule's builders make them, checked by the
real systemd-analyze (the systemd package scripts/test-env.sh installs; no running systemd
needed). Here rather than in tests/unit: `make test` runs the unit tests while test-env.sh
is still installing what this needs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from recoverctl.core.schedule import Job, service_unit, timer_unit
from tests.unit.test_schedule import _job


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("RECOVERCTL_E2E") == "required":
            pytest.fail("systemd-analyze is missing: run scripts/test-env.sh", pytrace=False)
        pytest.skip("systemd-analyze is missing (scripts/test-env.sh installs it)")
    return found


@pytest.mark.parametrize("every", ["15m", "1h", "6h", "1d", "1w"])
def test_units_pass_systemd_analyze_verify(tmp_path: Path, every: str) -> None:
    analyze = _systemd_analyze()
    job = _job(tmp_path, every)
    folder = tmp_path / "units"
    folder.mkdir()
    service = folder / f"{job.name}.service"
    timer = folder / f"{job.name}.timer"
    service.write_text(service_unit(job))
    timer.write_text(timer_unit(job))
    done = subprocess.run(
        [analyze, "verify", str(service), str(timer)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert f"{job.name}" not in done.stderr, done.stderr  # no warning about our units
    assert "Persistent=true" in timer.read_text()
    assert "RandomizedDelaySec=" in timer.read_text()
    calendar = subprocess.run(
        [analyze, "calendar", job.on_calendar], capture_output=True, text=True
    )
    assert calendar.returncode == 0, calendar.stderr


def test_systemd_analyze_rejects_a_broken_unit(tmp_path: Path) -> None:
    # The check above would catch a mistake: a bad calendar spec fails verify.
    analyze = _systemd_analyze()
    job = _job(tmp_path)
    bad = Job(**{**job.__dict__, "on_calendar": "every other tuesday"})
    folder = tmp_path / "units"
    folder.mkdir()
    (folder / f"{job.name}.service").write_text(service_unit(job))
    (folder / f"{job.name}.timer").write_text(timer_unit(bad))
    done = subprocess.run(
        [analyze, "verify", str(folder / f"{job.name}.timer")], capture_output=True, text=True
    )
    assert done.returncode != 0
