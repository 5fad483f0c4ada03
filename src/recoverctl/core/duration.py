"""Durations: the one spelling of time in settings and flags ("90s", "15m", "24h", "30d").

A bare number is refused where no unit is implied (a new setting must say its unit); the
old settings that counted in one unit pass theirs as `bare`. Messages start with "must"
and never repeat the value: it may be a secret pasted into the wrong setting.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, overload

from pydantic import BeforeValidator

# Longer than any schedule or age recoverctl judges; beyond it date arithmetic overflows.
MAX_DURATION = timedelta(days=3660)
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# ASCII digits only: int() and float() would read other scripts' digits too.
_DURATION_RE = re.compile(r"\s*([0-9]{1,12}(?:\.[0-9]{1,9})?)\s*([a-z]*)\s*")
_UNITS = {
    "s": 1,
    "sec": 1,
    "m": 60,
    "min": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 604800,
    "week": 604800,
}
_SHAPE = "must be a duration such as 30m, 1h, 1d"


def parse_duration(value: object, *, bare: str | None = "h") -> timedelta:
    """`90s`, `30m`, `1h`, `1d`, `2w`, or a bare number in `bare` units (refused when bare
    is None); raises ValueError."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(_SHAPE)
    if isinstance(value, int | float):
        if bare is None:
            raise ValueError(_NO_UNIT)
        text = f"{value}{bare}"
    elif isinstance(value, str) and value.isascii():
        text = value.strip().lower()
    else:
        raise ValueError(_SHAPE)
    m = _DURATION_RE.fullmatch(text)
    if m and not m.group(2) and bare is None:
        raise ValueError(_NO_UNIT)
    unit = (m.group(2) or bare or "") if m else ""
    if not m or unit not in _UNITS:
        raise ValueError(_SHAPE + ", 2w")
    seconds = float(m.group(1)) * _UNITS[unit]
    if seconds <= 0:
        raise ValueError("must be more than zero")
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError("must be at most 10 years (3660d)")
    return timedelta(seconds=seconds)


_NO_UNIT = (
    'must say its unit: a number followed by s, m, h or d, such as "90s", "15m", "24h", "30d"'
)


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _with_unit(value: object) -> timedelta:
    return parse_duration(value, bare=None)


# A setting's type: a timedelta read from a string that says its unit.
Duration = Annotated[timedelta, BeforeValidator(_with_unit)]


@overload
def in_units(value: timedelta, unit: timedelta) -> float: ...
@overload
def in_units(value: None, unit: timedelta) -> None: ...
def in_units(value: timedelta | None, unit: timedelta) -> float | None:
    """A duration as a number of `unit` (HOUR, DAY...), for messages that count in one."""
    return None if value is None else value / unit
