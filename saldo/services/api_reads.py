"""What `/api/v1` reads: balances, and payments, plans and disputes since a cursor.

Amounts are integers in the minor unit of the `currency` next to them (centavos for ARS, pesos
for CLP), as everywhere in Saldo. A balance is the sum of the account's ledger; `overdue` is
the open amount of its invoices past due in the debtor's time zone.

Lists page forward by id with an opaque cursor: `since` takes the `next_cursor` of the previous
page and the page holds the items created after it, oldest first, at most `limit` of them.
`next_cursor` is always set (the last item's, or `since` again on an empty page), so a client
keeps polling with it; pages never overlap and leave no gap between them. A cursor names its
list: one from /payments is refused by /plans. Ids are given out when a row is inserted, so a
row whose (millisecond-long) transaction commits after a higher id was already listed is passed
over, and an item is listed once, as it was when read. What changes later (a payment applied, a
plan approved, a dispute resolved) is announced by the outbound webhooks
(`saldo.services.outbound`), which deliver every event at least once.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import msgspec

from saldo.errors import NotFound, ValidationFailed
from saldo.services.statement import local_today
from saldo.tables import Account

__all__ = [
    "DISPUTE_STATUSES",
    "MAX_LIMIT",
    "PLAN_STATUSES",
    "AccountBalance",
    "Allocation",
    "ApiDispute",
    "ApiPayment",
    "ApiPlan",
    "DebtorBalance",
    "DisputePage",
    "DisputeStatus",
    "OpenInvoice",
    "PaymentPage",
    "PlanInstallment",
    "PlanPage",
    "PlanStatus",
    "account_balance",
    "debtor_balance",
    "decode_cursor",
    "encode_cursor",
    "list_disputes",
    "list_payments",
    "list_plans",
]

MAX_LIMIT: Final = 500
_ID_MAX: Final = 2**31 - 1  # serial ids

PlanStatus = Literal[
    "proposed", "offered", "active", "rejected", "countered", "declined", "completed", "broken"
]
DisputeStatus = Literal[
    "open", "in_review", "waiting_debtor", "accepted", "partially_accepted", "rejected"
]
PLAN_STATUSES: Final = frozenset(PlanStatus.__args__)  # type: ignore[attr-defined]
DISPUTE_STATUSES: Final = frozenset(DisputeStatus.__args__)  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------- shapes


class OpenInvoice(msgspec.Struct, kw_only=True):
    invoice_id: int
    invoice_number: str
    issue_date: dt.date
    due_date: dt.date
    total: int
    open: int  # what is left to pay on it


class AccountBalance(msgspec.Struct, kw_only=True):
    account_id: int
    creditor: str
    debtor_external_id: str
    debtor_name: str
    currency: str
    stage: str
    balance: int  # the ledger's sum; negative when the debtor has credit
    overdue: int
    as_of: dt.date  # "today" in the debtor's time zone, which `overdue` is measured against
    open_invoices: list[OpenInvoice]


class DebtorBalance(msgspec.Struct, kw_only=True):
    creditor: str
    external_id: str
    name: str
    accounts: list[AccountBalance]  # one per currency


class Allocation(msgspec.Struct, kw_only=True):
    invoice_id: int | None  # None: kept as credit on the account
    invoice_number: str | None
    amount: int


class ApiPayment(msgspec.Struct, kw_only=True):
    id: int
    account_id: int | None  # None while nobody knows whose it is (unapplied)
    creditor: str | None
    debtor_external_id: str | None
    provider: str
    provider_payment_id: str
    amount: int
    currency: str
    status: str
    method: str
    received_at: dt.datetime | None
    created_at: dt.datetime
    applied: bool  # posted to the ledger
    reversed: bool  # posted, then reversed (refund, chargeback)
    allocations: list[Allocation]


class PaymentPage(msgspec.Struct, kw_only=True):
    items: list[ApiPayment]
    next_cursor: str
    has_more: bool


class PlanInstallment(msgspec.Struct, kw_only=True):
    number: int  # 0 is the down payment
    due_date: dt.date
    amount: int


class ApiPlan(msgspec.Struct, kw_only=True):
    id: int
    account_id: int
    creditor: str
    debtor_external_id: str
    currency: str
    status: str
    proposed_by: str
    total: int
    down_payment: int
    installments_count: int
    frequency: str
    first_date: dt.date
    invoice_ids: list[int]
    created_at: dt.datetime
    decided_at: dt.datetime | None
    ended_at: dt.datetime | None
    installments: list[PlanInstallment]  # the schedule, once the plan is active


class PlanPage(msgspec.Struct, kw_only=True):
    items: list[ApiPlan]
    next_cursor: str
    has_more: bool


class ApiDispute(msgspec.Struct, kw_only=True):
    id: int
    account_id: int
    creditor: str
    debtor_external_id: str
    currency: str
    invoice_id: int | None
    invoice_number: str | None
    amount: int  # disputed
    reason_code: str
    status: str
    resolved_amount: int | None  # credited by the resolution
    created_at: dt.datetime
    resolved_at: dt.datetime | None


class DisputePage(msgspec.Struct, kw_only=True):
    items: list[ApiDispute]
    next_cursor: str
    has_more: bool


# ---------------------------------------------------------------------------- cursors


def encode_cursor(kind: str, last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str | None) -> int:
    """The id a cursor stands for (0 without one). Raises `ValidationFailed` (field `since`)."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeError, ValueError):
        text = ""
    name, _, number = text.partition(":")
    if name != kind or not number.isdigit() or not number.isascii() or int(number) > _ID_MAX:
        raise ValidationFailed(
            f"since: not a cursor of this list (use the next_cursor /{kind} answered)",
            field="since",
        )
    return int(number)


