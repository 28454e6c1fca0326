"""Portal sign-in: magic link, knowledge check, logout."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

handlers: list[ControllerRouterHandler] = []
