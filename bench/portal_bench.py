"""Load benchmark of the balance page against a bare hello-world route, in the same run.

    python bench/portal_bench.py [--seconds 10] [--concurrency 8] [--lines 200]

What it does:

1. Uses DATABASE_URL / REDIS_URL when set, else starts the embedded servers; creates a fresh
   database `saldo_bench_<hex>`, migrates it and imports one debtor whose open invoices hold
   `--lines` invoice lines (five lines an invoice, due dates spread over every aging bucket).
2. Signs that debtor in by writing a server-side session into Redis.
3. Starts the app under uvicorn (one worker) on a free 127.0.0.1 port, built by
   `bench_app()` below: `create_app(extra_route_handlers=[hello])` — the hello-world route
   exists only here — wrapped in a small ASGI timer that measures each request inside the
   server process (first byte in to last byte out, `time.perf_counter`).
4. For each route in turn: warms up, then for `--seconds` keeps `--concurrency` clients
   (httpx.AsyncClient) busy and counts the 200 responses.
5. Prints the server time of an /account render (the cold first one; the median and p95 of
   `--renders` sequential ones; the median under load, where concurrent requests share the one
   worker), requests/s for /account and for hello-world, and their ratio; drops the database
   and the session keys.

The client runs on the same machine as the server, so absolute requests/s depend on the
machine; the ratio to hello-world, measured in the same run, is the comparable figure.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import msgspec
from litestar import get
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PREFIX_ENV = "SALDO_BENCH_REDIS_PREFIX"
TIMINGS_PATH = "/_bench/server-times"
HELLO_PATH = "/_bench/hello"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


# ---------------------------------------------------------------------------- the server side


@get(HELLO_PATH, name="bench:hello", opt={"skip_session": True, "exclude_from_csrf": True})
async def hello() -> str:
    return "Hello, world!"


class ServerTimer:
    """ASGI wrapper: records how long each request takes inside the server, per path.

    `GET /_bench/server-times` answers the recorded milliseconds as JSON and clears them.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.times: dict[str, list[float]] = defaultdict(list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == TIMINGS_PATH:
            body = json.dumps(self.times).encode()
            self.times = defaultdict(list)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        started = time.perf_counter()

        async def timed_send(message: MutableMapping[str, Any]) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                elapsed = (time.perf_counter() - started) * 1000
                self.times[scope["path"]].append(elapsed)

        await self.app(scope, receive, timed_send)


def bench_app() -> ServerTimer:
    """The uvicorn factory: the real app plus the hello-world route, behind the timer."""
    from saldo.app import create_app

    return ServerTimer(
        create_app(redis_prefix=os.environ[PREFIX_ENV], extra_route_handlers=[hello])
    )


# ---------------------------------------------------------------------------- data


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _seed(lines: int) -> int:
    """Import one debtor with `lines` open invoice lines; returns the debtor id."""
    from saldo.db import DB
    from saldo.services.migrate import migrate
    from saldo.services.portfolio_import import import_portfolio
    from saldo.tables import Debtor

    await migrate(quiet=True)
    await DB.start_connection_pool(min_size=1, max_size=4)
    try:
        today = dt.datetime.now(dt.UTC).date()
        rows = []
        for number in range(max(lines // 5, 1)):
            due = today + dt.timedelta(days=30 - 4 * number)
            issue = due - dt.timedelta(days=30)
            for position in range(5):
                rows.append(
                    [f"BENCH-{number:04d}", "B-1", "ARS", issue.isoformat(), due.isoformat(),
                     f"Servicio número {position + 1} — período {issue:%m/%Y}",
                     str(position + 1), f"{1234.56 + 10 * position:.2f}", "21"]
                )  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="saldo-bench-") as tmp:
            debtors_csv, invoices_csv = Path(tmp) / "debtors.csv", Path(tmp) / "invoices.csv"
            with debtors_csv.open("w", newline="", encoding="utf-8") as fh:
                out = csv.writer(fh)
                out.writerow(["external_id", "name", "document_type", "document_number", "email",
                              "phone", "whatsapp", "language", "timezone", "country"])  # fmt: skip
                out.writerow(["B-1", "Ñandú Grande S.A.", "CUIT", "30712345671",
                              "bench@example.com", "", "", "es",
                              "America/Argentina/Buenos_Aires", "AR"])  # fmt: skip
            with invoices_csv.open("w", newline="", encoding="utf-8") as fh:
                out = csv.writer(fh)
                out.writerow(["invoice_number", "debtor_external_id", "currency", "issue_date",
                              "due_date", "description", "quantity", "unit_price",
                              "tax_rate"])  # fmt: skip
                out.writerows(rows[:lines])
            await import_portfolio(debtors_csv, invoices_csv, creditor="Bench Telecom S.A.")
        found = await Debtor.select(Debtor.id).where(Debtor.external_id == "B-1").first()
        assert found is not None
        return int(found["id"])
    finally:
        await DB.close_connection_pool()


# ---------------------------------------------------------------------------- the load


async def _load(
    base_url: str, path: str, cookies: dict[str, str], seconds: float, concurrency: int
) -> tuple[int, int, float]:
    """Keep `concurrency` clients busy on `path` for `seconds`: (ok, failed, elapsed)."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, cookies=cookies, limits=limits, timeout=30
    ) as client:
        for _ in range(20):  # warm-up: connections, caches, the first render
            (await client.get(path)).raise_for_status()
        ok = failed = 0
        started = time.perf_counter()
        deadline = started + seconds

        async def worker() -> None:
            nonlocal ok, failed
            while time.perf_counter() < deadline:
                response = await client.get(path)
                if response.status_code == 200:
                    ok += 1
                else:
                    failed += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return ok, failed, time.perf_counter() - started


async def _server_times(base_url: str) -> dict[str, list[float]]:
    async with httpx.AsyncClient(base_url=base_url) as client:
        return dict((await client.get(TIMINGS_PATH)).json())


async def _wait_until_up(base_url: str, server: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        for _ in range(300):
            if server.poll() is not None:
                raise SystemExit(f"the server exited with {server.returncode}")
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the server did not start in 30 s")


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from saldo.db import DB
    from saldo.embedded import ensure_servers
    from saldo.settings import Settings

    settings = Settings.from_env()
    servers = ensure_servers(settings.database_url, settings.redis_url, settings.data_path)
    assert servers.database_url and servers.redis_url
    run_id = secrets.token_hex(4)
    name, prefix = f"saldo_bench_{run_id}", f"saldo_bench_{run_id}:"
    admin = await asyncpg.connect(servers.database_url)
    await admin.execute(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0")
    await admin.close()
    database_url = _with_database(servers.database_url, name)
    DB.use(database_url)
    redis = Redis.from_url(servers.redis_url)
    server: subprocess.Popen[bytes] | None = None
    try:
        print(f"seeding a debtor with {args.lines} invoice lines…", flush=True)
        debtor_id = await _seed(args.lines)
        session_id = secrets.token_hex(16)
        session = {"debtor_ids": [debtor_id], "created_at": int(time.time())}
        await redis.set(f"{prefix}session:{session_id}", msgspec.json.encode(session), ex=3600)

        port = _free_port()
        base_url = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryDirectory(prefix="saldo-bench-data-") as data_dir:
            env = {
                **os.environ,
                "DATABASE_URL": database_url,
                "REDIS_URL": servers.redis_url,
                "SALDO_DATA_DIR": data_dir,
                PREFIX_ENV: prefix,
                "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            }
            command = [
                sys.executable, "-m", "uvicorn", "bench.portal_bench:bench_app", "--factory",
                "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                "--no-access-log", "--log-level", "warning",
            ]  # fmt: skip
            server = subprocess.Popen(command, cwd=ROOT, env=env)  # noqa: ASYNC220
            await _wait_until_up(base_url, server)

            cookies = {"saldo_session": session_id}
            async with httpx.AsyncClient(base_url=base_url, cookies=cookies) as client:
                first = await client.get("/account")
                first.raise_for_status()
                assert "Ñandú Grande" in first.text, "the bench session did not sign in"
                cold = (await _server_times(base_url))["/account"][0]
                for _ in range(args.renders):  # one request at a time: the time of one render
                    (await client.get("/account")).raise_for_status()
                single = (await _server_times(base_url))["/account"]

            print(f"hello-world for {args.seconds:g} s…", flush=True)
            hello_ok, hello_failed, hello_s = await _load(
                base_url, HELLO_PATH, {}, args.seconds, args.concurrency
            )
            await _server_times(base_url)
            print(f"/account for {args.seconds:g} s…", flush=True)
            account_ok, account_failed, account_s = await _load(
                base_url, "/account", cookies, args.seconds, args.concurrency
            )
            times = (await _server_times(base_url))["/account"]
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
        async for key in redis.scan_iter(match=f"{prefix}*"):
            await redis.delete(key)
        await redis.aclose()
        admin = await asyncpg.connect(servers.database_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        servers.stop()

    hello_rps = hello_ok / hello_s
    account_rps = account_ok / account_s
    return {
        "lines": args.lines,
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "account_server_ms_cold": round(cold, 2),
        "account_server_ms_median": round(statistics.median(single), 2),
        "account_server_ms_p95": round(_ms(single, 0.95), 2),
        "account_server_ms_under_load_median": round(statistics.median(times), 2),
        "account_rps": round(account_rps, 1),
        "hello_rps": round(hello_rps, 1),
        "ratio": round(account_rps / hello_rps, 4),
        "failed": hello_failed + account_failed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="load time per route")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients")
    parser.add_argument("--lines", type=int, default=200, help="invoice lines of the debtor")
    parser.add_argument("--renders", type=int, default=50, help="sequential renders timed")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON only")
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    if args.json:
        print(json.dumps(figures))
        return
    print()
    print(f"/account with {figures['lines']} invoice lines, server time (inside the process):")
    print(f"  first render        {figures['account_server_ms_cold']:8.2f} ms")
    print(f"  one render, median  {figures['account_server_ms_median']:8.2f} ms")
    print(f"  one render, p95     {figures['account_server_ms_p95']:8.2f} ms")
    print(f"  under load, median  {figures['account_server_ms_under_load_median']:8.2f} ms")
    print(f"throughput, {figures['concurrency']} clients, {figures['seconds']:g} s each:")
    print(f"  /account            {figures['account_rps']:8.1f} req/s")
    print(f"  hello-world         {figures['hello_rps']:8.1f} req/s")
    print(f"  ratio               {figures['ratio']:8.4f}")
    if figures["failed"]:
        print(f"  non-200 responses   {figures['failed']}")


if __name__ == "__main__":
    main()
