"""schedule install / status / remove: the routine on a systemd timer where systemd runs,
else in cron (/etc/cron.d as root, the user's crontab otherwise)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypedDict

from recoverctl.adapters.scheduler import Host, calendar_ok, program
from recoverctl.core import schedule as core
from recoverctl.core.result import JsonResult, meta
from recoverctl.core.stack import StackName
from recoverctl.errors import ErrorCode, RecoverctlError, UsageError
from recoverctl.services import routine as routine_service
from recoverctl.services.session import StackSession
from recoverctl.settings import config_path

Kind = Literal["systemd", "cron.d", "crontab"]
DEFAULT_EVERY = "1h"


@dataclass(frozen=True)
class Installation(JsonResult):
    kind: Kind
    files: tuple[str, ...]  # unit files, the cron.d file, or "crontab of USER"
    when: str  # OnCalendar= or the cron fields
    next_run: str | None
    active: bool | None  # systemd: the timer is active; cron: None (cron does not say)


class LastRoutine(TypedDict):
    """How the last routine ended, from its record."""

    ok: bool
    exit_status: int
    error_code: str | None
    message: str | None
    started_at: str
    finished_at: str
    backup: str | None
    last_success_at: str | None


@dataclass(frozen=True)
class ScheduleResult(JsonResult):
    action: Literal["install", "print", "status", "remove"]
    project: str
    stack: str = field(metadata=meta(schema=StackName))
    name: str
    installed: tuple[Installation, ...]  # after the action
    command: tuple[str, ...] = ()
    units: dict[str, str] = field(default_factory=dict)  # file name: content (install, print)
    removed: tuple[str, ...] = ()
    last_routine: LastRoutine | None = None
    warnings: tuple[str, ...] = ()


def job(
    session: StackSession, *, every: str | None, on_calendar: str | None, environ: Any = None
) -> core.Job:
    """The job install writes: the routine's absolute command line, the project folder, the
    variables that decide which settings it reads, and when it runs."""
    settings = session.settings
    env = dict(os.environ if environ is None else environ)
    if every is not None and on_calendar is not None:
        raise UsageError("Pass --every or --on-calendar, not both.", "--every 1h, for example.")
    period: core.Every | None = None
    if on_calendar is None:
        try:
            period = core.Every.parse(every or DEFAULT_EVERY)
        except ValueError as exc:
            raise UsageError(str(exc), "For example: --every 1h, or --on-calendar for systemd.") from None
        calendar = period.on_calendar()
        delay = period.randomized_delay()
    else:
        calendar, delay = on_calendar.strip(), 300
        _check_calendar(calendar)
    # The settings file this shell reads, pinned: a timer has no shell, and root's HOME is
    # not the installing user's.
    env.setdefault("RECOVERCTL_CONFIG", str(config_path(env).expanduser().absolute()))
    name = core.job_name(session.project, settings.stack)
    return core.Job(
        name=name,
        description=f"recoverctl routine for {session.project} ({settings.stack}): backup, "
        "verify, push, drill, prune",
        argv=core.routine_argv(program(), str(settings.project_dir), settings.stack == "prod"),
        workdir=str(settings.project_dir),
        environment=core.carried_environment(env),
        on_calendar=calendar,
        every=period,
        randomized_delay=delay,
    )


def _check_calendar(spec: str) -> None:
    if not spec or "\n" in spec:
        raise UsageError("--on-calendar needs a systemd calendar spec.", "See man systemd.time.")
    if calendar_ok(spec) is False:  # None: no systemd-analyze here to ask
        raise UsageError(
            f"--on-calendar {spec!r} is not a systemd calendar spec.",
            "See man systemd.time, e.g. --on-calendar '*-*-* 02:30:00'.",
        )


def _kind(host: Host, j: core.Job) -> Kind:
    if host.systemd_running() and (host.is_root or _user_manager()):
        return "systemd"
    if j.every is None:
        raise UsageError(
            "--on-calendar needs systemd, and systemd does not run here (cron is used).",
            "Use --every (e.g. --every 1h).",
        )
    if host.is_root and host.cron_dir().is_dir():
        return "cron.d"
    if host.has_crontab():
        return "crontab"
    raise RecoverctlError(
        "Neither systemd nor cron runs on this machine: nothing could run the routine.",
        "Install cron (apt-get install cron), or run `recoverctl routine` from your own "
        "scheduler.",
        code=ErrorCode.FAILED,
    )


def _user_manager() -> bool:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return runtime is not None and (Path(runtime) / "systemd/private").exists()


def units(j: core.Job) -> dict[str, str]:
    return {f"{j.name}.service": core.service_unit(j), f"{j.name}.timer": core.timer_unit(j)}


def cron_text(j: core.Job, *, user: str | None) -> str:
    return core.HEADER + "\n" + core.cron_block(j, core.spread(j.name), user=user)


def install(
    session: StackSession,
    *,
    every: str | None = None,
    on_calendar: str | None = None,
    print_only: bool = False,
    host: Host | None = None,
) -> ScheduleResult:
    host = host or Host()
    j = job(session, every=every, on_calendar=on_calendar)
    settings = session.settings
    if print_only:
        shown = units(j)
        if j.every is not None:
            shown[f"cron.d/{j.name}"] = cron_text(j, user=host.user)
        return _job_result("print", session, host, j, shown)
    warnings: list[str] = []
    kind = _kind(host, j)
    # One schedule per stack: whatever form was installed before goes.
    _remove_all(host, j.name, keep=kind)
    written: dict[str, str] = {}
    if kind == "systemd":
        folder = host.unit_dir()
        for file_name, text in units(j).items():
            host.write(folder / file_name, text)
            written[str(folder / file_name)] = text
        host.systemctl("daemon-reload")
        host.systemctl("enable", "--now", f"{j.name}.timer")
        if not host.is_root and not host.lingering():
            warnings.append(
                f"the timer runs only while {host.user} is logged in: run "
                f"`sudo loginctl enable-linger {host.user}` to keep it running"
            )
    elif kind == "cron.d":
        path = host.cron_dir() / j.name
        text = cron_text(j, user="root")
        host.write(path, text)
        written[str(path)] = text
    else:
        current, _ = core.strip_cron_block(host.read_crontab(), j.name)
        block = core.cron_block(j, core.spread(j.name), user=None)
        host.write_crontab(current + block)
        written[f"crontab of {host.user}"] = block
    if kind != "systemd" and not host.cron_installed():
        warnings.append("no cron daemon is installed: nothing will run this entry until one is")
    if settings.retention.policy().empty:
        warnings.append(
            "no [retention] policy: the routine never deletes a backup and the disk will fill"
        )
    return _job_result("install", session, host, j, written, tuple(warnings))


def _job_result(
    action: Literal["install", "print"],
    session: StackSession,
    host: Host,
    j: core.Job,
    files: dict[str, str],
    warnings: tuple[str, ...] = (),
) -> ScheduleResult:
    # Read back from the host after any writes: "installed" is what is there, not what was meant.
    return ScheduleResult(
        action,
        session.project,
        session.settings.stack,
        j.name,
        status_of(session, host, j.name),
        command=j.argv,
        units=files,
        warnings=warnings,
    )


def status(session: StackSession, *, host: Host | None = None) -> ScheduleResult:
    host = host or Host()
    settings = session.settings
    name = core.job_name(session.project, settings.stack)
    last = routine_service.load_record(settings)
    return ScheduleResult(
        "status",
        session.project,
        settings.stack,
        name,
        status_of(session, host, name),
        last_routine=_last(last),
    )


def _last(record: routine_service.RoutineRecord | None) -> LastRoutine | None:
    if record is None:
        return None
    return {
        "ok": record.ok,
        "exit_status": record.exit_status,
        "error_code": record.error_code,
        "message": record.message,
        "started_at": record.started_at.isoformat(),
        "finished_at": record.finished_at.isoformat(),
        "backup": record.backup,
        "last_success_at": record.last_success_at.isoformat() if record.last_success_at else None,
    }


def status_of(session: StackSession, host: Host, name: str) -> tuple[Installation, ...]:
    found: list[Installation] = []
    folder = host.unit_dir()
    timer = folder / f"{name}.timer"
    if timer.exists():
        calendar = next(
            (
                line.split("=", 1)[1]
                for line in timer.read_text().splitlines()
                if line.startswith("OnCalendar=")
            ),
            "?",
        )
        shown = host.systemctl_show(
            f"{name}.timer", "ActiveState", "NextElapseUSecRealtime"
        )
        found.append(
            Installation(
                "systemd",
                (str(folder / f"{name}.service"), str(timer)),
                calendar,
                shown.get("NextElapseUSecRealtime") or None,
                shown.get("ActiveState") == "active" if shown else None,
            )
        )
    cron_file = host.cron_dir() / name
    if cron_file.exists():
        entry = core.cron_block_of(cron_file.read_text(), name)
        found.append(_cron_installation("cron.d", (str(cron_file),), entry, name))
    if host.uses_crontab():
        entry = core.cron_block_of(host.read_crontab(), name)
        if entry is not None:
            found.append(_cron_installation("crontab", (f"crontab of {host.user}",), entry, name))
    return tuple(found)


def _cron_installation(kind: Kind, files: tuple[str, ...], entry: str | None, name: str) -> Installation:
    fields = " ".join((entry or "").split()[:5])
    next_run = None
    every = _every_of(fields)
    if every is not None:
        next_run = every.next_after(datetime.now(), core.spread(name)).isoformat(timespec="minutes")
    return Installation(kind, files, fields or "?", next_run, None)


def _every_of(fields: str) -> core.Every | None:
    for text in core.EVERY_CHOICES.split(", "):
        every = core.Every.parse(text)
        for offset in range(60):
            if every.cron_fields(offset) == fields:
                return every
    return None


def _remove_all(host: Host, name: str, *, keep: Kind | None = None) -> list[str]:
    removed: list[str] = []
    folder = host.unit_dir()
    if keep != "systemd" and (folder / f"{name}.timer").exists():
        if host.systemd_running():
            host.systemctl("disable", "--now", f"{name}.timer", check=False)
        for suffix in (".timer", ".service"):
            if host.remove(folder / f"{name}{suffix}"):
                removed.append(str(folder / f"{name}{suffix}"))
        if host.systemd_running():
            host.systemctl("daemon-reload", check=False)
    if keep != "cron.d" and host.remove(host.cron_dir() / name):
        removed.append(str(host.cron_dir() / name))
    if keep != "crontab" and host.uses_crontab():
        current = host.read_crontab()
        stripped, found = core.strip_cron_block(current, name)
        if found:
            host.write_crontab(stripped)
            removed.append(f"crontab of {host.user}")
    return removed


def remove(session: StackSession, *, host: Host | None = None) -> ScheduleResult:
    host = host or Host()
    settings = session.settings
    name = core.job_name(session.project, settings.stack)
    removed = _remove_all(host, name)
    return ScheduleResult(
        "remove",
        session.project,
        settings.stack,
        name,
        status_of(session, host, name),
        removed=tuple(removed),
    )
