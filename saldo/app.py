"""The composition root: `create_app()` wires routers, templates, static files, CSRF, sessions,
security headers, connections and error mapping.

This is the only `saldo` module that imports `portal` and `backoffice`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from http import HTTPStatus
from pathlib import Path
from typing import Any, cast

import msgspec
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context
from litestar import Litestar, Request, Response
from litestar.config.csrf import CSRFConfig
from litestar.connection import ASGIConnection
from litestar.datastructures import CacheControlHeader, MutableScopeHeaders, State
from litestar.enums import MediaType
from litestar.exceptions import HTTPException, ValidationException
from litestar.middleware.session.server_side import (
    ServerSideSessionBackend,
    ServerSideSessionConfig,
)
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from litestar.stores.redis import RedisStore
from litestar.template.config import TemplateConfig
from litestar.types import ControllerRouterHandler, Empty, Message, Scope, ScopeSession
from markupsafe import Markup
from redis.asyncio import Redis

from api.routes import api_router
from backoffice.routes import backoffice_router
from portal.routes import portal_router
from saldo.db import DB
from saldo.embedded import EmbeddedServers, ensure_servers
from saldo.errors import LoginRequired, SaldoError, ValidationFailed
from saldo.health import health_router
from saldo.notify import email_sender_from_settings
from saldo.payments import provider_from_settings
from saldo.settings import Settings
from saldo.web import (
    SESSION_IDLE_SECONDS,
    SESSION_ROTATE,
    before_request,
    current_language,
    redirect_after_post,
    remember_language,
    template_gettext,
    template_ngettext,
)
from saldo.worker import Queue

log = logging.getLogger("saldo.app")

ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = ROOT / "templates"
STATIC_DIR = ROOT / "static"

CSRF_HEADER = "x-csrf-token"
# Routes that never need a session or a CSRF cookie (and must stay free of Redis I/O).
NO_SESSION_OPT = {"skip_session": True, "exclude_from_csrf": True}

# Checkout answers the /pay form with a redirect to Mercado Pago, and browsers apply form-action
# to redirects after a form POST, so Mercado Pago's sites join 'self' there.
MERCADOPAGO_ORIGINS = " ".join(
    f"https://*.mercadopago.{tld}"
    for tld in ("com", "com.ar", "com.mx", "cl", "com.co", "com.pe", "com.uy", "com.br")
)
# htmx is vendored and no page has inline script or style, so everything else is 'self'.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    f"font-src 'self'; connect-src 'self'; form-action 'self' {MERCADOPAGO_ORIGINS}; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def create_app(
    settings: Settings | None = None,
    *,
    redis_prefix: str = "saldo:",
    extra_route_handlers: Sequence[ControllerRouterHandler] = (),
) -> Litestar:
    """Build the ASGI app.

    `redis_prefix` namespaces every Redis key the web app writes (sessions live under
    `{redis_prefix}session:`, sign-in rate limits under `{redis_prefix}login:`). The email
    sender (SMTP when SMTP_URL is set, else the file outbox) is `app.state.email_sender`, the
    job queue `app.state.queue` and the payment provider `app.state.payment_provider`.
    `extra_route_handlers` are mounted next to the real routers
    (tests use it to add probe routes). PostgreSQL and Redis come from the settings, else
    DATABASE_URL / REDIS_URL, else embedded servers under SALDO_DATA_DIR.
    """
    settings = settings or Settings.from_env()
    database_url, redis_url, embedded = _server_urls(settings)
    if DB.config.get("dsn") != database_url:
        DB.use(database_url)
    redis = Redis.from_url(redis_url, socket_connect_timeout=2.0, socket_timeout=5.0)
    secret = settings.resolved_secret_key()
    secure = settings.secure_cookies

    static_router = create_static_files_router(
        path="/static",
        directories=[STATIC_DIR],
        name="static",
        cache_control=CacheControlHeader(max_age=7 * 24 * 3600, public=True),
        include_in_schema=False,
        opt=NO_SESSION_OPT,
    )
    return Litestar(
        route_handlers=[
            health_router,
            static_router,
            portal_router,
            backoffice_router,
            api_router,
            *extra_route_handlers,
        ],
        template_config=TemplateConfig(instance=_template_engine()),
        csrf_config=CSRFConfig(
            secret=_derive_key(secret, "csrf"),
            cookie_name="__Host-saldo-csrf" if secure else "saldo_csrf",
            cookie_secure=secure,
            cookie_httponly=True,  # pages carry the token; scripts never read the cookie
            cookie_samesite="lax",
            header_name=CSRF_HEADER,
            exclude=[r"^/webhooks/", r"^/api/"],
        ),
        middleware=[_session_config(secure).middleware],
        stores={"sessions": RedisStore(redis, namespace=f"{redis_prefix}session")},
        before_request=before_request,
        before_send=[_security_headers(secure), remember_language(secure)],
        exception_handlers={Exception: handle_exception},
        lifespan=[_connections],
        state=State(
            {
                "redis": redis,
                "redis_prefix": redis_prefix,
                "settings": settings,
                "embedded": embedded,
                "email_sender": email_sender_from_settings(settings),
                "payment_provider": provider_from_settings(settings),
                "queue": Queue(redis_url, redis_prefix),
            }
        ),
        openapi_config=OpenAPIConfig(
            title="Saldo API",
            version="1",
            path="/schema",
            render_plugins=[JsonRenderPlugin()],
            components=Components(
                security_schemes={
                    "BearerAuth": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="An API key from `saldo apikey create NAME`.",
                    )
                }
            ),
        ),
        debug=False,
    )


# --- connections --------------------------------------------------------------------------------


def _server_urls(settings: Settings) -> tuple[str, str, EmbeddedServers | None]:
    database_url = settings.database_url or os.environ.get("DATABASE_URL")
    redis_url = settings.redis_url or os.environ.get("REDIS_URL")
    embedded = None
    if not database_url or not redis_url:
        embedded = ensure_servers(database_url, redis_url, settings.data_path)
        database_url = database_url or embedded.database_url
        redis_url = redis_url or embedded.redis_url
    assert database_url and redis_url
    return database_url, redis_url, embedded


@asynccontextmanager
async def _connections(app: Litestar) -> AsyncIterator[None]:
    """Open the Piccolo pool (unless the process already has one) and close it and Redis after."""
    owns_pool = DB.pool is None
    if owns_pool:
        await DB.start_connection_pool(min_size=1, max_size=10)
    try:
        yield
    finally:
        await app.state.redis.aclose()
        await app.state.queue.close()
        if owns_pool:
            await DB.close_connection_pool()


def _derive_key(secret: str, purpose: str) -> str:
    return hmac.new(secret.encode(), f"saldo:{purpose}".encode(), hashlib.sha256).hexdigest()


# --- sessions -----------------------------------------------------------------------------------


_ROTATED_SESSION_ID = "saldo.session.rotated_id"


class _LazySessionBackend(ServerSideSessionBackend):
    """Writes to Redis only when a session holds data, and rotates the id on request.

    Litestar's backend stores (and sets a cookie for) an empty session on every response, which
    would give each anonymous request — probes, crawlers — a Redis key. Here an empty session
    is skipped, and a session emptied during the request is deleted along with its cookie.

    A handler that called `saldo.web.rotate_session()` (sign-in) gets a new session id: the
    old id's Redis key is deleted and the data is stored under a fresh random id, which the
    cookie then carries.
    """

    def get_session_id(self, connection: ASGIConnection[Any, Any, Any, Any]) -> str:
        rotated = cast(dict[str, Any], connection.scope).get(_ROTATED_SESSION_ID)
        return rotated if isinstance(rotated, str) else super().get_session_id(connection)

    async def store_in_message(
        self,
        scope_session: ScopeSession,
        message: Message,
        connection: ASGIConnection[Any, Any, Any, Any],
    ) -> None:
        scope = cast(dict[str, Any], connection.scope)
        if scope.get(SESSION_ROTATE) and _ROTATED_SESSION_ID not in scope:
            old_id = connection.cookies.get(self.config.key)
            if old_id and old_id != "null":
                await self.delete(old_id, store=self.config.get_store_from_app(scope["app"]))
            scope[_ROTATED_SESSION_ID] = self.generate_session_id()
        if scope_session is not Empty and not scope_session:
            if not connection.cookies.get(self.config.key):
                return
            scope_session = Empty
        await super().store_in_message(scope_session, message, connection)


class _SessionConfig(ServerSideSessionConfig):
    _backend_class = _LazySessionBackend


def _session_config(secure: bool) -> ServerSideSessionConfig:
    # Idle timeout: the Redis TTL and the cookie's Max-Age are renewed on every request.
    # The 12 h absolute limit is measured from the session's `created_at` (see saldo.web).
    return _SessionConfig(
        key="__Host-saldo" if secure else "saldo_session",
        max_age=SESSION_IDLE_SECONDS,
        renew_on_access=True,
        secure=secure,
        httponly=True,
        samesite="lax",
        path="/",
        store="sessions",
    )


# --- templates ----------------------------------------------------------------------------------


def _template_engine() -> JinjaTemplateEngine:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=template_gettext, ngettext=template_ngettext, newstyle=True
    )
    env.globals.update(
        asset=asset_url,
        current_language=current_language,
        csrf_header=CSRF_HEADER,
    )
    return JinjaTemplateEngine.from_environment(env)


@pass_context
def asset_url(context: Context, path: str) -> str:
    """`/static/<path>?v=<content hash>`, so browsers may cache assets for a week safely."""
    request: Request[Any, Any, Any] = context["request"]
    url = request.app.route_reverse("static", file_path=path)
    file = STATIC_DIR / path
    try:
        stat = file.stat()
    except OSError:
        return url
    return f"{url}?v={_file_version(file, stat.st_mtime_ns, stat.st_size)}"


@lru_cache(maxsize=256)
def _file_version(file: Path, mtime_ns: int, size: int) -> str:
    return hashlib.sha256(file.read_bytes()).hexdigest()[:12]


# --- security headers ---------------------------------------------------------------------------


def _security_headers(secure: bool) -> Callable[[Message, Scope], Awaitable[None]]:
    headers = {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",  # magic-link tokens live in paths; never leak them
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    }
    if secure:
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"

    async def add_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        response_headers = MutableScopeHeaders.from_message(message)
        for name, value in headers.items():
            if response_headers.get(name) is None:
                response_headers[name] = value
        content_type = response_headers.get("content-type") or ""
        if content_type.startswith("text/html") and response_headers.get("cache-control") is None:
            response_headers["Cache-Control"] = "no-store"  # pages may show account data

    return add_headers


# --- error mapping ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """RFC 9457 problem details; also what the HTML error page is rendered from."""

    status: int
    title: str
    detail: str | None = None
    type: str = "about:blank"
    errors: list[dict[str, str]] = field(default_factory=list)
    user_message: str | None = None  # safe to show on the HTML page as is

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if self.errors:
            body["errors"] = self.errors
        return body


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _slug(name: str) -> str:
    return "".join(f"-{c.lower()}" if c.isupper() else c for c in name).lstrip("-")


def _validation_errors(extra: Any) -> list[dict[str, str]]:
    if not isinstance(extra, list):
        return []
    errors = []
    for item in extra:
        if isinstance(item, dict):
            entry = {"field": str(item.get("key") or ""), "message": str(item.get("message", ""))}
            if item.get("source"):
                entry["source"] = str(item["source"])
            errors.append(entry)
    return errors


def problem_for(exc: Exception) -> Problem:
    if isinstance(exc, SaldoError):
        message = str(exc) or None
        errors = []
        if isinstance(exc, ValidationFailed) and exc.field:
            errors.append({"field": exc.field, "message": str(exc)})
        return Problem(
            status=exc.status_code,
            title=exc.title,
            detail=message,
            type=f"urn:saldo:problem:{_slug(type(exc).__name__)}",
            errors=errors,
            user_message=message if exc.status_code < 500 else None,
        )
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        title = _phrase(exc.status_code)
        detail = exc.detail if exc.detail and exc.detail != title else None
        errors = _validation_errors(exc.extra) if isinstance(exc, ValidationException) else []
        return Problem(status=exc.status_code, title=title, detail=detail, errors=errors)
    status = exc.status_code if isinstance(exc, HTTPException) else HTTP_500_INTERNAL_SERVER_ERROR
    return Problem(status=status, title=_phrase(status))


def wants_json(request: Request[Any, Any, Any]) -> bool:
    path: str = request.scope["path"]
    if path.startswith(("/api/", "/webhooks/")):
        return True
    try:
        best = request.accept.best_match(
            ["text/html", "application/json", "application/problem+json"], default="text/html"
        )
    except Exception:  # a malformed Accept header gets the HTML page
        return False
    return best != "text/html"


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """The one place exceptions become HTTP: problem+json for API clients, else a styled page.

    A browser that needs to sign in is sent to the sign-in page instead (303, or HX-Redirect).
    """
    if isinstance(exc, LoginRequired) and not wants_json(request):
        return redirect_after_post(request, request.app.route_reverse("login"))
    problem = problem_for(exc)
    if problem.status >= 500:
        log.error(
            "%s %s failed with %s",
            request.method,
            request.scope["path"],
            type(exc).__name__,
            exc_info=exc,
        )
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    if wants_json(request):
        return Response(
            content=msgspec.json.encode(problem.as_dict()),
            status_code=problem.status,
            media_type="application/problem+json",
            headers=headers,
        )
    return Response(
        content=_render_error_page(request, problem),
        status_code=problem.status,
        media_type=MediaType.HTML,
        headers=headers,
    )


_FALLBACK_PAGE = (
    '<!doctype html><html lang="es"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    "<title>Saldo — {status}</title></head><body><main><h1>{status}</h1>"
    '<p>Algo salió mal. <a href="/">Volver al inicio</a></p></main></body></html>'
)


def _render_error_page(request: Request[Any, Any, Any], problem: Problem) -> str:
    try:
        engine = request.app.template_engine
        assert engine is not None
        template = engine.get_template("error.html")
        return template.render(request=request, csrf_input=Markup(""), problem=problem)
    except Exception:
        log.exception("the error page itself failed to render")
        return _FALLBACK_PAGE.format(status=problem.status)
