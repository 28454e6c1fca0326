"""Send a large batch of queued reminders to a local SMTP sink through real arq workers.

    python bench/notify_bench.py                      # 100,000 reminders, 2 worker processes
    python bench/notify_bench.py --messages 20000 --workers 1 --chains 4
    python bench/notify_bench.py --sink-kind aiosmtpd --profile /tmp/prof

What it does:

1. Uses DATABASE_URL / REDIS_URL when set, else starts the embedded servers; creates a fresh
   database `saldo_notify_bench_<hex>`, migrates it and queues `--messages` reminder emails
   (one debtor, account and open invoice each; `tests/worker/outbox_load.py`).
2. Starts an SMTP sink in its own process and `--workers` worker processes:
   `saldo.worker.build_worker(...).run()`, the `saldo worker` command, under a Redis prefix of
   the bench's own and with `--chains` outbox chains (with `--profile DIR`, each under
   cProfile, its stats written to DIR when it stops). The sink (`--sink-kind`) is `fast`, a
   minimal SMTP server on asyncio (`FastSink`: it answers every command, offers PIPELINING,
   reads each message to the lone dot and undoes the dot-stuffing), or `aiosmtpd`, the tests'
   server library, which reads DATA a line at a time. Either takes every byte of every
   message and notes its Message-ID from the header block, and the byte count.
3. Queues one `send_outbox` job and lets the chains spread: each batch claims 200 rows,
   checks the guardrails, renders, sends over several SMTP connections and records every
   outcome; a full batch queues the next.
4. Prints messages, seconds (from the first job to the last message at the sink), messages
   per second, duplicates by Message-ID, megabytes received, what the machine is, and the
   CPU seconds the sink, the workers and the PostgreSQL backends serving the bench's database
   used (the backends sampled every 0.25 s), against what the whole machine was busy; drops
   the database and the Redis keys.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from typing import Any
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


class _Tally:
    """What a sink has received: messages, distinct Message-IDs, bytes, the last arrival."""

    def __init__(self) -> None:
        self.count = 0
        self.ids: set[bytes] = set()
        self.bytes = 0
        self.last = 0.0

    def add(self, content: bytes) -> None:
        head = content.find(b"\r\n\r\n")
        found = _MESSAGE_ID.search(content, 0, head if head >= 0 else len(content))
        self.ids.add(found.group(1) if found else b"")
        self.count += 1
        self.bytes += len(content)
        self.last = time.time()

    def report(self) -> str:
        return f"{self.count} {len(self.ids)} {self.last:.6f} {self.bytes}"


_MESSAGE_ID = re.compile(rb"^Message-ID: (.+?)\r\n", re.M | re.I)


class FastSink(asyncio.Protocol):
    """A minimal SMTP server (RFC 5321, with PIPELINING): EHLO/HELO, MAIL, RCPT, DATA (read
    to the lone dot, dot-stuffing undone), RSET, NOOP, QUIT. It answers every command, takes
    every byte of every message and hands each message to the tally."""

    def __init__(self, tally: _Tally) -> None:
        self.tally = tally
        self.buffer = bytearray()
        self.in_data = False
        self.recipients = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(b"220 sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        replies: list[bytes] = []
        while self._step(replies):
            pass
        if replies:
            self.transport.write(b"".join(replies))

    def _step(self, replies: list[bytes]) -> bool:
        buffer = self.buffer
        if self.in_data:
            if buffer.startswith(b".\r\n"):
                content, used = b"", 3
            else:
                end = buffer.find(b"\r\n.\r\n")
                if end < 0:
                    return False
                content, used = bytes(buffer[: end + 2]), end + 5
            del buffer[:used]
            if content.startswith(b".."):
                content = content[1:]
            self.tally.add(content.replace(b"\r\n..", b"\r\n."))
            self.in_data, self.recipients = False, 0
            replies.append(b"250 2.0.0 OK queued\r\n")
            return True
        end = buffer.find(b"\r\n")
        if end < 0:
            return False
        verb = bytes(buffer[:4]).upper()
        del buffer[: end + 2]
        if verb == b"EHLO":
            replies.append(b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n")
        elif verb in (b"HELO", b"NOOP"):
            replies.append(b"250 OK\r\n")
        elif verb in (b"MAIL", b"RSET"):
            self.recipients = 0
            replies.append(b"250 OK\r\n")
        elif verb == b"RCPT":
            self.recipients += 1
            replies.append(b"250 OK\r\n")
        elif verb == b"DATA":
            self.in_data = self.recipients > 0
            replies.append(
                b"354 End data with <CR><LF>.<CR><LF>\r\n"
                if self.in_data
                else b"503 5.5.1 RCPT first\r\n"
            )
        elif verb == b"QUIT":
            replies.append(b"221 Bye\r\n")
            assert self.transport is not None
            self.transport.write(b"".join(replies))
            replies.clear()
            self.transport.close()
            return False
        else:
            replies.append(b"502 5.5.2 not implemented\r\n")
        return True


def run_sink(port: int, kind: str) -> None:
    """The SMTP sink: counts messages, distinct Message-IDs and bytes, reports on stdout."""
    tally = _Tally()
    if kind == "aiosmtpd":
        _run_aiosmtpd(port, tally)
        return

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: FastSink(tally), "127.0.0.1", port)
        print("ready", flush=True)
        async with server:
            while True:
                await asyncio.sleep(0.25)
                print(tally.report(), flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


def _run_aiosmtpd(port: int, tally: _Tally) -> None:
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_EHLO(
            self,
            server: object,
            session: Any,
            envelope: object,
            hostname: str,
            responses: list[str],
        ) -> list[str]:
            session.host_name = hostname
            return [*responses[:-1], "250-PIPELINING", responses[-1]]

        async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
            tally.add(envelope.content)
            return "250 Message accepted for delivery"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(0.25)
            print(tally.report(), flush=True)
    except KeyboardInterrupt:
        controller.stop()


def run_worker(redis_url: str, prefix: str, chains: int, profile: str | None) -> None:
    from saldo.worker import build_worker

    worker = build_worker(redis_url, prefix)
    worker.ctx["outbox_chains"] = chains
    if not profile:
        worker.run()
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        worker.run()
    finally:
        profiler.disable()
        profiler.dump_stats(Path(profile) / f"worker-{os.getpid()}.prof")


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


def _read_sink(sink: subprocess.Popen[str]) -> tuple[int, int, float, int]:
    assert sink.stdout is not None
    line = sink.stdout.readline().split()
    return int(line[0]), int(line[1]), float(line[2]), int(line[3])


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int, *, system: bool = True) -> float:
    """User (plus system) CPU a live process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + (int(fields[12]) if system else 0)) / _TICK


