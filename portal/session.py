"""Who is signed in to the portal. The login flow writes these keys; every debtor-scoped
handler reads them through `signed_in_debtors` (a Litestar guard enforces their presence).

After the knowledge check the session holds:
  debtor_ids  list[int]  every Debtor row of the person (one per creditor they owe)
  contact     str        the address or number the magic link went to
"""

from __future__ import annotations

import time
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from saldo.errors import LoginRequired
from saldo.web import session_expired

DEBTOR_IDS = "debtor_ids"
CONTACT = "contact"


def signed_in_debtors(connection: ASGIConnection[Any, Any, Any, Any]) -> list[int]:
    session = connection.scope.get("session") or {}
    ids = session.get(DEBTOR_IDS) if isinstance(session, dict) else None
    return [int(i) for i in ids] if isinstance(ids, list) else []


def require_debtor(
    connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
) -> None:
    """Guard for every debtor-scoped route.

    Guards run before the app's `before_request` hook, so the 12 h absolute limit is checked
    here too: an expired session is emptied (and so deleted) and the debtor signs in again.
    """
    session = connection.scope.get("session")
    if isinstance(session, dict) and session and session_expired(session, time.time()):
        session.clear()
    if not signed_in_debtors(connection):
        raise LoginRequired("sign in to see your account")
