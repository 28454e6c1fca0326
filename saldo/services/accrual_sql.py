"""SQL of the daily accrual (the rules are in `saldo.services.accrual`).

A day is a few set-based statements in one transaction, whatever the portfolio's size:

1. `DUE_INVOICES_SQL` fills the temporary table `accrual_due`: the overdue invoices that still
   miss the day's interest or their fee (two lookups by idempotency key each, so a day already
   accrued costs little), with their policy. The caller ANALYZEs it, so that the next step
   is planned for its real size.
2. `AMOUNTS_SQL` fills `accrual_amount`, one row per invoice with something to post: it sums
   those invoices' ledgers in one grouped pass and computes the fee and the interest. Rows
   are in invoice order, and so are the locks and inserts below: each page of a table or an
   index is then dirtied once, not once per row in random order (which, with more rows than
   shared buffers hold, writes pages out over and over).
3. `LOCK_PARENTS_SQL` key-share locks the invoices and accounts of those rows (only when the
   foreign key triggers are skipped, see `saldo.services.accrual`), after the caller
   ANALYZEd them (a hash join then, rather than a probe per row).
4. `POST_SQL` INSERTs the fee and interest entries, their description and their `basis` built
   with `jsonb_build_object`, … ON CONFLICT DO NOTHING, and returns only the totals per kind
   and currency.

The arithmetic is `saldo.money`'s, in exact `numeric`:

- `interest_sql`: `money.daily_interest(principal, rate, 1)`, i.e. `(principal × rate +
  500 000) div 1 000 000` (half-up), and 0 for a principal of zero or less;
- `capped_sql`: `money.capped(amount, charged, cap)`, i.e. `max(0, min(amount, cap −
  charged))`, and `amount` itself when there is no cap (NULL);
- `cap_sql`: `cap_bp` basis points of the principal, rounded down; NULL for `cap_bp` = 0, and
  0 for a principal of zero or less (nothing more may be charged on it).

Placeholders are `{}` for `Table.raw`: `DUE_INVOICES_SQL` and `AMOUNTS_SQL` take the day
(date), `POST_SQL` the day and `now` (timestamptz).
"""

from __future__ import annotations

from typing import Final

from saldo.rules.dunning import DEFAULT_SEGMENT
from saldo.services import pauses

__all__ = [
    "AMOUNTS_SQL",
    "DROP_SQL",
    "DUE_INVOICES_SQL",
    "INSERT_TRIGGERS_SQL",
    "LOCK_PARENTS_SQL",
    "POST_SQL",
    "cap_sql",
    "capped_sql",
    "interest_sql",
]

_TODAY: Final = "(SELECT today FROM params)"
_DAY_TEXT: Final = "(SELECT day_text FROM params)"
# Kinds that are not principal (a reversal counts as the kind of the entry it reverses).
_NOT_PRINCIPAL: Final = "ARRAY['interest', 'fee', 'payment', 'refund']"


def interest_sql(principal: str, rate: str) -> str:
    """One day of simple interest, rounded half-up, as `money.daily_interest(p, rate, 1)`."""
    return (
        f"(CASE WHEN ({principal}) > 0 "
        f"THEN div(({principal})::numeric * ({rate}) + 500000, 1000000) ELSE 0 END)"
    )


def capped_sql(amount: str, charged: str, cap: str) -> str:
    """What may still be charged of `amount` (`money.capped`); a NULL `cap` means no cap."""
    return f"coalesce(greatest(0, least(({amount}), ({cap}) - ({charged}))), ({amount}))"


def cap_sql(principal: str, cap_bp: str) -> str:
    """The cap of an invoice, or NULL when its policy has none (`cap_bp` = 0)."""
    return (
        f"(CASE WHEN ({cap_bp}) > 0 "
        f"THEN greatest(0, div(({principal})::numeric * ({cap_bp}), 10000)) END)"
    )


