"""--to-time: the forms read, every doubt refused with a hint that works, the instant said
back in its zone, pgBackRest's target string, and the recoverable window.

Examples pin the messages people read; the properties (hypothesis) hold over any instant,
offset and local time in zones with clock changes, checked against an oracle that counts
the instants a wall-clock time names by brute force rather than by folds.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recoverctl.core.pitrtime import (
    LATEST,
    PointInTime,
    check_window,
    parse_point,
    pgbackrest_target,
    say,
)
from recoverctl.errors import EXIT_FAILED, EXIT_USAGE, ErrorCode, RecoverctlError

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
# Zones whose clocks change by other amounts or at other times, and one that never changes.
ZONES = [
    PARIS,
    NEW_YORK,
    ZoneInfo("Australia/Lord_Howe"),  # a 30-minute change
    ZoneInfo("America/Sao_Paulo"),  # names that are offsets ("-03")
    ZoneInfo("Asia/Kolkata"),  # +05:30, no DST
    ZoneInfo("Pacific/Apia"),  # skipped a whole day in 2011
    UTC,
]
NOW = datetime(2026, 12, 2, 15, 30, tzinfo=UTC)  # 16:30 in Paris
FAR = datetime(2200, 1, 1, tzinfo=UTC)  # a "now" after anything the properties draw


def parse(text: str, zone: tzinfo = PARIS, now: datetime = NOW) -> PointInTime:
    return parse_point(text, zone=zone, now=now)


def refusal(text: str, zone: tzinfo = PARIS, now: datetime = NOW) -> RecoverctlError:
    with pytest.raises(RecoverctlError) as info:
        parse(text, zone, now)
    error = info.value
    assert error.code is ErrorCode.USAGE and error.exit_code == EXIT_USAGE
    assert error.hint and "\n" not in error.message and "\n" not in error.hint
    return error


def examples(hint: str) -> list[str]:
    """The values a hint suggests, as the person would copy them."""
    return [value.rstrip(".,") for value in re.findall(r"--to-time (\S+)", hint)]


# --- latest -------------------------------------------------------------------------------


def test_latest_replays_everything_and_keeps_the_zone_for_what_it_reaches() -> None:
    point = parse(LATEST)
    assert point == PointInTime(True, None, "latest (everything archived)", PARIS)


@pytest.mark.parametrize("text", ["Latest", "LATEST", " latest", "latest\n", "lAtEsT "])
def test_other_spellings_of_latest_are_refused_with_the_one_spelling(text: str) -> None:
    error = refusal(text)
    assert repr(text) in error.message
    assert examples(error.hint or "") == ["latest"]


def test_the_point_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        parse(LATEST).latest = False  # type: ignore[misc]


# --- times with a zone --------------------------------------------------------------------

H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "utc", "said"),
    [
        ("2026-12-02T14:03:00Z", datetime(2026, 12, 2, 14, 3), "2026-12-02 14:03:00 UTC (+00:00)"),
        ("2026-12-02t14:03:00z", datetime(2026, 12, 2, 14, 3), "2026-12-02 14:03:00 UTC (+00:00)"),
        ("2026-12-02T14:03Z", datetime(2026, 12, 2, 14, 3), "2026-12-02 14:03:00 UTC (+00:00)"),
        (
            "2026-12-02T14:03:00+00:00",
            datetime(2026, 12, 2, 14, 3),
            "2026-12-02 14:03:00 UTC (+00:00)",
        ),
        (
            "2026-12-02T14:03:00-00:00",
            datetime(2026, 12, 2, 14, 3),
            "2026-12-02 14:03:00 UTC (+00:00)",
        ),
        ("2026-12-02T14:03:00+01:00", datetime(2026, 12, 2, 13, 3), "2026-12-02 14:03:00 (+01:00)"),
        ("2026-12-02 14:03:00+01:00", datetime(2026, 12, 2, 13, 3), "2026-12-02 14:03:00 (+01:00)"),
        ("2026-12-02T14:03:00+0100", datetime(2026, 12, 2, 13, 3), "2026-12-02 14:03:00 (+01:00)"),
        ("2026-12-02T14:03:00+01", datetime(2026, 12, 2, 13, 3), "2026-12-02 14:03:00 (+01:00)"),
        (
            "2026-12-02T09:03:00-05:30",
            datetime(2026, 12, 2, 14, 33),
            "2026-12-02 09:03:00 (-05:30)",
        ),
        (
            "2026-12-02T14:03:00.123456+01:00",
            datetime(2026, 12, 2, 13, 3, 0, 123456),
            "2026-12-02 14:03:00.123456 (+01:00)",
        ),
        (
            "2026-12-02T14:03:00,5Z",
            datetime(2026, 12, 2, 14, 3, 0, 500000),
            "2026-12-02 14:03:00.500000 UTC (+00:00)",
        ),
        (
            "2026-12-02T14:03:00.000000Z",
            datetime(2026, 12, 2, 14, 3),
            "2026-12-02 14:03:00 UTC (+00:00)",
        ),
    ],
)
@pytest.mark.parametrize("zone", [PARIS, NEW_YORK])
def test_a_time_with_its_offset_ignores_the_local_zone(
    text: str, utc: datetime, said: str, zone: tzinfo
) -> None:
    point = parse(text, zone)
    assert point.latest is False and point.said == said
    assert point.at == utc.replace(tzinfo=UTC) and point.at.tzinfo is UTC
    assert say(point.at, point.zone) == said  # reached points are said in the typed offset


# --- local times --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "utc", "said"),
    [
        ("2026-12-02T14:03", datetime(2026, 12, 2, 13, 3), "2026-12-02 14:03:00 CET (+01:00)"),
        (
            "2026-12-02 14:03:05",
            datetime(2026, 12, 2, 13, 3, 5),
            "2026-12-02 14:03:05 CET (+01:00)",
        ),
        (
            "2026-12-02T14:03:00.5",
            datetime(2026, 12, 2, 13, 3, 0, 500000),
            "2026-12-02 14:03:00.500000 CET (+01:00)",
        ),
        ("2026-07-01T12:00", datetime(2026, 7, 1, 10, 0), "2026-07-01 12:00:00 CEST (+02:00)"),
        # on either side of the jumps, and the first instant after them
        (
            "2026-03-29T01:59:59",
            datetime(2026, 3, 29, 0, 59, 59),
            "2026-03-29 01:59:59 CET (+01:00)",
        ),
        ("2026-03-29T03:00", datetime(2026, 3, 29, 1, 0), "2026-03-29 03:00:00 CEST (+02:00)"),
        (
            "2026-10-25T01:59:59",
            datetime(2026, 10, 24, 23, 59, 59),
            "2026-10-25 01:59:59 CEST (+02:00)",
        ),
        ("2026-10-25T03:00", datetime(2026, 10, 25, 2, 0), "2026-10-25 03:00:00 CET (+01:00)"),
    ],
)
def test_a_local_time_is_read_in_the_zone_and_said_back_with_it(
    text: str, utc: datetime, said: str
) -> None:
    point = parse(text)
    assert (point.at, point.said, point.zone) == (utc.replace(tzinfo=UTC), said, PARIS)


def test_a_fixed_offset_zone_is_said_by_its_offset_alone() -> None:
    point = parse("2026-12-02T12:03", timezone(timedelta(hours=-3)))
    assert point.said == "2026-12-02 12:03:00 (-03:00)"
    assert point.at == datetime(2026, 12, 2, 15, 3, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "zone", "first", "second"),
    [
        (
            "2026-10-25T02:30",
            PARIS,
            "2026-10-25 02:30:00 CEST (+02:00)",
            "2026-10-25 02:30:00 CET (+01:00)",
        ),
        (
            "2026-10-25 02:00",
            PARIS,
            "2026-10-25 02:00:00 CEST (+02:00)",
            "2026-10-25 02:00:00 CET (+01:00)",
        ),
        (
            "2026-10-25T02:59:59.999999",
            PARIS,
            "2026-10-25 02:59:59.999999 CEST (+02:00)",
            "2026-10-25 02:59:59.999999 CET (+01:00)",
        ),
        (
            "2026-11-01T01:30",
            NEW_YORK,
            "2026-11-01 01:30:00 EDT (-04:00)",
            "2026-11-01 01:30:00 EST (-05:00)",
        ),
    ],
)
def test_a_local_time_that_happens_twice_is_refused_naming_both(
    text: str, zone: ZoneInfo, first: str, second: str
) -> None:
    error = refusal(text, zone)
    assert f"happens twice in {zone.key}: at {first} and at {second}." in error.message
    assert repr(text) in error.message
    suggested = [parse(value, zone).at for value in examples(error.hint or "")]
    assert len(suggested) == 2 and suggested[0] is not None and suggested[1] is not None
    assert suggested[1] - suggested[0] == H  # the two instants, an hour apart
    for value in examples(error.hint or ""):
        at = parse(value, zone).at
        assert at is not None and say(at, zone) in (first, second)


@pytest.mark.parametrize(
    ("text", "zone", "jump"),
    [
        ("2026-03-29T02:30", PARIS, "(+01:00 to +02:00)"),
        ("2026-03-29 02:00", PARIS, "(+01:00 to +02:00)"),
        ("2026-03-29T02:59:59.999999", PARIS, "(+01:00 to +02:00)"),
        ("2026-03-08T02:30", NEW_YORK, "(-05:00 to -04:00)"),
    ],
)
def test_a_local_time_the_clocks_skip_is_refused(text: str, zone: ZoneInfo, jump: str) -> None:
    error = refusal(text, zone)
    assert f"does not exist in {zone.key}: the clocks skip it {jump}." in error.message
    (value,) = examples(error.hint or "")
    assert parse(value, zone).latest is False  # the hint's own example is accepted


def test_a_zone_without_a_name_is_called_the_local_zone() -> None:
    with open("/usr/share/zoneinfo/Europe/Paris", "rb") as file:
        unnamed = ZoneInfo.from_file(file)  # as /etc/localtime would be read
    assert "happens twice in the local zone:" in refusal("2026-10-25T02:30", unnamed).message
    assert parse("2026-12-02T14:03", unnamed).said == "2026-12-02 14:03:00 CET (+01:00)"


# --- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["2026-12-02", "2025-07-14"])
def test_a_date_alone_is_refused_asking_for_a_time(text: str) -> None:
    error = refusal(text)
    assert (
        error.message
        == f"--to-time {text!r} is a date without a time: a whole day, not a point in it."
    )
    assert error.hint == f"Give a time too, such as --to-time {text}T16:00."
    (value,) = examples(error.hint)
    assert parse(value).said.startswith(f"{text} 16:00:00 ")


@pytest.mark.parametrize("text", ["14:03", "14:03:00", "14:03:00.5", "14:03:00+01:00", "14:03Z"])
def test_a_time_alone_is_refused_asking_for_a_date(text: str) -> None:
    error = refusal(text)
    assert error.message == f"--to-time {text!r} is a time without a date."
    assert error.hint == "Give the date too, such as --to-time 2026-12-02T16:00:00+01:00."


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "now",
        "yesterday",
        "1764684180",  # epoch seconds
        "2026-12-02T14",
        "2026-12-02T1403",
        "2026-12-02T14:03:00 CET",
        "2026-12-02T14:03:00 Europe/Paris",
        "2026-12-02T14:03:00+01:00[Europe/Paris]",
        "2026-12-02T14:03:00.Z",
        "2026-12-02T14:03.5Z",  # fractional minutes
        "2026-12-02T14:03:00+1:00",
        "2026-12-02T14:03:00+01:0",
        "2026-12-02  14:03",
        "2026-12-02_14:03",
        " 2026-12-02T14:03Z",
        "2026-12-02T14:03Z ",
        "2026-12-02T14:03Z\n",
        "20261202T140300Z",  # ISO basic format
        "2026-W49-3T14:03Z",  # week date
        "2026-336T14:03Z",  # ordinal date
        "12/02/2026 14:03",
        "02.12.2026 14:03",
        "\uff12\uff10\uff12\uff16-12-02T14:03Z",  # full-width digits
        "2026-12-02T14:03:00\u0665Z",  # an Arabic-Indic digit
    ],
)
def test_anything_else_is_refused_with_every_accepted_form(text: str) -> None:
    error = refusal(text)
    assert error.message == f"--to-time {text!r} is not a date and time."
    assert error.hint == (
        "Give one with its offset, such as --to-time 2026-12-02T16:00:00+01:00, "
        "a local time such as 2026-12-02T16:00, or --to-time latest."
    )
    assert parse("2026-12-02T16:00").at == parse("2026-12-02T16:00:00+01:00").at


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-30T10:00",
        "2026-02-29T10:00Z",  # not a leap year
        "2026-13-01T00:00Z",
        "2026-00-10T00:00Z",
        "2026-12-00T00:00Z",
        "2026-12-02T24:00Z",
        "2026-12-02T14:60Z",
        "2026-12-02T14:03:60Z",  # a leap second: datetime has none
        "2026-12-02T14:03+01:60",
        "2026-12-02T14:03+24:00",
        "2026-12-02T14:03-99",
        "0000-01-01T00:00Z",
        "0001-01-01T00:00+01:00",  # before datetime's first instant in UTC
        "0001-01-01T00:00",  # the same, read in Paris
    ],
)
def test_an_impossible_date_time_or_offset_is_refused(text: str) -> None:
    error = refusal(text)
    assert error.message == f"--to-time {text!r} is not a valid date, time or offset."
    assert examples(error.hint or "") == ["2026-12-02T16:00:00+01:00"]


def test_more_than_microseconds_is_refused_not_cut() -> None:
    error = refusal("2026-12-02T14:03:00.1234567Z")
    assert "finer than a microsecond" in error.message
    assert "at most 6 digits" in (error.hint or "")
    assert parse("2026-12-02T14:03:00.123456Z").at == datetime(
        2026, 12, 2, 14, 3, 0, 123456, tzinfo=UTC
    )


def test_a_time_in_the_future_is_refused_and_now_is_not() -> None:
    assert parse("2026-12-02T15:30:00Z").at == NOW
    assert parse("2026-12-02T16:30").at == NOW
    error = refusal("2026-12-02T15:30:00.000001Z")
    assert error.message == (
        "--to-time '2026-12-02T15:30:00.000001Z' is in the future: "
        "it is now 2026-12-02 15:30:00 UTC (+00:00)."
    )
    assert examples(error.hint or "") == ["2026-12-02T16:00:00+01:00", "latest"]
    assert "it is now 2026-12-02 16:30:00 CET (+01:00)." in refusal("2026-12-02T16:31").message
    assert "is in the future" in refusal("9999-12-31T23:59Z").message


def test_a_value_from_the_far_future_beyond_datetime_is_refused() -> None:
    assert "not a valid date" in refusal("9999-12-31T23:59-05:00").message


def test_the_value_is_quoted_with_control_characters_escaped_and_a_long_one_cut() -> None:
    assert "'\\x1b[31m'" in refusal("\x1b[31m").message
    long = "2026-12-02T14:03:00Z" * 20
    message = refusal(long).message
    assert repr(long[:64] + "...") in message and long not in message


def test_the_hint_example_follows_the_local_zone_and_now() -> None:
    new_york = refusal("soon", NEW_YORK).hint or ""
    assert examples(new_york)[0] == "2026-12-02T10:00:00-05:00"
    summer = refusal("soon", PARIS, datetime(2026, 7, 1, 10, 59, tzinfo=UTC)).hint or ""
    assert examples(summer)[0] == "2026-07-01T12:00:00+02:00"


# --- say and pgBackRest's target ----------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "zone", "said"),
    [
        (datetime(2026, 12, 2, 13, 3, tzinfo=UTC), PARIS, "2026-12-02 14:03:00 CET (+01:00)"),
        (datetime(2026, 7, 1, 10, 0, tzinfo=UTC), PARIS, "2026-07-01 12:00:00 CEST (+02:00)"),
        (datetime(2026, 7, 1, 12, 0, tzinfo=PARIS), UTC, "2026-07-01 10:00:00 UTC (+00:00)"),
        (
            datetime(2026, 12, 2, 13, 3, 0, 7, tzinfo=UTC),
            PARIS,
            "2026-12-02 14:03:00.000007 CET (+01:00)",
        ),
        (datetime(2026, 12, 2, 13, 3, tzinfo=UTC), timezone(-H), "2026-12-02 12:03:00 (-01:00)"),
        (
            datetime(2026, 12, 2, 13, 3, tzinfo=UTC),
            timezone(H, "CET"),
            "2026-12-02 14:03:00 CET (+01:00)",
        ),
        (
            datetime(2026, 1, 1, 12, tzinfo=UTC),
            ZoneInfo("America/Sao_Paulo"),
            "2026-01-01 09:00:00 (-03:00)",
        ),
        (
            datetime(2026, 1, 1, 12, tzinfo=UTC),
            ZoneInfo("Asia/Kolkata"),
            "2026-01-01 17:30:00 IST (+05:30)",
        ),
        (datetime(1900, 1, 1, tzinfo=UTC), PARIS, "1900-01-01 00:09:21 PMT (+00:09:21)"),
        # the second 02:30 of a fall-back night is told apart from the first
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), PARIS, "2026-10-25 02:30:00 CEST (+02:00)"),
        (datetime(2026, 10, 25, 1, 30, tzinfo=UTC), PARIS, "2026-10-25 02:30:00 CET (+01:00)"),
    ],
)
def test_say(moment: datetime, zone: tzinfo, said: str) -> None:
    assert say(moment, zone) == said


@pytest.mark.parametrize(
    ("moment", "target"),
    [
        (datetime(2026, 12, 2, 13, 3, tzinfo=UTC), "2026-12-02 13:03:00.000000+00"),
        (datetime(2026, 12, 2, 14, 3, 0, 250000, tzinfo=PARIS), "2026-12-02 13:03:00.250000+00"),
        (datetime(2026, 12, 31, 23, 30, tzinfo=timezone(-H)), "2027-01-01 00:30:00.000000+00"),
        (datetime(999, 1, 1, tzinfo=UTC), "0999-01-01 00:00:00.000000+00"),
    ],
)
def test_pgbackrest_target_is_utc_with_every_digit(moment: datetime, target: str) -> None:
    assert pgbackrest_target(moment) == target


def test_pgbackrest_target_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        pgbackrest_target(datetime(2026, 12, 2, 13, 3))


# --- the recoverable window ---------------------------------------------------------------

EARLIEST = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
NEWEST = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("latest", [NEWEST, None])
@pytest.mark.parametrize("text", [LATEST, "2026-12-02T10:00"])
def test_no_base_backup_refuses_every_point(text: str, latest: datetime | None) -> None:
    with pytest.raises(RecoverctlError) as info:
        check_window(parse(text), None, latest)
    assert info.value.code is ErrorCode.BACKUP_NOT_FOUND and info.value.exit_code == EXIT_FAILED
    assert "No base backup" in info.value.message and "base backup" in (info.value.hint or "")


@pytest.mark.parametrize(
    "text",
    [
        LATEST,
        "2026-12-01T03:00",  # the earliest point itself
        "2026-12-02T10:00",  # the newest point itself
        "2026-12-01T02:00:00Z",
        "2026-12-02T09:00:00Z",
        "2026-12-01T12:00:00+05:00",
    ],
)
def test_a_point_inside_the_window_passes(text: str) -> None:
    check_window(parse(text), EARLIEST, NEWEST)


@pytest.mark.parametrize(
    ("text", "side"),
    [
        ("2026-12-01T02:59:59.999999", "before"),
        ("2026-12-01T01:59:59.999999Z", "before"),
        ("2020-01-01T00:00Z", "before"),
        ("2026-12-02T10:00:00.000001", "after"),
        ("2026-12-02T09:00:00.000001Z", "after"),
    ],
)
def test_a_point_outside_the_window_is_refused_naming_it_in_the_points_zone(
    text: str, side: str
) -> None:
    point = parse(text)
    with pytest.raises(RecoverctlError) as info:
        check_window(point, EARLIEST, NEWEST)
    error = info.value
    assert error.code is ErrorCode.PITR_OUTSIDE_WINDOW and error.exit_code == EXIT_FAILED
    start, end = say(EARLIEST, point.zone), say(NEWEST, point.zone)
    assert (
        error.message
        == f"--to-time {point.said} is {side} the recoverable window, {start} to {end}."
    )
    assert examples(error.hint or "") == ["latest"] and "inside it" in (error.hint or "")


def test_the_window_is_said_in_the_zone_the_time_was_given_in() -> None:
    with pytest.raises(RecoverctlError) as info:
        check_window(parse("2020-01-01T00:00Z"), EARLIEST, NEWEST)
    assert (
        "2026-12-01 02:00:00 UTC (+00:00) to 2026-12-02 09:00:00 UTC (+00:00)" in info.value.message
    )
    with pytest.raises(RecoverctlError) as info:
        check_window(parse("2020-01-01T00:00"), EARLIEST, NEWEST)
    assert (
        "2026-12-01 03:00:00 CET (+01:00) to 2026-12-02 10:00:00 CET (+01:00)" in info.value.message
    )


def test_an_unknown_end_of_the_archive_checks_only_the_start() -> None:
    check_window(parse("2026-12-02T16:00"), EARLIEST, None)
    with pytest.raises(RecoverctlError) as info:
        check_window(parse("2026-11-30T00:00Z"), EARLIEST, None)
    assert info.value.message.endswith(
        "is before the recoverable window, which starts at 2026-12-01 02:00:00 UTC (+00:00)."
    )


# --- properties ---------------------------------------------------------------------------

PROPERTY = settings(max_examples=400, deadline=None)
# From datetime's second year to its last: the edges overflow in some zones, on purpose.
instants = st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(2199, 12, 31), timezones=st.just(UTC)
)
# Offsets in minutes, both signs, up to a day minus a minute (datetime's limit).
offsets = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
walls = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2100, 12, 31))


def instants_named(wall: datetime, zone: tzinfo) -> set[datetime]:
    """Every UTC instant whose wall clock in `zone` is `wall`, by trying every offset the
    zone uses a day either side: no folds involved, so it checks the code's use of them."""
    used = {
        (wall + shift).replace(tzinfo=zone, fold=fold).utcoffset()
        for shift in (
            -timedelta(days=2),
            -timedelta(days=1),
            timedelta(0),
            timedelta(days=1),
            timedelta(days=2),
        )
        for fold in (0, 1)
    }
    found = set()
    for offset in used:
        assert offset is not None
        candidate = (wall - offset).replace(tzinfo=UTC)
        if candidate.astimezone(zone).replace(tzinfo=None) == wall:
            found.add(candidate)
    return found


