"""Unapplied money: finance's one queue of bank lines and online payments nobody could place.

Two kinds of item wait here, oldest first:

- `bank`: a bank statement line still "unmatched" (`bank_queue` clears them: assign, split,
  not ours);
- `online`: an approved online payment stored without an account — its external reference
  named no checkout, or the checkout's account is in another currency (`payments.record_payment`
  leaves those for finance). `assign_online_payment` gives it an account and posts it.

Assigning an online payment runs in one transaction: the payment row is locked, its account is
set only while it is still NULL (a second assignment answers `Conflict`), and
`ledger.post_payment` posts it through the payment's "apply" posting gate, so the money reaches
the ledger exactly once whatever else (a webhook replay, a concurrent assignment) happens. The
debtor's timeline gets an interaction, a "currency mismatch" task about the payment is closed,
and the audit log gets the payment before and after.

Suggestions for an online payment: the debtor whose checkout it came from (their account in the
payment's currency), and debtors whose email is the payer's; each with exact-amount evidence.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from saldo import money
from saldo.db import DB
from saldo.errors import Conflict, NotFound, ValidationFailed
from saldo.payments import Effect, effect_of
from saldo.references import payment_reference
from saldo.services import audit, ledger
from saldo.services.bank_import import CurrencyTotal
from saldo.services.bank_matching import open_invoices_of
from saldo.services.bank_suggestions import Suggestion
from saldo.tables import Account, Invoice, Payment

__all__ = [
    "APPLY_STATUSES",
    "PER_PAGE",
    "OnlineAssignment",
    "OnlinePaymentView",
    "QueueItem",
    "UnappliedQueue",
    "assign_online_payment",
    "online_backlog",
    "online_payment",
    "online_suggestions",
    "unapplied_queue",
]

PER_PAGE: Final = 50
#: Provider statuses whose money is ours (only those are waiting to be applied).
APPLY_STATUSES: Final = ("approved",)
assert all(effect_of(s) is Effect.apply for s in APPLY_STATUSES)
_MAX_SUGGESTIONS: Final = 10


@dataclass(frozen=True, slots=True)
class QueueItem:
    kind: str  # "bank" | "online"
    id: int  # bank line id or payment id
    day: dt.date  # booking date, or the day the payment was received (UTC)
    amount: int
    currency: str
    reference: str  # the bank's description, or the payment's external reference
    payer: str  # payer name (bank) or email (online)
    payer_detail: str  # payer document (bank) or payment method (online)
    external_id: str  # the bank's transaction id, or the provider's payment id
    provider: str  # "bank", "mercadopago", "simulated", ...


@dataclass(frozen=True, slots=True)
class UnappliedQueue:
    items: tuple[QueueItem, ...]
    total: int  # items in the filter, across pages
    totals: tuple[CurrencyTotal, ...]  # per currency, across pages
    bank_count: int
    online_count: int
    page: int
    pages: int
    currency: str | None


@dataclass(frozen=True, slots=True)
class OnlinePaymentView:
    id: int
    provider: str
    provider_payment_id: str
    amount: int
    currency: str
    status: str
    status_detail: str
    method: str
    received_at: dt.datetime | None
    created_at: dt.datetime
    external_reference: str
    payer_email: str
    account_id: int | None
    account_reference: str
    checkout_id: int | None
    checkout_account_id: int | None
    checkout_currency: str
    posted: bool
    allocations: tuple[tuple[str, int], ...]  # (invoice number or "", amount) when posted

    @property
    def day(self) -> dt.date:
        return (self.received_at or self.created_at).astimezone(dt.UTC).date()

    @property
    def unapplied(self) -> bool:
        return self.account_id is None and self.status in APPLY_STATUSES


@dataclass(frozen=True, slots=True)
class OnlineAssignment:
    payment_id: int
    account_id: int
    account_reference: str
    allocations: tuple[tuple[int, int], ...]  # (invoice id, amount)
    credit: int


# ---------------------------------------------------------------------------- the queue

_QUEUE_SQL: Final = """
    SELECT 'bank' AS kind, l.id, l.booked_on AS day, l.amount, l.currency, l.reference,
           l.payer_name AS payer, l.payer_document AS payer_detail,
           l.transaction_id AS external_id, 'bank' AS provider
    FROM bank_line l
    WHERE l.status = 'unmatched'
    UNION ALL
    SELECT 'online', p.id, (coalesce(p.received_at, p.created_at) AT TIME ZONE 'UTC')::date,
           p.amount, p.currency, coalesce(p.provider_data->>'external_reference', ''),
           coalesce(p.provider_data->'payer'->>'email', ''), p.method, p.provider_payment_id,
           p.provider
    FROM payment p
    WHERE p.account IS NULL AND p.status = ANY({}::text[])