def _basis(extra: str, capped: str) -> str:
    """An entry's `basis`: what every entry states, then `extra`, and `"capped": true` when
    `capped` (two whole objects rather than `||`, which would rebuild the object once more)."""
    pairs = (
        "'policy', a.policy, 'due_date', to_char(a.due_date, 'YYYY-MM-DD'), "
        f"'grace_days', a.grace_days, 'days_past_due', {_TODAY} - a.due_date, "
        f"'cap_bp', a.cap_bp, {extra}"
    )
    return (
        f"CASE WHEN {capped} THEN jsonb_build_object({pairs}, 'capped', true) "
        f"ELSE jsonb_build_object({pairs}) END"
    )


_FEE_BASIS: Final = _basis(
    "'fixed_fee', a.fixed_fee, 'principal', a.principal", "a.fee < a.fixed_fee"
)
_INTEREST_BASIS: Final = _basis(
    f"'daily_rate_ppm', a.daily_rate_ppm, 'since', {_DAY_TEXT}, 'days', 1, "
    "'principal', a.open_principal",
    "a.interest < a.full_interest",
)

DUE_INVOICES_SQL: Final = f"""
CREATE TEMP TABLE accrual_due ON COMMIT DROP AS
WITH params AS (
    SELECT today, to_char(today, 'YYYY-MM-DD') AS day_text FROM (SELECT {{}}::date AS today) d
),
planned AS MATERIALIZED (
    SELECT DISTINCT ip.invoice FROM ({pauses.invoice_pauses_sql(_TODAY)}) ip
    WHERE ip.reason = 'plan'
),
candidates AS MATERIALIZED (
    SELECT i.id AS invoice, i.account, i.number, i.due_date, i.currency,
           p.id AS policy, p.daily_rate_ppm, p.fixed_fee, p.grace_days, p.cap_bp
    FROM invoice i
    JOIN account a ON a.id = i.account
    LEFT JOIN fee_policy pe
           ON pe.creditor = a.creditor AND pe.segment = a.segment AND pe.active
    LEFT JOIN fee_policy ps
           ON ps.creditor = a.creditor AND ps.segment = '{DEFAULT_SEGMENT}' AND ps.active
    JOIN fee_policy p ON p.id = coalesce(pe.id, ps.id)
    WHERE a.stage <> 'closed' AND (p.daily_rate_ppm > 0 OR p.fixed_fee > 0)
      AND i.due_date < {_TODAY} - p.grace_days
      AND NOT EXISTS (SELECT 1 FROM planned pl WHERE pl.invoice = i.id)
),
posted AS MATERIALIZED (
    SELECT c.*,
           EXISTS (SELECT 1 FROM ledger_entry f
                   WHERE f.idempotency_key = 'fee:' || c.invoice) AS has_fee,
           EXISTS (SELECT 1 FROM ledger_entry f
                   WHERE f.idempotency_key = 'interest:' || c.invoice || ':' || {_DAY_TEXT})
               AS has_interest
    FROM candidates c
)
SELECT * FROM posted c
WHERE (c.daily_rate_ppm > 0 AND NOT c.has_interest) OR (c.fixed_fee > 0 AND NOT c.has_fee)
"""

