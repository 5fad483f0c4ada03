"""Point-in-time recovery's `--to-time TIME|latest`: what a person types, made one instant.

A recovery that stops at the wrong moment keeps or drops transactions without a word, so
every doubt is refused rather than guessed: a date alone, a local time that a clock change
makes happen twice or skips, a time in the future, other spellings of `latest`. A local
time is read in the zone given and said back with its zone and offset, so the person sees
the instant recoverctl understood; reached points and the recoverable window are said in
the same zone, so they compare at a glance.

Pure: the caller passes the zone (the machine's, as a DST-aware zone such as a ZoneInfo:
a fixed offset would read a summer time with the winter offset) and the current time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo

from recoverctl.errors import ErrorCode, RecoverctlError, UsageError

LATEST = "latest"
# ISO 8601 extended format only, ASCII digits only (no week or ordinal dates, no basic
# format): the shapes a person types or pastes from a log, each with one meaning.
_TIME_RE = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]"
    r"(?P<clock>[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,](?P<fraction>[0-9]+))?)?)"
    r"(?P<offset>[Zz]|(?P<sign>[+-])(?P<oh>[0-9]{2})(?::?(?P<om>[0-9]{2}))?)?"
)
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CLOCK_RE = re.compile(r"[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]+)?)?([Zz]|[+-][0-9:]+)?")
# PostgreSQL keeps microseconds: a finer time would be cut, so it is refused instead.
_MAX_FRACTION = 6


@dataclass(frozen=True)
class PointInTime:
    """Where a recovery stops: `latest` (replay everything archived) or the instant `at`.

    `said` tells it back to a person; `zone` is the zone it was said in (the offset typed,
    else the local zone), in which `say` tells reached points and windows too.
    """

    latest: bool
    at: datetime | None  # aware, UTC; None for latest
    said: str
    zone: tzinfo


def parse_point(text: str, *, zone: tzinfo, now: datetime) -> PointInTime:
    """`latest`, an ISO 8601 time with its offset, or a local time read in `zone`; a time
    after `now` (aware) is refused. Raises UsageError naming the value, with an example."""
    if text == LATEST:
        return PointInTime(True, None, "latest (everything archived)", zone)
    example = _example(now, zone)
    if text.strip().casefold() == LATEST:
        raise UsageError(
            f"--to-time {_quoted(text)}: only latest, in lower case, means the latest point.",
            "Write it --to-time latest.",
        )
    m = _TIME_RE.fullmatch(text)
    if m is None:
        raise _not_a_time(text, example)
    fraction = m.group("fraction") or ""
    if len(fraction) > _MAX_FRACTION:
        raise UsageError(
            f"--to-time {_quoted(text)} is finer than a microsecond.",
            f"Keep at most {_MAX_FRACTION} digits after the seconds, such as --to-time {example}.",
        )
    try:
        wall = datetime.fromisoformat(f"{m.group('date')}T{m.group('clock').replace(',', '.')}")
        if m.group("offset") is None:
            point_zone, at = zone, _local_instant(text, wall, zone)
        else:
            point_zone = _offset_zone(m)
            at = wall.replace(tzinfo=point_zone).astimezone(UTC)
    except (ValueError, OverflowError):
        raise UsageError(
            f"--to-time {_quoted(text)} is not a valid date, time or offset.",
            f"Check the day of the month, the hour (00 to 23) and the offset, such as --to-time {example}.",
        ) from None
    if at > now:
        raise UsageError(
            f"--to-time {_quoted(text)} is in the future: it is now {say(now, point_zone)}.",
            f"Give a time before now, such as --to-time {example}, or --to-time latest.",
        )
    return PointInTime(False, at, say(at, point_zone), point_zone)


def _local_instant(text: str, wall: datetime, zone: tzinfo) -> datetime:
    """The one instant a wall-clock time names in `zone`, or UsageError when it names two
    (fall back) or none (spring forward): a guess would be off by the jump, silently. Not
    a ValueError, which the caller reads as an impossible date."""
    first, second = wall.replace(tzinfo=zone), wall.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first.astimezone(UTC)
    # A time that exists comes back to the same wall clock; one in the gap does not.
    exists = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall
    before, after = _isotime(first), _isotime(second)
    if exists:
        raise UsageError(
            f"--to-time {_quoted(text)} happens twice in {_zone_label(zone)}: at {say(first, zone)} and at {say(second, zone)}.",
            f"Add the offset you mean: --to-time {before} or --to-time {after}.",
        )
    raise UsageError(
        f"--to-time {_quoted(text)} does not exist in {_zone_label(zone)}: the clocks skip it ({_offset(first.utcoffset())} to {_offset(second.utcoffset())}).",
        f"Give a time outside the jump, or add the offset you mean, such as --to-time {before}.",
    )


def _offset_zone(m: re.Match[str]) -> tzinfo:
    if m.group("sign") is None:
        return UTC
    hours, minutes = int(m.group("oh")), int(m.group("om") or 0)
    if minutes > 59:
        raise ValueError("no such offset")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if m.group("sign") == "-" else delta)  # >= 24h: ValueError


def say(moment: datetime, zone: tzinfo) -> str:
    """An aware instant as a person reads it in `zone`: `2026-12-02 14:03:00 CET (+01:00)`,
    microseconds only when there are some, the zone's name only when it is not an offset."""
    local = moment.astimezone(zone)
    spec = "microseconds" if local.microsecond else "seconds"
    wall = local.replace(tzinfo=None).isoformat(sep=" ", timespec=spec)
    name = local.tzname()
    offset = _offset(local.utcoffset())
    if not name or name[0] in "+-" or name.startswith(("UTC+", "UTC-")):
        return f"{wall} ({offset})"
    return f"{wall} {name} ({offset})"


