"""Back office routes (mounted at `/backoffice`).

Every route carries a permission guard from `backoffice.permissions` or is a sign-in route
marked public there; the guard errors become redirects or pages in `backoffice.errors`.
"""

from __future__ import annotations

from litestar import Router

from backoffice import (
    accounts,
    audit,
    disputes,
    finance,
    home,
    kpis,
    login,
    notifications,
    plans,
    policies,
    queue,
    search,
    users,
)
from backoffice.errors import EXCEPTION_HANDLERS

backoffice_router = Router(
    path="/backoffice",
    route_handlers=[
        *home.handlers,
        *login.handlers,
        *users.handlers,
        *audit.handlers,
        *disputes.handlers,
        *plans.handlers,
        *policies.handlers,
        *finance.handlers,
        *kpis.handlers,
        *queue.handlers,
        *accounts.handlers,
        *search.handlers,
        *notifications.handlers,
    ],
    exception_handlers=EXCEPTION_HANDLERS,
    include_in_schema=False,
)
