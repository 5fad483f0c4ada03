"""Rendering: results to tables or JSON, errors to two lines. Nothing here decides anything."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from recoverctl.core.stack import StackStatus
from recoverctl.errors import RecoverctlError

json_mode: ContextVar[bool] = ContextVar("json_mode", default=False)


def _console(stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Logs and pipes get lines wide enough for a check's evidence, not rich's 80 columns.
    wide = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=120 if wide else None)


out = _console(False)
err = _console(True)


class JsonResult(Protocol):
    def to_json(self) -> dict[str, Any]: ...


def emit(result: JsonResult, human: Callable[[], None]) -> None:
    if json_mode.get():
        sys.stdout.write(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
        sys.stdout.flush()
    else:
        human()


def error(exc: RecoverctlError) -> None:
    if json_mode.get():
        payload = {"ok": False, "error": exc.message, "hint": exc.hint, "exit_code": exc.exit_code}
        sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    if exc.details:
        err.print(escape(exc.details), style="dim")
    err.print(f"[bold red]error:[/] {escape(exc.message)}")
    if exc.hint:
        err.print(f"[bold]hint:[/] {escape(exc.hint)}")


def note(text: str) -> None:
    if not json_mode.get():
        err.print(text)


def warn(text: str) -> None:
    err.print(f"[bold yellow]warning:[/] {escape(text)}")


@contextmanager
def spinner(initial: str) -> Iterator[Callable[[str], None]]:
    """A spinner on a terminal; silence otherwise. Yields a function to update its text."""
    if json_mode.get() or not err.is_terminal:
        yield lambda _text: None
        return
    with err.status(escape(initial)) as status:
        yield lambda text: status.update(escape(text))


HEALTH_STYLE = {"healthy": "green", "unhealthy": "red", "starting": "yellow"}


def stack_table(status: StackStatus) -> None:
    table = Table(title=f"{status.project} ({status.stack})", title_justify="left")
    for column in ("service", "container", "state", "health", "ports"):
        table.add_column(column)
    for s in status.services:
        state_style = "green" if s.state == "running" else "red"
        health = s.health or "-"
        table.add_row(
            s.service,
            s.container or "-",
            f"[{state_style}]{escape(s.state)}[/]",
            f"[{HEALTH_STYLE.get(health, 'white')}]{escape(health)}[/]",
            escape(", ".join(s.ports) or "-"),
        )
    out.print(table)


@contextmanager
def transfer(description: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
    """Bytes moved and the rate, on a terminal only. Yields on_bytes(done_so_far)."""
    if json_mode.get() or not err.is_terminal:
        yield lambda _done: None
        return
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
        yield lambda done: progress.update(task, completed=done)


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
        table.add_row(c.name, f"[{style}]{c.status}[/]", escape(c.evidence), escape(c.fix or ""))
    out.print(table)
