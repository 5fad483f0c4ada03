from datetime import UTC, datetime, timedelta
from pathlib import Path

from recoverctl.services.catalog import BackupEntry, Listing
from recoverctl.services.doctor.backups import rpo_check, space_check

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
MIB = 1024 * 1024


def entry(hours_old: float, state: str) -> BackupEntry:
    return BackupEntry(
        path=Path(f"/b/backup_{hours_old}.dump"), size=1, created=NOW - timedelta(hours=hours_old),
        format="custom", stack="dev", state=state, state_at=NOW,  # type: ignore[arg-type]
    )  # fmt: skip


def listing(*entries: BackupEntry) -> Listing:
    return Listing(Path("/b"), "dev", entries, ())


def test_rpo_uses_the_newest_verified_backup() -> None:
    ok = rpo_check(listing(entry(1, "never"), entry(3, "deep ok")), 24, "dev", NOW)
    assert ok.status == "ok" and "3.0 h old" in ok.evidence
    old = rpo_check(listing(entry(1, "never"), entry(30, "quick ok")), 24, "dev", NOW)
    assert old.status == "fail" and "30 h old, over the 24 h allowed" in old.evidence
    none = rpo_check(listing(entry(1, "failed")), 24, "prod", NOW)
    assert none.status == "fail" and "--prod" in none.fix


def test_space_wants_a_margin() -> None:
    assert space_check(500 * MIB, 100 * MIB, Path("/b")).status == "ok"
    assert space_check(150 * MIB, 100 * MIB, Path("/b")).status == "warn"
    assert space_check(50 * MIB, 100 * MIB, Path("/b")).status == "fail"
