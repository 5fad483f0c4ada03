"""Create a user for ops tooling. The password never comes from argv (it would show in ps)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

PASSWORD_ENV = "VAULT_USER_PASSWORD"


class Command(BaseCommand):
    help = (
        "Create a user. The password is read from stdin (one line) with --password-stdin, "
        f"otherwise from ${PASSWORD_ENV}. Prints {{\"created\": USERNAME}}."
    )
    requires_system_checks: list[str] = []
    # Not a CLI flag: lets call_command(stdin=...) feed the password in tests, as createsuperuser does.
    stealth_options = ("stdin",)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--superuser", action="store_true", help="staff + superuser (admin access)")
        parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin")

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        username: str = options["username"]
        try:
            User.username_validator(username)
        except ValidationError as exc:
            raise CommandError(f"invalid username: {' '.join(exc.messages)}") from None

        password = self._password(options)
        candidate = User(**{User.USERNAME_FIELD: username})
        try:
            validate_password(password, user=candidate)
        except ValidationError as exc:
            raise CommandError(f"password rejected: {' '.join(exc.messages)}") from None

        with transaction.atomic():
            if User._default_manager.filter(**{User.USERNAME_FIELD: username}).exists():
                raise CommandError(f"user {username!r} already exists")
            if options["superuser"]:
                User._default_manager.create_superuser(username=username, password=password, email="")
            else:
                User._default_manager.create_user(username=username, password=password, email="")
        self.stdout.write(json.dumps({"created": username}))

    def _password(self, options: dict[str, Any]) -> str:
        if options["password_stdin"]:
            stream = options.get("stdin") or sys.stdin
            line = stream.readline()
            password = line.rstrip("\r\n")
            if not password:
                raise CommandError("--password-stdin given but stdin had no password line")
            return password
        password = os.environ.get(PASSWORD_ENV, "")
        if not password:
            raise CommandError(f"no password: use --password-stdin or set {PASSWORD_ENV}")
        return password
