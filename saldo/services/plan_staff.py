"""Payment plans in the back office: the review queue, one plan as staff see it (with the
account's recent history and the counter-offer form and its live preview), and the
plan-policy editor's page and form.

Decisions stay in `saldo.services.plan_review` (this module only turns the counter-offer form
into a `Proposal` for `counter_offer`), saving a policy stays in
`saldo.services.plan_policy.save_policy` (this module reads the editor's form: percentages
and amounts as staff write them, every wrong field at once).

The queue holds the proposals waiting for review ("proposed") and the counter-offers waiting
for the debtor ("offered"), oldest first. Which policy rules a plan breaks is judged on the
debtor's today (`schedule.violations`), as the approval itself will judge it.

Staff read Spanish or English (`language`); amounts and dates are written as the debtor's
country writes them (`statement.display_locale`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Final

from babel.numbers import get_decimal_symbol

from saldo import money
from saldo.errors import Conflict, NotFound, ValidationFailed
from saldo.i18n import gettext
from saldo.schedule import Frequency, Policy, Violation, min_down_payment, schedule, violations
from saldo.services import plan_review
from saldo.services.checkout import parse_money
from saldo.services.plan_policy import (
    DEFAULT_SEGMENT,
    LIMITS,
    frequency_label,
    policies_for,
    policy_from_row,
    policy_lines,
    save_policy,
)
from saldo.services.plan_progress import installment_states, installments_of, paid_toward
from saldo.services.plan_views import (
    PreviewView,
    ScheduleRow,
    installment_label,
    installment_status_label,
    judge,
    status_label,
    violation_message,
)
from saldo.services.plans import (
    AGREED_STATUSES,
    InvalidPlan,
    PlanForm,
    coverage,
    parse_proposal,
    proposal_of,
)
from saldo.services.statement import Amount, Formats, display_locale, local_today
from saldo.tables import PaymentPlan

__all__ = [
    "QUEUE_STATUSES",
    "CreditorChoice",
    "HistoryItem",
    "InvalidPolicy",
    "PolicyForm",
    "PolicyPage",
    "QueueItem",
    "ReviewQueue",
    "RuleBroken",
    "SavedPolicy",
    "SegmentPolicy",
    "StaffPlan",
    "counter_offer_form",
    "counter_preview",
    "policy_page",
    "review_queue",
    "save_policy_form",
    "staff_plan",
]

#: The statuses the review queue holds: waiting for staff, and waiting for the debtor.
QUEUE_STATUSES: Final = ("proposed", "offered")
PER_PAGE: Final = 50
HISTORY: Final = 15
_MAX_ID: Final = 2**31 - 1
_SEGMENT: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
#: A creditor without accounts yet: the currency of its country (policy money is minor units).
_COUNTRY_CURRENCY: Final = {
    "AR": "ARS",
    "MX": "MXN",
    "CO": "COP",
    "PE": "PEN",
    "UY": "UYU",
    "BR": "BRL",
    "CL": "CLP",
    "PY": "PYG",
    "ES": "EUR",
    "US": "USD",
}


def _valid_id(value: int) -> bool:
    return 0 < value <= _MAX_ID


def _fmt(language: str, country: str, currency: str) -> Formats:
    return Formats(currency, display_locale(language, country))


def _typed(minor: int, fmt: Formats) -> str:
    """An amount as staff type it: "1234,50" in Spanish locales, "1234.50" in English."""
    text = str(money.to_decimal(minor, fmt.currency))
    return text.replace(".", get_decimal_symbol(fmt.locale))


# ---------------------------------------------------------------------------- broken rules


@dataclass(frozen=True, slots=True)
class RuleBroken:
    field: str
    code: str
    message: str


def _broken(found: Sequence[Violation], fmt: Formats, language: str) -> tuple[RuleBroken, ...]:
    def words(v: Violation) -> str:
        if v.code == "not_in_future":
            return gettext(language, "La primera cuota debe vencer después de hoy.")
        return violation_message(v, fmt, language)

    return tuple(RuleBroken(v.field, v.code, words(v)) for v in found)


# ---------------------------------------------------------------------------- the queue


@dataclass(frozen=True, slots=True)
class QueueItem:
    plan_id: int
    status: str  # proposed (waiting for staff) | offered (waiting for the debtor)
    status_label: str
    account_id: int
    debtor_id: int
    debtor_name: str
    creditor_name: str
    currency: str
    segment: str
    assignee: str
    balance: Amount  # the account's ledger balance now
    total: Amount
    down_payment: Amount
    installments: int
    frequency_label: str
    first_date: str
    broken: tuple[RuleBroken, ...]
    has_message: bool
    counter_of: int | None
    created_at: dt.datetime
    age: dt.timedelta


@dataclass(frozen=True, slots=True)
class ReviewQueue:
    items: tuple[QueueItem, ...]
    status: str  # "" (both) | proposed | offered
    query: str  # the search as typed ("" for none)
    counts: Mapping[str, int]  # per status, for the search (whatever the status filter)
    total: int  # items matching the filter
    page: int
    pages: int


_PLAN_SQL: Final = """
    SELECT p.*, a.debtor AS debtor_id, a.currency, a.segment, a.creditor AS creditor_id,
           d.name AS debtor_name, d.document_type, d.document_number, d.country, d.timezone,
           d.language AS debtor_language, c.name AS creditor_name,
           coalesce(s.name, s.email, '') AS assignee_name,
           coalesce(r.name, r.email, '') AS reviewer_name,
           coalesce((SELECT sum(e.amount) FROM ledger_entry e WHERE e.account = a.id), 0)::bigint
               AS balance
    FROM payment_plan p
    JOIN account a ON a.id = p.account
    JOIN debtor d ON d.id = a.debtor
    JOIN creditor c ON c.id = a.creditor
    LEFT JOIN staff_user s ON s.id = a.assignee
    LEFT JOIN staff_user r ON r.id = p.reviewed_by
