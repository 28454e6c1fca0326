"""`POST /webhooks/mercadopago`: signature first, then the inbox and one queued job.

The app runs in-process (httpx ASGI transport) against the real PostgreSQL and Redis; the queue
is inspected in Redis under this module's own key prefix.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar

from saldo.app import create_app
from saldo.services.receipts import ACCOUNT_PATH, PREFERENCES_PATH
from saldo.settings import Settings
from saldo.tables import WebhookEvent
from saldo.worker import deserialize, queue_name
from tests.fakes.mercadopago import FakeMercadoPago, Notification

SECRET = "whsec-" + secrets.token_hex(8)
PATH = "/webhooks/mercadopago"
OTHER_ID = str(1_300_000_000 + secrets.randbelow(10**8))  # a payment nobody signed for


@pytest.fixture
def prefix(servers: Any) -> str:
    return f"{servers.redis_prefix}webhook-{secrets.token_hex(3)}:"


@pytest.fixture
def build(servers: Any, web_settings: Settings, prefix: str) -> Callable[..., Litestar]:
    def make(**overrides: Any) -> Litestar:
        settings = dataclasses.replace(
            web_settings, **{"mercadopago_webhook_secret": SECRET, **overrides}
        )
        return create_app(settings, redis_prefix=prefix)

    return make


@pytest.fixture
async def post(db: Any, build: Callable[..., Litestar]) -> AsyncIterator[Callable[..., Any]]:
    apps: list[Litestar] = []

    async def send(
        note: Notification | None = None, *, content: bytes | None = None, **overrides: Any
    ) -> httpx.Response:
        app = build(**overrides)
        apps.append(app)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://mp.test") as client:
            assert note is not None
            body = content if content is not None else json.dumps(note.body).encode()
            return await client.post(PATH, params=note.query, headers=note.headers, content=body)

    yield send
    for app in apps:
        await app.state.queue.close()
        await app.state.redis.aclose()


@pytest.fixture(scope="module")
def mercadopago() -> FakeMercadoPago:
    return FakeMercadoPago()  # only its signed notifications are used: no server needed


def payment_id() -> str:
    return str(1_400_000_000 + secrets.randbelow(10**8))


async def events_for(data_id: str) -> list[dict[str, Any]]:
    return await WebhookEvent.select().where(WebhookEvent.resource_id == data_id)


async def queued_jobs(redis: Any, prefix: str) -> list[tuple[str, str, list[Any]]]:
    """(job id, function, args) of every job waiting in the queue under `prefix`."""
    jobs = []
    for raw_id in await redis.zrange(queue_name(prefix), 0, -1):
        job_id = raw_id.decode()
        data = deserialize(await redis.get(f"arq:job:{job_id}"))
        jobs.append((job_id, data["f"], list(data["a"])))
    return jobs


async def test_a_signed_notification_is_stored_and_its_job_queued(post, mercadopago, redis, prefix):
    data_id = payment_id()
    note = mercadopago.signed_notification(data_id, secret=SECRET)

    response = await post(note)

    assert response.status_code == 200
    answer = response.json()
    assert answer["status"] == "accepted"
    assert "set-cookie" not in response.headers
    [event] = await events_for(data_id)
    assert event["id"] == answer["event"]
    assert (event["provider"], event["topic"], event["status"]) == (
        "mercadopago",
        "payment",
        "received",
    )
    assert json.loads(event["payload"]) == note.body
    assert event["event_key"] == f"mercadopago:{note.body['id']}"
    assert await queued_jobs(redis, prefix) == [
        (f"{prefix}webhook:{event['id']}", "process_webhook_event", [event["id"]])
    ]


async def test_a_duplicate_answers_200_and_stores_nothing_more(post, mercadopago, redis, prefix):
    data_id = payment_id()
    note = mercadopago.signed_notification(data_id, secret=SECRET)

    first = await post(note)
    second = await post(note)

    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == {"status": "duplicate"}
    assert len(await events_for(data_id)) == 1
    assert len(await queued_jobs(redis, prefix)) == 1


async def test_a_new_notification_about_the_same_payment_is_a_new_event(post, mercadopago):
    data_id = payment_id()
    await post(mercadopago.signed_notification(data_id, secret=SECRET))
    await post(mercadopago.signed_notification(data_id, secret=SECRET))
    assert len(await events_for(data_id)) == 2


def no_signature(mp: FakeMercadoPago, pid: str) -> Notification:
    note = mp.signed_notification(pid, secret=SECRET)
    headers = {k: v for k, v in note.headers.items() if k != "x-signature"}
    return dataclasses.replace(note, headers=headers)


def another_secret(mp: FakeMercadoPago, pid: str) -> Notification:
    return mp.signed_notification(pid, secret="another-secret")


def another_payment(mp: FakeMercadoPago, pid: str) -> Notification:
    note = mp.signed_notification(pid, secret=SECRET)
    return dataclasses.replace(note, query={**note.query, "data.id": OTHER_ID})


def another_request(mp: FakeMercadoPago, pid: str) -> Notification:
    note = mp.signed_notification(pid, secret=SECRET)
    return dataclasses.replace(note, headers={**note.headers, "x-request-id": "someone-else"})


def garbage(mp: FakeMercadoPago, pid: str) -> Notification:
    note = mp.signed_notification(pid, secret=SECRET)
    return dataclasses.replace(note, headers={**note.headers, "x-signature": "ts=1,v1=zz"})


@pytest.mark.parametrize(
    "tamper", [no_signature, another_secret, another_payment, another_request, garbage]
)
async def test_a_bad_or_missing_signature_is_refused_and_nothing_stored(
    post, mercadopago, redis, prefix, tamper
):
    data_id = payment_id()
    note = tamper(mercadopago, data_id)

    response = await post(note)

    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 401
    assert await events_for(data_id) == []
    assert await events_for(OTHER_ID) == []
    assert await queued_jobs(redis, prefix) == []


@pytest.mark.parametrize("secret", [None, ""])
async def test_without_a_configured_secret_every_notification_is_refused(
    post, mercadopago, redis, prefix, secret
):
    data_id = payment_id()
    note = mercadopago.signed_notification(data_id, secret=SECRET)

    response = await post(note, mercadopago_webhook_secret=secret)

    assert response.status_code == 401
    assert await events_for(data_id) == []
    assert await queued_jobs(redis, prefix) == []


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]", b"\xff\xfe"])
async def test_a_signed_but_malformed_body_is_a_400_problem(
    post, mercadopago, redis, prefix, content
):
    data_id = payment_id()
    note = mercadopago.signed_notification(data_id, secret=SECRET)

    response = await post(note, content=content)

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await events_for(data_id) == []
    assert await queued_jobs(redis, prefix) == []


async def test_other_topics_are_kept_but_queue_nothing(post, mercadopago, redis, prefix):
    data_id = payment_id()
    note = mercadopago.signed_notification(data_id, secret=SECRET)
    note = dataclasses.replace(
        note, query={**note.query, "type": "merchant_order"}, body={**note.body, "type": "x"}
    )

    response = await post(note)

    assert response.status_code == 200 and response.json()["status"] == "ignored"
    [event] = await events_for(data_id)
    assert event["status"] == "ignored" and event["topic"] == "merchant_order"
    assert await queued_jobs(redis, prefix) == []


async def test_the_route_has_its_name_and_receipts_link_to_real_portal_pages(db, build):
    app = build()
    try:
        assert app.route_reverse("webhooks:mercadopago") == PATH
        assert app.route_reverse("account:balance") == ACCOUNT_PATH
        assert app.route_reverse("account:preferences") == PREFERENCES_PATH
    finally:
        await app.state.redis.aclose()
