"""Finance: the day's reconciliation, the accounting export and the unapplied payments queue.

`handlers` also carries the bank statement screens (`finance_bank`) and the unapplied online
payments (`finance_online`), so the router lists finance once.

- `GET /reconciliation?day=` — incoming payments of a day by source and currency, the day's
  bank lines matched and unmatched, what still waits to be applied; a form for the export.
- `GET /reconciliation/export.csv?from=&to=` — the accounting CSV as a download (audited); bad
  dates show the reconciliation page again with the messages next to the fields.
- `GET /payments/unapplied?currency=&page=` — bank lines and online payments nobody could place,
  oldest first; htmx swaps only the list when the filter changes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get
from litestar.response import Template
from litestar.status_codes import HTTP_200_OK, HTTP_422_UNPROCESSABLE_ENTITY
from litestar.types import ControllerRouterHandler

from backoffice import finance_bank, finance_online
from backoffice.finance_shared import (
    CURRENCIES,
    VIEW,
    context,
    error,
    iso_date,
    now,
    page_number,
    pop_flash,
    today,
)
from backoffice.session import actor
from saldo.errors import ValidationFailed
from saldo.services import finance_desk, unapplied_payments
from saldo.web import page_or_fragment

RECONCILIATION = "backoffice/finance/reconciliation.html"
QUEUE = "backoffice/finance/unapplied.html"


async def _reconciliation(
    request: Request[Any, Any, Any],
    *,
    day: dt.date,
    raw_day: str,
    export: dict[str, str],
    errors: list[dict[str, str]],
    status_code: int = HTTP_200_OK,
) -> Template:
    page = await finance_desk.reconciliation_page(day=day)
    values = context(
        request,
        page=page,
        day=day,
        raw_day=raw_day,
        previous_day=day - dt.timedelta(days=1),
        next_day=day + dt.timedelta(days=1),
        today=today(),
        export=export,
        errors=errors,
    )
    return page_or_fragment(request, RECONCILIATION, context=values, status_code=status_code)


def _default_export(day: dt.date) -> dict[str, str]:
    return {"from": day.replace(day=1).isoformat(), "to": day.isoformat()}


@get("/reconciliation", name="backoffice:reconciliation", guards=VIEW)
async def reconciliation(request: Request[Any, Any, Any]) -> Template:
    raw_day = request.query_params.get("day", "").strip()[:20]
    day = iso_date(raw_day)
    errors = [] if day or not raw_day else [error("day", code="date")]
    day = day or today()
    return await _reconciliation(
        request, day=day, raw_day=raw_day, export=_default_export(day), errors=errors
    )


@get("/reconciliation/export.csv", name="backoffice:reconciliation:export", guards=VIEW)
async def export(request: Request[Any, Any, Any]) -> Response[Any]:
    raw = {k: request.query_params.get(k, "").strip()[:20] for k in ("from", "to")}
    date_from, date_to = iso_date(raw["from"]), iso_date(raw["to"])
    errors = [error(k, code="date") for k, v in (("from", date_from), ("to", date_to)) if not v]
    if date_from and date_to:
        try:
            file = await finance_desk.export_for_accounting(
                date_from=date_from, date_to=date_to, actor=actor(request), now=now()
            )
        except ValidationFailed as exc:
            errors.append(error("to", str(exc)))
        else:
            return Response(
                content=file.content.encode("utf-8"),
                media_type="text/csv; charset=utf-8",
                headers={
                    "Content-Disposition": f'attachment; filename="{file.filename}"',
                    "Cache-Control": "no-store, private",
                },
            )
    day = date_to or today()
    return await _reconciliation(
        request,
        day=day,
        raw_day="",
        export=raw,
        errors=errors,
        status_code=HTTP_422_UNPROCESSABLE_ENTITY,
    )


@get("/payments/unapplied", name="backoffice:unapplied", guards=VIEW)
async def unapplied(request: Request[Any, Any, Any]) -> Template:
    raw_currency = request.query_params.get("currency", "").strip().upper()[:3]
    currency = raw_currency if raw_currency in CURRENCIES else None
    queue = await unapplied_payments.unapplied_queue(
        currency=currency, page=page_number(request.query_params.get("page"))
    )
    base = request.app.route_reverse("backoffice:unapplied")

    def page_url(number: int) -> str:
        kept = {"currency": currency} if currency else {}
        return f"{base}?{urlencode({**kept, 'page': number})}"

    flash = pop_flash(request, "assigned", "split", "not_ours", "online_assigned")
    values = context(request, queue=queue, page_url=page_url, flash=flash)
    return page_or_fragment(request, QUEUE, "backoffice/finance/_queue.html", context=values)


handlers: list[ControllerRouterHandler] = [
    reconciliation,
    export,
    unapplied,
    *finance_bank.handlers,
    *finance_online.handlers,
]
