"""The back-office home (`backoffice:home`, /backoffice): the work queue for the roles that work
accounts (`queue.view`: agents and supervisors); for everyone else (finance, administrators)
their open tasks, the team's open work by kind, the account search and links to their
sections.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Request, get
from litestar.response import Template
from litestar.types import ControllerRouterHandler

from backoffice.permissions import allowed, requires
from backoffice.queue import queue_page
from backoffice.session import FLASH, current, session_of
from backoffice.shell import shell
from saldo.services import staff
from saldo.web import page_or_fragment


@get("/", name="backoffice:home", guards=[requires("home.view")])
async def home(request: Request[Any, Any, Any]) -> Template:
    me = current(request)
    if allowed(me.role, "queue.view"):
        return await queue_page(request)
    flash = (session_of(request) or {}).pop(FLASH, None)
    today = dt.datetime.now(dt.UTC).date()
    data = await staff.overview(me.id, today=today)
    context = shell(request, "home", overview=data, today=today, flash=flash)
    return page_or_fragment(request, "backoffice/home.html", context=context)


handlers: list[ControllerRouterHandler] = [home]
