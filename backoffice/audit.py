"""The audit log (admins and supervisors): read-only, filtered, paginated, newest first.

Filters come from the query string, so a filtered view is a link. htmx swaps only the results
when the filter form is sent; without JavaScript the form reloads the page.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from litestar import Request, get
from litestar.response import Template
from litestar.types import ControllerRouterHandler

from backoffice.permissions import requires
from backoffice.shell import shell
from saldo.services import audit
from saldo.services.audit import AuditFilters
from saldo.web import page_or_fragment

FIELDS = ("actor", "action", "object_type", "object_id", "from", "to")


def _date(value: str, field: str, errors: dict[str, str]) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        errors[field] = "date"
        return None


def _page_number(value: str | None) -> int:
    return int(value) if value and value.isdigit() and len(value) < 7 else 1


@get("/audit", name="backoffice:audit", guards=[requires("audit.view")])
async def audit_log(request: Request[Any, Any, Any]) -> Template:
    raw = {name: request.query_params.get(name, "").strip()[:254] for name in FIELDS}
    errors: dict[str, str] = {}
    filters = AuditFilters(
        actor=raw["actor"],
        action=raw["action"],
        object_type=raw["object_type"],
        object_id=raw["object_id"],
        date_from=_date(raw["from"], "from", errors),
        date_to=_date(raw["to"], "to", errors),
    )
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        errors["to"] = "order"
    page = await audit.search(filters, page=_page_number(request.query_params.get("page")))
    base = request.app.route_reverse("backoffice:audit")
    kept = {k: v for k, v in raw.items() if v}

    def page_url(number: int) -> str:
        return f"{base}?{urlencode({**kept, 'page': number})}"

    context = shell(
        request, "audit", page=page, raw=raw, errors=errors, page_url=page_url, filtered=bool(kept)
    )
    return page_or_fragment(
        request, "backoffice/audit/index.html", "backoffice/audit/_results.html", context=context
    )


handlers: list[ControllerRouterHandler] = [audit_log]
