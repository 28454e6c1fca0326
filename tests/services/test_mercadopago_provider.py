"""The Mercado Pago adapter over real HTTP against the fake API (tests/fakes/mercadopago.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import time
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saldo.money import EXPONENTS, to_decimal
from saldo.payments import (
    CheckoutItem,
    CheckoutRequest,
    ProviderError,
    ProviderPaymentNotFound,
    provider_from_settings,
)
from saldo.payments.mercadopago import MercadoPagoProvider, payment_from_json, unit_price
from saldo.settings import Settings
from tests.fakes.mercadopago import FakeMercadoPago

EXPIRES = dt.datetime(2026, 11, 2, 18, 30, tzinfo=dt.timezone(dt.timedelta(hours=-3)))


def checkout(currency: str = "ARS", *amounts: int, key: str = "checkout-1") -> CheckoutRequest:
    return CheckoutRequest(
        reference="9b1f7a52-3c1e-4a55-a0a4-6b0b4d1f2a10",
        currency=currency,
        items=[CheckoutItem(f"Factura A-{n}", amount) for n, amount in enumerate(amounts, 1)],
        payer_email="ñandu@example.com",
        back_urls={
            "success": "https://saldo.example/pay/return?result=success",
            "pending": "https://saldo.example/pay/return?result=pending",
            "failure": "https://saldo.example/pay/return?result=failure",
        },
        notification_url="https://saldo.example/webhooks/mercadopago",
        expires_at=EXPIRES,
        idempotency_key=key,
    )


@pytest.fixture
def mp():
    with FakeMercadoPago(access_token="TEST-token") as fake:
        yield fake


@pytest.fixture
def provider(mp):
    return MercadoPagoProvider("TEST-token", api_url=mp.url, timeout=5.0)


def unused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------------- checkout


async def test_preference_has_exact_ars_amounts_urls_expiry_and_payer(mp, provider):
    request = checkout("ARS", 123456, 5)
    created = await provider.create_checkout(request)

    stored = mp.preferences[created.preference_id]
    assert created.init_point == f"{mp.url}/checkout/v1/redirect?pref_id={created.preference_id}"
    assert [(i["title"], i["quantity"], i["currency_id"]) for i in stored["items"]] == [
        ("Factura A-1", 1, "ARS"),
        ("Factura A-2", 1, "ARS"),
    ]
    (sent,) = mp.requests
    exact = json.loads(sent.body, parse_float=Decimal)
    assert [i["unit_price"] for i in exact["items"]] == [Decimal("1234.56"), Decimal("0.05")]
    assert stored["external_reference"] == request.reference
    assert stored["back_urls"] == request.back_urls
    assert stored["auto_return"] == "approved"
    assert stored["notification_url"] == request.notification_url
    assert stored["expires"] is True
    assert dt.datetime.fromisoformat(stored["expiration_date_to"]) == EXPIRES
    assert stored["expiration_date_to"].endswith("-03:00")
    assert stored["payer"] == {"email": "ñandu@example.com"}
    assert sent.headers["authorization"] == "Bearer TEST-token"
    assert sent.headers["x-idempotency-key"] == "checkout-1"


async def test_clp_unit_price_is_a_whole_number(mp, provider):
    created = await provider.create_checkout(checkout("CLP", 15000))
    (sent,) = mp.requests
    assert b'"unit_price": 15000,' in sent.body
    assert mp.preferences[created.preference_id]["items"][0]["currency_id"] == "CLP"


async def test_the_same_idempotency_key_gives_back_the_same_preference(mp, provider):
    first = await provider.create_checkout(checkout("ARS", 1000, key="checkout-7"))
    replay = await provider.create_checkout(checkout("ARS", 1000, key="checkout-7"))
    other = await provider.create_checkout(checkout("ARS", 1000, key="checkout-8"))
    assert replay == first
    assert other.preference_id != first.preference_id
    assert len(mp.preferences) == 2


async def test_a_refused_preference_is_a_permanent_provider_error(mp, provider):
    request = checkout("ARS", 1000)
    bad = CheckoutRequest(**{**request.__dict__, "items": [CheckoutItem("  ", 1000)]})
    with pytest.raises(ProviderError) as caught:
        await provider.create_checkout(bad)
    assert caught.value.status == 400 and caught.value.transient is False
    assert "item.title needed" in str(caught.value)
    assert mp.preferences == {}


async def test_a_wrong_access_token_is_a_permanent_provider_error(mp):
    provider = MercadoPagoProvider("TEST-wrong", api_url=mp.url)
    with pytest.raises(ProviderError) as caught:
        await provider.create_checkout(checkout("ARS", 1000))
    assert caught.value.status == 401 and caught.value.transient is False


async def test_requests_no_provider_can_take_are_refused_before_sending(mp, provider):
    request = checkout("ARS", 1000)
    for changes in (
        {"items": []},
        {"expires_at": EXPIRES.replace(tzinfo=None)},
        {"idempotency_key": ""},
        {"idempotency_key": "k" * 65},
        {"currency": "XXX"},
    ):
        with pytest.raises(ValueError):
            await provider.create_checkout(CheckoutRequest(**{**request.__dict__, **changes}))
    assert mp.requests == []


@settings(max_examples=300)
@given(
    currency=st.sampled_from(sorted(EXPONENTS)),
    amount=st.integers(min_value=1, max_value=10**14),
)
def test_unit_price_is_the_exact_amount_as_json(currency, amount):
    number = unit_price(amount, currency)
    text = json.dumps(number)
    assert Decimal(text) == to_decimal(amount, currency)
    if EXPONENTS[currency] == 0:
        assert isinstance(number, int)


# ---------------------------------------------------------------------- payments


async def test_fetch_maps_an_approved_payment_exactly(mp, provider):
    payment_id = mp.add_payment(
        status="approved",
        amount="1234.56",
        currency="ARS",
        external_reference="ref-1",
        payment_type_id="credit_card",
        payment_method_id="visa",
    )
    payment = await provider.fetch_payment(payment_id)
    raw = mp.payment(payment_id)
    assert (payment.id, payment.status, payment.status_detail) == (
        payment_id,
        "approved",
        "accredited",
    )
    assert (payment.amount, payment.currency) == (123456, "ARS")
    assert (payment.external_reference, payment.method) == ("ref-1", "credit_card")
    assert payment.approved_at == dt.datetime.fromisoformat(raw["date_approved"])
    assert payment.approved_at is not None and payment.approved_at.utcoffset() is not None
    assert payment.expires_at is None
    assert payment.raw == raw


async def test_fetch_maps_a_pending_voucher_with_its_expiry(mp, provider):
    lapses = dt.datetime(2026, 11, 5, 23, 59, 59, tzinfo=dt.UTC)
    payment_id = mp.add_payment(
        status="pending",
        amount="15000",
        currency="CLP",
        external_reference="ref-2",
        status_detail="pending_waiting_payment",
        payment_type_id="ticket",
        payment_method_id="servipag",
        date_of_expiration=lapses,
    )
    payment = await provider.fetch_payment(payment_id)
    assert (payment.status, payment.status_detail, payment.method) == (
        "pending",
        "pending_waiting_payment",
        "ticket",
    )
    assert (payment.amount, payment.currency) == (15000, "CLP")
    assert payment.approved_at is None
    assert payment.expires_at == lapses

    mp.set_status(payment_id, "approved", "accredited")
    assert (await provider.fetch_payment(payment_id)).status == "approved"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    currency=st.sampled_from(sorted(EXPONENTS)),
    amount=st.integers(min_value=1, max_value=10**13),
)
def test_fetched_amounts_equal_the_minor_units_paid(mp, currency, amount):
    provider = MercadoPagoProvider("TEST-token", api_url=mp.url)
    payment_id = mp.add_payment(
        status="approved",
        amount=to_decimal(amount, currency),
        currency=currency,
        external_reference="prop",
    )
    payment = asyncio.run(provider.fetch_payment(payment_id))
    assert (payment.amount, payment.currency) == (amount, currency)


@pytest.mark.parametrize(("amount", "currency"), [("10.005", "ARS"), ("100.5", "CLP")])
async def test_an_amount_finer_than_the_currency_is_an_error(mp, provider, amount, currency):
    payment_id = mp.add_payment(
        status="approved", amount=amount, currency=currency, external_reference="r"
    )
    with pytest.raises(ProviderError) as caught:
        await provider.fetch_payment(payment_id)
    assert caught.value.transient is False
    assert "decimals" in str(caught.value)


def test_payment_json_edge_cases_map_or_fail_cleanly():
    base = {
        "id": 1,
        "status": "approved",
        "status_detail": None,
        "transaction_amount": 99.9,
        "currency_id": "MXN",
        "external_reference": None,
        "payment_type_id": None,
        "payment_method_id": "oxxo",
        "date_approved": "2026-11-01T10:00:00.000-04:00",
    }
    payment = payment_from_json(base)
    assert (payment.amount, payment.external_reference, payment.status_detail) == (9990, "", "")
    assert payment.method == "oxxo"
    assert payment.approved_at == dt.datetime(2026, 11, 1, 14, 0, tzinfo=dt.UTC)
    for broken in (
        {k: v for k, v in base.items() if k != "transaction_amount"},
        {k: v for k, v in base.items() if k != "id"},
        {**base, "transaction_amount": None},
        {**base, "transaction_amount": True},
        {**base, "transaction_amount": "NaN"},
        {**base, "currency_id": "JPY"},
        {**base, "date_approved": "2026-11-01T10:00:00"},  # no offset
        {**base, "date_approved": "yesterday"},
        ["not", "a", "payment"],
    ):
        with pytest.raises(ProviderError):
            payment_from_json(broken)


async def test_an_unknown_payment_is_not_found(mp, provider):
    with pytest.raises(ProviderPaymentNotFound):
        await provider.fetch_payment("1")
    with pytest.raises(ProviderPaymentNotFound):
        await provider.fetch_payment(" ")


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_server_errors_and_throttling_are_transient(mp, provider, status):
    payment_id = mp.add_payment(
        status="approved", amount="1", currency="ARS", external_reference="r"
    )
    mp.fail_next(1, status=status)
    with pytest.raises(ProviderError) as caught:
        await provider.fetch_payment(payment_id)
    assert caught.value.transient is True and caught.value.status == status
    assert (await provider.fetch_payment(payment_id)).amount == 100  # the caller's retry works
    assert len(mp.requests) == 2  # the adapter itself did not retry


async def test_a_failing_preference_request_is_transient(mp, provider):
    mp.fail_next(1, status=500)
    with pytest.raises(ProviderError) as caught:
        await provider.create_checkout(checkout("ARS", 1000))
    assert caught.value.transient is True
    assert mp.preferences == {}


async def test_an_unreachable_server_fails_fast():
    provider = MercadoPagoProvider("TEST-token", api_url=unused_url(), timeout=5.0)
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await provider.fetch_payment("123")
    assert caught.value.transient is True
    with pytest.raises(ProviderError):
        await provider.create_checkout(checkout("ARS", 1000))
    assert time.monotonic() - started < 2


async def test_a_slow_server_times_out(mp):
    provider = MercadoPagoProvider("TEST-token", api_url=mp.url, timeout=0.2)
    mp.delay = 1.0
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await provider.fetch_payment("123")
    assert caught.value.transient is True
    assert time.monotonic() - started < 0.9


async def test_calls_do_not_block_the_event_loop(mp, provider):
    payment_id = mp.add_payment(
        status="approved", amount="5", currency="ARS", external_reference="r"
    )
    mp.delay = 0.5
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        payment = await provider.fetch_payment(payment_id)
    finally:
        task.cancel()
    assert payment.amount == 500
    assert ticks >= 20  # a blocking call would have frozen the ticker for the whole 0.5 s


async def test_search_finds_every_payment_of_a_reference(mp, provider):
    first = mp.add_payment(status="rejected", amount="10", currency="ARS", external_reference="A")
    second = mp.add_payment(status="approved", amount="10", currency="ARS", external_reference="A")
    mp.add_payment(status="approved", amount="10", currency="ARS", external_reference="B")
    found = await provider.search_payments("A")
    assert [(p.id, p.status) for p in found] == [(first, "rejected"), (second, "approved")]
    assert mp.requests[-1].query["external_reference"] == "A"
    assert await provider.search_payments("nothing") == []


async def test_search_reads_every_page(mp, provider):
    ids = [
        mp.add_payment(status="rejected", amount="1", currency="ARS", external_reference="many")
        for _ in range(130)
    ]
    found = await provider.search_payments("many")
    assert sorted(p.id for p in found) == sorted(ids)
    assert [r.query["offset"] for r in mp.requests] == ["0", "100"]


def test_settings_with_a_token_choose_mercado_pago():
    settings = Settings.from_env(
        dotenv=None,
        environ={"MERCADOPAGO_ACCESS_TOKEN": "TEST-token", "MERCADOPAGO_API_URL": "http://x"},
    )
    provider = provider_from_settings(settings)
    assert isinstance(provider, MercadoPagoProvider)
    assert (provider.name, provider.simulated) == ("mercadopago", False)
