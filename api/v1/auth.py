"""The Bearer-key guard of `/api/v1`: every route states the scope it needs in its `opt`
(`api_scope`: "read" or "write"); the guard asks `saldo.services.api_auth` and refuses with 401
or 403 problem details carrying `WWW-Authenticate: Bearer` (RFC 6750). The caller is kept on
the connection's state for the handler (`caller()`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from saldo.services.api_auth import ApiCaller, Denied, authenticate, bearer_token

SCOPE_OPT = "api_scope"
_STATE_KEY = "api_caller"
_REALM = 'realm="saldo"'


async def require_api_key(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    scope = str(handler.opt.get(SCOPE_OPT, "write"))  # a route that forgot to say needs "write"
    found = await authenticate(
        bearer_token(connection.headers.get("authorization")),
        scope=scope,
        now=dt.datetime.now(dt.UTC),
    )
    if isinstance(found, Denied):
        if found.status == 403:
            challenge = f'Bearer {_REALM}, error="insufficient_scope", scope="{found.scope}"'
            raise PermissionDeniedException(
                detail=found.reason, headers={"WWW-Authenticate": challenge}
            )
        challenge = f"Bearer {_REALM}"
        if found.reason != "missing bearer API key":
            challenge += ', error="invalid_token"'
        raise NotAuthorizedException(detail=found.reason, headers={"WWW-Authenticate": challenge})
    connection.state[_STATE_KEY] = found


def caller(connection: ASGIConnection[Any, Any, Any, Any]) -> ApiCaller:
    found = connection.state.get(_STATE_KEY)
    assert isinstance(found, ApiCaller), "the route is not behind require_api_key"
    return found
