"""Telling the outside how a routine went: Healthchecks-compatible pings, apprise
notifications, a Prometheus node_exporter textfile.

None of these may fail or stall a backup: every call returns a problem as text (or None)
instead of raising, and every network call is bounded to PING_TIMEOUT seconds of wall
time, name resolution included (a thread is given up on, not waited for).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from recoverctl import __version__

log = logging.getLogger(__name__)
PING_TIMEOUT = 10.0
BODY_LIMIT = 10_000  # Healthchecks keeps the first 100 kB; the end of a log is what matters
Ping = Literal["start", "success", "fail"]


def bounded(call: Callable[[], str | None], what: str, timeout: float = PING_TIMEOUT) -> str | None:
    """Runs call in a daemon thread for at most timeout seconds; its problem, or None."""
    outcome: list[str | None] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:  # a monitoring failure is reported, never raised
            outcome.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=run, name=f"monitor-{what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return f"{what}: no answer within {timeout:.0f} s"
    problem = outcome[0] if outcome else f"{what}: stopped without a result"
    return f"{what}: {problem}" if problem and not problem.startswith(what) else problem


def ping_url(base: str, kind: Ping, rid: str | None = None) -> str:
    """Healthchecks' endpoints: BASE/start, BASE (success), BASE/fail; rid pairs a start
    with its end, so the server measures the run's duration."""
    url = base.rstrip("/") + {"start": "/start", "success": "", "fail": "/fail"}[kind]
    return f"{url}?rid={rid}" if rid else url


def ping(base: str, kind: Ping, body: str = "", *, rid: str | None = None,
         timeout: float = PING_TIMEOUT) -> str | None:  # fmt: skip
    url = ping_url(base, kind, rid)
    data = body.encode("utf-8", "replace")[-BODY_LIMIT:]

    def call() -> str | None:
        # http(s) only: the settings refuse any other scheme.
        request = urllib.request.Request(  # noqa: S310
            url,
            data=data,
            method="POST",
            headers={
                "User-Agent": f"recoverctl/{__version__}",
                "Content-Type": "text/plain; charset=utf-8",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                status = response.status
        except urllib.error.HTTPError as exc:
            return f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return str(getattr(exc, "reason", exc))
        return None if 200 <= status < 300 else f"HTTP {status}"

    # The URL carries the check's secret: messages name only the kind of ping.
    return bounded(call, f"healthchecks {kind} ping", timeout)


def notify(
    urls: Sequence[str], title: str, body: str, *, ok: bool, timeout: float = PING_TIMEOUT
) -> str | None:
    """Sends one message through apprise to every URL; a problem never names a URL (they
    carry tokens), only its position in the list."""

    def call() -> str | None:
        import apprise  # slow to import: only routines that notify pay for it

        problems: list[str] = []
        sender = apprise.Apprise()
        for index, url in enumerate(urls, 1):
            if not sender.add(url):
                problems.append(f"entry {index} is not a URL apprise knows")
        if len(sender) and not sender.notify(
            title=title,
            body=body,
            notify_type=apprise.NotifyType.SUCCESS if ok else apprise.NotifyType.FAILURE,
        ):
            problems.append("a service did not accept the message (apprise's log says which)")
        return "; ".join(problems) or None

    return bounded(call, "notification", timeout)


# --- Prometheus node_exporter textfile ---------------------------------------------------


@dataclass(frozen=True)
class Metric:
    name: str
    help: str
    value: float
    labels: Mapping[str, str] = field(default_factory=dict)
    kind: str = "gauge"


_SAMPLE_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, str]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return "{" + inner + "}" if inner else ""


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render_textfile(metrics: Iterable[Metric], kept: Iterable[str] = ()) -> str:
    """The exposition text: kept sample lines (other stacks') first, each metric's HELP and
    TYPE once, then its samples."""
    helps: dict[str, tuple[str, str]] = {}
    samples: dict[str, list[str]] = {}
    for line in kept:
        m = _SAMPLE_RE.match(line)
        if m:
            samples.setdefault(m.group(1), []).append(line)
    for metric in metrics:
        helps[metric.name] = (metric.help, metric.kind)
        samples.setdefault(metric.name, []).append(
            f"{metric.name}{_labels(metric.labels)} {_number(metric.value)}"
        )
    out: list[str] = []
    for name in sorted(samples):
        if name in helps:
            out.append(f"# HELP {name} {helps[name][0]}")
            out.append(f"# TYPE {name} {helps[name][1]}")
        out.extend(samples[name])
    return "\n".join(out) + "\n"


def _others(text: str, ours: Mapping[str, str]) -> list[str]:
    """Sample lines that are not this stack's (both stacks may share one file)."""
    kept: list[str] = []
    for line in text.splitlines():
        m = _SAMPLE_RE.match(line)
        if not m or not m.group(1).startswith("recoverctl_"):
            continue
        labels = dict(_LABEL_RE.findall(m.group(3) or ""))
        if any(labels.get(k) != _escape(v) for k, v in ours.items()):
            kept.append(line)
    return kept


def write_textfile(path: Path, metrics: Sequence[Metric], ours: Mapping[str, str]) -> str | None:
    """Replaces this stack's samples in the file, atomically (node_exporter never reads half
    a file: it reads only *.prom, and the new file gets that name by a rename). Mode 0644:
    node_exporter runs as its own user, and nothing here is secret."""
    try:
        try:
            previous = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            previous = ""
        text = render_textfile(metrics, _others(previous, ours))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    except OSError as exc:
        return f"prometheus textfile {path}: {exc.strerror or exc}"
    return None
