"""Send a large batch of queued reminders to a local SMTP sink through real arq workers.

    python bench/notify_bench.py                      # 100,000 reminders, 2 worker processes
    python bench/notify_bench.py --messages 20000 --workers 1 --chains 4

What it does:

1. Uses DATABASE_URL / REDIS_URL when set, else starts the embedded servers; creates a fresh
   database `saldo_notify_bench_<hex>`, migrates it and queues `--messages` reminder emails
   (one debtor, account and open invoice each; `tests/worker/outbox_load.py`).
2. Starts an SMTP sink in its own process (aiosmtpd, the same server library as the tests'
   sink, with a handler that only records each Message-ID) and `--workers` worker processes:
   `saldo.worker.build_worker(...).run()`, the `saldo worker` command, under a Redis prefix of
   the bench's own and with `--chains` outbox chains.
3. Queues one `send_outbox` job and lets the chains spread: each batch claims 200 rows,
   checks the guardrails, renders, sends over several SMTP connections and records every
   outcome; a full batch queues the next.
4. Prints messages, seconds (from the first job to the last message at the sink), messages
   per second, duplicates by Message-ID, and what the machine is; drops the database and the
   Redis keys.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from saldo.embedded import ensure_servers  # noqa: E402
from saldo.settings import Settings  # noqa: E402


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---------------------------------------------------------------------------- child processes


def run_sink(port: int) -> None:
    """The SMTP sink: counts messages and distinct Message-IDs, reports on stdout."""
    from aiosmtpd.controller import Controller

    message_id = re.compile(rb"^Message-ID: (.+?)\r\n", re.M | re.I)

    class Handler:
        def __init__(self) -> None:
            self.count = 0
            self.ids: set[bytes] = set()
            self.last = 0.0

        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            found = message_id.search(envelope.content)  # type: ignore[attr-defined]
            self.ids.add(found.group(1) if found else b"")
            self.count += 1
            self.last = time.time()
            return "250 Message accepted for delivery"

    handler = Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(0.25)
            print(f"{handler.count} {len(handler.ids)} {handler.last:.6f}", flush=True)
    except KeyboardInterrupt:
        controller.stop()


def run_worker(redis_url: str, prefix: str, chains: int) -> None:
    from saldo.worker import build_worker

    worker = build_worker(redis_url, prefix)
    worker.ctx["outbox_chains"] = chains
    worker.run()


# ---------------------------------------------------------------------------- the run


async def _prepare(url: str, messages: int) -> None:
    from saldo.db import DB
    from saldo.services.migrate import migrate
    from tests.worker.outbox_load import seed_reminders

    DB.use(url)
    await migrate(quiet=True)
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        await seed_reminders(conn, messages)
        print(f"queued {messages:,} reminders in {time.perf_counter() - started:.1f} s", flush=True)
    finally:
        await conn.close()


async def _kick(redis_url: str, prefix: str) -> None:
    from saldo.worker import open_queue

    queue = await open_queue(redis_url, prefix)
    try:
        await queue.enqueue_job("send_outbox")
    finally:
        await queue.aclose()


async def _outcome(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM notification GROUP BY status")
    finally:
        await conn.close()
    return {r["status"]: int(r["n"]) for r in rows}


async def _drop_keys(redis_url: str, prefix: str) -> None:
    client = Redis.from_url(redis_url)
    try:
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            await client.delete(key)
    finally:
        await client.aclose()


def _read_sink(sink: subprocess.Popen[str]) -> tuple[int, int, float]:
    assert sink.stdout is not None
    line = sink.stdout.readline().split()
    return int(line[0]), int(line[1]), float(line[2])


def bench(args: argparse.Namespace) -> int:
    settings = Settings.from_env(dotenv=None)
    servers = ensure_servers(settings.database_url, settings.redis_url, settings.data_path)
    admin_url, redis_url = servers.database_url, servers.redis_url
    assert admin_url and redis_url
    name = f"saldo_notify_bench_{secrets.token_hex(4)}"
    prefix = f"saldo_notify_bench_{secrets.token_hex(4)}:"
    url = _with_database(admin_url, name)
    children: list[subprocess.Popen[str]] = []
    asyncio.run(_admin(admin_url, f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0"))
    try:
        asyncio.run(_prepare(url, args.messages))
        port = _free_port()
        sink = subprocess.Popen(
            [sys.executable, __file__, "--sink", str(port)], stdout=subprocess.PIPE, text=True
        )
        children.append(sink)
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "REDIS_URL": redis_url,
            "SMTP_URL": f"smtp://127.0.0.1:{port}",
            "SALDO_DATA_DIR": tempfile.mkdtemp(prefix="saldo-notify-bench-"),
            "SECRET_KEY": secrets.token_urlsafe(32),
            "PUBLIC_URL": "https://cobranzas.example.com",
            "MAIL_FROM": "Cobranzas <cobranzas@example.com>",
        }
        for _ in range(args.workers):
            command = [sys.executable, __file__, "--worker", prefix, "--chains", str(args.chains)]
            children.append(subprocess.Popen(command, env=env, cwd=ROOT))
        time.sleep(3)  # the workers connect and start their loops
        started = time.time()
        asyncio.run(_kick(redis_url, prefix))
        deadline = started + args.timeout
        received = distinct = 0
        last = started
        while time.time() < deadline:
            received, distinct, last = _read_sink(sink)
            if received >= args.messages:
                break
        seconds = max(last - started, 1e-9)
        outcome = asyncio.run(_outcome(url))
        print(
            f"{received:,} messages received ({distinct:,} distinct Message-IDs, "
            f"{received - distinct} duplicates) in {seconds:.1f} s: {received / seconds:,.0f} "
            f"messages/s with {args.workers} worker process(es), {args.chains} chains, "
            f"{os.cpu_count()} CPUs; outbox statuses {outcome}",
            flush=True,
        )
        return 0 if received >= args.messages else 1
    finally:
        for child in reversed(children):
            child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        asyncio.run(_drop_keys(redis_url, prefix))
        asyncio.run(_admin(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        servers.stop()


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--chains", type=int, default=8, help="outbox batches in parallel")
    parser.add_argument("--timeout", type=float, default=1800, help="give up after (seconds)")
    parser.add_argument("--sink", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--worker", metavar="PREFIX", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sink:
        run_sink(args.sink)
        return 0
    if args.worker:
        run_worker(os.environ["REDIS_URL"], args.worker, args.chains)
        return 0
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
