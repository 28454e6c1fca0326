"""How the back office's guard errors become HTTP (registered on the back-office router).

A browser is sent where it can fix the problem — the sign-in page, the re-enter-your-code page,
the recovery codes — and keeps its place through `next`. API clients and anything else that
does not ask for HTML get the app's problem+json answer.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

from litestar import Request, Response
from litestar.response import Template
from litestar.status_codes import HTTP_403_FORBIDDEN
from litestar.types import ExceptionHandlersMap

from backoffice.permissions import (
    PermissionDenied,
    ReauthRequired,
    RecoveryCodesPending,
    StaffLoginRequired,
)
from backoffice.session import safe_next
from backoffice.shell import shell
from saldo.web import redirect_after_post

HTML_FIRST = ["text/html", "application/json", "application/problem+json"]


def wants_html(request: Request[Any, Any, Any]) -> bool:
    try:
        return request.accept.best_match(HTML_FIRST, default="text/html") == "text/html"
    except Exception:  # a malformed Accept header gets the page
        return True


def _delegate(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The app-wide answer (problem+json for API clients)."""
    handler = request.app.exception_handlers.get(Exception)
    if handler is None:  # pragma: no cover - create_app always registers one
        return Response(content=str(exc), status_code=getattr(exc, "status_code", 500))
    return handler(request, exc)


def here(request: Request[Any, Any, Any]) -> str | None:
    """Where to come back to: this page for a GET, the page the form was on for a POST."""
    if request.method == "GET":
        query = request.scope.get("query_string", b"").decode("latin-1")
        return safe_next(request.url.path + (f"?{query}" if query else ""))
    referer = request.headers.get("referer")
    if not referer:
        return None
    parts = urlsplit(referer)
    if parts.netloc and parts.netloc != request.url.netloc:
        return None
    return safe_next(parts.path + (f"?{parts.query}" if parts.query else ""))


def _to(request: Request[Any, Any, Any], route: str, back: str | None) -> Response[Any]:
    url = request.app.route_reverse(route)
    return redirect_after_post(request, f"{url}?{urlencode({'next': back})}" if back else url)


def login_required(request: Request[Any, Any, Any], exc: StaffLoginRequired) -> Response[Any]:
    if not wants_html(request):
        return _delegate(request, exc)
    return _to(request, "backoffice:login", here(request) if request.method == "GET" else None)


def reauth_required(request: Request[Any, Any, Any], exc: ReauthRequired) -> Response[Any]:
    if not wants_html(request):
        return _delegate(request, exc)
    return _to(request, "backoffice:reauth", here(request))


def codes_pending(request: Request[Any, Any, Any], exc: RecoveryCodesPending) -> Response[Any]:
    if not wants_html(request):
        return _delegate(request, exc)
    return _to(request, "backoffice:recovery_codes", None)


def permission_denied(request: Request[Any, Any, Any], exc: PermissionDenied) -> Response[Any]:
    if not wants_html(request):
        return _delegate(request, exc)
    return Template(
        template_name="backoffice/forbidden.html",
        context=shell(request, "forbidden", permission=exc.permission),
        status_code=HTTP_403_FORBIDDEN,
        headers={"Vary": "HX-Request"},
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    StaffLoginRequired: login_required,
    ReauthRequired: reauth_required,
    RecoveryCodesPending: codes_pending,
    PermissionDenied: permission_denied,
}
