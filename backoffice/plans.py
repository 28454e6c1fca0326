"""Payment plans in the back office: the review queue and one plan with the decisions on it.

Routes (each behind `requires("plans.review")`: agents and supervisors):

- GET  /backoffice/plans                            proposals to review and counter-offers
                                                    waiting for the debtor, oldest first
- GET  /backoffice/plans/{plan_id}                  the proposal, its schedule, the policy
                                                    rules it breaks, the account's history and
                                                    the forms to decide on it
- POST /backoffice/plans/{plan_id}/approve          → 303; a proposal outside the policy only
                                                    for `plans.approve_above_policy`
                                                    (the service refuses it for anyone else)
- POST /backoffice/plans/{plan_id}/reject           with the reason the debtor sees → 303
- POST /backoffice/plans/{plan_id}/counter          a different schedule → 303 to the offer
- POST /backoffice/plans/{plan_id}/counter/preview  the counter-offer's schedule and broken
                                                    rules (htmx: the fragment; else the page)
- GET  /backoffice/plans/{plan_id}/agreement.pdf    the agreement of an accepted plan

A wrong form comes back with the messages next to its fields (422); a decision someone else
made first, or one the user's role may not make, comes back as the page with the reason.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.params import FromPath, FromQuery
from litestar.response import Template
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_403_FORBIDDEN,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
)
from litestar.types import ControllerRouterHandler

from backoffice.permissions import allowed, requires
from backoffice.session import client_ip, current
from backoffice.shell import shell
from saldo.errors import Conflict, ValidationFailed
from saldo.services import plan_agreement, plan_review, plan_staff
from saldo.services.plans import InvalidPlan, PlanForm
from saldo.web import (
    gettext,
    page_or_fragment,
    redirect_after_post,
    request_language,
    wants_fragment,
)

REVIEW = [requires("plans.review")]
DONE: Final = ("approved", "rejected", "countered")
PAGE = "backoffice/plans/detail.html"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _page_number(value: str | None) -> int:
    return int(value) if value and value.isdigit() and len(value) < 7 else 1


async def _fields(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


def _above_policy_allowed(request: Request[Any, Any, Any]) -> bool:
    return allowed(current(request).role, "plans.approve_above_policy")


@get("/plans", name="backoffice:plans", guards=REVIEW)
async def queue(
    request: Request[Any, Any, Any],
    status: FromQuery[str] = "",
    q: FromQuery[str] = "",
    page: FromQuery[str | None] = None,
) -> Template:
    """Proposals waiting for review and counter-offers waiting for the debtor, oldest first;
    `status` and `q` (a debtor, a creditor, an account or plan number) narrow it."""
    wanted = status if status in plan_staff.QUEUE_STATUSES else ""
    found = await plan_staff.review_queue(
        now=_now(),
        language=request_language(request),
        status=wanted,
        query=q,
        page=_page_number(page),
    )
    base = request.app.route_reverse("backoffice:plans")
    kept = {k: v for k, v in (("status", wanted), ("q", found.query)) if v}

    def page_url(number: int) -> str:
        return f"{base}?{urlencode({**kept, 'page': number})}"

    def filter_url(value: str) -> str:
        query = {k: v for k, v in (("status", value), ("q", found.query)) if v}
        return f"{base}?{urlencode(query)}" if query else base

    context = shell(request, "plans", queue=found, page_url=page_url, filter_url=filter_url)
    return page_or_fragment(
        request, "backoffice/plans/index.html", "backoffice/plans/_queue.html", context=context
    )


async def _detail(
    request: Request[Any, Any, Any],
    plan_id: int,
    *,
    status_code: int = HTTP_200_OK,
    problem: str | None = None,
    done: str | None = None,
    **typed: Any,
) -> Template:
    """The plan page; `typed` re-shows a submitted form (form/errors/note, reason/reason_error)."""
    reason = typed.pop("reason", "")
    reason_error = typed.pop("reason_error", None)
    plan = await plan_staff.staff_plan(
        plan_id, now=_now(), language=request_language(request), **typed
    )
    context = shell(
        request,
        "plans",
        plan=plan,
        can_approve_above=_above_policy_allowed(request),
        problem=problem,
        done=done if done in DONE else None,
        reason=reason,
        reason_error=reason_error,
    )
    return page_or_fragment(request, PAGE, context=context, status_code=status_code)


@get("/plans/{plan_id:int}", name="backoffice:plans:detail", guards=REVIEW)
async def detail(
    request: Request[Any, Any, Any], plan_id: FromPath[int], done: FromQuery[str | None] = None
) -> Template:
    """One plan: the proposal, its schedule, broken rules, the account's history, the forms."""
    return await _detail(request, plan_id, done=done)


def _to_plan(request: Request[Any, Any, Any], plan_id: int, done: str) -> Response[Any]:
    url = request.app.route_reverse("backoffice:plans:detail", plan_id=plan_id)
    return redirect_after_post(request, f"{url}?done={done}")


