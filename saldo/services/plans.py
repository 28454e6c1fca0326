"""Payment plans, the debtor's side: what a plan would cover, the live preview, the proposal,
answering a counter-offer, and what the /plans page shows.

Status vocabulary of `PaymentPlan.status`:

- proposed → active | rejected | countered   (a debtor's proposal outside the policy waits for
  staff review: approve, reject with a reason the debtor sees, or counter-offer)
- offered  → active | declined               (staff's counter-offer, `counter_of` the proposal;
  the debtor accepts or declines it in the portal)
- active   → completed | broken              (see `saldo.services.plan_progress`)

A proposal within the policy whose total is at most the policy's auto-approval limit
(`schedule.auto_approves`) is active at once. "Open" plans are proposed, offered and active;
an account has at most one, which `propose` and `accept_counter` enforce by locking the
account row (`FOR UPDATE`) in their transaction.

What a plan covers: the account's open invoices, each for its open amount less the amount of
its open disputes (`disputed_amounts`, the hook where disputes leave a plan), oldest due date
first. Its total is fixed when the plan is made; `invoice_ids` lists those invoices. When the
plan becomes active its schedule (`schedule.schedule`: the down payment due that day, then the
installments) is stored as `Installment` rows, and an open promise to pay on the account is
cancelled (the plan replaces it). Progress is computed from the ledger
(`saldo.services.plan_progress`).

Every step writes an `Interaction` on the account's timeline; a proposal for review also makes
a `Task` (kind "plan_review", dedupe "plan:<id>") for the account's assignee. A plan that
becomes active — at once, by staff, or by accepting an offer — queues the debtor's written
confirmation (`plan_approved`, see `saldo.services.decision_messages`).

Every debtor-side function takes the session's `debtor_ids`: an account or plan of anyone else
is `NotFound`. What the debtor sees (the live preview, the /plans page) is in
`saldo.services.plan_views`, the staff side in `saldo.services.plan_review`, the agreement PDF
in `saldo.services.plan_agreement`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Final

from saldo.db import DB
from saldo.errors import Conflict, NotFound, ValidationFailed
from saldo.i18n import gettext
from saldo.schedule import (
    Frequency,
    Proposal,
    auto_approves,
    schedule,
    violations,
)
from saldo.services import decision_messages, disputes, outbound
from saldo.services.checkout import parse_money
from saldo.services.plan_policy import (
    frequency_label,
    policies_for,
    policy_for,
    save_policy,
)
from saldo.services.plan_progress import (
    check_plans,
    installment_states,
    installments_of,
    paid_toward,
)
from saldo.services.plan_records import insert_task, interaction
from saldo.services.statement import (
    Formats,
    display_locale,
    local_today,
    resolve_language,
)
from saldo.tables import PaymentPlan

__all__ = [
    "ACCOUNT_SQL",
    "AGREED_STATUSES",
    "MAX_INSTALLMENTS",
    "OPEN_STATUSES",
    "Coverage",
    "CoveredInvoice",
    "InstallmentDue",
    "InvalidPlan",
    "PlanForm",
    "PlanOutcome",
    "UpcomingInstallment",
    "accept_counter",
    "activate",
    "active_plan_invoices",
    "check_plans",
    "coverage",
    "debtor_account",
    "decline_counter",
    "disputed_amounts",
    "installment_payment",
    "parse_proposal",
    "policy_for",
    "proposal_of",
    "propose",
    "save_policy",
    "upcoming_installments",
]

OPEN_STATUSES: Final = ("proposed", "offered", "active")
CLOSED_STATUSES: Final = ("rejected", "countered", "declined", "completed", "broken")
#: Statuses with a written agreement (the plan was accepted).
AGREED_STATUSES: Final = ("active", "completed", "broken")
#: Hard limits of any proposal, whatever the policy (the policy may be stricter).
MAX_INSTALLMENTS: Final = 60
MAX_FIRST_DATE_DAYS: Final = 366
MAX_MESSAGE: Final = 1000
REVIEW_TASK: Final = "plan_review"
REVIEW_DAYS: Final = 2
_MAX_ID: Final = 2**31 - 1


def _ids(debtor_ids: Sequence[int]) -> list[int]:
    return sorted({int(i) for i in debtor_ids if 0 < int(i) <= _MAX_ID})


def _valid_id(value: int) -> bool:
    return 0 < value <= _MAX_ID


def _fmt(language: str, country: str, currency: str) -> Formats:
    return Formats(currency, display_locale(language, country))


def _json_list(raw: Any) -> list[int]:
    values = json.loads(raw) if isinstance(raw, str | bytes) else raw
    return [int(v) for v in values] if isinstance(values, list) else []


# ---------------------------------------------------------------------------- coverage


@dataclass(frozen=True, slots=True)
class CoveredInvoice:
    id: int
    number: str
    due_date: dt.date
    open: int
    disputed: int

    @property
    def covered(self) -> int:
        return max(0, self.open - self.disputed)


@dataclass(frozen=True, slots=True)
class Coverage:
    """What a plan made now would cover on one account."""

    account_id: int
    invoices: tuple[CoveredInvoice, ...]  # open invoices, oldest due date first

    @property
    def total(self) -> int:
        return sum(i.covered for i in self.invoices)

    @property
    def disputed(self) -> int:
        return sum(min(i.disputed, i.open) for i in self.invoices)

    @property
    def invoice_ids(self) -> list[int]:
        return [i.id for i in self.invoices if i.covered > 0]


async def disputed_amounts(account_ids: Sequence[int]) -> dict[int, int]:
    """Per invoice, the amount of its open disputes: a plan leaves it out while they are open.

    This is the one place a plan learns about disputes; what counts as open is
    `saldo.services.disputes.disputed_amounts`'s (the dunning run leaves out the same).
    Sequential per account: it also runs inside `propose`'s transaction (one connection).
    """
    found: dict[int, int] = {}
    for account_id in account_ids:
        found.update(await disputes.disputed_amounts(int(account_id)))
    return found


async def coverage(account_ids: Sequence[int]) -> dict[int, Coverage]:
    """For each account, the invoices (and amounts) a plan made now would cover."""
    if not account_ids:
        return {}
    # Sequential, not gathered: this also runs inside `propose`'s transaction (one connection).
    rows = await PaymentPlan.raw(
        """SELECT i.id, i.account, i.number, i.due_date, sum(e.amount)::bigint AS open
               FROM invoice i JOIN ledger_entry e ON e.invoice = i.id
               WHERE i.account = ANY({}::int[])
               GROUP BY i.id
               HAVING sum(e.amount) > 0
               ORDER BY i.due_date, i.id""",
        list(account_ids),
    )
    disputed = await disputed_amounts(account_ids)
    grouped: dict[int, list[CoveredInvoice]] = {int(a): [] for a in account_ids}
    for r in rows:
        grouped[int(r["account"])].append(
            CoveredInvoice(
                id=int(r["id"]),
                number=str(r["number"]),
                due_date=r["due_date"],
                open=int(r["open"]),
                disputed=disputed.get(int(r["id"]), 0),
            )
        )
    return {a: Coverage(a, tuple(items)) for a, items in grouped.items()}


# ---------------------------------------------------------------------------- the form


@dataclass(frozen=True, slots=True)
class PlanForm:
    """A proposal as typed (all text), re-shown as typed when something is wrong."""

    account: str = ""
    down_payment: str = ""
    installments: str = ""
    frequency: str = ""
    first_date: str = ""
    message: str = ""

    @classmethod
    def from_mapping(cls, form: Mapping[str, Any]) -> PlanForm:
        def text(name: str, limit: int = 100) -> str:
            value = form.get(name, "")
            return str(value)[:limit] if isinstance(value, str) else ""

        return cls(
            account=text("account").strip(),
            down_payment=text("down_payment").strip(),
            installments=text("installments").strip(),
            frequency=text("frequency").strip(),
            first_date=text("first_date").strip(),
            message=text("message", MAX_MESSAGE + 1).strip(),
        )


class InvalidPlan(ValidationFailed):
    """The proposal form has errors: one message per field, and the form as typed."""

    def __init__(self, form: PlanForm, errors: Mapping[str, str]) -> None:
        first = next(iter(errors))
        super().__init__(errors[first], field=first)
        self.form = form
        self.errors = dict(errors)


def _parse_date(text: str) -> dt.date | None:
    match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text) or re.fullmatch(
        r"(\d{1,2})/(\d{1,2})/(\d{4})", text
    )
    if match is None:
        return None
    a, b, c = (int(g) for g in match.groups())
    year, month, day = (a, b, c) if "-" in text else (c, b, a)
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def parse_proposal(
    form: PlanForm, *, total: int, fmt: Formats, today: dt.date, language: str
) -> tuple[Proposal | None, dict[str, str]]:
    """The proposal the form describes for a plan of `total`, or a message per wrong field.

    These are the limits of any plan; the policy's own limits are judged by `violations`
    (a proposal outside them is not wrong, it goes to review).
    """
    errors: dict[str, str] = {}
    if total <= 0:
        errors["account"] = gettext(language, "Esta cuenta no tiene saldo para un plan de pagos.")
    down = 0
    if form.down_payment:
        try:
            down = parse_money(form.down_payment, fmt.currency, language=language)
        except ValidationFailed as exc:
            errors["down_payment"] = str(exc)
    if "down_payment" not in errors and total > 0 and down >= total:
        errors["down_payment"] = gettext(
            language, "El anticipo debe ser menor que el saldo del plan ({amount})."
        ).format(amount=fmt.money(total))
    count = int(form.installments) if re.fullmatch(r"[0-9]{1,3}", form.installments) else 0
    if not 1 <= count <= MAX_INSTALLMENTS:
        errors["installments"] = gettext(language, "Elija entre 1 y {max} cuotas.").format(
            max=MAX_INSTALLMENTS
        )
    frequency = form.frequency if form.frequency in {f.value for f in Frequency} else None
    if frequency is None:
        errors["frequency"] = gettext(language, "Elija cada cuánto quiere pagar.")
    first = _parse_date(form.first_date)
    if first is None:
        errors["first_date"] = gettext(
            language, "Escriba la fecha de la primera cuota, por ejemplo {date}."
        ).format(date=(today + dt.timedelta(days=7)).isoformat())
    elif first <= today:
        errors["first_date"] = gettext(language, "La primera cuota debe vencer después de hoy.")
    elif (first - today).days > MAX_FIRST_DATE_DAYS:
        errors["first_date"] = gettext(
            language, "La primera cuota debe vencer dentro del próximo año."
        )
    if len(form.message) > MAX_MESSAGE:
        errors["message"] = gettext(
            language, "El mensaje puede tener hasta {max} caracteres."
        ).format(max=MAX_MESSAGE)
    if errors or first is None or frequency is None:
        return None, errors
    return Proposal(total, down, count, Frequency(frequency), first), {}


# ---------------------------------------------------------------------------- queries


ACCOUNT_SQL: Final = """
    SELECT a.id, a.currency, a.creditor, a.assignee, a.segment, a.debtor AS debtor_id,
           d.name AS debtor_name, d.language, d.country, d.timezone, d.preferred_pay_day,
           c.name AS creditor_name
    FROM account a JOIN debtor d ON d.id = a.debtor JOIN creditor c ON c.id = a.creditor
