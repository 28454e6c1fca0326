from __future__ import annotations

from litestar.testing import AsyncTestClient


async def test_healthz_is_ok_without_cookies(client):
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "set-cookie" not in response.headers


async def test_readyz_when_database_and_redis_answer(client):
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "redis": "ok"}


async def test_readyz_names_redis_when_it_is_unreachable(db, make_app):
    app = make_app(redis_url="redis://127.0.0.1:1/0")
    async with AsyncTestClient(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "redis": "error"}
