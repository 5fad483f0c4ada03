"""The browser pages: thin templates around vault.js, which does all the cryptography.

The server renders names and public facts only (who is signed in, the registered
fingerprint, how many secrets there are). Plaintexts, passphrases and private keys live
in the browser; the forms that take them have no named inputs, so even with the script
blocked nothing secret can be submitted.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from vault.models import Secret, UserKey

View = Callable[..., HttpResponse]


def with_csp(view: View) -> View:
    """The pages' Content-Security-Policy: our own script and style, nothing inline, no other origin."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        response.headers.setdefault("Content-Security-Policy", settings.VAULT_PAGE_CSP)
        return response

    return wrapper


def page(view: View) -> View:
    # A signed-in page: its HTML names the user's secrets, so it is never cached.
    return with_csp(never_cache(require_safe(login_required(view))))


def _key_state(request: HttpRequest) -> dict[str, Any]:
    key = UserKey.objects.filter(user=request.user).first()
    return {
        "registered": key.fingerprint if key else "",
        "secret_count": Secret.objects.filter(owner=request.user).count(),
    }


@with_csp
@require_safe
def home(request: HttpRequest) -> HttpResponse:
    return redirect("secrets" if request.user.is_authenticated else "login")


@page
def secrets_page(request: HttpRequest) -> HttpResponse:
    owned = Secret.objects.filter(owner=request.user).order_by("name", "id").only("id", "name")
    return render(request, "vault/secrets.html", {"page": "secrets", "secrets": owned, **_key_state(request)})


@page
def key_backup_page(request: HttpRequest) -> HttpResponse:
    state = _key_state(request)
    # The playbook's rule, on screen: a new key is offered only while no secret depends on the old one.
    state["can_generate"] = state["secret_count"] == 0
    return render(request, "vault/key_backup.html", {"page": "key-backup", **state})


@page
def key_check_page(request: HttpRequest) -> HttpResponse:
    return render(request, "vault/key_check.html", {"page": "key-check", **_key_state(request)})


login_page = with_csp(
    never_cache(auth_views.LoginView.as_view(template_name="vault/login.html", redirect_authenticated_user=True))
)
# POST only (Django's LogoutView refuses GET), so a link or an image cannot sign anyone out.
logout_page = with_csp(auth_views.LogoutView.as_view())
