"""The fake Mercado Pago behaves like the API for what Saldo's tests lean on."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from saldo.payments.signature import verify
from tests.fakes.mercadopago import FakeMercadoPago

AUTH = {"Authorization": "Bearer TEST-token"}


def preference(reference: str = "ref-1", **item: object) -> dict[str, object]:
    return {
        "items": [
            {"title": "Saldo", "quantity": 1, "unit_price": 1234.56, "currency_id": "ARS", **item}
        ],
        "external_reference": reference,
    }


@pytest.fixture
def mp():
    with FakeMercadoPago(access_token="TEST-token") as fake:
        yield fake


def test_requests_without_the_access_token_get_401(mp):
    for headers in ({}, {"Authorization": "Bearer other"}):
        answer = httpx.get(f"{mp.url}/v1/payments/1", headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"] == "unauthorized"
    answer = httpx.post(f"{mp.url}/checkout/preferences", json=preference())
    assert answer.status_code == 401
    assert mp.preferences == {}


def test_a_preference_is_created_echoed_and_readable(mp):
    answer = httpx.post(f"{mp.url}/checkout/preferences", json=preference(), headers=AUTH)
    assert answer.status_code == 201
    created = answer.json()
    assert created["init_point"] == f"{mp.url}/checkout/v1/redirect?pref_id={created['id']}"
    assert created["sandbox_init_point"].endswith(f"pref_id={created['id']}")
    assert created["items"] == preference()["items"]
    assert mp.preferences == {created["id"]: preference()}
    assert mp.preference_for("ref-1")["id"] == created["id"]
    assert mp.preference_for("other") is None
    again = httpx.get(f"{mp.url}/checkout/preferences/{created['id']}", headers=AUTH)
    assert again.json() == created
    assert httpx.get(f"{mp.url}/checkout/preferences/nope", headers=AUTH).status_code == 404


def test_the_same_idempotency_key_returns_the_same_preference(mp):
    headers = {**AUTH, "X-Idempotency-Key": "checkout-1"}
    first = httpx.post(f"{mp.url}/checkout/preferences", json=preference(), headers=headers)
    second = httpx.post(f"{mp.url}/checkout/preferences", json=preference(), headers=headers)
    other = httpx.post(
        f"{mp.url}/checkout/preferences",
        json=preference(),
        headers={**AUTH, "X-Idempotency-Key": "checkout-2"},
    )
    assert first.json()["id"] == second.json()["id"] != other.json()["id"]
    assert len(mp.preferences) == 2


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"external_reference": "r"}, "invalid_items"),
        (preference(title=""), "invalid_title"),
        (preference(quantity=0), "invalid_quantity"),
        (preference(currency_id="XXX"), "invalid_currency_id"),
        (preference(unit_price="12.00"), "invalid_unit_price"),
        (preference(unit_price=0), "invalid_unit_price"),
        (preference(unit_price=1.005), "invalid_unit_price"),
        (preference(unit_price=100.5, currency_id="CLP"), "invalid_unit_price"),
        (preference(reference=""), "invalid_external_reference"),
    ],
)
def test_invalid_preferences_get_mercado_pagos_400(mp, body, code):
    answer = httpx.post(f"{mp.url}/checkout/preferences", json=body, headers=AUTH)
    assert answer.status_code == 400
    error = answer.json()
    assert error["error"] == "bad_request" and error["status"] == 400
    assert code in [c["code"] for c in error["cause"]]
    assert mp.preferences == {}


def test_payments_are_served_searched_and_moved_on(mp):
    expiry = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    paid = mp.add_payment(
        status="approved", amount="1234.56", currency="ARS", external_reference="A"
    )
    ticket = mp.add_payment(
        status="pending",
        amount="15000",
        currency="CLP",
        external_reference="A",
        status_detail="pending_waiting_payment",
        payment_type_id="ticket",
        payment_method_id="servipag",
        date_of_expiration=expiry,
    )
    mp.add_payment(status="approved", amount="1", currency="ARS", external_reference="B")
    body = httpx.get(f"{mp.url}/v1/payments/{paid}", headers=AUTH).json()
    assert body["id"] == int(paid) and body["status"] == "approved"
    assert body["transaction_amount"] == 1234.56 and body["currency_id"] == "ARS"
    assert dt.datetime.fromisoformat(body["date_approved"]).utcoffset() is not None
    pending = httpx.get(f"{mp.url}/v1/payments/{ticket}", headers=AUTH).json()
    assert pending["transaction_amount"] == 15000 and pending["date_approved"] is None
    assert dt.datetime.fromisoformat(pending["date_of_expiration"]) == expiry

    found = httpx.get(
        f"{mp.url}/v1/payments/search", params={"external_reference": "A"}, headers=AUTH
    ).json()
    assert [p["id"] for p in found["results"]] == [int(paid), int(ticket)]
    assert found["paging"]["total"] == 2

    mp.set_status(ticket, "approved", "accredited")
    moved = httpx.get(f"{mp.url}/v1/payments/{ticket}", headers=AUTH).json()
    assert moved["status"] == "approved" and moved["date_approved"] is not None

    missing = httpx.get(f"{mp.url}/v1/payments/1", headers=AUTH)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_fail_next_fails_exactly_that_many_requests(mp):
    paid = mp.add_payment(status="approved", amount="10", currency="ARS", external_reference="A")
    mp.fail_next(2, status=503)
    statuses = [
        httpx.get(f"{mp.url}/v1/payments/{paid}", headers=AUTH).status_code for _ in range(3)
    ]
    assert statuses == [503, 503, 200]
    assert [r.path for r in mp.requests] == [f"/v1/payments/{paid}"] * 3


def test_requests_are_recorded_with_query_headers_and_body(mp):
    httpx.post(
        f"{mp.url}/checkout/preferences?x=1",
        json=preference(),
        headers={**AUTH, "X-Idempotency-Key": "k"},
    )
    (recorded,) = mp.requests
    assert (recorded.method, recorded.path, recorded.query) == (
        "POST",
        "/checkout/preferences",
        {"x": "1"},
    )
    assert recorded.headers["x-idempotency-key"] == "k"
    assert recorded.json == preference()
    assert json.loads(recorded.body) == preference()


def test_requests_are_served_concurrently(mp):
    mp.delay = 0.3
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        codes = list(
            pool.map(
                lambda _: httpx.get(f"{mp.url}/v1/payments/1", headers=AUTH).status_code, range(8)
            )
        )
    assert codes == [404] * 8
    assert time.monotonic() - started < 1.5  # eight 0.3 s answers in one go, not 2.4 s


def test_state_is_safe_under_concurrent_writers(mp):
    def add(n: int) -> str:
        return mp.add_payment(
            status="approved", amount="1", currency="ARS", external_reference=f"r{n % 3}"
        )

    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(add, range(200)))
    assert len(set(ids)) == 200
    threads = [threading.Thread(target=lambda: mp.fail_next(1)) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = [
        httpx.get(f"{mp.url}/v1/payments/{ids[0]}", headers=AUTH).status_code for _ in range(11)
    ]
    assert codes == [500] * 10 + [200]


def test_signed_notifications_verify_with_the_same_secret(mp):
    paid = mp.add_payment(status="approved", amount="10", currency="ARS", external_reference="A")
    first = mp.signed_notification(paid, secret="s3cret")
    second = mp.signed_notification(
        paid, secret="s3cret", request_id="req-1", ts_ms=1_700_000_000_000
    )
    assert first.query == {"data.id": paid, "type": "payment"}
    assert first.query_string == f"data.id={paid}&type=payment"
    assert first.body["data"] == {"id": paid} and first.body["type"] == "payment"
    assert first.body["action"] == "payment.updated" and first.body["live_mode"] is False
    assert isinstance(first.body["id"], int) and first.body["id"] != second.body["id"]
    assert second.headers["x-request-id"] == "req-1"
    assert second.headers["x-signature"].startswith("ts=1700000000000,v1=")
    for note in (first, second):
        assert verify(
            secret="s3cret",
            x_signature=note.headers["x-signature"],
            x_request_id=note.headers["x-request-id"],
            data_id=note.query["data.id"],
        )
        assert not verify(
            secret="other",
            x_signature=note.headers["x-signature"],
            x_request_id=note.headers["x-request-id"],
            data_id=note.query["data.id"],
        )


def test_start_and_stop_free_the_port():
    fake = FakeMercadoPago().start()
    url = fake.url
    assert httpx.get(f"{url}/v1/payments/1", headers=AUTH).status_code == 404
    fake.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/v1/payments/1", headers=AUTH)
    with pytest.raises(RuntimeError):
        _ = fake.url
