"""The account ledger: append-only entries, balances as sums, payments applied exactly once.

Exactly-once comes from the database: the payment row is unique by (provider, provider id), and
posting it is gated by a `payment_posting` row unique by (payment, effect), inserted with
ON CONFLICT DO NOTHING in the same transaction as the entries it stands for — never a
check-then-insert. Every entry born from a payment also carries a unique idempotency key.
There is one posting path: `post_payment` / `reverse_payment`; `apply_payment` (bank lines,
manual payments) records the payment row and calls `post_payment`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from saldo import money
from saldo.db import DB
from saldo.errors import Conflict, NotFound, ValidationFailed
from saldo.services import outbound
from saldo.tables import Account, EntryKind, LedgerEntry, Payment, PaymentPosting


async def post_entry(
    *,
    account_id: int,
    kind: EntryKind,
    amount: int,
    currency: str,
    effective_date: dt.date,
    invoice_id: int | None = None,
    description: str = "",
    basis: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    reverses: int | None = None,
    created_by: str = "system",
) -> int | None:
    """Append one entry; returns its id, or None when the idempotency key was already posted."""
    if amount == 0:
        raise ValidationFailed("a ledger entry cannot be zero", field="amount")
    rows = await LedgerEntry.raw(
        """
        INSERT INTO ledger_entry (account, invoice, kind, amount, currency, effective_date,
                                  description, basis, idempotency_key, reverses, created_by,
                                  created_at)
        VALUES ({}, {}, {}, {}, {}, {}, {}, {}::jsonb, {}, {}, {}, now())
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id
        """,
        account_id,
        invoice_id,
        str(kind),
        amount,
        currency,
        effective_date,
        description,
        json.dumps(basis or {}),
        idempotency_key,
        reverses,
        created_by,
    )
    return rows[0]["id"] if rows else None


async def reverse_entry(entry_id: int, *, idempotency_key: str, reason: str) -> int | None:
    """Post the opposite of an entry (the only way to correct the ledger)."""
    entry = await LedgerEntry.objects().get(LedgerEntry.id == entry_id)
    if entry is None:
        raise NotFound(f"ledger entry {entry_id} does not exist")
    return await post_entry(
        account_id=entry.account,
        kind=EntryKind.reversal,
        amount=-entry.amount,
        currency=entry.currency,
        effective_date=dt.datetime.now(dt.UTC).date(),
        invoice_id=entry.invoice,
        description=reason,
        basis={"reverses": entry_id},
        idempotency_key=idempotency_key,
        reverses=entry_id,
    )


async def account_balance(account_id: int) -> int:
    rows = await LedgerEntry.raw(
        "SELECT coalesce(sum(amount), 0)::bigint AS balance FROM ledger_entry WHERE account = {}",
        account_id,
    )
    return int(rows[0]["balance"])


async def open_invoices(account_id: int) -> list[tuple[int, int]]:
    """(invoice id, open amount) with something left to pay, oldest due date first."""
    rows = await LedgerEntry.raw(
        """
        SELECT i.id, sum(e.amount)::bigint AS open
        FROM invoice i JOIN ledger_entry e ON e.invoice = i.id
        WHERE i.account = {}
        GROUP BY i.id, i.due_date
        HAVING sum(e.amount) > 0
        ORDER BY i.due_date, i.id
        """,
        account_id,
    )
    return [(r["id"], int(r["open"])) for r in rows]


@dataclass(frozen=True)
class AppliedPayment:
    payment_id: int
    allocations: list[tuple[int, int]]
    credit: int
    newly_applied: bool


@dataclass(frozen=True)
class Posting:
    """What one `post_payment` / `reverse_payment` call did.

    `posted` is True only for the call that won the payment's `PaymentPosting` gate; every other
    call (a replay, a concurrent duplicate) posts nothing and gets `posted=False`.
    `allocations` are (invoice id, amount) pairs; `credit` is what no invoice took. For a
    reversal they describe what was reversed.
    """

    payment_id: int
    effect: str
    posted: bool
    allocations: list[tuple[int, int]] = field(default_factory=list)
    credit: int = 0
    entry_ids: list[int] = field(default_factory=list)


APPLY = "apply"
REVERSE = "reverse"


def payment_entry_key(provider: str, provider_payment_id: str) -> str:
    """Prefix of the idempotency keys of a payment's entries (`...:invoice:<id>`, `...:credit`)."""
    return f"payment:{provider}:{provider_payment_id}"


async def _locked_payment(payment_id: int) -> dict[str, Any]:
    rows = await Payment.raw(
        """
        SELECT id, account, provider, provider_payment_id, amount, currency, status, method,
               received_at, updated_at
        FROM payment WHERE id = {} FOR NO KEY UPDATE
        """,
        payment_id,
    )
    if not rows:
        raise NotFound(f"payment {payment_id} does not exist")
    return rows[0]


