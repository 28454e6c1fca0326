"""Acceptance: Mercado Pago notifications, duplicated, shuffled and concurrent, through the real
webhook endpoint and real arq workers (stopped and restarted mid-run), post every payment
exactly once, and every applied payment's receipt arrives once, with its PDF.

Outside pieces are real servers on loopback: the fake Mercado Pago API (tests/fakes), the SMTP
sink, PostgreSQL and Redis. The expected balances come from an independent model computed from
the fake's final payment statuses, not from anything Saldo wrote.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import secrets
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from saldo.app import create_app
from saldo.money import parse_amount
from saldo.services.ledger import account_balance
from saldo.settings import Settings
from saldo.tables import (
    Account,
    CheckoutSession,
    Creditor,
    Debtor,
    EntryKind,
    Invoice,
    LedgerEntry,
    Payment,
    PaymentPosting,
    WebhookEvent,
)
from saldo.worker import build_worker, open_queue
from tests.fakes.mercadopago import FakeMercadoPago
from tests.smtp_sink import SmtpSink

SECRET = "whsec-" + secrets.token_hex(8)
APPLIED = ("approved", "in_mediation")


@dataclass
class Pay:
    """One payment at Mercado Pago: its first status, and where it ends."""

    first: str
    final: str
    amount: str
    pid: str = ""


@dataclass
class Case:
    label: str
    currency: str
    language: str
    invoices: list[tuple[str, str, dt.date]]  # number, total, due date
    payments: list[Pay]
    prefer: list[int] = field(default_factory=list)  # indexes into invoices
    account_id: int = 0
    invoice_ids: list[int] = field(default_factory=list)
    email: str = ""
    reference: str = ""
    checkout_id: int = 0


def portfolio() -> list[Case]:
    d = dt.date
    return [
        Case("aprobado", "ARS", "es",
             [("A-1", "100.00", d(2026, 8, 1)), ("A-2", "50.00", d(2026, 9, 1))],
             [Pay("approved", "approved", "120.00")], prefer=[1]),
        Case("sobrepago", "ARS", "en",
             [("B-1", "80.00", d(2026, 8, 10))],
             [Pay("approved", "approved", "95.50")]),
        Case("reembolsado", "CLP", "es",
             [("C-1", "25000", d(2026, 7, 1)), ("C-2", "10000", d(2026, 8, 1))],
             [Pay("approved", "refunded", "30000")]),
        Case("contracargo", "CLP", "es",
             [("D-1", "40000", d(2026, 8, 1))],
             [Pay("approved", "charged_back", "40000")]),
        Case("rechazado-y-aprobado", "ARS", "es",
             [("E-1", "60.00", d(2026, 9, 1))],
             [Pay("rejected", "rejected", "60.00"), Pay("pending", "approved", "60.00")]),
        Case("pendiente", "CLP", "en",
             [("F-1", "15000", d(2026, 9, 15))],
             [Pay("pending", "pending", "15000")]),
        Case("clp-aprobado", "CLP", "es",
             [("G-1", "12345", d(2026, 6, 1)), ("G-2", "5000", d(2026, 10, 1))],
             [Pay("approved", "approved", "17345")]),
    ]  # fmt: skip


async def build_portfolio(cases: list[Case]) -> Creditor:
    creditor = Creditor(name=f"Acreedor MP {secrets.token_hex(3)}", country="AR")
    await creditor.save()
    for case in cases:
        case.email = f"{case.label}-{secrets.token_hex(3)}@example.com"
        debtor = Debtor(
            creditor=creditor.id,
            external_id=secrets.token_hex(5),
            name=f"Deudor {case.label}",
            email=case.email,
            language=case.language,
        )
        await debtor.save()
        account = Account(creditor=creditor.id, debtor=debtor.id, currency=case.currency)
        await account.save()
        case.account_id = account.id
        for number, total, due in case.invoices:
            minor = parse_amount(total, case.currency)
            invoice = Invoice(
                creditor=creditor.id,
                account=account.id,
                number=f"{number}-{creditor.id}",
                currency=case.currency,
                issue_date=due - dt.timedelta(days=30),
                due_date=due,
                total=minor,
            )
            await invoice.save()
            case.invoice_ids.append(invoice.id)
            await LedgerEntry(
                account=account.id,
                invoice=invoice.id,
                kind=EntryKind.charge,
                amount=minor,
                currency=case.currency,
                effective_date=invoice.issue_date,
                idempotency_key=f"test:mp:invoice:{invoice.id}",
            ).save()
        checkout = CheckoutSession(
            account=account.id,
            amount=sum(parse_amount(p.amount, case.currency) for p in case.payments),
            currency=case.currency,
            invoice_ids=[case.invoice_ids[i] for i in case.prefer],
            provider="mercadopago",
        )
        await checkout.save()
        case.reference = str(checkout.public_id)
        case.checkout_id = checkout.id
    return creditor


def expected_balance(case: Case, mp: FakeMercadoPago) -> int:
    """Charges minus the payments Mercado Pago finally says are approved (the model)."""
    charges = sum(parse_amount(total, case.currency) for _, total, _ in case.invoices)
    paid = 0
    for pay in case.payments:
        answer = mp.payment(pay.pid)
        if answer["status"] in APPLIED:
            paid += parse_amount(str(answer["transaction_amount"]), case.currency)
    return charges - paid


Post = Callable[[str], Awaitable[httpx.Response]]


async def deliver(post_note: Post, pids: list[str], rng: random.Random) -> None:
    """Each payment's notification 1–5 times (each a fresh notification or a redelivery of
    the same one), all shuffled and posted concurrently."""
    deliveries: list[str] = []
    for pid in pids:
        deliveries += [pid] * rng.randint(1, 5)
    rng.shuffle(deliveries)
    responses = await asyncio.gather(*(post_note(pid) for pid in deliveries))
    assert [r.status_code for r in responses] == [200] * len(deliveries)


async def processed_events(pids: list[str]) -> int:
    return await WebhookEvent.count().where(
        WebhookEvent.resource_id.is_in(pids) & (WebhookEvent.status == "processed")
    )


@pytest.fixture
def smtp():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def mp():
    with FakeMercadoPago(access_token="TEST-token") as fake:
        yield fake


@pytest.mark.slow
async def test_notifications_in_any_order_post_each_payment_exactly_once(
    db, servers, tmp_path, smtp, mp
):
    seed = secrets.randbits(32)
    rng = random.Random(seed)
    print(f"shuffle seed {seed}")
    prefix = f"{servers.redis_prefix}mp-{secrets.token_hex(3)}:"
    settings = Settings.from_env(
        {
            **os.environ,
            "SALDO_DATA_DIR": str(tmp_path),
            "PUBLIC_URL": "https://saldo.example.com",
            "MERCADOPAGO_ACCESS_TOKEN": "TEST-token",
            "MERCADOPAGO_API_URL": mp.url,
            "MERCADOPAGO_WEBHOOK_SECRET": SECRET,
            "SMTP_URL": smtp.url,
        },
        dotenv=None,
    )
    cases = portfolio()
    creditor = await build_portfolio(cases)
    for case in cases:
        for pay in case.payments:
            pay.pid = mp.add_payment(
                status=pay.first,
                amount=pay.amount,
                currency=case.currency,
                external_reference=case.reference,
            )
    stranger = mp.add_payment(
        status="approved", amount="33.33", currency="ARS", external_reference="pedido-ajeno-42"
    )
    all_pids = [p.pid for c in cases for p in c.payments] + [stranger]

    app = create_app(settings, redis_prefix=prefix)
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://mp-webhooks.test")
    sent: dict[str, Any] = {}  # the latest notification of each payment
    issued: list[Any] = []  # every distinct notification

    async def post_note(pid: str) -> httpx.Response:
        # a redelivery repeats an earlier notification of this payment; else a new one
        if pid in sent and rng.random() < 0.5:
            note = sent[pid]
        else:
            note = sent[pid] = mp.signed_notification(pid, secret=SECRET)
            issued.append(note)
        return await client.post(
            "/webhooks/mercadopago",
            params=note.query,
            headers=note.headers,
            content=json.dumps(note.body),
        )

    def worker():
        return build_worker(
            servers.redis_url, prefix, burst=True, settings=settings, retry_seconds=0.05
        )

    try:
        # phase 1: first statuses; a worker starts and is stopped in the middle of the run
        mp.delay = 0.03
        await deliver(post_note, all_pids, rng)
        first = worker()
        running = asyncio.create_task(first.async_run())
        async with asyncio.timeout(60):
            while await processed_events(all_pids) < 3 and not running.done():
                await asyncio.sleep(0.02)
        await first.close()
        await asyncio.gather(running, return_exceptions=True)
        stopped_early = await WebhookEvent.count().where(
            WebhookEvent.resource_id.is_in(all_pids) & (WebhookEvent.status == "received")
        )
        print(f"first worker: {first!r}; events left unprocessed: {stopped_early}")
        assert stopped_early > 0, "the first worker should stop in the middle of the run"

        # phase 2: statuses move on, Mercado Pago stumbles, notifications keep coming
        for case in cases:
            for pay in case.payments:
                if pay.final != pay.first:
                    mp.set_status(pay.pid, pay.final)
        mp.fail_next(4)
        await deliver(post_note, all_pids, rng)
        second = worker()
        async with asyncio.timeout(120):
            await second.async_run()
        await second.close()
        print(f"second worker: {second!r}")
        assert second.jobs_retried > 0, "Mercado Pago's errors should have been retried"

        # the cron's sweep: lost notifications and receipts whose send job was lost
        queue = await open_queue(servers.redis_url, prefix)
        try:
            await queue.enqueue_job("refetch_stale_payments")
        finally:
            await queue.aclose()
        third = worker()
        async with asyncio.timeout(60):
            await third.async_run()
        await third.close()
    finally:
        await client.aclose()
        await app.state.queue.close()
        await app.state.redis.aclose()

    # every notification is in the inbox once and was processed
    events = await WebhookEvent.select(WebhookEvent.status, WebhookEvent.event_key).where(
        WebhookEvent.resource_id.is_in(all_pids)
    )
    assert sorted(e["event_key"] for e in events) == sorted(
        f"mercadopago:{note.body['id']}" for note in issued
    )
    assert {e["status"] for e in events} == {"processed"}

    payments = {
        row["provider_payment_id"]: row
        for row in await Payment.select().where(
            (Payment.provider == "mercadopago") & Payment.provider_payment_id.is_in(all_pids)
        )
    }
    assert set(payments) == set(all_pids)
    postings: dict[int, list[str]] = defaultdict(list)
    for row in await PaymentPosting.select().where(
        PaymentPosting.payment.is_in([p["id"] for p in payments.values()])
    ):
        postings[row["payment"]].append(row["effect"])
    entries = await LedgerEntry.raw(
        """SELECT (basis->>'payment')::int AS payment, sum(amount)::bigint AS total
           FROM ledger_entry WHERE basis ? 'payment' AND (basis->>'payment')::int = ANY({})
           GROUP BY 1""",
        [p["id"] for p in payments.values()],
    )
    net = {row["payment"]: int(row["total"]) for row in entries}

    for case in cases:
        for pay in case.payments:
            row = payments[pay.pid]
            final = mp.payment(pay.pid)["status"]
            assert row["status"] == final, (case.label, pay)
            assert row["account"] == case.account_id
            effects = sorted(postings[row["id"]])
            amount = parse_amount(pay.amount, case.currency)
            if final in APPLIED:
                assert effects == ["apply"], (case.label, effects)
                assert net.get(row["id"], 0) == -amount, case.label
            elif final in ("refunded", "charged_back"):
                assert effects in ([], ["apply", "reverse"]), (case.label, effects)
                assert net.get(row["id"], 0) == 0, case.label
            else:
                assert effects == [] and row["id"] not in net, case.label
        assert await account_balance(case.account_id) == expected_balance(case, mp), case.label

    unapplied = payments[stranger]
    assert unapplied["account"] is None and unapplied["status"] == "approved"
    assert postings[unapplied["id"]] == [] and unapplied["id"] not in net

    checkouts = {
        row["id"]: row["status"]
        for row in await CheckoutSession.select().where(
            CheckoutSession.id.is_in([c.checkout_id for c in cases])
        )
    }
    assert [checkouts[c.checkout_id] for c in cases] == [
        "approved",
        "approved",
        "refunded",
        "charged_back",
        "approved",
        "pending",
        "approved",
    ]

    # receipts: once per applied payment, with the PDF; none for what never applied
    for case in cases:
        mails = smtp.to(case.email)
        applied = [p for p in case.payments if mp.payment(p.pid)["status"] in APPLIED]
        reversed_ = [p for p in case.payments if "reverse" in postings[payments[p.pid]["id"]]]
        if applied:
            assert len(mails) == len(applied), case.label
        elif reversed_:
            assert len(mails) <= 1, case.label  # sent before the reversal, or cancelled
        else:
            assert mails == [], case.label
        for mail in mails:
            message = mail.message
            assert creditor.name in message["Subject"]
            attachments = list(message.iter_attachments())
            assert [a.get_content_type() for a in attachments] == ["application/pdf"]
            assert attachments[0].get_content().startswith(b"%PDF")
            assert any(p.pid in mail.text() for p in case.payments)
    assert smtp.to("test_user_123@testuser.com") == []
