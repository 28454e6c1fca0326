"""Promises to pay against a real database: one open promise per account, the rules of a
promise, kept or broken by the payments that arrive, the tasks, the KPI."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from decimal import Decimal

import pytest

from saldo.errors import NotFound
from saldo.services import plans, promises
from saldo.services.ledger import apply_payment, reverse_payment
from saldo.tables import Account, AuditEvent, Interaction, PromiseToPay, Task

from .test_plans import GENEROUS, NOW, TODAY, case, form, kinds, staff_user


def at(day: dt.date, hour: int = 15) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


async def pay(account: Account, amount: int, when: dt.datetime) -> int:
    applied = await apply_payment(
        account_id=account.id,
        provider="bank_transfer",
        provider_payment_id=secrets.token_hex(6),
        amount=amount,
        received_at=when,
    )
    return applied.payment_id


async def status(promise_id: int) -> str:
    promise = await PromiseToPay.objects().get(PromiseToPay.id == promise_id)
    assert promise is not None
    return promise.status


async def test_a_debtor_holds_one_open_promise_per_account(db):
    account, _ = await case(50_000)
    promise_id = await promises.make_promise(
        [account.debtor], account.id, 20_000, TODAY + dt.timedelta(7), now=NOW
    )
    promise = await PromiseToPay.objects().get(PromiseToPay.id == promise_id)
    assert (promise.status, promise.source, promise.amount) == ("open", "portal", 20_000)
    assert await kinds(account.id) == ["promise_made"]
    with pytest.raises(promises.PromiseRefused) as refused:
        await promises.make_promise(
            [account.debtor], account.id, 10_000, TODAY + dt.timedelta(3), now=NOW
        )
    assert refused.value.field == "account"
    assert await promises.promises_in_force([account.id], TODAY) == {
        account.id: TODAY + dt.timedelta(7)
    }
    assert await promises.promises_in_force([account.id], TODAY + dt.timedelta(8)) == {}


async def test_two_promises_at_once_make_one(db):
    account, _ = await case(50_000)
    results = await asyncio.gather(
        *(
            promises.make_promise([account.debtor], account.id, 1_000, TODAY, now=NOW)
            for _ in range(4)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(r, int) for r in results) == 1
    assert sum(isinstance(r, promises.PromiseRefused) for r in results) == 3
    assert await PromiseToPay.count().where(PromiseToPay.account == account.id) == 1


@pytest.mark.parametrize(
    ("amount", "days", "field"),
    [
        (0, 3, "amount"),
        (50_001, 3, "amount"),
        (1_000, -1, "date"),
        (1_000, promises.PROMISE_MAX_DAYS + 1, "date"),
    ],
)
async def test_the_rules_of_a_promise(db, amount, days, field):
    account, _ = await case(50_000)
    with pytest.raises(promises.PromiseRefused) as refused:
        await promises.make_promise(
            [account.debtor], account.id, amount, TODAY + dt.timedelta(days), now=NOW
        )
    assert refused.value.field == field
    assert not await PromiseToPay.exists().where(PromiseToPay.account == account.id)


async def test_no_promise_while_a_plan_is_active_and_a_plan_replaces_a_promise(db):
    account, _ = await case(90_000, policy=GENEROUS)
    promise_id = await promises.make_promise(
        [account.debtor], account.id, 9_000, TODAY + dt.timedelta(5), now=NOW
    )
    outcome = await plans.propose(
        [account.debtor], account.id, form(9_000, 3, "monthly", TODAY + dt.timedelta(7)), now=NOW
    )
    assert outcome.status == "active"
    assert await status(promise_id) == "cancelled"
    with pytest.raises(promises.PromiseRefused) as refused:
        await promises.make_promise(
            [account.debtor], account.id, 9_000, TODAY + dt.timedelta(5), now=NOW
        )
    assert refused.value.field == "account"
    assert await kinds(account.id) == [
        "promise_made", "plan_proposed", "promise_cancelled", "plan_approved",
    ]  # fmt: skip


async def test_another_debtors_account_is_not_found(db):
    mine, _ = await case(10_000)
    other, _ = await case(10_000)
    with pytest.raises(NotFound):
        await promises.make_promise([mine.debtor], other.id, 1_000, TODAY, now=NOW)
    with pytest.raises(NotFound):
        await promises.submit_promise(
            [mine.debtor], {"account": str(other.id), "amount": "10", "date": "2026-11-30"}, now=NOW
        )


async def test_the_portal_form_says_what_is_wrong_with_each_field(db):
    account, _ = await case(10_000)
    with pytest.raises(promises.InvalidPromise) as invalid:
        await promises.submit_promise(
            [account.debtor], {"account": str(account.id), "amount": "diez", "date": "mañana"},
            now=NOW,
        )  # fmt: skip
    assert set(invalid.value.errors) == {"amount", "date"}
    with pytest.raises(promises.InvalidPromise) as invalid:
        await promises.submit_promise(
            [account.debtor],
            {"account": str(account.id), "amount": "100,01", "date": "30/11/2026"},
            now=NOW,
        )
    assert set(invalid.value.errors) == {"amount"}  # 10.001 > the balance of 10.000
    made = await promises.submit_promise(
        [account.debtor], {"account": str(account.id), "amount": "99,99", "date": "30/11/2026"},
        now=NOW,
    )  # fmt: skip
    promise = await PromiseToPay.objects().get(PromiseToPay.id == made)
    assert (promise.amount, promise.promised_date) == (9_999, dt.date(2026, 11, 30))


async def test_a_promise_covered_by_the_date_plus_grace_is_kept(db):
    account, _ = await case(80_000, policy={"grace_days": 2})
    promise_id = await promises.make_promise(
        [account.debtor], account.id, 30_000, TODAY + dt.timedelta(5), now=NOW
    )
    await pay(account, 10_000, NOW - dt.timedelta(hours=1))  # before the promise: not counted
    await pay(account, 20_000, at(TODAY + dt.timedelta(2)))
    await promises.check_promises(today=TODAY + dt.timedelta(3), now=NOW)
    assert await status(promise_id) == "open"  # 20.000 of 30.000, date not reached
    await pay(account, 10_000, at(TODAY + dt.timedelta(7)))  # the last day of grace
    await promises.check_promises(today=TODAY + dt.timedelta(8), now=NOW)
    assert await status(promise_id) == "kept"
    assert (await kinds(account.id))[-1] == "promise_kept"
    assert not await Task.exists().where(Task.account == account.id)


async def test_a_promise_not_covered_in_time_is_broken_with_a_task_for_the_agent(db):
    account, staff_id = await case(80_000, policy={"grace_days": 2})
    promise_id = await promises.make_promise(
        [account.debtor], account.id, 30_000, TODAY + dt.timedelta(5), now=NOW
    )
    refunded = await pay(account, 30_000, at(TODAY + dt.timedelta(1)))
    await reverse_payment(refunded, reason="Contracargo")  # a chargeback keeps nothing
    await pay(account, 30_000, at(TODAY + dt.timedelta(8)))  # a day too late
    await promises.check_promises(today=TODAY + dt.timedelta(7), now=NOW)  # grace not over
    assert await status(promise_id) == "open"
    for _ in range(2):  # a second run changes nothing
        await promises.check_promises(today=TODAY + dt.timedelta(8), now=NOW)
    assert await status(promise_id) == "broken"
    tasks = await Task.select().where(Task.account == account.id)
    assert [(t["kind"], t["assignee"], t["dedupe_key"]) for t in tasks] == [
        ("broken_promise", staff_id, f"promise:{promise_id}:broken")
    ]
    broken = await Interaction.select().where(
        (Interaction.account == account.id) & (Interaction.kind == "promise_broken")
    )
    assert len(broken) == 1


async def test_an_agent_records_a_promise_in_the_audit_log(db):
    account, _ = await case(80_000)
    agent = await staff_user()
    promise_id = await promises.make_promise(
        promises.Staff(agent), account.id, 40_000, TODAY + dt.timedelta(10), now=NOW
    )
    promise = await PromiseToPay.objects().get(PromiseToPay.id == promise_id)
    assert (promise.source, promise.created_by) == ("staff", agent)
    audit = await AuditEvent.select().where(
        (AuditEvent.action == "promise.created") & (AuditEvent.object_id == str(promise_id))
    )
    assert [a["staff"] for a in audit] == [agent]


async def test_the_promise_kept_rate_counts_kept_and_broken(db):
    account_a, _ = await case(50_000, policy={"grace_days": 0})
    creditor = account_a.creditor
    kept = await promises.make_promise([account_a.debtor], account_a.id, 5_000, TODAY, now=NOW)
    await pay(account_a, 5_000, at(TODAY))
    others = []
    for _ in range(2):
        account, _ = await case(50_000)
        await Account.update({Account.creditor: creditor}).where(Account.id == account.id)
        others.append(await promises.make_promise([account.debtor], account.id, 1, TODAY, now=NOW))
    await promises.check_promises(today=TODAY + dt.timedelta(days=1), now=NOW)
    assert await status(kept) == "kept"
    assert [await status(p) for p in others] == ["broken", "broken"]
    rate = await promises.promise_kept_rate(creditor_id=creditor)
    assert (rate.kept, rate.broken) == (1, 2)
    assert rate.rate == Decimal(1) / Decimal(3)
    later = await promises.promise_kept_rate(creditor_id=creditor, start=TODAY + dt.timedelta(1))
    assert later.rate is None  # resolved on TODAY