async def _gate(payment_id: int, effect: str, status: str) -> bool:
    """Insert the payment's posting row for `effect`; True only for the one caller that did."""
    rows = await PaymentPosting.raw(
        """
        INSERT INTO payment_posting (payment, effect, status, created_at)
        VALUES ({}, {}, {}, now())
        ON CONFLICT (payment, effect) DO NOTHING
        RETURNING id
        """,
        payment_id,
        effect,
        status,
    )
    return bool(rows)


async def has_posting(payment_id: int, effect: str) -> bool:
    """Whether the payment's `effect` ("apply" / "reverse") was posted."""
    rows = await PaymentPosting.raw(
        "SELECT 1 AS found FROM payment_posting WHERE payment = {} AND effect = {}",
        payment_id,
        effect,
    )
    return bool(rows)


async def post_payment(payment_id: int, *, preferred_invoice_ids: Sequence[int] = ()) -> Posting:
    """Post a received payment to its account, exactly once.

    Runs in the caller's transaction (or its own). The payment row and then its account are
    locked (FOR NO KEY UPDATE, which does not wait for the key-share locks that inserting rows
    referencing them takes), so postings to one account never allocate the same open amount
    twice; then the payment's "apply" `PaymentPosting` row is inserted with ON CONFLICT DO
    NOTHING, and only the caller whose insert went through posts. Allocation:
    `preferred_invoice_ids` first (those still open), then the oldest due date first; whatever
    no invoice takes is a credit entry (basis `{"credit": true}`), which the debtor sees as a
    balance in their favour. The posting queues the `payment.applied` webhook in the same
    transaction (`outbound.payment_applied`).

    Raises `Conflict` for a payment without an account (unapplied) or in another currency than
    its account, `ValidationFailed` for a non-positive amount.
    """
    async with DB.transaction():
        payment = await _locked_payment(payment_id)
        account_id = payment["account"]
        if account_id is None:
            raise Conflict(f"payment {payment_id} has no account yet (unapplied)")
        amount = int(payment["amount"])
        if amount <= 0:
            raise ValidationFailed("a payment must be positive", field="amount")
        accounts = await Account.raw(
            "SELECT id, currency FROM account WHERE id = {} FOR NO KEY UPDATE", account_id
        )
        currency = str(accounts[0]["currency"])
        if currency != payment["currency"]:
            raise Conflict(
                f"payment {payment_id} is in {payment['currency']}, its account in {currency}"
            )
        if not await _gate(payment_id, APPLY, str(payment["status"])):
            return Posting(payment_id, APPLY, posted=False)
        allocations, credit = money.allocate_oldest_first(
            amount, await open_invoices(account_id), preferred=list(preferred_invoice_ids)
        )
        key = payment_entry_key(payment["provider"], payment["provider_payment_id"])
        on = (payment["received_at"] or payment["updated_at"]).date()
        method = str(payment["method"] or "")
        entry_ids: list[int] = []
        for invoice_id, part in allocations:
            entry_id = await _post_once(
                account_id=account_id,
                kind=EntryKind.payment,
                amount=-part,
                currency=currency,
                effective_date=on,
                invoice_id=invoice_id,
                description=f"Pago {method}".strip(),
                basis={"payment": payment_id},
                idempotency_key=f"{key}:invoice:{invoice_id}",
            )
            await _allocation(payment_id, invoice_id, entry_id, part)
            entry_ids.append(entry_id)
        if credit:
            entry_id = await _post_once(
                account_id=account_id,
                kind=EntryKind.payment,
                amount=-credit,
                currency=currency,
                effective_date=on,
                description="Saldo a favor",
                basis={"payment": payment_id, "credit": True},
                idempotency_key=f"{key}:credit",
            )
            await _allocation(payment_id, None, entry_id, credit)
            entry_ids.append(entry_id)
        await outbound.payment_applied(payment_id)
    return Posting(payment_id, APPLY, True, allocations, credit, entry_ids)


