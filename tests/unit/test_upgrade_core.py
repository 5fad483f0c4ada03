"""core/upgrade.py: images and volumes per major, end of life, the journal, the stream
across majors, the comparison of what must come across."""

from __future__ import annotations

import shlex
from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from recoverctl.core import envgen, upgrade


@pytest.mark.parametrize(
    ("image", "major"),
    [
        ("postgres:15", 15),
        ("postgres:16.4-bookworm", 16),
        ("recoverctl-test/postgres:17", 17),
        ("registry.example:5000/team/pg:15", 15),
        ("postgres", None),
        ("postgres:latest", None),
        ("postgres@sha256:abc", None),
        ("localhost:5000/postgres", None),
    ],
)
def test_image_major(image: str, major: int | None) -> None:
    assert upgrade.image_major(image) == major


def test_image_for_keeps_the_name_and_suffix() -> None:
    assert upgrade.image_for("postgres:15", 17) == "postgres:17"
    assert upgrade.image_for("recoverctl-test/postgres:15", 17) == "recoverctl-test/postgres:17"
    assert upgrade.image_for("postgres:16.4-bookworm", 17) == "postgres:17-bookworm"
    assert upgrade.image_for("postgres:latest", 17) is None


def test_image_names_are_what_an_env_file_holds_bare() -> None:
    assert upgrade.is_image_name("registry.example:5000/team/pg:17")
    assert upgrade.is_image_name("postgres@sha256:abc")
    for bad in ("a b", "", "-x", "pg:17\nX=1", "pg:17;rm", "$(id)"):
        assert not upgrade.is_image_name(bad), bad


def test_volumes_are_the_compose_files_own() -> None:
    assert upgrade.project_volumes() == ("db-data", "db-data-17")
    assert upgrade.is_project_volume("db-data-17")
    for bad in ("/var/lib/docker/volumes/other_db-data/_data", "./data", "other_db-data", ""):
        assert not upgrade.is_project_volume(bad)
    assert upgrade.full_volume("vault-prod", "db-data-17") == "vault-prod_db-data-17"


def test_end_of_life_warns_within_a_year_and_after() -> None:
    assert upgrade.eol_warning(15, date(2026, 11, 10)) is None
    said = upgrade.eol_warning(15, date(2026, 12, 3))
    assert said == "PostgreSQL 15 reaches its end of life on 2027-11-11"
    assert upgrade.eol_warning(13, date(2026, 12, 3)) == (
        "PostgreSQL 13 reached its end of life on 2025-11-13"
    )
    assert upgrade.eol_warning(17, date(2026, 12, 3)) is None
    assert upgrade.eol_warning(99, date(2026, 12, 3)) is None


def test_compose_files_declare_every_target_volume() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for name in ("docker-compose.yml", "docker-compose.dev.yml"):
        text = (root / name).read_text()
        assert "${POSTGRES_VOLUME:-db-data}:/var/lib/postgresql/data" in text
        for volume in upgrade.project_volumes():
            assert f"\n  {volume}:\n" in text, (name, volume)


def test_transfer_script_word_for_word() -> None:
    argv = upgrade.transfer_script("vault", "vault")
    assert argv[:2] == ("bash", "-c")
    lines = argv[2].splitlines()
    assert lines[0] == "set -euo pipefail"
    assert lines[1] == 'PGPASSWORD="$POSTGRES_PASSWORD"; export PGPASSWORD'
    assert lines[2] == (
        "pg_dumpall -h db -U vault --roles-only | grep -vxF 'CREATE ROLE vault;' |"
        " psql -X -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -U vault -d postgres >/dev/null"
    )
    assert lines[3] == (
        "pg_dump -h db -U vault -d vault --create --format=custom |"
        " pg_restore -h /var/run/postgresql -U vault -d postgres --create --exit-on-error"
    )
    assert len(lines) == 4


def test_transfer_script_quotes_names() -> None:
    script = upgrade.transfer_script("my user", "d'b")[2]
    assert "-U 'my user'" in script
    assert "-d 'd'\"'\"'b'" in script
    assert shlex.quote('CREATE ROLE "my user";') in script


