"""The debtor's `/plans` pages: propose a payment plan (with a live preview), answer a
counter-offer, download the agreement, promise a payment date.

Routes (all debtor-scoped, `require_debtor`):

- GET  /plans                            per account: the open plan, or the proposal form
- POST /plans/preview                    the schedule and the policy's verdict (htmx: the
                                         `_preview.html` fragment; without JS: the page)
- POST /plans                            send the proposal → 303, or the form with its errors
- POST /plans/{plan_id}/accept|decline   answer staff's counter-offer → 303
- GET  /plans/{plan_id}/agreement.pdf    the written agreement of an accepted plan
- POST /plans/promise                    promise to pay on a date → 303, or the form again
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from litestar import Request, Response, get, post
from litestar.exceptions import NoRouteMatchFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Template
from litestar.status_codes import HTTP_422_UNPROCESSABLE_ENTITY
from litestar.types import ControllerRouterHandler

from portal.account import explicit_language
from portal.session import require_debtor, signed_in_debtors
from saldo.services import plan_agreement, plan_views, plans, promises
from saldo.web import (
    gettext,
    page_or_fragment,
    redirect_after_post,
    request_language,
    wants_fragment,
)

PAGE = "portal/plans/index.html"
PREVIEW = "portal/plans/_preview.html"
RESULTS = ("active", "proposed", "accepted", "declined", "promise")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _optional_url(request: Request[Any, Any, Any], name: str) -> str | None:
    try:
        return request.app.route_reverse(name)
    except NoRouteMatchFoundException:
        return None


def _account_id(text: str) -> int | None:
    return int(text) if re.fullmatch(r"[1-9][0-9]{0,9}", text) else None


async def _fields(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {k: v for k, v in (await request.form()).items() if isinstance(v, str)}


async def _page(
    request: Request[Any, Any, Any],
    *,
    status_code: int = 200,
    result: str | None = None,
    problem: str | None = None,
    **forms: Any,
) -> Template:
    """The whole /plans page, re-showing a submitted form (`forms`) where there is one."""
    view = await plan_views.plan_page(
        signed_in_debtors(request), language=explicit_language(request), now=_now(), **forms
    )
    context = {
        "lang": view.language,
        "logout_url": _optional_url(request, "logout"),
        "pay_url": _optional_url(request, "pay:start"),
        "page": view,
        "result": result if result in RESULTS else None,
        "problem": problem,
    }
    return page_or_fragment(request, PAGE, context=context, status_code=status_code)


def _choose_account(request: Request[Any, Any, Any]) -> str:
    return gettext(request_language(request), "Elija una de sus cuentas.")


@get("/plans", name="plans:index", guards=[require_debtor])
async def index(request: Request[Any, Any, Any], result: FromQuery[str | None] = None) -> Template:
    """Every account's plan, or the form to propose one, and the promise to pay."""
    return await _page(request, result=result)


@post("/plans/preview", name="plans:preview", guards=[require_debtor], status_code=200)
async def preview(request: Request[Any, Any, Any]) -> Template:
    """The schedule of the proposal as typed and whether it fits the policy."""
    form = plans.PlanForm.from_mapping(await _fields(request))
    account_id = _account_id(form.account)
    if account_id is None:
        return await _page(request, status_code=422, problem=_choose_account(request))
    if wants_fragment(request):
        judged = await plan_views.preview(
            signed_in_debtors(request),
            account_id,
            form,
            language=explicit_language(request),
            now=_now(),
        )
        return page_or_fragment(
            request, PREVIEW, context={"preview": judged, "lang": request_language(request)}
        )
    return await _page(request, form=form)


@post("/plans", name="plans:propose", guards=[require_debtor])
async def propose(request: Request[Any, Any, Any]) -> Template | Response[Any]:
    """Send the proposal: approved at once within the policy, else to the team's review."""
    form = plans.PlanForm.from_mapping(await _fields(request))
    account_id = _account_id(form.account)
    if account_id is None:
        return await _page(request, status_code=422, problem=_choose_account(request))
    try:
        outcome = await plans.propose(
            signed_in_debtors(request),
            account_id,
            form,
            language=explicit_language(request),
            now=_now(),
        )
    except plans.InvalidPlan as invalid:
        return await _page(
            request, status_code=HTTP_422_UNPROCESSABLE_ENTITY, form=invalid.form,
            errors=invalid.errors,
        )  # fmt: skip
    url = request.app.route_reverse("plans:index")
    return redirect_after_post(request, f"{url}?result={outcome.status}#plan-{account_id}")


@post("/plans/{plan_id:int}/accept", name="plans:accept", guards=[require_debtor])
async def accept(request: Request[Any, Any, Any], plan_id: FromPath[int]) -> Response[Any]:
    """Accept staff's counter-offer: it becomes the active plan."""
    await plans.accept_counter(
        signed_in_debtors(request), plan_id, language=explicit_language(request), now=_now()
    )
    url = request.app.route_reverse("plans:index")
    return redirect_after_post(request, f"{url}?result=accepted")


@post("/plans/{plan_id:int}/decline", name="plans:decline", guards=[require_debtor])
async def decline(request: Request[Any, Any, Any], plan_id: FromPath[int]) -> Response[Any]:
    """Decline staff's counter-offer; the form to propose another plan comes back."""
    await plans.decline_counter(
        signed_in_debtors(request), plan_id, language=explicit_language(request), now=_now()
    )
    url = request.app.route_reverse("plans:index")
    return redirect_after_post(request, f"{url}?result=declined")


@get("/plans/{plan_id:int}/agreement.pdf", name="plans:agreement", guards=[require_debtor])
async def agreement(request: Request[Any, Any, Any], plan_id: FromPath[int]) -> Response[bytes]:
    """The written agreement of an accepted plan (PDF)."""
    document = await plan_agreement.agreement_pdf(
        signed_in_debtors(request), plan_id, explicit_language(request), now=_now()
    )
    return Response(
        content=document.content,
        media_type=document.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{document.filename}"',
            "Cache-Control": "no-store, private",
        },
    )


@post("/plans/promise", name="plans:promise", guards=[require_debtor])
async def promise(request: Request[Any, Any, Any]) -> Template | Response[Any]:
    """Promise to pay an amount on a date; reminders pause until then."""
    form = promises.PromiseForm.from_mapping(await _fields(request))
    if _account_id(form.account) is None:
        return await _page(request, status_code=422, problem=_choose_account(request))
    try:
        await promises.submit_promise(
            signed_in_debtors(request), form, language=explicit_language(request), now=_now()
        )
    except promises.InvalidPromise as invalid:
        return await _page(
            request, status_code=HTTP_422_UNPROCESSABLE_ENTITY, promise_form=invalid.form,
            promise_errors=invalid.errors,
        )  # fmt: skip
    url = request.app.route_reverse("plans:index")
    return redirect_after_post(request, f"{url}?result=promise#plan-{form.account}")


handlers: list[ControllerRouterHandler] = [
    index,
    preview,
    propose,
    accept,
    decline,
    agreement,
    promise,
]
