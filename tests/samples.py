"""Result parts with fixed, realistic values, shared by the tests that hold the JSON and
the text output to their recorded form (tests/cli/test_golden.py, test_json_contract.py,
tests/unit/test_json_results.py). Each test names only what it changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

MADE_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def manifest(**changes: Any) -> Any:
    from recoverctl.core.manifest import Manifest

    fields: dict[str, Any] = {
        "file": "backup_2026-01-02_030405.dump",
        "sha256": "ab" * 32,
        "size": 2048,
        "format": "custom",
        "database": "vault",
        "project": "vault-dev",
        "stack": "dev",
        "server_version": "16.4",
        "pg_dump_version": "16.4",
        "tables": {"public.auth_user": 2, "public.vault_secret": None},
        "migrations": {"vault": "0003_x"},
        "started_at": MADE_AT,
        "duration_seconds": 1.25,
        "recoverctl_version": "0.1.0",
    }
    return Manifest(**{**fields, **changes})


def restore_plan(**changes: Any) -> Any:
    from recoverctl.core.restore_plan import CurrentDb, RestorePlan

    fields: dict[str, Any] = {
        "backup": "/p/backups/backup_2026-01-02_030405.dump",
        "backup_format": "custom",
        "backup_created": MADE_AT,
        "backup_stack": "dev",
        "backup_tables": 12,
        "backup_rows": 40,
        "project": "vault-dev",
        "stack": "dev",
        "database": "vault",
        "current": CurrentDb(exists=True, tables=12, rows=41, size=9000),
        "scratch": "vault__restore_new_20260102_030405",
        "keep_as": "vault__restore_old_20260102_030405",
        "app_services": ("backend",),
        "safety_backup": True,
        "leftovers": (),
    }
    return RestorePlan(**{**fields, **changes})


def pitr_verify_report(*, damaged: bool = False, deep: bool = True) -> Any:
    """verify --pitr's report on one folder repository: deep, and damaged or not."""
    from recoverctl.core.checks import Check
    from recoverctl.errors import ErrorCode
    from recoverctl.services.pitr_restore import PointReached
    from recoverctl.services.pitr_verify import PitrVerifyReport, RepoVerdict

    wal = "15-1/0000000100000000/000000010000000000000007-" + "3f" * 20 + ".lz4"
    if damaged:
        checks = [
            Check(
                "pgbackrest.verify",
                "fail",
                f"invalid checksum '{wal}'.",
                "A restore cannot replay past a damaged WAL segment: take a full base backup "
                "now (recoverctl pitr backup --type full) to start a good window.",
            )
        ]
    else:
        checks = [
            Check(
                "pgbackrest.verify",
                "ok",
                "every WAL segment and backup file matches its checksum and size "
                "(archiveId: 15-1, total WAL checked: 7, total valid WAL: 7)",
            )
        ]
    point = None
    if deep:
        reached = datetime(2026, 1, 2, 3, 0, 0, tzinfo=UTC) if damaged else MADE_AT
        point = PointReached(
            asked="latest",
            asked_at=None,
            reached=reached,
            reached_said=f"{reached:%Y-%m-%d %H:%M:%S} UTC",
            repo="nas",
            base_backup="20260102-020000F",
            seconds=6.5,
        )
        checks += [
            Check("restore", "ok", "restored from nas (base backup 20260102-020000F), "
                  "replayed and promoted in 6.5 s"),
            Check(
                "point",
                "fail" if damaged else "ok",
                f"latest reached {point.reached_said}"
                + (
                    ", but the archive holds commits until 2026-01-02 03:04:05 UTC: the WAL "
                    "between could not be replayed"
                    if damaged
                    else ", the archive's newest commit"
                ),
                "Check the repository, then take a full base backup." if damaged else "",
            ),
            Check("rows", "ok", "12 tables, 40 rows, as in the live database"),
            Check("db.not_empty", "ok", "12 tables, 2 users"),
            Check("db.migrations", "ok", "31 migrations applied, as in the live database"),
        ]  # fmt: skip
    repo = RepoVerdict(
        "nas",
        "posix",
        "/mnt/nas/vault-dev/dev/pgbackrest",
        (f"invalid checksum '{wal}'",) if damaged else (),
        tuple(checks),
        point,
        8.25,
        ErrorCode.PITR_FAILED if damaged else None,
    )
    return PitrVerifyReport("dev", "vault-dev", deep, (repo,), 8.5)
