"""Machine-facing routes: no sessions, no CSRF, JSON problem details on every error."""

from __future__ import annotations

from litestar import Router

from api import webhooks

api_router = Router(path="/", route_handlers=[*webhooks.handlers], include_in_schema=False)
