from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from vault import formats


def validate_fingerprint_field(value: str) -> None:
    try:
        formats.check_fingerprint_text(value)
    except formats.FormatError as exc:
        raise ValidationError(str(exc)) from None


def validate_envelope_field(value: Any) -> None:
    try:
        formats.validate_envelope(value)
    except formats.FormatError as exc:
        raise ValidationError(str(exc)) from None


class UserKey(models.Model):
    """The one active public key of a user; the private half never leaves the browser."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vault_key")
    public_key = models.TextField(help_text="base64 of the SubjectPublicKeyInfo DER")
    fingerprint = models.CharField(max_length=71, validators=[validate_fingerprint_field])
    algorithm = models.JSONField(help_text='{"name": "RSA-OAEP", "modulusLength": 2048|3072, "hash": "SHA-256"}')
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "user key"

    def __str__(self) -> str:
        return f"{self.user} {self.fingerprint}"

    @property
    def modulus_bytes(self) -> int:
        return int(self.algorithm["modulusLength"]) // 8

    def clean(self) -> None:
        try:
            _, _, algorithm = formats.parse_public_key(self.public_key, self.fingerprint, self.algorithm)
        except formats.FormatError as exc:
            raise ValidationError(str(exc)) from None
        self.algorithm = algorithm


class Secret(models.Model):
    """One encrypted item. Only `name` is readable by the server; it is a label, not a secret."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vault_secrets")
    name = models.CharField(max_length=200)
    envelope = models.JSONField(validators=[validate_envelope_field])
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.owner}: {self.name}"

    @property
    def kid(self) -> str:
        return str(self.envelope.get("kid", "")) if isinstance(self.envelope, dict) else ""

    def clean(self) -> None:
        # The same rule as the API, so the admin cannot store an envelope nobody can open.
        key = UserKey.objects.filter(user_id=self.owner_id).first() if self.owner_id else None
        if key is None:
            raise ValidationError("the owner has no registered key")
        if self.kid != key.fingerprint:
            raise ValidationError("envelope.kid must equal the owner's registered key fingerprint")
