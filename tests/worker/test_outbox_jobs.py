"""The outbox jobs in a real arq burst worker: `send_outbox` drains a backlog larger than one
batch by chaining batches, and `send_notification` sends one row now."""

from __future__ import annotations

import datetime as dt
import os
import secrets

import pytest

from saldo.db import DB
from saldo.services import outbox
from saldo.settings import Settings
from saldo.tables import DunningPolicy, Notification
from saldo.worker import build_worker, open_queue
from tests.services.outbox_world import NOW, party
from tests.smtp_sink import SmtpSink
from tests.worker.outbox_load import seed_reminders


@pytest.fixture
def smtp():
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def settings(tmp_path, smtp) -> Settings:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MERCADOPAGO_")}
    return Settings.from_env(
        {**env, "SALDO_DATA_DIR": str(tmp_path), "SMTP_URL": smtp.url,
         "MAIL_FROM": "Cobranzas <cobranzas@carga.example>"},
        dotenv=None,
    )  # fmt: skip


async def run_jobs(servers, settings, *jobs, batch: int | None = None) -> list:
    prefix = f"{servers.redis_prefix}outbox-{secrets.token_hex(3)}:"
    queue = await open_queue(servers.redis_url, prefix)
    try:
        queued = [await queue.enqueue_job(name, *args) for name, *args in jobs]
        worker = build_worker(servers.redis_url, prefix, burst=True, settings=settings)
        if batch:
            worker.ctx["outbox_batch"] = batch
        await worker.main()
        await worker.close()
        return [await job.result_info() for job in queued]
    finally:
        await queue.aclose()


async def test_a_backlog_larger_than_a_batch_is_drained_by_chained_batches(
    db, servers, settings, smtp
):
    conn = await DB.get_new_connection()
    try:
        _, keys = await seed_reminders(conn, 230)
    finally:
        await conn.close()

    [first] = await run_jobs(servers, settings, ("send_outbox",), batch=40)

    assert first.success and first.result["full"] is True and first.result["spawned"] >= 1
    rows = await Notification.raw(
        "SELECT status, count(*) AS n FROM notification WHERE idempotency_key = ANY({}::text[]) "
        "GROUP BY status",
        keys,
    )
    assert {r["status"]: r["n"] for r in rows} == {"sent": 230}
    mine = [r for r in smtp.received if r.recipients[0].endswith("@carga.example")]
    ids = {r.message["Message-ID"] for r in mine}
    assert len(ids) >= 230 and len(mine) == len(ids)


async def test_send_notification_sends_one_row_now(db, servers, settings, smtp):
    who = await party()
    # all day: the job runs at the real time of day
    await DunningPolicy(
        creditor=who.creditor.id,
        segment="standard",
        window_start=dt.time(0),
        window_end=dt.time(0),
    ).save()  # fmt: skip
    notification_id = await outbox.queue(
        debtor_id=who.debtor.id, account_id=who.account.id, channel="email",
        template="reminder_before_due", idempotency_key=f"job:{secrets.token_hex(4)}",
        invoice_ids=[who.invoices[0].id], now=NOW,
    )  # fmt: skip

    [info] = await run_jobs(servers, settings, ("send_notification", notification_id))

    assert info.success and info.result == {"notification": notification_id, "status": "sent"}
    row = await Notification.objects().get(Notification.id == notification_id)
    assert row.status == "sent" and row.attempts == 1
    [mail] = smtp.to(who.email)
    assert mail.message["Message-ID"] == row.provider_id
