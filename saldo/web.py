"""HTTP helpers for `portal/` and `backoffice/`: page or fragment, redirects, language, session.

Handlers call these instead of building htmx responses by hand, so the rules live once:

- `page_or_fragment()` answers an htmx request with the fragment and any other request with the
  whole page, and always sends `Vary: HX-Request` so caches keep the two apart.
- `redirect_after_post()` answers a successful mutation: 303 for a plain form, `HX-Redirect`
  for htmx.
- `request_language()` picks the interface language: `?lang=` > the signed-in debtor's
  preference (the session's `language`) > the `saldo_lang` cookie > Accept-Language > es;
  `remember_language()` keeps an explicit `?lang=` in that cookie.
- `session_set()` writes to the server-side session and stamps `created_at` on its first write;
  `session_expired()` is the absolute-lifetime check that `before_request()` applies.
- `rotate_session()` empties the session and has it stored under a new id (sign-in).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, cast
from urllib.parse import parse_qs

from jinja2 import pass_context
from jinja2.runtime import Context
from litestar import Request, Response
from litestar.datastructures import Cookie, MutableScopeHeaders
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_200_OK, HTTP_303_SEE_OTHER
from litestar.types import Message, Scope

from saldo import i18n

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGE_COOKIE",
    "SESSION_ABSOLUTE_SECONDS",
    "SESSION_CREATED_AT",
    "SESSION_IDLE_SECONDS",
    "SESSION_LANGUAGE",
    "SESSION_ROTATE",
    "SUPPORTED_LANGUAGES",
    "before_request",
    "current_language",
    "gettext",
    "is_htmx",
    "negotiate_language",
    "page_or_fragment",
    "redirect_after_post",
    "remember_language",
    "request_language",
    "rotate_session",
    "session_expired",
    "session_set",
    "template_gettext",
    "template_ngettext",
    "wants_fragment",
]

# --- htmx -------------------------------------------------------------------------------------

HX_REQUEST = "HX-Request"
HX_BOOSTED = "HX-Boosted"
HX_HISTORY_RESTORE = "HX-History-Restore-Request"
HX_REDIRECT = "HX-Redirect"
VARY_VALUE = HX_REQUEST


def _flag(request: Request[Any, Any, Any], header: str) -> bool:
    return request.headers.get(header, "").lower() == "true"


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    """True for any request htmx sent (including boosted links and forms)."""
    return _flag(request, HX_REQUEST)


def wants_fragment(request: Request[Any, Any, Any]) -> bool:
    """True when htmx asked for a piece of a page it already shows.

    Boosted navigation and history restores replace the whole body, so they get the page.
    """
    return (
        is_htmx(request)
        and not _flag(request, HX_BOOSTED)
        and not _flag(request, HX_HISTORY_RESTORE)
    )


def _with_vary(headers: Mapping[str, str] | None) -> dict[str, str]:
    merged = dict(headers or {})
    existing = merged.get("Vary")
    if existing and VARY_VALUE.lower() not in existing.lower():
        merged["Vary"] = f"{existing}, {VARY_VALUE}"
    elif not existing:
        merged["Vary"] = VARY_VALUE
    return merged


def page_or_fragment(
    request: Request[Any, Any, Any],
    page: str,
    fragment: str | None = None,
    *,
    context: Mapping[str, Any] | None = None,
    status_code: int = HTTP_200_OK,
    headers: Mapping[str, str] | None = None,
) -> Template:
    """Render `fragment` for an htmx request, else `page` (which includes the fragment).

    Both templates get the same `context`. With `fragment=None` the page is always rendered
    (a page that has no partial view yet still varies by HX-Request for caches).
    """
    name = fragment if fragment is not None and wants_fragment(request) else page
    return Template(
        template_name=name,
        context=dict(context or {}),
        status_code=status_code,
        headers=_with_vary(headers),
    )


def redirect_after_post(request: Request[Any, Any, Any], url: str) -> Response[Any]:
    """Post/Redirect/Get: 303 to `url`, or an `HX-Redirect` for htmx (a full navigation)."""
    if is_htmx(request):
        return Response(
            content=b"",
            status_code=HTTP_200_OK,
            headers=_with_vary({HX_REDIRECT: url}),
        )
    return Redirect(path=url, status_code=HTTP_303_SEE_OTHER, headers=_with_vary(None))


# --- language -----------------------------------------------------------------------------------

DEFAULT_LANGUAGE = i18n.DEFAULT_LANGUAGE
SUPPORTED_LANGUAGES = i18n.SUPPORTED_LANGUAGES
LANGUAGE_COOKIE = "saldo_lang"
LANGUAGE_COOKIE_MAX_AGE = 365 * 24 * 60 * 60
_LANGUAGE_STATE_KEY = "saldo_language"


def negotiate_language(accept_language: str | None) -> str:
    """The supported language the Accept-Language header prefers most (default Spanish)."""
    if not accept_language:
        return DEFAULT_LANGUAGE
    ranked: list[tuple[float, int, str]] = []
    for index, item in enumerate(accept_language.split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in SUPPORTED_LANGUAGES and quality > 0:
            ranked.append((-quality, index, primary))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


def _supported(value: str | None) -> str | None:
    return value if value in SUPPORTED_LANGUAGES else None


def request_language(request: Request[Any, Any, Any]) -> str:
    """`?lang=` > the signed-in debtor's preference > the `saldo_lang` cookie >
    Accept-Language > Spanish (cached per request).

    The preference is the session's `language`, written at sign-in. Switching with `?lang=`
    while signed in replaces it for the rest of that session (not the stored preference).
    """
    cached = request.state.get(_LANGUAGE_STATE_KEY)
    if cached:
        return str(cached)
    explicit = _supported(request.query_params.get("lang"))
    session = _session(request)
    preferred = _supported(session.get(SESSION_LANGUAGE)) if session else None
    if session and explicit and preferred and explicit != preferred:
        session[SESSION_LANGUAGE] = explicit
    language = (
        explicit
        or preferred
        or _supported(request.cookies.get(LANGUAGE_COOKIE))
        or negotiate_language(request.headers.get("accept-language"))
    )
    request.state[_LANGUAGE_STATE_KEY] = language
    return language


def remember_language(secure: bool) -> Callable[[Message, Scope], Awaitable[None]]:
    """A `before_send` hook: an explicit `?lang=` choice is kept in a cookie for later visits.

    A cookie rather than the session: it outlives the 30-minute session, costs no Redis key and
    also reaches pages served without the session middleware (404s, static files).
    """

    async def hook(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        language = _supported(next(iter(query.get("lang", [])), None))
        if not language:
            return
        cookie = Cookie(
            key=LANGUAGE_COOKIE,
            value=language,
            max_age=LANGUAGE_COOKIE_MAX_AGE,
            path="/",
            secure=secure,
            httponly=True,
            samesite="lax",
        )
        MutableScopeHeaders.from_message(message).add("set-cookie", cookie.to_header(header=""))

    return hook


def gettext(language: str, message: str) -> str:
    return i18n.gettext(language, message)


@pass_context
def template_gettext(context: Context, message: str) -> str:
    """Jinja's i18n `gettext`: the language comes from the request being rendered."""
    request = context.get("request")
    language = context.get("lang") or (
        request_language(request) if request is not None else DEFAULT_LANGUAGE
    )
    return gettext(str(language), message)


