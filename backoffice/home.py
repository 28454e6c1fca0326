"""The back-office home: the signed-in user's open tasks and the team's open tasks per kind.

A small overview until the work queue takes this place.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Request, get
from litestar.response import Template
from litestar.types import ControllerRouterHandler

from backoffice.permissions import requires
from backoffice.session import FLASH, current, session_of
from backoffice.shell import shell
from saldo.services import staff
from saldo.web import page_or_fragment


@get("/", name="backoffice:home", guards=[requires("home.view")])
async def home(request: Request[Any, Any, Any]) -> Template:
    today = dt.datetime.now(dt.UTC).date()
    data = await staff.overview(current(request).id, today=today)
    flash = (session_of(request) or {}).pop(FLASH, None)
    context = shell(request, "home", overview=data, today=today, flash=flash)
    return page_or_fragment(request, "backoffice/home.html", context=context)


handlers: list[ControllerRouterHandler] = [home]
