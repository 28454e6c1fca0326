"""One suite, two setups.

With DATABASE_URL / REDIS_URL set, tests use those servers (and fail, not skip, when they are
unreachable). Unset, they start the embedded servers under $SALDO_DATA_DIR (default ./var).
Either way each run creates its own database `saldo_test_<hex>` and Redis key prefix and
drops both at the end, so what an earlier run left never matters.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from redis.asyncio import Redis

RUN_ID = secrets.token_hex(4)


@dataclass(frozen=True)
class TestServers:
    database_url: str
    admin_database_url: str
    redis_url: str
    redis_prefix: str


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _create_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        await conn.execute(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0")
    finally:
        await conn.close()


async def _drop_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url, timeout=10)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def _migrate() -> None:
    from saldo.services.migrate import migrate

    await migrate(quiet=True)


@pytest.fixture(scope="session")
def servers() -> Iterator[TestServers]:
    from saldo.embedded import ensure_servers
    from saldo.settings import Settings

    settings = Settings.from_env(dotenv=None)
    embedded = ensure_servers(settings.database_url, settings.redis_url, settings.data_path)
    admin_url = embedded.database_url
    assert admin_url and embedded.redis_url
    name = f"saldo_test_{RUN_ID}"
    try:
        asyncio.run(_create_database(admin_url, name))
    except (OSError, asyncpg.PostgresError) as exc:  # a server we were told to use is missing
        pytest.fail(f"PostgreSQL at {admin_url} is not usable: {exc}", pytrace=False)
    test_url = _with_database(admin_url, name)
    os.environ["DATABASE_URL"] = test_url
    from saldo.db import DB

    DB.use(test_url)
    asyncio.run(_migrate())
    try:
        asyncio.run(_check_redis(embedded.redis_url))
    except Exception as exc:
        pytest.fail(f"Redis at {embedded.redis_url} is not usable: {exc}", pytrace=False)
    yield TestServers(test_url, admin_url, embedded.redis_url, f"saldo_test_{RUN_ID}:")
    asyncio.run(_drop_database(admin_url, name))
    asyncio.run(_drop_redis_prefix(embedded.redis_url, f"saldo_test_{RUN_ID}:"))
    embedded.stop()


async def _check_redis(url: str) -> None:
    client = Redis.from_url(url, socket_connect_timeout=5)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _drop_redis_prefix(url: str, prefix: str) -> None:
    client = Redis.from_url(url)
    try:
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            await client.delete(key)
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
async def db(servers: TestServers) -> AsyncIterator[TestServers]:
    """The migrated per-run database, with Piccolo's pool open on this test loop."""
    from saldo.db import DB

    await DB.start_connection_pool(min_size=1, max_size=5)
    yield servers
    await DB.close_connection_pool()


@pytest.fixture
async def redis(servers: TestServers) -> AsyncIterator[Redis]:
    client = Redis.from_url(servers.redis_url)
    yield client
    await client.aclose()
