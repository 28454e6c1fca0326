"""The payment jobs as the portal uses them in demo mode (the simulated provider): a real arq
burst worker syncs the payment, posts it and mails the receipt to the SMTP sink."""

from __future__ import annotations

import datetime as dt
import os
import secrets

import pytest

from saldo.payments.simulated import SimulatedProvider
from saldo.services.ledger import account_balance
from saldo.settings import Settings
from saldo.tables import CheckoutSession, Debtor, Notification, Payment
from saldo.tasks import ProviderMismatch
from saldo.worker import build_worker, open_queue
from tests.services.helpers import make_account, make_invoice
from tests.smtp_sink import SmtpSink


@pytest.fixture
def smtp():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def demo_settings(tmp_path, smtp) -> Settings:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERCADOPAGO_")}
    return Settings.from_env(
        {**env, "SALDO_DATA_DIR": str(tmp_path), "SMTP_URL": smtp.url}, dotenv=None
    )


async def run(servers, settings: Settings, function: str, *args):
    prefix = f"{servers.redis_prefix}jobs-{secrets.token_hex(3)}:"
    queue = await open_queue(servers.redis_url, prefix)
    try:
        job = await queue.enqueue_job(function, *args)
        assert job is not None
        worker = build_worker(
            servers.redis_url, prefix, burst=True, settings=settings, retry_seconds=0.05
        )
        await worker.main()
        await worker.close()
        info = await job.result_info()
        return info
    finally:
        await queue.aclose()


async def test_a_demo_payment_is_synced_posted_and_its_receipt_mailed(
    db, servers, demo_settings, smtp
):
    account = await make_account()
    email = f"demo-{secrets.token_hex(3)}@example.com"
    await Debtor.update({Debtor.email: email}).where(Debtor.id == account.debtor)
    await make_invoice(account, "DEMO-1", 10_000, dt.date(2026, 8, 1))
    checkout = CheckoutSession(account=account.id, amount=10_000, currency="ARS")
    await checkout.save()
    simulated = await SimulatedProvider().simulate(str(checkout.public_id), "approved")

    info = await run(servers, demo_settings, "sync_payment", "simulated", simulated.id)

    assert info.success and info.result["posted"] == "apply"
    assert await account_balance(account.id) == 0
    payment = await Payment.objects().get(
        (Payment.provider == "simulated") & (Payment.provider_payment_id == simulated.id)
    )
    receipt = await Notification.objects().get(
        Notification.idempotency_key == f"receipt:{payment.id}"
    )
    assert receipt.status == "sent"
    [mail] = smtp.to(email)
    assert "Pago simulado" in mail.text()
    assert [a.get_content_type() for a in mail.message.iter_attachments()] == ["application/pdf"]

    again = await run(servers, demo_settings, "sync_payment", "simulated", simulated.id)
    assert again.success and again.result["posted"] is None
    assert len(smtp.to(email)) == 1


async def test_a_payment_of_another_provider_fails_clearly(db, servers, demo_settings):
    info = await run(servers, demo_settings, "sync_payment", "mercadopago", "1325000001")
    assert not info.success
    assert info.result.startswith(f"{ProviderMismatch.__name__}: ")
    assert "'simulated'" in info.result and "'mercadopago'" in info.result


async def test_an_unknown_payment_is_reported_not_retried(db, servers, demo_settings):
    info = await run(servers, demo_settings, "sync_payment", "simulated", "999999999")
    assert info.success and info.result["synced"] is False and info.job_try == 1
