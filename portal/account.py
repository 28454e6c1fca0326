"""The signed-in debtor's pages: balance, invoices, PDFs, preferences."""

from __future__ import annotations

from litestar.types import ControllerRouterHandler

handlers: list[ControllerRouterHandler] = []
