"""Many queued reminders at once, built with set-based SQL (the crash test and the benchmark).

`seed_reminders(conn, n)` creates one creditor with an all-day, uncapped dunning policy (so
the guardrails let everything through whatever the hour), `n` debtors each with one account,
one open invoice and one queued `reminder_before_due` email, and returns the creditor id and
the rows' idempotency keys. One debtor in five reads English.
"""

from __future__ import annotations

import secrets
from typing import Any

SEED_SQL = [
    """INSERT INTO dunning_policy (creditor, segment, name, active, window_start, window_end,
                                   skip_sundays, skip_holidays, frequency_cap,
                                   frequency_window_days)
       VALUES ($1, 'standard', 'Carga', true, '00:00', '00:00', false, false, 0, 7)""",
    """INSERT INTO debtor (creditor, external_id, name, document_type, document_number, email,
                           language, timezone, country)
       SELECT $1, $2 || '-' || g, 'Deudor Núñez ' || g, 'DNI', (20000000 + g)::text,
              'deudor' || g || '.' || $2 || '@carga.example',
              CASE WHEN g % 5 = 0 THEN 'en' ELSE 'es' END,
              'America/Argentina/Buenos_Aires', 'AR'
       FROM generate_series(1, $3::int) g""",
    """INSERT INTO account (creditor, debtor, currency)
       SELECT $1, d.id, 'ARS' FROM debtor d WHERE d.creditor = $1""",
    """INSERT INTO invoice (creditor, account, number, currency, issue_date, due_date, total)
       SELECT $1, a.id, 'C-' || $2 || '-' || a.id, 'ARS', current_date - 25, current_date + 5,
              100000 + (a.id % 977) * 1000
       FROM account a WHERE a.creditor = $1""",
    """INSERT INTO ledger_entry (account, invoice, kind, amount, currency, effective_date,
                                 description, idempotency_key)
       SELECT i.account, i.id, 'charge', i.total, 'ARS', i.issue_date, 'Factura ' || i.number,
              'load:invoice:' || i.id
       FROM invoice i WHERE i.creditor = $1""",
    """INSERT INTO notification (debtor, account, channel, template, language, idempotency_key,
                                 invoice_ids, stage, step_offset, status, created_at)
       SELECT a.debtor, a.id, 'email', 'reminder_before_due', 'es',
              'load:' || $2 || ':' || a.debtor, jsonb_build_array(i.id), 'preventive', -5,
              'queued', now()
       FROM account a JOIN invoice i ON i.account = a.id WHERE a.creditor = $1""",
]


async def seed_reminders(conn: Any, n: int) -> tuple[int, list[str]]:
    """Queue `n` reminder emails (see the module docstring); returns (creditor id, keys)."""
    tag = secrets.token_hex(4)
    async with conn.transaction():
        creditor = await conn.fetchval(
            "INSERT INTO creditor (name, country) VALUES ($1, 'AR') RETURNING id",
            f"Acreedor de carga {tag}",
        )
        await conn.execute(SEED_SQL[0], creditor)
        await conn.execute(SEED_SQL[1], creditor, tag, n)
        for sql in SEED_SQL[2:]:
            arguments = (creditor, tag) if "$2" in sql else (creditor,)
            await conn.execute(sql, *arguments)
    keys = await conn.fetch(
        "SELECT idempotency_key FROM notification WHERE idempotency_key LIKE $1", f"load:{tag}:%"
    )
    return creditor, [r["idempotency_key"] for r in keys]
