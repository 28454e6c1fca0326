"""The plan-policy editor (admins): each creditor's payment-plan policy per segment.

Routes (each behind `requires("policies.manage")`):

- GET  /backoffice/policies/plans   `?creditor=<id>&segment=<name>`: the creditor's policies
                                    (own, inherited from "standard", or the defaults) and the
                                    form for one segment
- POST /backoffice/policies/plans   save it → 303 back to it, or the form with a message next
                                    to each wrong field (422); every save is an audit event
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.params import FromQuery
from litestar.response import Template
from litestar.status_codes import HTTP_200_OK, HTTP_422_UNPROCESSABLE_ENTITY
from litestar.types import ControllerRouterHandler

from backoffice.permissions import requires
from backoffice.session import client_ip, current
from backoffice.shell import shell
from saldo.services import plan_staff
from saldo.web import page_or_fragment, redirect_after_post, request_language

MANAGE = [requires("policies.manage")]
PAGE = "backoffice/policies/plans.html"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _id(text: str | None) -> int | None:
    return int(text) if text and re.fullmatch(r"[1-9][0-9]{0,8}", text) else None


async def _page(
    request: Request[Any, Any, Any],
    *,
    creditor_id: int | None,
    segment: str | None = None,
    saved: bool = False,
    invalid: plan_staff.InvalidPolicy | None = None,
) -> Template:
    page = await plan_staff.policy_page(
        creditor_id=creditor_id,
        segment=segment,
        language=request_language(request),
        form=invalid.form if invalid else None,
        errors=invalid.errors if invalid else None,
    )
    context = shell(request, "policies", page=page, saved=saved and not invalid)
    status = HTTP_422_UNPROCESSABLE_ENTITY if invalid else HTTP_200_OK
    return page_or_fragment(request, PAGE, context=context, status_code=status)


@get("/policies/plans", name="backoffice:policies:plans", guards=MANAGE)
async def plan_policies(
    request: Request[Any, Any, Any],
    creditor: FromQuery[str | None] = None,
    segment: FromQuery[str | None] = None,
    saved: FromQuery[str | None] = None,
) -> Template:
    """The chosen creditor's plan policies per segment and the form for one of them."""
    return await _page(request, creditor_id=_id(creditor), segment=segment, saved=saved == "1")


@post(
    "/policies/plans",
    name="backoffice:policies:plans:save",
    guards=MANAGE,
    status_code=HTTP_200_OK,
)
async def save(request: Request[Any, Any, Any]) -> Template | Response[Any]:
    """Save one segment's policy of one creditor."""
    data = await request.form()
    fields = {k: v for k, v in data.items() if isinstance(v, str)}
    frequencies = [v for v in data.getall("frequencies", []) if isinstance(v, str)]
    form = plan_staff.PolicyForm.from_mapping(fields, frequencies)
    try:
        saved = await plan_staff.save_policy_form(
            form,
            staff_id=current(request).id,
            now=_now(),
            ip=client_ip(request),
            language=request_language(request),
        )
    except plan_staff.InvalidPolicy as invalid:
        return await _page(
            request, creditor_id=_id(form.creditor), segment=form.segment, invalid=invalid
        )
    url = request.app.route_reverse("backoffice:policies:plans")
    query = urlencode({"creditor": saved.creditor_id, "segment": saved.segment, "saved": 1})
    return redirect_after_post(request, f"{url}?{query}")


handlers: list[ControllerRouterHandler] = [plan_policies, save]
