"""The account ledger: append-only entries, balances as sums, payments applied exactly once.

Exactly-once comes from the database: the payment row is unique by (provider, provider id) and
every ledger entry born from it carries a unique idempotency key, inserted with
ON CONFLICT DO NOTHING — never a check-then-insert.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from saldo import money
from saldo.db import DB
from saldo.errors import NotFound, ValidationFailed
from saldo.tables import Account, EntryKind, LedgerEntry, Payment


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
) -> AppliedPayment:
    """Record an approved payment and allocate it: preferred invoices, then oldest first.

    What is left after every open invoice is paid stays on the account as a credit entry.
    Replaying the same provider payment changes nothing.
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
                                 method, received_at, provider_data, created_at, updated_at)
            VALUES ({}, {}, {}, {}, {}, 'approved', {}, {}, {}::jsonb, now(), now())
            ON CONFLICT (provider, provider_payment_id) DO NOTHING
            RETURNING id
            """,
            account_id,
            provider,
            provider_payment_id,
            amount,
            account.currency,
            method,
            received_at,
            json.dumps(raw or {}),
        )
        if not inserted:
            existing = await Payment.objects().get(
                (Payment.provider == provider)
                & (Payment.provider_payment_id == provider_payment_id)
            )
            assert existing is not None
            return AppliedPayment(existing.id, [], 0, newly_applied=False)
        payment_id = inserted[0]["id"]
        allocations, credit = money.allocate_oldest_first(
            amount, await open_invoices(account_id), preferred=list(preferred_invoice_ids)
        )
        key = f"payment:{provider}:{provider_payment_id}"
        for invoice_id, part in allocations:
            entry_id = await post_entry(
                account_id=account_id,
                kind=EntryKind.payment,
                amount=-part,
                currency=account.currency,
                effective_date=received_at.date(),
                invoice_id=invoice_id,
                description=f"Pago {method}".strip(),
                basis={"payment": payment_id},
                idempotency_key=f"{key}:invoice:{invoice_id}",
            )
            await _allocation(payment_id, invoice_id, entry_id, part)
        if credit:
            entry_id = await post_entry(
                account_id=account_id,
                kind=EntryKind.payment,
                amount=-credit,
                currency=account.currency,
                effective_date=received_at.date(),
                description="Saldo a favor",
                basis={"payment": payment_id, "credit": True},
                idempotency_key=f"{key}:credit",
            )
            await _allocation(payment_id, None, entry_id, credit)
    return AppliedPayment(payment_id, allocations, credit, newly_applied=True)


async def _allocation(
    payment_id: int, invoice_id: int | None, entry_id: int | None, amount: int
) -> None:
    assert entry_id is not None
    await Payment.raw(
        """INSERT INTO payment_allocation (payment, invoice, ledger_entry, amount, created_at)
           VALUES ({}, {}, {}, {}, now())""",
        payment_id,
        invoice_id,
        entry_id,
        amount,
    )
