"""The one duration type of the settings: units, caps, refusals, ASCII only."""

from datetime import timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from recoverctl.core.duration import DAY, HOUR, MINUTE, Duration, in_units, parse_duration

DURATION: TypeAdapter[timedelta] = TypeAdapter(Duration)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("24h", timedelta(hours=24)),
        ("30d", timedelta(days=30)),
        ("1.5h", timedelta(minutes=90)),
        (" 2W ", timedelta(days=14)),
        ("3660d", timedelta(days=3660)),
    ],
)
def test_units(text: str, expected: timedelta) -> None:
    assert DURATION.validate_python(text) == expected


@pytest.mark.parametrize("value", [7, 7.0, "7", " 7 "])
def test_a_bare_number_must_say_its_unit(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        DURATION.validate_python(value)
    assert "must say its unit" in str(info.value) and '"24h"' in str(info.value)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("0s", "must be more than zero"),
        ("3661d", "must be at most 10 years (3660d)"),
        ("99999999999w", "must be at most 10 years"),
        ("1y", "must be a duration"),
        ("-1h", "must be a duration"),
        ("soon", "must be a duration"),
        ("", "must be a duration"),
        (True, "must be a duration"),
        (None, "must be a duration"),
        ("\u0661h", "must be a duration"),  # an Arabic-Indic one
        ("\u00a01h", "must be a duration"),  # a no-break space
        ("1\uff48", "must be a duration"),  # a full-width h
    ],
)
def test_refused_without_repeating_the_value(value: object, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(value, bare=None)
    assert fragment in str(info.value)
    assert str(value) not in str(info.value) or str(value) in ("", "True", "None")


def test_a_bare_unit_for_the_old_spellings() -> None:
    assert parse_duration(7, bare="d") == timedelta(days=7)
    assert parse_duration("300", bare="s") == timedelta(seconds=300)


def test_in_units() -> None:
    assert in_units(timedelta(hours=36), DAY) == 1.5
    assert in_units(timedelta(minutes=30), HOUR) == 0.5
    assert in_units(timedelta(seconds=30), MINUTE) == 0.5
    assert in_units(None, DAY) is None
