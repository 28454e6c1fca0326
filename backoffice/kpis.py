"""The KPI dashboard (supervisors, finance, admins) and its CSV export.

Filters come from the query string (creditor, currency, from, to, by=month|week and optional
unit costs), so a view is a link and the export takes the same link. htmx swaps only the board
when the filter form is sent; without JavaScript the form reloads the page. Wrong filters
re-render the form with a message next to each field (422).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get
from litestar.response import Template
from litestar.status_codes import HTTP_200_OK, HTTP_422_UNPROCESSABLE_ENTITY
from litestar.types import ControllerRouterHandler

from backoffice.permissions import requires
from backoffice.session import actor
from backoffice.shell import shell
from saldo.services import kpis_view
from saldo.web import page_or_fragment, request_language


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@get("/kpis", name="backoffice:kpis", guards=[requires("kpis.view")])
async def kpi_dashboard(request: Request[Any, Any, Any]) -> Template:
    board = await kpis_view.dashboard(
        request.query_params, today=_now().date(), language=request_language(request)
    )
    query = urlencode(board.form.query())
    export = request.app.route_reverse("backoffice:kpis-export")
    context = shell(request, "kpis", board=board, export_url=f"{export}?{query}")
    return page_or_fragment(
        request,
        "backoffice/kpis/index.html",
        "backoffice/kpis/_board.html",
        context=context,
        status_code=HTTP_422_UNPROCESSABLE_ENTITY if board.errors else HTTP_200_OK,
    )


@get("/kpis/export.csv", name="backoffice:kpis-export", guards=[requires("kpis.view")])
async def kpi_export(request: Request[Any, Any, Any]) -> Response[str]:
    now = _now()
    export = await kpis_view.export_csv(
        request.query_params,
        today=now.date(),
        language=request_language(request),
        actor=actor(request),
        now=now,
    )
    return Response(
        content=export.text,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{export.filename}"',
            "Cache-Control": "no-store",
        },
    )


handlers: list[ControllerRouterHandler] = [kpi_dashboard, kpi_export]