"""


def _check_currency(currency: str | None) -> None:
    if currency is not None and currency not in money.EXPONENTS:
        raise ValidationFailed(f"Moneda desconocida: {currency}", field="currency")


async def unapplied_queue(
    *, currency: str | None = None, page: int = 1, per_page: int = PER_PAGE
) -> UnappliedQueue:
    """One page of the queue (bank lines and online payments together), oldest first."""
    _check_currency(currency)
    if not 1 <= per_page <= 500:
        raise ValidationFailed("per_page debe estar entre 1 y 500", field="per_page")
    totals = await Payment.raw(
        f"""
        SELECT currency, kind, count(*)::int AS n, sum(amount)::bigint AS total
        FROM ({_QUEUE_SQL}) q
        WHERE {{}}::text IS NULL OR currency = {{}}
        GROUP BY currency, kind ORDER BY currency, kind
        """,
        list(APPLY_STATUSES),
        currency,
        currency,
    )
    total = sum(r["n"] for r in totals)
    pages = max(1, math.ceil(total / per_page))
    page = min(max(1, page), pages)
    rows = await Payment.raw(
        f"""
        SELECT * FROM ({_QUEUE_SQL}) q
        WHERE {{}}::text IS NULL OR currency = {{}}
        ORDER BY day, kind, id
        LIMIT {{}} OFFSET {{}}
        """,
        list(APPLY_STATUSES),
        currency,
        currency,
        per_page,
        (page - 1) * per_page,
    )
    by_currency: dict[str, list[int]] = {}
    for r in totals:
        slot = by_currency.setdefault(r["currency"], [0, 0])
        slot[0] += r["n"]
        slot[1] += int(r["total"])
    return UnappliedQueue(
        items=tuple(_item(r) for r in rows),
        total=total,
        totals=tuple(CurrencyTotal(c, n, a) for c, (n, a) in sorted(by_currency.items())),
        bank_count=sum(r["n"] for r in totals if r["kind"] == "bank"),
        online_count=sum(r["n"] for r in totals if r["kind"] == "online"),
        page=page,
        pages=pages,
        currency=currency,
    )


def _item(r: Mapping[str, Any]) -> QueueItem:
    return QueueItem(
        kind=str(r["kind"]),
        id=int(r["id"]),
        day=r["day"],
        amount=int(r["amount"]),
        currency=str(r["currency"]),
        reference=str(r["reference"] or ""),
        payer=str(r["payer"] or ""),
        payer_detail=str(r["payer_detail"] or ""),
        external_id=str(r["external_id"]),
        provider=str(r["provider"]),
    )


async def online_backlog() -> tuple[CurrencyTotal, ...]:
    """Approved online payments without an account, per currency."""
    rows = await Payment.raw(
        """
        SELECT currency, count(*)::int AS n, sum(amount)::bigint AS total FROM payment
        WHERE account IS NULL AND status = ANY({}::text[])
        GROUP BY currency ORDER BY currency
        """,
        list(APPLY_STATUSES),
    )
    return tuple(CurrencyTotal(r["currency"], r["n"], int(r["total"])) for r in rows)


# ---------------------------------------------------------------------------- one payment


async def online_payment(payment_id: int) -> OnlinePaymentView:
    """An online payment as finance sees it (NotFound for a bank payment: see its line)."""
    rows = await Payment.raw(
        """
        SELECT p.id, p.provider, p.provider_payment_id, p.amount, p.currency, p.status,
               p.status_detail, p.method, p.received_at, p.created_at, p.account, p.checkout,
               coalesce(p.provider_data->>'external_reference', '') AS external_reference,
               coalesce(p.provider_data->'payer'->>'email', '') AS payer_email,
               c.account AS checkout_account, coalesce(a.currency, '') AS checkout_currency,
               EXISTS (SELECT 1 FROM payment_posting g
                       WHERE g.payment = p.id AND g.effect = 'apply') AS posted
        FROM payment p
        LEFT JOIN checkout_session c ON c.id = p.checkout
        LEFT JOIN account a ON a.id = c.account
        WHERE p.id = {} AND p.provider <> 'bank'
        """,
        payment_id,
    )
    if not rows:
        raise NotFound(f"online payment {payment_id} does not exist")
    r = rows[0]
    allocations = await Payment.raw(
        """
        SELECT coalesce(i.number, '') AS number, pa.amount FROM payment_allocation pa
        LEFT JOIN invoice i ON i.id = pa.invoice WHERE pa.payment = {} ORDER BY pa.id
        """,
        payment_id,
    )
    return OnlinePaymentView(
        id=int(r["id"]),
        provider=str(r["provider"]),
        provider_payment_id=str(r["provider_payment_id"]),
        amount=int(r["amount"]),
        currency=str(r["currency"]),
        status=str(r["status"]),
        status_detail=str(r["status_detail"]),
        method=str(r["method"]),
        received_at=r["received_at"],
        created_at=r["created_at"],
        external_reference=str(r["external_reference"]),
        payer_email=str(r["payer_email"]),
        account_id=r["account"],
        account_reference=payment_reference(r["account"]) if r["account"] else "",
        checkout_id=r["checkout"],
        checkout_account_id=r["checkout_account"],
        checkout_currency=str(r["checkout_currency"]),
        posted=bool(r["posted"]),
        allocations=tuple((str(a["number"]), int(a["amount"])) for a in allocations),
    )


async def online_suggestions(payment_id: int) -> list[Suggestion]:
    """Accounts an unapplied online payment may belong to, best first."""
    view = await online_payment(payment_id)
    if not view.unapplied:
        return []
    found: dict[int, tuple[float, list[str]]] = {}

    def add(account_id: int, points: float, reason: str) -> None:
        score, reasons = found.get(account_id, (0.0, []))
        if reason not in reasons:
            found[account_id] = (score + points, [*reasons, reason])

    if view.checkout_account_id is not None:
        rows = await Account.raw(
            """
            SELECT a.id FROM account a JOIN account c ON c.debtor = a.debtor
            WHERE c.id = {} AND a.currency = {} ORDER BY a.id LIMIT {}
            """,
            view.checkout_account_id,
            view.currency,
            _MAX_SUGGESTIONS,
        )
        for r in rows:
            add(
                r["id"],
                60,
                f"El pago viene del pago en línea de la cuenta "
                f"{payment_reference(view.checkout_account_id)} (en {view.checkout_currency}), "
                f"del mismo deudor",
            )
    if view.payer_email.strip():
        rows = await Account.raw(
            """
            SELECT a.id FROM account a JOIN debtor d ON d.id = a.debtor
            WHERE lower(btrim(d.email)) = lower(btrim({})) AND a.currency = {}
            ORDER BY a.id LIMIT {}
            """,
            view.payer_email,
            view.currency,
            _MAX_SUGGESTIONS,
        )
        for r in rows:
            add(r["id"], 40, f"Correo del pagador ({view.payer_email}) igual al del deudor")
    result = [
        await _suggestion(view, account_id, score, reasons)
        for account_id, (score, reasons) in found.items()
    ]
    result.sort(key=lambda s: (-s.score, s.account_id))
    return result[:_MAX_SUGGESTIONS]


async def _suggestion(
    view: OnlinePaymentView, account_id: int, score: float, reasons: list[str]
) -> Suggestion:
    balance = await ledger.account_balance(account_id)
    invoices: dict[int, str] = {}
    if balance == view.amount:
        score += 20
        reasons = [*reasons, "Importe igual al saldo de la cuenta"]
    for inv in await open_invoices_of(account_id):
        if inv.open == view.amount:
            score += 20
            reasons = [*reasons, f"Importe igual al saldo de la factura {inv.number}"]
            invoices[inv.id] = inv.number
            break
    rows = await Account.raw(
        """
        SELECT a.currency, c.name AS creditor, d.name AS debtor, d.external_id
        FROM account a JOIN debtor d ON d.id = a.debtor JOIN creditor c ON c.id = a.creditor
        WHERE a.id = {}
        """,
        account_id,
    )
    info = rows[0]
    return Suggestion(
        account_id=account_id,
        account_reference=payment_reference(account_id),
        creditor_name=info["creditor"],
        debtor_name=info["debtor"],
        debtor_external_id=info["external_id"],
        currency=info["currency"],
        balance=balance,
        invoice_ids=tuple(invoices),
        invoice_numbers=tuple(invoices.values()),
        score=min(100, round(score)),
        reasons=tuple(reasons),
    )


# ---------------------------------------------------------------------------- assigning


async def assign_online_payment(
    payment_id: int,
    *,
    account_id: int,
    invoice_ids: Sequence[int] = (),
    actor: audit.Actor,
    now: dt.datetime,
) -> OnlineAssignment:
    """Give an unapplied online payment its account and post it (`invoice_ids` paid first).

    Raises `NotFound` for an unknown payment, `Conflict` for one that already has an account
    or whose status is not approved, and `ValidationFailed` (field `account_id` or
    `invoice_ids`) for an account in another currency or invoices of another account.
    """
    async with DB.transaction():
        rows = await Payment.raw(
            """
            SELECT id, account, provider, provider_payment_id, amount, currency, status
            FROM payment WHERE id = {} AND provider <> 'bank' FOR UPDATE
            """,
            payment_id,
        )
        if not rows:
            raise NotFound(f"online payment {payment_id} does not exist")
        payment = rows[0]
        label = f"{payment['provider']} {payment['provider_payment_id']}"
        if payment["account"] is not None:
            raise Conflict(
                f"El pago {label} ya está asignado a la cuenta "
                f"{payment_reference(payment['account'])}"
            )
        if payment["status"] not in APPLY_STATUSES:
            raise Conflict(
                f"El pago {label} está en estado «{payment['status']}»: "
                "solo se asignan pagos aprobados"
            )
        numbers = await _check_target(str(payment["currency"]), account_id, invoice_ids)
        changed = await Payment.raw(
            "UPDATE payment SET account = {}, updated_at = {} "
            "WHERE id = {} AND account IS NULL RETURNING id",
            account_id,
            now,
            payment_id,
        )
        if not changed:  # pragma: no cover - the row lock above makes this unreachable
            raise Conflict(f"El pago {label} ya fue asignado")
        posting = await ledger.post_payment(payment_id, preferred_invoice_ids=list(invoice_ids))
        if not posting.posted:
            raise Conflict(f"El pago {label} ya estaba imputado")
        shown = (
            f"{payment['currency']} {money.to_decimal(int(payment['amount']), payment['currency'])}"
        )
        note = f"Asignado a mano por {actor.label}"
        if numbers:
            note += f"; {', '.join(numbers)} primero"
        await Payment.raw(
            """
            INSERT INTO interaction (account, debtor, kind, channel, direction, summary, data,
                                     staff, occurred_at)
            SELECT a.id, a.debtor, 'payment', {}, 'inbound', {}, {}::jsonb, {}, {}
            FROM account a WHERE a.id = {}
            """,
            str(payment["provider"])[:20],
            f"Pago recibido: {shown} ({label}). {note}",
            json.dumps(
                {
                    "payment": payment_id,
                    "effect": ledger.APPLY,
                    "status": str(payment["status"]),
                    "amount": int(payment["amount"]),
                    "currency": str(payment["currency"]),
                    "assigned_by": actor.staff_id,
                    "invoice_ids": list(invoice_ids),
                }
            ),
            actor.staff_id,
            now,
            account_id,
        )
        await Payment.raw(
            "UPDATE task SET status = 'done', done_at = {} "
            "WHERE dedupe_key = {} AND status = 'open'",
            now,
            f"payment-currency:{payment_id}",
        )
        await audit.record(
            actor,
            "payment.assign",
            now=now,
            object_type="payment",
            object_id=payment_id,
            before={
                "account": None,
                "provider": str(payment["provider"]),
                "provider_payment_id": str(payment["provider_payment_id"]),
                "amount": int(payment["amount"]),
                "currency": str(payment["currency"]),
            },
            after={
                "account": account_id,
                "invoice_ids": list(invoice_ids),
                "allocations": [[i, a] for i, a in posting.allocations],
                "credit": posting.credit,
            },
        )
    return OnlineAssignment(
        payment_id=payment_id,
        account_id=account_id,
        account_reference=payment_reference(account_id),
        allocations=tuple(posting.allocations),
        credit=posting.credit,
    )


async def _check_target(currency: str, account_id: int, invoice_ids: Sequence[int]) -> list[str]:
    account = await Account.select(Account.currency).where(Account.id == account_id).first()
    if account is None:
        raise ValidationFailed("La cuenta no existe", field="account_id")
    if account["currency"] != currency:
        raise ValidationFailed(
            f"La cuenta está en {account['currency']} y el pago en {currency}",
            field="account_id",
        )
    wanted = list(dict.fromkeys(invoice_ids))
    if not wanted:
        return []
    rows = await Invoice.select(Invoice.id, Invoice.number).where(
        Invoice.id.is_in(wanted) & (Invoice.account == account_id)
    )
    numbers = {r["id"]: r["number"] for r in rows}
    if len(numbers) != len(wanted):
        raise ValidationFailed("Alguna de las facturas no es de esa cuenta", field="invoice_ids")
    return [f"Factura {numbers[i]}" for i in wanted]
