"""Portal routes (mounted at `/`)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, get
from litestar.response import Template

from portal import account, disputes, login, pay, plans, unsubscribe
from saldo.web import page_or_fragment


@get("/", name="landing")
async def landing(request: Request[Any, Any, Any]) -> Template:
    """What Saldo is, for debtors and for businesses, with the way in."""
    return page_or_fragment(request, "portal/landing.html")


portal_router = Router(
    path="/",
    route_handlers=[
        landing,
        *login.handlers,
        *account.handlers,
        *disputes.handlers,
        *pay.handlers,
        *plans.handlers,
        *unsubscribe.handlers,
    ],
    include_in_schema=False,
)
