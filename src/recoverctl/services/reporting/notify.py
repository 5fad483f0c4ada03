"""The apprise notification, sent when its outcome is one of notify_on."""

from __future__ import annotations

from recoverctl.adapters import monitor
from recoverctl.services.reporting.outcome import Outcome
from recoverctl.settings import Settings


def wanted(settings: Settings, ok: bool) -> bool:
    m = settings.monitoring
    return bool(m.notify) and ("success" if ok else "fail") in m.notify_on


def send(settings: Settings, outcome: Outcome, summary: str) -> str | None:
    verdict = "ok" if outcome.ok else "FAILED"
    title = f"recoverctl routine {verdict}: {outcome.project} ({outcome.stack})"
    return monitor.notify(settings.monitoring.notify, title, summary, ok=outcome.ok)