def _limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit: between 1 and {MAX_LIMIT}", field="limit")
    return limit


def _page_end(kind: str, rows: Sequence[Mapping[str, Any]], after: int, limit: int) -> str:
    last = int(rows[min(len(rows), limit) - 1]["id"]) if rows else after
    return encode_cursor(kind, last)


# ---------------------------------------------------------------------------- balances


def _plain_text(value: str) -> bool:
    """Whether PostgreSQL can be asked about `value` at all (no NUL, valid Unicode)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_ACCOUNT_SQL = """
SELECT a.id, a.currency, a.stage, c.name AS creditor, d.external_id, d.name, d.timezone,
       coalesce((SELECT sum(e.amount) FROM ledger_entry e WHERE e.account = a.id), 0)::bigint
           AS balance
FROM account a JOIN creditor c ON c.id = a.creditor JOIN debtor d ON d.id = a.debtor
"""


async def _balances(rows: Sequence[Mapping[str, Any]], now: dt.datetime) -> list[AccountBalance]:
    ids = [int(r["id"]) for r in rows]
    invoices = await Account.raw(
        """
        SELECT i.account, i.id, i.number, i.issue_date, i.due_date, i.total,
               sum(e.amount)::bigint AS open
        FROM invoice i JOIN ledger_entry e ON e.invoice = i.id
        WHERE i.account = ANY({}::int[])
        GROUP BY i.id
        HAVING sum(e.amount) > 0
        ORDER BY i.due_date, i.id
        """,
        ids,
    )
    by_account: dict[int, list[OpenInvoice]] = {i: [] for i in ids}
    for r in invoices:
        by_account[int(r["account"])].append(
            OpenInvoice(
                invoice_id=int(r["id"]),
                invoice_number=str(r["number"]),
                issue_date=r["issue_date"],
                due_date=r["due_date"],
                total=int(r["total"]),
                open=int(r["open"]),
            )
        )
    result = []
    for r in rows:
        today = local_today(now, str(r["timezone"]))
        open_invoices = by_account[int(r["id"])]
        result.append(
            AccountBalance(
                account_id=int(r["id"]),
                creditor=str(r["creditor"]),
                debtor_external_id=str(r["external_id"]),
                debtor_name=str(r["name"]),
                currency=str(r["currency"]),
                stage=str(r["stage"]),
                balance=int(r["balance"]),
                overdue=sum(i.open for i in open_invoices if i.due_date < today),
                as_of=today,
                open_invoices=open_invoices,
            )
        )
    return result


async def account_balance(account_id: int, *, now: dt.datetime) -> AccountBalance:
    """One account's balance and open invoices. Raises `NotFound`."""
    if not 0 < account_id <= _ID_MAX:
        raise NotFound(f"account {account_id} does not exist")
    rows = await Account.raw(_ACCOUNT_SQL + " WHERE a.id = {}", account_id)
    if not rows:
        raise NotFound(f"account {account_id} does not exist")
    return (await _balances(rows, now))[0]


