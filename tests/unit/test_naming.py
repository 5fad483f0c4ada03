from datetime import UTC, datetime

from recoverctl.core.naming import backup_name, is_backup_name, newest, parse_backup_name

WHEN = datetime(2026, 11, 24, 5, 6, 7, tzinfo=UTC)


def test_playbook_names() -> None:
    assert backup_name(WHEN, "sql") == "backup_2026-11-24_050607.sql"
    assert backup_name(WHEN, "custom") == "backup_2026-11-24_050607.dump"


def test_same_second_gets_a_suffix_never_an_overwrite() -> None:
    taken = {"backup_2026-11-24_050607.dump", "backup_2026-11-24_050607_2.dump.partial"}
    assert backup_name(WHEN, "custom", taken) == "backup_2026-11-24_050607_3.dump"


def test_parse_and_newest() -> None:
    assert parse_backup_name("backup_2026-11-24_050607.dump") == WHEN
    assert parse_backup_name("backup_2026-11-24_050607.dump.partial") is None
    assert not is_backup_name("notes.txt")
    names = [
        "backup_2026-11-24_050607.dump",
        "backup_2026-11-24_050607_2.sql",
        "backup_2026-01-01_000000.sql",
        "backup_2027-01-01_000000.dump.partial",
        "junk.dump",
    ]
    assert newest(names) == "backup_2026-11-24_050607_2.sql"
    assert newest(["x"]) is None
