"""Outbound webhooks against a real receiver on 127.0.0.1 that checks every signature: one
delivery per event and endpoint, retries after failures, and the three places events are born."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from saldo.db import DB
from saldo.services import disputes, outbound, plan_review, plans
from saldo.services.ledger import apply_payment
from saldo.settings import Settings
from saldo.tables import StaffUser, WebhookDelivery, WebhookEndpoint
from tests.services.helpers import make_account, make_invoice
from tests.worker.test_payment_jobs import demo_settings, run, smtp  # noqa: F401  (fixtures)

SECRET_KEY = "test-secret-key-" + secrets.token_hex(8)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    signed: bool

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An ERP's webhook endpoint: verifies `X-Saldo-Signature` with its secret, records every
    request, and answers 500 to the next `fail` requests."""

    url: str = ""
    secret: str = ""
    fail: int = 0
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: dict[str, str], body: bytes) -> int:
        signed = outbound.verify_signature(
            self.secret, headers.get("x-saldo-signature"), body, now=_now()
        )
        with self.lock:
            self.requests.append(Received(headers, body, signed))
            if self.fail > 0:
                self.fail -= 1
                return 500
        return 204 if signed else 401


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            self.send_response(state.handle(headers, body))
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/saldo"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        yield http


@pytest.fixture
async def endpoints(db: Any) -> AsyncIterator[list[int]]:
    """Endpoints a test registers; switched off afterwards so later tests queue nothing for
    them (and their leftovers are not sent)."""
    made: list[int] = []
    yield made
    await WebhookEndpoint.update({WebhookEndpoint.active: False}).where(
        WebhookEndpoint.id.is_in(made or [0])
    )
    await WebhookDelivery.update({WebhookDelivery.status: "failed"}).where(
        WebhookDelivery.endpoint.is_in(made or [0]) & (WebhookDelivery.status == "pending")
    )


async def _subscribe(
    receiver: Receiver, endpoints: list[int], *events: str, secret_key: str = SECRET_KEY
) -> int:
    endpoint = await outbound.add_endpoint(receiver.url, events, secret_key=secret_key)
    receiver.secret = endpoint.secret
    endpoints.append(endpoint.id)
    return endpoint.id


async def _deliveries(endpoint_id: int) -> list[dict[str, Any]]:
    return (
        await WebhookDelivery.select()
        .where(WebhookDelivery.endpoint == endpoint_id)
        .order_by(WebhookDelivery.id)
    )


async def _deliver(
    client: httpx.AsyncClient, now: dt.datetime | None = None
) -> outbound.DeliveryRun:
    return await outbound.deliver_due(now=now or _now(), client=client, secret_key=SECRET_KEY)


async def _paid_account(amount: int = 12_000) -> tuple[Any, int]:
    account = await make_account()
    await make_invoice(account, f"WH-{secrets.token_hex(3)}", 10_000, dt.date(2026, 9, 1))
    applied = await apply_payment(
        account_id=account.id,
        provider="manual",
        provider_payment_id=f"wh-{secrets.token_hex(6)}",
        amount=amount,
        received_at=_now(),
        method="transfer",
    )
    return account, applied.payment_id


# ---------------------------------------------------------------------------- payment.applied


