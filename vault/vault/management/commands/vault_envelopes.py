"""A sample of stored envelopes for one key fingerprint, as JSON on stdout.

Ops tooling (recoverctl keys check) opens them with the key backup to prove the key reads
existing data. Envelopes are ciphertext: without the private key they reveal nothing.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from vault.models import Secret


class Command(BaseCommand):
    help = "Print up to --limit envelopes whose kid is FINGERPRINT, and how many there are."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("fingerprint", help="sha256:<64 hex>, the key's fingerprint")
        parser.add_argument("--limit", type=int, default=3)

    def handle(self, *args: Any, **options: Any) -> None:
        fingerprint: str = options["fingerprint"]
        limit = max(0, min(int(options["limit"]), 100))
        # JSONField lookups keep this working on SQLite (tests) and PostgreSQL alike.
        matching = Secret.objects.filter(envelope__kid=fingerprint).order_by("id")
        sample = [{"id": s.id, "envelope": s.envelope} for s in matching[:limit]]
        report = {"fingerprint": fingerprint, "total": matching.count(), "sample": sample}
        self.stdout.write(json.dumps(report))
