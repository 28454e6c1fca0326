"""Payment-plan schedules and plan policy, as pure functions (no I/O).

A proposal is a plan total, an optional down payment, a number of installments, a frequency and
the first installment's date. Its schedule is the down payment (number 0, due the day the plan is
accepted) followed by the installments, whose amounts come from `money.split_installments`
(the remainder goes one minor unit each to the earliest installments), so the schedule always
sums exactly to the total.

Dates: weekly and biweekly installments fall every 7 and 14 days; monthly ones keep the first
date's day of the month, moved to the month's last day when the month is shorter (first date
31 January → 28/29 February → 31 March).

A policy (per creditor and segment) bounds the proposal; `violations` lists every rule a proposal
breaks, and a proposal within policy whose total is at most the policy's auto-approval limit is
approved without staff review (`auto_approves`). A limit of 0 sends every proposal to review.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from saldo import money


class Frequency(StrEnum):
    weekly = "weekly"
    biweekly = "biweekly"
    monthly = "monthly"


@dataclass(frozen=True)
class Policy:
    max_installments: int = 12
    frequencies: tuple[Frequency, ...] = (Frequency.weekly, Frequency.biweekly, Frequency.monthly)
    min_down_payment_bp: int = 0  # basis points of the total (1000 = 10 %)
    min_installment: int = 0  # minor units; 0 = no minimum
    max_term_days: int = 365  # from acceptance to the last installment
    max_first_date_days: int = 31  # how far away the first installment may start
    early_settlement_discount_bp: int = 0
    missed_to_break: int = 2
    grace_days: int = 5
    auto_approve_limit: int = 0  # minor units; totals up to it are approved at once


@dataclass(frozen=True)
class Proposal:
    total: int
    down_payment: int
    installments: int
    frequency: Frequency
    first_date: dt.date


@dataclass(frozen=True)
class Scheduled:
    number: int  # 0 is the down payment
    due_date: dt.date
    amount: int


@dataclass(frozen=True)
class Violation:
    field: str
    code: str
    limit: int | str = ""


def add_months(day: dt.date, months: int, anchor_day: int | None = None) -> dt.date:
    """`day` moved by `months`, keeping `anchor_day` (default: day.day) or the month's end."""
    month_index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(month_index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return dt.date(year, month + 1, min(anchor_day or day.day, last))


def due_dates(first_date: dt.date, count: int, frequency: Frequency) -> list[dt.date]:
    if count < 1:
        raise ValueError("a plan needs at least one installment")
    if frequency is Frequency.monthly:
        return [add_months(first_date, n, first_date.day) for n in range(count)]
    step = dt.timedelta(days=7 if frequency is Frequency.weekly else 14)
    return [first_date + step * n for n in range(count)]


def schedule(proposal: Proposal, *, accepted_on: dt.date) -> list[Scheduled]:
    """The down payment (if any, due on `accepted_on`) and every installment, summing to total."""
    amounts = money.split_installments(proposal.total, proposal.installments, proposal.down_payment)
    dates = due_dates(proposal.first_date, proposal.installments, proposal.frequency)
    rows: list[Scheduled] = []
    if proposal.down_payment:
        rows.append(Scheduled(0, accepted_on, amounts[0]))
        amounts = amounts[1:]
    rows.extend(
        Scheduled(n, day, amount)
        for n, (day, amount) in enumerate(zip(dates, amounts, strict=True), 1)
    )
    return rows


def min_down_payment(total: int, policy: Policy) -> int:
    """The smallest down payment the policy accepts (rounded up to the minor unit)."""
    return -(-total * policy.min_down_payment_bp // 10_000)


def violations(proposal: Proposal, policy: Policy, *, today: dt.date) -> list[Violation]:
    """Every rule of `policy` the proposal breaks (empty when it fits)."""
    found: list[Violation] = []
    if proposal.total <= 0:
        return [Violation("total", "nothing_to_plan")]
    if proposal.installments < 1:
        found.append(Violation("installments", "too_few", 1))
    elif proposal.installments > policy.max_installments:
        found.append(Violation("installments", "too_many", policy.max_installments))
    if proposal.frequency not in policy.frequencies:
        allowed = ",".join(str(f) for f in policy.frequencies)
        found.append(Violation("frequency", "not_allowed", allowed))
    if proposal.down_payment < 0 or proposal.down_payment >= proposal.total:
        found.append(Violation("down_payment", "out_of_range", proposal.total))
    elif proposal.down_payment < min_down_payment(proposal.total, policy):
        found.append(
            Violation("down_payment", "below_minimum", min_down_payment(proposal.total, policy))
        )
    if proposal.first_date <= today:
        found.append(Violation("first_date", "not_in_future"))
    elif (proposal.first_date - today).days > policy.max_first_date_days:
        found.append(Violation("first_date", "too_far", policy.max_first_date_days))
    if found and any(v.field in {"installments", "down_payment"} for v in found):
        return found  # no schedule to judge
    rows = schedule(proposal, accepted_on=today)
    installments = [row for row in rows if row.number > 0]
    if policy.min_installment and min(row.amount for row in installments) < policy.min_installment:
        found.append(Violation("installments", "below_min_installment", policy.min_installment))
    if (installments[-1].due_date - today).days > policy.max_term_days:
        found.append(Violation("installments", "term_too_long", policy.max_term_days))
    return found


def auto_approves(proposal: Proposal, policy: Policy, *, today: dt.date) -> bool:
    """Within policy and a total up to the auto-approval limit."""
    return (
        policy.auto_approve_limit > 0
        and proposal.total <= policy.auto_approve_limit
        and not violations(proposal, policy, today=today)
    )


def early_settlement(remaining: int, policy: Policy) -> int:
    """What settles the rest of a plan today: `remaining` less the discount, rounded up."""
    discount = remaining * policy.early_settlement_discount_bp // 10_000
    return remaining - discount