async def test_an_applied_payment_is_delivered_once_and_signed(
    receiver: Receiver, endpoints: list[int], client: httpx.AsyncClient
):
    endpoint_id = await _subscribe(receiver, endpoints, "payment.applied")
    account, payment_id = await _paid_account()
    [queued] = await _deliveries(endpoint_id)
    assert (queued["event"], queued["status"]) == ("payment.applied", "pending")
    assert queued["event_key"] == f"payment.applied:{payment_id}:{endpoint_id}"
    # the same payment again (a replayed bank line, a duplicate notification): nothing new
    await outbound.payment_applied(payment_id)
    assert len(await _deliveries(endpoint_id)) == 1

    run = await _deliver(client)
    assert run.delivered == 1
    [got] = receiver.requests
    assert got.signed
    assert got.headers["x-saldo-event"] == "payment.applied"
    assert got.headers["x-saldo-event-id"] == f"payment.applied:{payment_id}"
    assert got.json["type"] == "payment.applied"
    data = got.json["data"]
    assert (data["payment_id"], data["account_id"], data["amount"]) == (
        payment_id,
        account.id,
        12_000,
    )
    assert [a["amount"] for a in data["allocations"]] == [10_000, 2_000]  # invoice, then credit
    assert data["allocations"][1]["invoice_id"] is None
    assert data["balance"] == -2_000

    [done] = await _deliveries(endpoint_id)
    assert (done["status"], done["attempts"], done["delivered_at"] is not None) == (
        "delivered",
        1,
        True,
    )
    assert (await _deliver(client)).delivered == 0
    assert len(receiver.requests) == 1


async def test_each_subscribed_endpoint_gets_its_own_delivery(
    receiver: Receiver, endpoints: list[int], client: httpx.AsyncClient
):
    first = await _subscribe(receiver, endpoints, "payment.applied", "dispute.resolved")
    secret_first = receiver.secret
    second = await _subscribe(receiver, endpoints, "payment.applied")
    plans_only = await _subscribe(receiver, endpoints, "plan.approved")
    _, payment_id = await _paid_account()
    assert [len(await _deliveries(e)) for e in (first, second, plans_only)] == [1, 1, 0]

    await _deliver(client)
    assert len(receiver.requests) == 2
    ids = {r.headers["x-saldo-delivery"] for r in receiver.requests}
    assert len(ids) == 2  # two deliveries of one event
    assert {r.headers["x-saldo-event-id"] for r in receiver.requests} == {
        f"payment.applied:{payment_id}"
    }
    # each is signed with its own endpoint's secret
    signed_by_first = [
        r
        for r in receiver.requests
        if outbound.verify_signature(
            secret_first, r.headers["x-saldo-signature"], r.body, now=_now()
        )
    ]
    assert len(signed_by_first) == 1


async def test_a_failed_delivery_is_retried_later_with_the_same_event(
    receiver: Receiver, endpoints: list[int], client: httpx.AsyncClient
):
    endpoint_id = await _subscribe(receiver, endpoints, "payment.applied")
    await _paid_account()
    receiver.fail = 1
    now = _now()
    first = await _deliver(client, now)
    assert (first.delivered, first.retrying) == (0, 1)
    [pending] = await _deliveries(endpoint_id)
    assert (pending["status"], pending["attempts"], pending["last_error"]) == (
        "pending",
        1,
        "HTTP 500",
    )
    assert pending["next_attempt_at"] == now + outbound.RETRY_BASE

    assert (await _deliver(client, now + dt.timedelta(seconds=5))).delivered == 0  # not yet
    second = await _deliver(client, now + outbound.RETRY_BASE + dt.timedelta(seconds=1))
    assert second.delivered == 1
    assert len(receiver.requests) == 2
    assert receiver.requests[0].body == receiver.requests[1].body
    assert all(r.signed for r in receiver.requests)
    [done] = await _deliveries(endpoint_id)
    assert (done["status"], done["attempts"]) == ("delivered", 2)


def test_retries_back_off_exponentially_up_to_a_ceiling():
    delays = [outbound.retry_delay(n) for n in range(1, outbound.MAX_ATTEMPTS + 1)]
    assert delays[:3] == [outbound.RETRY_BASE, outbound.RETRY_BASE * 2, outbound.RETRY_BASE * 4]
    assert all(a <= b for a, b in itertools.pairwise(delays))
    assert max(delays) <= outbound.RETRY_MAX