async def debtor_balance(creditor: str, external_id: str, *, now: dt.datetime) -> DebtorBalance:
    """A debtor's balances (one account per currency), found by the creditor's name and the
    creditor's own id of the debtor. Raises `NotFound`."""
    missing = NotFound(f"debtor {external_id!r} of creditor {creditor!r} does not exist")
    if not (_plain_text(creditor) and _plain_text(external_id)):
        raise missing
    debtors = await Account.raw(
        """SELECT d.id, d.name, c.name AS creditor FROM debtor d
           JOIN creditor c ON c.id = d.creditor
           WHERE c.name = {} AND d.external_id = {}""",
        creditor,
        external_id,
    )
    if not debtors:
        raise missing
    debtor = debtors[0]
    rows = await Account.raw(_ACCOUNT_SQL + " WHERE a.debtor = {} ORDER BY a.id", debtor["id"])
    return DebtorBalance(
        creditor=str(debtor["creditor"]),
        external_id=external_id,
        name=str(debtor["name"]),
        accounts=await _balances(rows, now),
    )


# ---------------------------------------------------------------------------- payments


async def list_payments(*, since: str | None, limit: int) -> PaymentPage:
    """Payments recorded after the cursor, oldest first."""
    after, limit = decode_cursor("payments", since), _limit(limit)
    rows = await Account.raw(
        """
        SELECT p.id, p.account, c.name AS creditor, d.external_id, p.provider,
               p.provider_payment_id, p.amount, p.currency, p.status, p.method, p.received_at,
               p.created_at,
               EXISTS (SELECT 1 FROM payment_posting g
                       WHERE g.payment = p.id AND g.effect = 'apply') AS applied,
               EXISTS (SELECT 1 FROM payment_posting g
                       WHERE g.payment = p.id AND g.effect = 'reverse') AS reversed
        FROM payment p
        LEFT JOIN account a ON a.id = p.account
        LEFT JOIN creditor c ON c.id = a.creditor
        LEFT JOIN debtor d ON d.id = a.debtor
        WHERE p.id > {}
        ORDER BY p.id
        LIMIT {}
        """,
        after,
        limit + 1,
    )
    page = rows[:limit]
    allocations = await Account.raw(
        """SELECT pa.payment, pa.invoice, i.number, pa.amount FROM payment_allocation pa
           LEFT JOIN invoice i ON i.id = pa.invoice
           WHERE pa.payment = ANY({}::int[]) ORDER BY pa.id""",
        [int(r["id"]) for r in page],
    )
    by_payment: dict[int, list[Allocation]] = {int(r["id"]): [] for r in page}
    for a in allocations:
        by_payment[int(a["payment"])].append(
            Allocation(invoice_id=a["invoice"], invoice_number=a["number"], amount=int(a["amount"]))
        )
    items = [
        ApiPayment(
            id=int(r["id"]),
            account_id=r["account"],
            creditor=r["creditor"],
            debtor_external_id=r["external_id"],
            provider=str(r["provider"]),
            provider_payment_id=str(r["provider_payment_id"]),
            amount=int(r["amount"]),
            currency=str(r["currency"]),
            status=str(r["status"]),
            method=str(r["method"]),
            received_at=r["received_at"],
            created_at=r["created_at"],
            applied=bool(r["applied"]),
            reversed=bool(r["reversed"]),
            allocations=by_payment[int(r["id"])],
        )
        for r in page
    ]
    return PaymentPage(
        items=items,
        next_cursor=_page_end("payments", rows, after, limit),
        has_more=len(rows) > limit,
    )


# ---------------------------------------------------------------------------- plans, disputes


def _ids(raw: Any) -> list[int]:
    value = json.loads(raw) if isinstance(raw, str) else raw
    return [int(v) for v in value] if isinstance(value, list) else []


