"""Syncing provider payments: what gets posted, reversed, queued and told to finance.

The provider here is an in-process stand-in for the `PaymentProvider` protocol whose answers the
test scripts; the real Mercado Pago adapter against the fake HTTP server is exercised end to end
in tests/worker/test_payments_exactly_once.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import uuid
from collections import deque

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saldo.errors import Conflict
from saldo.payments import ProviderError
from saldo.services import ledger
from saldo.services.payments import (
    checkout_status,
    process_webhook_event,
    receive_notification,
    refetch_stale,
    sync_payment,
)
from saldo.tables import (
    CheckoutSession,
    Interaction,
    LedgerEntry,
    Notification,
    Payment,
    PaymentAllocation,
    PaymentPosting,
    Task,
    WebhookEvent,
)

from .helpers import make_account, make_invoice
from .payment_helpers import NOW, ScriptedProvider, make_checkout, with_email


async def entries_of(payment_id: int) -> list[dict]:
    rows = await LedgerEntry.raw(
        "SELECT * FROM ledger_entry WHERE basis->>'payment' = {} ORDER BY id", str(payment_id)
    )
    for row in rows:
        row["basis"] = json.loads(row["basis"])
    return rows


async def postings_of(payment_id: int) -> list[str]:
    rows = await PaymentPosting.select(PaymentPosting.effect).where(
        PaymentPosting.payment == payment_id
    )
    return sorted(r["effect"] for r in rows)


async def checkout_of(checkout: CheckoutSession) -> str:
    row = await CheckoutSession.select(CheckoutSession.status).where(
        CheckoutSession.id == checkout.id
    )
    return row[0]["status"]


@pytest.fixture
def provider() -> ScriptedProvider:
    return ScriptedProvider()


# ---------------------------------------------------------------------------- applying


async def test_approved_payment_pays_the_chosen_invoice_then_the_oldest(db, provider):
    account = await make_account()
    await with_email(account)
    old = await make_invoice(account, "S-1", 10_000, dt.date(2026, 8, 1))
    middle = await make_invoice(account, "S-2", 5_000, dt.date(2026, 9, 1))
    chosen = await make_invoice(account, "S-3", 8_000, dt.date(2026, 10, 1))
    checkout = await make_checkout(account, provider, 12_000, [chosen.id])
    pid = provider.put("approved", 12_000, "ARS", str(checkout.public_id))

    result = await sync_payment(provider, pid, now=NOW)

    assert result.posted == "apply" and result.status == "approved"
    assert result.account_id == account.id and result.notification_id is not None
    allocations = await PaymentAllocation.select(
        PaymentAllocation.invoice, PaymentAllocation.amount
    ).where(PaymentAllocation.payment == result.payment_id)
    assert [(a["invoice"], a["amount"]) for a in allocations] == [
        (chosen.id, 8_000),
        (old.id, 4_000),
    ]
    assert await ledger.open_invoices(account.id) == [(old.id, 6_000), (middle.id, 5_000)]
    assert await ledger.account_balance(account.id) == 23_000 - 12_000
    assert sum(e["amount"] for e in await entries_of(result.payment_id)) == -12_000
    assert await postings_of(result.payment_id) == ["apply"]
    assert await checkout_of(checkout) == "approved"
    payment = await Payment.objects().get(Payment.id == result.payment_id)
    assert payment.checkout == checkout.id and payment.received_at == NOW
    timeline = await Interaction.select(Interaction.summary).where(
        (Interaction.account == account.id) & (Interaction.kind == "payment")
    )
    assert len(timeline) == 1 and "ARS 120.00" in timeline[0]["summary"]


async def test_syncing_again_posts_nothing_more(db, provider):
    account = await make_account()
    await with_email(account)
    await make_invoice(account, "R-1", 10_000, dt.date(2026, 8, 1))
    checkout = await make_checkout(account, provider, 4_000)
    pid = provider.put("approved", 4_000, "ARS", str(checkout.public_id))

    first = await sync_payment(provider, pid, now=NOW)
    again = [await sync_payment(provider, pid, now=NOW) for _ in range(3)]

    assert first.posted == "apply"
    assert [r.posted for r in again] == [None, None, None]
    assert [r.notification_id for r in again] == [None, None, None]
    assert await ledger.account_balance(account.id) == 6_000
    assert len(await entries_of(first.payment_id)) == 1
    assert await Interaction.count().where(Interaction.account == account.id) == 1


async def test_an_overpayment_leaves_a_credit_the_debtor_sees(db, provider):
    account = await make_account("CLP")
    await with_email(account)
    invoice = await make_invoice(account, "O-1", 25_000, dt.date(2026, 8, 1))
    checkout = await make_checkout(account, provider, 25_000, [invoice.id])
    pid = provider.put("approved", 31_000, "CLP", str(checkout.public_id))

    result = await sync_payment(provider, pid, now=NOW)

    entries = await entries_of(result.payment_id)
    credit = [e for e in entries if e["basis"].get("credit") is True]
    assert len(credit) == 1 and credit[0]["amount"] == -6_000 and credit[0]["invoice"] is None
    assert await ledger.account_balance(account.id) == -6_000
    assert await ledger.open_invoices(account.id) == []


# ---------------------------------------------------------------------------- waiting and failing


async def test_a_pending_payment_posts_nothing_until_it_is_approved(db, provider):
    account = await make_account()
    await with_email(account)
    await make_invoice(account, "P-1", 10_000, dt.date(2026, 8, 1))
    checkout = await make_checkout(account, provider, 10_000)
    expires = NOW + dt.timedelta(days=3)
    pid = provider.put("pending", 10_000, "ARS", str(checkout.public_id), expires_at=expires)

    pending = await sync_payment(provider, pid, now=NOW)

    assert pending.posted is None and pending.notification_id is None
    assert await postings_of(pending.payment_id) == []
    assert await ledger.account_balance(account.id) == 10_000
    assert await checkout_of(checkout) == "pending"
    payment = await Payment.objects().get(Payment.id == pending.payment_id)
    assert payment.status == "pending" and payment.expires_at == expires
    assert payment.received_at is None

    provider.set_status(pid, "approved")
    approved = await sync_payment(provider, pid, now=NOW + dt.timedelta(hours=5))
    assert approved.posted == "apply" and approved.payment_id == pending.payment_id
    assert await ledger.account_balance(account.id) == 0
    assert await checkout_of(checkout) == "approved"


async def test_a_rejected_payment_posts_nothing(db, provider):
    account = await make_account()
    await make_invoice(account, "J-1", 10_000, dt.date(2026, 8, 1))
    checkout = await make_checkout(account, provider, 10_000)
    pid = provider.put("rejected", 10_000, "ARS", str(checkout.public_id))

    result = await sync_payment(provider, pid, now=NOW)

    assert result.posted is None and result.status == "rejected"
    assert await postings_of(result.payment_id) == []
    assert await entries_of(result.payment_id) == []
    assert await checkout_of(checkout) == "rejected"
    assert not await Notification.exists().where(
        Notification.idempotency_key == f"receipt:{result.payment_id}"
    )


async def test_an_approved_second_attempt_wins_over_a_rejected_first(db, provider):
    account = await make_account()
    await make_invoice(account, "J-2", 10_000, dt.date(2026, 8, 1))
    checkout = await make_checkout(account, provider, 10_000)
    rejected = provider.put("rejected", 10_000, "ARS", str(checkout.public_id))
    approved = provider.put("approved", 10_000, "ARS", str(checkout.public_id))

    await sync_payment(provider, approved, now=NOW)
    await sync_payment(provider, rejected, now=NOW)

    assert await checkout_of(checkout) == "approved"
    assert await ledger.account_balance(account.id) == 0


# ---------------------------------------------------------------------------- reversals


@pytest.mark.parametrize("final", ["refunded", "charged_back"])
async def test_a_refund_or_chargeback_after_approval_is_reversed_once(db, provider, final):
    account = await make_account()
    await with_email(account)
    first = await make_invoice(account, "V-1", 6_000, dt.date(2026, 8, 1))
    second = await make_invoice(account, "V-2", 3_000, dt.date(2026, 9, 1))
    checkout = await make_checkout(account, provider, 10_000)
    pid = provider.put("approved", 10_000, "ARS", str(checkout.public_id))
    applied = await sync_payment(provider, pid, now=NOW)
    assert await ledger.account_balance(account.id) == -1_000

    provider.set_status(pid, final)
    later = NOW + dt.timedelta(days=2)
    results = [await sync_payment(provider, pid, now=later) for _ in range(3)]

    assert [r.posted for r in results] == ["reverse", None, None]
    assert await postings_of(applied.payment_id) == ["apply", "reverse"]
    assert await ledger.account_balance(account.id) == 9_000
    assert await ledger.open_invoices(account.id) == [(first.id, 6_000), (second.id, 3_000)]
    entries = await entries_of(applied.payment_id)
    payments = [e for e in entries if e["kind"] == "payment"]
    reversals = [e for e in entries if e["kind"] == "reversal"]
    assert sorted(r["reverses"] for r in reversals) == sorted(p["id"] for p in payments)
    assert all(r["effective_date"] == later.date() for r in reversals)
    assert sum(e["amount"] for e in entries) == 0
    assert await checkout_of(checkout) == final
    kinds = await Interaction.select(Interaction.data).where(Interaction.account == account.id)
    assert sorted(json.loads(k["data"])["effect"] for k in kinds) == ["apply", "reverse"]


async def test_a_refund_seen_first_posts_nothing_and_a_stale_approval_changes_nothing(db, provider):
    account = await make_account()
    await make_invoice(account, "F-1", 10_000, dt.date(2026, 8, 1))
    checkout = await make_checkout(account, provider, 10_000)
    pid = provider.put("refunded", 10_000, "ARS", str(checkout.public_id))

    refunded = await sync_payment(provider, pid, now=NOW)
    # a worker that fetched "approved" earlier writes after the refund was recorded
    provider.script[pid] = deque(["approved"])
    stale = await sync_payment(provider, pid, now=NOW)

    assert refunded.posted is None and stale.posted is None
    assert stale.stale is True and stale.status == "refunded"
    assert await postings_of(refunded.payment_id) == []
    assert await entries_of(refunded.payment_id) == []
    assert await ledger.account_balance(account.id) == 10_000
    payment = await Payment.objects().get(Payment.id == refunded.payment_id)
    assert payment.status == "refunded"


async def test_reverse_payment_refuses_a_payment_that_was_never_posted(db, provider):
    account = await make_account()
    checkout = await make_checkout(account, provider, 1_000)
    pid = provider.put("pending", 1_000, "ARS", str(checkout.public_id))
    result = await sync_payment(provider, pid, now=NOW)
    with pytest.raises(Conflict):
        await ledger.reverse_payment(result.payment_id, reason="Reembolso")
    assert await postings_of(result.payment_id) == []


# ---------------------------------------------------------------------------- whose payment


@pytest.mark.parametrize("reference", [str(uuid.uuid4()), "no-es-un-uuid", ""])
async def test_an_unknown_reference_leaves_an_unapplied_payment(db, provider, reference):
    pid = provider.put("approved", 7_500, "ARS", reference)

    result = await sync_payment(provider, pid, now=NOW)

    assert result.account_id is None and result.posted is None
    payment = await Payment.objects().get(Payment.id == result.payment_id)
    assert payment.account is None and payment.amount == 7_500 and payment.status == "approved"
    assert await postings_of(result.payment_id) == []
    assert await entries_of(result.payment_id) == []


async def test_a_checkout_of_another_provider_is_not_trusted(db, provider):
    account = await make_account()
    other = ScriptedProvider()
    checkout = await make_checkout(account, other, 1_000)
    pid = provider.put("approved", 1_000, "ARS", str(checkout.public_id))

    result = await sync_payment(provider, pid, now=NOW)

    assert result.account_id is None and result.checkout_id is None


async def test_a_payment_in_another_currency_is_not_posted_and_finance_is_told(db, provider):
    account = await make_account("CLP")
    await make_invoice(account, "M-1", 50_000, dt.date(2026, 8, 1))
    checkout = await make_checkout(account, provider, 50_000)
    pid = provider.put("approved", 50_000, "ARS", str(checkout.public_id))

    first = await sync_payment(provider, pid, now=NOW)
    await sync_payment(provider, pid, now=NOW)

    assert first.posted is None and first.account_id is None
    assert await postings_of(first.payment_id) == []
    assert await ledger.account_balance(account.id) == 50_000
    tasks = await Task.select().where(Task.dedupe_key == f"payment-currency:{first.payment_id}")
    assert len(tasks) == 1
    task = tasks[0]
    assert task["account"] == account.id and task["kind"] == "payment_currency_mismatch"
    assert "ARS" in task["title"] and "CLP" in task["title"]
    assert json.loads(task["data"])["payment"] == first.payment_id


# ---------------------------------------------------------------------------- receipts


async def test_the_receipt_is_queued_once_with_the_debtors_address_and_language(db, provider):
    account = await make_account()
    await with_email(account, "Recibo@Example.com", "en")
    await make_invoice(account, "N-1", 10_000, dt.date(2026, 8, 1))
    checkout = await make_checkout(account, provider, 10_000)
    pid = provider.put("approved", 10_000, "ARS", str(checkout.public_id))

    results = [await sync_payment(provider, pid, now=NOW) for _ in range(3)]

    rows = await Notification.select().where(
        Notification.idempotency_key == f"receipt:{results[0].payment_id}"
    )
    assert len(rows) == 1
    row = rows[0]
    assert (row["channel"], row["template"], row["status"]) == (
        "email",
        "payment_received",
        "queued",
    )
    assert (row["to_address"], row["language"]) == ("Recibo@Example.com", "en")
    assert row["account"] == account.id
    assert [r.notification_id for r in results] == [row["id"], None, None]


async def test_a_debtor_without_email_gets_a_blocked_receipt_row(db, provider):
    account = await make_account()
    checkout = await make_checkout(account, provider, 1_000)
    pid = provider.put("approved", 1_000, "ARS", str(checkout.public_id))

    result = await sync_payment(provider, pid, now=NOW)

    assert result.posted == "apply" and result.notification_id is None
    row = await Notification.objects().get(
        Notification.idempotency_key == f"receipt:{result.payment_id}"
    )
    assert row.status == "blocked" and row.blocked_reason


# ---------------------------------------------------------------------------- concurrency


async def test_ten_concurrent_syncs_of_one_payment_post_it_once(db, provider):
    account = await make_account()
    await with_email(account)
    await make_invoice(account, "C-1", 10_000, dt.date(2026, 8, 1))
    await make_invoice(account, "C-2", 10_000, dt.date(2026, 9, 1))
    checkout = await make_checkout(account, provider, 15_000)
    pid = provider.put("approved", 15_000, "ARS", str(checkout.public_id))

    results = await asyncio.gather(*(sync_payment(provider, pid, now=NOW) for _ in range(10)))

    assert sum(r.posted == "apply" for r in results) == 1
    assert sum(r.notification_id is not None for r in results) == 1
    payment_id = results[0].payment_id
    assert {r.payment_id for r in results} == {payment_id}
    assert await postings_of(payment_id) == ["apply"]
    assert await ledger.account_balance(account.id) == 5_000
    assert await PaymentAllocation.count().where(PaymentAllocation.payment == payment_id) == 2
    assert (
        await Notification.count().where(Notification.idempotency_key == f"receipt:{payment_id}")
        == 1
    )


async def test_concurrent_payments_to_one_account_never_pay_an_invoice_twice(db, provider):
    for round in range(5):
        account = await make_account()
        invoice = await make_invoice(account, f"C-3-{round}", 10_000, dt.date(2026, 8, 1))
        checkout = await make_checkout(account, provider, 10_000)
        ids = [provider.put("approved", 10_000, "ARS", str(checkout.public_id)) for _ in range(4)]

        await asyncio.gather(*(sync_payment(provider, pid, now=NOW) for pid in ids))

        allocated = await PaymentAllocation.raw(
            "SELECT coalesce(sum(amount), 0) AS total FROM payment_allocation WHERE invoice = {}",
            invoice.id,
        )
        assert allocated[0]["total"] == 10_000
        assert await ledger.account_balance(account.id) == -30_000


HISTORIES = [
    ["pending"],
    ["pending", "approved"],
    ["approved"],
    ["in_process", "rejected"],
    ["pending", "cancelled"],
    ["approved", "refunded"],
    ["pending", "approved", "refunded"],
    ["approved", "in_mediation", "charged_back"],
    ["approved", "in_mediation", "approved"],
]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    history=st.sampled_from(HISTORIES),
    seen=st.lists(st.integers(0, 2), min_size=0, max_size=8),
    data=st.data(),
)
async def test_any_order_of_deliveries_ends_in_the_final_status_effect(db, history, seen, data):
    """Deliveries observe any moment of the payment's history (the final one at least once)
    and are processed concurrently, in any order. Exactly-once posting and the final
    status's effect hold, whatever was processed last."""
    provider = ScriptedProvider()
    account = await make_account()
    await make_invoice(account, "H-1", 20_000, dt.date(2026, 8, 1))
    checkout = await make_checkout(account, provider, 8_000)
    pid = provider.put(history[-1], 8_000, "ARS", str(checkout.public_id))
    statuses = [history[i % len(history)] for i in seen]
    statuses.insert(data.draw(st.integers(0, len(statuses))), history[-1])
    provider.script[pid] = deque(statuses)

    results = await asyncio.gather(*(sync_payment(provider, pid, now=NOW) for _ in statuses))

    payment = await Payment.objects().get(Payment.id == results[0].payment_id)
    same_rank = (
        {"approved", "in_mediation"} if history[-1] in ("approved", "in_mediation") else set()
    )
    assert payment.status == history[-1] or payment.status in same_rank
    postings = await postings_of(payment.id)
    net = sum(e["amount"] for e in await entries_of(payment.id))
    if history[-1] in ("approved", "in_mediation"):
        assert postings == ["apply"] and net == -8_000
    elif history[-1] in ("refunded", "charged_back"):
        assert postings in ([], ["apply", "reverse"]) and net == 0
    else:
        assert postings == [] and net == 0
    assert sum(r.posted is not None for r in results) == len(postings)
    assert await ledger.account_balance(account.id) == 20_000 + net
    assert await checkout_of(checkout) == checkout_status([payment.status])


