"""arq worker settings and the queue handle. Jobs are serialized with msgpack, never pickle.

Everything a Saldo installation keeps in Redis for jobs is namespaced by its prefix: the queue
(`<prefix>queue`), and job ids given with `_job_id` (arq keeps job, result and retry keys by
job id, so `webhook:7` is stored as `<prefix>webhook:7`), so two installations — or two test
runs — sharing one Redis never refuse each other's jobs.
"""

from __future__ import annotations

from typing import Any

import msgpack
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from arq.cron import cron
from arq.worker import Worker

from saldo import tasks
from saldo.settings import Settings

DEFAULT_PREFIX = "saldo:"
REFETCH_EVERY_MINUTES = 15
REFRESH_WORK_QUEUE_MINUTES = 10  # saldo.services.work_queue.REFRESH_MINUTES
#: The nightly collections jobs after `check_commitments` (02:30 UTC): (task, hour, minute).
NIGHTLY_DUNNING = (
    (tasks.accrue_interest, 3, 0),
    (tasks.segment_accounts, 3, 30),
    (tasks.run_dunning, 4, 0),
)


def _plain(value: object) -> object:
    """What msgpack cannot pack itself: a failed job's exception is kept as its text."""
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    raise TypeError(f"cannot serialize {type(value).__name__}")


def serialize(data: dict[str, Any]) -> bytes:
    return msgpack.packb(data, datetime=True, default=_plain)


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

    `enqueue` passes `_job_id` on (under the prefix), so a job keyed by an outside event's id is
    queued once while it waits and while its result is kept (arq refuses a second job with the
    same id). Returns False when it was refused.
    """

    def __init__(self, redis_url: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        self._pool: ArqRedis | None = None

    async def enqueue(self, function: str, *args: Any, _job_id: str | None = None) -> bool:
        if self._pool is None:
            self._pool = await open_queue(self.redis_url, self.prefix)
        job_id = f"{self.prefix}{_job_id}" if _job_id is not None else None
        job = await self._pool.enqueue_job(function, *args, _job_id=job_id)
        return job is not None

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None


#: How long a stopping worker lets running jobs finish (an outbox batch takes about a second).
DRAIN_SECONDS = 30


def build_worker(
    redis_url: str,
    prefix: str = DEFAULT_PREFIX,
    *,
    burst: bool = False,
    settings: Settings | None = None,
    retry_seconds: float = tasks.DEFAULT_RETRY_SECONDS,
) -> Worker:
    """The arq worker: every task in `tasks.FUNCTIONS`, the stale-payment cron (every 15
    minutes), the work queue's risk × balance snapshot (every 10 minutes), the outbound
    webhooks and the outbox sender (every minute), the nightly commitments check and the
    nightly collections jobs (`NIGHTLY_DUNNING`: interest and fees, segmentation, the dunning
    run).

    SIGTERM or SIGINT drains: the worker takes no new job and lets running ones finish for up
    to `DRAIN_SECONDS` before cancelling them, so a stop (`kill`, `docker stop`, Ctrl-C) never
    leaves a message accepted by a provider but not marked sent.

    `settings` (default: the environment, read at startup) choose the payment provider and the
    email sender; `retry_seconds` is the first back-off of a transient failure (doubling).
    """
    return Worker(
        functions=tasks.FUNCTIONS,
        cron_jobs=[
            cron(
                tasks.refetch_stale_payments,
                name=f"{prefix}cron:refetch_stale_payments",
                minute=set(range(0, 60, REFETCH_EVERY_MINUTES)),
                second=0,
                run_at_startup=False,
                unique=True,
                timeout=600,
            ),
            cron(
                tasks.send_outbox,
                name=f"{prefix}cron:send_outbox",
                second=30,
                run_at_startup=False,
                unique=True,
                timeout=600,
            ),
            cron(
                tasks.deliver_webhooks,
                name=f"{prefix}cron:deliver_webhooks",
                second=0,
                run_at_startup=False,
                unique=True,
                timeout=600,
            ),
            cron(
                tasks.refresh_work_queue,
                name=f"{prefix}cron:refresh_work_queue",
                minute=set(range(5, 60, REFRESH_WORK_QUEUE_MINUTES)),
                second=0,
                run_at_startup=False,
                unique=True,
                timeout=600,
            ),
            cron(
                tasks.check_commitments,
                name=f"{prefix}cron:check_commitments",
                hour=2,
                minute=30,
                second=0,
                run_at_startup=False,
                unique=True,
                timeout=1800,
            ),
            *(
                cron(
                    job,
                    name=f"{prefix}cron:{job.__name__}",
                    hour=hour,
                    minute=minute,
                    second=0,
                    run_at_startup=False,
                    unique=True,
                    timeout=3600,
                )
                for job, hour, minute in NIGHTLY_DUNNING
            ),
        ],
        queue_name=queue_name(prefix),
        redis_settings=RedisSettings.from_dsn(redis_url),
        on_startup=tasks.startup,
        on_shutdown=tasks.shutdown,
        burst=burst,
        handle_signals=not burst,
        job_completion_wait=DRAIN_SECONDS,
        job_serializer=serialize,
        job_deserializer=deserialize,
        max_jobs=4,
        max_tries=tasks.MAX_TRIES,
        job_timeout=3600,
        health_check_key=f"{prefix}worker:health",
        ctx={"redis_prefix": prefix, "settings": settings, "retry_seconds": retry_seconds},
    )
