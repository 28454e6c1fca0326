"""Fixtures for the signed-in portal pages (imported by their test modules).

`client` is a browser on the test's event loop: the app shares the loop of the database pool
(Litestar's own test client would run it on another loop). `sign_in` writes the server-side
session the login flow leaves behind — `debtor_ids` and the session's birth time — straight
into Redis, so these tests do not depend on the login pages.
"""

from __future__ import annotations

import io
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import msgspec
import pytest
from pypdf import PdfReader

from tests.web.html import parse

SignIn = Callable[..., Awaitable[None]]
SESSION_COOKIE = "saldo_session"


@pytest.fixture
async def client(db: Any, make_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver.local"
    ) as browser:
        yield browser
    await app.state.redis.aclose()


@pytest.fixture
def sign_in(client: httpx.AsyncClient, redis: Any, servers: Any) -> SignIn:
    async def write(debtor_ids: list[int], **extra: Any) -> None:
        session_id = secrets.token_hex(16)
        data = {"debtor_ids": debtor_ids, "created_at": int(time.time()), **extra}
        key = f"{servers.redis_prefix}session:{session_id}"
        await redis.set(key, msgspec.json.encode(data), ex=1800)
        client.cookies.clear()
        client.cookies.set(SESSION_COOKIE, session_id)

    return write


def pdf_text(content: bytes) -> str:
    """The PDF's text with no-break spaces as plain spaces, as a reader copying it would get."""
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    return text.replace("\xa0", " ")


def csrf_token(markup: str) -> str:
    field = next(i for i in parse(markup).find_all("input") if i.attrs.get("name") == "_csrf_token")
    return field.attrs["value"]
