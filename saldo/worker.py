"""arq worker settings and the queue handle. Jobs are serialized with msgpack, never pickle."""

from __future__ import annotations

from typing import Any

import msgpack
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.worker import Worker

from saldo import tasks

DEFAULT_PREFIX = "saldo:"


def serialize(data: dict[str, Any]) -> bytes:
    return msgpack.packb(data, datetime=True)


def deserialize(blob: bytes) -> dict[str, Any]:
    return msgpack.unpackb(blob, raw=False, timestamp=3)


def queue_name(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}queue"


async def open_queue(redis_url: str, prefix: str = DEFAULT_PREFIX) -> ArqRedis:
    return await create_pool(
        RedisSettings.from_dsn(redis_url),
        job_serializer=serialize,
        job_deserializer=deserialize,
        default_queue_name=queue_name(prefix),
    )


class Queue:
    """The web side's handle on the job queue: opens its Redis pool on first use.

    `enqueue` passes `_job_id` through, so a job keyed by an outside event's id is queued once
    while it waits (arq refuses a second job with the same id).
    """

    def __init__(self, redis_url: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self._pool: ArqRedis | None = None

    async def enqueue(self, function: str, *args: Any, _job_id: str | None = None) -> bool:
        if self._pool is None:
            self._pool = await open_queue(self.redis_url, self.prefix)
        job = await self._pool.enqueue_job(function, *args, _job_id=_job_id)
        return job is not None

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None


def build_worker(redis_url: str, prefix: str = DEFAULT_PREFIX, *, burst: bool = False) -> Worker:
    return Worker(
        functions=tasks.FUNCTIONS,
        queue_name=queue_name(prefix),
        redis_settings=RedisSettings.from_dsn(redis_url),
        on_startup=tasks.startup,
        on_shutdown=tasks.shutdown,
        burst=burst,
        handle_signals=not burst,
        job_serializer=serialize,
        job_deserializer=deserialize,
        max_jobs=4,
        job_timeout=3600,
        health_check_key=f"{prefix}worker:health",
        ctx={"redis_prefix": prefix},
    )
