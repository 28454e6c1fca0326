"""`saldo dunning run [--as-of DATE]`, run as an operator would: a real process against the test
database, printing what the day did; running it again does nothing more.

The command works on the whole database, as in production (it scores and segments every
account), so it lives with the worker tests, which run after the tests that read scores."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

from saldo.tables import FeePolicy, LedgerEntry, Notification, Task
from tests.services.dunning_world import DAY0, invoice, make_case, make_creditor

AS_OF = DAY0 + dt.timedelta(days=200)


def saldo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "saldo", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=dict(os.environ),
    )


async def test_a_days_run_prints_its_counts_and_is_idempotent(db):
    creditor = await make_creditor()
    await FeePolicy(creditor=creditor.id, daily_rate_ppm=1_000, fixed_fee=4_000).save()
    soon = await make_case(creditor)
    await invoice(soon, 100_000, AS_OF + dt.timedelta(days=1))  # the day-before step
    late = await make_case(creditor, name="Legal")
    old = await invoice(late, 50_000, AS_OF - dt.timedelta(days=60))

    done = saldo("dunning", "run", "--as-of", AS_OF.isoformat())

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"dunning run for {AS_OF.isoformat()}" in out
    assert "email reminder_before_due: " in out and "sms reminder_before_due: " in out
    assert "escalated to legal collection: " in out
    assert "interest: " in out and "ARS " in out
    assert await Notification.count().where(Notification.debtor == soon.debtor) == 2
    assert await Task.count().where(Task.account == late.account.id) == 1
    fees = await LedgerEntry.count().where(
        (LedgerEntry.invoice == old.id) & (LedgerEntry.kind == "fee")
    )
    assert fees == 1

    again = saldo("dunning", "run", "--as-of", AS_OF.isoformat())
    assert again.returncode == 0, again.stderr
    assert "queued: 0 messages" in again.stdout
    assert "escalated to legal collection: 0 accounts" in again.stdout
    assert await Notification.count().where(Notification.debtor == soon.debtor) == 2


async def test_a_bad_date_is_refused_with_a_clear_message(db):
    done = saldo("dunning", "run", "--as-of", "31/12/2031")
    assert done.returncode == 2
    assert "--as-of '31/12/2031' is not a date (YYYY-MM-DD)" in done.stderr
