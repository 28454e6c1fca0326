"""One-click unsubscribe from a message, without signing in.

- GET  /unsubscribe/{token}  a page that names the creditor and channel, with a confirm button
  (mail scanners open links: a GET changes nothing);
- POST /unsubscribe/{token}  opts out (RFC 8058: mail clients post `List-Unsubscribe=One-Click`
  here on the user's behalf, with no session and no CSRF token, so the route takes neither;
  the signed token is the only credential and only allows this one opt-out).

A token that is not genuine gets the same page with 404.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Request, get, post
from litestar.params import FromPath
from litestar.response import Template
from litestar.status_codes import HTTP_200_OK, HTTP_404_NOT_FOUND
from litestar.types import ControllerRouterHandler

from saldo.errors import NotFound
from saldo.notify.unsubscribe import derive_key
from saldo.services import unsubscribe as service
from saldo.web import page_or_fragment

PAGE = "portal/unsubscribe/page.html"
_OPT = {"skip_session": True, "exclude_from_csrf": True}


def _key(request: Request[Any, Any, Any]) -> bytes:
    state = request.app.state
    key = state.get("unsubscribe_key")
    if key is None:
        key = state["unsubscribe_key"] = derive_key(state.settings.resolved_secret_key())
    return bytes(key)


def _page(
    request: Request[Any, Any, Any], token: str, view: service.Unsubscription | None, done: bool
) -> Template:
    status = HTTP_200_OK if view is not None else HTTP_404_NOT_FOUND
    context = {"view": view, "done": done, "token": token}
    return page_or_fragment(request, PAGE, context=context, status_code=status)


@get("/unsubscribe/{token:str}", name="unsubscribe:confirm", opt={"skip_session": True})
async def confirm(request: Request[Any, Any, Any], token: FromPath[str]) -> Template:
    try:
        view = await service.unsubscription(_key(request), token)
    except NotFound:
        return _page(request, token, None, False)
    return _page(request, token, view, view.opted_out)


@post("/unsubscribe/{token:str}", name="unsubscribe:submit", opt=_OPT, status_code=HTTP_200_OK)
async def submit(request: Request[Any, Any, Any], token: FromPath[str]) -> Template:
    try:
        view = await service.unsubscribe(_key(request), token, now=dt.datetime.now(dt.UTC))
    except NotFound:
        return _page(request, token, None, False)
    return _page(request, token, view, True)


handlers: list[ControllerRouterHandler] = [confirm, submit]