async def test_an_endpoint_that_never_answers_is_given_up_after_the_last_attempt(
    receiver: Receiver, endpoints: list[int], client: httpx.AsyncClient
):
    receiver.url = "http://127.0.0.1:9/refused"  # discard port: nothing listens
    endpoint_id = await _subscribe(receiver, endpoints, "payment.applied")
    await _paid_account()
    now = _now()
    for attempt in range(1, outbound.MAX_ATTEMPTS + 1):
        run = await _deliver(client, now)
        assert (run.retrying, run.failed) == ((1, 0) if attempt < outbound.MAX_ATTEMPTS else (0, 1))
        now += outbound.RETRY_MAX + dt.timedelta(seconds=1)
    [given_up] = await _deliveries(endpoint_id)
    assert (given_up["status"], given_up["attempts"]) == ("failed", outbound.MAX_ATTEMPTS)
    assert "ConnectError" in given_up["last_error"]
    assert (await _deliver(client, now)).failed == 0


async def test_an_event_of_a_rolled_back_change_is_never_queued(
    receiver: Receiver, endpoints: list[int]
):
    endpoint_id = await _subscribe(receiver, endpoints, "dispute.resolved")
    with pytest.raises(RuntimeError):
        async with DB.transaction():
            assert await outbound.emit("dispute.resolved", 999_999_999, {"dispute_id": 1}) == 1
            raise RuntimeError("the change failed after the event was queued")
    assert await _deliveries(endpoint_id) == []


async def test_the_secret_is_stored_encrypted_and_useless_under_another_key(
    receiver: Receiver, endpoints: list[int], client: httpx.AsyncClient
):
    endpoint_id = await _subscribe(receiver, endpoints, "payment.applied")
    stored = (
        await WebhookEndpoint.select(WebhookEndpoint.secret_enc)
        .where(WebhookEndpoint.id == endpoint_id)
        .first()
    )
    assert stored is not None and receiver.secret not in stored["secret_enc"]
    await _paid_account()
    run = await outbound.deliver_due(now=_now(), client=client, secret_key="another-key")
    assert (run.delivered, run.retrying) == (0, 1)
    assert receiver.requests == []
    [pending] = await _deliveries(endpoint_id)
    assert "does not decrypt" in pending["last_error"]


def test_a_signature_is_refused_for_another_body_or_an_old_timestamp():
    body = b'{"id":"payment.applied:1"}'
    now = _now()
    header = outbound.sign("whsec_x", int(now.timestamp()), body)
    assert outbound.verify_signature("whsec_x", header, body, now=now)
    assert not outbound.verify_signature("whsec_x", header, body + b" ", now=now)
    assert not outbound.verify_signature("whsec_y", header, body, now=now)
    assert not outbound.verify_signature("whsec_x", header, body, now=now + dt.timedelta(minutes=6))
    assert not outbound.verify_signature("whsec_x", "v1=abc", body, now=now)
    assert not outbound.verify_signature("whsec_x", None, body, now=now)


@pytest.mark.parametrize(
    ("url", "events"),
    [
        ("ftp://erp.example.com/x", ["payment.applied"]),
        ("https://", ["payment.applied"]),
        ("https://erp.example.com/x", ["payment.refunded"]),
        ("https://erp.example.com/x", []),
    ],
)
async def test_a_bad_url_or_event_is_refused(db: Any, url: str, events: list[str]):
    from saldo.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        await outbound.add_endpoint(url, events, secret_key=SECRET_KEY)


# ---------------------------------------------------------------------------- plans and disputes


async def _staff() -> int:
    staff = StaffUser(email=f"wh.{secrets.token_hex(4)}@example.com", name="Revisor")
    await staff.save()
    return int(staff.id)


