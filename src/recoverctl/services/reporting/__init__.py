"""The routine's report, whatever happened: routine-STACK.json, the Prometheus textfile,
the Healthchecks ping and the apprise notification (a module each). An endpoint that
fails is a warning and the report step's failure, never a change to the routine's
verdict."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from recoverctl.services.dump import BackupResult
from recoverctl.services.reporting import healthchecks, notify, prometheus, record
from recoverctl.services.reporting.outcome import Outcome
from recoverctl.services.reporting.summary import summary
from recoverctl.services.routine import PitrState, Pushed, StepRecord
from recoverctl.settings import Settings

__all__ = ["Outcome", "Reporting", "summary"]

log = logging.getLogger(__name__)


@dataclass
class Reporting:
    """One routine's monitoring, from its /start ping to its report step. warn: adds a
    warning to the routine's result (each problem is one, logged as it happens)."""

    settings: Settings
    warn: Callable[[str], None]
    rid: str = field(default_factory=lambda: str(uuid.uuid4()))
    tail: healthchecks.Tail = field(default_factory=healthchecks.Tail)
    problems: list[str] = field(default_factory=list)  # what monitoring could not do

    def start(self) -> None:
        url = self.settings.monitoring.healthchecks_url
        if url:
            self._problem(healthchecks.start(url, self.rid))

    def report(
        self,
        outcome: Outcome,
        made: BackupResult | None,
        pushed: Pushed | None,
        pruned: int,
        pitr: PitrState | None = None,
    ) -> StepRecord:
        """Everything the routine reports, in order; the report step's own record. pitr:
        archiving's state, None without it."""
        settings, m = self.settings, self.settings.monitoring
        started = time.monotonic()
        kept = record.build(settings, outcome, made, pushed, pruned, pitr)
        self._problem(record.save(settings, kept))
        text = summary(outcome, pitr)
        if m.prometheus_textfile is not None:
            self._problem(prometheus.write(m.prometheus_textfile, kept))
        if m.healthchecks_url:
            self._problem(healthchecks.finish(m.healthchecks_url, outcome.ok, text, self.tail,
                                              self.rid))  # fmt: skip
        if notify.wanted(settings, outcome.ok):
            self._problem(notify.send(settings, outcome, text))
        return StepRecord(
            name="report",
            status="failed" if self.problems else "ok",
            seconds=round(time.monotonic() - started, 3),
            detail="; ".join(self.problems) or _reported_to(settings),
        )

    def _problem(self, problem: str | None) -> None:
        if problem:
            self.problems.append(problem)
            text = f"monitoring: {problem} (the routine's result is unchanged)"
            self.warn(text)
            log.warning(text)


def _reported_to(settings: Settings) -> str:
    m = settings.monitoring
    where = ["routine record"]
    if m.prometheus_textfile is not None:
        where.append("textfile")
    if m.healthchecks_url:
        where.append("healthchecks")
    if m.notify:
        where.append("notifications")
    return ", ".join(where)
