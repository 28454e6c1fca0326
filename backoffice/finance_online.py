"""An online payment nobody could place (its reference named no checkout, or the checkout's
account is in another currency): look at it, pick an account, assign it.

- `GET /payments/online/{payment_id}?q=&account=&invoice=` — the payment, suggestions, an
  account search and the assign form for the account picked.
- `POST /payments/online/{payment_id}/assign` — sets the account and posts the payment once
  (`unapplied_payments.assign_online_payment`); 303 to the queue with a message. A payment
  assigned in the meantime shows that instead of the form.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.params import FromPath
from litestar.response import Template
from litestar.status_codes import HTTP_200_OK, HTTP_409_CONFLICT, HTTP_422_UNPROCESSABLE_ENTITY
from litestar.types import ControllerRouterHandler

from backoffice.finance_shared import (
    APPLY,
    VIEW,
    context,
    done,
    error,
    form_text,
    ids_of,
    now,
    positive_int,
)
from backoffice.session import actor
from saldo.errors import Conflict, ValidationFailed
from saldo.references import payment_reference
from saldo.services import finance_desk, unapplied_payments
from saldo.web import page_or_fragment

PAGE = "backoffice/finance/online.html"


async def _page(
    request: Request[Any, Any, Any],
    payment_id: int,
    *,
    query: str = "",
    account_id: int | None = None,
    checked: list[int] | None = None,
    problem: dict[str, str] | None = None,
    conflict: str = "",
    status_code: int = HTTP_200_OK,
) -> Template:
    desk = await finance_desk.online_desk(payment_id, query=query, account_id=account_id)
    values = context(
        request,
        desk=desk,
        payment=desk.payment,
        checked=checked or [],
        form="assign" if problem else "",
        error=problem,
        conflict=conflict,
    )
    return page_or_fragment(request, PAGE, context=values, status_code=status_code)


@get("/payments/online/{payment_id:int}", name="backoffice:online_payment", guards=VIEW)
async def online_page(request: Request[Any, Any, Any], payment_id: FromPath[int]) -> Template:
    params = request.query_params
    return await _page(
        request,
        payment_id,
        query=params.get("q", "")[:200],
        account_id=positive_int(params.get("account")),
        checked=ids_of(params.getall("invoice", [])),
    )


@post(
    "/payments/online/{payment_id:int}/assign",
    name="backoffice:online_payment:assign",
    guards=APPLY,
    status_code=HTTP_200_OK,
)
async def assign(
    request: Request[Any, Any, Any], payment_id: FromPath[int]
) -> Template | Response[Any]:
    form = await request.form()
    account_id = positive_int(form_text(form, "account_id", 20))
    invoice_ids = ids_of(form.getall("invoice", []))
    if account_id is None:
        problem = error("account_id", code="missing")
        return await _page(
            request, payment_id, problem=problem, status_code=HTTP_422_UNPROCESSABLE_ENTITY
        )
    try:
        await unapplied_payments.assign_online_payment(
            payment_id,
            account_id=account_id,
            invoice_ids=invoice_ids,
            actor=actor(request),
            now=now(),
        )
    except ValidationFailed as exc:
        return await _page(
            request,
            payment_id,
            account_id=account_id,
            checked=invoice_ids,
            problem=error(exc.field or "account_id", str(exc)),
            status_code=HTTP_422_UNPROCESSABLE_ENTITY,
        )
    except Conflict as exc:
        return await _page(request, payment_id, conflict=str(exc), status_code=HTTP_409_CONFLICT)
    flash = {
        "kind": "online_assigned",
        "payment": payment_id,
        "account": payment_reference(account_id),
    }
    return done(request, request.app.route_reverse("backoffice:unapplied"), flash)


handlers: list[ControllerRouterHandler] = [online_page, assign]
