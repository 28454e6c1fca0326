"""Fixtures for the back-office web tests (imported by their modules).

`client` is a browser on the test's event loop (the app shares the loop of the database pool).
`make_staff` creates a user the way `saldo staff create` does and, unless asked not to, enrolls
TOTP with a known secret and known recovery codes, encrypted with the app's own key.
`inject_session` writes the session a finished sign-in leaves behind straight into Redis, for
tests that are about what comes after signing in.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec
import pytest
from litestar import Litestar

from saldo.auth import totp
from saldo.services.staff import create_staff
from saldo.services.staff_auth import stamp
from saldo.tables import StaffUser
from tests.web.conftest import AppFactory
from tests.web.html import Node, parse

BASE_URL = "http://testserver.local"
SESSION = "saldo_session"
CSRF = "saldo_csrf"
PASSWORD = "una frase larga y secreta"
JSON = {"Accept": "application/json"}


@dataclass
class Staff:
    id: int
    email: str
    role: str
    password: str = PASSWORD
    secret: str | None = None
    codes: list[str] = field(default_factory=list)


@pytest.fixture
def bo_app(make_app: AppFactory) -> Litestar:
    return make_app(public_url=BASE_URL)


def new_client(app: Litestar) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)


@pytest.fixture
async def client(db: Any, bo_app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with new_client(bo_app) as browser:
        yield browser
    await bo_app.state.redis.aclose()


@pytest.fixture(autouse=True)
async def fresh_rate_limits(redis, servers) -> None:
    """Every request here comes from one IP: start each test with the sign-in limit at zero."""
    async for key in redis.scan_iter(match=f"{servers.redis_prefix}staff-login:*"):
        await redis.delete(key)


@pytest.fixture
def app_key(web_settings) -> bytes:
    """The TOTP encryption key the app derives from its SECRET_KEY."""
    return totp.derive_key(web_settings.resolved_secret_key())


def unique_email(name: str = "ana") -> str:
    return f"{name}.{secrets.token_hex(4)}@saldo.example"


async def make_staff(
    role: str = "agent", *, key: bytes, enrolled: bool = True, name: str = ""
) -> Staff:
    row = await create_staff(unique_email(role), role, PASSWORD, name=name)
    staff = Staff(id=row.id, email=row.email, role=role)
    if enrolled:
        staff.secret = totp.generate_secret()
        staff.codes = totp.generate_recovery_codes()
        await StaffUser.raw(
            """
            UPDATE staff_user SET totp_secret_enc = {}, totp_confirmed_at = {},
                   recovery_codes = {}::jsonb
            WHERE id = {}
            """,
            totp.encrypt_secret(staff.secret, key, context=totp.staff_context(row.id)),
            dt.datetime.now(dt.UTC),
            json.dumps([totp.hash_recovery_code(c) for c in staff.codes]),
            row.id,
        )
    return staff


async def staff_row(staff_id: int) -> dict[str, Any]:
    rows = await StaffUser.raw("SELECT * FROM staff_user WHERE id = {}", staff_id)
    return rows[0]


def code(secret: str | None, offset: int = 0) -> str:
    """The code of the current step (+ offset steps), as the authenticator app shows it."""
    assert secret
    return totp.code_for_step(secret, totp.step_at(dt.datetime.now(dt.UTC)) + offset)


async def csrf_token(client: httpx.AsyncClient) -> str:
    if CSRF not in client.cookies:
        await client.get("/backoffice/login")
    return client.cookies[CSRF]


async def post_form(client: httpx.AsyncClient, url: str, **fields: str) -> httpx.Response:
    return await client.post(url, data={"_csrf_token": await csrf_token(client), **fields})


async def password_step(
    client: httpx.AsyncClient, staff: Staff, password: str | None = None, next_url: str = ""
) -> httpx.Response:
    return await post_form(
        client,
        "/backoffice/login",
        email=staff.email,
        password=staff.password if password is None else password,
        next=next_url,
    )


async def sign_in(
    client: httpx.AsyncClient, staff: Staff, second_factor: str | None = None
) -> httpx.Response:
    """Password and code; returns the answer to the code step."""
    first = await password_step(client, staff)
    assert first.status_code == 303, first.text
    assert first.headers["location"].startswith("/backoffice/login/code")
    return await post_form(
        client, "/backoffice/login/code", code=second_factor or code(staff.secret, 1)
    )


async def inject_session(
    client: httpx.AsyncClient,
    redis: Any,
    servers: Any,
    staff_id: int,
    *,
    fresh: bool = True,
    **extra: Any,
) -> str:
    """A signed-in back-office session, as the sign-in leaves it; returns its id."""
    row = await staff_row(staff_id)
    now = int(time.time())
    data = {
        "staff": {
            "id": staff_id,
            "mfa": stamp(row["totp_confirmed_at"]),
            "auth_at": now if fresh else now - 3600,
        },
        "created_at": now,
        **extra,
    }
    session_id = secrets.token_hex(16)
    await redis.set(
        f"{servers.redis_prefix}session:{session_id}", msgspec.json.encode(data), ex=1800
    )
    client.cookies.delete(SESSION)
    client.cookies.set(SESSION, session_id, domain=urlsplit(BASE_URL).hostname or "")
    return session_id


async def stored_session(redis: Any, servers: Any, session_id: str | None) -> dict[str, Any] | None:
    if not session_id:
        return None
    raw = await redis.get(f"{servers.redis_prefix}session:{session_id}")
    return None if raw is None else msgspec.json.decode(raw)


async def audit_events(staff_id: int | None = None, action: str | None = None) -> list[dict]:
    rows = await StaffUser.raw(
        "SELECT * FROM audit_event WHERE ({}::text IS NULL OR object_id = {}) "
        "AND ({}::text IS NULL OR action = {}) ORDER BY id",
        None if staff_id is None else str(staff_id),
        None if staff_id is None else str(staff_id),
        action,
        action,
    )
    for row in rows:
        for column in ("before", "after"):
            if isinstance(row[column], str):
                row[column] = json.loads(row[column])
    return rows


def main(response: httpx.Response) -> Node:
    node = parse(response.text).by_id("main")
    assert node is not None, response.text[:500]
    return node


def heading(response: httpx.Response) -> str:
    h1 = parse(response.text).find("h1")
    assert h1 is not None
    return h1.text()
