from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from vault.models import Secret, UserKey


@admin.register(UserKey)
class UserKeyAdmin(admin.ModelAdmin):
    list_display = ("user", "fingerprint", "algorithm", "updated")
    search_fields = ("user__username", "fingerprint")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # Changing a key here would bypass the API's no-new-key rule; rotation goes through the API.
        if obj is not None:
            return ("user", "public_key", "fingerprint", "algorithm", "created", "updated")
        return ("created", "updated")


@admin.register(Secret)
class SecretAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "name", "kid", "updated")
    list_filter = ("owner",)
    search_fields = ("owner__username", "name")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # Ciphertext is produced by the browser; hand edits can only break it.
        if obj is not None:
            return ("owner", "envelope", "created", "updated")
        return ("created", "updated")
