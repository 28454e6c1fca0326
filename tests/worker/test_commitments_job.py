"""The nightly commitments job on a real arq burst worker: a promise whose date and grace have
passed without a payment is broken once, with one task for the agent."""

from __future__ import annotations

import datetime as dt

from saldo.tables import PromiseToPay, Task
from tests.services.helpers import make_account, make_invoice
from tests.worker.test_payment_jobs import demo_settings, run, smtp  # noqa: F401  (fixtures)


async def test_a_lapsed_promise_is_broken_once_with_one_task(db, servers, demo_settings):  # noqa: F811
    account = await make_account()
    await make_invoice(account, "PROM-1", 50_000, dt.date(2026, 6, 1))
    promise = PromiseToPay(
        account=account.id, amount=50_000, promised_date=dt.date(2026, 7, 1), source="portal"
    )
    await promise.save()

    first = await run(servers, demo_settings, "check_commitments")
    assert first.success
    assert first.result["promises"]["broken"] >= 1
    again = await run(servers, demo_settings, "check_commitments")
    assert again.success

    refreshed = await PromiseToPay.objects().get(PromiseToPay.id == promise.id)
    assert refreshed is not None and refreshed.status == "broken"
    tasks = await Task.objects().where(
        (Task.account == account.id) & (Task.kind == "broken_promise")
    )
    assert len(tasks) == 1