def pgbackrest_target(at: datetime) -> str:
    """pgBackRest's `--target` for `--type=time`, which it hands to PostgreSQL's
    recovery_target_time: UTC with an explicit `+00` and every digit, so the server's own
    TimeZone and DateStyle cannot change its meaning."""
    if at.utcoffset() is None:
        raise ValueError("a recovery target must be an aware datetime")
    text = at.astimezone(UTC).isoformat(sep=" ", timespec="microseconds")
    return text.removesuffix("+00:00") + "+00"


def check_window(point: PointInTime, earliest: datetime | None, latest: datetime | None) -> None:
    """Refuse a point the archive cannot reach: `earliest` is the oldest point a base
    backup reaches, `latest` the newest archived one (None: not known, not checked). No
    earliest means no base backup, and then not even `latest` can be recovered."""
    if earliest is None:
        raise RecoverctlError(
            "No base backup to recover from: point-in-time recovery replays the archive on top of one.",
            "Take a base backup first; recovery can reach any time after it ends.",
            code=ErrorCode.BACKUP_NOT_FOUND,
        )
    if point.at is None:
        return
    if point.at < earliest or (latest is not None and point.at > latest):
        side = "before" if point.at < earliest else "after"
        start = say(earliest, point.zone)
        window = (
            f"which starts at {start}"
            if latest is None
            else f"{start} to {say(latest, point.zone)}"
        )
        raise RecoverctlError(
            f"--to-time {point.said} is {side} the recoverable window, {window}.",
            "Pick a time inside it, or --to-time latest to replay everything archived.",
            code=ErrorCode.PITR_OUTSIDE_WINDOW,
        )


def _offset(delta: timedelta | None) -> str:
    seconds = int((delta or timedelta(0)).total_seconds())
    sign = "-" if seconds < 0 else "+"
    hours, rest = divmod(abs(seconds), 3600)
    minutes, rest = divmod(rest, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{rest:02d}" if rest else "")


def _isotime(moment: datetime) -> str:
    """A moment as --to-time takes it with its offset (no space: no quotes needed)."""
    spec = "microseconds" if moment.microsecond else "seconds"
    return moment.replace(tzinfo=None).isoformat(timespec=spec) + _offset(moment.utcoffset())


def _example(now: datetime, zone: tzinfo) -> str:
    """A correct value for this machine: the last full hour, in the local zone."""
    return _isotime(now.astimezone(zone).replace(minute=0, second=0, microsecond=0))


def _not_a_time(text: str, example: str) -> UsageError:
    """The refusal of a value that is no date and time, told by what it lacks."""
    quoted = _quoted(text)
    if _DATE_RE.fullmatch(text):
        return UsageError(
            f"--to-time {quoted} is a date without a time: a whole day, not a point in it.",
            # Local, not the example's offset: that day may be on the other side of a DST change.
            f"Give a time too, such as --to-time {text}T{example[11:16]}.",
        )
    if _CLOCK_RE.fullmatch(text):
        return UsageError(
            f"--to-time {quoted} is a time without a date.",
            f"Give the date too, such as --to-time {example}.",
        )
    return UsageError(
        f"--to-time {quoted} is not a date and time.",
        f"Give one with its offset, such as --to-time {example}, a local time such as {example[:16]}, or --to-time latest.",
    )


def _zone_label(zone: tzinfo) -> str:
    key = getattr(zone, "key", None)  # a ZoneInfo's IANA name
    return key if isinstance(key, str) else "the local zone"


def _quoted(text: str) -> str:
    """The value as typed, control characters escaped, a pasted page cut short."""
    return repr(text if len(text) <= 64 else text[:64] + "...")
