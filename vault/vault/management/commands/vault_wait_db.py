"""Wait until the database accepts connections, then (with --migrate) bring its schema up
to date: the container entrypoint's one Django start before the server's own."""

from __future__ import annotations

import time
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection
from django.db.utils import OperationalError


class Command(BaseCommand):
    help = "Wait up to --timeout seconds for the database to answer."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=60.0)
        # In the same process: a second `manage.py migrate` would set Django up again,
        # which is most of the app's restart time after a restore.
        parser.add_argument("--migrate", action="store_true", help="then run migrate --noinput")

    def handle(self, *args: Any, **options: Any) -> None:
        deadline = time.monotonic() + options["timeout"]
        while True:
            try:
                connection.ensure_connection()
                break
            except OperationalError as exc:
                connection.close()
                if time.monotonic() >= deadline:
                    raise CommandError(f"database not reachable after {options['timeout']:g}s ({type(exc).__name__})") from None
                self.stderr.write("waiting for the database...")
                time.sleep(0.5)
        if options["migrate"]:
            call_command(
                "migrate",
                interactive=False,
                verbosity=options["verbosity"],
                stdout=self.stdout,
                stderr=self.stderr,
            )
