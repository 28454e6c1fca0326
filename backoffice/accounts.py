"""One account in the back office: the 360° page, the work done on it, the legal dossier.

Routes (`accounts.view` to look: every role; `accounts.contact` to act: agents, supervisors):

- GET  /backoffice/accounts/{id}              the 360° page; ?tl=<n> pages the timeline
                                              (htmx with HX-Target "timeline": the fragment)
- POST /backoffice/accounts/{id}/contacts     "Registrar gestión": a call, visit or note with
                                              its outcome, an optional promise and the next
                                              action. htmx: the work area again (fresh form
                                              and timeline, or the form with its errors);
                                              without JavaScript: 303 to the page, or the
                                              page with the errors (422)
- POST /backoffice/accounts/{id}/pause        pause collection until a date, with a reason
- POST /backoffice/accounts/{id}/resume       end that pause
- POST /backoffice/accounts/{id}/stage        change the stage by hand
- POST /backoffice/accounts/{id}/escalate     send to legal collection
- GET  /backoffice/accounts/{id}/dossier.pdf  the legal-escalation dossier (audited)

The four case actions answer 303 back to the page with a one-time notice; a wrong form
comes back as the page with the messages next to its fields (422), an action that no longer
applies (already escalated, not paused) as the page with the reason (409).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any, Final

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Template
from litestar.status_codes import HTTP_200_OK, HTTP_409_CONFLICT, HTTP_422_UNPROCESSABLE_ENTITY
from litestar.types import ControllerRouterHandler

from backoffice.permissions import requires
from backoffice.session import FLASH, actor, client_ip, current, session_of
from backoffice.shell import shell
from saldo.errors import Conflict
from saldo.services import account_360, account_actions, account_dossier
from saldo.services.account_actions import InvalidAction
from saldo.web import (
    page_or_fragment,
    redirect_after_post,
    request_language,
    session_set,
    wants_fragment,
)

VIEW = [requires("accounts.view")]
ACT = [requires("accounts.contact")]
PAGE: Final = "backoffice/accounts/detail.html"
WORK: Final = "backoffice/accounts/_work.html"
TIMELINE: Final = "backoffice/accounts/_timeline.html"
NOTICES: Final = ("contact", "paused", "resumed", "stage", "escalated")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _page_number(value: str | None) -> int:
    return int(value) if value and value.isdigit() and len(value) < 5 else 1


async def _fields(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


async def _render(
    request: Request[Any, Any, Any],
    account_id: int,
    *,
    template: str = PAGE,
    fragment: str | None = None,
    status_code: int = HTTP_200_OK,
    timeline_page: int = 1,
    forms: dict[str, InvalidAction] | None = None,
    problem: str | None = None,
    notice: str | None = None,
) -> Template:
    now = _now()
    data = await account_360.account_360(
        account_id,
        today=now.date(),
        now=now,
        language=request_language(request),
        timeline_page=timeline_page,
    )
    flash = (session_of(request) or {}).pop(FLASH, None)
    if notice is None and isinstance(flash, dict) and flash.get("kind") in NOTICES:
        notice = str(flash["kind"])
    invalid = forms or {}
    context = shell(
        request,
        "accounts",
        account=data,
        forms={name: exc.form for name, exc in invalid.items()},
        errors={name: exc.errors for name, exc in invalid.items()},
        problem=problem,
        notice=notice,
        outcomes=account_actions.OUTCOMES,
        stages=account_actions.MANUAL_STAGES,
        today=now.date(),
        max_pause=now.date() + dt.timedelta(days=account_actions.MAX_PAUSE_DAYS),
        max_promise=now.date() + dt.timedelta(days=30),
        me=current(request).id,
    )
    return page_or_fragment(request, template, fragment, context=context, status_code=status_code)


@get("/accounts/{account_id:int}", name="backoffice:account", guards=VIEW)
async def detail(
    request: Request[Any, Any, Any],
    account_id: FromPath[int],
    tl: FromQuery[str | None] = None,
) -> Template:
    """The 360° page (or one page of its timeline, for htmx)."""
    target = request.headers.get("hx-target", "")
    fragment = TIMELINE if target == "timeline" else None
    return await _render(request, account_id, fragment=fragment, timeline_page=_page_number(tl))


def _back(request: Request[Any, Any, Any], account_id: int, kind: str, anchor: str) -> Any:
    session_set(request, FLASH, {"kind": kind})
    url = request.app.route_reverse("backoffice:account", account_id=account_id)
    return redirect_after_post(request, f"{url}#{anchor}")


@post(
    "/accounts/{account_id:int}/contacts",
    name="backoffice:account:contact",
    guards=ACT,
    status_code=HTTP_200_OK,
)
async def contact(request: Request[Any, Any, Any], account_id: FromPath[int]) -> Response[Any]:
    """Record a call, visit or note; htmx gets the work area back without a reload."""
    now = _now()
    try:
        await account_actions.submit_contact(
            account_id,
            await _fields(request),
            staff_id=current(request).id,
            now=now,
            today=now.date(),
            ip=client_ip(request),
            language=request_language(request),
        )
    except InvalidAction as invalid:
        if wants_fragment(request):
            return await _render(request, account_id, fragment=WORK, forms={"contact": invalid})
        return await _render(
            request,
            account_id,
            status_code=HTTP_422_UNPROCESSABLE_ENTITY,
            forms={"contact": invalid},
        )
    if wants_fragment(request):
        return await _render(request, account_id, fragment=WORK, notice="contact")
    return _back(request, account_id, "contact", "gestion")


Action = Callable[..., Awaitable[None]]


async def _act(
    request: Request[Any, Any, Any],
    account_id: int,
    name: str,
    action: Action,
    notice: str,
    *,
    with_form: bool = True,
) -> Response[Any]:
    now = _now()
    kwargs: dict[str, Any] = {
        "staff_id": current(request).id,
        "now": now,
        "ip": client_ip(request),
        "language": request_language(request),
    }
    if name != "stage":
        kwargs["today"] = now.date()
    try:
        if with_form:
            await action(account_id, await _fields(request), **kwargs)
        else:
            await action(account_id, **kwargs)
    except InvalidAction as invalid:
        return await _render(
            request, account_id, status_code=HTTP_422_UNPROCESSABLE_ENTITY, forms={name: invalid}
        )
    except Conflict as conflict:
        return await _render(
            request, account_id, status_code=HTTP_409_CONFLICT, problem=str(conflict)
        )
    return _back(request, account_id, notice, "caso")


@post(
    "/accounts/{account_id:int}/pause",
    name="backoffice:account:pause",
    guards=ACT,
    status_code=HTTP_200_OK,
)
async def pause(request: Request[Any, Any, Any], account_id: FromPath[int]) -> Response[Any]:
    """Pause collection until a date, with a reason."""
    return await _act(request, account_id, "pause", account_actions.submit_pause, "paused")


@post(
    "/accounts/{account_id:int}/resume",
    name="backoffice:account:resume",
    guards=ACT,
    status_code=HTTP_200_OK,
)
async def resume(request: Request[Any, Any, Any], account_id: FromPath[int]) -> Response[Any]:
    """End the staff pause now."""
    return await _act(
        request, account_id, "resume", account_actions.resume, "resumed", with_form=False
    )


@post(
    "/accounts/{account_id:int}/stage",
    name="backoffice:account:stage",
    guards=ACT,
    status_code=HTTP_200_OK,
)
async def stage(request: Request[Any, Any, Any], account_id: FromPath[int]) -> Response[Any]:
    """Change the stage by hand (not to judicial: that is an escalation)."""
    return await _act(request, account_id, "stage", account_actions.submit_stage, "stage")


@post(
    "/accounts/{account_id:int}/escalate",
    name="backoffice:account:escalate",
    guards=ACT,
    status_code=HTTP_200_OK,
)
async def escalate(request: Request[Any, Any, Any], account_id: FromPath[int]) -> Response[Any]:
    """Send the account to legal collection."""
    return await _act(
        request, account_id, "escalate", account_actions.submit_escalation, "escalated"
    )


@get("/accounts/{account_id:int}/dossier.pdf", name="backoffice:account:dossier", guards=VIEW)
async def dossier(request: Request[Any, Any, Any], account_id: FromPath[int]) -> Response[bytes]:
    """The legal-escalation dossier as a PDF download."""
    now = _now()
    document = await account_dossier.dossier_pdf(
        account_id,
        today=now.date(),
        now=now,
        language=request_language(request),
        by=actor(request),
    )
    return Response(
        content=document.content,
        media_type=document.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{document.filename}"',
            "Cache-Control": "no-store",
        },
    )


handlers: list[ControllerRouterHandler] = [detail, contact, pause, resume, stage, escalate, dossier]
