"""The nightly collections jobs on a real arq burst worker, and their place in the schedule."""

from __future__ import annotations

import datetime as dt

from saldo.tables import Notification
from saldo.worker import NIGHTLY_DUNNING, build_worker
from tests.services.dunning_world import invoice, make_case, make_creditor
from tests.worker.test_payment_jobs import demo_settings, run, smtp  # noqa: F401  (fixtures)


async def test_the_dunning_job_queues_todays_reminders_once(db, servers, demo_settings):  # noqa: F811
    creditor = await make_creditor()
    case = await make_case(creditor, whatsapp="")
    today = dt.datetime.now(dt.UTC).date()
    await invoice(case, 70_000, today + dt.timedelta(days=5))

    first = await run(servers, demo_settings, "run_dunning")
    assert first.success, first.result
    assert first.result["as_of"] == today.isoformat()
    again = await run(servers, demo_settings, "run_dunning")
    assert again.success and again.result["messages"] == 0

    rows = await Notification.objects().where(Notification.debtor == case.debtor)
    assert [(r.template, r.channel, r.step_offset) for r in rows] == [
        ("reminder_before_due", "email", -5)
    ]


async def test_the_accrual_and_segmentation_jobs_run(db, servers, demo_settings):  # noqa: F811
    accrued = await run(servers, demo_settings, "accrue_interest")
    assert accrued.success, accrued.result
    assert accrued.result["days"] == 7
    segmented = await run(servers, demo_settings, "segment_accounts")
    assert segmented.success, segmented.result
    assert set(segmented.result) == {"as_of", "changed", "segments"}


def test_the_nightly_jobs_run_after_the_commitments_check_in_order(servers):
    worker = build_worker(servers.redis_url, "saldo_cron_probe:", burst=True)
    by_name = {c.name: c for c in worker.cron_jobs}
    order = [f"saldo_cron_probe:cron:{name}" for name in ("check_commitments",)] + [
        f"saldo_cron_probe:cron:{job.__name__}" for job, _, _ in NIGHTLY_DUNNING
    ]
    times = [(by_name[name].hour, by_name[name].minute) for name in order]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert [job.__name__ for job, _, _ in NIGHTLY_DUNNING] == [
        "accrue_interest",
        "segment_accounts",
        "run_dunning",
    ]
