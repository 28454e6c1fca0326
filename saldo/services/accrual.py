"""Late-payment interest and fees, posted to the ledger once per invoice and day.

`accrue(as_of=, now=)` applies each creditor's `FeePolicy` (the one of the account's segment,
else the creditor's "standard" one) to every overdue invoice:

- Interest: for each day `d` more than `grace_days` after the invoice's due date, simple
  interest at `daily_rate_ppm` on the invoice's open principal at the end of `d`
  (`money.daily_interest(principal, rate, 1)`, rounded half-up each day), posted as one
  `interest` entry effective `d` with idempotency key `interest:<invoice>:<d>`.
- Fee: `fixed_fee` once per invoice, on the first day past the grace days, as a `fee` entry
  with idempotency key `fee:<invoice>`.
- Cap: with `cap_bp` > 0, the interest and fees of an invoice together never exceed
  `cap_bp` basis points of its principal (`money.capped`; the fee is charged before that
  day's interest). `cap_bp` = 0 means no cap.

Open principal: the invoice's charges, credit notes, adjustments and write-offs, less what was
paid beyond the interest and fees already charged — payments cover interest and fees first
(as in art. 903 of Argentina's Civil and Commercial Code) — less the amount under open dispute
(disputed money accrues nothing while the dispute is open). Invoices covered by an active
payment plan accrue nothing: the plan's total was fixed when it was agreed. Closed accounts
accrue nothing.

Every entry carries its `basis` (policy, rate or fee, principal, days, grace, due date, cap),
which the debtor's statement explains (`statement.basis_text`).

Catching up: each run also accrues the `catch_up_days` − 1 days before `as_of` (default a
week), so days missed while the worker was down are posted with their own dates; the keys make
that idempotent, and invoices with nothing left to post for a day are skipped in SQL. Each day
is one SELECT of the overdue invoices and one bulk INSERT … ON CONFLICT DO NOTHING, in one
transaction.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from saldo import money
from saldo.db import DB
from saldo.rules.dunning import DEFAULT_SEGMENT
from saldo.services import pauses
from saldo.tables import FeePolicy

__all__ = ["CATCH_UP_DAYS", "AccrualRun", "accrue", "fee_key", "interest_key"]

#: How many days (as_of included) each run looks back for days that were never accrued.
CATCH_UP_DAYS: Final = 7
_BP: Final = 10_000
_TODAY: Final = "(SELECT today FROM params)"


def interest_key(invoice_id: int, day: dt.date) -> str:
    return f"interest:{invoice_id}:{day.isoformat()}"


def fee_key(invoice_id: int) -> str:
    return f"fee:{invoice_id}"


@dataclass(frozen=True, slots=True)
class AccrualRun:
    """What one `accrue` call posted (entries THIS call inserted)."""

    as_of: dt.date
    days: int
    interest_entries: int = 0
    fee_entries: int = 0
    interest: Mapping[str, int] = field(default_factory=dict)  # per currency, minor units
    fees: Mapping[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "days": self.days,
            "interest_entries": self.interest_entries,
            "fee_entries": self.fee_entries,
            "interest": dict(sorted(self.interest.items())),
            "fees": dict(sorted(self.fees.items())),
        }


_OVERDUE_SQL: Final = f"""
    WITH params AS (SELECT {{}}::date AS today),
    planned AS MATERIALIZED (
        SELECT DISTINCT ip.invoice FROM ({pauses.invoice_pauses_sql(_TODAY)}) ip
        WHERE ip.reason = 'plan'
    ),
    disputed AS MATERIALIZED ({pauses.disputed_sql()}),
    candidates AS (
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
          AND i.due_date < (SELECT today FROM params) - p.grace_days
          AND NOT EXISTS (SELECT 1 FROM planned pl WHERE pl.invoice = i.id)
    ),
    posted AS (
        SELECT c.*,
               EXISTS (SELECT 1 FROM ledger_entry f
                       WHERE f.idempotency_key = 'fee:' || c.invoice) AS has_fee,
               EXISTS (SELECT 1 FROM ledger_entry f
                       WHERE f.idempotency_key = 'interest:' || c.invoice || ':'
                             || (SELECT today FROM params)::text) AS has_interest
        FROM candidates c
    )
    SELECT c.*, s.open, s.principal, s.charged, coalesce(ds.amount, 0)::bigint AS disputed
    FROM posted c
    CROSS JOIN LATERAL (
        SELECT coalesce(sum(e.amount), 0)::bigint AS open,
               coalesce(sum(e.amount) FILTER (
                   WHERE coalesce(r.kind, e.kind) <> ALL(ARRAY['interest', 'fee', 'payment',
                                                              'refund'])), 0)::bigint
                   AS principal,
               coalesce(sum(e.amount) FILTER (
                   WHERE coalesce(r.kind, e.kind) IN ('interest', 'fee')), 0)::bigint
                   AS charged
        FROM ledger_entry e
        LEFT JOIN ledger_entry r ON e.kind = 'reversal' AND r.id = e.reverses
        WHERE e.invoice = c.invoice AND e.effective_date <= (SELECT today FROM params)
    ) s
    LEFT JOIN disputed ds ON ds.invoice = c.invoice
    WHERE s.open > 0
      AND ((c.daily_rate_ppm > 0 AND NOT c.has_interest) OR (c.fixed_fee > 0 AND NOT c.has_fee))