"""


async def debtor_account(
    debtor_ids: Sequence[int], account_id: int, *, lock: bool = False
) -> dict[str, Any]:
    ids = _ids(debtor_ids)
    if not ids or not _valid_id(account_id):
        raise NotFound("No encontramos esa cuenta.")
    rows = await PaymentPlan.raw(
        f"{ACCOUNT_SQL} WHERE a.id = {{}} AND a.debtor = ANY({{}}::int[])"
        + (" FOR UPDATE OF a" if lock else ""),
        account_id,
        ids,
    )
    if not rows:
        raise NotFound("No encontramos esa cuenta.")
    return dict(rows[0])


async def _open_plan(account_id: int) -> dict[str, Any] | None:
    rows = await PaymentPlan.raw(
        """SELECT id, status FROM payment_plan WHERE account = {} AND status = ANY({}::text[])
           ORDER BY id DESC LIMIT 1""",
        account_id,
        list(OPEN_STATUSES),
    )
    return dict(rows[0]) if rows else None


def _today(now: dt.datetime, timezone: str) -> dt.date:
    return local_today(now, timezone)


def proposal_of(plan: Mapping[str, Any]) -> Proposal:
    return Proposal(
        total=int(plan["total"]),
        down_payment=int(plan["down_payment"]),
        installments=int(plan["installments_count"]),
        frequency=Frequency(str(plan["frequency"])),
        first_date=plan["first_date"],
    )


async def insert_plan(
    *,
    account_id: int,
    status: str,
    proposed_by: str,
    proposal: Proposal,
    invoice_ids: Sequence[int],
    now: dt.datetime,
    debtor_message: str = "",
    review_reason: str = "",
    reviewed_by: int | None = None,
    counter_of: int | None = None,
) -> int:
    rows = await PaymentPlan.raw(
        """INSERT INTO payment_plan (account, status, proposed_by, total, down_payment,
               installments_count, frequency, first_date, invoice_ids, debtor_message,
               review_reason, reviewed_by, counter_of, missed_count, created_at)
           VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}::jsonb, {}, {}, {}, {}, 0, {})
           RETURNING id""",
        account_id,
        status,
        proposed_by,
        proposal.total,
        proposal.down_payment,
        proposal.installments,
        proposal.frequency.value,
        proposal.first_date,
        json.dumps(list(invoice_ids)),
        debtor_message,
        review_reason,
        reviewed_by,
        counter_of,
        now,
    )
    return int(rows[0]["id"])


async def activate(
    plan: Mapping[str, Any],
    *,
    today: dt.date,
    now: dt.datetime,
    expected: str,
    staff_id: int | None = None,
) -> None:
    """Make a plan active (inside the caller's transaction): its schedule becomes installments.

    The down payment is due `today`. Raises `Conflict` when the plan is no longer `expected`.
    Queues the `plan.approved` webhook (`outbound.plan_approved`) and the debtor's written
    confirmation (`decision_messages.plan_approved`) in the same transaction.
    """
    updated = await PaymentPlan.raw(
        """UPDATE payment_plan SET status = 'active', decided_at = {},
               reviewed_by = coalesce({}, reviewed_by)
           WHERE id = {} AND status = {} RETURNING id""",
        now,
        staff_id,
        plan["id"],
        expected,
    )
    if not updated:
        raise Conflict("Este plan ya cambió de estado.")
    for row in schedule(proposal_of(plan), accepted_on=today):
        await PaymentPlan.raw(
            """INSERT INTO installment (plan, number, due_date, amount, paid_amount, status)
               VALUES ({}, {}, {}, {}, 0, 'pending')
               ON CONFLICT (plan, number) DO NOTHING""",
            plan["id"],
            row.number,
            row.due_date,
            row.amount,
        )
    await outbound.plan_approved(int(plan["id"]))
    await decision_messages.plan_approved(int(plan["id"]), now=now)
    cancelled = await PaymentPlan.raw(
        """UPDATE promise_to_pay SET status = 'cancelled', resolved_at = {}
           WHERE account = {} AND status = 'open' RETURNING id, account""",
        now,
        plan["account"],
    )
    for promise in cancelled:
        debtor = await PaymentPlan.raw(
            "SELECT debtor FROM account WHERE id = {}", promise["account"]
        )
        await interaction(
            account_id=int(promise["account"]),
            debtor_id=int(debtor[0]["debtor"]),
            kind="promise_cancelled",
            summary="Promesa de pago reemplazada por el plan de pagos.",
            data={"promise": int(promise["id"]), "plan": int(plan["id"])},
            now=now,
            channel="system",
            direction="",
        )


def _summary(proposal: Proposal, fmt: Formats) -> str:
    """The proposal in a line of the staff timeline (Spanish, like the rest of it)."""
    frequency = frequency_label("es", proposal.frequency.value).lower()
    down = f", anticipo {fmt.money(proposal.down_payment).text}" if proposal.down_payment else ""
    return (
        f"{fmt.money(proposal.total).text} en {proposal.installments} cuotas, {frequency}, "
        f"desde el {fmt.date(proposal.first_date)}{down}"
    )


def _proposal_data(proposal: Proposal, plan_id: int) -> dict[str, Any]:
    return {
        "plan": plan_id,
        "total": proposal.total,
        "down_payment": proposal.down_payment,
        "installments": proposal.installments,
        "frequency": proposal.frequency.value,
        "first_date": proposal.first_date.isoformat(),
    }


# ---------------------------------------------------------------------------- use cases


@dataclass(frozen=True, slots=True)
class PlanOutcome:
    plan_id: int
    status: str  # active (approved at once) | proposed (waiting for review)


async def propose(
    debtor_ids: Sequence[int],
    account_id: int,
    form: Mapping[str, Any] | PlanForm,
    message: str = "",
    *,
    now: dt.datetime,
    language: str | None = None,
) -> PlanOutcome:
    """Store the debtor's proposal: active at once when the policy approves it, else proposed
    (a review task for the account's assignee). `InvalidPlan` when the form is wrong,
    `Conflict` when the account already has an open plan."""
    plan_form = form if isinstance(form, PlanForm) else PlanForm.from_mapping(form)
    if message:
        plan_form = replace(plan_form, message=message.strip()[: MAX_MESSAGE + 1])
    async with DB.transaction():
        outcome = await _propose(debtor_ids, account_id, plan_form, now, language)
    return outcome


async def _propose(
    debtor_ids: Sequence[int],
    account_id: int,
    plan_form: PlanForm,
    now: dt.datetime,
    language: str | None,
) -> PlanOutcome:
    account = await debtor_account(debtor_ids, account_id, lock=True)
    lang = resolve_language(language, account["language"])
    today = _today(now, account["timezone"])
    fmt = _fmt(lang, account["country"], account["currency"])
    if await _open_plan(account_id) is not None:
        raise Conflict(
            gettext(lang, "Esta cuenta ya tiene un plan de pagos o una propuesta en curso.")
        )
    covered = (await coverage([account_id]))[account_id]
    policy = await policy_for(account_id)
    proposal, errors = parse_proposal(
        plan_form, total=covered.total, fmt=fmt, today=today, language=lang
    )
    if proposal is None:
        raise InvalidPlan(plan_form, errors)
    approved = auto_approves(proposal, policy, today=today)
    plan_id = await insert_plan(
        account_id=account_id,
        status="proposed",
        proposed_by="debtor",
        proposal=proposal,
        invoice_ids=covered.invoice_ids,
        now=now,
        debtor_message=plan_form.message,
    )
    note = partial(interaction, account_id=account_id, debtor_id=int(account["debtor_id"]), now=now)
    staff_fmt = _fmt("es", account["country"], account["currency"])
    broken = [f"{v.field}:{v.code}" for v in violations(proposal, policy, today=today)]
    await note(
        kind="plan_proposed",
        summary=f"Propuso un plan de pagos: {_summary(proposal, staff_fmt)}.",
        data={
            **_proposal_data(proposal, plan_id),
            "message": plan_form.message,
            "violations": broken,
            "invoices": covered.invoice_ids,
        },
    )
    if approved:
        plan = {"id": plan_id, "account": account_id, **_plan_columns(proposal)}
        await activate(plan, today=today, now=now, expected="proposed")
        await note(
            kind="plan_approved",
            summary="Plan aprobado automáticamente: cumple la política.",
            data={"plan": plan_id, "auto": True},
            channel="system",
            direction="",
        )
        return PlanOutcome(plan_id, "active")
    await insert_task(
        dedupe_key=f"plan:{plan_id}",
        kind=REVIEW_TASK,
        title=f"Revisar la propuesta de plan de {account['debtor_name']}",
        account_id=account_id,
        assignee=account["assignee"],
        due_on=today + dt.timedelta(days=REVIEW_DAYS),
        now=now,
        data={"plan": plan_id, "violations": broken},
    )
    return PlanOutcome(plan_id, "proposed")


def _plan_columns(proposal: Proposal) -> dict[str, Any]:
    return {
        "total": proposal.total,
        "down_payment": proposal.down_payment,
        "installments_count": proposal.installments,
        "frequency": proposal.frequency.value,
        "first_date": proposal.first_date,
    }


async def _debtor_plan(
    debtor_ids: Sequence[int], plan_id: int, *, lock: bool = False
) -> dict[str, Any]:
    ids = _ids(debtor_ids)
    if not ids or not _valid_id(plan_id):
        raise NotFound("No encontramos ese plan.")
    rows = await PaymentPlan.raw(
        """SELECT p.*, a.debtor AS debtor_id, d.language, d.timezone
           FROM payment_plan p JOIN account a ON a.id = p.account
           JOIN debtor d ON d.id = a.debtor
           WHERE p.id = {} AND a.debtor = ANY({}::int[])"""
        + (" FOR UPDATE OF a, p" if lock else ""),
        plan_id,
        ids,
    )
    if not rows:
        raise NotFound("No encontramos ese plan.")
    return dict(rows[0])


async def accept_counter(
    debtor_ids: Sequence[int], plan_id: int, *, now: dt.datetime, language: str | None = None
) -> PlanOutcome:
    """The debtor accepts staff's counter-offer: it becomes the active plan."""
    async with DB.transaction():
        plan = await _debtor_plan(debtor_ids, plan_id, lock=True)
        lang = resolve_language(language, plan["language"])
        if plan["status"] != "offered":
            raise Conflict(gettext(lang, "Esta oferta ya no está disponible."))
        today = _today(now, plan["timezone"])
        if plan["first_date"] <= today:
            raise Conflict(
                gettext(
                    lang,
                    "La primera cuota de esta oferta ya venció. Rechácela y proponga un plan "
                    "nuevo, o escríbanos.",
                )
            )
        await activate(plan, today=today, now=now, expected="offered")
        await interaction(
            account_id=int(plan["account"]),
            debtor_id=int(plan["debtor_id"]),
            kind="plan_counter_accepted",
            summary="Aceptó la contraoferta de plan de pagos.",
            data={"plan": plan_id, "counter_of": plan["counter_of"]},
            now=now,
        )
    return PlanOutcome(plan_id, "active")


async def decline_counter(
    debtor_ids: Sequence[int], plan_id: int, *, now: dt.datetime, language: str | None = None
) -> PlanOutcome:
    """The debtor declines staff's counter-offer; they may propose another plan."""
    async with DB.transaction():
        plan = await _debtor_plan(debtor_ids, plan_id, lock=True)
        lang = resolve_language(language, plan["language"])
        updated = await PaymentPlan.raw(
            """UPDATE payment_plan SET status = 'declined', decided_at = {}
               WHERE id = {} AND status = 'offered' RETURNING id""",
            now,
            plan_id,
        )
        if not updated:
            raise Conflict(gettext(lang, "Esta oferta ya no está disponible."))
        await interaction(
            account_id=int(plan["account"]),
            debtor_id=int(plan["debtor_id"]),
            kind="plan_counter_declined",
            summary="Rechazó la contraoferta de plan de pagos.",
            data={"plan": plan_id, "counter_of": plan["counter_of"]},
            now=now,
        )
    return PlanOutcome(plan_id, "declined")


# ---------------------------------------------------------------------------- for other parts


async def active_plan_invoices(account_ids: Sequence[int]) -> dict[int, frozenset[int]]:
    """Per account, the invoices an active plan covers: dunning leaves them alone meanwhile."""
    if not account_ids:
        return {}
    rows = await PaymentPlan.raw(
        """SELECT account, invoice_ids FROM payment_plan
           WHERE account = ANY({}::int[]) AND status = 'active'""",
        list(account_ids),
    )
    found: dict[int, set[int]] = {}
    for r in rows:
        found.setdefault(int(r["account"]), set()).update(_json_list(r["invoice_ids"]))
    return {a: frozenset(ids) for a, ids in found.items()}


@dataclass(frozen=True, slots=True)
class InstallmentDue:
    """What is left to pay of one installment of an active plan (for the payments flow)."""

    installment_id: int
    plan_id: int
    account_id: int
    number: int
    due_date: dt.date
    amount: int  # left to pay, minor units
    invoice_ids: tuple[int, ...]  # pay these first


async def installment_payment(
    debtor_ids: Sequence[int], installment_id: int, *, today: dt.date
) -> InstallmentDue:
    """One installment of the debtor's active plan and what is left to pay of it.

    `NotFound` for someone else's installment, one of a plan that is not active, or one that
    is already paid (the waterfall: earlier installments are paid first).
    """
    ids = _ids(debtor_ids)
    if not ids or not _valid_id(installment_id):
        raise NotFound("No encontramos esa cuota.")
    rows = await PaymentPlan.raw(
        """SELECT i.plan, p.account, p.invoice_ids FROM installment i
           JOIN payment_plan p ON p.id = i.plan JOIN account a ON a.id = p.account
           WHERE i.id = {} AND a.debtor = ANY({}::int[]) AND p.status = 'active'""",
        installment_id,
        ids,
    )
    if not rows:
        raise NotFound("No encontramos esa cuota.")
    plan_id, account_id = int(rows[0]["plan"]), int(rows[0]["account"])
    installments, paid, policy = await asyncio.gather(
        installments_of([plan_id]), paid_toward([plan_id]), policy_for(account_id)
    )
    states = installment_states(
        installments[plan_id], paid.get(plan_id, 0), today=today, policy=policy
    )
    state = next(s for s in states if s.id == installment_id)
    if state.due <= 0:
        raise NotFound("Esa cuota ya está pagada.")
    return InstallmentDue(
        installment_id=installment_id,
        plan_id=plan_id,
        account_id=account_id,
        number=state.number,
        due_date=state.due_date,
        amount=state.due,
        invoice_ids=tuple(_json_list(rows[0]["invoice_ids"])),
    )


@dataclass(frozen=True, slots=True)
class UpcomingInstallment:
    installment_id: int
    plan_id: int
    account_id: int
    debtor_id: int
    number: int
    due_date: dt.date
    amount: int  # left to pay


async def upcoming_installments(*, start: dt.date, end: dt.date) -> list[UpcomingInstallment]:
    """Installments of active plans due between `start` and `end` (inclusive) with something
    left to pay: what installment reminders are about (instead of the covered invoices)."""
    rows = await PaymentPlan.raw(
        """SELECT DISTINCT p.id, p.account, a.debtor FROM installment i
           JOIN payment_plan p ON p.id = i.plan JOIN account a ON a.id = p.account
           WHERE p.status = 'active' AND i.due_date BETWEEN {} AND {}""",
        start,
        end,
    )
    plan_ids = [int(r["id"]) for r in rows]
    installments, paid, policies = await asyncio.gather(
        installments_of(plan_ids),
        paid_toward(plan_ids),
        policies_for(sorted({int(r["account"]) for r in rows})),
    )
    found = []
    for r in rows:
        plan_id = int(r["id"])
        for state in installment_states(
            installments.get(plan_id, []),
            paid.get(plan_id, 0),
            today=start,
            policy=policies[int(r["account"])],
        ):
            if start <= state.due_date <= end and state.due > 0:
                found.append(
                    UpcomingInstallment(
                        installment_id=state.id,
                        plan_id=plan_id,
                        account_id=int(r["account"]),
                        debtor_id=int(r["debtor"]),
                        number=state.number,
                        due_date=state.due_date,
                        amount=state.due,
                    )
                )
    return sorted(found, key=lambda u: (u.due_date, u.installment_id))