@post(
    "/plans/{plan_id:int}/approve",
    name="backoffice:plans:approve",
    guards=REVIEW,
    status_code=HTTP_200_OK,
)
async def approve(request: Request[Any, Any, Any], plan_id: FromPath[int]) -> Response[Any]:
    """Approve the proposal as the debtor made it (outside the policy: supervisors only)."""
    try:
        await plan_review.approve(
            plan_id,
            staff_id=current(request).id,
            now=_now(),
            ip=client_ip(request),
            above_policy=_above_policy_allowed(request),
        )
    except plan_review.AbovePolicy:
        message = gettext(
            request_language(request),
            "Esta propuesta no cumple la política de planes: solo un supervisor puede aprobarla "
            "así. Puede rechazarla o hacer una contraoferta dentro de la política.",
        )
        return await _detail(request, plan_id, status_code=HTTP_403_FORBIDDEN, problem=message)
    except Conflict as conflict:
        return await _detail(request, plan_id, status_code=HTTP_409_CONFLICT, problem=str(conflict))
    return _to_plan(request, plan_id, "approved")


@post(
    "/plans/{plan_id:int}/reject",
    name="backoffice:plans:reject",
    guards=REVIEW,
    status_code=HTTP_200_OK,
)
async def reject(request: Request[Any, Any, Any], plan_id: FromPath[int]) -> Response[Any]:
    """Reject the proposal with a reason the debtor sees on /plans."""
    reason = (await _fields(request)).get("reason", "")
    try:
        await plan_review.reject(
            plan_id, reason, staff_id=current(request).id, now=_now(), ip=client_ip(request)
        )
    except ValidationFailed as invalid:
        return await _detail(
            request,
            plan_id,
            status_code=HTTP_422_UNPROCESSABLE_ENTITY,
            reason=reason,
            reason_error=str(invalid),
        )
    except Conflict as conflict:
        return await _detail(request, plan_id, status_code=HTTP_409_CONFLICT, problem=str(conflict))
    return _to_plan(request, plan_id, "rejected")


@post(
    "/plans/{plan_id:int}/counter",
    name="backoffice:plans:counter",
    guards=REVIEW,
    status_code=HTTP_200_OK,
)
async def counter(request: Request[Any, Any, Any], plan_id: FromPath[int]) -> Response[Any]:
    """Answer the proposal with a different schedule; the debtor accepts or declines it."""
    fields = await _fields(request)
    try:
        decision = await plan_staff.counter_offer_form(
            plan_id,
            fields,
            staff_id=current(request).id,
            now=_now(),
            ip=client_ip(request),
            language=request_language(request),
        )
    except InvalidPlan as invalid:
        return await _detail(
            request,
            plan_id,
            status_code=HTTP_422_UNPROCESSABLE_ENTITY,
            form=invalid.form,
            errors=invalid.errors,
            note=fields.get("note", ""),
        )
    except ValidationFailed as invalid:
        return await _detail(
            request,
            plan_id,
            status_code=HTTP_422_UNPROCESSABLE_ENTITY,
            form=PlanForm.from_mapping(fields),
            errors={invalid.field or "form": str(invalid)},
            note=fields.get("note", ""),
        )
    except Conflict as conflict:
        return await _detail(request, plan_id, status_code=HTTP_409_CONFLICT, problem=str(conflict))
    return _to_plan(request, decision.plan_id, "countered")


@post(
    "/plans/{plan_id:int}/counter/preview",
    name="backoffice:plans:counter_preview",
    guards=REVIEW,
    status_code=HTTP_200_OK,
)
async def counter_preview(request: Request[Any, Any, Any], plan_id: FromPath[int]) -> Template:
    """The counter-offer's schedule and the policy rules it breaks; nothing is stored."""
    fields = await _fields(request)
    preview = await plan_staff.counter_preview(
        plan_id, fields, now=_now(), language=request_language(request)
    )
    if not wants_fragment(request):  # without JavaScript: the page, with the form as typed
        return await _detail(
            request, plan_id, form=preview.form, errors=preview.errors, note=fields.get("note", "")
        )
    return page_or_fragment(
        request, PAGE, "backoffice/plans/_preview.html", context={"preview": preview}
    )


@get(
    "/plans/{plan_id:int}/agreement.pdf",
    name="backoffice:plans:agreement",
    guards=REVIEW,
)
async def agreement(request: Request[Any, Any, Any], plan_id: FromPath[int]) -> Response[bytes]:
    """The written agreement of an accepted plan, as the debtor has it (PDF)."""
    document = await plan_agreement.agreement_pdf(None, plan_id, now=_now())
    return Response(
        content=document.content,
        media_type=document.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{document.filename}"',
            "Cache-Control": "no-store, private",
        },
    )


handlers: list[ControllerRouterHandler] = [
    queue,
    detail,
    approve,
    reject,
    counter,
    counter_preview,
    agreement,
]