@pass_context
def template_ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return template_gettext(context, singular if n == 1 else plural)


@pass_context
def current_language(context: Context) -> str:
    request = context.get("request")
    return str(context.get("lang") or (request_language(request) if request else DEFAULT_LANGUAGE))


# --- session ------------------------------------------------------------------------------------

SESSION_CREATED_AT = "created_at"
SESSION_LANGUAGE = "language"
# Scope flag read by the session backend in app.py: store this session under a new id.
SESSION_ROTATE = "saldo.session.rotate"
SESSION_IDLE_SECONDS = 30 * 60
SESSION_ABSOLUTE_SECONDS = 12 * 60 * 60


def _session(request: Request[Any, Any, Any]) -> dict[str, Any] | None:
    """The session dict, or None on routes without the session middleware (static, health)."""
    session = request.scope.get("session")
    return session if isinstance(session, dict) else None


def session_set(
    request: Request[Any, Any, Any], key: str, value: Any, *, now: float | None = None
) -> None:
    """Write one session value; the first write stamps `created_at` (epoch seconds).

    `created_at` is what the absolute lifetime is measured from; login must start a new session
    (new id, new `created_at`) rather than reuse an anonymous one.
    """
    session = _session(request)
    if session is None:
        raise RuntimeError(f"{request.scope['path']} runs without the session middleware")
    if SESSION_CREATED_AT not in session:
        session[SESSION_CREATED_AT] = int(time.time() if now is None else now)
    session[key] = value


def rotate_session(request: Request[Any, Any, Any]) -> None:
    """Start over with an empty session that will be stored under a new id.

    The old id's Redis key is deleted when the response is sent, so a session id an attacker
    planted or saw before sign-in is worthless after it. The next `session_set()` stamps a new
    `created_at`, so the absolute lifetime counts from the sign-in.
    """
    session = _session(request)
    if session is None:
        raise RuntimeError(f"{request.scope['path']} runs without the session middleware")
    session.clear()
    cast(dict[str, Any], request.scope)[SESSION_ROTATE] = True


def session_expired(session: Mapping[str, Any], now: float) -> bool:
    """True once a session is older than the absolute limit (idle expiry is Redis's TTL)."""
    created = session.get(SESSION_CREATED_AT)
    if not isinstance(created, int | float):
        return bool(session)  # data without a birth date is not trusted
    return now - created > SESSION_ABSOLUTE_SECONDS


async def before_request(request: Request[Any, Any, Any]) -> None:
    """App-wide hook: a session past its absolute lifetime is emptied (and so deleted)."""
    session = _session(request)
    if session and session_expired(session, time.time()):
        session.clear()