AMOUNTS_SQL: Final = f"""
CREATE TEMP TABLE accrual_amount ON COMMIT DROP AS
WITH params AS (
    SELECT today, to_char(today, 'YYYY-MM-DD') AS day_text FROM (SELECT {{}}::date AS today) d
),
disputed AS MATERIALIZED ({pauses.disputed_sql()}),
entries AS (
    SELECT e.invoice, e.amount,
           coalesce(CASE WHEN e.kind = 'reversal'
                         THEN (SELECT r.kind FROM ledger_entry r WHERE r.id = e.reverses) END,
                    e.kind) AS kind
    FROM ledger_entry e
    WHERE e.invoice IN (SELECT invoice FROM accrual_due) AND e.effective_date <= {_TODAY}
),
sums AS (
    SELECT invoice, sum(amount) AS open,
           coalesce(sum(amount) FILTER (WHERE kind <> ALL({_NOT_PRINCIPAL})), 0) AS principal,
           coalesce(sum(amount) FILTER (WHERE kind IN ('interest', 'fee')), 0) AS charged
    FROM entries
    GROUP BY invoice
),
due AS (
    SELECT c.*, s.principal::bigint AS principal, greatest(0, s.charged) AS charged,
           greatest(0, least(s.principal, s.open) - coalesce(ds.amount, 0))::bigint
               AS open_principal,
           {cap_sql("s.principal", "c.cap_bp")} AS cap
    FROM accrual_due c
    JOIN sums s ON s.invoice = c.invoice
    LEFT JOIN disputed ds ON ds.invoice = c.invoice
    WHERE s.open > 0
),
fees AS (
    SELECT d.*,
           CASE WHEN d.fixed_fee > 0 AND NOT d.has_fee AND d.open_principal > 0
                THEN {capped_sql("d.fixed_fee", "d.charged", "d.cap")} ELSE 0 END AS fee,
           CASE WHEN d.daily_rate_ppm > 0 AND NOT d.has_interest
                THEN {interest_sql("d.open_principal", "d.daily_rate_ppm")} ELSE 0 END
               AS full_interest
    FROM due d
),
amounts AS MATERIALIZED (
    SELECT f.*, {capped_sql("f.full_interest", "f.charged + f.fee", "f.cap")} AS interest
    FROM fees f
)
SELECT account, invoice, number, currency, due_date, policy, daily_rate_ppm, fixed_fee,
       grace_days, cap_bp, principal, open_principal, fee::bigint, full_interest::bigint,
       interest::bigint
FROM amounts
WHERE fee > 0 OR interest > 0
ORDER BY invoice
"""

LOCK_PARENTS_SQL: Final = """
WITH invoices AS (
    SELECT id FROM invoice WHERE id IN (SELECT invoice FROM accrual_amount)
    ORDER BY id FOR KEY SHARE
),
accounts AS (
    SELECT id FROM account WHERE id IN (SELECT account FROM accrual_amount)
    ORDER BY id FOR KEY SHARE
)
SELECT (SELECT count(*) FROM accrual_amount) AS invoices,
       (SELECT count(*) FROM invoices) AS invoices_locked,
       (SELECT count(DISTINCT account) FROM accrual_amount) AS accounts,
       (SELECT count(*) FROM accounts) AS accounts_locked
"""

POST_SQL: Final = f"""
WITH params AS (
    SELECT today, now, to_char(today, 'YYYY-MM-DD') AS day_text
    FROM (SELECT {{}}::date AS today, {{}}::timestamptz AS now) d
),
posted AS (
    INSERT INTO ledger_entry (account, invoice, kind, amount, currency, effective_date,
                              description, basis, idempotency_key, reverses, created_by,
                              created_at)
    SELECT a.account, a.invoice, x.kind, x.amount, a.currency, {_TODAY}, x.description,
           x.basis, x.key, NULL, 'accrual', (SELECT now FROM params)
    FROM accrual_amount a
    CROSS JOIN LATERAL (VALUES
        ('fee', a.fee, 'Cargo por la factura ' || a.number || ' vencida', {_FEE_BASIS},
         'fee:' || a.invoice),
        ('interest', a.interest, 'Interés por mora de la factura ' || a.number,
         {_INTEREST_BASIS}, 'interest:' || a.invoice || ':' || {_DAY_TEXT})
    ) AS x(kind, amount, description, basis, key)
    WHERE x.amount > 0
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING kind, amount, currency
)
SELECT kind, currency, count(*) AS entries, sum(amount)::bigint AS amount
FROM posted GROUP BY kind, currency
"""

DROP_SQL: Final = "DROP TABLE accrual_due, accrual_amount"

#: User triggers that fire on INSERT into the ledger (a replica session would skip them too).
INSERT_TRIGGERS_SQL: Final = """
SELECT count(*) AS n FROM pg_trigger
WHERE tgrelid = 'ledger_entry'::regclass AND NOT tgisinternal AND (tgtype & 4) <> 0
"""
