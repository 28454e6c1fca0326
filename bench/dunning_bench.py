"""Time the daily dunning run (and the nightly segmentation) on a generated portfolio.

    python bench/dunning_bench.py                 # 1M accounts, about 2.5M invoices
    python bench/dunning_bench.py --small         # 20k accounts, a few seconds
    python bench/dunning_bench.py --accounts 250000 --accrual

The portfolio is built in the database with set-based SQL (generate_series), not through the
CSV import (`bench/import_bench.py` times that): two creditors (Argentina and Mexico), one
account per debtor, 1 to 4 invoices each with due dates spread from 300 days before the run
day to 120 days after it, about a third of them paid, and the things that pause reminders
sprinkled over it — open disputes, active plans, promises, "ya pagué" reports, staff pauses
and pending online payments — so the pause joins have real work to do.

Then it runs `run_dunning` for the day (and once more: the idempotent re-run), prints the
seconds and the rows decided, and times `segment_accounts` (every account's score and
segment) and, with --accrual, one day of `accrue` with a fee policy on the Argentine creditor,
then the same day again (what each already accrued day of a run's catch-up costs). On a
database kept after an --accrual run that day is already posted: both runs post nothing.

With DATABASE_URL set it uses that server, otherwise the embedded PostgreSQL under
$SALDO_DATA_DIR (as the tests do). Either way it builds its own database, created and dropped
here (--keep keeps it and prints its name; --reuse NAME runs on such a kept database).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import secrets
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from saldo.embedded import ensure_servers
from saldo.settings import Settings

AS_OF = dt.date(2027, 3, 15)


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _portfolio_sql(accounts: int, as_of: dt.date) -> list[tuple[str, str]]:
    """(what, SQL) steps that build the portfolio; `accounts` debtors with one account each."""
    day = f"DATE '{as_of.isoformat()}'"
    return [
        (
            "creditors",
            """INSERT INTO creditor (name, country) VALUES ('Bench Conecta', 'AR'),
                                                           ('Bench Aztlán', 'MX')""",
        ),
        (
            "debtors",
            f"""INSERT INTO debtor (creditor, external_id, name, document_type, document_number,
                                    email, phone, whatsapp, language, timezone, country)
                SELECT c.id, 'D' || g, 'Deudor Núñez ' || g, 'DNI', (20000000 + g)::text,
                       CASE WHEN g % 7 <> 0 THEN 'deudor' || g || '@ejemplo.com' ELSE '' END,
                       '+54911' || (10000000 + g),
                       CASE WHEN g % 3 <> 0 THEN '+54911' || (10000000 + g) ELSE '' END,
                       'es',
                       CASE WHEN g % 10 < 7 THEN 'America/Argentina/Buenos_Aires'
                            ELSE 'America/Mexico_City' END,
                       CASE WHEN g % 10 < 7 THEN 'AR' ELSE 'MX' END
                FROM generate_series(1, {accounts}) g
                JOIN creditor c ON c.name = CASE WHEN g % 10 < 7 THEN 'Bench Conecta'
                                                 ELSE 'Bench Aztlán' END""",
        ),
        (
            "accounts",
            """INSERT INTO account (creditor, debtor, currency)
               SELECT d.creditor, d.id, CASE d.country WHEN 'AR' THEN 'ARS' ELSE 'MXN' END
               FROM debtor d""",
        ),
        (
            "invoices",
            f"""INSERT INTO invoice (creditor, account, number, currency, issue_date, due_date,
                                     total)
                SELECT a.creditor, a.id, 'F' || a.id || '-' || n, a.currency,
                       {day} + due.offset_days - 30, {day} + due.offset_days,
                       1000 + (hashint4(a.id * 7 + n) & 1048575)
                FROM account a
                CROSS JOIN LATERAL generate_series(1, 1 + a.id % 4) AS n
                CROSS JOIN LATERAL (
                    SELECT (hashint4(a.id * 31 + n) & 2147483647) % 421 - 300 AS offset_days
                ) due""",
        ),
        (
            "charges",
            """INSERT INTO ledger_entry (account, invoice, kind, amount, currency, effective_date,
                                         description, idempotency_key)
               SELECT i.account, i.id, 'charge', i.total, i.currency, i.issue_date,
                      'Factura ' || i.number, 'bench:invoice:' || i.id
               FROM invoice i""",
        ),
        (
            "payments (a third of the invoices)",
            """INSERT INTO ledger_entry (account, invoice, kind, amount, currency, effective_date,
                                         description, idempotency_key)
               SELECT i.account, i.id, 'payment', -i.total, i.currency, i.due_date - 2,
                      'Pago', 'bench:payment:' || i.id
               FROM invoice i WHERE i.id % 3 = 0""",
        ),
        (
            "disputes (1 % of the invoices)",
            """INSERT INTO dispute (account, invoice, amount, reason_code, status)
               SELECT i.account, i.id, CASE WHEN i.id % 2 = 0 THEN i.total ELSE i.total / 3 END,
                      'wrong_amount', 'open'
               FROM invoice i WHERE i.id % 100 = 1""",
        ),
        (
            "active plans (0.5 % of the accounts)",
            f"""INSERT INTO payment_plan (account, status, total, installments_count, first_date,
                                          invoice_ids)
                SELECT a.id, 'active', 1000, 3, {day} + 10,
                       (SELECT jsonb_agg(i.id) FROM invoice i WHERE i.account = a.id)
                FROM account a WHERE a.id % 200 = 3""",
        ),
        (
            "promises, claims, staff pauses, pending payments",
            f"""WITH promises AS (
                    INSERT INTO promise_to_pay (account, amount, promised_date, status)
                    SELECT a.id, 500, {day} + 5, 'open' FROM account a WHERE a.id % 200 = 5
                ), claims AS (
                    INSERT INTO payment_claim (account, amount, paid_on, invoice_ids, status,
                                               pause_until)
                    SELECT i.account, i.total, {day} - 2, jsonb_build_array(i.id), 'open',
                           {day} + 5
                    FROM invoice i WHERE i.id % 500 = 7
                ), paused AS (
                    UPDATE account SET paused_until = {day} + 3, pause_reason = 'Bench'
                    WHERE id % 300 = 11
                ), checkouts AS (
                    INSERT INTO checkout_session (account, amount, currency, invoice_ids,
                                                  status, choice)
                    SELECT i.account, i.total, i.currency, jsonb_build_array(i.id), 'pending',
                           'invoices'
                    FROM invoice i WHERE i.id % 500 = 13
                    RETURNING id, account, amount, currency
                )
                INSERT INTO payment (account, provider, provider_payment_id, amount, currency,
                                     status, checkout, expires_at)
                SELECT account, 'simulated', 'bench-' || id, amount, currency, 'pending', id,
                       {day} + 2
                FROM checkouts""",
        ),
        ("analyze", "ANALYZE"),
    ]


async def _build(url: str, accounts: int) -> None:
    conn = await asyncpg.connect(url)
    try:
        for what, sql in _portfolio_sql(accounts, AS_OF):
            started = time.perf_counter()
            await conn.execute(sql)
            print(f"  built {what} in {time.perf_counter() - started:.1f} s", flush=True)
    finally:
        await conn.close()


async def _counts(url: str) -> tuple[int, int]:
    conn = await asyncpg.connect(url)
    try:
        accounts = await conn.fetchval("SELECT count(*) FROM account")
        invoices = await conn.fetchval("SELECT count(*) FROM invoice")
    finally:
        await conn.close()
    return int(accounts), int(invoices)


async def _server_facts(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        version = await conn.fetchval("SHOW server_version")
        shared = await conn.fetchval("SHOW shared_buffers")
        work_mem = await conn.fetchval("SHOW work_mem")
    finally:
        await conn.close()
    return f"PostgreSQL {version} (shared_buffers {shared}, work_mem {work_mem})"


async def _bench(url: str, *, build: int | None, accrual: bool) -> None:
    from saldo.db import DB
    from saldo.services.migrate import migrate

    DB.use(url)
    if build is not None:
        await migrate(quiet=True)
        print(f"building a portfolio of {build:,} accounts:", flush=True)
        await _build(url, build)
    accounts, invoices = await _counts(url)
    print(f"portfolio: {accounts:,} accounts, {invoices:,} invoices; run day {AS_OF}", flush=True)
    await DB.start_connection_pool(min_size=1, max_size=4)
    try:
        await _timed_runs(accrual=accrual)
    finally:
        await DB.close_connection_pool()


async def _timed_runs(*, accrual: bool) -> None:
    from saldo.services.accrual import accrue
    from saldo.services.dunning import run_dunning
    from saldo.services.segmentation import segment_accounts
    from saldo.tables import FeePolicy

    now = dt.datetime.combine(AS_OF, dt.time(4), tzinfo=dt.UTC)
    started = time.perf_counter()
    segmented = await segment_accounts(as_of=AS_OF)
    seconds = time.perf_counter() - started
    print(
        f"segment_accounts: {seconds:.1f} s — {segmented.changed:,} accounts scored "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(segmented.segments.items()))})",
        flush=True,
    )
    for label in ("run_dunning", "run_dunning again (idempotent)"):
        started = time.perf_counter()
        result = await run_dunning(as_of=AS_OF, now=now)
        seconds = time.perf_counter() - started
        queued = ", ".join(f"{c} {t} {n:,}" for (c, t), n in sorted(result.queued.items()))
        print(
            f"{label}: {seconds:.1f} s — {result.decided:,} invoice steps decided, "
            f"{result.messages:,} messages queued ({queued or 'none'}), "
            f"{result.escalated:,} escalated to legal, {result.stage_changes:,} stage changes",
            flush=True,
        )
    if accrual:
        rows = await FeePolicy.raw(
            """INSERT INTO fee_policy (creditor, segment, daily_rate_ppm, fixed_fee, grace_days,
                                       cap_bp, active)
               SELECT id, 'standard', 500, 4000, 5, 2000, true FROM creditor
               WHERE name = 'Bench Conecta'
               ON CONFLICT (creditor, segment) DO NOTHING RETURNING id"""
        )
        del rows
        for label in ("accrue (one day)", "accrue again (idempotent)"):
            started = time.perf_counter()
            accrued = await accrue(as_of=AS_OF, now=now, catch_up_days=1)
            seconds = time.perf_counter() - started
            entries = accrued.interest_entries + accrued.fee_entries
            print(
                f"{label}: {seconds:.1f} s — {accrued.interest_entries:,} interest and "
                f"{accrued.fee_entries:,} fee entries ({entries / seconds:,.0f} entries/s)",
                flush=True,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--small", action="store_true", help="20k accounts")
    parser.add_argument("--accrual", action="store_true", help="also time one day of accrual")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", metavar="NAME", help="run on a database kept with --keep")
    args = parser.parse_args(argv)
    if args.small:
        args.accounts = 20_000

    settings = Settings.from_env(dotenv=None)
    servers = ensure_servers(settings.database_url, settings.redis_url, settings.data_path)
    admin_url = servers.database_url
    assert admin_url
    name = args.reuse or f"saldo_dunning_bench_{secrets.token_hex(4)}"
    drop = not (args.keep or args.reuse)
    try:
        if not args.reuse:
            asyncio.run(
                _admin(admin_url, f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0")
            )
        url = _with_database(admin_url, name)
        os.environ["DATABASE_URL"] = url
        where = "DATABASE_URL" if settings.database_url else "embedded"
        print(f"{asyncio.run(_server_facts(url))}, {where}, {os.cpu_count()} CPUs", flush=True)
        started = time.perf_counter()
        asyncio.run(_bench(url, build=None if args.reuse else args.accounts, accrual=args.accrual))
        print(f"total: {time.perf_counter() - started:.1f} s")
        if not drop:
            print(f"database kept: {name} (rerun with --reuse {name})")
    finally:
        if drop:
            asyncio.run(_admin(admin_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        servers.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
