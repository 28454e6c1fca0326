"""Plan schedules sum to the balance and respect the policy; auto-approval follows the policy."""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from saldo.schedule import (
    Frequency,
    Policy,
    Proposal,
    add_months,
    auto_approves,
    due_dates,
    early_settlement,
    min_down_payment,
    schedule,
    violations,
)

TODAY = dt.date(2026, 11, 25)

policies = st.builds(
    Policy,
    max_installments=st.integers(1, 36),
    frequencies=st.lists(st.sampled_from(list(Frequency)), min_size=1, unique=True).map(tuple),
    min_down_payment_bp=st.integers(0, 5000),
    min_installment=st.integers(0, 50_000),
    max_term_days=st.integers(30, 1100),
    max_first_date_days=st.integers(1, 60),
    auto_approve_limit=st.integers(0, 5_000_000),
)
proposals = st.builds(
    Proposal,
    total=st.integers(1, 10_000_000),
    down_payment=st.integers(0, 3_000_000),
    installments=st.integers(1, 40),
    frequency=st.sampled_from(list(Frequency)),
    first_date=st.integers(-3, 70).map(lambda d: TODAY + dt.timedelta(days=d)),
)


@given(proposals)
def test_a_schedule_sums_exactly_to_the_total(proposal: Proposal) -> None:
    if proposal.down_payment > proposal.total:
        return
    rows = schedule(proposal, accepted_on=TODAY)
    assert sum(row.amount for row in rows) == proposal.total
    installments = [row for row in rows if row.number > 0]
    assert [row.number for row in installments] == list(range(1, proposal.installments + 1))
    assert installments[0].due_date == proposal.first_date
    assert all(a.due_date < b.due_date for a, b in itertools.pairwise(installments))
    amounts = [row.amount for row in installments]
    assert max(amounts) - min(amounts) <= 1
    assert amounts == sorted(amounts, reverse=True)  # the remainder goes to the earliest


@given(proposals, policies)
def test_every_schedule_within_policy_respects_each_rule(
    proposal: Proposal, policy: Policy
) -> None:
    if violations(proposal, policy, today=TODAY):
        return
    rows = schedule(proposal, accepted_on=TODAY)
    installments = [row for row in rows if row.number > 0]
    assert sum(row.amount for row in rows) == proposal.total
    assert len(installments) <= policy.max_installments
    assert proposal.frequency in policy.frequencies
    assert proposal.down_payment * 10_000 >= proposal.total * policy.min_down_payment_bp
    assert all(row.amount >= policy.min_installment for row in installments)
    assert TODAY < installments[0].due_date <= TODAY + dt.timedelta(policy.max_first_date_days)
    assert installments[-1].due_date <= TODAY + dt.timedelta(days=policy.max_term_days)


@given(proposals, policies)
def test_auto_approval_decides_exactly_as_the_policy_says(
    proposal: Proposal, policy: Policy
) -> None:
    fits = not violations(proposal, policy, today=TODAY)
    expected = (
        fits and policy.auto_approve_limit > 0 and proposal.total <= policy.auto_approve_limit
    )
    assert auto_approves(proposal, policy, today=TODAY) is expected


def test_each_broken_rule_is_named_with_its_field() -> None:
    policy = Policy(
        max_installments=6,
        frequencies=(Frequency.monthly,),
        min_down_payment_bp=1000,
        min_installment=10_000,
        max_term_days=180,
    )
    proposal = Proposal(100_000, 5_000, 12, Frequency.weekly, TODAY)
    codes = {(v.field, v.code) for v in violations(proposal, policy, today=TODAY)}
    assert codes == {
        ("installments", "too_many"),
        ("frequency", "not_allowed"),
        ("down_payment", "below_minimum"),
        ("first_date", "not_in_future"),
    }
    small = Proposal(60_000, 6_000, 6, Frequency.monthly, TODAY + dt.timedelta(days=10))
    assert [(v.code, v.limit) for v in violations(small, policy, today=TODAY)] == [
        ("below_min_installment", 10_000)
    ]
    long = Proposal(600_000, 60_000, 6, Frequency.monthly, TODAY + dt.timedelta(days=30))
    assert [v.code for v in violations(long, policy, today=TODAY)] == ["term_too_long"]


def test_a_proposal_within_policy_has_no_violations() -> None:
    policy = Policy(max_installments=6, min_down_payment_bp=1000, auto_approve_limit=200_000)
    proposal = Proposal(150_000, 15_000, 3, Frequency.monthly, TODAY + dt.timedelta(days=5))
    assert violations(proposal, policy, today=TODAY) == []
    assert auto_approves(proposal, policy, today=TODAY)
    assert not auto_approves(proposal, Policy(max_installments=6), today=TODAY)  # limit 0


def test_monthly_dates_keep_the_day_or_the_month_end() -> None:
    assert due_dates(dt.date(2027, 1, 31), 4, Frequency.monthly) == [
        dt.date(2027, 1, 31),
        dt.date(2027, 2, 28),
        dt.date(2027, 3, 31),
        dt.date(2027, 4, 30),
    ]
    assert add_months(dt.date(2027, 12, 15), 1) == dt.date(2028, 1, 15)
    assert due_dates(dt.date(2027, 1, 1), 3, Frequency.biweekly)[-1] == dt.date(2027, 1, 29)


def test_down_payment_is_due_on_acceptance_and_rounds_up() -> None:
    rows = schedule(
        Proposal(10_000, 1_000, 3, Frequency.weekly, TODAY + dt.timedelta(7)), accepted_on=TODAY
    )
    assert [(r.number, r.due_date, r.amount) for r in rows][:2] == [
        (0, TODAY, 1_000),
        (1, TODAY + dt.timedelta(7), 3_000),
    ]
    assert min_down_payment(999, Policy(min_down_payment_bp=1000)) == 100  # 99.9 → 100


def test_early_settlement_discount() -> None:
    assert early_settlement(100_000, Policy(early_settlement_discount_bp=500)) == 95_000
    assert early_settlement(999, Policy(early_settlement_discount_bp=0)) == 999


@pytest.mark.parametrize("count", [0, -1])
def test_due_dates_need_an_installment(count: int) -> None:
    with pytest.raises(ValueError, match="at least one installment"):
        due_dates(TODAY, count, Frequency.weekly)