# ---------------------------------------------------------------------------- the inbox


def notification_body(payment_id: str, notification_id: int | None = None) -> dict:
    return {
        "action": "payment.updated",
        "api_version": "v1",
        "data": {"id": payment_id},
        "id": notification_id if notification_id is not None else secrets.randbelow(10**12),
        "live_mode": False,
        "type": "payment",
    }


async def test_the_inbox_keeps_one_event_per_provider_notification(db):
    body = notification_body("123")
    first = await receive_notification(
        provider="mercadopago", topic="payment", data_id="123", request_id="r-1", body=body
    )
    again = await receive_notification(
        provider="mercadopago", topic="payment", data_id="123", request_id="r-2", body=body
    )
    other = await receive_notification(
        provider="mercadopago",
        topic="payment",
        data_id="123",
        request_id="r-3",
        body=notification_body("123"),
    )
    assert first is not None and again is None and other not in (None, first)


async def test_without_a_notification_id_the_delivery_identifies_the_event(db):
    body = {"type": "payment", "data": {"id": "77"}}
    key = secrets.token_hex(4)
    a = await receive_notification(
        provider="mercadopago", topic="payment", data_id="77", request_id=key, body=body
    )
    b = await receive_notification(
        provider="mercadopago", topic="payment", data_id="77", request_id=key, body=body
    )
    assert a is not None and b is None


