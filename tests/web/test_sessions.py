"""Server-side sessions in Redis: cookie attributes, namespace, none for anonymous visits."""

from __future__ import annotations

import time

import msgspec
from litestar.testing import AsyncTestClient

from saldo.web import SESSION_ABSOLUTE_SECONDS, SESSION_CREATED_AT


def session_cookie(response, name: str) -> str:
    cookies = [c for c in response.headers.get_list("set-cookie") if c.startswith(f"{name}=")]
    assert len(cookies) == 1, response.headers.get_list("set-cookie")
    return cookies[0]


def attributes(cookie: str) -> set[str]:
    return {part.strip().lower() for part in cookie.split(";")[1:]}


async def test_anonymous_pages_create_no_session(client, redis, servers):
    for path in ("/", "/?lang=en", "/backoffice", "/no-such-page", "/healthz"):
        response = await client.get(path)
        names = [c.split("=", 1)[0] for c in response.headers.get_list("set-cookie")]
        assert "saldo_session" not in names, path


async def test_session_cookie_is_httponly_lax_and_stored_in_redis(client, redis, servers):
    response = await client.get("/_probe/session")
    cookie = session_cookie(response, "saldo_session")
    attrs = attributes(cookie)
    assert {"httponly", "samesite=lax", "path=/", "max-age=1800"} <= attrs
    assert "secure" not in attrs

    session_id = cookie.split(";")[0].split("=", 1)[1]
    raw = await redis.get(f"{servers.redis_prefix}session:{session_id}")
    assert raw is not None
    data = msgspec.json.decode(raw)
    assert data["probe"] == "1"
    assert isinstance(data[SESSION_CREATED_AT], int)
    assert 0 < await redis.ttl(f"{servers.redis_prefix}session:{session_id}") <= 1800


async def test_session_is_host_prefixed_and_secure_behind_https(db, make_app):
    app = make_app(public_url="https://saldo.example")
    async with AsyncTestClient(app, base_url="https://testserver.local") as client:
        response = await client.get("/_probe/session")
    cookie = session_cookie(response, "__Host-saldo")
    assert {"httponly", "secure", "samesite=lax", "path=/"} <= attributes(cookie)
    assert "domain=" not in cookie.lower()
    csrf = session_cookie(response, "__Host-saldo-csrf")
    assert {"httponly", "secure", "samesite=lax", "path=/"} <= attributes(csrf)


async def test_session_past_its_absolute_lifetime_is_dropped(client, redis, servers):
    response = await client.get("/_probe/session")
    session_id = session_cookie(response, "saldo_session").split(";")[0].split("=", 1)[1]
    key = f"{servers.redis_prefix}session:{session_id}"
    assert (await client.get("/_probe/session/show")).json()["probe"] == "1"

    born = int(time.time()) - SESSION_ABSOLUTE_SECONDS - 5
    await redis.set(key, msgspec.json.encode({SESSION_CREATED_AT: born, "probe": "1"}), ex=600)
    response = await client.get("/_probe/session/show")
    assert response.json() == {}
    assert session_cookie(response, "saldo_session").startswith("saldo_session=null;")
    assert await redis.get(key) is None
