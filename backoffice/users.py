"""Staff users (admins): list, invite, deactivate, reactivate, reset TOTP.

Every change needs a code proved within the last five minutes (`recent_code`); without one the
browser goes to the re-enter-your-code page and comes back here. A change answers 303 to the
list, which shows what happened once (the invitation link only then).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Template
from litestar.status_codes import HTTP_200_OK, HTTP_422_UNPROCESSABLE_ENTITY
from litestar.types import ControllerRouterHandler, Guard

from backoffice.permissions import recent_code, requires
from backoffice.session import FLASH, actor, fresh_until, session_of
from backoffice.shell import shell
from saldo.services import staff
from saldo.services.staff import StaffFormError
from saldo.web import page_or_fragment, redirect_after_post, session_set

Form = Body(media_type=RequestEncodingType.URL_ENCODED)
MANAGE: list[Guard] = [requires("users.manage")]
CHANGE: list[Guard] = [requires("users.manage"), recent_code]
PAGE = "backoffice/users/index.html"


@dataclass
class InviteForm:
    email: str = ""
    name: str = ""
    role: str = "agent"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _page(
    request: Request[Any, Any, Any],
    form: InviteForm | None = None,
    error: StaffFormError | None = None,
) -> Template:
    flash = (session_of(request) or {}).pop(FLASH, None)
    context = shell(
        request,
        "users",
        users=await staff.list_staff(),
        roles=staff.ROLES,
        form=form or InviteForm(),
        error={"field": error.field, "reason": error.reason} if error else None,
        flash=flash,
        fresh_until=fresh_until(request),
        now=_now(),
    )
    status = HTTP_422_UNPROCESSABLE_ENTITY if error else HTTP_200_OK
    return page_or_fragment(request, PAGE, context=context, status_code=status)


def _done(request: Request[Any, Any, Any], flash: dict[str, Any]) -> Response[Any]:
    session_set(request, FLASH, flash)
    return redirect_after_post(request, request.app.route_reverse("backoffice:users"))


@get("/users", name="backoffice:users", guards=MANAGE)
async def users_page(request: Request[Any, Any, Any]) -> Template:
    return await _page(request)


@post("/users", name="backoffice:users:invite", guards=CHANGE, status_code=HTTP_200_OK)
async def invite(
    request: Request[Any, Any, Any], data: Annotated[InviteForm, Form]
) -> Response[Any]:
    state = request.app.state
    try:
        invitation = await staff.invite_staff(
            data.email,
            data.role,
            data.name,
            actor=actor(request),
            now=_now(),
            redis=state.redis,
            key_prefix=state.redis_prefix,
        )
    except StaffFormError as exc:
        return await _page(request, form=data, error=exc)
    path = request.app.route_reverse("backoffice:invite", token=invitation.token)
    link = f"{state.settings.public_url.rstrip('/')}{path}"
    return _done(
        request,
        {
            "kind": "invited",
            "email": invitation.email,
            "link": link,
            "expires": invitation.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
        },
    )


async def _change(request: Request[Any, Any, Any], staff_id: int, kind: str) -> Response[Any]:
    operations = {
        "deactivated": staff.deactivate_staff,
        "reactivated": staff.reactivate_staff,
        "totp_reset": staff.reset_totp,
    }
    try:
        changed = await operations[kind](staff_id, actor=actor(request), now=_now())
    except StaffFormError as exc:
        return _done(request, {"kind": "refused", "reason": exc.reason})
    return _done(request, {"kind": kind, "email": changed.email})


@post(
    "/users/{staff_id:int}/deactivate",
    name="backoffice:users:deactivate",
    guards=CHANGE,
    status_code=HTTP_200_OK,
)
async def deactivate(request: Request[Any, Any, Any], staff_id: FromPath[int]) -> Response[Any]:
    return await _change(request, staff_id, "deactivated")


@post(
    "/users/{staff_id:int}/reactivate",
    name="backoffice:users:reactivate",
    guards=CHANGE,
    status_code=HTTP_200_OK,
)
async def reactivate(request: Request[Any, Any, Any], staff_id: FromPath[int]) -> Response[Any]:
    return await _change(request, staff_id, "reactivated")


@post(
    "/users/{staff_id:int}/reset-totp",
    name="backoffice:users:reset_totp",
    guards=CHANGE,
    status_code=HTTP_200_OK,
)
async def reset_totp(request: Request[Any, Any, Any], staff_id: FromPath[int]) -> Response[Any]:
    return await _change(request, staff_id, "totp_reset")


handlers: list[ControllerRouterHandler] = [users_page, invite, deactivate, reactivate, reset_totp]
