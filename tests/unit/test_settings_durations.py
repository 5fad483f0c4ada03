"""Time settings: the new names with their units, the old names and bare numbers read still
(in their old units, with a deprecation warning), and both at once refused."""

from datetime import timedelta
from pathlib import Path

import pytest

from recoverctl.errors import ConfigError
from recoverctl.settings import Settings, resolve_settings


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "docker-compose.dev.yml").write_text("name: x\n")
    return tmp_path


def resolve(project: Path, toml: str = "", **env: str) -> tuple[Settings, list[str]]:
    config = project / "config.toml"
    config.write_text(f"[recoverctl]\n{toml}")
    heard: list[str] = []
    s = resolve_settings(
        environ={"RECOVERCTL_CONFIG": str(config), **env}, cwd=project, warn=heard.append
    )
    return s, heard


def error_of(project: Path, toml: str = "", **env: str) -> str:
    with pytest.raises(ConfigError) as info:
        resolve(project, toml, **env)
    assert info.value.exit_code == 2
    return info.value.message


def test_defaults(project: Path) -> None:
    s, heard = resolve(project)
    assert (s.up_timeout, s.rpo, s.deep_every) == (
        timedelta(seconds=300),
        timedelta(hours=24),
        timedelta(hours=24),
    )
    assert (s.drill_every, s.drill_max_age, s.rto) == (None, timedelta(days=30), None)
    assert heard == []


NEW = """\
up_timeout = "90s"
rpo = "6h"
deep_every = "2d"
drill_every = "7d"
drill_max_age = "45d"
rto = "15m"
"""
EXPECTED = (
    timedelta(seconds=90),
    timedelta(hours=6),
    timedelta(days=2),
    timedelta(days=7),
    timedelta(days=45),
    timedelta(minutes=15),
)


def values(s: Settings) -> tuple[object, ...]:
    return (s.up_timeout, s.rpo, s.deep_every, s.drill_every, s.drill_max_age, s.rto)


def test_new_names_in_the_file(project: Path) -> None:
    s, heard = resolve(project, NEW)
    assert values(s) == EXPECTED and heard == []


def test_new_names_in_the_environment(project: Path) -> None:
    s, heard = resolve(
        project,
        RECOVERCTL_UP_TIMEOUT="90s",
        RECOVERCTL_RPO="6h",
        RECOVERCTL_DEEP_EVERY="2d",
        RECOVERCTL_DRILL_EVERY="7d",
        RECOVERCTL_DRILL_MAX_AGE="45d",
        RECOVERCTL_RTO="15m",
    )
    assert values(s) == EXPECTED and heard == []


def test_a_new_name_needs_its_unit(project: Path) -> None:
    message = error_of(project, "rpo = 24\n", RECOVERCTL_RTO="15", RECOVERCTL_DRILL_MAX_AGE="3")
    config = project / "config.toml"
    assert f"{config} rpo: must say its unit" in message
    assert "RECOVERCTL_RTO: must say its unit" in message
    assert "RECOVERCTL_DRILL_MAX_AGE: must say its unit" in message
    assert '"24h"' in message


def test_old_names_keep_their_units(project: Path) -> None:
    s, heard = resolve(project, "rpo_hours = 6\ndrill_days = 45\nrto_minutes = 15\n")
    assert (s.rpo, s.drill_max_age, s.rto) == EXPECTED[1:2] + EXPECTED[4:]
    config = project / "config.toml"
    unit = "instead, a duration with its unit"
    assert heard == [
        f'{config} rpo_hours is deprecated: use rpo {unit} (rpo = "24h")',
        f'{config} drill_days is deprecated: use drill_max_age {unit} (drill_max_age = "30d")',
        f'{config} rto_minutes is deprecated: use rto {unit} (rto = "15m")',
    ]


