"""Machine-facing routes: no sessions, no CSRF, JSON problem details on every error.

Provider webhooks stay out of the OpenAPI document; `/api/v1` is what it describes.
"""

from __future__ import annotations

from litestar import Router

from api import webhooks
from api.v1.routes import v1_router

webhooks_router = Router(path="/", route_handlers=[*webhooks.handlers], include_in_schema=False)

api_router = Router(path="/", route_handlers=[webhooks_router, v1_router])
