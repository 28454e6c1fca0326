"""Payment plans against a real database: auto-approval exactly as the policy says, review,
counter-offers, one open plan per account, progress from the ledger, misses, breaks, completion.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saldo import money
from saldo.errors import Conflict, NotFound, ValidationFailed
from saldo.schedule import Frequency, Policy, Proposal, auto_approves
from saldo.services import plan_review, plan_views, plans
from saldo.services.ledger import apply_payment, reverse_payment
from saldo.services.plan_policy import policy_for, save_policy
from saldo.services.plan_progress import check_plans, waterfall
from saldo.tables import (
    Account,
    AuditEvent,
    Dispute,
    Installment,
    Interaction,
    LedgerEntry,
    PaymentPlan,
    PlanPolicy,
    StaffUser,
    Task,
)

from .helpers import make_account, make_invoice

NOW = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)  # 12:00 in Buenos Aires
TODAY = dt.date(2026, 11, 25)
GENEROUS = {
    "max_installments": 12,
    "min_down_payment_bp": 1000,
    "min_installment": 0,
    "max_term_days": 365,
    "auto_approve_limit": 10_000_000,
    "grace_days": 5,
    "missed_to_break": 2,
}


async def staff_user() -> int:
    staff = StaffUser(email=f"agente.{secrets.token_hex(4)}@example.com", name="Agente")
    await staff.save()
    return staff.id


async def case(*amounts: int, policy: dict[str, object] | None = None) -> tuple[Account, int]:
    """An account with one open invoice per amount (oldest first), its policy and assignee."""
    account = await make_account()
    for n, amount in enumerate(amounts):
        await make_invoice(account, f"F-{account.id}-{n}", amount, TODAY - dt.timedelta(60 - n))
    staff_id = await staff_user()
    await Account.update({Account.assignee: staff_id}).where(Account.id == account.id)
    if policy is not None:
        await PlanPolicy.insert(PlanPolicy(creditor=account.creditor, **policy))
    return account, staff_id


def form(down: int, count: int, frequency: str, first: dt.date) -> dict[str, str]:
    return {
        "down_payment": str(money.to_decimal(down, "ARS")) if down else "",
        "installments": str(count),
        "frequency": frequency,
        "first_date": first.isoformat(),
    }


async def installments(plan_id: int) -> list[dict]:
    return (
        await Installment.select().where(Installment.plan == plan_id).order_by(Installment.number)
    )


async def kinds(account_id: int) -> list[str]:
    rows = (
        await Interaction.select(Interaction.kind)
        .where(Interaction.account == account_id)
        .order_by(Interaction.id)
    )
    return [r["kind"] for r in rows]


def at(day: dt.date, hour: int = 15) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


async def pay(account: Account, amount: int, day: dt.date, ref: str | None = None) -> int:
    applied = await apply_payment(
        account_id=account.id,
        provider="bank_transfer",
        provider_payment_id=ref or secrets.token_hex(6),
        amount=amount,
        received_at=at(day),
    )
    return applied.payment_id


# ---------------------------------------------------------------------------- policy


async def test_policy_is_the_segment_then_standard_then_defaults(db):
    account, staff_id = await case(1000)
    assert await policy_for(account.id) == Policy()
    await save_policy(
        account.creditor, "standard", {"max_installments": 6}, staff_id=staff_id, now=NOW
    )
    assert (await policy_for(account.id)).max_installments == 6
    await save_policy(
        account.creditor,
        "vip",
        {"max_installments": "24", "frequencies": "monthly, weekly", "grace_days": 10},
        staff_id=staff_id,
        now=NOW,
    )
    assert (await policy_for(account.id)).max_installments == 6  # still "standard"
    await Account.update({Account.segment: "vip"}).where(Account.id == account.id)
    vip = await policy_for(account.id)
    assert (vip.max_installments, vip.grace_days) == (24, 10)
    assert vip.frequencies == (Frequency.weekly, Frequency.monthly)
    audit = await AuditEvent.select().where(AuditEvent.action == "plan_policy.saved")
    mine = [a for a in audit if a["staff"] == staff_id]
    assert len(mine) == 2
    after = mine[-1]["after"]
    assert (json.loads(after) if isinstance(after, str) else after)["max_installments"] == 24


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"max_installments": 0}, "max_installments"),
        ({"max_installments": "doce"}, "max_installments"),
        ({"frequencies": []}, "frequencies"),
        ({"frequencies": ["daily"]}, "frequencies"),
        ({"min_down_payment_bp": 10_000}, "min_down_payment_bp"),
        ({"grace_days": -1}, "grace_days"),
        ({"auto_approve_limit": True}, "auto_approve_limit"),
    ],
)
async def test_a_bad_policy_value_is_refused_and_nothing_is_saved(db, values, field):
    account, staff_id = await case(1000)
    with pytest.raises(ValidationFailed) as refused:
        await save_policy(account.creditor, "standard", values, staff_id=staff_id, now=NOW)
    assert refused.value.field == field
    assert not await PlanPolicy.exists().where(PlanPolicy.creditor == account.creditor)


# ---------------------------------------------------------------------------- proposing


async def test_a_proposal_within_policy_is_active_at_once_and_sums_to_the_balance(db):
    account, _ = await case(100_000, 200_001, policy=GENEROUS)
    outcome = await plans.propose(
        [account.debtor], account.id, form(30_001, 3, "monthly", TODAY + dt.timedelta(10)), now=NOW
    )
    assert outcome.status == "active"
    plan = await PaymentPlan.objects().get(PaymentPlan.id == outcome.plan_id)
    assert (plan.status, plan.total, plan.down_payment) == ("active", 300_001, 30_001)
    assert plan.decided_at == NOW
    rows = await installments(plan.id)
    assert [r["number"] for r in rows] == [0, 1, 2, 3]
    assert sum(r["amount"] for r in rows) == 300_001
    assert rows[0]["due_date"] == TODAY  # the down payment is due the day it starts
    assert [r["due_date"] for r in rows[1:]] == [
        dt.date(2026, 12, 5),
        dt.date(2027, 1, 5),
        dt.date(2027, 2, 5),
    ]
    assert [r["amount"] for r in rows[1:]] == [90_000, 90_000, 90_000]
    assert await kinds(account.id) == ["plan_proposed", "plan_approved"]
    assert not await Task.exists().where(Task.account == account.id)
    assert (await plans.active_plan_invoices([account.id]))[account.id] == frozenset(
        json.loads(plan.invoice_ids) if isinstance(plan.invoice_ids, str) else plan.invoice_ids
    )


async def test_a_proposal_outside_policy_waits_for_review_with_a_task(db):
    account, staff_id = await case(500_000, policy=GENEROUS)
    outcome = await plans.propose(
        [account.debtor],
        account.id,
        form(0, 18, "weekly", TODAY + dt.timedelta(3)),
        "Cobro el 10 de cada mes.",
        now=NOW,
    )
    assert outcome.status == "proposed"
    plan = await PaymentPlan.objects().get(PaymentPlan.id == outcome.plan_id)
    assert plan.debtor_message == "Cobro el 10 de cada mes."
    assert await installments(plan.id) == []
    task = await Task.objects().get(Task.dedupe_key == f"plan:{plan.id}")
    assert (task.kind, task.assignee, task.status) == ("plan_review", staff_id, "open")
    data = json.loads(task.data) if isinstance(task.data, str) else task.data
    assert set(data["violations"]) == {"installments:too_many", "down_payment:below_minimum"}
    assert await kinds(account.id) == ["plan_proposed"]


async def test_a_wrong_form_stores_nothing(db):
    account, _ = await case(10_000, policy=GENEROUS)
    bad = {"down_payment": "abc", "installments": "0", "frequency": "daily", "first_date": "ayer"}
    with pytest.raises(plans.InvalidPlan) as invalid:
        await plans.propose([account.debtor], account.id, bad, now=NOW)
    assert set(invalid.value.errors) == {"down_payment", "installments", "frequency", "first_date"}
    too_big = form(10_000, 2, "monthly", TODAY + dt.timedelta(5))
    with pytest.raises(plans.InvalidPlan) as invalid:
        await plans.propose([account.debtor], account.id, too_big, now=NOW)
    assert set(invalid.value.errors) == {"down_payment"}
    past = form(0, 2, "monthly", TODAY)
    with pytest.raises(plans.InvalidPlan):
        await plans.propose([account.debtor], account.id, past, now=NOW)
    assert not await PaymentPlan.exists().where(PaymentPlan.account == account.id)


policies = st.fixed_dictionaries(
    {
        "max_installments": st.integers(1, 24),
        "frequencies": st.lists(st.sampled_from(["weekly", "biweekly", "monthly"]), min_size=1,
                                unique=True).map(json.dumps),
        "min_down_payment_bp": st.integers(0, 3000),
        "min_installment": st.integers(0, 60_000),
        "max_term_days": st.integers(30, 500),
        "auto_approve_limit": st.sampled_from([0, 100_000, 400_000, 10_000_000]),
    }
)  # fmt: skip
proposals = st.tuples(
    st.integers(0, 150_000),
    st.integers(1, 30),
    st.sampled_from(["weekly", "biweekly", "monthly"]),
    st.integers(1, 45),
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(policy=policies, proposal=proposals, total=st.integers(160_000, 600_000))
async def test_stored_outcome_is_exactly_what_the_policy_says(db, policy, proposal, total):
    account, _ = await case(total, policy=policy)
    down, count, frequency, days = proposal
    first = TODAY + dt.timedelta(days)
    expected = auto_approves(
        Proposal(total, down, count, Frequency(frequency), first),
        await policy_for(account.id),
        today=TODAY,
    )
    outcome = await plans.propose(
        [account.debtor], account.id, form(down, count, frequency, first), now=NOW
    )
    plan = await PaymentPlan.objects().get(PaymentPlan.id == outcome.plan_id)
    assert plan.status == ("active" if expected else "proposed")
    rows = await installments(plan.id)
    assert bool(rows) is expected
    assert sum(r["amount"] for r in rows) == (total if expected else 0)
    has_task = await Task.exists().where(Task.dedupe_key == f"plan:{plan.id}")
    assert has_task is (not expected)
    typed = form(down, count, frequency, first)
    preview = await plan_views.preview([account.debtor], account.id, typed, today=TODAY)
    assert preview.verdict == ("approve" if expected else "review")
    assert preview.scheduled.minor == total == sum(r.amount.minor for r in preview.rows)


async def test_only_one_open_plan_per_account_even_at_once(db):
    account, _ = await case(90_000, policy=GENEROUS)
    proposal = form(9_000, 3, "monthly", TODAY + dt.timedelta(7))
    results = await asyncio.gather(
        *(plans.propose([account.debtor], account.id, proposal, now=NOW) for _ in range(5)),
        return_exceptions=True,
    )
    made = [r for r in results if isinstance(r, plans.PlanOutcome)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert (len(made), len(refused)) == (1, 4)
    assert await PaymentPlan.count().where(PaymentPlan.account == account.id) == 1
    with pytest.raises(Conflict):
        await plans.propose([account.debtor], account.id, proposal, now=NOW)


async def test_another_debtors_account_or_plan_is_not_found(db):
    mine, _ = await case(10_000, policy=GENEROUS)
    other, _ = await case(10_000, policy=GENEROUS)
    proposal = form(1_000, 2, "monthly", TODAY + dt.timedelta(7))
    outcome = await plans.propose([other.debtor], other.id, proposal, now=NOW)
    with pytest.raises(NotFound):
        await plans.propose([mine.debtor], other.id, proposal, now=NOW)
    with pytest.raises(NotFound):
        await plan_views.preview([mine.debtor], other.id, proposal, today=TODAY)
    with pytest.raises(NotFound):
        await plans.accept_counter([mine.debtor], outcome.plan_id, now=NOW)
    with pytest.raises(NotFound):
        await plans.accept_counter([mine.debtor], 2**40, now=NOW)
    rows = await installments(outcome.plan_id)
    with pytest.raises(NotFound):
        await plans.installment_payment([mine.debtor], rows[1]["id"], today=TODAY)


async def test_open_disputes_are_left_out_of_the_plan(db):
    account, _ = await case(100_000, 50_000, policy=GENEROUS)
    invoices = await plans.coverage([account.id])
    first = invoices[account.id].invoices[0]
    await Dispute.insert(
        Dispute(account=account.id, invoice=first.id, amount=30_000, reason_code="x")
    )
    covered = (await plans.coverage([account.id]))[account.id]
    assert (covered.total, covered.disputed) == (120_000, 30_000)
    outcome = await plans.propose(
        [account.debtor], account.id, form(12_000, 2, "monthly", TODAY + dt.timedelta(7)), now=NOW
    )
    plan = await PaymentPlan.objects().get(PaymentPlan.id == outcome.plan_id)
    assert plan.total == 120_000


# ---------------------------------------------------------------------------- staff review


async def proposed(amount: int = 400_000) -> tuple[Account, int, int]:
    account, staff_id = await case(amount, policy={**GENEROUS, "auto_approve_limit": 0})
    outcome = await plans.propose(
        [account.debtor], account.id, form(40_000, 4, "monthly", TODAY + dt.timedelta(9)), now=NOW
    )
    assert outcome.status == "proposed"
    return account, staff_id, outcome.plan_id


async def test_a_counter_offer_the_debtor_accepts_becomes_the_active_plan(db):
    account, staff_id, plan_id = await proposed()
    offer = Proposal(400_000, 20_000, 8, Frequency.biweekly, TODAY + dt.timedelta(14))
    later = NOW + dt.timedelta(hours=2)
    decision = await plan_review.counter_offer(
        plan_id, offer, staff_id=staff_id, now=later, note="Mejor cada dos semanas."
    )
    assert decision.status == "offered"
    original = await PaymentPlan.objects().get(PaymentPlan.id == plan_id)
    counter = await PaymentPlan.objects().get(PaymentPlan.id == decision.plan_id)
    assert (original.status, counter.status, counter.counter_of) == (
        "countered",
        "offered",
        plan_id,
    )
    assert (counter.proposed_by, counter.review_reason) == ("staff", "Mejor cada dos semanas.")
    task = await Task.objects().get(Task.dedupe_key == f"plan:{plan_id}")
    assert task.status == "done"
    with pytest.raises(Conflict):  # decided already
        await plan_review.approve(plan_id, staff_id=staff_id, now=later)

    page = await plan_views.plan_page([account.debtor], now=later)
    shown = page.accounts[0].plan
    assert shown is not None and (shown.id, shown.status) == (counter.id, "offered")
    assert sum(r.amount.minor for r in shown.rows) == 400_000

    await plans.accept_counter([account.debtor], counter.id, now=later)
    rows = await installments(counter.id)
    assert len(rows) == 9 and sum(r["amount"] for r in rows) == 400_000
    assert [r["due_date"] for r in rows[1:3]] == [dt.date(2026, 12, 9), dt.date(2026, 12, 23)]
    assert await kinds(account.id) == ["plan_proposed", "plan_countered", "plan_counter_accepted"]
    audit = await AuditEvent.select(AuditEvent.action).where(
        (AuditEvent.object_type == "payment_plan") & (AuditEvent.object_id == str(plan_id))
    )
    assert [a["action"] for a in audit] == ["plan.countered"]
    with pytest.raises(Conflict):
        await plans.accept_counter([account.debtor], counter.id, now=later)


async def test_a_declined_counter_offer_lets_the_debtor_propose_again(db):
    account, staff_id, plan_id = await proposed()
    offer = Proposal(400_000, 0, 2, Frequency.monthly, TODAY + dt.timedelta(20))
    decision = await plan_review.counter_offer(plan_id, offer, staff_id=staff_id, now=NOW)
    await plans.decline_counter([account.debtor], decision.plan_id, now=NOW)
    assert (await PaymentPlan.objects().get(PaymentPlan.id == decision.plan_id)).status == (
        "declined"
    )
    page = await plan_views.plan_page([account.debtor], now=NOW)
    assert page.accounts[0].plan is None and page.accounts[0].last is not None
    assert page.accounts[0].last.status == "declined" and page.accounts[0].can_propose
    again = await plans.propose(
        [account.debtor], account.id, form(40_000, 3, "monthly", TODAY + dt.timedelta(5)), now=NOW
    )
    assert again.status == "proposed"


async def test_a_counter_offer_must_cover_the_balance(db):
    _, staff_id, plan_id = await proposed()
    with pytest.raises(ValidationFailed) as refused:
        await plan_review.counter_offer(
            plan_id,
            Proposal(300_000, 0, 2, Frequency.monthly, TODAY + dt.timedelta(20)),
            staff_id=staff_id,
            now=NOW,
        )
    assert refused.value.field == "total"
    assert (await PaymentPlan.objects().get(PaymentPlan.id == plan_id)).status == "proposed"


async def test_a_rejection_carries_the_reason_the_debtor_sees(db):
    account, staff_id, plan_id = await proposed()
    with pytest.raises(ValidationFailed):
        await plan_review.reject(plan_id, "  ", staff_id=staff_id, now=NOW)
    await plan_review.reject(
        plan_id, "El anticipo es muy bajo para este monto.", staff_id=staff_id, now=NOW
    )
    page = await plan_views.plan_page([account.debtor], now=NOW)
    last = page.accounts[0].last
    assert last is not None and last.status == "rejected"
    assert last.review_reason == "El anticipo es muy bajo para este monto."
    assert (await Task.objects().get(Task.dedupe_key == f"plan:{plan_id}")).status == "done"
    assert await kinds(account.id) == ["plan_proposed", "plan_rejected"]


async def test_approving_makes_the_schedule_unless_its_first_date_has_passed(db):
    _, staff_id, plan_id = await proposed()
    with pytest.raises(Conflict):
        await plan_review.approve(plan_id, staff_id=staff_id, now=NOW + dt.timedelta(days=9))
    await plan_review.approve(plan_id, staff_id=staff_id, now=NOW + dt.timedelta(days=1))
    plan = await PaymentPlan.objects().get(PaymentPlan.id == plan_id)
    assert (plan.status, plan.reviewed_by) == ("active", staff_id)
    rows = await installments(plan_id)
    assert rows[0]["due_date"] == TODAY + dt.timedelta(1)
    assert sum(r["amount"] for r in rows) == 400_000


# ---------------------------------------------------------------------------- progress


def test_the_waterfall_pays_rows_in_order() -> None:
    assert waterfall([100, 50, 50], 0) == [0, 0, 0]
    assert waterfall([100, 50, 50], 120) == [100, 20, 0]
    assert waterfall([100, 50, 50], 999) == [100, 50, 50]
    assert waterfall([100, 50], -5) == [0, 0]


@settings(max_examples=200)
@given(
    amounts=st.lists(st.integers(1, 10_000), min_size=1, max_size=20), paid=st.integers(0, 10**6)
)
def test_the_waterfall_never_skips_a_row(amounts, paid) -> None:
    parts = waterfall(amounts, paid)
    assert sum(parts) == min(paid, sum(amounts))
    assert all(0 <= p <= a for p, a in zip(parts, amounts, strict=True))
    short = [i for i, (p, a) in enumerate(zip(parts, amounts, strict=True)) if p < a]
    first_short = short[0] if short else len(parts)
    assert all(p == 0 for p in parts[first_short + 1 :])


async def active(amount: int = 300_000, **policy: object) -> tuple[Account, int, int]:
    account, staff_id = await case(amount, policy={**GENEROUS, **policy})
    outcome = await plans.propose(
        [account.debtor], account.id, form(30_000, 3, "monthly", TODAY + dt.timedelta(10)), now=NOW
    )
    assert outcome.status == "active"
    return account, staff_id, outcome.plan_id


async def states(account: Account, today: dt.date) -> list[tuple[str, int]]:
    page = await plan_views.plan_page([account.debtor], today=today)
    plan = page.accounts[0].plan or page.accounts[0].last
    assert plan is not None
    return [(r.status, r.paid.minor if r.paid else 0) for r in plan.rows]


async def test_payments_after_the_plan_pay_the_schedule_in_order(db):
    account, _, plan_id = await active()  # 30.000 down, then 3 × 90.000
    await pay(account, 5_000, TODAY - dt.timedelta(3))  # received before the plan: not counted
    assert await states(account, TODAY) == [("pending", 0)] * 4
    await pay(account, 50_000, TODAY + dt.timedelta(1))
    assert await states(account, TODAY + dt.timedelta(1)) == [
        ("paid", 30_000), ("partial", 20_000), ("pending", 0), ("pending", 0),
    ]  # fmt: skip
    due = await plans.installment_payment(
        [account.debtor], (await installments(plan_id))[1]["id"], today=TODAY
    )
    assert (due.number, due.amount) == (1, 70_000)
    refunded = await pay(account, 100_000, TODAY + dt.timedelta(2))
    assert (await states(account, TODAY + dt.timedelta(2)))[1:3] == [
        ("paid", 90_000),
        ("partial", 30_000),
    ]
    await reverse_payment(refunded, reason="Contracargo")
    assert await states(account, TODAY + dt.timedelta(2)) == [
        ("paid", 30_000), ("partial", 20_000), ("pending", 0), ("pending", 0),
    ]  # fmt: skip
    # 5 days of grace after 5 December: late on the 6th, missed on the 11th
    assert (await states(account, dt.date(2026, 12, 6)))[1] == ("late", 20_000)
    assert (await states(account, dt.date(2026, 12, 11)))[1] == ("missed", 20_000)


async def test_a_missed_installment_makes_one_task_for_the_agent(db):
    account, staff_id, plan_id = await active(missed_to_break=3)
    await pay(account, 30_000, TODAY)  # the down payment only
    await check_plans(today=dt.date(2026, 12, 10), now=NOW)  # within grace
    assert not await Task.exists().where(Task.account == account.id)
    for _ in range(2):  # a second run finds nothing new
        await check_plans(today=dt.date(2026, 12, 11), now=NOW)
    tasks = await Task.select().where(Task.account == account.id)
    assert [(t["kind"], t["assignee"]) for t in tasks] == [("plan_installment_missed", staff_id)]
    assert tasks[0]["dedupe_key"] == f"plan:{plan_id}:installment:1:missed"
    plan = await PaymentPlan.objects().get(PaymentPlan.id == plan_id)
    assert (plan.status, plan.missed_count) == ("active", 1)
    cached = [(r["status"], r["paid_amount"]) for r in await installments(plan_id)]
    assert cached == [("paid", 30_000), ("missed", 0), ("pending", 0), ("pending", 0)]
    assert "plan_installment_missed" in await kinds(account.id)


async def test_enough_misses_break_the_plan_and_keep_what_was_paid(db):
    account, _, plan_id = await active(missed_to_break=2)
    await pay(account, 120_000, TODAY)  # down payment and the first installment
    balance_before = await LedgerEntry.raw(
        "SELECT sum(amount) AS s FROM ledger_entry WHERE account = {}", account.id
    )
    await check_plans(today=dt.date(2027, 1, 11), now=NOW)  # installment 2 missed
    assert (await PaymentPlan.objects().get(PaymentPlan.id == plan_id)).status == "active"
    result = await check_plans(today=dt.date(2027, 2, 11), now=NOW)  # installment 3 missed
    assert result.missed >= 1 and result.broken >= 1  # other tests' plans are checked too
    plan = await PaymentPlan.objects().get(PaymentPlan.id == plan_id)
    assert (plan.status, plan.missed_count, plan.ended_at) == ("broken", 2, NOW)
    balance_after = await LedgerEntry.raw(
        "SELECT sum(amount) AS s FROM ledger_entry WHERE account = {}", account.id
    )
    assert balance_after == balance_before == [{"s": 180_000}]  # nothing reversed
    assert await plans.active_plan_invoices([account.id]) == {}
    kinds_of_tasks = {t["kind"] for t in await Task.select().where(Task.account == account.id)}
    assert kinds_of_tasks == {"plan_installment_missed", "plan_broken"}
    assert (await kinds(account.id))[-1] == "plan_broken"
    page = await plan_views.plan_page([account.debtor], today=dt.date(2027, 2, 11))
    assert page.accounts[0].last is not None and page.accounts[0].last.paid.minor == 120_000
    assert page.accounts[0].can_propose  # back to normal: a new plan may be proposed


async def test_a_fully_paid_plan_is_completed(db):
    account, _, plan_id = await active()
    await pay(account, 100_000, TODAY + dt.timedelta(3))
    await pay(account, 200_000, TODAY + dt.timedelta(20))
    result = await check_plans(today=TODAY + dt.timedelta(21), now=NOW)
    assert result.completed >= 1
    plan = await PaymentPlan.objects().get(PaymentPlan.id == plan_id)
    assert plan.status == "completed"
    assert [r["status"] for r in await installments(plan_id)] == ["paid"] * 4
    assert (await kinds(account.id))[-1] == "plan_completed"


async def test_upcoming_installments_are_what_reminders_are_about(db):
    account, _, plan_id = await active()
    await pay(account, 30_000, TODAY)
    upcoming = await plans.upcoming_installments(start=TODAY, end=dt.date(2026, 12, 31))
    mine = [(u.number, u.due_date, u.amount) for u in upcoming if u.plan_id == plan_id]
    assert mine == [(1, dt.date(2026, 12, 5), 90_000)]
