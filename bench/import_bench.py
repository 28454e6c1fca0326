"""Time `saldo import` on a generated portfolio: a first import, then the same files again.

    python bench/import_bench.py                  # 1M debtors, 10M invoice lines
    python bench/import_bench.py --small          # 20k debtors, 200k lines, a few seconds
    python bench/import_bench.py --debtors 250000 --lines 2500000

With DATABASE_URL set it uses that server, otherwise the embedded PostgreSQL under
$SALDO_DATA_DIR (as the tests do). Either way it imports into a database of its own, created
and dropped here. The generated files go to bench/data/<debtors>x<lines>/ and are deleted
afterwards unless --keep-data is given (the full size takes about 1 GB).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gen_portfolio import generate

from saldo.embedded import ensure_servers
from saldo.settings import Settings

DATA = Path(__file__).resolve().parent / "data"


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _timer(started: float) -> Callable[[str], None]:
    def progress(message: str) -> None:
        print(f"  {time.perf_counter() - started:7.1f} s  {message}", flush=True)

    return progress


async def _server_facts(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        version = await conn.fetchval("SHOW server_version")
        shared = await conn.fetchval("SHOW shared_buffers")
        wal = await conn.fetchval("SHOW max_wal_size")
    finally:
        await conn.close()
    return f"PostgreSQL {version} (shared_buffers {shared}, max_wal_size {wal})"


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _bench(url: str, debtors_csv: Path, invoices_csv: Path, debtors: int, lines: int) -> None:
    from saldo.db import DB
    from saldo.services.migrate import migrate
    from saldo.services.portfolio_import import import_portfolio

    DB.use(url)
    await migrate(quiet=True)
    results = []
    for label in ("first import", "re-import (nothing changed)"):
        print(f"{label}:", flush=True)
        started = time.perf_counter()
        results.append(
            await import_portfolio(
                debtors_csv, invoices_csv, creditor="Bench", progress=_timer(started)
            )
        )
    first, again = results
    print()
    invoices = first.invoices_inserted
    print(f"portfolio: {debtors:,} debtors, {lines:,} invoice lines, {invoices:,} invoices")
    print(
        f"first import: {first.seconds:.1f} s — "
        f"debtors {debtors / first.seconds:,.0f} rows/s, "
        f"invoice lines {lines / first.seconds:,.0f} rows/s"
        + ("" if first.foreign_key_checks_skipped else " (foreign key triggers on)")
    )
    print(
        f"re-import: {again.seconds:.1f} s — {again.debtors_unchanged:,} debtors and "
        f"{again.invoices_unchanged:,} invoices unchanged, {again.ledger_entries_posted} entries"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, default=1_000_000)
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--small", action="store_true", help="20k debtors, 200k lines")
    parser.add_argument("--keep-data", action="store_true", help="keep the generated files")
    args = parser.parse_args(argv)
    if args.small:
        args.debtors, args.lines = 20_000, 200_000

    out = DATA / f"{args.debtors}x{args.lines}"
    if not (out / "invoices.csv").is_file():
        started = time.perf_counter()
        generate(args.debtors, args.lines, out)
        print(f"generated {out} in {time.perf_counter() - started:.1f} s")

    settings = Settings.from_env(dotenv=None)
    servers = ensure_servers(settings.database_url, settings.redis_url, settings.data_path)
    admin_url = servers.database_url
    assert admin_url
    name = f"saldo_bench_{secrets.token_hex(4)}"
    try:
        asyncio.run(_admin(admin_url, f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0"))
        url = _with_database(admin_url, name)
        os.environ["DATABASE_URL"] = url
        where = "DATABASE_URL" if settings.database_url else "embedded"
        print(f"{asyncio.run(_server_facts(url))}, {where}, {os.cpu_count()} CPUs")
        asyncio.run(
            _bench(url, out / "debtors.csv", out / "invoices.csv", args.debtors, args.lines)
        )
    finally:
        asyncio.run(_admin(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        servers.stop()
        if not args.keep_data:
            shutil.rmtree(out, ignore_errors=True)
            with contextlib.suppress(OSError):
                DATA.rmdir()  # only when nothing else is cached there
    return 0


if __name__ == "__main__":
    sys.exit(main())
