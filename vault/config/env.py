"""Environment parsing for settings.

Kept free of Django settings access so the checks can be unit-tested directly
and so a bad value fails at import time with one clear line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

# Values people copy from examples and forget to replace.
_PLACEHOLDERS = ("change-me", "changeme", "replace-me")
MIN_SECRET_KEY_LENGTH = 50


def env_bool(name: str, default: bool = False, environ: Mapping[str, str] = os.environ) -> bool:
    raw = environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be true/false or 1/0, got {raw!r}")


def env_list(name: str, default: str = "", environ: Mapping[str, str] = os.environ) -> list[str]:
    raw = environ.get(name, default)
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_int(name: str, default: int, environ: Mapping[str, str] = os.environ) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def check_secret_key(value: str | None) -> str:
    """Return the key if it is fit for production, else raise with a one-line reason.

    The message never repeats the key itself: it ends up in logs.
    """
    if not value:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is not set; production refuses to start without it")
    if value.startswith("django-insecure-"):
        raise ImproperlyConfigured("DJANGO_SECRET_KEY starts with 'django-insecure-'; generate a real key for production")
    lowered = value.lower()
    for marker in _PLACEHOLDERS:
        if marker in lowered:
            raise ImproperlyConfigured(f"DJANGO_SECRET_KEY is a placeholder (contains {marker!r}); set a real random key")
    if len(value) < MIN_SECRET_KEY_LENGTH:
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY is too short ({len(value)} chars); production needs at least {MIN_SECRET_KEY_LENGTH}"
        )
    return value
