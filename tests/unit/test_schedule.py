"""The schedule's pure builders: durations, systemd units (checked by systemd-analyze) and
cron lines (checked field by field, and run through /bin/sh as cron would run them)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from recoverctl.core.duration import format_duration, parse_duration
from recoverctl.core.schedule import (
    Every,
    Job,
    carried_environment,
    cron_block,
    cron_block_of,
    cron_entry,
    job_name,
    routine_argv,
    service_unit,
    spread,
    strip_cron_block,
)


def test_durations() -> None:
    assert parse_duration("30m") == timedelta(minutes=30)
    assert parse_duration("1h") == parse_duration(1) == parse_duration("1") == timedelta(hours=1)
    assert parse_duration("1.5d") == timedelta(hours=36)
    assert parse_duration("2w") == timedelta(days=14)
    assert parse_duration(24.0) == timedelta(hours=24)
    for bad in ("", "soon", "-1h", "0", "1y", True, None):
        with pytest.raises(ValueError):
            parse_duration(bad)
    assert [format_duration(parse_duration(t)) for t in ("90m", "24h", "7d", "45s")] == [
        "90m",
        "1d",
        "1w",
        "45s",
    ]


def test_every_accepts_only_what_calendar_and_cron_can_keep() -> None:
    assert [Every.parse(t).on_calendar() for t in ("15m", "1h", "6h", "1d", "1w")] == [
        "*-*-* *:00/15:00",
        "*-*-* *:00:00",
        "*-*-* 00/6:00:00",
        "*-*-* 03:00:00",
        "Mon *-*-* 03:00:00",
    ]
    for bad in ("7m", "5h", "2d", "90s"):
        with pytest.raises(ValueError, match="choose one of"):
            Every.parse(bad)
    assert Every.parse("1h").randomized_delay() == 360
    assert Every.parse("1d").randomized_delay() == 1800


def test_cron_fields_and_next_run_agree() -> None:
    offset = 37
    cases = {
        "15m": "7-59/15 * * * *",
        "1h": "37 * * * *",
        "6h": "37 */6 * * *",
        "1d": "37 3 * * *",
        "1w": "37 3 * * 1",
    }
    now = datetime(2026, 11, 29, 21, 50)  # a Sunday
    expected_next = {
        "15m": datetime(2026, 11, 29, 21, 52),
        "1h": datetime(2026, 11, 29, 22, 37),
        "6h": datetime(2026, 11, 30, 0, 37),
        "1d": datetime(2026, 11, 30, 3, 37),
        "1w": datetime(2026, 11, 30, 3, 37),
    }
    for text, fields in cases.items():
        every = Every.parse(text)
        assert every.cron_fields(offset) == fields
        assert every.next_after(now, offset) == expected_next[text]
        _valid_cron_fields(fields)
    assert 0 <= spread("vault-prod:prod") < 60
    assert spread("a") == spread("a")


def _valid_cron_fields(fields: str) -> None:
    """Each field as Vixie cron reads it: *, N, A-B, with /STEP, lists; within range."""
    ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
    parts = fields.split()
    assert len(parts) == 5
    for part, (low, high) in zip(parts, ranges, strict=True):
        for item in part.split(","):
            base, _, step = item.partition("/")
            if step:
                assert step.isdigit() and int(step) > 0
            if base == "*":
                continue
            bounds = base.split("-")
            assert 1 <= len(bounds) <= 2 and all(b.isdigit() for b in bounds), item
            assert all(low <= int(b) <= high for b in bounds), item


def _job(tmp_path: Path, every: str = "1h", **env: str) -> Job:
    # Awkward but legal: a space, a percent sign, a dollar and a quote in paths and values.
    project = tmp_path / "my vault 100%"
    project.mkdir(exist_ok=True)
    every_ = Every.parse(every)
    return Job(
        name=job_name("vault-prod", "prod"),
        description="recoverctl routine for vault-prod (prod)",
        argv=routine_argv([sys.executable, "-m", "recoverctl"], str(project), True),
        workdir=str(project),
        environment=carried_environment(
            {
                "RECOVERCTL_CONFIG": str(tmp_path / "it's $HOME.toml"),
                "RECOVERCTL_PROJECT_DIR": "/elsewhere",
                "HOME": "/root",
                "PATH": "/usr/bin:/bin",
                "RECOVERCTL_EMPTY": "",
                **env,
            }
        ),
        on_calendar=every_.on_calendar(),
        every=every_,
        randomized_delay=every_.randomized_delay(),
    )


def test_carried_environment_keeps_what_chooses_the_settings(tmp_path: Path) -> None:
    job = _job(tmp_path, DOCKER_HOST="unix:///run/docker.sock")
    names = [k for k, _ in job.environment]
    assert names == ["DOCKER_HOST", "PATH", "RECOVERCTL_CONFIG"]
    assert job.argv[-4:] == ("routine", "--prod", "--project-dir", job.workdir)
    assert Path(job.argv[0]).is_absolute()


def test_unit_exec_start_round_trips_through_systemd_quoting(tmp_path: Path) -> None:
    job = _job(tmp_path)
    line = next(x for x in service_unit(job).splitlines() if x.startswith("ExecStart="))
    assert _systemd_split(line.removeprefix("ExecStart=")) == list(job.argv)
    envs = [x for x in service_unit(job).splitlines() if x.startswith("Environment=")]
    assert [tuple(_systemd_split(e.removeprefix("Environment="))[0].split("=", 1)) for e in envs] == [
        *job.environment
    ]


def _systemd_split(text: str) -> list[str]:
    """How systemd splits a command line: whitespace, double quotes, backslash escapes,
    then %% and $$ back to % and $."""
    words: list[str] = []
    i, current, quoted, started = 0, "", False, False
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            current, i, started = current + text[i + 1], i + 2, True
            continue
        if c == '"':
            quoted, started = not quoted, True
        elif c.isspace() and not quoted:
            if started:
                words.append(current)
            current, started = "", False
        else:
            current, started = current + c, True
        i += 1
    if started:
        words.append(current)
    return [w.replace("%%", "%").replace("$$", "$") for w in words]


def test_newlines_never_reach_a_unit(tmp_path: Path) -> None:
    job = _job(tmp_path)
    with pytest.raises(ValueError):
        service_unit(Job(**{**job.__dict__, "workdir": "/tmp/a\nExecStartPre=/bin/evil"}))


def test_cron_line_runs_the_exact_argv_through_sh(tmp_path: Path) -> None:
    """What cron does with the line: undo \\% escapes, hand the rest to /bin/sh -c."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import json, os, sys\n"
        "print(json.dumps({'argv': sys.argv[1:], 'cwd': os.getcwd(),"
        " 'config': os.environ.get('RECOVERCTL_CONFIG')}))\n"
    )
    job = _job(tmp_path)
    job = Job(**{**job.__dict__, "argv": (sys.executable, str(probe), *job.argv[1:])})
    line = cron_entry(job, 5, user=None)
    fields, command = " ".join(line.split()[:5]), line.split(None, 5)[5]
    _valid_cron_fields(fields)
    assert "%" not in command.replace("\\%", "")  # every % escaped for cron
    run = command.replace("\\%", "%")
    done = subprocess.run(
        ["/bin/sh", "-c", run], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}
    )
    assert done.returncode == 0, done.stderr
    import json

    seen = json.loads(done.stdout)
    assert seen["argv"] == list(job.argv[2:])
    assert seen["cwd"] == job.workdir
    assert seen["config"] == dict(job.environment)["RECOVERCTL_CONFIG"]


def test_cron_d_entry_has_a_user_field_and_on_calendar_is_refused(tmp_path: Path) -> None:
    job = _job(tmp_path, "1d")
    line = cron_entry(job, 5, user="root")
    assert line.split()[:6] == ["5", "3", "*", "*", "*", "root"]
    with pytest.raises(ValueError, match="systemd"):
        cron_entry(Job(**{**job.__dict__, "every": None}), 5, user=None)


def test_cron_blocks_are_found_replaced_and_removed(tmp_path: Path) -> None:
    job = _job(tmp_path)
    mine = cron_block(job, 7, user=None)
    other = "MAILTO=ops@example.com\n0 1 * * * /usr/local/bin/other-job\n"
    crontab = other + mine
    assert cron_block_of(crontab, job.name) == cron_entry(job, 7, user=None)
    stripped, found = strip_cron_block(crontab, job.name)
    assert found and stripped == other
    assert strip_cron_block(other, job.name) == (other, False)
    assert cron_block_of(other, job.name) is None
    assert cron_block_of(crontab, "recoverctl-other-dev") is None