def _backends(database: str, seen: dict[int, float]) -> None:
    """Note the CPU of every PostgreSQL backend serving `database` (by its process title)."""
    needle = f" {database} ".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (
                needle in (entry / "cmdline").read_bytes()
                and b"postgres" in (entry / "comm").read_bytes()
            ):
                seen[int(entry.name)] = _cpu_seconds(int(entry.name))
        except OSError:  # gone meanwhile
            continue


def _busy_seconds() -> float:
    """CPU time all cores have spent busy since boot (Linux /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / _TICK


def bench(args: argparse.Namespace) -> int:
    settings = Settings.from_env(dotenv=None)
    servers = ensure_servers(settings.database_url, settings.redis_url, settings.data_path)
    admin_url, redis_url = servers.database_url, servers.redis_url
    assert admin_url and redis_url
    name = f"saldo_notify_bench_{secrets.token_hex(4)}"
    prefix = f"saldo_notify_bench_{secrets.token_hex(4)}:"
    url = _with_database(admin_url, name)
    children: list[subprocess.Popen[Any]] = []
    asyncio.run(_admin(admin_url, f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0"))
    try:
        asyncio.run(_prepare(url, args.messages))
        port = _free_port()
        sink = subprocess.Popen(
            [sys.executable, __file__, "--sink", str(port), "--sink-kind", args.sink_kind],
            stdout=subprocess.PIPE,
            text=True,
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
            command += ["--profile", args.profile] if args.profile else []
            children.append(subprocess.Popen(command, env=env, cwd=ROOT))
        time.sleep(3)  # the workers connect and start their loops
        cpu_before = {child.pid: _cpu_seconds(child.pid) for child in children}
        user_before = {child.pid: _cpu_seconds(child.pid, system=False) for child in children}
        backends_before: dict[int, float] = {}
        _backends(name, backends_before)
        backends = dict(backends_before)
        busy_before = _busy_seconds()
        started = time.time()
        asyncio.run(_kick(redis_url, prefix))
        deadline = started + args.timeout
        received = distinct = size = 0
        last = started
        while time.time() < deadline:
            received, distinct, last, size = _read_sink(sink)
            _backends(name, backends)
            if received >= args.messages:
                break
        seconds = max(last - started, 1e-9)
        busy = _busy_seconds() - busy_before
        used = {child.pid: _cpu_seconds(child.pid) - cpu_before[child.pid] for child in children}
        workers = sum(used[child.pid] for child in children[1:])
        in_kernel = workers - sum(
            _cpu_seconds(c.pid, system=False) - user_before[c.pid] for c in children[1:]
        )
        database = sum(backends.values()) - sum(backends_before.values())
        outcome = asyncio.run(_outcome(url))
        print(
            f"{received:,} messages received ({distinct:,} distinct Message-IDs, "
            f"{received - distinct} duplicates, {size / 1e6:,.0f} MB) in {seconds:.1f} s: "
            f"{received / seconds:,.0f} messages/s with {args.workers} worker process(es), "
            f"{args.chains} chains, {args.sink_kind} sink, {os.cpu_count()} CPUs; "
            f"outbox statuses {outcome}\n"
            f"CPU seconds: sink {used[sink.pid]:.1f}, workers {workers:.1f} ({in_kernel:.1f} of it "
            f"in the kernel), PostgreSQL "
            f"backends of the bench's database {database:.1f} (sampled every 0.25 s: at least "
            f"that), everything else (Redis, the bench, other load) "
            f"{busy - used[sink.pid] - workers - database:.1f}; the machine was busy "
            f"{busy:.1f} of {seconds * (os.cpu_count() or 1):.1f}",
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
    parser.add_argument(
        "--sink-kind",
        choices=("fast", "aiosmtpd"),
        default="fast",
        help="the SMTP sink: a minimal asyncio server (default) or aiosmtpd",
    )
    parser.add_argument(
        "--profile", metavar="DIR", help="write each worker's cProfile stats to DIR"
    )
    parser.add_argument("--sink", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--worker", metavar="PREFIX", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sink:
        run_sink(args.sink, args.sink_kind)
        return 0
    if args.worker:
        run_worker(os.environ["REDIS_URL"], args.worker, args.chains, args.profile)
        return 0
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
