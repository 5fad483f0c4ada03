"""JSON API. Session auth, CSRF enforced by Django's middleware as for any form."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth import authenticate, login, logout
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.views import csrf as django_csrf
from django.views import defaults
from django.views.decorators.csrf import ensure_csrf_cookie

from vault import services
from vault.models import Secret, UserKey

View = Callable[..., HttpResponse]


def error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


class BadRequest(Exception):
    pass


def read_json(request: HttpRequest) -> dict[str, Any]:
    try:
        body = request.body
    except RequestDataTooBig:
        raise BadRequest("request body too large") from None
    try:
        data = json.loads(body or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest("request body must be JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    return data


def api(*methods: str, auth: bool = True) -> Callable[[View], View]:
    """Method check, 401 instead of a login redirect, and errors as JSON."""

    def decorate(view: View) -> View:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = error(405, "method not allowed")
                response["Allow"] = ", ".join(methods)
                return response
            if auth and not request.user.is_authenticated:
                return error(401, "authentication required")
            try:
                return view(request, *args, **kwargs)
            except BadRequest as exc:
                return error(400, str(exc))
            except services.ServiceError as exc:
                return error(exc.status, exc.message)

        return wrapper

    return decorate


def secret_json(secret: Secret) -> dict[str, Any]:
    return {
        "id": secret.id,
        "name": secret.name,
        "envelope": secret.envelope,
        "created": secret.created.isoformat(),
        "updated": secret.updated.isoformat(),
    }


@ensure_csrf_cookie
@api("GET", auth=False)
def csrf(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"csrfToken": get_token(request)})


@api("POST", auth=False)
def login_view(request: HttpRequest) -> HttpResponse:
    data = read_json(request)
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise BadRequest("username and password are required strings")
    user = authenticate(request, username=username, password=password)
    if user is None:
        return error(401, "invalid username or password")
    # login() rotates the CSRF token: clients must use the new csrftoken cookie afterwards.
    login(request, user)
    return JsonResponse({"username": user.get_username()})


@api("POST", auth=False)
def logout_view(request: HttpRequest) -> HttpResponse:
    # Idempotent on purpose: logging out twice is not an error worth a 401.
    logout(request)
    return JsonResponse({"status": "logged out"})


@api("POST")
def key(request: HttpRequest) -> HttpResponse:
    data = read_json(request)
    rotate = data.get("rotate", False)
    if not isinstance(rotate, bool):
        raise BadRequest("rotate must be true or false")
    result = services.register_key(
        request.user,
        public_key=data.get("publicKey"),
        fingerprint=data.get("fingerprint"),
        algorithm=data.get("algorithm"),
        rotate=rotate,
        secrets=data.get("secrets"),
    )
    body: dict[str, Any] = {"status": result.status, "fingerprint": result.fingerprint}
    if result.status == "rotated":
        body["secretsRotated"] = result.secrets_rotated
    return JsonResponse(body, status=201 if result.status == "registered" else 200)


@api("GET")
def key_check(request: HttpRequest) -> HttpResponse:
    user_key = UserKey.objects.filter(user=request.user).first()
    if user_key is None:
        return error(404, "no key registered")
    return JsonResponse({"fingerprint": user_key.fingerprint})


@api("GET", "POST")
def secrets(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        data = read_json(request)
        secret = services.create_secret(request.user, data.get("name"), data.get("envelope"))
        return JsonResponse(secret_json(secret), status=201)
    owned = Secret.objects.filter(owner=request.user).order_by("id")
    return JsonResponse({"secrets": [secret_json(s) for s in owned]})


@api("GET")
def secret_detail(request: HttpRequest, secret_id: int) -> HttpResponse:
    # Someone else's id answers exactly like a missing one.
    secret = Secret.objects.filter(owner=request.user, pk=secret_id).first()
    if secret is None:
        return error(404, "not found")
    return JsonResponse(secret_json(secret))


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if request.path_info.startswith("/api/"):
        return error(403, f"CSRF verification failed: {reason}")
    return django_csrf.csrf_failure(request, reason=reason)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path_info.startswith("/api/"):
        return error(404, "not found")
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path_info.startswith("/api/"):
        return error(500, "internal error")
    return defaults.server_error(request)
