"""One JSON object on stdout describing who has a key and how many secrets.

Ops tooling compares it before and after a backup/restore; it holds no secret material.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db.models import Count

from vault.models import Secret, UserKey


class Command(BaseCommand):
    help = "Print users, their key fingerprints and secret counts as one JSON object."
    # System-check warnings would be noise for a machine reader; the app has its own tests.
    requires_system_checks: list[str] = []

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        fingerprints = dict(UserKey.objects.values_list("user_id", "fingerprint"))
        users = User.objects.annotate(secret_count=Count("vault_secrets")).order_by(User.USERNAME_FIELD)
        report = {
            "users": [
                {
                    "username": user.get_username(),
                    "fingerprint": fingerprints.get(user.pk),
                    "secrets": user.secret_count,
                }
                for user in users
            ],
            "secrets_total": Secret.objects.count(),
        }
        self.stdout.write(json.dumps(report, sort_keys=False))
