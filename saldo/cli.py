"""The `saldo` command."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from saldo.embedded import EmbeddedServers, ensure_servers
from saldo.settings import Settings

log = logging.getLogger("saldo")


def _servers(settings: Settings) -> EmbeddedServers:
    return ensure_servers(settings.database_url, settings.redis_url, settings.data_path)


def _run_db(coro_fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    from saldo.db import DB

    async def wrapper() -> Any:
        await DB.start_connection_pool(min_size=1, max_size=4)
        try:
            return await coro_fn()
        finally:
            await DB.close_connection_pool()

    return asyncio.run(wrapper())


# ---------------------------------------------------------------------------- commands


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from saldo.services.migrate import migrate

    with_servers = _servers(settings)
    try:
        asyncio.run(migrate())
    finally:
        with_servers.stop()
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from saldo.services.demo import seed_demo
    from saldo.services.migrate import migrate

    servers = _servers(settings)
    try:
        asyncio.run(migrate(quiet=True))
        summary = _run_db(lambda: seed_demo(only_if_empty=not args.force))
    finally:
        servers.stop()
    print(summary.describe(settings.public_url))
    return 0


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from saldo.errors import ImportFileError
    from saldo.services.migrate import migrate
    from saldo.services.portfolio_import import import_portfolio

    for path in (args.debtors, args.invoices):
        if not Path(path).is_file():
            print(f"error: {path}: no such file", file=sys.stderr)
            return 2
    servers = _servers(settings)
    try:
        asyncio.run(migrate(quiet=True))
        if args.background:
            return _enqueue_import(args, settings)
        result = _run_db(
            lambda: import_portfolio(
                Path(args.debtors),
                Path(args.invoices),
                creditor=args.creditor,
                progress=lambda message: print(message, file=sys.stderr),
            )
        )
    except ImportFileError as exc:
        print(f"error: {exc} — nothing from {exc.file} was imported", file=sys.stderr)
        return 1
    finally:
        servers.stop()
    print(result.summary() if hasattr(result, "summary") else result)
    return 0


def _enqueue_import(args: argparse.Namespace, settings: Settings) -> int:
    from saldo.db import redis_url
    from saldo.worker import open_queue

    debtors, invoices = str(Path(args.debtors).resolve()), str(Path(args.invoices).resolve())

    async def enqueue() -> str:
        queue = await open_queue(redis_url())
        try:
            job = await queue.enqueue_job("import_portfolio", debtors, invoices, args.creditor)
            return job.job_id if job else "already queued"
        finally:
            await queue.aclose()

    print(f"queued import job {asyncio.run(enqueue())}; `saldo worker` runs it")
    return 0


def cmd_bank_import(args: argparse.Namespace, settings: Settings) -> int:
    """`saldo bank import FILE`: store a statement, match what it can, print the outcome."""
    import datetime as dt

    from saldo.errors import ImportFileError
    from saldo.services.bank_import import import_bank_statement
    from saldo.services.migrate import migrate

    path = Path(args.file)
    if not path.is_file():
        print(f"error: {path}: no such file", file=sys.stderr)
        return 2
    servers = _servers(settings)
    try:
        asyncio.run(migrate(quiet=True))
        result = _run_db(lambda: import_bank_statement(path, now=dt.datetime.now(dt.UTC)))
    except ImportFileError as exc:
        print(f"error: {exc} — nothing from {exc.file} was imported", file=sys.stderr)
        return 1
    finally:
        servers.stop()
    print("\n".join(result.summary_lines()))
    return 0


def cmd_dunning_run(args: argparse.Namespace, settings: Settings) -> int:
    """`saldo dunning run [--as-of DATE]`: one day's collections work now, with its counts."""
    import datetime as dt

    from saldo.services.dunning import run_day
    from saldo.services.migrate import migrate

    now = dt.datetime.now(dt.UTC)
    try:
        as_of = dt.date.fromisoformat(args.as_of) if args.as_of else now.date()
    except ValueError:
        print(f"error: --as-of {args.as_of!r} is not a date (YYYY-MM-DD)", file=sys.stderr)
        return 2
    servers = _servers(settings)
    try:
        asyncio.run(migrate(quiet=True))
        result = _run_db(lambda: run_day(as_of=as_of, now=now))
    finally:
        servers.stop()
    print("\n".join(result.summary_lines()))
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from saldo.db import redis_url
    from saldo.worker import build_worker

    servers = _servers(settings)
    try:
        build_worker(redis_url(), burst=args.burst).run()
    finally:
        servers.stop()
    return 0


