"""Demo mode's provider keeps Mercado Pago's side of a payment in `simulated_payment`."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid

import pytest

from saldo.payments import (
    CheckoutItem,
    CheckoutRequest,
    ProviderPaymentNotFound,
    provider_from_settings,
)
from saldo.payments.simulated import VOUCHER_LIFETIME, SimulatedProvider
from saldo.settings import Settings
from saldo.tables import Account, CheckoutSession

from .helpers import make_account


async def make_checkout(account: Account, amount: int) -> CheckoutSession:
    checkout = CheckoutSession(
        account=account.id, amount=amount, currency=account.currency, payer_email="a@example.com"
    )
    await checkout.save()
    return checkout


@pytest.fixture
def provider() -> SimulatedProvider:
    return SimulatedProvider()


async def test_checkout_points_to_the_demo_page(provider):
    reference = str(uuid.uuid4())
    created = await provider.create_checkout(
        CheckoutRequest(
            reference=reference,
            currency="ARS",
            items=[CheckoutItem("Factura", 1000)],
            payer_email="a@example.com",
            back_urls={},
            notification_url="",
            expires_at=dt.datetime.now(dt.UTC),
            idempotency_key="k",
        )
    )
    assert created.preference_id == f"sim-{reference}"
    assert created.init_point == f"/pay/simulated/{reference}"


async def test_an_approved_simulation_is_fetched_like_a_real_payment(db, provider):
    account = await make_account("ARS")
    checkout = await make_checkout(account, 123456)
    before = dt.datetime.now(dt.UTC)
    payment = await provider.simulate(str(checkout.public_id), "approved")
    assert (payment.status, payment.status_detail, payment.method) == (
        "approved",
        "accredited",
        "account_money",
    )
    assert (payment.amount, payment.currency) == (123456, "ARS")
    assert payment.external_reference == str(checkout.public_id)
    assert payment.approved_at is not None
    assert before - dt.timedelta(seconds=5) <= payment.approved_at <= dt.datetime.now(dt.UTC)
    assert payment.expires_at is None
    assert payment.raw["transaction_amount"] == "1234.56"
    assert payment.raw["id"] == int(payment.id)
    json.dumps(payment.raw)  # storable as the webhook/payment payload
    assert await provider.fetch_payment(payment.id) == payment


async def test_a_pending_voucher_lapses_in_three_days_and_can_be_paid(db, provider):
    account = await make_account("CLP")
    checkout = await make_checkout(account, 15000)
    payment = await provider.simulate(str(checkout.public_id), "pending")
    assert (payment.status, payment.method, payment.amount) == ("pending", "ticket", 15000)
    assert payment.approved_at is None
    created = dt.datetime.fromisoformat(payment.raw["date_created"])  # to the millisecond
    assert payment.expires_at is not None
    assert abs(payment.expires_at - (created + VOUCHER_LIFETIME)) < dt.timedelta(milliseconds=1)
    assert payment.raw["date_of_expiration"] == payment.expires_at.isoformat(
        timespec="milliseconds"
    )

    await provider.set_status(payment.id, "approved", "accredited")
    paid = await provider.fetch_payment(payment.id)
    assert (paid.status, paid.status_detail) == ("approved", "accredited")
    assert paid.approved_at is not None and paid.approved_at > payment.expires_at - VOUCHER_LIFETIME
    assert paid.expires_at is None


async def test_a_rejected_attempt_can_be_followed_by_an_approved_one(db, provider):
    account = await make_account()
    checkout = await make_checkout(account, 5000)
    rejected = await provider.simulate(str(checkout.public_id), "rejected")
    assert (rejected.status, rejected.status_detail) == (
        "rejected",
        "cc_rejected_insufficient_amount",
    )
    assert rejected.approved_at is None
    approved = await provider.simulate(str(checkout.public_id), "approved")
    assert approved.id != rejected.id
    found = await provider.search_payments(str(checkout.public_id))
    assert [(p.id, p.status) for p in found] == [
        (rejected.id, "rejected"),
        (approved.id, "approved"),
    ]


async def test_a_checkout_is_never_paid_twice(db, provider):
    account = await make_account()
    for _ in range(5):  # concurrent double submits: without the row lock most rounds pay twice
        checkout = await make_checkout(account, 5000)
        reference = str(checkout.public_id)
        payments = await asyncio.gather(
            *[provider.simulate(reference, "approved") for _ in range(4)]
        )
        assert len({p.id for p in payments}) == 1
        again = await provider.simulate(reference, "rejected")
        assert again.id == payments[0].id and again.status == "approved"
        assert [p.id for p in await provider.search_payments(reference)] == [payments[0].id]


async def test_search_only_returns_the_references_payments(db, provider):
    account = await make_account()
    mine = await make_checkout(account, 1000)
    other = await make_checkout(account, 2000)
    paid = await provider.simulate(str(mine.public_id), "approved")
    await provider.simulate(str(other.public_id), "approved")
    assert [p.id for p in await provider.search_payments(str(mine.public_id))] == [paid.id]
    assert await provider.search_payments(str(uuid.uuid4())) == []
    assert await provider.search_payments("not-a-uuid") == []


async def test_refund_moves_the_status_on(db, provider):
    account = await make_account()
    checkout = await make_checkout(account, 1000)
    paid = await provider.simulate(str(checkout.public_id), "approved")
    await provider.set_status(paid.id, "refunded", "refunded")
    refunded = await provider.fetch_payment(paid.id)
    assert (refunded.status, refunded.status_detail) == ("refunded", "refunded")
    assert refunded.approved_at is None


@pytest.mark.parametrize("payment_id", ["2147483000", "abc", "", " ", "-1", "0", "²", "9" * 30])
async def test_unknown_payment_ids_are_not_found(db, provider, payment_id):
    with pytest.raises(ProviderPaymentNotFound):
        await provider.fetch_payment(payment_id)
    with pytest.raises(ProviderPaymentNotFound):
        await provider.set_status(payment_id, "approved")


async def test_unknown_checkouts_and_outcomes_are_refused(db, provider):
    with pytest.raises(ProviderPaymentNotFound):
        await provider.simulate(str(uuid.uuid4()), "approved")
    with pytest.raises(ProviderPaymentNotFound):
        await provider.simulate("not-a-uuid", "approved")
    account = await make_account()
    checkout = await make_checkout(account, 1000)
    with pytest.raises(ValueError):
        await provider.simulate(str(checkout.public_id), "stolen")
    assert await provider.search_payments(str(checkout.public_id)) == []


def test_settings_without_a_token_choose_the_simulated_provider():
    provider = provider_from_settings(Settings.from_env(dotenv=None, environ={}))
    assert isinstance(provider, SimulatedProvider)
    assert (provider.name, provider.simulated) == ("simulated", True)