def test_differences_name_the_first_line_each_side() -> None:
    live = {"roles": "a|t\nb|f", "extensions": "plpgsql"}
    new = {"roles": "a|t", "extensions": "plpgsql"}
    found = upgrade.differences(live, new)
    assert [(d.what, d.live, d.new) for d in found] == [("roles", "b|f", "")]
    assert found[0].text() == "roles: b|f in the live cluster, (nothing) in the new one"
    assert upgrade.differences(live, live) == []


def test_missing_extensions() -> None:
    assert upgrade.missing_extensions(["plpgsql", "postgis"], ["plpgsql", "pgcrypto"]) == [
        "postgis"
    ]


def test_parse_df() -> None:
    text = (
        "Filesystem     1024-blocks     Used Available Capacity Mounted on\n"
        "/dev/vda        263174212 32000000 75000000      30% /var/lib/postgresql/data\n"
    )
    assert upgrade.parse_df(text) == 75000000 * 1024
    assert upgrade.parse_df("") is None
    assert upgrade.parse_df("header\nbroken line\n") is None
    assert upgrade.disk_needed(100, 50) == 165


def _journal(**changes: object) -> upgrade.Journal:
    now = datetime(2026, 12, 3, tzinfo=UTC)
    values: dict[str, object] = {
        "project": "vault-dev",
        "stack": "dev",
        "from_major": 15,
        "to_major": 17,
        "old_image": "postgres:15",
        "new_image": "postgres:17",
        "old_image_setting": "postgres:15",
        "old_volume": "db-data",
        "new_volume": "db-data-17",
        "phase": "started",
        "started_at": now,
        "updated_at": now,
        **changes,
    }
    return upgrade.Journal.model_validate(values)


def test_journal_round_trips_and_refuses_what_it_does_not_know() -> None:
    j = _journal()
    assert upgrade.Journal.model_validate_json(j.model_dump_json()) == j
    assert j.half_made
    later = j.at("switched")
    assert later.phase == "switched" and not later.half_made and later.updated_at > j.updated_at
    with pytest.raises(ValidationError):
        _journal(phase="somewhere")
    with pytest.raises(ValidationError):
        _journal(extra="field")


def test_with_values_replaces_appends_and_removes() -> None:
    text = "# comment\nPOSTGRES_DB=vault\nPOSTGRES_IMAGE=postgres:15\nX=1\n"
    out = envgen.with_values(
        text, {"POSTGRES_IMAGE": "postgres:17", "POSTGRES_VOLUME": "db-data-17"}
    )
    assert out == (
        "# comment\nPOSTGRES_DB=vault\nPOSTGRES_IMAGE=postgres:17\nX=1\nPOSTGRES_VOLUME=db-data-17\n"
    )
    back = envgen.with_values(out, {"POSTGRES_IMAGE": "postgres:15", "POSTGRES_VOLUME": None})
    assert back == text
    with pytest.raises(ValueError, match="quoting"):
        envgen.with_values(text, {"POSTGRES_IMAGE": "bad value"})


def test_an_off_site_failure_after_the_switch_says_what_serves_first() -> None:
    from recoverctl.errors import EXIT_OFFSITE, ErrorCode, RecoverctlError
    from recoverctl.services.upgrade import done_but

    assert done_but("PostgreSQL 17 (img, volume db-data-17)", None, None) is None
    env = RecoverctlError("Copying the env files off-site failed: nas: refused.", "Fix nas.")
    copy = RecoverctlError("x.dump is good here, but copying it failed.", None)
    error = done_but("PostgreSQL 17 (img, volume db-data-17)", env, copy)
    assert error is not None
    assert error.code is ErrorCode.OFFSITE_FAILED and error.exit_code == EXIT_OFFSITE
    assert error.message == (
        "PostgreSQL 17 (img, volume db-data-17) serves, switched and checked; an off-site step "
        "failed: Copying the env files off-site failed: nas: refused. x.dump is good here, but "
        "copying it failed."
    )
    assert error.hint == "Fix nas."
