"""Acceptance: 10,000 queued reminder emails and a real `saldo worker` process, killed at
random moments 3–5 times and restarted, then left to finish: the SMTP sink has every message.

Killed with SIGTERM (what `kill`, `docker stop` and systemd send) the worker drains: it takes
no new batch and finishes the one under way, so the sink receives each message exactly once.

Killed with SIGKILL (a crash: no chance to clean up) nothing may be lost either: every row
ends `sent` and every Message-ID reaches the sink. A message can then arrive twice only if the
worker died between the server accepting it and the commit of `sent`; the test counts those
duplicates (by Message-ID, which stays the same when a message is sent again) and prints them
with the kill points, so the size of that window is measured each run.

Real pieces only: PostgreSQL, Redis (a database index of its own, since `saldo worker` uses
the default key prefix), the SMTP sink of tests/smtp_sink.py, and the worker as a subprocess.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from redis.asyncio import Redis

from saldo.db import DB
from saldo.notify.email import message_id_for
from saldo.services.outbox import SENDERS
from saldo.tables import Notification
from saldo.tasks import OUTBOX_CHAINS
from saldo.worker import DEFAULT_PREFIX, open_queue
from tests.smtp_sink import SmtpSink
from tests.worker.outbox_load import seed_reminders

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 10_000
MAIL_FROM = "Cobranzas <cobranzas@carga.example>"
TIME_LIMIT = 180.0


def _with_db(url: str, index: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        query = dict(parse_qsl(parts.query))
        query["db"] = str(index)
        return urlunsplit(parts._replace(query=urlencode(query)))
    return urlunsplit(parts._replace(path=f"/{index}"))


async def _free_redis_db(url: str, rng: random.Random) -> str:
    """A Redis database where no worker with the default prefix keeps anything."""
    for index in rng.sample(range(1, 16), 15):
        candidate = _with_db(url, index)
        client = Redis.from_url(candidate)
        try:
            used = [key async for key in client.scan_iter(match=f"{DEFAULT_PREFIX}*", count=100)]
        finally:
            await client.aclose()
        if not used:
            return candidate
    pytest.fail("no free Redis database for the worker under test")


async def _drop_keys(url: str) -> None:
    client = Redis.from_url(url)
    try:
        async for key in client.scan_iter(match=f"{DEFAULT_PREFIX}*", count=1000):
            await client.delete(key)
    finally:
        await client.aclose()


async def _kick(redis_url: str) -> None:
    """What the cron does every minute, now: start the outbox chains."""
    queue = await open_queue(redis_url, DEFAULT_PREFIX)
    try:
        for _ in range(OUTBOX_CHAINS):
            await queue.enqueue_job("send_outbox")
    finally:
        await queue.aclose()


async def _statuses(keys: list[str]) -> collections.Counter[str]:
    rows = await Notification.raw(
        "SELECT status, count(*) AS n FROM notification WHERE idempotency_key = ANY({}::text[]) "
        "GROUP BY status",
        keys,
    )
    return collections.Counter({str(r["status"]): int(r["n"]) for r in rows})


@pytest.fixture
def smtp():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.mark.slow
@pytest.mark.parametrize("kill", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_killing_the_worker_at_random_loses_no_message(db, servers, tmp_path, smtp, kill):
    seed = secrets.randbits(32)
    rng = random.Random(seed)
    conn = await DB.get_new_connection()
    try:
        _, keys = await seed_reminders(conn, MESSAGES)
    finally:
        await conn.close()
    assert len(keys) == MESSAGES
    redis_url = await _free_redis_db(servers.redis_url, rng)
    env = {
        **os.environ,
        "DATABASE_URL": servers.database_url,
        "REDIS_URL": redis_url,
        "SMTP_URL": smtp.url,
        "SALDO_DATA_DIR": str(tmp_path),
        "SECRET_KEY": secrets.token_urlsafe(32),
        "PUBLIC_URL": "https://cobranzas.example.com",
        "MAIL_FROM": MAIL_FROM,
    }
    log = (tmp_path / "worker.log").open("ab")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "saldo", "worker"], env=env, cwd=ROOT, stdout=log, stderr=log
        )

    def received() -> int:
        return len(smtp.received)

    started = time.monotonic()
    worker = start()
    kill_points: list[int] = []
    try:
        await _kick(redis_url)
        for _ in range(rng.randint(3, 5)):
            goal = received() + rng.randint(300, 1800)  # let it send for a random while
            while received() < goal and time.monotonic() - started < TIME_LIMIT / 2:
                await asyncio.sleep(0.02)
            await asyncio.sleep(rng.uniform(0, 0.3))
            worker.send_signal(kill)
            worker.wait(timeout=60)
            kill_points.append(received())
            worker = start()
            await _kick(redis_url)
        while time.monotonic() - started < TIME_LIMIT:
            left = await _statuses(keys)
            if left["sent"] == MESSAGES:
                break
            await asyncio.sleep(1)
        elapsed = time.monotonic() - started
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        log.close()
        await _drop_keys(redis_url)

    statuses = await _statuses(keys)
    expected = {message_id_for(key, MAIL_FROM) for key in keys}
    ids = [r.message["Message-ID"] for r in smtp.received if r.message["Message-ID"] in expected]
    copies = collections.Counter(ids)
    duplicates = sum(n - 1 for n in copies.values())
    recovered = await Notification.count().where(
        Notification.idempotency_key.is_in(keys) & (Notification.attempts > 1)
    )
    print(
        f"\nseed {seed}, {kill.name}: {MESSAGES} messages, {len(kill_points)} kills after "
        f"{kill_points} messages, {recovered} rows re-claimed after a kill, "
        f"{duplicates} duplicates ({sorted(n for n in copies.values() if n > 1)}), {elapsed:.1f} s"
    )
    assert statuses == {"sent": MESSAGES}, statuses
    assert set(copies) == expected  # every message arrived
    if kill == signal.SIGTERM:
        assert duplicates == 0  # a drained worker marked everything the server accepted
    else:
        # A duplicate needs a kill between the server's "250" and the commit of `sent`: at
        # most the messages in flight at that instant, one per open SMTP connection.
        assert duplicates <= len(kill_points) * OUTBOX_CHAINS * SENDERS
    assert elapsed < TIME_LIMIT
