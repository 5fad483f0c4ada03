"""Rendering: results to text or to the one JSON envelope, errors to two lines, steps to the
log. Nothing here decides anything.

With --json, stdout carries exactly one document (docs/json.md): `emit` only records the
result, and cli/app.py writes the envelope once the command has ended, however it ended.
Everything meant for a person (prompts, progress, warnings, errors) goes to stderr.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from recoverctl.core.result import to_json as result_json
from recoverctl.core.stack import StackStatus
from recoverctl.errors import ErrorCode, RecoverctlError

SCHEMA = 1  # the envelope's version: raised only when a field changes meaning or goes away

json_mode: ContextVar[bool] = ContextVar("json_mode", default=False)
log = logging.getLogger("recoverctl")

# soft_wrap: a line longer than the terminal is the terminal's to wrap, and off a terminal
# (journal, pipe, cron mail) a line stays whole; tables go through print_table.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclasses.dataclass
class _Run:
    """What one command has produced so far, for its envelope and its last log line."""

    command: str | None = None
    started: float = dataclasses.field(default_factory=time.monotonic)
    result: Any = None
    warnings: list[str] = dataclasses.field(default_factory=list)


_run = _Run()


def begin(command: str | None, *, json: bool) -> None:
    global _run
    _run = _Run(command=command)
    json_mode.set(json)


def current_command() -> str | None:
    return _run.command


def elapsed() -> float:
    return time.monotonic() - _run.started


def emit(result: object, human: Callable[[], None]) -> None:
    """A command's result: printed by `human` for a person, or kept for the envelope."""
    if json_mode.get():
        _run.result = result_json(result)
    else:
        human()


def _plain(value: object) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _envelope(error: RecoverctlError | None, exit_code: int) -> dict[str, Any]:
    """The one document --json prints; its fields are documented in docs/json.md."""
    return {
        "schema": SCHEMA,
        "command": _run.command,
        "ok": error is None,
        "exit_code": exit_code,
        # A failure keeps what was produced before it: a bad verdict's full report.
        "result": _run.result,
        "error": None if error is None else {**error.brief(), "details": error.details},
        "warnings": list(_run.warnings),
    }


def write_envelope(error: RecoverctlError | None, exit_code: int) -> None:
    text = json.dumps(_envelope(error, exit_code), indent=2, default=_plain)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def error(exc: RecoverctlError, *, show: bool = True) -> None:
    """The error's lines on stderr (unless click shows it its own way) and in the log."""
    if exc.details:
        if show:
            err.print(escape(exc.details), style="dim")
        log.error(exc.details, extra={"tag": "details"})
    if show:
        err.print(f"[bold red]error:[/] {escape(exc.message)}")
    log.error(exc.message)
    if exc.hint:
        if show:
            err.print(f"[bold]hint:[/] {escape(exc.hint)}")
        log.error(exc.hint, extra={"tag": "hint"})


def warn(text: str) -> None:
    err.print(f"[bold yellow]warning:[/] {escape(text)}")
    log.warning(text)
    _run.warnings.append(text)


def warn_once(text: str) -> None:
    """A warning the run may come across more than once (settings resolved twice)."""
    if text not in _run.warnings:
        warn(text)


def echo(line: str) -> None:
    """A --verbose step line, on stderr above any spinner."""
    err.print(escape(line), style="dim")


def _stepper() -> Callable[[str], None]:
    # Wait loops report the same step every poll: one log line per change, not per poll.
    last: list[str] = []

    def step(text: str) -> None:
        if last != [text]:
            last[:] = [text]
            log.info(text)

    return step


@contextmanager
def spinner(initial: str) -> Iterator[Callable[[str], None]]:
    """A spinner on a terminal, a log line per step everywhere. Yields step(text)."""
    step = _stepper()
    step(initial)
    if json_mode.get() or not err.is_terminal:
        yield step
        return
    with err.status(escape(initial)) as status:

        def update(text: str) -> None:
            step(text)
            status.update(escape(text))

        yield update


@contextmanager
def transfer(description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """Bytes moved and the rate on a terminal; in the log, a line when the first bytes move
    (a quick verify never moves any: it logs nothing) and one with the total at the end.
    Yields on_bytes(done_so_far)."""
    started = time.monotonic()
    moved: list[int] = []

    def count(done: int) -> None:
        if not moved:
            log.info(description)
            moved.append(done)
        moved[0] = done

    if json_mode.get() or not err.is_terminal:
        yield count
    else:
        yield from _progress(description, total, count)
    if moved:
        seconds = time.monotonic() - started
        log.info(f"{description}: {size(moved[0])} in {seconds:.1f} s")


def _progress(
    description: str, total: int | None, count: Callable[[int], None]
) -> Iterator[Callable[[int], None]]:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TransferSpeedColumn,
    )

    columns = [SpinnerColumn(), TextColumn("{task.description}"), DownloadColumn()]
    if total:
        columns.insert(2, BarColumn())
    with Progress(*columns, TransferSpeedColumn(), console=err, transient=True) as progress:
        task = progress.add_task(escape(description), total=total)

        def on_bytes(done: int) -> None:
            count(done)
            progress.update(task, completed=done)

        yield on_bytes


def print_table(table: Table, console: Console | None = None) -> None:
    """A table on stdout (or console). Off a terminal (journal, pipe, cron mail) each row
    is one line, never wrapped whatever COLUMNS says, and without box drawing."""
    console = console or out
    if console.is_terminal:
        console.print(table)
        return
    table.box = None
    table.pad_edge = False
    for column in table.columns:
        column.no_wrap = True
    # A console of its own: print(width=) cannot go beyond the console's width (COLUMNS).
    buffer = io.StringIO()
    Console(file=buffer, width=100_000, highlight=False, color_system=None).print(table)
    console.file.write("".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines()))
    console.file.flush()


HEALTH_STYLE = {"healthy": "green", "unhealthy": "red", "starting": "yellow"}


def stack_table(status: StackStatus) -> None:
    table = Table(title=f"{status.project} ({status.stack})", title_justify="left")
    for column in ("service", "container", "state", "health", "ports"):
        table.add_column(column)
    for s in status.services:
        state_style = "green" if s.state == "running" else "red"
        health = s.health or "-"
        table.add_row(
            escape(s.service),
            escape(s.container or "-"),
            f"[{state_style}]{escape(s.state)}[/]",
            f"[{HEALTH_STYLE.get(health, 'white')}]{escape(health)}[/]",
            escape(", ".join(s.ports) or "-"),
        )
    print_table(table)


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


STATUS_STYLE = {"ok": "green", "warn": "yellow", "fail": "red"}


def checks_table(title: str, checks: Iterable[Any]) -> None:
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in ("check", "status", "evidence", "fix"):
        table.add_column(column, overflow="fold")
    for c in checks:
        style = STATUS_STYLE.get(c.status, "white")
        table.add_row(
            escape(c.name), f"[{style}]{c.status}[/]", escape(c.evidence), escape(c.fix or "")
        )
    print_table(table)


def failing(checks: Iterable[Any]) -> str:
    """The failed checks' names, for a bad verdict's one-line error."""
    return ", ".join(c.name for c in checks if c.status == "fail")


def checks_failed(verdict: str, checks: Iterable[Any], hint: str) -> RecoverctlError:
    """A run whose checks failed, as its error: the verdict, then the failed checks' names.
    The rows themselves were shown already; the code tells scripts it was the checks."""
    return RecoverctlError(f"{verdict}: {failing(checks)}.", hint, code=ErrorCode.CHECKS_FAILED)