@PROPERTY
@given(instants, offsets, st.sampled_from(["T", " "]), st.booleans())
def test_any_instant_written_with_any_offset_is_read_back_exactly(
    moment: datetime, zone: timezone, sep: str, colon: bool
) -> None:
    local = moment.astimezone(zone)
    text = local.isoformat(sep=sep, timespec="microseconds")
    if not colon:
        text = text[:-3] + text[-2:]  # +0130
    point = parse(text, PARIS, FAR)
    assert point.at == moment and point.said == say(moment, zone)
    assert datetime.fromisoformat(pgbackrest_target(moment)) == moment


@PROPERTY
@given(walls, st.sampled_from(ZONES))
def test_a_local_time_names_one_instant_or_is_refused_saying_why(
    wall: datetime, zone: tzinfo
) -> None:
    text = wall.isoformat(sep=" ", timespec="microseconds" if wall.microsecond else "seconds")
    named = instants_named(wall, zone)
    if len(named) == 1:
        point = parse(text, zone, FAR)
        assert {point.at} == named
        assert point.said.startswith(text + " ")
        return
    error = refusal(text, zone, FAR)
    reading = "happens twice" if len(named) == 2 else "does not exist"
    assert len(named) in (0, 2) and reading in error.message
    suggested = {parse(value, zone, FAR).at for value in examples(error.hint or "")}
    if named:  # the two suggestions are the two instants
        assert suggested == named


