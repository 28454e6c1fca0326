"""Account search (every role): GET /backoffice/search?q= — a name, a document, an email, a
phone or an invoice number (`saldo.services.search`). The box in the top bar sends here; on
this page htmx refreshes the results as one types, and without JavaScript the form reloads.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.params import FromQuery
from litestar.response import Template
from litestar.types import ControllerRouterHandler

from backoffice.permissions import requires
from backoffice.shell import shell
from saldo.services import search as search_service
from saldo.web import page_or_fragment, request_language


@get("/search", name="backoffice:search", guards=[requires("accounts.view")])
async def search(request: Request[Any, Any, Any], q: FromQuery[str] = "") -> Template:
    result = await search_service.search(q[:200], language=request_language(request))
    context = shell(request, "search", result=result, q=result.query)
    return page_or_fragment(
        request,
        "backoffice/accounts/search.html",
        "backoffice/accounts/_search_results.html",
        context=context,
    )


handlers: list[ControllerRouterHandler] = [search]