async def test_other_topics_are_stored_as_ignored(db, provider):
    event_id = await receive_notification(
        provider=provider.name,
        topic="merchant_order",
        data_id="5",
        request_id="r",
        body=notification_body("5"),
    )
    event = await WebhookEvent.objects().get(WebhookEvent.id == event_id)
    assert event.status == "ignored" and event.processed_at is not None
    assert await process_webhook_event(provider, event_id, now=NOW) is None
    assert provider.fetches == []


async def test_processing_an_event_syncs_its_payment_once(db, provider):
    account = await make_account()
    checkout = await make_checkout(account, provider, 2_000)
    pid = provider.put("approved", 2_000, "ARS", str(checkout.public_id))
    event_id = await receive_notification(
        provider=provider.name,
        topic="payment",
        data_id=pid,
        request_id="r",
        body=notification_body(pid),
    )

    result = await process_webhook_event(provider, event_id, now=NOW)
    repeat = await process_webhook_event(provider, event_id, now=NOW)

    assert result is not None and result.posted == "apply" and repeat is None
    event = await WebhookEvent.objects().get(WebhookEvent.id == event_id)
    assert event.status == "processed" and event.processed_at == NOW and event.error == ""
    assert provider.fetches == [pid]


async def test_a_transient_provider_error_keeps_the_event_for_a_retry(db, provider):
    account = await make_account()
    checkout = await make_checkout(account, provider, 2_000)
    pid = provider.put("approved", 2_000, "ARS", str(checkout.public_id))
    event_id = await receive_notification(
        provider=provider.name, topic="payment", data_id=pid, request_id="r", body={}
    )
    provider.failures = 1

    with pytest.raises(ProviderError):
        await process_webhook_event(provider, event_id, now=NOW)
    event = await WebhookEvent.objects().get(WebhookEvent.id == event_id)
    assert event.status == "received" and "provider down" in event.error

    result = await process_webhook_event(provider, event_id, now=NOW)
    assert result is not None and result.posted == "apply"


