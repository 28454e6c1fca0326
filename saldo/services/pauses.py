"""What stops reminders: pauses of whole accounts and of single invoices, read set-based.

One question, asked by the dunning run when it queues reminders and by the outbox sender
again at send time: which of these accounts, and which of their invoices, may not be
reminded about today? `paused_items(account_ids, today=)` answers it for any number of
accounts in one query; the SQL builders below (`account_pauses_sql`, `invoice_pauses_sql`,
`disputed_sql`) are the same rules for queries that join them over a whole portfolio (the
dunning run), so the two can never disagree.

Whole account (`AccountPauses.reason`):

- `staff_pause` — staff paused the account: `Account.paused_until` is today or later
  (`Account.pause_reason` is the note they left);
- `promise` — an open promise to pay whose date is today or later (the rule of
  `saldo.services.promises.promises_in_force`): the pause lasts until the promised date;
- `payment_claim` — an open "ya pagué" report that names no invoice, while its
  `pause_until` is today or later;
- `pending_payment` — an online payment for the balance or a custom amount (its checkout
  names no invoice) that is still pending (`pending`, `in_process`, `authorized`) and not
  expired: a cash voucher not yet paid at the counter, a transfer being confirmed. A pending
  payment without an expiry counts for `PENDING_PAYMENT_DAYS` days after it was created.

Single invoices (`AccountPauses.invoices`, invoice id → reason):

- `dispute` — the open disputes on the invoice cover its whole open amount;
- `plan` — an active payment plan covers the invoice (its installments are reminded
  instead, with the `installment_due` template);
- `payment_claim` / `pending_payment` — as above, for a report or checkout that names the
  invoice.

Partly disputed invoices. Only the disputed amount stops being collected (the rule of
`saldo.services.disputes.disputed_amounts`): an invoice of 1000 with 300 in dispute is not
paused, and its reminders ask for the undisputed 700. `AccountPauses.disputed` carries the
amount under dispute of every invoice with an open dispute (never more than its open amount),
so a reminder can show the collectable rest.

A message is held back (`AccountPauses.blocks`) when its account is paused or ANY invoice it
is about is paused: a reminder never mentions a paused item. Two templates are exempt from the
pause that they themselves belong to: `promise_reminder` is not held back by the promise it
reminds of, and `installment_due` is not held back by the plan whose installment it announces
(it names no invoice; only whole-account pauses can stop it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from saldo.services.disputes import CLOSED_STATUSES as DISPUTE_CLOSED
from saldo.tables import Account

__all__ = [
    "ACCOUNT_REASONS",
    "EXEMPT",
    "INVOICE_REASONS",
    "PENDING_PAYMENT_DAYS",
    "PENDING_STATUSES",
    "AccountPauses",
    "account_pauses_sql",
    "disputed_sql",
    "invoice_pauses_sql",
    "paused_items",
]

#: Whole-account reasons, strongest first (the one shown when several apply).
ACCOUNT_REASONS: Final = ("staff_pause", "promise", "payment_claim", "pending_payment")
#: Invoice reasons, strongest first.
INVOICE_REASONS: Final = ("dispute", "plan", "payment_claim", "pending_payment")
#: Provider statuses of a payment that is on its way.
PENDING_STATUSES: Final = ("pending", "in_process", "authorized")
#: Checkout statuses after which nothing is pending any more.
CHECKOUT_FINAL: Final = ("approved", "rejected", "refunded", "charged_back", "cancelled")
#: How long a pending payment without an expiry holds reminders back.
PENDING_PAYMENT_DAYS: Final = 7
#: Templates that a pause of their own kind does not hold back.
EXEMPT: Final[Mapping[str, frozenset[str]]] = {
    "promise_reminder": frozenset({"promise"}),
    "installment_due": frozenset({"plan"}),
}
_MAX_ID: Final = 2**31 - 1


def _sql_list(values: Sequence[str]) -> str:
    """A constant text array literal (the values are module constants, never input)."""
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]::text[]"


def _ids_of(column: str) -> str:
    """The invoice ids of a JSONB list column, whatever else it may hold."""
    return (
        f"jsonb_array_elements_text(CASE jsonb_typeof({column}) WHEN 'array' THEN {column} "
        "ELSE '[]'::jsonb END)::int"
    )


def _has_no_ids(column: str) -> str:
    return f"(jsonb_typeof({column}) IS DISTINCT FROM 'array' OR jsonb_array_length({column}) = 0)"


def _only(column: str, accounts: str | None) -> str:
    return f" AND {column} IN ({accounts})" if accounts else ""


def _pending_checkouts(today: str, accounts: str | None) -> str:
    return f"""
        SELECT cs.account, cs.invoice_ids,
               max(coalesce(p.expires_at,
                            p.created_at + interval '{PENDING_PAYMENT_DAYS} days'))::date AS until
        FROM checkout_session cs JOIN payment p ON p.checkout = cs.id
        WHERE cs.status <> ALL({_sql_list(CHECKOUT_FINAL)})
          AND p.status = ANY({_sql_list(PENDING_STATUSES)})
          AND coalesce(p.expires_at, p.created_at + interval '{PENDING_PAYMENT_DAYS} days')
              >= {today}::timestamptz{_only("cs.account", accounts)}
        GROUP BY cs.id, cs.account, cs.invoice_ids"""


def account_pauses_sql(today: str, accounts: str | None = None) -> str:
    """Rows (account, reason, until, note): every whole-account pause in force on `today`.

    `today` is an SQL expression (e.g. "(SELECT today FROM params)"), `accounts` a query that
    lists account ids (e.g. "SELECT unnest(ids) FROM params"); without `accounts` it covers
    every account. An account may have several rows.
    """
    return f"""
        SELECT a.id AS account, 'staff_pause'::text AS reason, a.paused_until AS until,
               a.pause_reason AS note
        FROM account a WHERE a.paused_until >= {today}{_only("a.id", accounts)}
        UNION ALL
        SELECT pr.account, 'promise', max(pr.promised_date), ''
        FROM promise_to_pay pr
        WHERE pr.status = 'open' AND pr.promised_date >= {today}{_only("pr.account", accounts)}
        GROUP BY pr.account
        UNION ALL
        SELECT pc.account, 'payment_claim', max(pc.pause_until), ''
        FROM payment_claim pc
        WHERE pc.status = 'open' AND pc.pause_until >= {today} AND {_has_no_ids("pc.invoice_ids")}
              {_only("pc.account", accounts)}
        GROUP BY pc.account
        UNION ALL
        SELECT pp.account, 'pending_payment', max(pp.until), ''
        FROM ({_pending_checkouts(today, accounts)}) pp
        WHERE {_has_no_ids("pp.invoice_ids")}
        GROUP BY pp.account"""


def disputed_sql(accounts: str | None = None) -> str:
    """Rows (account, invoice, amount): the amount under open dispute per invoice (not yet
    capped at the invoice's open amount; the caller knows that amount)."""
    return f"""
        SELECT d.account, d.invoice, sum(d.amount)::bigint AS amount
        FROM dispute d
        WHERE d.invoice IS NOT NULL AND d.resolved_at IS NULL
          AND d.status <> ALL({_sql_list(DISPUTE_CLOSED)}){_only("d.account", accounts)}
        GROUP BY d.account, d.invoice"""


def invoice_pauses_sql(today: str, accounts: str | None = None) -> str:
    """Rows (account, invoice, reason, until): every invoice pause in force on `today`
    (`until` is NULL for pauses that last while their cause does)."""
    return f"""
        SELECT ds.account, ds.invoice, 'dispute'::text AS reason, NULL::date AS until
        FROM ({disputed_sql(accounts)}) ds
        WHERE ds.amount >= (SELECT coalesce(sum(e.amount), 0) FROM ledger_entry e
                            WHERE e.invoice = ds.invoice)
        UNION ALL
        SELECT pl.account, {_ids_of("pl.invoice_ids")}, 'plan', NULL::date
        FROM payment_plan pl WHERE pl.status = 'active'{_only("pl.account", accounts)}
        UNION ALL
        SELECT pc.account, {_ids_of("pc.invoice_ids")}, 'payment_claim', pc.pause_until
        FROM payment_claim pc
        WHERE pc.status = 'open' AND pc.pause_until >= {today}{_only("pc.account", accounts)}
        UNION ALL
        SELECT pp.account, {_ids_of("pp.invoice_ids")}, 'pending_payment', pp.until
        FROM ({_pending_checkouts(today, accounts)}) pp"""


@dataclass(frozen=True, slots=True)
class AccountPauses:
    """Everything that holds reminders of one account back on one day."""

    account_id: int
    reason: str | None = None  # whole-account pause, if any (see ACCOUNT_REASONS)
    until: dt.date | None = None  # its last day, when it has one
    note: str = ""  # staff's note for a staff pause
    account_reasons: frozenset[str] = frozenset()  # every whole-account pause in force
    invoices: Mapping[int, str] = field(default_factory=dict)  # paused invoice → reason
    invoice_reasons: Mapping[int, frozenset[str]] = field(default_factory=dict)
    disputed: Mapping[int, int] = field(default_factory=dict)  # invoice → amount in dispute

    @property
    def paused(self) -> bool:
        return self.reason is not None

    def blocks(self, template: str, invoice_ids: Collection[int]) -> str | None:
        """Why a message with `template` about `invoice_ids` may not go today, or None.

        The account's pause first, then the first paused invoice (in the order given);
        `EXEMPT` lists the pause a template is not held back by.
        """
        exempt = EXEMPT.get(template, frozenset())
        for reason in ACCOUNT_REASONS:
            if reason in self.account_reasons and reason not in exempt:
                return reason
        for invoice_id in invoice_ids:
            for reason in INVOICE_REASONS:
                if reason in self.invoice_reasons.get(int(invoice_id), ()) and reason not in exempt:
                    return reason
        return None


def _first(reasons: Collection[str], order: Sequence[str]) -> str | None:
    return next((r for r in order if r in reasons), None)


async def paused_items(account_ids: Sequence[int], *, today: dt.date) -> dict[int, AccountPauses]:
    """Pauses in force on `today` for each of `account_ids` (every id gets an entry; one
    without any pause gets an empty `AccountPauses`). Three queries however many accounts."""
    ids = sorted({int(a) for a in account_ids if 0 < int(a) <= _MAX_ID})
    if not ids:
        return {}
    params = "WITH params AS (SELECT {}::date AS today, {}::int[] AS ids) "
    today_sql, ids_sql = "(SELECT today FROM params)", "SELECT unnest(ids) FROM params"
    account_rows = await Account.raw(params + account_pauses_sql(today_sql, ids_sql), today, ids)
    invoice_rows = await Account.raw(params + invoice_pauses_sql(today_sql, ids_sql), today, ids)
    dispute_rows = await Account.raw(
        f"""WITH params AS (SELECT {{}}::int[] AS ids)
            SELECT ds.account, ds.invoice, least(ds.amount, greatest(0, (
                       SELECT coalesce(sum(e.amount), 0) FROM ledger_entry e
                       WHERE e.invoice = ds.invoice)))::bigint AS amount
            FROM ({disputed_sql("SELECT unnest(ids) FROM params")}) ds""",
        ids,
    )
    by_account: dict[int, list[Mapping[str, Any]]] = {}
    for row in account_rows:
        by_account.setdefault(int(row["account"]), []).append(row)
    by_invoice: dict[int, dict[int, set[str]]] = {}
    for row in invoice_rows:
        invoices = by_invoice.setdefault(int(row["account"]), {})
        invoices.setdefault(int(row["invoice"]), set()).add(str(row["reason"]))
    disputed: dict[int, dict[int, int]] = {}
    for row in dispute_rows:
        if int(row["amount"]) > 0:
            disputed.setdefault(int(row["account"]), {})[int(row["invoice"])] = int(row["amount"])
    found: dict[int, AccountPauses] = {}
    for account_id in ids:
        rows = by_account.get(account_id, [])
        reasons = frozenset(str(r["reason"]) for r in rows)
        reason = _first(reasons, ACCOUNT_REASONS)
        chosen = next((r for r in rows if r["reason"] == reason), None)
        invoice_reasons = {i: frozenset(r) for i, r in by_invoice.get(account_id, {}).items()}
        found[account_id] = AccountPauses(
            account_id=account_id,
            reason=reason,
            until=chosen["until"] if chosen else None,
            note=str(chosen["note"] or "") if chosen else "",
            account_reasons=reasons,
            invoices={i: _first(r, INVOICE_REASONS) or "" for i, r in invoice_reasons.items()},
            invoice_reasons=invoice_reasons,
            disputed=disputed.get(account_id, {}),
        )
    return found