async def list_plans(*, status: str | None, since: str | None, limit: int) -> PlanPage:
    """Payment plans made after the cursor, oldest first, optionally of one status."""
    after, limit = decode_cursor("plans", since), _limit(limit)
    if status is not None and status not in PLAN_STATUSES:
        raise ValidationFailed(f"status: one of {', '.join(sorted(PLAN_STATUSES))}", "status")
    rows = await Account.raw(
        """
        SELECT p.*, a.currency, c.name AS creditor, d.external_id
        FROM payment_plan p JOIN account a ON a.id = p.account
        JOIN creditor c ON c.id = a.creditor JOIN debtor d ON d.id = a.debtor
        WHERE p.id > {} AND ({}::text IS NULL OR p.status = {})
        ORDER BY p.id
        LIMIT {}
        """,
        after,
        status,
        status,
        limit + 1,
    )
    page = rows[:limit]
    installments = await Account.raw(
        """SELECT plan, number, due_date, amount FROM installment
           WHERE plan = ANY({}::int[]) ORDER BY plan, number""",
        [int(r["id"]) for r in page],
    )
    by_plan: dict[int, list[PlanInstallment]] = {int(r["id"]): [] for r in page}
    for i in installments:
        by_plan[int(i["plan"])].append(
            PlanInstallment(
                number=int(i["number"]), due_date=i["due_date"], amount=int(i["amount"])
            )
        )
    items = [
        ApiPlan(
            id=int(r["id"]),
            account_id=int(r["account"]),
            creditor=str(r["creditor"]),
            debtor_external_id=str(r["external_id"]),
            currency=str(r["currency"]),
            status=str(r["status"]),
            proposed_by=str(r["proposed_by"]),
            total=int(r["total"]),
            down_payment=int(r["down_payment"]),
            installments_count=int(r["installments_count"]),
            frequency=str(r["frequency"]),
            first_date=r["first_date"],
            invoice_ids=_ids(r["invoice_ids"]),
            created_at=r["created_at"],
            decided_at=r["decided_at"],
            ended_at=r["ended_at"],
            installments=by_plan[int(r["id"])],
        )
        for r in page
    ]
    return PlanPage(
        items=items, next_cursor=_page_end("plans", rows, after, limit), has_more=len(rows) > limit
    )


async def list_disputes(*, status: str | None, since: str | None, limit: int) -> DisputePage:
    """Disputes opened after the cursor, oldest first, optionally of one status."""
    after, limit = decode_cursor("disputes", since), _limit(limit)
    if status is not None and status not in DISPUTE_STATUSES:
        raise ValidationFailed(
            f"status: one of {', '.join(sorted(DISPUTE_STATUSES))}", field="status"
        )
    rows = await Account.raw(
        """
        SELECT x.id, x.account, x.invoice, i.number, x.amount, x.reason_code, x.status,
               x.resolved_amount, x.created_at, x.resolved_at, a.currency,
               c.name AS creditor, d.external_id
        FROM dispute x JOIN account a ON a.id = x.account
        JOIN creditor c ON c.id = a.creditor JOIN debtor d ON d.id = a.debtor
        LEFT JOIN invoice i ON i.id = x.invoice
        WHERE x.id > {} AND ({}::text IS NULL OR x.status = {})
        ORDER BY x.id
        LIMIT {}
        """,
        after,
        status,
        status,
        limit + 1,
    )
    items = [
        ApiDispute(
            id=int(r["id"]),
            account_id=int(r["account"]),
            creditor=str(r["creditor"]),
            debtor_external_id=str(r["external_id"]),
            currency=str(r["currency"]),
            invoice_id=r["invoice"],
            invoice_number=r["number"],
            amount=int(r["amount"]),
            reason_code=str(r["reason_code"]),
            status=str(r["status"]),
            resolved_amount=r["resolved_amount"],
            created_at=r["created_at"],
            resolved_at=r["resolved_at"],
        )
        for r in rows[:limit]
    ]
    return DisputePage(
        items=items,
        next_cursor=_page_end("disputes", rows, after, limit),
        has_more=len(rows) > limit,
    )