async def test_an_unknown_payment_marks_the_event_failed(db, provider):
    event_id = await receive_notification(
        provider=provider.name, topic="payment", data_id="999", request_id="r", body={}
    )
    assert await process_webhook_event(provider, event_id, now=NOW) is None
    event = await WebhookEvent.objects().get(WebhookEvent.id == event_id)
    assert event.status == "failed" and "999" in event.error


async def test_an_event_of_another_provider_fails_with_the_reason(db, provider):
    event_id = await receive_notification(
        provider="otro", topic="payment", data_id="1", request_id="r", body={}
    )
    assert await process_webhook_event(provider, event_id, now=NOW) is None
    event = await WebhookEvent.objects().get(WebhookEvent.id == event_id)
    assert event.status == "failed" and provider.name in event.error
    assert provider.fetches == []


# ---------------------------------------------------------------------------- lost notifications


async def test_refetch_finds_what_notifications_never_said(db, provider):
    start = dt.datetime.now(dt.UTC)
    account = await make_account()
    await make_invoice(account, "L-1", 30_000, dt.date(2026, 8, 1))
    # a voucher recorded as pending, expired since; the provider now says approved
    voucher_checkout = await make_checkout(account, provider, 10_000)
    voucher = provider.put(
        "pending",
        10_000,
        "ARS",
        str(voucher_checkout.public_id),
        expires_at=start + dt.timedelta(hours=1),
    )
    await sync_payment(provider, voucher, now=start)
    provider.set_status(voucher, "approved")
    # a notification stored but never processed (its job was lost)
    lost_checkout = await make_checkout(account, provider, 5_000)
    lost = provider.put("approved", 5_000, "ARS", str(lost_checkout.public_id))
    event_id = await receive_notification(
        provider=provider.name, topic="payment", data_id=lost, request_id="r", body={}
    )
    # a checkout paid at the provider that never notified anybody
    silent_checkout = await make_checkout(account, provider, 7_000)
    provider.put("approved", 7_000, "ARS", str(silent_checkout.public_id))
    later = start + dt.timedelta(hours=3)
    # a checkout opened an hour ago: too early to go looking for its payment
    recent = await make_checkout(account, provider, 1_000)
    provider.put("approved", 1_000, "ARS", str(recent.public_id))
    await CheckoutSession.update({CheckoutSession.created_at: later - dt.timedelta(hours=1)}).where(
        CheckoutSession.id == recent.id
    )

    count = await refetch_stale(provider, now=later)

    assert count == 3
    assert provider.searches == [str(silent_checkout.public_id)]
    assert await ledger.account_balance(account.id) == 30_000 - 10_000 - 5_000 - 7_000
    assert await checkout_of(voucher_checkout) == "approved"
    assert await checkout_of(silent_checkout) == "approved"
    assert await checkout_of(recent) == "created"
    event = await WebhookEvent.objects().get(WebhookEvent.id == event_id)
    assert event.status == "processed"
    # nothing is stale any more
    fetched = len(provider.fetches)
    assert await refetch_stale(provider, now=later) == 0
    assert len(provider.fetches) == fetched and len(provider.searches) == 1


async def test_refetch_stops_when_the_provider_is_down(db, provider):
    now = dt.datetime.now(dt.UTC)
    account = await make_account()
    checkout = await make_checkout(account, provider, 1_000)
    pid = provider.put("pending", 1_000, "ARS", str(checkout.public_id))
    await sync_payment(provider, pid, now=now - dt.timedelta(days=2))
    provider.failures = 5

    assert await refetch_stale(provider, now=now) == 0
    assert len(provider.fetches) == 2  # the sync above, then one failed try
