"""Nightly segmentation: every account's risk score and segment, in one set-based update.

`segment_accounts(as_of=)` computes, for every account, from the ledger and the history as of
`as_of` (entries effective on or before it):

- balance (the sum of its entries);
- days past due of its oldest open invoice (0 or less when nothing is overdue);
- kept and broken promises to pay, broken payment plans (all time);
- payments received in the 90 days up to `as_of` (payment entries, not their reversals);
- whether it was escalated to legal collection;

then the score and segment of `saldo.rules.risk` (its SQL form, the same rules) and writes
`Account.risk_score` and `Account.segment` where they changed. The back office's work queue
orders by them; dunning and fee policies are chosen by segment (falling back to "standard").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from saldo.db import DB
from saldo.rules import risk
from saldo.tables import Account

__all__ = ["PAYMENT_WINDOW_DAYS", "SegmentationRun", "account_features", "segment_accounts"]

PAYMENT_WINDOW_DAYS: Final = 90
_SCORE: Final = risk.score_sql(
    balance="f.balance",
    currency="f.currency",
    days_past_due="f.days_past_due",
    kept_promises="f.kept_promises",
    broken_promises="f.broken_promises",
    broken_plans="f.broken_plans",
    payments_90d="f.payments_90d",
)
_SEGMENT: Final = risk.segment_sql(
    balance="f.balance", currency="f.currency", days_past_due="f.days_past_due", legal="f.legal"
)

_TODAY: Final = "(SELECT today FROM params)"


def _features_sql(*, some: bool) -> str:
    """The features, score and segment of every account, or with `some` of the accounts the
    second parameter lists, or of the creditors the third one lists (NULL: no such limit).
    One pass over the ledger, grouped by account and invoice."""
    wanted = "SELECT a.id FROM account a, params p WHERE a.id = ANY(p.wanted)"
    creditors = "SELECT a.id FROM account a, params p WHERE a.creditor = ANY(p.creditors)"
    scope = (
        f"(SELECT wanted FROM params) IS NOT NULL AND {{col}} IN ({wanted}) "
        f"OR (SELECT creditors FROM params) IS NOT NULL AND {{col}} IN ({creditors})"
    )
    only_entries = f" AND ({scope.format(col='e.account')})" if some else ""
    only_accounts = f" WHERE {scope.format(col='a.id')}" if some else ""
    return f"""
    WITH params AS (SELECT {{}}::date AS today, {{}}::int[] AS wanted, {{}}::int[] AS creditors),
    per_invoice AS (
        SELECT e.account, e.invoice, sum(e.amount)::bigint AS amount,
               count(*) FILTER (
                   WHERE e.kind = 'payment' AND e.amount < 0
                     AND e.effective_date > {_TODAY} - {PAYMENT_WINDOW_DAYS}) AS payments
        FROM ledger_entry e
        WHERE e.effective_date <= {_TODAY}{only_entries}
        GROUP BY e.account, e.invoice
    ),
    ledgers AS (
        SELECT v.account, sum(v.amount)::bigint AS balance, sum(v.payments)::int AS payments,
               max({_TODAY} - i.due_date) FILTER (WHERE v.amount > 0) AS days_past_due
        FROM per_invoice v LEFT JOIN invoice i ON i.id = v.invoice
        GROUP BY v.account
    ),
    promises AS (
        SELECT account, count(*) FILTER (WHERE status = 'kept') AS kept,
               count(*) FILTER (WHERE status = 'broken') AS broken
        FROM promise_to_pay WHERE status IN ('kept', 'broken') GROUP BY account
    ),
    plans AS (
        SELECT account, count(*) AS broken FROM payment_plan WHERE status = 'broken'
        GROUP BY account
    ),
    features AS (
        SELECT a.id, a.currency,
               coalesce(l.balance, 0)::bigint AS balance,
               coalesce(l.days_past_due, 0)::int AS days_past_due,
               coalesce(pr.kept, 0)::int AS kept_promises,
               coalesce(pr.broken, 0)::int AS broken_promises,
               coalesce(pl.broken, 0)::int AS broken_plans,
               coalesce(l.payments, 0)::int AS payments_90d,
               (a.legal_escalated_at IS NOT NULL) AS legal
        FROM account a
        LEFT JOIN ledgers l ON l.account = a.id
        LEFT JOIN promises pr ON pr.account = a.id
        LEFT JOIN plans pl ON pl.account = a.id{only_accounts}
    ),
    decided AS (
        SELECT f.*, {_SCORE} AS score, {_SEGMENT} AS segment FROM features f
    )
"""


@dataclass(frozen=True, slots=True)
class SegmentationRun:
    as_of: dt.date
    changed: int  # accounts whose score or segment changed
    segments: Mapping[str, int] = field(default_factory=dict)  # changed accounts, new segment

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "changed": self.changed,
            "segments": dict(sorted(self.segments.items())),
        }


async def segment_accounts(
    *, as_of: dt.date, creditor_ids: Sequence[int] | None = None
) -> SegmentationRun:
    """Score and segment every account as of `as_of` (see the module docstring), or only the
    accounts of `creditor_ids` (after importing one creditor's portfolio, say)."""
    scoped = creditor_ids is not None
    async with DB.transaction():
        rows = await Account.raw(
            _features_sql(some=scoped)
            + """, changed AS (
                UPDATE account a SET risk_score = d.score, segment = d.segment
                FROM decided d
                WHERE a.id = d.id
                  AND (a.risk_score, a.segment) IS DISTINCT FROM (d.score, d.segment)
                RETURNING a.segment
            )
            SELECT segment, count(*) AS n FROM changed GROUP BY segment""",
            as_of,
            None,
            [int(c) for c in creditor_ids] if creditor_ids is not None else None,
        )
    segments = {str(r["segment"]): int(r["n"]) for r in rows}
    return SegmentationRun(as_of=as_of, changed=sum(segments.values()), segments=segments)


async def account_features(
    account_ids: list[int], *, as_of: dt.date
) -> dict[int, tuple[risk.Features, int, str]]:
    """Per account: its features as of `as_of` and the score and segment SQL gives them
    (what `segment_accounts` would write; for explaining a score and for tests)."""
    if not account_ids:
        return {}
    rows = await Account.raw(
        _features_sql(some=True) + " SELECT * FROM decided", as_of, account_ids, None
    )
    return {
        int(r["id"]): (
            risk.Features(
                balance=int(r["balance"]),
                currency=str(r["currency"]),
                days_past_due=int(r["days_past_due"]),
                kept_promises=int(r["kept_promises"]),
                broken_promises=int(r["broken_promises"]),
                broken_plans=int(r["broken_plans"]),
                payments_90d=int(r["payments_90d"]),
                legal=bool(r["legal"]),
            ),
            int(r["score"]),
            str(r["segment"]),
        )
        for r in rows
    }
