"""doctor's postgres group, its judgements on their own: the upgrade's journal, and the
image compose would start against the server's major."""

from datetime import UTC, date, datetime, timedelta

from recoverctl.core import upgrade
from recoverctl.services.doctor.postgres import journal_finding, version_finding

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def journal(phase: upgrade.Phase, days_ago: float = 1) -> upgrade.Journal:
    at = NOW - timedelta(days=days_ago)
    return upgrade.Journal(
        project="vault-dev", stack="dev", from_major=15, to_major=17,
        old_image="postgres:15", new_image="postgres:17", old_image_setting=None,
        old_volume="db-data", new_volume="db-data-17", phase=phase, started_at=at,
        updated_at=at, switched_at=at if phase in ("switched", "done", "rolled_back") else None,
    )  # fmt: skip


def test_no_journal_is_fine() -> None:
    assert journal_finding(None, None, NOW).status == "ok"


def test_half_made_and_switched_fail_with_the_way_out() -> None:
    half = journal_finding(journal("app_stopped"), None, NOW)
    assert half.status == "fail" and "stopped half-way (app_stopped)" in half.evidence
    assert "--rollback" in half.fix
    cut = journal_finding(journal("switched"), None, NOW)
    assert cut.status == "fail" and "finishes it" in cut.fix


def test_the_kept_volume_is_a_reminder_after_14_days() -> None:
    fresh = journal_finding(journal("done", 3), "vault-dev_db-data", NOW)
    assert fresh.status == "ok" and "vault-dev_db-data kept since 2026-11-30" in fresh.evidence
    old = journal_finding(journal("done", 15), "vault-dev_db-data", NOW)
    assert old.status == "warn" and "(15 days)" in old.evidence and "--forget-old" in old.fix


def test_the_image_must_be_the_data_directorys_major() -> None:
    wrong = version_finding(15, "postgres:16", "the compose file's default", "postgres:15",
                            ".env", date(2026, 1, 1))  # fmt: skip
    assert wrong.status == "fail"
    assert "compose would start postgres:16" in wrong.evidence
    assert wrong.fix.startswith("Set POSTGRES_IMAGE=postgres:15 in .env")


def test_end_of_life_within_a_year_warns() -> None:
    near = version_finding(15, "postgres:15", "in .env", "postgres:15", ".env", date(2026, 12, 3))
    assert near.status == "warn" and "2027-11-11" in near.evidence
    assert "upgrade-postgres --to 17 --dry-run" in near.fix
    far = version_finding(17, "postgres:17", "in .env", "postgres:17", ".env", date(2026, 12, 3))
    assert far.status == "ok" and "supported until 2029-11-08" in far.evidence
    untagged = version_finding(17, None, "", "postgres:17", ".env", date(2026, 12, 3))
    assert untagged.status == "ok"
