"""What /healthz reports: can we reach the database, and is its schema current."""

from __future__ import annotations

import logging

from django.db import connection
from django.db.migrations.executor import MigrationExecutor

logger = logging.getLogger(__name__)


def check() -> tuple[int, dict[str, str]]:
    result = {"status": "ok", "database": "ok", "migrations": "ok"}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any driver failure means "not healthy", not a 500
        # Class name only: driver messages can carry host and user names.
        logger.warning("healthz: database check failed (%s)", type(exc).__name__)
        result.update(status="error", database="error", migrations="unknown")
        return 503, result
    try:
        # Not cached: a restore of an older dump can make migrations unapplied again.
        executor = MigrationExecutor(connection)
        pending = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        logger.warning("healthz: migration check failed (%s)", type(exc).__name__)
        result.update(status="error", migrations="error")
        return 503, result
    if pending:
        result.update(status="error", migrations="pending", detail=f"{len(pending)} unapplied migration(s)")
        return 503, result
    return 200, result
