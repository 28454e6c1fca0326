"""Back office routes (mounted at `/backoffice`)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, get
from litestar.response import Template

from saldo.web import page_or_fragment


@get("/", name="backoffice:home")
async def home(request: Request[Any, Any, Any]) -> Template:
    """Until staff accounts exist there is nothing to sign in to; say so plainly."""
    return page_or_fragment(request, "backoffice/home.html")


backoffice_router = Router(path="/backoffice", route_handlers=[home], include_in_schema=False)
