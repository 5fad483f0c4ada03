"""The routine's verdict in a few lines: the body of its ping and of its notification."""

from __future__ import annotations

from recoverctl.services.reporting.outcome import Outcome
from recoverctl.services.routine import PitrState


def summary(outcome: Outcome, pitr: PitrState | None = None) -> str:
    error = outcome.error
    lines = [
        f"recoverctl routine on {outcome.project} ({outcome.stack}): "
        + ("ok" if outcome.ok else f"FAILED ({error.code if error else '?'})"),
    ]
    if error is not None:
        lines.append(f"error: {error.message}")
        if error.hint:
            lines.append(f"hint: {error.hint}")
    for s in outcome.steps:
        lines.append(f"  {s.name}: {s.status}" + (f" ({s.detail})" if s.detail else ""))
    if pitr is not None:
        lines.append(
            f"archiving: {'FAILING' if pitr.archive_failing else 'ok'}, lag "
            f"{pitr.archive_lag.total_seconds():.0f} s"
        )
    return "\n".join(lines)
