"""pgBackRest restore's argv: a copy never archives; the cluster recover installs does."""

from __future__ import annotations

from recoverctl.core import pitr


def test_a_copy_is_restored_with_archiving_off() -> None:
    assert pitr.restore(1, None) == (
        "pgbackrest", "--stanza=vault", "--repo=1", "--archive-mode=off", "--type=default",
        "restore",
    )  # fmt: skip


def test_the_installed_cluster_keeps_archive_mode_to_the_db_service() -> None:
    # preserve: no archive_mode='off' in postgresql.auto.conf for the live cluster.
    argv = pitr.restore(2, "2026-12-02 13:03:00.000000+00", archive=True)
    assert argv == (
        "pgbackrest", "--stanza=vault", "--repo=2", "--archive-mode=preserve", "--type=time",
        "--target=2026-12-02 13:03:00.000000+00", "--target-action=promote", "restore",
    )  # fmt: skip
    assert "--archive-mode=off" not in argv


def test_latest_restores_from_the_base_backup_the_window_was_judged_with() -> None:
    assert pitr.restore(1, None, backup_set="20261203-090000F") == (
        "pgbackrest", "--stanza=vault", "--repo=1", "--archive-mode=off",
        "--set=20261203-090000F", "--type=default", "restore",
    )  # fmt: skip