async def test_an_approved_plan_is_announced(
    receiver: Receiver, endpoints: list[int], client: httpx.AsyncClient
):
    endpoint_id = await _subscribe(receiver, endpoints, "plan.approved")
    account = await make_account()
    await make_invoice(account, "WH-PLAN", 90_000, _now().date() - dt.timedelta(days=10))
    now = _now()
    form = {
        "account": str(account.id),
        "installments": "3",
        "frequency": "monthly",
        "first_date": (now.date() + dt.timedelta(days=15)).isoformat(),
    }
    proposed = await plans.propose([account.debtor], account.id, form, now=now)
    assert await _deliveries(endpoint_id) == []  # a proposal is not an approval
    await plan_review.approve(proposed.plan_id, staff_id=await _staff(), now=now)

    assert (await _deliver(client)).delivered == 1
    [got] = receiver.requests
    assert got.signed and got.json["type"] == "plan.approved"
    data = got.json["data"]
    assert (data["plan_id"], data["account_id"], data["status"]) == (
        proposed.plan_id,
        account.id,
        "active",
    )
    assert sum(i["amount"] for i in data["installments"]) == data["total"] == 90_000


async def test_a_resolved_dispute_is_announced(
    receiver: Receiver, endpoints: list[int], client: httpx.AsyncClient
):
    endpoint_id = await _subscribe(receiver, endpoints, "dispute.resolved")
    account = await make_account()
    invoice = await make_invoice(account, "WH-DISP", 30_000, _now().date())
    now = _now()
    dispute_id = await disputes.open_dispute(
        [account.debtor],
        account_id=account.id,
        invoice_id=invoice.id,
        amount=5_000,
        reason_code="wrong_amount",
        now=now,
    )
    assert await _deliveries(endpoint_id) == []
    await disputes.resolve(
        dispute_id,
        outcome="partial",
        amount=2_000,
        explanation="Parte",
        staff_id=await _staff(),
        now=now,
    )

    assert (await _deliver(client)).delivered == 1
    [got] = receiver.requests
    data = got.json["data"]
    assert got.signed and got.json["type"] == "dispute.resolved"
    assert (data["dispute_id"], data["status"], data["amount"], data["resolved_amount"]) == (
        dispute_id,
        "partially_accepted",
        5_000,
        2_000,
    )
    assert data["invoice_number"] == "WH-DISP"


# ---------------------------------------------------------------------------- the job and the CLI


async def test_the_worker_job_delivers_what_is_due(
    db: Any,
    servers: Any,
    demo_settings: Settings,  # noqa: F811
    receiver: Receiver,
    endpoints: list[int],
):
    key = demo_settings.resolved_secret_key()
    await _subscribe(receiver, endpoints, "payment.applied", secret_key=key)
    await _paid_account()
    info = await run(servers, demo_settings, "deliver_webhooks")
    assert info.success, info.result
    assert info.result == {"delivered": 1, "retrying": 0, "failed": 0}
    assert [r.signed for r in receiver.requests] == [True]


async def test_saldo_webhook_add_prints_the_secret_once_and_it_signs_deliveries(
    receiver: Receiver, endpoints: list[int], client: httpx.AsyncClient
):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "saldo",
            "webhook",
            "add",
            receiver.url,
            "--events",
            "payment.applied,dispute.resolved",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, SECRET_KEY=SECRET_KEY),
    )
    assert done.returncode == 0, done.stderr
    secret = done.stdout.split("signing secret (shown only now): ")[1].strip()
    endpoint_id = int(done.stdout.split("#")[1].split()[0])
    endpoints.append(endpoint_id)
    receiver.secret = secret
    stored = await WebhookEndpoint.objects().get(WebhookEndpoint.id == endpoint_id)
    assert stored is not None and stored.url == receiver.url
    assert secret not in stored.secret_enc

    await _paid_account()
    assert (await _deliver(client)).delivered == 1
    assert receiver.requests[0].signed

    bad = subprocess.run(
        [sys.executable, "-m", "saldo", "webhook", "add", receiver.url, "--events", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, SECRET_KEY=SECRET_KEY),
    )
    assert bad.returncode == 2 and "payment.applied" in bad.stderr