def cmd_web(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    servers = _servers(settings)
    try:
        uvicorn.run(
            "saldo.asgi:app",
            host=args.host or settings.host,
            port=int(args.port or settings.port),
            workers=args.workers,
            proxy_headers=True,
            log_level="info",
        )
    finally:
        servers.stop()
    return 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Embedded servers (if needed), migrations, demo on an empty database, web + worker."""
    from saldo.services.demo import seed_demo
    from saldo.services.migrate import migrate

    servers = _servers(settings)
    children: list[subprocess.Popen[bytes]] = []
    try:
        asyncio.run(migrate(quiet=True))
        summary = _run_db(lambda: seed_demo(only_if_empty=True))
        print(summary.describe(settings.public_url), flush=True)
        exe = [sys.executable, "-m", "saldo"]
        children.append(subprocess.Popen([*exe, "web", "--workers", str(args.workers)]))  # noqa: S603
        children.append(subprocess.Popen([*exe, "worker"]))  # noqa: S603
        print(f"Saldo is running on {settings.public_url} — Ctrl-C stops everything.", flush=True)
        _wait_for_stop(children)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        servers.stop()
    return 0


def _wait_for_stop(children: list[subprocess.Popen[bytes]]) -> None:
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop and all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass


def cmd_staff_create(args: argparse.Namespace, settings: Settings) -> int:
    from saldo.services.staff import create_staff

    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat: ") != password:
            print("error: passwords differ", file=sys.stderr)
            return 2
    else:
        password = sys.stdin.readline().rstrip("\n")
    servers = _servers(settings)
    try:
        from saldo.services.migrate import migrate

        asyncio.run(migrate(quiet=True))
        staff = _run_db(lambda: create_staff(args.email, args.role, password, name=args.name))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        servers.stop()
    print(f"created {staff.role} {staff.email}; TOTP enrollment happens at first sign-in")
    return 0


def cmd_apikey_create(args: argparse.Namespace, settings: Settings) -> int:
    from saldo.services.apikeys import create_api_key
    from saldo.services.migrate import migrate

    servers = _servers(settings)
    try:
        asyncio.run(migrate(quiet=True))
        key = _run_db(lambda: create_api_key(args.name))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        servers.stop()
    print(key)
    return 0


def cmd_webhook_add(args: argparse.Namespace, settings: Settings) -> int:
    """`saldo webhook add URL --events a,b`: register an endpoint, print its secret once."""
    from saldo.errors import ValidationFailed
    from saldo.services.migrate import migrate
    from saldo.services.outbound import add_endpoint

    secret_key = settings.resolved_secret_key()
    servers = _servers(settings)
    try:
        asyncio.run(migrate(quiet=True))
        endpoint = _run_db(
            lambda: add_endpoint(args.url, args.events.split(","), secret_key=secret_key)
        )
    except ValidationFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        servers.stop()
    print(f"webhook endpoint #{endpoint.id} for {', '.join(endpoint.events)} at {endpoint.url}")
    print(f"signing secret (shown only now): {endpoint.secret}")
    return 0


# ---------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="saldo", description="Saldo collections platform")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="serve portal, back office and worker (embedded servers)")
    p.add_argument("--workers", type=int, default=1, help="web processes")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("web", help="serve the web app")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--host")
    p.add_argument("--port")
    p.set_defaults(func=cmd_web)

    p = sub.add_parser("worker", help="run the arq worker")
    p.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    p.set_defaults(func=cmd_worker)

    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)

    p = sub.add_parser("demo", help="seed the demo portfolio (on an empty database)")
    p.add_argument("--force", action="store_true", help="seed even if data exists (idempotent)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("import", help="import DEBTORS.csv and INVOICES.csv (idempotent upsert)")
    p.add_argument("debtors")
    p.add_argument("invoices")
    p.add_argument("--creditor", default="Saldo Demo")
    p.add_argument("--background", action="store_true", help="queue it for the worker")
    p.set_defaults(func=cmd_import)

    bank = sub.add_parser("bank", help="bank statements").add_subparsers(
        dest="action", required=True
    )
    p = bank.add_parser("import", help="import a bank statement CSV and match its lines")
    p.add_argument("file", metavar="FILE")
    p.set_defaults(func=cmd_bank_import)

    dunning = sub.add_parser("dunning", help="reminders, interest and segmentation").add_subparsers(
        dest="action", required=True
    )
    p = dunning.add_parser(
        "run", help="one day's run now: commitments, interest and fees, segments, reminders"
    )
    p.add_argument("--as-of", metavar="DATE", help="the day to run (YYYY-MM-DD; default today)")
    p.set_defaults(func=cmd_dunning_run)

    staff = sub.add_parser("staff", help="staff accounts").add_subparsers(
        dest="action", required=True
    )
    p = staff.add_parser("create", help="create a staff user (password from stdin if not a TTY)")
    p.add_argument("email")
    p.add_argument("--role", choices=["agent", "supervisor", "finance", "admin"], required=True)
    p.add_argument("--name", default="", help="the name the back office shows")
    p.set_defaults(func=cmd_staff_create)

    apikey = sub.add_parser("apikey", help="API keys").add_subparsers(dest="action", required=True)
    p = apikey.add_parser("create", help="print a new key for /api/v1")
    p.add_argument("name")
    p.set_defaults(func=cmd_apikey_create)

    webhook = sub.add_parser("webhook", help="outbound webhooks").add_subparsers(
        dest="action", required=True
    )
    p = webhook.add_parser("add", help="send signed events to URL; prints the signing secret")
    p.add_argument("url", metavar="URL")
    p.add_argument(
        "--events",
        required=True,
        help="comma-separated: payment.applied,plan.approved,dispute.resolved",
    )
    p.set_defaults(func=cmd_webhook_add)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return int(args.func(args, settings))


if __name__ == "__main__":
    sys.exit(main())
