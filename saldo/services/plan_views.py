"""What the debtor sees of payment plans: the live preview of a proposal and the /plans page.

Nothing here writes. `preview` parses a proposal form (`plans.parse_proposal`), lays out its
schedule as if accepted today (`schedule.schedule`: it sums exactly to the balance the plan
covers) and judges it by the account's policy: "approve" (approved at once), "review" (each
broken rule, `schedule.violations`, as a message tied to its field) or "invalid" (a message per
wrong field). `plan_page` shows, per account, what a plan covers, the policy in words, the open
plan with its installments' live states (or the proposal form with its preview), the latest
closed plan and the open promise to pay.

Every function takes the session's `debtor_ids`: an account of anyone else is `NotFound`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from babel.numbers import get_decimal_symbol

from saldo import money
from saldo.errors import NotFound
from saldo.i18n import gettext
from saldo.schedule import (
    Frequency,
    Policy,
    Proposal,
    Violation,
    auto_approves,
    early_settlement,
    min_down_payment,
    schedule,
    violations,
)
from saldo.services.plan_policy import frequency_label, policies_for, policy_for, policy_lines
from saldo.services.plan_progress import installment_states, installments_of, paid_toward
from saldo.services.plans import (
    ACCOUNT_SQL,
    AGREED_STATUSES,
    OPEN_STATUSES,
    PlanForm,
    coverage,
    debtor_account,
    parse_proposal,
    proposal_of,
)
from saldo.services.promises import PROMISE_MAX_DAYS, PromiseForm
from saldo.services.statement import (
    Amount,
    DebtorView,
    Formats,
    display_locale,
    local_today,
    resolve_language,
)
from saldo.tables import PaymentPlan

__all__ = [
    "InvoiceLine",
    "PlanAccount",
    "PlanView",
    "PlansView",
    "PreviewView",
    "PromiseView",
    "ScheduleRow",
    "ViolationView",
    "installment_label",
    "judge",
    "plan_page",
    "preview",
    "status_label",
    "violation_message",
]

_MAX_ID: Final = 2**31 - 1


def _ids(debtor_ids: Sequence[int]) -> list[int]:
    return sorted({int(i) for i in debtor_ids if 0 < int(i) <= _MAX_ID})


def _fmt(language: str, country: str, currency: str) -> Formats:
    return Formats(currency, display_locale(language, country))


def _today(now: dt.datetime, timezone: str) -> dt.date:
    return local_today(now, timezone)


# ---------------------------------------------------------------------------- judging a proposal


def violation_message(violation: Violation, fmt: Formats, language: str) -> str:
    """What a broken policy rule means, for the debtor."""
    limit = violation.limit
    number = limit if isinstance(limit, int) else 0
    if violation.code == "too_many":
        return gettext(language, "La política permite hasta {count} cuotas.").format(count=number)
    if violation.code == "not_allowed":
        allowed = str(limit).split(",") if limit else []
        names = ", ".join(frequency_label(language, f).lower() for f in allowed)
        return gettext(language, "Frecuencias que se aprueban al instante: {list}.").format(
            list=names
        )
    if violation.code == "below_minimum":
        return gettext(language, "El anticipo mínimo es {amount}.").format(amount=fmt.money(number))
    if violation.code == "below_min_installment":
        return gettext(language, "Cada cuota debe ser de al menos {amount}.").format(
            amount=fmt.money(number)
        )
    if violation.code == "term_too_long":
        return gettext(language, "La última cuota debe vencer dentro de {days} días.").format(
            days=number
        )
    if violation.code == "too_far":
        return gettext(
            language, "La primera cuota debe vencer dentro de los próximos {days} días."
        ).format(days=number)
    return gettext(language, "Este valor no cumple la política de planes.")


# ---------------------------------------------------------------------------- view models


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    number: int  # 0 is the down payment
    label: str
    due_date: dt.date
    due: str
    amount: Amount
    paid: Amount | None = None  # what the waterfall covered (active plans)
    status: str = ""  # paid | late | missed | partial | pending ("" for a schedule not started)
    status_label: str = ""
    installment_id: int | None = None

    @property
    def payable(self) -> bool:
        return self.installment_id is not None and self.status != "paid"


@dataclass(frozen=True, slots=True)
class ViolationView:
    field: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class PreviewView:
    """A proposal judged: its schedule, the rules it breaks, and what submitting it would do."""

    account_id: int
    form: PlanForm
    errors: Mapping[str, str]
    rows: tuple[ScheduleRow, ...]
    total: Amount
    scheduled: Amount  # the sum of the rows (equal to the total)
    violations: tuple[ViolationView, ...]
    verdict: str  # approve | review | invalid

    def messages(self, name: str) -> list[str]:
        """The error or the broken rules of one field."""
        found = [self.errors[name]] if name in self.errors else []
        return found + [v.message for v in self.violations if v.field == name]


@dataclass(frozen=True, slots=True)
class PlanView:
    id: int
    status: str
    status_label: str
    proposed_by: str
    total: Amount
    down_payment: Amount
    installments_count: int
    frequency: str
    frequency_label: str
    created: str
    decided: str | None
    debtor_message: str
    review_reason: str
    rows: tuple[ScheduleRow, ...]
    paid: Amount
    remaining: Amount
    settle_now: Amount | None  # what settles the rest today with the early-settlement discount
    missed_count: int

    @property
    def agreed(self) -> bool:
        return self.status in AGREED_STATUSES


@dataclass(frozen=True, slots=True)
class PromiseView:
    id: int
    amount: Amount
    promised_date: dt.date
    date: str
    status: str
    source: str


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    id: int
    number: str
    due: str
    amount: Amount  # the part the plan covers
    disputed: Amount | None


@dataclass(frozen=True, slots=True)
class PlanAccount:
    id: int
    creditor_name: str
    currency: str
    decimals: int
    balance: Amount  # what a plan made now would cover
    account_balance: Amount  # the whole ledger balance (the limit of a promise)
    disputed: Amount | None
    invoices: tuple[InvoiceLine, ...]
    policy: Policy
    policy_lines: tuple[str, ...]
    frequencies: tuple[tuple[str, str], ...]  # (value, label) allowed by the policy
    plan: PlanView | None  # the open plan (proposed, offered or active)
    last: PlanView | None  # the latest closed plan, when there is no open one
    promise: PromiseView | None
    form: PlanForm
    errors: Mapping[str, str]
    preview: PreviewView | None
    promise_form: PromiseForm
    promise_errors: Mapping[str, str]
    min_down_payment: Amount  # the policy's minimum for this balance
    today: str  # ISO dates for the date inputs' limits
    earliest_first_date: str
    max_promise_date: str
    last_promise_date: str  # the same, as the debtor reads dates

    @property
    def can_propose(self) -> bool:
        return self.plan is None and self.balance.minor > 0

    @property
    def can_promise(self) -> bool:
        active = self.plan is not None and self.plan.status == "active"
        return self.promise is None and not active and self.account_balance.minor > 0


@dataclass(frozen=True, slots=True)
class PlansView:
    debtor: DebtorView | None
    language: str
    locale: str
    today: dt.date
    today_text: str
    accounts: tuple[PlanAccount, ...]


def status_label(language: str, status: str) -> str:
    return {
        "proposed": gettext(language, "En revisión"),
        "offered": gettext(language, "Contraoferta"),
        "active": gettext(language, "Activo"),
        "completed": gettext(language, "Completado"),
        "broken": gettext(language, "Terminado por falta de pago"),
        "rejected": gettext(language, "No aprobado"),
        "declined": gettext(language, "Contraoferta rechazada"),
        "countered": gettext(language, "Con contraoferta"),
    }.get(status, status)


def installment_label(language: str, number: int) -> str:
    if number == 0:
        return gettext(language, "Anticipo")
    return gettext(language, "Cuota {number}").format(number=number)


def installment_status_label(language: str, status: str) -> str:
    return {
        "paid": gettext(language, "Pagada"),
        "late": gettext(language, "Vencida, en período de gracia"),
        "missed": gettext(language, "Impaga"),
        "partial": gettext(language, "Pago parcial"),
        "pending": gettext(language, "Por vencer"),
    }.get(status, status)


def _rows(
    proposal: Proposal, accepted_on: dt.date, fmt: Formats, language: str
) -> list[ScheduleRow]:
    return [
        ScheduleRow(
            number=r.number,
            label=installment_label(language, r.number),
            due_date=r.due_date,
            due=fmt.date(r.due_date),
            amount=fmt.money(r.amount),
        )
        for r in schedule(proposal, accepted_on=accepted_on)
    ]


def judge(
    account_id: int,
    form: PlanForm,
    *,
    total: int,
    policy: Policy,
    fmt: Formats,
    today: dt.date,
    language: str,
) -> PreviewView:
    """The preview of a form: parsed, scheduled as if accepted today, judged by the policy."""
    proposal, errors = parse_proposal(form, total=total, fmt=fmt, today=today, language=language)
    if proposal is None:
        return PreviewView(
            account_id, form, errors, (), fmt.money(total), fmt.money(0), (), "invalid"
        )
    rows = tuple(_rows(proposal, today, fmt, language))
    broken = tuple(
        ViolationView(v.field, v.code, violation_message(v, fmt, language))
        for v in violations(proposal, policy, today=today)
    )
    verdict = "approve" if auto_approves(proposal, policy, today=today) else "review"
    return PreviewView(
        account_id,
        form,
        {},
        rows,
        fmt.money(total),
        fmt.money(sum(r.amount.minor for r in rows)),
        broken,
        verdict,
    )


# ---------------------------------------------------------------------------- the preview


async def preview(
    debtor_ids: Sequence[int],
    account_id: int,
    form: Mapping[str, Any] | PlanForm,
    *,
    today: dt.date | None = None,
    now: dt.datetime | None = None,
    language: str | None = None,
) -> PreviewView:
    """The schedule the form describes, the policy rules it breaks, whether it is approved at
    once; nothing is stored."""
    account = await debtor_account(debtor_ids, account_id)
    lang = resolve_language(language, account["language"])
    day = today or _today(now or dt.datetime.now(dt.UTC), account["timezone"])
    fmt = _fmt(lang, account["country"], account["currency"])
    covered, policy = await asyncio.gather(coverage([account_id]), policy_for(account_id))
    plan_form = form if isinstance(form, PlanForm) else PlanForm.from_mapping(form)
    return judge(
        account_id,
        replace(plan_form, account=str(account_id)),
        total=covered[account_id].total,
        policy=policy,
        fmt=fmt,
        today=day,
        language=lang,
    )


# ---------------------------------------------------------------------------- the page


def _default_form(
    account_id: int,
    total: int,
    policy: Policy,
    fmt: Formats,
    today: dt.date,
    pay_day: int | None,
) -> PlanForm:
    """A starting proposal within the policy's basic limits (amounts as the debtor writes
    them: "10368,83" in Argentina, "10368.83" in Mexico)."""
    allowed = [f.value for f in policy.frequencies]
    frequency = "monthly" if "monthly" in allowed else allowed[0]
    horizon = max(1, min(7, policy.max_first_date_days))
    first = today + dt.timedelta(days=horizon)
    if pay_day:
        for days in range(1, policy.max_first_date_days + 1):
            candidate = today + dt.timedelta(days=days)
            if candidate.day == pay_day:
                first = candidate
                break
    down = min_down_payment(total, policy) if total > 0 else 0
    return PlanForm(
        account=str(account_id),
        down_payment=str(money.to_decimal(down, fmt.currency)).replace(
            ".", get_decimal_symbol(fmt.locale)
        )
        if down
        else "",
        installments=str(min(3, policy.max_installments)),
        frequency=frequency,
        first_date=first.isoformat(),
    )


def _plan_view(
    plan: Mapping[str, Any],
    installments: list[dict[str, Any]],
    paid: int,
    policy: Policy,
    fmt: Formats,
    today: dt.date,
    timezone: str,
    language: str,
) -> PlanView:
    status = str(plan["status"])
    proposal = proposal_of(plan)
    if installments:
        states = installment_states(installments, paid, today=today, policy=policy)
        if status != "active":  # an ended plan shows what was paid, not what is late
            states = [s if s.status == "paid" else replace(s, status="") for s in states]
        rows = tuple(
            ScheduleRow(
                number=s.number,
                label=installment_label(language, s.number),
                due_date=s.due_date,
                due=fmt.date(s.due_date),
                amount=fmt.money(s.amount),
                paid=fmt.money(s.paid),
                status=s.status,
                status_label=installment_status_label(language, s.status) if s.status else "",
                installment_id=s.id if status == "active" else None,
            )
            for s in states
        )
    else:
        rows = tuple(_rows(proposal, today, fmt, language))  # as if accepted today
    remaining = proposal.total - paid
    settle = (
        early_settlement(remaining, policy)
        if status == "active" and policy.early_settlement_discount_bp and remaining > 0
        else None
    )
    decided = plan["decided_at"]
    return PlanView(
        id=int(plan["id"]),
        status=status,
        status_label=status_label(language, status),
        proposed_by=str(plan["proposed_by"]),
        total=fmt.money(proposal.total),
        down_payment=fmt.money(proposal.down_payment),
        installments_count=proposal.installments,
        frequency=proposal.frequency.value,
        frequency_label=frequency_label(language, proposal.frequency.value),
        created=fmt.date(local_today(plan["created_at"], timezone)),
        decided=fmt.date(local_today(decided, timezone)) if decided else None,
        debtor_message=str(plan["debtor_message"] or ""),
        review_reason=str(plan["review_reason"] or ""),
        rows=rows,
        paid=fmt.money(paid),
        remaining=fmt.money(remaining),
        settle_now=fmt.money(settle) if settle is not None else None,
        missed_count=int(plan["missed_count"]),
    )


async def plan_page(
    debtor_ids: Sequence[int],
    *,
    today: dt.date | None = None,
    now: dt.datetime | None = None,
    language: str | None = None,
    form: PlanForm | None = None,
    errors: Mapping[str, str] | None = None,
    promise_form: PromiseForm | None = None,
    promise_errors: Mapping[str, str] | None = None,
) -> PlansView:
    """Per account: the balance a plan would cover, the policy in words, the open plan (or the
    proposal form with its preview), the latest closed plan and the open promise.

    `form`/`errors` and `promise_form`/`promise_errors` re-show a submitted form on the account
    it names (`NotFound` when that is not one of the debtor's accounts); every other account
    gets a starting proposal and its preview.
    """
    ids = _ids(debtor_ids)
    debtors = await PaymentPlan.raw(
        """SELECT id, name, document_type, document_number, email, phone, whatsapp, country,
                  language, timezone
           FROM debtor WHERE id = ANY({}::int[]) ORDER BY id""",
        ids,
    )
    primary = DebtorView(**debtors[0]) if debtors else None
    lang = resolve_language(language, primary.language if primary else None)
    moment = now or dt.datetime.now(dt.UTC)
    day = today or _today(moment, primary.timezone if primary else "UTC")
    accounts = await PaymentPlan.raw(
        f"""{ACCOUNT_SQL} WHERE a.debtor = ANY({{}}::int[])
            ORDER BY c.name, c.id, a.currency, a.id""",
        ids,
    )
    account_ids = [int(a["id"]) for a in accounts]
    for typed in (form, promise_form):
        if typed is not None and typed.account not in {str(a) for a in account_ids}:
            raise NotFound(gettext(lang, "No encontramos esa cuenta."))
    covered, policies, plans, promises, balances = await asyncio.gather(
        coverage(account_ids),
        policies_for(account_ids),
        PaymentPlan.raw(
            "SELECT * FROM payment_plan WHERE account = ANY({}::int[]) ORDER BY id DESC",
            account_ids,
        ),
        PaymentPlan.raw(
            """SELECT id, account, amount, promised_date, status, source FROM promise_to_pay
               WHERE account = ANY({}::int[]) AND status = 'open' ORDER BY id DESC""",
            account_ids,
        ),
        PaymentPlan.raw(
            """SELECT account, sum(amount)::bigint AS balance FROM ledger_entry
               WHERE account = ANY({}::int[]) GROUP BY account""",
            account_ids,
        ),
    )
    open_plans: dict[int, dict[str, Any]] = {}
    last_plans: dict[int, dict[str, Any]] = {}
    for plan in plans:
        target = open_plans if plan["status"] in OPEN_STATUSES else last_plans
        target.setdefault(int(plan["account"]), plan)
    shown = [int(p["id"]) for p in open_plans.values()] + [
        int(p["id"]) for a, p in last_plans.items() if a not in open_plans
    ]
    installments, paid = await asyncio.gather(installments_of(shown), paid_toward(shown))
    open_promises = {int(p["account"]): p for p in reversed(promises)}
    balance_of = {int(b["account"]): int(b["balance"]) for b in balances}
    views = []
    for account in accounts:
        account_id = int(account["id"])
        fmt = _fmt(lang, account["country"], account["currency"])
        policy = policies[account_id]
        cover = covered[account_id]

        def view(plan: dict[str, Any] | None, policy: Policy = policy, fmt: Formats = fmt,
                 timezone: str = account["timezone"]) -> PlanView | None:  # fmt: skip
            if plan is None:
                return None
            plan_id = int(plan["id"])
            return _plan_view(
                plan,
                installments.get(plan_id, []),
                paid.get(plan_id, 0),
                policy,
                fmt,
                day,
                timezone,
                lang,
            )

        current = view(open_plans.get(account_id))
        mine = form is not None and form.account == str(account_id)
        shown_form = (
            form
            if mine and form is not None
            else _default_form(
                account_id,
                cover.total,
                policy,
                fmt,
                day,
                account["preferred_pay_day"],
            )
        )
        shown_errors = dict(errors or {}) if mine else {}
        judged = None
        if current is None and cover.total > 0:
            judged = judge(
                account_id,
                shown_form,
                total=cover.total,
                policy=policy,
                fmt=fmt,
                today=day,
                language=lang,
            )
            if shown_errors:
                judged = replace(judged, errors={**judged.errors, **shown_errors})
        promise = open_promises.get(account_id)
        promise_mine = promise_form is not None and promise_form.account == str(account_id)
        views.append(
            PlanAccount(
                id=account_id,
                creditor_name=str(account["creditor_name"]),
                currency=str(account["currency"]),
                decimals=money.exponent(account["currency"]),
                balance=fmt.money(cover.total),
                account_balance=fmt.money(balance_of.get(account_id, 0)),
                disputed=fmt.money(cover.disputed) if cover.disputed else None,
                invoices=tuple(
                    InvoiceLine(
                        id=i.id,
                        number=i.number,
                        due=fmt.date(i.due_date),
                        amount=fmt.money(i.covered),
                        disputed=fmt.money(i.disputed) if i.disputed else None,
                    )
                    for i in cover.invoices
                ),
                policy=policy,
                policy_lines=tuple(policy_lines(policy, fmt, lang, cover.total)),
                frequencies=tuple((f.value, frequency_label(lang, f.value)) for f in Frequency),
                plan=current,
                last=view(last_plans.get(account_id)) if current is None else None,
                promise=PromiseView(
                    id=int(promise["id"]),
                    amount=fmt.money(int(promise["amount"])),
                    promised_date=promise["promised_date"],
                    date=fmt.date(promise["promised_date"]),
                    status=str(promise["status"]),
                    source=str(promise["source"]),
                )
                if promise
                else None,
                form=shown_form,
                errors=shown_errors,
                preview=judged,
                promise_form=promise_form
                if promise_mine and promise_form is not None
                else PromiseForm(account=str(account_id)),
                promise_errors=dict(promise_errors or {}) if promise_mine else {},
                min_down_payment=fmt.money(min_down_payment(cover.total, policy)),
                today=day.isoformat(),
                earliest_first_date=(day + dt.timedelta(days=1)).isoformat(),
                max_promise_date=(day + dt.timedelta(days=PROMISE_MAX_DAYS)).isoformat(),
                last_promise_date=fmt.date(day + dt.timedelta(days=PROMISE_MAX_DAYS)),
            )
        )
    locale = display_locale(lang, primary.country if primary else "")
    return PlansView(
        debtor=primary,
        language=lang,
        locale=locale,
        today=day,
        today_text=Formats("USD", locale).date(day),
        accounts=tuple(views),
    )
