"""Payment plans, the staff side: approve, reject or counter-offer a proposal under review.

Each decision runs in one transaction with the plan and its account locked, acts only on a
plan that is still "proposed" (`Conflict` otherwise: someone else decided first), closes the
review task ("plan:<id>"), writes an `Interaction` on the account's timeline and an
`AuditEvent` for the staff user, and queues the message that tells the debtor
(`saldo.services.decision_messages`: `plan_approved`, `plan_rejected`, `plan_countered`).

- `approve`: the plan becomes active; the down payment is due that day. A proposal whose first
  installment date has already passed cannot be approved as is (counter-offer new dates). A
  proposal that breaks the account's plan policy (`schedule.violations`, judged on the day of
  the decision) is approved only when the caller says the staff user may approve above the
  policy (`above_policy=True`, a supervisor in the back office); otherwise `AbovePolicy`.
- `reject`: with a reason the debtor sees on /plans (`review_reason`).
- `counter_offer`: a new plan "offered" (`counter_of` the proposal, `proposed_by` "staff")
  that the debtor accepts or declines in the portal; the proposal becomes "countered". The
  offer covers the account's balance as it is now, so `proposal.total` must equal it. Staff
  may offer terms outside the policy; only the limits of any plan apply.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from saldo.db import DB
from saldo.errors import Conflict, NotFound, SaldoError, ValidationFailed
from saldo.schedule import Proposal, Violation, violations
from saldo.services import decision_messages
from saldo.services.audit import record
from saldo.services.plan_policy import policy_for
from saldo.services.plan_records import close_task, interaction, staff_actor
from saldo.services.plans import (
    MAX_FIRST_DATE_DAYS,
    MAX_INSTALLMENTS,
    MAX_MESSAGE,
    activate,
    coverage,
    insert_plan,
    proposal_of,
)
from saldo.services.statement import local_today
from saldo.tables import PaymentPlan

__all__ = ["AbovePolicy", "Decision", "approve", "counter_offer", "reject"]


class AbovePolicy(SaldoError):
    """The proposal breaks the plan policy and the staff user may not approve it as is."""

    status_code = 403
    title = "Forbidden"

    def __init__(self, plan_id: int, broken: list[Violation]) -> None:
        super().__init__(
            "Esta propuesta no cumple la política de planes: solo un supervisor puede aprobarla."
        )
        self.plan_id = plan_id
        self.violations = broken


@dataclass(frozen=True, slots=True)
class Decision:
    plan_id: int  # the plan now active, rejected, or the new offer
    status: str


async def _proposed(plan_id: int) -> dict[str, Any]:
    rows = await PaymentPlan.raw(
        """SELECT p.*, a.debtor AS debtor_id, d.timezone
           FROM payment_plan p JOIN account a ON a.id = p.account
           JOIN debtor d ON d.id = a.debtor
           WHERE p.id = {} FOR UPDATE OF a, p""",
        plan_id if 0 < plan_id <= 2**31 - 1 else 0,
    )
    if not rows:
        raise NotFound(f"plan {plan_id} does not exist")
    plan = dict(rows[0])
    if plan["status"] != "proposed":
        raise Conflict(
            "Este plan ya no espera una decisión: alguien lo decidió antes o cambió de estado. "
            "Recargue la página para ver cómo quedó."
        )
    return plan


async def approve(
    plan_id: int,
    *,
    staff_id: int,
    now: dt.datetime,
    ip: str = "",
    above_policy: bool = False,
) -> Decision:
    """Approve a proposal as the debtor made it; one outside the policy needs `above_policy`."""
    actor = await staff_actor(staff_id, ip)
    async with DB.transaction():
        plan = await _proposed(plan_id)
        today = local_today(now, plan["timezone"])
        if plan["first_date"] <= today:
            raise Conflict(
                "La primera cuota de la propuesta ya venció: haga una contraoferta con fechas "
                "nuevas."
            )
        broken = violations(proposal_of(plan), await policy_for(int(plan["account"])), today=today)
        if broken and not above_policy:
            raise AbovePolicy(plan_id, broken)
        codes = [f"{v.field}:{v.code}" for v in broken]
        await activate(plan, today=today, now=now, expected="proposed", staff_id=staff_id)
        await close_task(f"plan:{plan_id}", now=now)
        await interaction(
            account_id=int(plan["account"]),
            debtor_id=int(plan["debtor_id"]),
            kind="plan_approved",
            summary=(
                "Plan de pagos aprobado por el equipo, fuera de la política."
                if broken
                else "Plan de pagos aprobado por el equipo."
            ),
            data={"plan": plan_id, "violations": codes},
            now=now,
            staff_id=staff_id,
            channel="backoffice",
            direction="out",
        )
        await record(
            actor,
            "plan.approved",
            now=now,
            object_type="payment_plan",
            object_id=plan_id,
            before={"status": "proposed"},
            after={"status": "active", "violations": codes} if codes else {"status": "active"},
        )
    return Decision(plan_id, "active")


async def reject(
    plan_id: int, reason: str, *, staff_id: int, now: dt.datetime, ip: str = ""
) -> Decision:
    """Reject a proposal; the debtor sees `reason` and may propose again."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Escriba el motivo: el deudor lo va a ver.", field="reason")
    if len(reason) > MAX_MESSAGE:
        raise ValidationFailed(
            f"El motivo puede tener hasta {MAX_MESSAGE} caracteres.", field="reason"
        )
    actor = await staff_actor(staff_id, ip)
    async with DB.transaction():
        plan = await _proposed(plan_id)
        await PaymentPlan.raw(
            """UPDATE payment_plan SET status = 'rejected', review_reason = {}, reviewed_by = {},
                   decided_at = {}
               WHERE id = {}""",
            reason,
            staff_id,
            now,
            plan_id,
        )
        await close_task(f"plan:{plan_id}", now=now)
        await interaction(
            account_id=int(plan["account"]),
            debtor_id=int(plan["debtor_id"]),
            kind="plan_rejected",
            summary=f"Propuesta de plan rechazada: {reason}",
            data={"plan": plan_id, "reason": reason},
            now=now,
            staff_id=staff_id,
            channel="backoffice",
            direction="out",
        )
        await record(
            actor,
            "plan.rejected",
            now=now,
            object_type="payment_plan",
            object_id=plan_id,
            before={"status": "proposed"},
            after={"status": "rejected", "reason": reason},
        )
        await decision_messages.plan_rejected(plan_id, now=now)
    return Decision(plan_id, "rejected")


