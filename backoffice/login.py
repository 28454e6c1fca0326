"""Back-office sign-in: password, then TOTP (enrollment the first time), recovery codes,
re-authentication, sign-out, and the set-password page of an invitation.

Routes (all under /backoffice):

- GET  /login                    email and password
- POST /login                    the same answer for every failure; on success the code step
- GET  /login/code               a TOTP code or a recovery code
- POST /login/code               new session id, the `staff` session key, 303 to `next` or home
- GET  /login/enroll             QR code and the secret as text, first sign-in or after a reset
- POST /login/enroll             confirms a code, signs in, shows the recovery codes
- GET  /login/recovery-codes     the ten recovery codes, once
- POST /login/recovery-codes     "saved them": forget them, continue
- GET  /reauth                   re-enter a code before a sensitive action
- POST /reauth                   then back to `next`
- POST /logout                   destroys the session server-side
- GET  /invite/{token}           choose a password (an admin's invitation)
- POST /invite/{token}
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
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
from markupsafe import Markup

from backoffice.permissions import PUBLIC, WHILE_CODES_PENDING, requires
from backoffice.session import (
    ENROLL_SECRET,
    FLASH,
    NEW_CODES,
    PENDING,
    PENDING_SECONDS,
    STAFF,
    client_ip,
    current,
    safe_next,
    session_of,
    signed_in_staff,
    staff_session,
)
from saldo.auth import totp
from saldo.services import staff, staff_auth
from saldo.services.staff import InvitationInvalid, StaffFormError
from saldo.services.staff_auth import (
    AccountLocked,
    SignedIn,
    SignInFailed,
    TooManyRequests,
    WrongCode,
)
from saldo.web import (
    gettext,
    page_or_fragment,
    redirect_after_post,
    request_language,
    rotate_session,
    session_set,
)

Form = Body(media_type=RequestEncodingType.URL_ENCODED)
NOTICES = ("signed_out", "locked", "expired", "password_set")
PUBLIC_OPT = {PUBLIC: True}


@dataclass
class PasswordForm:
    email: str = ""
    password: str = ""
    next: str = ""


@dataclass
class CodeForm:
    code: str = ""
    next: str = ""


@dataclass
class NextForm:
    next: str = ""


@dataclass
class NewPasswordForm:
    password: str = ""
    confirmation: str = ""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def totp_key(request: Request[Any, Any, Any]) -> bytes:
    state = request.app.state
    key = state.get("totp_key")
    if key is None:
        key = state["totp_key"] = totp.derive_key(state.settings.resolved_secret_key())
    return bytes(key)


def _url(request: Request[Any, Any, Any], route: str, **query: str | None) -> str:
    url = request.app.route_reverse(route)
    params = {k: v for k, v in query.items() if v}
    return f"{url}?{urlencode(params)}" if params else url


def _home(request: Request[Any, Any, Any], next_url: str | None) -> str:
    return safe_next(next_url) or request.app.route_reverse("backoffice:home")


def _pending(request: Request[Any, Any, Any]) -> dict[str, Any] | None:
    value = (session_of(request) or {}).get(PENDING)
    if not isinstance(value, dict) or not isinstance(value.get("id"), int):
        return None
    if time.time() - float(value.get("at", 0)) > PENDING_SECONDS:
        return None
    return value


def _drop_pending(request: Request[Any, Any, Any]) -> None:
    session = session_of(request)
    if session:
        session.pop(PENDING, None)
        session.pop(ENROLL_SECRET, None)


def _back_to_login(request: Request[Any, Any, Any], notice: str) -> Response[Any]:
    _drop_pending(request)
    return redirect_after_post(request, _url(request, "backoffice:login", notice=notice))


def _sign_in(request: Request[Any, Any, Any], signed: SignedIn) -> None:
    """A new session (new id, new birth time) holding only the signed-in user."""
    rotate_session(request)
    session_set(
        request,
        STAFF,
        {"id": signed.identity.id, "mfa": signed.identity.mfa_stamp, "auth_at": int(time.time())},
    )


# --- password -----------------------------------------------------------------------------------

LOGIN_PAGE = "backoffice/login/login.html"


def _login_page(
    request: Request[Any, Any, Any],
    *,
    error: str | None = None,
    email: str = "",
    next_url: str | None = None,
    notice: str | None = None,
    status_code: int = HTTP_200_OK,
    headers: dict[str, str] | None = None,
) -> Template:
    context = {
        "error": error,
        "email": email[:254],
        "next": safe_next(next_url) or "",
        "notice": notice if notice in NOTICES else None,
    }
    return page_or_fragment(
        request, LOGIN_PAGE, context=context, status_code=status_code, headers=headers
    )


@get("/login", name="backoffice:login", opt=PUBLIC_OPT)
async def login_form(request: Request[Any, Any, Any]) -> Response[Any]:
    next_url = request.query_params.get("next")
    if await signed_in_staff(request) is not None:
        return Redirect(_home(request, next_url), status_code=HTTP_303_SEE_OTHER)
    return _login_page(request, next_url=next_url, notice=request.query_params.get("notice"))


@post("/login", name="backoffice:login:submit", status_code=HTTP_200_OK, opt=PUBLIC_OPT)
async def login_submit(
    request: Request[Any, Any, Any], data: Annotated[PasswordForm, Form]
) -> Response[Any]:
    state = request.app.state
    try:
        await staff_auth.limit_ip(
            client_ip(request), redis=state.redis, key_prefix=state.redis_prefix
        )
    except TooManyRequests as exc:
        return _login_page(
            request,
            error="rate",
            email=data.email,
            next_url=data.next,
            status_code=HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(exc.retry_after)},
        )
    if not data.email.strip() or not data.password:
        return _login_page(
            request,
            error="missing",
            email=data.email,
            next_url=data.next,
            status_code=HTTP_422_UNPROCESSABLE_ENTITY,
        )
    try:
        accepted = await staff_auth.check_password(
            data.email, data.password, ip=client_ip(request), now=_now()
        )
    except SignInFailed:
        return _login_page(
            request,
            error="failed",
            email=data.email,
            next_url=data.next,
            status_code=HTTP_422_UNPROCESSABLE_ENTITY,
        )
    _drop_pending(request)
    pending = {"id": accepted.staff_id, "enroll": not accepted.enrolled, "at": int(time.time())}
    session_set(request, PENDING, pending)
    step = "backoffice:login:enroll" if not accepted.enrolled else "backoffice:login:code"
    return redirect_after_post(request, _url(request, step, next=safe_next(data.next)))


# --- the code -----------------------------------------------------------------------------------

CODE_PAGE = "backoffice/login/code.html"


def _code_page(
    request: Request[Any, Any, Any], next_url: str | None, error: str | None = None
) -> Template:
    context = {"error": error, "next": safe_next(next_url) or ""}
    status = HTTP_422_UNPROCESSABLE_ENTITY if error else HTTP_200_OK
    return page_or_fragment(request, CODE_PAGE, context=context, status_code=status)


@get("/login/code", name="backoffice:login:code", opt=PUBLIC_OPT)
async def code_form(request: Request[Any, Any, Any]) -> Response[Any]:
    pending = _pending(request)
    if pending is None or pending.get("enroll"):
        return Redirect(_url(request, "backoffice:login"), status_code=HTTP_303_SEE_OTHER)
    return _code_page(request, request.query_params.get("next"))


@post("/login/code", name="backoffice:login:verify", status_code=HTTP_200_OK, opt=PUBLIC_OPT)
async def code_submit(
    request: Request[Any, Any, Any], data: Annotated[CodeForm, Form]
) -> Response[Any]:
    pending = _pending(request)
    if pending is None or pending.get("enroll"):
        return _back_to_login(request, "expired")
    if not data.code.strip():
        return _code_page(request, data.next, error="missing")
    try:
        signed = await staff_auth.verify_second_factor(
            pending["id"], data.code, key=totp_key(request), ip=client_ip(request), now=_now()
        )
    except WrongCode as exc:
        if exc.locked:
            return _back_to_login(request, "locked")
        return _code_page(request, data.next, error="wrong")
    except AccountLocked:
        return _back_to_login(request, "locked")
    except SignInFailed:
        return _back_to_login(request, "expired")
    _sign_in(request, signed)
    if signed.method == "recovery_code":
        session_set(request, FLASH, {"kind": "recovery_used", "left": signed.recovery_codes_left})
    return redirect_after_post(request, _home(request, data.next))


# --- enrollment ---------------------------------------------------------------------------------

ENROLL_PAGE = "backoffice/login/enroll.html"


async def _enroll_page(
    request: Request[Any, Any, Any],
    pending: dict[str, Any],
    next_url: str | None,
    error: str | None = None,
) -> Template:
    session = session_of(request) or {}
    enrollment = await staff_auth.start_enrollment(
        pending["id"], session.get(ENROLL_SECRET), key=totp_key(request), now=_now()
    )
    session_set(request, ENROLL_SECRET, enrollment.pending)
    title = gettext(request_language(request), "Código QR para su app de autenticación")
    context = {
        "error": error,
        "next": safe_next(next_url) or "",
        "email": enrollment.email,
        "secret": totp.group(enrollment.secret),
        "uri": enrollment.uri,
        "qr": Markup(totp.qr_svg(enrollment.uri, title=title)),  # noqa: S704 - segno's own SVG
    }
    status = HTTP_422_UNPROCESSABLE_ENTITY if error else HTTP_200_OK
    return page_or_fragment(request, ENROLL_PAGE, context=context, status_code=status)


@get("/login/enroll", name="backoffice:login:enroll", opt=PUBLIC_OPT)
async def enroll_form(request: Request[Any, Any, Any]) -> Response[Any]:
    pending = _pending(request)
    if pending is None or not pending.get("enroll"):
        return Redirect(_url(request, "backoffice:login"), status_code=HTTP_303_SEE_OTHER)
    try:
        return await _enroll_page(request, pending, request.query_params.get("next"))
    except AccountLocked:
        return _back_to_login(request, "locked")
    except SignInFailed:
        return _back_to_login(request, "expired")


@post(
    "/login/enroll",
    name="backoffice:login:enroll:confirm",
    status_code=HTTP_200_OK,
    opt=PUBLIC_OPT,
)
async def enroll_submit(
    request: Request[Any, Any, Any], data: Annotated[CodeForm, Form]
) -> Response[Any]:
    pending = _pending(request)
    secret = (session_of(request) or {}).get(ENROLL_SECRET)
    if pending is None or not pending.get("enroll") or not isinstance(secret, str):
        return _back_to_login(request, "expired")
    try:
        if not data.code.strip():
            return await _enroll_page(request, pending, data.next, error="missing")
        signed, codes = await staff_auth.confirm_enrollment(
            pending["id"],
            secret,
            data.code,
            key=totp_key(request),
            ip=client_ip(request),
            now=_now(),
        )
    except WrongCode as exc:
        if exc.locked:
            return _back_to_login(request, "locked")
        return await _enroll_page(request, pending, data.next, error="wrong")
    except AccountLocked:
        return _back_to_login(request, "locked")
    except SignInFailed:
        return _back_to_login(request, "expired")
    _sign_in(request, signed)
    session_set(request, NEW_CODES, codes)
    return redirect_after_post(
        request, _url(request, "backoffice:recovery_codes", next=safe_next(data.next))
    )


# --- recovery codes, shown once -----------------------------------------------------------------

CODES_OPT = {WHILE_CODES_PENDING: True}


@get(
    "/login/recovery-codes",
    name="backoffice:recovery_codes",
    guards=[requires("session.own")],
    opt=CODES_OPT,
)
async def recovery_codes(request: Request[Any, Any, Any]) -> Response[Any]:
    codes = (session_of(request) or {}).get(NEW_CODES)
    next_url = request.query_params.get("next")
    if not isinstance(codes, list) or not codes:
        return Redirect(_home(request, next_url), status_code=HTTP_303_SEE_OTHER)
    context = {"codes": codes, "next": safe_next(next_url) or "", "staff": current(request)}
    return page_or_fragment(request, "backoffice/login/recovery_codes.html", context=context)


@post(
    "/login/recovery-codes",
    name="backoffice:recovery_codes:done",
    guards=[requires("session.own")],
    opt=CODES_OPT,
    status_code=HTTP_200_OK,
)
async def recovery_codes_saved(
    request: Request[Any, Any, Any], data: Annotated[NextForm, Form]
) -> Response[Any]:
    session = session_of(request)
    if session is not None:
        session.pop(NEW_CODES, None)
    return redirect_after_post(request, _home(request, data.next))


# --- re-authentication --------------------------------------------------------------------------

REAUTH_PAGE = "backoffice/login/reauth.html"


def _reauth_page(
    request: Request[Any, Any, Any], next_url: str | None, error: str | None = None
) -> Template:
    context = {"error": error, "next": safe_next(next_url) or "", "staff": current(request)}
    status = HTTP_422_UNPROCESSABLE_ENTITY if error else HTTP_200_OK
    return page_or_fragment(request, REAUTH_PAGE, context=context, status_code=status)


@get("/reauth", name="backoffice:reauth", guards=[requires("session.own")])
async def reauth_form(request: Request[Any, Any, Any]) -> Template:
    return _reauth_page(request, request.query_params.get("next"))


@post(
    "/reauth",
    name="backoffice:reauth:submit",
    guards=[requires("session.own")],
    status_code=HTTP_200_OK,
)
async def reauth_submit(
    request: Request[Any, Any, Any], data: Annotated[CodeForm, Form]
) -> Response[Any]:
    identity = current(request)
    if not data.code.strip():
        return _reauth_page(request, data.next, error="missing")
    try:
        await staff_auth.reauthenticate(
            identity.id, data.code, key=totp_key(request), ip=client_ip(request), now=_now()
        )
    except WrongCode as exc:
        if not exc.locked:
            return _reauth_page(request, data.next, error="wrong")
        (session_of(request) or {}).clear()
        return redirect_after_post(request, _url(request, "backoffice:login", notice="locked"))
    except (AccountLocked, SignInFailed):
        (session_of(request) or {}).clear()
        return redirect_after_post(request, _url(request, "backoffice:login", notice="locked"))
    data_now = dict(staff_session(request) or {})
    data_now["auth_at"] = int(time.time())
    session_set(request, STAFF, data_now)
    return redirect_after_post(request, _home(request, data.next))


# --- sign-out -----------------------------------------------------------------------------------


@post(
    "/logout",
    name="backoffice:logout",
    guards=[requires("session.own")],
    opt=CODES_OPT,
    status_code=HTTP_200_OK,
)
async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
    """Destroy the session: emptied, the backend deletes its Redis key and the cookie."""
    language = request_language(request)
    await staff_auth.sign_out(current(request), ip=client_ip(request), now=_now())
    (session_of(request) or {}).clear()
    url = request.app.route_reverse("backoffice:login")
    return redirect_after_post(
        request, f"{url}?{urlencode({'notice': 'signed_out', 'lang': language})}"
    )


# --- invitations: choose a password -------------------------------------------------------------

INVITE_PAGE = "backoffice/login/invite.html"


def _invite_invalid(request: Request[Any, Any, Any]) -> Template:
    return page_or_fragment(
        request, "backoffice/login/invite_invalid.html", status_code=InvitationInvalid.status_code
    )


@get("/invite/{token:str}", name="backoffice:invite", opt=PUBLIC_OPT)
async def invite_form(request: Request[Any, Any, Any], token: FromPath[str]) -> Template:
    state = request.app.state
    try:
        email = await staff.peek_invitation(token, redis=state.redis, key_prefix=state.redis_prefix)
    except InvitationInvalid:
        return _invite_invalid(request)
    context = {"email": email, "token": token, "error": None, "field": None}
    return page_or_fragment(request, INVITE_PAGE, context=context)


@post(
    "/invite/{token:str}", name="backoffice:invite:accept", status_code=HTTP_200_OK, opt=PUBLIC_OPT
)
async def invite_accept(
    request: Request[Any, Any, Any], token: FromPath[str], data: Annotated[NewPasswordForm, Form]
) -> Response[Any]:
    state = request.app.state
    try:
        await staff.accept_invitation(
            token,
            data.password,
            data.confirmation,
            ip=client_ip(request),
            now=_now(),
            redis=state.redis,
            key_prefix=state.redis_prefix,
        )
    except InvitationInvalid:
        return _invite_invalid(request)
    except StaffFormError as exc:
        email = await staff.peek_invitation(token, redis=state.redis, key_prefix=state.redis_prefix)
        context = {"email": email, "token": token, "error": exc.reason, "field": exc.field}
        return page_or_fragment(
            request, INVITE_PAGE, context=context, status_code=HTTP_422_UNPROCESSABLE_ENTITY
        )
    return redirect_after_post(request, _url(request, "backoffice:login", notice="password_set"))


handlers: list[ControllerRouterHandler] = [
    login_form,
    login_submit,
    code_form,
    code_submit,
    enroll_form,
    enroll_submit,
    recovery_codes,
    recovery_codes_saved,
    reauth_form,
    reauth_submit,
    logout,
    invite_form,
    invite_accept,
]
