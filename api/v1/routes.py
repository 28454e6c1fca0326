"""`/api/v1` routes: parse, call one service, answer JSON (errors are problem+json, see
`api.v1.problems`). Only these routes are in the OpenAPI document at `/schema/openapi.json`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from litestar import Request, Router, get, put
from litestar.params import FromQuery, PathParameter, QueryParameter

from api.v1.auth import SCOPE_OPT, caller, require_api_key
from api.v1.models import CLOSED_BODY, DebtorBatch, InvoiceBatch, rows
from api.v1.problems import LOOKUP_RESPONSES, READ_RESPONSES, WRITE_RESPONSES
from saldo.services import api_reads, api_upsert
from saldo.services.api_reads import (
    MAX_LIMIT,
    AccountBalance,
    DebtorBalance,
    DisputePage,
    DisputeStatus,
    PaymentPage,
    PlanPage,
    PlanStatus,
)
from saldo.services.api_upsert import DebtorUpsert, InvoiceUpsert

READ = {SCOPE_OPT: "read"}
WRITE = {SCOPE_OPT: "write"}
#: An upsert of MAX_ITEMS invoices with a few lines each stays well under this.
MAX_BODY_BYTES = 8 * 1024 * 1024

Since = Annotated[
    str | None,
    QueryParameter(
        max_length=200,
        description="`next_cursor` of the previous page; omit it to start from the beginning.",
    ),
]
Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="Items per page.")]
AccountId = Annotated[int, PathParameter(ge=1, le=2**31 - 1, description="Saldo's account id.")]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@put(
    "/debtors",
    name="api:v1:debtors",
    opt=WRITE,
    status_code=200,
    request_max_body_size=MAX_BODY_BYTES,
    responses=WRITE_RESPONSES,
    summary="Upsert debtors",
    description=(
        "Insert or update up to 1,000 debtors of a creditor by `external_id`, with the rules "
        "of `saldo import` (the debtors CSV): all or nothing, idempotent. Scope `write`."
    ),
)
async def put_debtors(
    request: Request[Any, Any, Any], data: Annotated[DebtorBatch, CLOSED_BODY]
) -> DebtorUpsert:
    return await api_upsert.upsert_debtors(
        data.creditor, rows(data.items), actor=caller(request).actor, now=_now()
    )


@put(
    "/invoices",
    name="api:v1:invoices",
    opt=WRITE,
    status_code=200,
    request_max_body_size=MAX_BODY_BYTES,
    responses=WRITE_RESPONSES,
    summary="Upsert invoices",
    description=(
        "Insert or update up to 1,000 invoices of a creditor by number, with the rules of "
        "`saldo import` (the invoices CSV, one line per item line): line total = quantity × "
        "unit_price × (1 + tax_rate/100) rounded half-up; a new invoice posts a charge, a "
        "changed total one adjustment. All or nothing, idempotent. Scope `write`."
    ),
)
async def put_invoices(
    request: Request[Any, Any, Any], data: Annotated[InvoiceBatch, CLOSED_BODY]
) -> InvoiceUpsert:
    return await api_upsert.upsert_invoices(
        data.creditor, rows(data.items), actor=caller(request).actor, now=_now()
    )


@get(
    "/accounts/{account_id:int}/balance",
    name="api:v1:account-balance",
    opt=READ,
    responses=LOOKUP_RESPONSES,
    summary="An account's balance",
    description="Balance, overdue amount and open invoices of one account. Scope `read`.",
)
async def account_balance(account_id: AccountId) -> AccountBalance:
    return await api_reads.account_balance(account_id, now=_now())


@get(
    "/debtors/{external_id:str}/balance",
    name="api:v1:debtor-balance",
    opt=READ,
    responses=LOOKUP_RESPONSES,
    summary="A debtor's balances",
    description=(
        "The balances of a debtor (one account per currency), by the creditor's name and the "
        "creditor's own id of the debtor. Scope `read`."
    ),
)
async def debtor_balance(
    external_id: Annotated[str, PathParameter(description="The creditor's id of the debtor.")],
    creditor: Annotated[str, QueryParameter(min_length=1, max_length=200, description="Its name.")],
) -> DebtorBalance:
    return await api_reads.debtor_balance(creditor, external_id, now=_now())


@get(
    "/payments",
    name="api:v1:payments",
    opt=READ,
    responses=READ_RESPONSES,
    summary="Payments since a cursor",
    description="Payments in the order Saldo recorded them, a page at a time. Scope `read`.",
)
async def payments(since: Since = None, limit: Limit = 100) -> PaymentPage:
    return await api_reads.list_payments(since=since, limit=limit)


@get(
    "/plans",
    name="api:v1:plans",
    opt=READ,
    responses=READ_RESPONSES,
    summary="Payment plans since a cursor",
    description="Payment plans in the order they were made, optionally of one status.",
)
async def plans(
    status: FromQuery[PlanStatus | None] = None, since: Since = None, limit: Limit = 100
) -> PlanPage:
    return await api_reads.list_plans(status=status, since=since, limit=limit)


@get(
    "/disputes",
    name="api:v1:disputes",
    opt=READ,
    responses=READ_RESPONSES,
    summary="Disputes since a cursor",
    description="Disputes in the order they were opened, optionally of one status.",
)
async def disputes(
    status: FromQuery[DisputeStatus | None] = None, since: Since = None, limit: Limit = 100
) -> DisputePage:
    return await api_reads.list_disputes(status=status, since=since, limit=limit)


v1_router = Router(
    path="/api/v1",
    route_handlers=[
        put_debtors,
        put_invoices,
        account_balance,
        debtor_balance,
        payments,
        plans,
        disputes,
    ],
    guards=[require_api_key],
    opt={"skip_session": True, "exclude_from_csrf": True},
    security=[{"BearerAuth": []}],
    include_in_schema=True,
    tags=["Saldo API v1"],
)
