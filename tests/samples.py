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
