import asyncio
import datetime as dt

from saldo.services.ledger import (
    account_balance,
    apply_payment,
    open_invoices,
    reverse_entry,
)
from saldo.tables import LedgerEntry, Payment, PaymentAllocation

from .helpers import make_account, make_invoice

NOW = dt.datetime(2026, 11, 1, 15, 0, tzinfo=dt.UTC)


async def test_payment_goes_to_the_oldest_invoice_first(db):
    account = await make_account()
    old = await make_invoice(account, "A-1", 10_000, dt.date(2026, 8, 1))
    new = await make_invoice(account, "A-2", 5_000, dt.date(2026, 9, 1))
    applied = await apply_payment(
        account_id=account.id,
        provider="bank",
        provider_payment_id="p-1",
        amount=12_000,
        received_at=NOW,
    )
    assert applied.allocations == [(old.id, 10_000), (new.id, 2_000)]
    assert await account_balance(account.id) == 3_000
    assert await open_invoices(account.id) == [(new.id, 3_000)]


async def test_selected_invoices_are_paid_before_older_ones(db):
    account = await make_account()
    old = await make_invoice(account, "B-1", 10_000, dt.date(2026, 8, 1))
    chosen = await make_invoice(account, "B-2", 5_000, dt.date(2026, 9, 1))
    applied = await apply_payment(
        account_id=account.id,
        provider="bank",
        provider_payment_id="p-2",
        amount=6_000,
        received_at=NOW,
        preferred_invoice_ids=[chosen.id],
    )
    assert applied.allocations == [(chosen.id, 5_000), (old.id, 1_000)]


async def test_overpayment_becomes_a_credit_balance(db):
    account = await make_account("CLP")
    await make_invoice(account, "C-1", 25_000, dt.date(2026, 8, 1))
    applied = await apply_payment(
        account_id=account.id,
        provider="bank",
        provider_payment_id="p-3",
        amount=30_000,
        received_at=NOW,
    )
    assert applied.credit == 5_000
    assert await account_balance(account.id) == -5_000


async def test_replaying_a_payment_posts_nothing_twice(db):
    account = await make_account()
    await make_invoice(account, "D-1", 10_000, dt.date(2026, 8, 1))
    kwargs = dict(
        account_id=account.id,
        provider="mercadopago",
        provider_payment_id="123456789",
        amount=4_000,
        received_at=NOW,
    )
    results = await asyncio.gather(*(apply_payment(**kwargs) for _ in range(5)))
    assert sum(r.newly_applied for r in results) == 1
    assert await account_balance(account.id) == 6_000
    assert await Payment.count().where(Payment.provider_payment_id == "123456789") == 1
    assert (
        await PaymentAllocation.count().where(PaymentAllocation.payment == results[0].payment_id)
        == 1
    )


async def test_a_reversal_restores_the_balance_and_keeps_history(db):
    account = await make_account()
    await make_invoice(account, "E-1", 10_000, dt.date(2026, 8, 1))
    await apply_payment(
        account_id=account.id,
        provider="mercadopago",
        provider_payment_id="555",
        amount=10_000,
        received_at=NOW,
    )
    payment_entry = await LedgerEntry.objects().get(
        (LedgerEntry.account == account.id) & (LedgerEntry.kind == "payment")
    )
    first = await reverse_entry(
        payment_entry.id, idempotency_key="mp:555:refunded", reason="Reembolso"
    )
    again = await reverse_entry(
        payment_entry.id, idempotency_key="mp:555:refunded", reason="Reembolso"
    )
    assert first is not None and again is None
    assert await account_balance(account.id) == 10_000
    assert await LedgerEntry.count().where(LedgerEntry.account == account.id) == 3
