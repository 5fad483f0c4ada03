"""The routine's schedule: durations, a systemd service and timer, a cron entry. Pure text.

Both forms run the same command line: absolute paths, the project folder as the working
folder, and the variables the installing shell had that decide which settings recoverctl
reads, since a timer's environment is nobody's shell.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from recoverctl.core.duration import format_duration, parse_duration

HEADER = "# Written by `recoverctl schedule install`; `recoverctl schedule remove` removes it."
# Variables carried from the installing shell into the timer's environment: the ones that
# choose the settings file, the stack's project and the engine (never a secret).
CARRIED_PREFIXES = ("RECOVERCTL_",)
CARRIED_NAMES = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CONFIG", "PATH")
NOT_CARRIED = ("RECOVERCTL_PROJECT_DIR",)  # passed as --project-dir
# A routine that hangs is stopped (SIGTERM: the same clean way out as Ctrl-C), so that the
# next run is not blocked for ever behind it and the failure is reported.
TIMEOUT = "4h"
CRON_HOUR = 3  # daily and weekly runs: the small hours, local time
EVERY_MINUTES = (15, 20, 30)
EVERY_HOURS = (1, 2, 3, 4, 6, 8, 12)
EVERY_CHOICES = "15m, 20m, 30m, 1h, 2h, 3h, 4h, 6h, 8h, 12h, 1d, 1w"


@dataclass(frozen=True)
class Every:
    """A period both systemd's calendar and cron can keep to the minute: one that divides
    an hour, a day or is a day or a week."""

    period: timedelta

    @classmethod
    def parse(cls, text: str) -> Every:
        period = parse_duration(text)
        seconds = int(period.total_seconds())
        valid = (
            {m * 60 for m in EVERY_MINUTES} | {h * 3600 for h in EVERY_HOURS} | {86400, 604800}
        )
        if seconds != period.total_seconds() or seconds not in valid:
            raise ValueError(f"--every {text}: choose one of {EVERY_CHOICES}")
        return cls(period)

    @property
    def seconds(self) -> int:
        return int(self.period.total_seconds())

    def __str__(self) -> str:
        return format_duration(self.period)

    def on_calendar(self) -> str:
        s = self.seconds
        if s < 3600:
            return f"*-*-* *:00/{s // 60}:00"
        if s == 3600:
            return "*-*-* *:00:00"
        if s < 86400:
            return f"*-*-* 00/{s // 3600}:00:00"
        if s == 86400:
            return f"*-*-* {CRON_HOUR:02d}:00:00"
        return f"Mon *-*-* {CRON_HOUR:02d}:00:00"

    def randomized_delay(self) -> int:
        """Seconds to spread runs over: a tenth of the period, at most half an hour."""
        return min(self.seconds // 10, 1800)

    def cron_fields(self, offset: int) -> str:
        """minute hour day month weekday, the minute moved by offset (0-59) to spread the
        load as RandomizedDelaySec does for systemd."""
        s = self.seconds
        if s < 3600:
            step = s // 60
            return f"{offset % step}-59/{step} * * * *"
        minute = offset % 60
        if s == 3600:
            return f"{minute} * * * *"
        if s < 86400:
            return f"{minute} */{s // 3600} * * *"
        if s == 86400:
            return f"{minute} {CRON_HOUR} * * *"
        return f"{minute} {CRON_HOUR} * * 1"

    def next_after(self, now: datetime, offset: int) -> datetime:
        """When cron next runs the entry of cron_fields(offset); now is local time."""
        s = self.seconds
        base = now.replace(second=0, microsecond=0)
        candidate = base + timedelta(minutes=1)
        # At most a week of minutes: a plain walk is clear and fast enough for one entry.
        for _ in range(7 * 24 * 60 + 1):
            if self._matches(candidate, offset):
                return candidate
            candidate += timedelta(minutes=1)
        raise AssertionError(f"no run within a week for every {s} s")  # pragma: no cover

    def _matches(self, when: datetime, offset: int) -> bool:
        s = self.seconds
        if s < 3600:
            step = s // 60
            return when.minute % step == offset % step
        if when.minute != offset % 60:
            return False
        if s == 3600:
            return True
        if s < 86400:
            return when.hour % (s // 3600) == 0
        if when.hour != CRON_HOUR:
            return False
        return s == 86400 or when.isoweekday() == 1


def spread(key: str) -> int:
    """A minute (0-59) fixed for one project and stack: installs on many servers, or both
    stacks on one, do not all start at :00."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:2], "big") % 60


@dataclass(frozen=True)
class Job:
    """What the timer or cron runs, and when."""

    name: str  # unit and cron file name: recoverctl-<project>-<stack>
    description: str
    argv: tuple[str, ...]  # absolute program first
    workdir: str
    environment: tuple[tuple[str, str], ...]
    on_calendar: str  # systemd's OnCalendar=
    every: Every | None  # None when an OnCalendar spec was given (systemd only)
    randomized_delay: int  # seconds


def job_name(project: str, stack: str) -> str:
    # Compose project names are [a-z0-9_-]: safe in unit names and cron.d file names alike.
    return f"recoverctl-{project}-{stack}"


