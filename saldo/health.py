"""Liveness and readiness probes: `GET /healthz` (no I/O), `GET /readyz` (PostgreSQL and Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from litestar import Response, Router, get
from litestar.datastructures import State
from litestar.status_codes import HTTP_200_OK, HTTP_503_SERVICE_UNAVAILABLE

from saldo.db import database_ready, redis_ready

CHECK_TIMEOUT_SECONDS = 2.0


async def _bounded(check: Awaitable[bool], seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            return await check
    except TimeoutError:
        return False


@get("/healthz", name="healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving; touches nothing else."""
    return {"status": "ok"}


@get("/readyz", name="readyz")
async def readyz(state: State) -> Response[dict[str, str]]:
    """Ready when PostgreSQL and Redis both answer within a couple of seconds."""
    database, redis = await asyncio.gather(
        _bounded(database_ready(), CHECK_TIMEOUT_SECONDS),
        _bounded(redis_ready(state.redis), CHECK_TIMEOUT_SECONDS),
    )
    body = {
        "status": "ready" if database and redis else "unavailable",
        "database": "ok" if database else "error",
        "redis": "ok" if redis else "error",
    }
    status = HTTP_200_OK if database and redis else HTTP_503_SERVICE_UNAVAILABLE
    return Response(body, status_code=status, headers={"Cache-Control": "no-store"})


health_router = Router(
    path="/",
    route_handlers=[healthz, readyz],
    include_in_schema=False,
    # probes must not create sessions or CSRF cookies
    opt={"skip_session": True, "exclude_from_csrf": True},
)
