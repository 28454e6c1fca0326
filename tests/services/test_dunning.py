"""The dunning run against a real database: each step once per debtor with its invoices grouped,
the send window, pauses of every kind, legal escalation, stages, idempotent re-runs, installment
and promise reminders, default and per-segment policies."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from saldo.rules.dunning import DEFAULT_STEPS
from saldo.services.dunning import ensure_default_policies, run_dunning
from saldo.tables import Account, DunningPolicy, DunningStep, Interaction, Notification, Task

from .dunning_world import (
    DAY0,
    Case,
    active_plan,
    at,
    claim,
    dispute,
    invoice,
    make_case,
    make_creditor,
    messages,
    pay,
    pending_payment,
    promise,
    staff_pause,
)

DUE = DAY0 + dt.timedelta(days=10)


def day(offset: int, base: dt.date = DUE) -> dt.date:
    return base + dt.timedelta(days=offset)


async def run_days(first: dt.date, last: dt.date) -> None:
    current = first
    while current <= last:
        await run_dunning(as_of=current, now=at(current, 4))
        current += dt.timedelta(days=1)


def summary(rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
    """(step offset, channel, template, invoice ids) by the day they were for, then channel."""
    ordered = sorted(
        rows, key=lambda r: (str(r["idempotency_key"]).split(":")[-1], str(r["channel"]))
    )
    return [
        (r["step_offset"], r["channel"], r["template"], tuple(r["invoice_ids"]))  # type: ignore[arg-type]
        for r in ordered
    ]


async def account(case: Case) -> Account:
    row = await Account.objects().get(Account.id == case.account.id)
    assert row is not None
    return row


async def test_every_step_fires_once_per_debtor_grouping_the_invoices_due_that_day(db):
    creditor = await make_creditor()
    case = await make_case(creditor, whatsapp="")
    first = await invoice(case, 100_000, DUE, "A-1")
    second = await invoice(case, 50_000, DUE, "A-2")
    later = await invoice(case, 20_000, day(3), "A-3")

    await run_days(day(-6), day(20))

    both, alone = (first.id, second.id), (later.id,)
    assert summary(await messages(case.debtor)) == [
        (-5, "email", "reminder_before_due", both),
        (-5, "email", "reminder_before_due", alone),
        (-1, "email", "reminder_before_due", both),
        (-1, "sms", "reminder_before_due", both),
        (1, "email", "overdue_preventive", both),
        (-1, "email", "reminder_before_due", alone),
        (-1, "sms", "reminder_before_due", alone),
        (1, "email", "overdue_preventive", alone),
        (7, "email", "overdue_administrative", both),  # no WhatsApp number: e-mail only
        (7, "email", "overdue_administrative", alone),
        (15, "sms", "overdue_administrative", both),
        (15, "sms", "overdue_administrative", alone),
    ]
    upcoming = (await messages(case.debtor))[0]
    assert upcoming["status"] == "queued"
    assert upcoming["idempotency_key"] == (
        f"dunning:{case.debtor}:{_step_id(upcoming)}:email:{day(-5).isoformat()}"
    )
    context = upcoming["context"]
    assert context["total"] == 150_000 and context["currency"] == "ARS"
    assert context["creditor"] == creditor.name
    assert [(i["number"], i["amount"]) for i in context["invoices"]] == [
        ("A-1", 100_000),
        ("A-2", 50_000),
    ]
    # 08:00 in Buenos Aires (UTC−3) on the day of the step.
    assert upcoming["send_after"] == dt.datetime(2031, 3, 8, 11, 0, tzinfo=dt.UTC)


def _step_id(row: dict[str, object]) -> str:
    return str(row["idempotency_key"]).split(":")[2]


async def test_a_mexican_creditor_gets_the_mexico_window_and_the_debtors_time_zone(db):
    creditor = await make_creditor("MX")
    case = await make_case(creditor, currency="MXN", timezone="America/Mexico_City", country="MX")
    await invoice(case, 80_000, DUE)
    await run_dunning(as_of=day(-5), now=at(day(-5), 4))
    [row] = await messages(case.debtor)
    # 07:00 in Mexico City (UTC−6, no daylight saving time since 2022).
    assert row["send_after"] == dt.datetime(2031, 3, 8, 13, 0, tzinfo=dt.UTC)
    policy = await DunningPolicy.objects().get(DunningPolicy.creditor == creditor.id)
    assert (policy.window_start, policy.window_end) == (dt.time(7), dt.time(22))


async def test_running_a_day_twice_queues_and_escalates_nothing_twice(db):
    creditor = await make_creditor()
    case = await make_case(creditor)
    await invoice(case, 100_000, DUE)
    first = await run_dunning(as_of=day(7), now=at(day(7), 4))
    again = await run_dunning(as_of=day(7), now=at(day(7), 5))
    assert sum(n for (c, t), n in first.queued.items() if t == "overdue_administrative") >= 2
    assert again.messages == 0 and again.stage_changes == 0
    assert len(await messages(case.debtor)) == 2  # e-mail and WhatsApp

    await run_dunning(as_of=day(60), now=at(day(60), 4))
    repeat = await run_dunning(as_of=day(60), now=at(day(60), 6))
    assert repeat.escalated == 0
    assert await Task.count().where(Task.account == case.account.id) == 1
    assert (
        await Interaction.count().where(
            (Interaction.account == case.account.id) & (Interaction.kind == "legal_escalation")
        )
        == 1
    )


async def test_stages_follow_the_steps_and_the_judicial_step_escalates_instead_of_writing(db):
    creditor = await make_creditor()
    case = await make_case(creditor)
    old = await invoice(case, 100_000, DUE, "J-1")
    await run_days(day(1), day(1))
    assert (await account(case)).stage == "preventive"
    await run_days(day(7), day(7))
    assert (await account(case)).stage == "administrative"

    newer = await invoice(case, 30_000, day(62), "J-2")
    result = await run_dunning(as_of=day(60), now=at(day(60), 4))
    assert result.escalated >= 1
    escalated = await account(case)
    assert escalated.stage == "judicial"
    assert escalated.legal_escalated_at == at(day(60), 4)
    [task] = await Task.objects().where(Task.account == case.account.id)
    assert (task.kind, task.dedupe_key, task.status) == (
        "legal_escalation",
        f"legal:{case.account.id}",
        "open",
    )
    data = json.loads(task.data) if isinstance(task.data, str) else task.data
    assert (data["invoice_ids"], data["amount"], data["days_past_due"]) == ([old.id], 100_000, 60)
    assert not [m for m in await messages(case.debtor) if m["step_offset"] == 60]
    changes = await Interaction.objects().where(
        (Interaction.account == case.account.id) & (Interaction.kind == "stage_changed")
    )
    assert len(changes) == 1  # preventive → administrative; judicial is the escalation

    # An escalated account gets no more reminders, even about a newer invoice.
    before = len(await messages(case.debtor))
    await run_days(day(57), day(57))  # five days before J-2 is due
    assert len(await messages(case.debtor)) == before
    del newer


@pytest.mark.parametrize("kind", ["dispute", "plan", "claim", "pending_payment"])
async def test_a_paused_invoice_is_left_out_and_the_others_still_reminded(db, kind):
    creditor = await make_creditor()
    case = await make_case(creditor)
    paused = await invoice(case, 100_000, DUE, "P-1")
    other = await invoice(case, 40_000, DUE, "P-2")
    if kind == "dispute":
        await dispute(case, paused.id, 100_000)
    elif kind == "plan":
        await active_plan(case, [paused.id], [(day(30), 100_000)])
    elif kind == "claim":
        await claim(case, [paused.id], until=day(5))
    else:
        await pending_payment(case, [paused.id], 100_000, expires=at(day(3)))

    await run_dunning(as_of=day(1), now=at(day(1), 4))

    [row] = await messages(case.debtor)
    assert row["invoice_ids"] == [other.id]
    assert row["context"]["total"] == 40_000


@pytest.mark.parametrize("kind", ["staff_pause", "promise", "claim", "pending_payment"])
async def test_a_paused_account_gets_no_reminder_until_the_pause_ends(db, kind):
    creditor = await make_creditor()
    case = await make_case(creditor, whatsapp="")
    await invoice(case, 100_000, DUE)
    if kind == "staff_pause":
        await staff_pause(case, until=day(3))
    elif kind == "promise":
        await promise(case, 100_000, day(3))
    elif kind == "claim":
        await claim(case, [], until=day(3))
    else:
        await pending_payment(case, [], 100_000, expires=at(day(3), 23))

    await run_days(day(1), day(1))
    assert await messages(case.debtor) == []
    await run_days(day(7), day(7))  # the pause is over
    assert [m["template"] for m in await messages(case.debtor)] == ["overdue_administrative"]


async def test_an_expired_pending_payment_and_a_lapsed_claim_pause_nothing(db):
    creditor = await make_creditor()
    case = await make_case(creditor, whatsapp="")
    target = await invoice(case, 100_000, DUE)
    await pending_payment(case, [target.id], 100_000, expires=at(day(-1)))
    await claim(case, [target.id], until=day(0))
    await run_dunning(as_of=day(1), now=at(day(1), 4))
    assert [m["template"] for m in await messages(case.debtor)] == ["overdue_preventive"]


async def test_a_partly_disputed_invoice_is_reminded_for_the_undisputed_rest(db):
    creditor = await make_creditor()
    case = await make_case(creditor, whatsapp="")
    partly = await invoice(case, 100_000, DUE, "D-1")
    await dispute(case, partly.id, 30_000)
    await run_dunning(as_of=day(1), now=at(day(1), 4))
    [row] = await messages(case.debtor)
    assert row["invoice_ids"] == [partly.id]
    [item] = row["context"]["invoices"]
    assert (item["amount"], item["disputed"]) == (70_000, 30_000)
    assert row["context"]["total"] == 70_000


async def test_a_paid_invoice_gets_no_more_reminders(db):
    creditor = await make_creditor()
    case = await make_case(creditor, whatsapp="")
    paid = await invoice(case, 100_000, DUE)
    await run_dunning(as_of=day(1), now=at(day(1), 4))
    await pay(case, 100_000, at(day(3)), [paid.id])
    await run_days(day(7), day(7))
    assert [m["template"] for m in await messages(case.debtor)] == ["overdue_preventive"]


async def test_installments_and_promises_get_their_own_reminder_on_one_channel(db):
    creditor = await make_creditor()
    planned = await make_case(creditor, preferred_channel="whatsapp")
    covered = await invoice(planned, 90_000, DUE)
    plan_id = await active_plan(planned, [covered.id], [(day(4), 45_000), (day(34), 45_000)])
    promised = await make_case(creditor, name="Iñaki Ordóñez")
    await invoice(promised, 60_000, day(-20))
    promise_id = await promise(promised, 60_000, day(2))

    result = await run_dunning(as_of=day(1), now=at(day(1), 4))
    assert result.installment_reminders >= 1 and result.promise_reminders >= 1
    again = await run_dunning(as_of=day(1), now=at(day(1), 5))
    assert again.installment_reminders == 0 and again.promise_reminders == 0

    [installment] = await messages(planned.debtor)
    assert (installment["template"], installment["channel"]) == ("installment_due", "whatsapp")
    assert installment["invoice_ids"] == []
    assert installment["context"]["plan_id"] == plan_id
    assert installment["context"]["amount"] == 45_000
    assert installment["context"]["due_date"] == day(4).isoformat()
    [reminder] = await messages(promised.debtor)
    assert (reminder["template"], reminder["channel"]) == ("promise_reminder", "email")
    assert reminder["idempotency_key"] == f"promise:{promise_id}:reminder:email"
    assert reminder["context"]["promised_date"] == day(2).isoformat()


async def test_default_policy_is_created_once_and_a_segment_policy_wins_over_it(db):
    creditor = await make_creditor()
    policy_id = await ensure_default_policies(creditor.id)
    assert await ensure_default_policies(creditor.id) == policy_id
    steps = await DunningStep.objects().where(DunningStep.policy == policy_id)
    assert sorted((s.offset_days, s.template, s.stage) for s in steps) == sorted(
        (s.offset_days, s.template, s.stage) for s in DEFAULT_STEPS
    )
    vip = DunningPolicy(
        creditor=creditor.id,
        segment="high_value",
        name="Cuentas grandes",
        window_start=dt.time(9),
        window_end=dt.time(18),
    )
    await vip.save()
    await DunningStep(
        policy=vip.id,
        offset_days=3,
        channels=["sms"],
        template="overdue_preventive",
        stage="preventive",
    ).save()
    big = await make_case(creditor)
    await Account.update({Account.segment: "high_value"}).where(Account.id == big.account.id)
    standard = await make_case(creditor, name="Otra Persona", whatsapp="")
    for case in (big, standard):
        await invoice(case, 500_000, DUE)

    await run_days(day(1), day(3))

    assert [(m["step_offset"], m["channel"]) for m in await messages(big.debtor)] == [(3, "sms")]
    assert [(m["step_offset"], m["channel"]) for m in await messages(standard.debtor)] == [
        (1, "email")
    ]
    assert (await messages(big.debtor))[0]["send_after"] == at(day(3), 12)  # 09:00 in AR


async def test_an_inactive_policy_falls_back_to_the_standard_one_and_no_address_no_message(db):
    creditor = await make_creditor()
    await ensure_default_policies(creditor.id)
    off = DunningPolicy(
        creditor=creditor.id,
        segment="early",
        active=False,
        window_start=dt.time(8),
        window_end=dt.time(21),
    )
    await off.save()
    case = await make_case(creditor, email="", phone="", whatsapp="+5491100000000")
    await Account.update({Account.segment: "early"}).where(Account.id == case.account.id)
    await invoice(case, 10_000, DUE)
    await run_days(day(-1), day(-1))  # e-mail and SMS step, neither address known
    await run_days(day(7), day(7))  # e-mail and WhatsApp
    assert summary(await messages(case.debtor))[0][:3] == (7, "whatsapp", "overdue_administrative")
    assert len(await messages(case.debtor)) == 1
    assert await Notification.count().where(Notification.debtor == case.debtor) == 1