@PROPERTY
@given(instants, st.sampled_from([*ZONES, timezone(timedelta(hours=-3, minutes=-30))]))
def test_what_say_tells_names_the_instant_again(moment: datetime, zone: tzinfo) -> None:
    said = say(moment, zone)
    m = re.fullmatch(r"(\S+ \S+)( \S+)? \(([+-][0-9:]+)\)", said)
    assert m is not None, said
    assert datetime.fromisoformat(f"{m.group(1)}{m.group(3)}") == moment


@PROPERTY
@given(
    st.one_of(
        st.text(max_size=40),
        st.from_regex(
            r"[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.,][0-9]{1,8})?)?"
            r"([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)?)?",
            fullmatch=True,
        ),
    ),
    st.sampled_from(ZONES),
)
def test_any_text_is_a_point_or_a_usage_error_never_a_crash(text: str, zone: tzinfo) -> None:
    try:
        point = parse(text, zone)
    except RecoverctlError as error:
        assert error.code is ErrorCode.USAGE and error.hint
        return
    assert point.latest or (point.at is not None and point.at <= NOW and point.at.tzinfo is UTC)


@PROPERTY
@given(instants, instants, instants)
def test_the_window_refuses_exactly_the_points_outside_it(
    a: datetime, b: datetime, at: datetime
) -> None:
    earliest, latest = min(a, b), max(a, b)
    point = parse(at.isoformat(), PARIS, FAR)
    inside = earliest <= at <= latest
    try:
        check_window(point, earliest, latest)
    except RecoverctlError as error:
        assert not inside and error.code is ErrorCode.PITR_OUTSIDE_WINDOW
        assert (
            say(earliest, point.zone) in error.message and say(latest, point.zone) in error.message
        )
    else:
        assert inside