"""


_SEARCH: Final = """
    ({}::text = '' OR d.name ILIKE {} ESCAPE '\\' OR c.name ILIKE {} ESCAPE '\\'
     OR a.id::text = {} OR p.id::text = {})
"""


def _search_values(query: str) -> list[Any]:
    pattern = "%" + re.sub(r"([\\%_])", r"\\\1", query) + "%"
    return [query, pattern, pattern, query, query]


async def review_queue(
    *,
    now: dt.datetime,
    language: str = "es",
    status: str = "",
    query: str = "",
    page: int = 1,
) -> ReviewQueue:
    """Proposals waiting for review and counter-offers waiting for the debtor, oldest first.

    `status` narrows it to one of `QUEUE_STATUSES` ("" for both); anything else is
    `ValidationFailed` on field "status". `query` finds a debtor or creditor by part of its
    name, or an account or plan by its number.
    """
    if status and status not in QUEUE_STATUSES:
        raise ValidationFailed(gettext(language, "Elija un estado de la lista."), field="status")
    query = query.strip()[:100]
    wanted = [status] if status else list(QUEUE_STATUSES)
    counted = await PaymentPlan.raw(
        f"""SELECT p.status, count(*) AS n FROM payment_plan p
            JOIN account a ON a.id = p.account JOIN debtor d ON d.id = a.debtor
            JOIN creditor c ON c.id = a.creditor
            WHERE p.status = ANY({{}}::text[]) AND {_SEARCH} GROUP BY p.status""",
        list(QUEUE_STATUSES),
        *_search_values(query),
    )
    counts = {s: 0 for s in QUEUE_STATUSES} | {str(r["status"]): int(r["n"]) for r in counted}
    total = sum(counts[s] for s in wanted)
    pages = max(1, -(-total // PER_PAGE))
    page = min(max(1, page), pages)
    rows = await PaymentPlan.raw(
        f"""{_PLAN_SQL} WHERE p.status = ANY({{}}::text[]) AND {_SEARCH}
            ORDER BY p.created_at, p.id LIMIT {{}} OFFSET {{}}""",
        wanted,
        *_search_values(query),
        PER_PAGE,
        (page - 1) * PER_PAGE,
    )
    policies = await policies_for(sorted({int(r["account"]) for r in rows}))
    items = []
    for r in rows:
        fmt = _fmt(language, r["country"], r["currency"])
        proposal = proposal_of(r)
        today = local_today(now, r["timezone"])
        items.append(
            QueueItem(
                plan_id=int(r["id"]),
                status=str(r["status"]),
                status_label=_status(language, str(r["status"])),
                account_id=int(r["account"]),
                debtor_id=int(r["debtor_id"]),
                debtor_name=str(r["debtor_name"]),
                creditor_name=str(r["creditor_name"]),
                currency=str(r["currency"]),
                segment=str(r["segment"]),
                assignee=str(r["assignee_name"]),
                balance=fmt.money(int(r["balance"])),
                total=fmt.money(proposal.total),
                down_payment=fmt.money(proposal.down_payment),
                installments=proposal.installments,
                frequency_label=frequency_label(language, proposal.frequency.value),
                first_date=fmt.date(proposal.first_date),
                broken=_broken(
                    violations(proposal, policies[int(r["account"])], today=today), fmt, language
                ),
                has_message=bool(r["debtor_message"]),
                counter_of=r["counter_of"],
                created_at=r["created_at"],
                age=max(dt.timedelta(0), now - r["created_at"]),
            )
        )
    return ReviewQueue(tuple(items), status, query, counts, total, page, pages)


def _status(language: str, status: str) -> str:
    """Plan statuses as staff say them (the debtor's words, except for the two waiting ones)."""
    if status == "proposed":
        return gettext(language, "Por revisar")
    if status == "offered":
        return gettext(language, "Esperando al deudor")
    return status_label(language, status)


# ---------------------------------------------------------------------------- one plan


@dataclass(frozen=True, slots=True)
class HistoryItem:
    when: dt.datetime
    kind: str
    channel: str
    direction: str
    summary: str
    staff: str


@dataclass(frozen=True, slots=True)
class StaffPlan:
    id: int
    status: str
    status_label: str
    proposed_by: str  # debtor | staff
    account_id: int
    debtor_id: int
    debtor_name: str
    debtor_document: str
    creditor_name: str
    currency: str
    segment: str
    assignee: str
    reviewer: str
    balance: Amount  # the account's ledger balance now
    coverage: Amount  # what a plan made now would cover: the total of a counter-offer
    total: Amount
    down_payment: Amount
    installments_count: int
    frequency: str
    frequency_label: str
    first_date: str
    created_at: dt.datetime
    decided_at: dt.datetime | None
    debtor_message: str
    review_reason: str
    counter_of: int | None
    offer_id: int | None  # the counter-offer made for this proposal
    rows: tuple[
        ScheduleRow, ...
    ]  # the installments (agreed plans) or the schedule if accepted today
    paid: Amount | None  # paid toward an agreed plan
    broken: tuple[RuleBroken, ...]
    first_date_passed: bool
    policy: Policy
    policy_lines: tuple[str, ...]
    history: tuple[HistoryItem, ...]
    # the counter-offer form (proposals only)
    form: PlanForm
    errors: Mapping[str, str]
    preview: PreviewView | None
    note: str
    frequencies: tuple[tuple[str, str], ...]
    earliest_first_date: str

    @property
    def decidable(self) -> bool:
        return self.status == "proposed"

    @property
    def above_policy(self) -> bool:
        return bool(self.broken)

    @property
    def agreed(self) -> bool:
        return self.status in AGREED_STATUSES


async def _plan_row(plan_id: int) -> dict[str, Any]:
    if not _valid_id(plan_id):
        raise NotFound(f"plan {plan_id} does not exist")
    rows = await PaymentPlan.raw(f"{_PLAN_SQL} WHERE p.id = {{}}", plan_id)
    if not rows:
        raise NotFound(f"plan {plan_id} does not exist")
    return dict(rows[0])


async def _history(account_id: int) -> list[dict[str, Any]]:
    return await PaymentPlan.raw(
        """SELECT i.occurred_at, i.kind, i.channel, i.direction, i.summary,
                  coalesce(s.name, s.email, '') AS staff
           FROM interaction i LEFT JOIN staff_user s ON s.id = i.staff
           WHERE i.account = {}
           ORDER BY i.occurred_at DESC, i.id DESC LIMIT {}""",
        account_id,
        HISTORY,
    )


def _schedule_rows(
    plan: Mapping[str, Any],
    installments: list[dict[str, Any]],
    paid: int,
    policy: Policy,
    fmt: Formats,
    today: dt.date,
    language: str,
) -> tuple[ScheduleRow, ...]:
    if not installments:  # not agreed yet: the schedule as if accepted today
        return tuple(
            ScheduleRow(
                number=r.number,
                label=installment_label(language, r.number),
                due_date=r.due_date,
                due=fmt.date(r.due_date),
                amount=fmt.money(r.amount),
            )
            for r in schedule(proposal_of(plan), accepted_on=today)
        )
    states = installment_states(installments, paid, today=today, policy=policy)
    if plan["status"] != "active":
        states = [s if s.status == "paid" else replace(s, status="") for s in states]
    return tuple(
        ScheduleRow(
            number=s.number,
            label=installment_label(language, s.number),
            due_date=s.due_date,
            due=fmt.date(s.due_date),
            amount=fmt.money(s.amount),
            paid=fmt.money(s.paid),
            status=s.status,
            status_label=installment_status_label(language, s.status) if s.status else "",
        )
        for s in states
    )


def _counter_defaults(
    plan: Mapping[str, Any], policy: Policy, total: int, fmt: Formats, today: dt.date
) -> PlanForm:
    """A counter-offer to start from: the debtor's proposal brought inside the policy's basic
    limits (frequency, number of installments, minimum down payment, first date)."""
    proposal = proposal_of(plan)
    allowed = [f.value for f in policy.frequencies]
    frequency = proposal.frequency.value
    if frequency not in allowed:
        frequency = "monthly" if "monthly" in allowed else allowed[0]
    count = max(1, min(proposal.installments, policy.max_installments))
    down = 0
    if total > 1:
        down = min(max(proposal.down_payment, min_down_payment(total, policy)), total - 1)
    first = proposal.first_date
    if not today < first <= today + dt.timedelta(days=policy.max_first_date_days):
        first = today + dt.timedelta(days=max(1, min(7, policy.max_first_date_days)))
    return PlanForm(
        account=str(plan["account"]),
        down_payment=_typed(down, fmt) if down else "",
        installments=str(count),
        frequency=frequency,
        first_date=first.isoformat(),
    )


async def staff_plan(
    plan_id: int,
    *,
    now: dt.datetime,
    language: str = "es",
    form: PlanForm | None = None,
    errors: Mapping[str, str] | None = None,
    note: str = "",
) -> StaffPlan:
    """One plan for staff: the proposal, its schedule and broken rules, the account's recent
    history and, for a proposal under review, the counter-offer form (`form`/`errors`/`note`
    re-show one as typed) with its preview. `NotFound` for an unknown id."""
    plan = await _plan_row(plan_id)
    account_id = int(plan["account"])
    fmt = _fmt(language, plan["country"], plan["currency"])
    today = local_today(now, plan["timezone"])
    covered, policies, installments, paid, history, offers = await asyncio.gather(
        coverage([account_id]),
        policies_for([account_id]),
        installments_of([plan_id]),
        paid_toward([plan_id]),
        _history(account_id),
        PaymentPlan.raw("SELECT id FROM payment_plan WHERE counter_of = {} ORDER BY id", plan_id),
    )
    policy = policies[account_id]
    total = covered[account_id].total
    proposal = proposal_of(plan)
    agreed = plan["status"] in AGREED_STATUSES
    decidable = plan["status"] == "proposed"
    shown_form = form or _counter_defaults(plan, policy, total, fmt, today)
    preview = None
    if decidable and total > 0:
        preview = judge(
            account_id,
            shown_form,
            total=total,
            policy=policy,
            fmt=fmt,
            today=today,
            language=language,
        )
        if errors:
            preview = replace(preview, errors={**preview.errors, **errors})
    return StaffPlan(
        id=plan_id,
        status=str(plan["status"]),
        status_label=_status(language, str(plan["status"])),
        proposed_by=str(plan["proposed_by"]),
        account_id=account_id,
        debtor_id=int(plan["debtor_id"]),
        debtor_name=str(plan["debtor_name"]),
        debtor_document=f"{plan['document_type']} {plan['document_number']}".strip(),
        creditor_name=str(plan["creditor_name"]),
        currency=str(plan["currency"]),
        segment=str(plan["segment"]),
        assignee=str(plan["assignee_name"]),
        reviewer=str(plan["reviewer_name"]),
        balance=fmt.money(int(plan["balance"])),
        coverage=fmt.money(total),
        total=fmt.money(proposal.total),
        down_payment=fmt.money(proposal.down_payment),
        installments_count=proposal.installments,
        frequency=proposal.frequency.value,
        frequency_label=frequency_label(language, proposal.frequency.value),
        first_date=fmt.date(proposal.first_date),
        created_at=plan["created_at"],
        decided_at=plan["decided_at"],
        debtor_message=str(plan["debtor_message"] or ""),
        review_reason=str(plan["review_reason"] or ""),
        counter_of=plan["counter_of"],
        offer_id=int(offers[0]["id"]) if offers else None,
        rows=_schedule_rows(
            plan,
            installments.get(plan_id, []),
            paid.get(plan_id, 0),
            policy,
            fmt,
            today,
            language,
        ),
        paid=fmt.money(paid.get(plan_id, 0)) if agreed else None,
        broken=_broken(violations(proposal, policy, today=today), fmt, language)
        if not agreed
        else (),
        first_date_passed=proposal.first_date <= today,
        policy=policy,
        policy_lines=tuple(policy_lines(policy, fmt, language, total or proposal.total)),
        history=tuple(
            HistoryItem(
                when=h["occurred_at"],
                kind=str(h["kind"]),
                channel=str(h["channel"]),
                direction=str(h["direction"]),
                summary=str(h["summary"]),
                staff=str(h["staff"]),
            )
            for h in history
        ),
        form=shown_form,
        errors=dict(errors or {}),
        preview=preview,
        note=note,
        frequencies=tuple((f.value, frequency_label(language, f.value)) for f in Frequency),
        earliest_first_date=(today + dt.timedelta(days=1)).isoformat(),
    )


# ---------------------------------------------------------------------------- the counter-offer


def _counter_form(plan: Mapping[str, Any], form: Mapping[str, Any]) -> PlanForm:
    return replace(PlanForm.from_mapping(form), account=str(plan["account"]), message="")


async def counter_preview(
    plan_id: int, form: Mapping[str, Any], *, now: dt.datetime, language: str = "es"
) -> PreviewView:
    """The schedule a counter-offer form describes and the policy rules it breaks (staff may
    offer outside the policy; the preview says so). Nothing is stored."""
    plan = await _plan_row(plan_id)
    account_id = int(plan["account"])
    covered, policies = await asyncio.gather(coverage([account_id]), policies_for([account_id]))
    return judge(
        account_id,
        _counter_form(plan, form),
        total=covered[account_id].total,
        policy=policies[account_id],
        fmt=_fmt(language, plan["country"], plan["currency"]),
        today=local_today(now, plan["timezone"]),
        language=language,
    )


async def counter_offer_form(
    plan_id: int,
    form: Mapping[str, Any],
    *,
    staff_id: int,
    now: dt.datetime,
    ip: str = "",
    language: str = "es",
) -> plan_review.Decision:
    """Answer a proposal with the counter-offer the form describes (down payment, installments,
    frequency, first date, and `note` for the debtor), covering the account's balance now.

    `InvalidPlan` (every wrong field) when the form is wrong; then as `counter_offer`.
    """
    plan = await _plan_row(plan_id)
    if plan["status"] != "proposed":  # before judging the form: there is nothing to answer
        raise Conflict(
            "Este plan ya no espera una decisión: alguien lo decidió antes o cambió de estado. "
            "Recargue la página para ver cómo quedó."
        )
    account_id = int(plan["account"])
    typed = _counter_form(plan, form)
    total = (await coverage([account_id]))[account_id].total
    proposal, errors = parse_proposal(
        typed,
        total=total,
        fmt=_fmt(language, plan["country"], plan["currency"]),
        today=local_today(now, plan["timezone"]),
        language=language,
    )
    note = str(form.get("note", "") or "")[:2000]
    if proposal is None:
        raise InvalidPlan(typed, errors)
    return await plan_review.counter_offer(
        plan_id, proposal, staff_id=staff_id, now=now, note=note, ip=ip
    )


# ---------------------------------------------------------------------------- the policy editor


@dataclass(frozen=True, slots=True)
class PolicyForm:
    """The policy editor's form as typed: percentages and amounts as staff write them."""

    creditor: str = ""
    segment: str = ""
    max_installments: str = ""
    frequencies: tuple[str, ...] = ()
    min_down_payment: str = ""  # percent of the plan's total
    min_installment: str = ""  # an amount in the creditor's currency
    max_term_days: str = ""
    early_settlement_discount: str = ""  # percent
    missed_to_break: str = ""
    grace_days: str = ""
    auto_approve_limit: str = ""  # an amount

    @classmethod
    def from_mapping(cls, form: Mapping[str, Any], frequencies: Sequence[str] = ()) -> PolicyForm:
        def text(name: str) -> str:
            value = form.get(name, "")
            return str(value).strip()[:60] if isinstance(value, str) else ""

        return cls(
            creditor=text("creditor"),
            segment=text("segment").lower(),
            max_installments=text("max_installments"),
            frequencies=tuple(str(f)[:20] for f in frequencies)[:10],
            min_down_payment=text("min_down_payment"),
            min_installment=text("min_installment"),
            max_term_days=text("max_term_days"),
            early_settlement_discount=text("early_settlement_discount"),
            missed_to_break=text("missed_to_break"),
            grace_days=text("grace_days"),
            auto_approve_limit=text("auto_approve_limit"),
        )

    @classmethod
    def of(cls, creditor_id: int, segment: str, policy: Policy, fmt: Formats) -> PolicyForm:
        def percent(basis_points: int) -> str:
            value = (Decimal(basis_points) / 100).normalize()
            text = f"{value:f}"
            return text.replace(".", get_decimal_symbol(fmt.locale))

        return cls(
            creditor=str(creditor_id),
            segment=segment,
            max_installments=str(policy.max_installments),
            frequencies=tuple(f.value for f in policy.frequencies),
            min_down_payment=percent(policy.min_down_payment_bp),
            min_installment=_typed(policy.min_installment, fmt),
            max_term_days=str(policy.max_term_days),
            early_settlement_discount=percent(policy.early_settlement_discount_bp),
            missed_to_break=str(policy.missed_to_break),
            grace_days=str(policy.grace_days),
            auto_approve_limit=_typed(policy.auto_approve_limit, fmt),
        )


class InvalidPolicy(ValidationFailed):
    """The policy form has errors: one message per field, and the form as typed."""

    def __init__(self, form: PolicyForm, errors: Mapping[str, str]) -> None:
        first = next(iter(errors))
        super().__init__(errors[first], field=first)
        self.form = form
        self.errors = dict(errors)


@dataclass(frozen=True, slots=True)
class CreditorChoice:
    id: int
    name: str
    country: str
    currency: str
    segments: int  # policies the creditor has


@dataclass(frozen=True, slots=True)
class SegmentPolicy:
    segment: str
    source: str  # own (its own row) | standard (the creditor's standard one) | defaults
    accounts: int  # the creditor's accounts in this segment
    policy: Policy
    frequencies: str
    min_down_payment: str
    min_installment: Amount
    early_settlement_discount: str
    auto_approve_limit: Amount


@dataclass(frozen=True, slots=True)
class PolicyPage:
    creditors: tuple[CreditorChoice, ...]
    creditor: CreditorChoice | None
    segments: tuple[SegmentPolicy, ...]
    segment: str  # the one in the form
    source: str  # where the form's starting values come from (see SegmentPolicy.source)
    form: PolicyForm
    errors: Mapping[str, str]
    frequencies: tuple[tuple[str, str], ...]
    limits: Mapping[str, tuple[int, int]] = field(default_factory=lambda: dict(LIMITS))


async def _creditors() -> list[dict[str, Any]]:
    return await PaymentPlan.raw(
        """SELECT c.id, c.name, c.country,
                  (SELECT a.currency FROM account a WHERE a.creditor = c.id
                   GROUP BY a.currency ORDER BY count(*) DESC, a.currency LIMIT 1) AS currency,
                  (SELECT count(*) FROM plan_policy p WHERE p.creditor = c.id) AS segments
           FROM creditor c ORDER BY c.name, c.id"""
    )


def _choice(row: Mapping[str, Any]) -> CreditorChoice:
    country = str(row["country"] or "")
    currency = row["currency"] or _COUNTRY_CURRENCY.get(country.upper(), "USD")
    return CreditorChoice(
        int(row["id"]), str(row["name"]), country, str(currency), int(row["segments"])
    )


async def policy_page(
    *,
    creditor_id: int | None = None,
    segment: str | None = None,
    language: str = "es",
    form: PolicyForm | None = None,
    errors: Mapping[str, str] | None = None,
) -> PolicyPage:
    """The creditors, the chosen one's policy per segment (its own, inherited from "standard"
    or the defaults) and the form for one segment (`form`/`errors` re-show it as typed).

    `NotFound` for an unknown creditor; the first creditor when none is chosen.
    """
    creditors = [_choice(r) for r in await _creditors()]
    frequencies = tuple((f.value, frequency_label(language, f.value)) for f in Frequency)
    if creditor_id is not None:
        chosen = next((c for c in creditors if c.id == creditor_id), None)
        if chosen is None:
            raise NotFound(gettext(language, "No encontramos ese acreedor."))
    else:
        chosen = creditors[0] if creditors else None
    if chosen is None:
        return PolicyPage(
            creditors=(),
            creditor=None,
            segments=(),
            segment=DEFAULT_SEGMENT,
            source="defaults",
            form=form or PolicyForm(),
            errors=dict(errors or {}),
            frequencies=frequencies,
        )
    rows = await PaymentPlan.raw(
        "SELECT * FROM plan_policy WHERE creditor = {} ORDER BY segment", chosen.id
    )
    used = await PaymentPlan.raw(
        "SELECT segment, count(*) AS n FROM account WHERE creditor = {} GROUP BY segment",
        chosen.id,
    )
    own = {str(r["segment"]): policy_from_row(r) for r in rows}
    accounts = {str(r["segment"]): int(r["n"]) for r in used}
    fmt = _fmt(language, chosen.country, chosen.currency)

    def effective(name: str) -> tuple[Policy, str]:
        if name in own:
            return own[name], "own"
        if DEFAULT_SEGMENT in own:
            return own[DEFAULT_SEGMENT], "standard"
        return Policy(), "defaults"

    def percent(basis_points: int) -> str:
        return fmt.percent(Decimal(basis_points) / 100)

    segments = []
    for name in sorted({DEFAULT_SEGMENT, *own, *accounts}, key=lambda s: (s != DEFAULT_SEGMENT, s)):
        policy, source = effective(name)
        segments.append(
            SegmentPolicy(
                segment=name,
                source=source,
                accounts=accounts.get(name, 0),
                policy=policy,
                frequencies=", ".join(frequency_label(language, f) for f in policy.frequencies),
                min_down_payment=percent(policy.min_down_payment_bp),
                min_installment=fmt.money(policy.min_installment),
                early_settlement_discount=percent(policy.early_settlement_discount_bp),
                auto_approve_limit=fmt.money(policy.auto_approve_limit),
            )
        )
    wanted = (segment or DEFAULT_SEGMENT).strip().lower()
    if not _SEGMENT.fullmatch(wanted):
        wanted = DEFAULT_SEGMENT
    policy, source = effective(wanted)
    return PolicyPage(
        creditors=tuple(creditors),
        creditor=chosen,
        segments=tuple(segments),
        segment=form.segment if form is not None else wanted,
        source=source,
        form=form or PolicyForm.of(chosen.id, wanted, policy, fmt),
        errors=dict(errors or {}),
        frequencies=frequencies,
    )


@dataclass(frozen=True, slots=True)
class SavedPolicy:
    creditor_id: int
    segment: str
    policy: Policy


def _whole(text: str, name: str, language: str, errors: dict[str, str]) -> int | None:
    low, high = LIMITS[name]
    if re.fullmatch(r"[0-9]{1,6}", text) and low <= int(text) <= high:
        return int(text)
    errors[name] = gettext(language, "Escriba un número entero entre {low} y {high}.").format(
        low=low, high=high
    )
    return None


def _basis_points(text: str, name: str, language: str, errors: dict[str, str]) -> int | None:
    low, high = LIMITS[name]
    cleaned = text.replace("%", "").replace(" ", "").replace(",", ".") or "0"
    plain = re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,2})?", cleaned)
    value = Decimal(cleaned) * 100 if plain else None
    if value is not None and low <= value <= high:
        return int(value)
    errors[name] = gettext(
        language, "Escriba un porcentaje entre {low} y {high}, por ejemplo 10 o 12,5."
    ).format(low=low // 100, high=high // 100)
    return None


def _minor(
    text: str, name: str, currency: str, language: str, errors: dict[str, str]
) -> int | None:
    if not text:
        return 0
    try:
        value = parse_money(text, currency, language=language)
    except ValidationFailed:
        value = None
    if value is not None and value <= LIMITS[name][1]:
        return value
    errors[name] = gettext(
        language, "Escriba un importe en {currency}, por ejemplo 1500 o 1500,50 (0: sin límite)."
    ).format(currency=currency)
    return None


async def save_policy_form(
    form: PolicyForm,
    *,
    staff_id: int,
    now: dt.datetime,
    ip: str = "",
    language: str = "es",
) -> SavedPolicy:
    """Check every field of the editor's form and save the creditor's policy for the segment
    (`plan_policy.save_policy`: upsert and audit event, one transaction).

    `InvalidPolicy` with a message per wrong field; `NotFound` for an unknown creditor.
    """
    errors: dict[str, str] = {}
    creditor = None
    if re.fullmatch(r"[1-9][0-9]{0,9}", form.creditor) and _valid_id(int(form.creditor)):
        wanted = int(form.creditor)
        creditor = next((c for c in map(_choice, await _creditors()) if c.id == wanted), None)
    if creditor is None:
        raise NotFound(gettext(language, "No encontramos ese acreedor."))
    if not _SEGMENT.fullmatch(form.segment):
        errors["segment"] = gettext(
            language,
            "Escriba el segmento en minúsculas, con letras, números, '-' o '_' (hasta 40).",
        )
    values: dict[str, Any] = {
        "max_installments": _whole(form.max_installments, "max_installments", language, errors),
        "min_down_payment_bp": _basis_points(
            form.min_down_payment, "min_down_payment_bp", language, errors
        ),
        "min_installment": _minor(
            form.min_installment, "min_installment", creditor.currency, language, errors
        ),
        "max_term_days": _whole(form.max_term_days, "max_term_days", language, errors),
        "early_settlement_discount_bp": _basis_points(
            form.early_settlement_discount, "early_settlement_discount_bp", language, errors
        ),
        "missed_to_break": _whole(form.missed_to_break, "missed_to_break", language, errors),
        "grace_days": _whole(form.grace_days, "grace_days", language, errors),
        "auto_approve_limit": _minor(
            form.auto_approve_limit, "auto_approve_limit", creditor.currency, language, errors
        ),
    }
    chosen = [f for f in form.frequencies if f in {x.value for x in Frequency}]
    if not chosen or len(chosen) != len(form.frequencies):
        errors["frequencies"] = gettext(language, "Elija al menos una frecuencia.")
    if errors:
        raise InvalidPolicy(form, _form_fields(errors))
    values["frequencies"] = chosen
    try:
        saved = await save_policy(
            creditor.id, form.segment, values, staff_id=staff_id, now=now, ip=ip
        )
    except ValidationFailed as exc:
        raise InvalidPolicy(form, _form_fields({exc.field or "segment": str(exc)})) from exc
    return SavedPolicy(creditor.id, form.segment, saved)


#: Policy columns → the editor's field names (percentages are not basis points there).
_FIELD_NAMES: Final = {
    "min_down_payment_bp": "min_down_payment",
    "early_settlement_discount_bp": "early_settlement_discount",
}


def _form_fields(errors: Mapping[str, str]) -> dict[str, str]:
    return {_FIELD_NAMES.get(name, name): message for name, message in errors.items()}
