"""Portal sign-in: magic link, knowledge check, logout.

Routes:

- GET  /login            the form (email, or the phone/WhatsApp number on file)
- POST /login            "if it is registered, we sent you a link" — the same for everyone
- GET  /login/{token}    a Continue button only (mail scanners prefetch links)
- POST /login/{token}    consumes the link; the pending sign-in moves into the session
- GET  /login/verify     the knowledge check (last four digits of the document)
- POST /login/verify     new session id, the debtor's session keys, 303 to /account
- GET  /logout           a confirm button
- POST /logout           destroys the session server-side, 303 to /login
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_303_SEE_OTHER,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
)
from litestar.types import ControllerRouterHandler

from portal.session import CONTACT, DEBTOR_IDS, signed_in_debtors
from saldo.auth.magic_links import derive_key, parse_contact
from saldo.errors import ValidationFailed
from saldo.notify import channels_from_settings
from saldo.services import portal_login
from saldo.services.portal_login import LinkInvalid, LoginConfig, TooManyRequests, WrongAnswer
from saldo.web import (
    SESSION_LANGUAGE,
    page_or_fragment,
    redirect_after_post,
    request_language,
    rotate_session,
    session_set,
)

ACCOUNT_PATH = "/account"  # the signed-in home (portal/account.py)
PENDING_LINK = "login_link_id"  # session: the opened link awaiting its knowledge check

REQUEST_PAGE = "portal/login/request.html"
REQUEST_FRAGMENT = "portal/login/_request.html"
VERIFY_PAGE = "portal/login/verify.html"
VERIFY_FRAGMENT = "portal/login/_verify.html"

Form = Body(media_type=RequestEncodingType.URL_ENCODED)


@dataclass
class ContactForm:
    contact: str = ""


@dataclass
class AnswerForm:
    last4: str = ""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else ""


def _config(request: Request[Any, Any, Any]) -> LoginConfig:
    state = request.app.state
    settings = state.settings
    key = state.get("magic_link_key")
    if key is None:
        key = state["magic_link_key"] = derive_key(settings.resolved_secret_key())
    texts = state.get("text_channels")
    if texts is None:  # SMS and WhatsApp for links asked for by phone number
        channels = channels_from_settings(settings)
        texts = state["text_channels"] = {n: channels[n] for n in ("sms", "whatsapp")}
    return LoginConfig(
        redis=state.redis,
        key_prefix=state.redis_prefix,
        hash_key=key,
        public_url=settings.public_url,
        mail_from=settings.mail_from,
        texts=texts,
    )


def _link_invalid(request: Request[Any, Any, Any], exc: LinkInvalid) -> Template:
    return page_or_fragment(
        request,
        "portal/login/link_invalid.html",
        context={"reason": str(exc.reason)},
        status_code=exc.status_code,
    )


def _pending(request: Request[Any, Any, Any]) -> int | None:
    value = request.session.get(PENDING_LINK)
    return value if isinstance(value, int) else None


# --- request a link -----------------------------------------------------------------------------


@get("/login", name="login")
async def login_form(request: Request[Any, Any, Any]) -> Template | Redirect:
    if signed_in_debtors(request):
        return Redirect(ACCOUNT_PATH, status_code=HTTP_303_SEE_OTHER)
    signed_out = request.query_params.get("signed_out") == "1"
    context = {"state": "form", "signed_out": signed_out, "error": None, "value": ""}
    return page_or_fragment(request, REQUEST_PAGE, REQUEST_FRAGMENT, context=context)


@post("/login", name="login:request", status_code=HTTP_200_OK)
async def login_request(
    request: Request[Any, Any, Any], data: Annotated[ContactForm, Form]
) -> Template:
    """Answer identically for every address; the lookup and the mail happen after the answer."""
    config = _config(request)

    def form(error: str, status: int, headers: dict[str, str] | None = None) -> Template:
        value = data.contact[:254]
        context = {"state": "form", "signed_out": False, "error": error, "value": value}
        return page_or_fragment(
            request,
            REQUEST_PAGE,
            REQUEST_FRAGMENT,
            context=context,
            status_code=status,
            headers=headers,
        )

    try:
        await portal_login.limit_ip(_ip(request), config=config)
    except TooManyRequests as exc:
        return form("rate", HTTP_429_TOO_MANY_REQUESTS, {"Retry-After": str(exc.retry_after)})
    contact = parse_contact(data.contact)
    if contact is None:
        return form("contact", HTTP_422_UNPROCESSABLE_ENTITY)
    sent = {"state": "sent", "signed_out": False, "error": None, "value": ""}
    response = page_or_fragment(request, REQUEST_PAGE, REQUEST_FRAGMENT, context=sent)
    response.background = BackgroundTask(
        portal_login.request_link,
        contact,
        ip=_ip(request),
        now=_now(),
        channel=request.app.state.email_sender,
        config=config,
    )
    return response


# --- the knowledge check (static path, registered before /login/{token}) ------------------------


@get("/login/verify", name="login:verify")
async def verify_form(request: Request[Any, Any, Any]) -> Template | Redirect:
    if _pending(request) is None:
        return Redirect(request.app.route_reverse("login"), status_code=HTTP_303_SEE_OTHER)
    context = {"error": None, "tries_left": None}
    return page_or_fragment(request, VERIFY_PAGE, VERIFY_FRAGMENT, context=context)


@post("/login/verify", name="login:check", status_code=HTTP_200_OK)
async def verify_answer(
    request: Request[Any, Any, Any], data: Annotated[AnswerForm, Form]
) -> Response[Any]:
    link_id = _pending(request)
    if link_id is None:
        return redirect_after_post(request, request.app.route_reverse("login"))
    try:
        signed_in = await portal_login.check_knowledge(
            link_id, data.last4, now=_now(), ip=_ip(request)
        )
    except (ValidationFailed, WrongAnswer) as exc:
        wrong = isinstance(exc, WrongAnswer)
        context = {
            "error": "wrong" if wrong else "format",
            "tries_left": exc.tries_left if isinstance(exc, WrongAnswer) else None,
        }
        return page_or_fragment(
            request,
            VERIFY_PAGE,
            VERIFY_FRAGMENT,
            context=context,
            status_code=HTTP_422_UNPROCESSABLE_ENTITY,
        )
    except LinkInvalid as exc:
        request.session.pop(PENDING_LINK, None)
        return _link_invalid(request, exc)
    rotate_session(request)
    session_set(request, DEBTOR_IDS, signed_in.debtor_ids)
    session_set(request, CONTACT, signed_in.contact)
    session_set(request, SESSION_LANGUAGE, signed_in.language)
    return redirect_after_post(request, ACCOUNT_PATH)


# --- the link itself ----------------------------------------------------------------------------


@get("/login/{token:str}", name="login:link")
async def link_page(request: Request[Any, Any, Any], token: FromPath[str]) -> Template:
    """Shows a Continue button; reading the link consumes nothing."""
    config = _config(request)
    try:
        await portal_login.peek_link(token, now=_now(), hash_key=config.hash_key)
    except LinkInvalid as exc:
        return _link_invalid(request, exc)
    return page_or_fragment(request, "portal/login/link.html", context={"token": token})


@post("/login/{token:str}", name="login:open", status_code=HTTP_200_OK)
async def open_link(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[Any]:
    config = _config(request)
    try:
        link_id = await portal_login.open_link(token, now=_now(), hash_key=config.hash_key)
    except LinkInvalid as exc:
        return _link_invalid(request, exc)
    session_set(request, PENDING_LINK, link_id)
    return redirect_after_post(request, request.app.route_reverse("login:verify"))


# --- logout -------------------------------------------------------------------------------------


@get("/logout", name="logout")
async def logout_form(request: Request[Any, Any, Any]) -> Template | Redirect:
    if not signed_in_debtors(request):
        return Redirect(request.app.route_reverse("login"), status_code=HTTP_303_SEE_OTHER)
    context = {"account_url": ACCOUNT_PATH}
    return page_or_fragment(request, "portal/login/logout.html", context=context)


@post("/logout", name="logout:submit", status_code=HTTP_200_OK)
async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    """Destroy the session: emptied, the backend deletes its Redis key and the cookie."""
    language = request_language(request)
    debtor_ids = signed_in_debtors(request)
    if debtor_ids:
        await portal_login.logout(debtor_ids, now=_now())
    request.session.clear()
    query = urlencode({"signed_out": "1", "lang": language})
    return redirect_after_post(request, f"{request.app.route_reverse('login')}?{query}")


handlers: list[ControllerRouterHandler] = [
    login_form,
    login_request,
    verify_form,
    verify_answer,
    link_page,
    open_link,
    logout_form,
    logout,
]
