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
    )
