"""Database and Redis connections.

The engine reads DATABASE_URL when it is first used; `saldo` commands start the embedded servers
(which export DATABASE_URL / REDIS_URL) before anything touches the database.
"""

from __future__ import annotations

import os
from typing import Any

from piccolo.engine.postgres import PostgresEngine
from redis.asyncio import Redis


def engine_config(url: str) -> dict[str, Any]:
    return {"dsn": url}


def database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        from saldo.embedded import ensure_servers
        from saldo.settings import Settings

        settings = Settings.from_env()
        url = ensure_servers(None, settings.redis_url, settings.data_path).database_url
    assert url
    return url


def redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        raise RuntimeError("REDIS_URL is not set and no embedded Redis was started")
    return url


class SaldoEngine(PostgresEngine):
    """A PostgresEngine whose URL is resolved on first use, not at import time."""

    def __init__(self) -> None:
        super().__init__(config={}, log_queries=False)

    def _resolved(self) -> None:
        if not self.config:
            self.config = engine_config(database_url())

    async def get_new_connection(self) -> Any:
        self._resolved()
        return await super().get_new_connection()

    async def start_connection_pool(self, **kwargs: Any) -> None:
        self._resolved()
        await super().start_connection_pool(**kwargs)

    async def get_version(self) -> float:
        self._resolved()
        return await super().get_version()

    def get_version_sync(self) -> float:
        self._resolved()
        return super().get_version_sync()

    async def prep_database(self) -> None:
        self._resolved()
        await super().prep_database()  # type: ignore[no-untyped-call]

    def use(self, url: str) -> None:
        """Point the engine at another database (tests, CLI)."""
        self.config = engine_config(url)


DB = SaldoEngine()


def redis_client(url: str | None = None) -> Redis:
    return Redis.from_url(url or redis_url(), decode_responses=False)


async def database_ready() -> bool:
    try:
        conn = await DB.get_new_connection()
    except Exception:
        return False
    try:
        return await conn.fetchval("SELECT 1") == 1
    finally:
        await conn.close()


async def redis_ready(client: Redis) -> bool:
    try:
        return bool(await client.ping())
    except Exception:
        return False
