from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from vault import health


class HealthzMiddleware:
    """Answer /healthz before host validation, sessions and CSRF.

    The container healthcheck calls http://127.0.0.1:8000/healthz, and that Host
    need not be in DJANGO_ALLOWED_HOSTS of a production deployment.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info != "/healthz":
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response = JsonResponse({"error": "method not allowed"}, status=405)
            response["Allow"] = "GET, HEAD"
            return response
        status, body = health.check()
        response = JsonResponse(body, status=status)
        response["Cache-Control"] = "no-store"
        return response