async def reverse_payment(
    payment_id: int, *, reason: str, effective_date: dt.date | None = None
) -> Posting:
    """Reverse exactly the entries a payment posted (a refund, chargeback or cancellation), once.

    Runs in the caller's transaction (or its own), with the payment row locked; the "reverse"
    `PaymentPosting` row is the gate, as for `post_payment`. Each entry of the payment gets one
    reversal entry (idempotency key `payment-reversal:<entry id>`, basis naming the payment and
    the entry) unless it was already reversed by hand. `effective_date` defaults to the day the
    payment row was last updated (when the provider's new status was recorded).

    Raises `Conflict` when the payment was never posted: there is nothing to reverse.
    """
    async with DB.transaction():
        payment = await _locked_payment(payment_id)
        if not await has_posting(payment_id, APPLY):
            raise Conflict(f"payment {payment_id} was never posted; there is nothing to reverse")
        if not await _gate(payment_id, REVERSE, str(payment["status"])):
            return Posting(payment_id, REVERSE, posted=False)
        entries = await LedgerEntry.raw(
            """
            SELECT e.id, e.account, e.invoice, e.amount, e.currency
            FROM payment_allocation pa JOIN ledger_entry e ON e.id = pa.ledger_entry
            WHERE pa.payment = {}
              AND NOT EXISTS (SELECT 1 FROM ledger_entry r WHERE r.reverses = e.id)
            ORDER BY pa.id
            """,
            payment_id,
        )
        on = effective_date or payment["updated_at"].date()
        allocations: list[tuple[int, int]] = []
        credit = 0
        entry_ids: list[int] = []
        for entry in entries:
            entry_id = await _post_once(
                account_id=entry["account"],
                kind=EntryKind.reversal,
                amount=-int(entry["amount"]),
                currency=entry["currency"],
                effective_date=on,
                invoice_id=entry["invoice"],
                description=reason,
                basis={"payment": payment_id, "reverses": entry["id"]},
                idempotency_key=f"payment-reversal:{entry['id']}",
                reverses=entry["id"],
            )
            entry_ids.append(entry_id)
            if entry["invoice"] is None:
                credit += -int(entry["amount"])
            else:
                allocations.append((entry["invoice"], -int(entry["amount"])))
    return Posting(payment_id, REVERSE, True, allocations, credit, entry_ids)


async def _post_once(**entry: Any) -> int:
    """`post_entry` for an entry the posting gate already owns: its key must be new."""
    entry_id = await post_entry(**entry)
    if entry_id is None:
        raise Conflict(f"ledger entry {entry['idempotency_key']} was already posted")
    return entry_id


async def apply_payment(
    *,
    account_id: int,
    provider: str,
    provider_payment_id: str,
    amount: int,
    received_at: dt.datetime,
    method: str = "",
    preferred_invoice_ids: Sequence[int] = (),
    raw: dict[str, Any] | None = None,
    bank_line_id: int | None = None,
) -> AppliedPayment:
    """Record an approved payment and allocate it: preferred invoices, then oldest first.

    What is left after every open invoice is paid stays on the account as a credit entry.
    Replaying the same provider payment changes nothing. The posting itself is `post_payment`'s,
    so a payment recorded here and one synced from a provider go through one path.
    `bank_line_id` links the payment to the bank statement line it came from.
    """
    if amount <= 0:
        raise ValidationFailed("a payment must be positive", field="amount")
    account = await Account.objects().get(Account.id == account_id)
    if account is None:
        raise NotFound(f"account {account_id} does not exist")
    async with DB.transaction():
        inserted = await Payment.raw(
            """
            INSERT INTO payment (account, provider, provider_payment_id, amount, currency, status,
                                 method, bank_line, received_at, provider_data, created_at,
                                 updated_at)
            VALUES ({}, {}, {}, {}, {}, 'approved', {}, {}, {}, {}::jsonb, now(), now())
            ON CONFLICT (provider, provider_payment_id) DO NOTHING
            RETURNING id
            """,
            account_id,
            provider,
            provider_payment_id,
            amount,
            account.currency,
            method,
            bank_line_id,
            received_at,
            json.dumps(raw or {}),
        )
        if inserted:
            payment_id = int(inserted[0]["id"])
        else:
            rows = await Payment.raw(
                """SELECT id, account, status FROM payment
                   WHERE provider = {} AND provider_payment_id = {}""",
                provider,
                provider_payment_id,
            )
            payment_id = int(rows[0]["id"])
            if rows[0]["account"] != account_id or rows[0]["status"] != "approved":
                return AppliedPayment(payment_id, [], 0, newly_applied=False)
        posting = await post_payment(payment_id, preferred_invoice_ids=preferred_invoice_ids)
    return AppliedPayment(
        payment_id, posting.allocations, posting.credit, newly_applied=posting.posted
    )


async def _allocation(payment_id: int, invoice_id: int | None, entry_id: int, amount: int) -> None:
    await Payment.raw(
        """INSERT INTO payment_allocation (payment, invoice, ledger_entry, amount, created_at)
           VALUES ({}, {}, {}, {}, now())""",
        payment_id,
        invoice_id,
        entry_id,
        amount,
    )
