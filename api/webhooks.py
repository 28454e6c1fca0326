"""Provider notifications (`POST /webhooks/mercadopago`)."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

handlers: list[ControllerRouterHandler] = []