def test_old_variables_keep_their_units(project: Path) -> None:
    s, heard = resolve(
        project,
        RECOVERCTL_RPO_HOURS="1.5",
        RECOVERCTL_DRILL_DAYS="45",
        RECOVERCTL_RTO_MINUTES="0.5",
    )
    assert (s.rpo, s.drill_max_age, s.rto) == (
        timedelta(minutes=90),
        timedelta(days=45),
        timedelta(seconds=30),
    )
    unit = "instead, a duration with its unit"
    assert heard == [
        f"RECOVERCTL_RPO_HOURS is deprecated: use RECOVERCTL_RPO {unit} (RECOVERCTL_RPO=24h)",
        f"RECOVERCTL_DRILL_DAYS is deprecated: use RECOVERCTL_DRILL_MAX_AGE {unit} "
        "(RECOVERCTL_DRILL_MAX_AGE=30d)",
        f"RECOVERCTL_RTO_MINUTES is deprecated: use RECOVERCTL_RTO {unit} (RECOVERCTL_RTO=15m)",
    ]


def test_bare_numbers_where_the_name_stays_keep_their_old_unit(project: Path) -> None:
    s, heard = resolve(project, "up_timeout = 300\ndrill_every = 7\ndeep_every = 12\n")
    assert (s.up_timeout, s.drill_every, s.deep_every) == (
        timedelta(seconds=300),
        timedelta(days=7),
        timedelta(hours=12),
    )
    s, _ = resolve(project, RECOVERCTL_DRILL_EVERY="1.5", RECOVERCTL_UP_TIMEOUT="12")
    assert (s.drill_every, s.up_timeout) == (timedelta(hours=36), timedelta(seconds=12))
    assert heard == []  # their names did not change


def test_an_old_name_reads_what_it_read_before(project: Path) -> None:
    message = error_of(
        project, "rpo_hours = -1\nup_timeout = 5000\n", RECOVERCTL_RTO_MINUTES="soon"
    )
    config = project / "config.toml"
    assert f"{config} up_timeout: Input should be less than or equal to 3600" in message
    assert f"{config} rpo_hours: Input should be greater than 0" in message
    assert "RECOVERCTL_RTO_MINUTES: Input should be a valid number" in message
    assert "soon" not in message and "5000" not in message
    # In the order of the settings, as every other problem.
    assert message.index("up_timeout") < message.index("rpo_hours") < message.index("RTO")


def test_caps(project: Path) -> None:
    config = project / "config.toml"
    message = error_of(project, 'up_timeout = "2h"\nrpo = "3661d"\nrto_minutes = 1e12\n')
    assert f"{config} up_timeout: must be at most 1h" in message
    assert f"{config} rpo: must be at most 10 years (3660d)" in message
    assert f"{config} rto_minutes: must be at most 10 years (3660d)" in message


@pytest.mark.parametrize(
    ("toml", "env", "old", "new"),
    [
        ("rpo_hours = 6\nrpo = \"6h\"\n", {}, "{config} rpo_hours", "{config} rpo"),
        ("rpo_hours = 6\n", {"RECOVERCTL_RPO": "6h"}, "{config} rpo_hours", "RECOVERCTL_RPO"),
        ('drill_max_age = "9d"\n', {"RECOVERCTL_DRILL_DAYS": "9"}, "RECOVERCTL_DRILL_DAYS",
         "{config} drill_max_age"),
        ("", {"RECOVERCTL_RTO_MINUTES": "5", "RECOVERCTL_RTO": "5m"}, "RECOVERCTL_RTO_MINUTES",
         "RECOVERCTL_RTO"),
    ],
)  # fmt: skip
def test_old_and_new_name_at_once_is_an_error(
    project: Path, toml: str, env: dict[str, str], old: str, new: str
) -> None:
    config = project / "config.toml"
    message = error_of(project, toml, **env)
    old, new = old.format(config=config), new.format(config=config)
    name = new.split()[-1].removeprefix("RECOVERCTL_").lower()
    assert f"  {old}: the old name of {name}, which {new} sets too: keep only the new name" in (
        message
    )


def test_one_warning_per_old_name(project: Path) -> None:
    # Set in the file and the environment: the environment wins, and is named once.
    _, heard = resolve(project, "rpo_hours = 6\n", RECOVERCTL_RPO_HOURS="7")
    assert heard == [
        "RECOVERCTL_RPO_HOURS is deprecated: use RECOVERCTL_RPO instead, a duration with its "
        "unit (RECOVERCTL_RPO=24h)"
    ]