def _check_offer(proposal: Proposal, total: int, today: dt.date) -> None:
    if proposal.total != total:
        raise ValidationFailed(
            f"La contraoferta debe cubrir el saldo actual del plan ({total}).", field="total"
        )
    if not 1 <= proposal.installments <= MAX_INSTALLMENTS:
        raise ValidationFailed(f"Elija entre 1 y {MAX_INSTALLMENTS} cuotas.", field="installments")
    if not 0 <= proposal.down_payment < proposal.total:
        raise ValidationFailed(
            "El anticipo debe ser menor que el total y no negativo.", field="down_payment"
        )
    if not today < proposal.first_date <= today + dt.timedelta(days=MAX_FIRST_DATE_DAYS):
        raise ValidationFailed(
            "La primera cuota debe vencer después de hoy y dentro del próximo año.",
            field="first_date",
        )


async def counter_offer(
    plan_id: int,
    proposal: Proposal,
    *,
    staff_id: int,
    now: dt.datetime,
    note: str = "",
    ip: str = "",
) -> Decision:
    """Answer a proposal with a different schedule; `note` is shown to the debtor with it."""
    note = (note or "").strip()
    if len(note) > MAX_MESSAGE:
        raise ValidationFailed(f"La nota puede tener hasta {MAX_MESSAGE} caracteres.", field="note")
    actor = await staff_actor(staff_id, ip)
    async with DB.transaction():
        plan = await _proposed(plan_id)
        today = local_today(now, plan["timezone"])
        account_id = int(plan["account"])
        covered = (await coverage([account_id]))[account_id]
        _check_offer(proposal, covered.total, today)
        offer_id = await insert_plan(
            account_id=account_id,
            status="offered",
            proposed_by="staff",
            proposal=proposal,
            invoice_ids=covered.invoice_ids,
            now=now,
            review_reason=note,
            reviewed_by=staff_id,
            counter_of=plan_id,
        )
        await PaymentPlan.raw(
            """UPDATE payment_plan SET status = 'countered', reviewed_by = {}, decided_at = {}
               WHERE id = {}""",
            staff_id,
            now,
            plan_id,
        )
        await close_task(f"plan:{plan_id}", now=now)
        before = proposal_of(plan)
        await interaction(
            account_id=account_id,
            debtor_id=int(plan["debtor_id"]),
            kind="plan_countered",
            summary=(
                f"Contraoferta: {proposal.installments} cuotas ({proposal.frequency.value}) "
                f"desde el {proposal.first_date.isoformat()} en lugar de "
                f"{before.installments} desde el {before.first_date.isoformat()}."
            ),
            data={"plan": plan_id, "offer": offer_id, "note": note},
            now=now,
            staff_id=staff_id,
            channel="backoffice",
            direction="out",
        )
        await record(
            actor,
            "plan.countered",
            now=now,
            object_type="payment_plan",
            object_id=plan_id,
            before={"status": "proposed"},
            after={
                "status": "countered",
                "offer": offer_id,
                "installments": proposal.installments,
                "frequency": proposal.frequency.value,
                "down_payment": proposal.down_payment,
                "first_date": proposal.first_date.isoformat(),
            },
        )
        await decision_messages.plan_countered(plan_id, offer_id, now=now)
    return Decision(offer_id, "offered")
