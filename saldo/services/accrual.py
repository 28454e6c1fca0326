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
  `cap_bp` basis points of its principal, rounded down (`money.capped`; the fee is charged
  before that day's interest). `cap_bp` = 0 means no cap; a principal of zero or less leaves
  no room under a cap.

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
that idempotent, and invoices with nothing left to post for a day are skipped in SQL.

Each day is one transaction of set-based SQL (`saldo.services.accrual_sql`), whatever the
portfolio's size: the invoices with something left to post go into a temporary table, their
fee and interest of the day into another (`money`'s arithmetic, written in SQL), and one
INSERT … SELECT … ON CONFLICT DO NOTHING posts the entries, descriptions and `basis` built in
SQL, returning only the totals; no entry passes through Python.

Trusted inserts, as in the portfolio import: when the role may set `session_replication_role`
and no user trigger fires on INSERT into the ledger, the day's INSERT runs as `replica`,
skipping the per-row foreign key triggers. Just before, one statement key-share locks every
invoice and account the entries reference — the very lock each skipped check would have taken,
held as long — and if any of them is gone the INSERT runs with the checks instead. Otherwise
every day runs with the checks, only slower.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import asyncpg

from saldo.db import DB
from saldo.services import accrual_sql as q
from saldo.tables import FeePolicy

__all__ = ["CATCH_UP_DAYS", "AccrualRun", "accrue", "fee_key", "interest_key"]

#: How many days (as_of included) each run looks back for days that were never accrued.
CATCH_UP_DAYS: Final = 7
#: Memory for the day's grouped pass over the ledger and its hash joins.
WORK_MEM: Final = "256MB"
# JIT compiling the day's statements costs more than it saves (it made computing the entries
# of 250k accounts nearly twice as slow).
_SETTINGS: Final = (f"SET LOCAL work_mem = '{WORK_MEM}'", "SET LOCAL jit = off")


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


async def _may_skip_fk_triggers() -> bool:
    """Whether this role may post as `session_replication_role = replica` (superuser, or
    `GRANT SET ON PARAMETER session_replication_role`) and no user trigger fires on INSERT into
    the ledger (a replica session would skip it too)."""
    async with DB.transaction() as tx:
        triggers = await FeePolicy.raw(q.INSERT_TRIGGERS_SQL)
        if int(triggers[0]["n"]):
            return False
        conn = tx.connection
        try:
            async with conn.transaction():  # a savepoint: a refusal leaves the rest intact
                await conn.execute("SET LOCAL session_replication_role = replica")
                await conn.execute("SET LOCAL session_replication_role = origin")
        except asyncpg.InsufficientPrivilegeError:
            return False
    return True


async def _parents_locked() -> bool:
    """Key-share lock every invoice and account the day's entries reference, as the foreign
    key triggers would; False if any of them is gone."""
    [row] = await FeePolicy.raw(q.LOCK_PARENTS_SQL)
    return bool(
        row["invoices_locked"] == row["invoices"] and row["accounts_locked"] == row["accounts"]
    )


async def _accrue_day(
    day: dt.date, now: dt.datetime, *, trusted: bool
) -> tuple[Counter[str], Counter[str]]:
    """Post one day's interest and fees; returns (entries per kind, amount per kind:currency)."""
    counts: Counter[str] = Counter()
    amounts: Counter[str] = Counter()
    async with DB.transaction():
        for setting in _SETTINGS:
            await FeePolicy.raw(setting)
        await FeePolicy.raw(q.DUE_INVOICES_SQL, day)
        await FeePolicy.raw("ANALYZE accrual_due")
        await FeePolicy.raw(q.AMOUNTS_SQL, day)
        await FeePolicy.raw("ANALYZE accrual_amount")
        skip_checks = trusted and await _parents_locked()
        if skip_checks:
            await FeePolicy.raw("SET LOCAL session_replication_role = replica")
        posted = await FeePolicy.raw(q.POST_SQL, day, now)
        if skip_checks:
            await FeePolicy.raw("SET LOCAL session_replication_role = origin")
        await FeePolicy.raw(q.DROP_SQL)
    for row in posted:
        counts[str(row["kind"])] += int(row["entries"])
        amounts[f"{row['kind']}:{row['currency']}"] += int(row["amount"])
    return counts, amounts


async def accrue(
    *, as_of: dt.date, now: dt.datetime, catch_up_days: int = CATCH_UP_DAYS
) -> AccrualRun:
    """Post interest and fees for `as_of` and the days before it that were missed (see the
    module docstring). Idempotent: a second run for the same days posts nothing."""
    days = [as_of - dt.timedelta(days=n) for n in range(max(1, catch_up_days) - 1, -1, -1)]
    counts: Counter[str] = Counter()
    amounts: Counter[str] = Counter()
    trusted = await _may_skip_fk_triggers()
    for day in days:
        day_counts, day_amounts = await _accrue_day(day, now, trusted=trusted)
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
