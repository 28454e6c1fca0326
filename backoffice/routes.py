"""Back office routes (mounted at `/backoffice`).

Every route carries a permission guard from `backoffice.permissions` or is a sign-in route
marked public there; the guard errors become redirects or pages in `backoffice.errors`.
"""

from __future__ import annotations

from litestar import Router

from backoffice import audit, finance, home, login, users
from backoffice.errors import EXCEPTION_HANDLERS

backoffice_router = Router(
    path="/backoffice",
    route_handlers=[
        *home.handlers,
        *login.handlers,
        *users.handlers,
        *audit.handlers,
        *finance.handlers,
    ],
    exception_handlers=EXCEPTION_HANDLERS,
    include_in_schema=False,
)