"""

_INSERT_SQL: Final = """
    INSERT INTO ledger_entry (account, invoice, kind, amount, currency, effective_date,
                              description, basis, idempotency_key, reverses, created_by,
                              created_at)
    SELECT u.account, u.invoice, u.kind, u.amount, u.currency, {}::date, u.description,
           u.basis::jsonb, u.key, NULL, 'accrual', {}
    FROM unnest({}::int[], {}::int[], {}::text[], {}::bigint[], {}::text[], {}::text[],
                {}::text[], {}::text[])
         AS u(account, invoice, kind, amount, currency, description, basis, key)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING kind, amount, currency
"""


def _entries(row: Mapping[str, Any], day: dt.date) -> list[tuple[str, int, str, dict[str, Any]]]:
    """(kind, amount, description, basis) of what `row`'s invoice accrues on `day`."""
    principal = int(row["principal"])
    open_principal = max(0, min(principal, int(row["open"])) - int(row["disputed"]))
    cap_bp = int(row["cap_bp"])
    cap = principal * cap_bp // _BP if cap_bp > 0 else None
    charged = max(0, int(row["charged"]))
    due: dt.date = row["due_date"]
    common = {
        "policy": int(row["policy"]),
        "due_date": due.isoformat(),
        "grace_days": int(row["grace_days"]),
        "days_past_due": (day - due).days,
        "cap_bp": cap_bp,
    }
    found: list[tuple[str, int, str, dict[str, Any]]] = []
    fixed = int(row["fixed_fee"])
    if fixed > 0 and not row["has_fee"] and open_principal > 0:
        fee = fixed if cap is None else money.capped(fixed, charged, cap)
        if fee > 0:
            basis = {**common, "fixed_fee": fixed, "principal": principal}
            if fee < fixed:
                basis["capped"] = True
            found.append(("fee", fee, f"Cargo por la factura {row['number']} vencida", basis))
            charged += fee
    rate = int(row["daily_rate_ppm"])
    if rate > 0 and not row["has_interest"]:
        full = money.daily_interest(open_principal, rate, 1)
        interest = full if cap is None else money.capped(full, charged, cap)
        if interest > 0:
            basis = {
                **common,
                "daily_rate_ppm": rate,
                "since": day.isoformat(),
                "days": 1,
                "principal": open_principal,
            }
            if interest < full:
                basis["capped"] = True
            found.append(
                ("interest", interest, f"Interés por mora de la factura {row['number']}", basis)
            )
    return found


async def _accrue_day(day: dt.date, now: dt.datetime) -> tuple[Counter[str], Counter[str]]:
    """Post one day's interest and fees; returns (entries per kind, amount per kind:currency)."""
    counts: Counter[str] = Counter()
    amounts: Counter[str] = Counter()
    async with DB.transaction():
        rows = await FeePolicy.raw(_OVERDUE_SQL, day)
        columns: list[list[Any]] = [[] for _ in range(8)]
        for row in rows:
            for kind, amount, description, basis in _entries(row, day):
                invoice_id = int(row["invoice"])
                key = fee_key(invoice_id) if kind == "fee" else interest_key(invoice_id, day)
                values = (
                    int(row["account"]),
                    int(row["invoice"]),
                    kind,
                    amount,
                    str(row["currency"]),
                    description,
                    json.dumps(basis),
                    key,
                )
                for column, value in zip(columns, values, strict=True):
                    column.append(value)
        if not columns[0]:
            return counts, amounts
        inserted = await FeePolicy.raw(_INSERT_SQL, day, now, *columns)
    for entry in inserted:
        counts[str(entry["kind"])] += 1
        amounts[f"{entry['kind']}:{entry['currency']}"] += int(entry["amount"])
    return counts, amounts


async def accrue(
    *, as_of: dt.date, now: dt.datetime, catch_up_days: int = CATCH_UP_DAYS
) -> AccrualRun:
    """Post interest and fees for `as_of` and the days before it that were missed (see the
    module docstring). Idempotent: a second run for the same days posts nothing."""
    days = [as_of - dt.timedelta(days=n) for n in range(max(1, catch_up_days) - 1, -1, -1)]
    counts: Counter[str] = Counter()
    amounts: Counter[str] = Counter()
    for day in days:
        day_counts, day_amounts = await _accrue_day(day, now)
        counts.update(day_counts)
        amounts.update(day_amounts)
    return AccrualRun(
        as_of=as_of,
        days=len(days),
        interest_entries=counts["interest"],
        fee_entries=counts["fee"],
        interest={k.split(":", 1)[1]: v for k, v in amounts.items() if k.startswith("interest:")},
        fees={k.split(":", 1)[1]: v for k, v in amounts.items() if k.startswith("fee:")},
    )