def carried_environment(environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    found = [
        (k, v)
        for k, v in environ.items()
        if (k.startswith(CARRIED_PREFIXES) or k in CARRIED_NAMES) and k not in NOT_CARRIED and v
    ]
    return tuple(sorted(found))


def routine_argv(program: Iterable[str], project_dir: str, prod: bool) -> tuple[str, ...]:
    return (*program, "routine", *(["--prod"] if prod else []), "--project-dir", project_dir)


# --- systemd ---------------------------------------------------------------------------


def _systemd_word(value: str) -> str:
    """One argument of ExecStart=: specifiers (%) and variables ($) taken literally."""
    escaped = value.replace("%", "%%").replace("$", "$$")
    if escaped and not re.search(r'[\s"\'\\;]', escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _systemd_assignment(name: str, value: str) -> str:
    escaped = value.replace("%", "%%").replace("\\", "\\\\").replace('"', '\\"')
    return f'"{name}={escaped}"'


def _check_line(value: str) -> None:
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError("a newline or NUL cannot be written into a unit file")


def service_unit(job: Job) -> str:
    for value in (*job.argv, job.workdir, *(v for _, v in job.environment), job.description):
        _check_line(value)
    lines = [
        HEADER,
        "[Unit]",
        f"Description={job.description}",
        # The engine must be up before a backup can be taken; the network before a push.
        "Wants=network-online.target",
        "After=network-online.target docker.service",
        "",
        "[Service]",
        "Type=oneshot",
        # A path, not a command line: taken whole, spaces included; only % is special.
        f"WorkingDirectory={job.workdir.replace('%', '%%')}",
        *(f"Environment={_systemd_assignment(k, v)}" for k, v in job.environment),
        "ExecStart=" + " ".join(_systemd_word(a) for a in job.argv),
        f"TimeoutStartSec={TIMEOUT}",
        # A backup competes with the app for the disk: the app wins.
        "Nice=10",
        "IOSchedulingClass=best-effort",
        "IOSchedulingPriority=7",
        "",
    ]
    return "\n".join(lines)


def timer_unit(job: Job) -> str:
    _check_line(job.on_calendar)
    lines = [
        HEADER,
        "[Unit]",
        f"Description=Timer: {job.description}",
        "",
        "[Timer]",
        f"OnCalendar={job.on_calendar}",
        # A run missed while the server was off happens at the next boot.
        "Persistent=true",
        f"RandomizedDelaySec={job.randomized_delay}",
        "",
        "[Install]",
        "WantedBy=timers.target",
        "",
    ]
    return "\n".join(lines)


# --- cron ------------------------------------------------------------------------------

CRON_BEGIN = "# recoverctl schedule {name}: begin"
CRON_END = "# recoverctl schedule {name}: end"


def cron_command(job: Job) -> str:
    """The command as cron's /bin/sh runs it: cd to the project, the carried variables, the
    argv, each word quoted; % escaped, since cron turns a bare one into a newline."""
    env = ["env", *(f"{k}={v}" for k, v in job.environment)] if job.environment else []
    words = " ".join(shlex.quote(w) for w in (*env, *job.argv))
    line = f"cd {shlex.quote(job.workdir)} && exec {words}"
    _check_line(line)
    return line.replace("%", "\\%")


def cron_entry(job: Job, offset: int, *, user: str | None) -> str:
    """One crontab line; with user, the /etc/cron.d form (a user field before the command)."""
    if job.every is None:
        raise ValueError("cron runs only --every periods; --on-calendar needs systemd")
    who = f" {user}" if user else ""
    return f"{job.every.cron_fields(offset)}{who} {cron_command(job)}"


def cron_block(job: Job, offset: int, *, user: str | None) -> str:
    """The entry between markers, so that remove and a new install find exactly it."""
    return "\n".join(
        [
            CRON_BEGIN.format(name=job.name),
            f"# {job.description}; every {job.every}",
            cron_entry(job, offset, user=user),
            CRON_END.format(name=job.name),
            "",
        ]
    )


def strip_cron_block(crontab: str, name: str) -> tuple[str, bool]:
    """The crontab without this job's block; whether one was there."""
    begin, end = CRON_BEGIN.format(name=name), CRON_END.format(name=name)
    out: list[str] = []
    inside = found = False
    for line in crontab.splitlines():
        if line.strip() == begin:
            inside = found = True
            continue
        if inside:
            if line.strip() == end:
                inside = False
            continue
        out.append(line)
    text = "\n".join(out).rstrip("\n")
    return (text + "\n" if text else ""), found


def cron_block_of(crontab: str, name: str) -> str | None:
    """This job's entry line in a crontab, if installed."""
    begin, end = CRON_BEGIN.format(name=name), CRON_END.format(name=name)
    inside = False
    for line in crontab.splitlines():
        if line.strip() == begin:
            inside = True
        elif line.strip() == end:
            inside = False
        elif inside and line.strip() and not line.lstrip().startswith("#"):
            return line
    return None
