"""How far a plan has got, computed from the ledger, and the nightly check of active plans.

What counts as paid toward a plan: every `payment` entry posted on one of the plan's invoices
for a payment received at or after the plan was made (`payment.received_at`, through the
entry's allocation; the entry's own `created_at` when it has none), net of the reversals of
those entries (a refund or chargeback lowers the progress again). The amount is capped at the
plan's total. Payments received before the plan are already inside its total, so they never
count twice.

That amount pays the schedule as a waterfall: the down payment first, then installment 1, 2, …
(`waterfall`). An installment is:

- `paid`    when the waterfall covers it in full;
- `late`    after its due date, within the policy's grace days;
- `missed`  after due date + grace days, not fully paid;
- `partial` before that, partly paid;
- `pending` before that, nothing paid.

`Installment.paid_amount` and `Installment.status` are only a cache of this, refreshed by
`check_plans`; pages compute the live state.

`check_plans(today=, now=)`, per active plan, in its own transaction with the plan row locked:
fully paid → "completed"; each missed installment → a `Task` (kind "plan_installment_missed",
dedupe "plan:<id>:installment:<number>:missed") for the account's assignee, and
`missed_count` + 1 only when that task was inserted (so a second run counts nothing twice);
`missed_count` ≥ the policy's `missed_to_break` → "broken": the plan ends, its invoices go
back to normal collection and nothing is reversed (what was paid stays paid), with a
"plan_broken" task. Every transition writes an `Interaction`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from saldo.db import DB
from saldo.schedule import Policy
from saldo.services.plan_policy import policies_for
from saldo.services.plan_records import insert_task, interaction
from saldo.tables import Installment

__all__ = [
    "CheckResult",
    "InstallmentState",
    "check_plans",
    "installment_states",
    "installments_of",
    "paid_toward",
    "waterfall",
]

MISSED_TASK: Final = "plan_installment_missed"
BROKEN_TASK: Final = "plan_broken"


def waterfall(amounts: Sequence[int], paid: int) -> list[int]:
    """The part of each amount that `paid` covers when it pays them in order."""
    left = max(paid, 0)
    parts = []
    for amount in amounts:
        part = min(amount, left)
        parts.append(part)
        left -= part
    return parts


@dataclass(frozen=True, slots=True)
class InstallmentState:
    id: int
    number: int
    due_date: dt.date
    amount: int
    paid: int
    status: str  # paid | late | missed | partial | pending

    @property
    def due(self) -> int:
        return self.amount - self.paid


def state_of(amount: int, paid: int, due_date: dt.date, today: dt.date, grace_days: int) -> str:
    if paid >= amount:
        return "paid"
    if (today - due_date).days > grace_days:
        return "missed"
    if today > due_date:
        return "late"
    return "partial" if paid > 0 else "pending"


def installment_states(
    rows: Iterable[dict[str, Any]], paid: int, *, today: dt.date, policy: Policy
) -> list[InstallmentState]:
    """The live state of a plan's installments (rows ordered by number) for `paid` so far."""
    ordered = sorted(rows, key=lambda r: int(r["number"]))
    parts = waterfall([int(r["amount"]) for r in ordered], paid)
    return [
        InstallmentState(
            id=int(r["id"]),
            number=int(r["number"]),
            due_date=r["due_date"],
            amount=int(r["amount"]),
            paid=part,
            status=state_of(int(r["amount"]), part, r["due_date"], today, policy.grace_days),
        )
        for r, part in zip(ordered, parts, strict=True)
    ]


async def installments_of(plan_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    if not plan_ids:
        return {}
    rows = await Installment.raw(
        """SELECT id, plan, number, due_date, amount, paid_amount, status FROM installment
           WHERE plan = ANY({}::int[]) ORDER BY plan, number""",
        list(plan_ids),
    )
    grouped: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(int(row["plan"]), []).append(row)
    return grouped


async def paid_toward(plan_ids: Sequence[int]) -> dict[int, int]:
    """What has been paid toward each plan (see the module docstring), capped at its total."""
    if not plan_ids:
        return {}
    rows = await Installment.raw(
        """
        WITH plans AS (
            SELECT p.id, p.total, p.created_at,
                   ARRAY(SELECT jsonb_array_elements_text(p.invoice_ids)::int) AS invoices
            FROM payment_plan p WHERE p.id = ANY({}::int[])
        ),
        paid AS (
            SELECT pl.id AS plan, e.id AS entry, e.amount
            FROM plans pl
            JOIN ledger_entry e ON e.invoice = ANY(pl.invoices) AND e.kind = 'payment'
            LEFT JOIN LATERAL (
                SELECT pm.received_at FROM payment_allocation pa
                JOIN payment pm ON pm.id = pa.payment
                WHERE pa.ledger_entry = e.id LIMIT 1
            ) received ON true
            WHERE coalesce(received.received_at, e.created_at) >= pl.created_at
        ),
        reversed AS (
            SELECT r.reverses AS entry, sum(r.amount) AS amount FROM ledger_entry r
            WHERE r.reverses IN (SELECT entry FROM paid) GROUP BY r.reverses
        )
        SELECT pl.id, pl.total,
               coalesce((SELECT -sum(paid.amount + coalesce(reversed.amount, 0))
                         FROM paid LEFT JOIN reversed ON reversed.entry = paid.entry
                         WHERE paid.plan = pl.id), 0)::bigint AS paid
        FROM plans pl
        """,
        list(plan_ids),
    )
    return {int(r["id"]): max(0, min(int(r["paid"]), int(r["total"]))) for r in rows}


# ---------------------------------------------------------------------------- the nightly check


@dataclass(frozen=True, slots=True)
class CheckResult:
    checked: int
    missed: int  # installments newly found missed
    broken: int
    completed: int

    def as_dict(self) -> dict[str, int]:
        return {
            "checked": self.checked,
            "missed": self.missed,
            "broken": self.broken,
            "completed": self.completed,
        }


async def check_plans(*, today: dt.date, now: dt.datetime) -> CheckResult:
    """Refresh every active plan: cache installment progress, record misses, end plans."""
    plans = await Installment.raw(
        "SELECT id, account FROM payment_plan WHERE status = 'active' ORDER BY id"
    )
    policies = await policies_for(sorted({int(p["account"]) for p in plans}))
    missed = broken = completed = 0
    for plan in plans:
        outcome = await _check_one(int(plan["id"]), policies[int(plan["account"])], today, now)
        missed += outcome[0]
        broken += outcome[1] == "broken"
        completed += outcome[1] == "completed"
    return CheckResult(len(plans), missed, broken, completed)


async def _check_one(
    plan_id: int, policy: Policy, today: dt.date, now: dt.datetime
) -> tuple[int, str]:
    async with DB.transaction():
        outcome = await _check_locked(plan_id, policy, today, now)
    return outcome


async def _check_locked(
    plan_id: int, policy: Policy, today: dt.date, now: dt.datetime
) -> tuple[int, str]:
    rows = await Installment.raw(
        """SELECT p.id, p.account, p.total, p.missed_count, a.debtor, a.assignee,
                  d.name AS debtor_name
           FROM payment_plan p JOIN account a ON a.id = p.account
           JOIN debtor d ON d.id = a.debtor
           WHERE p.id = {} AND p.status = 'active'
           FOR UPDATE OF p""",
        plan_id,
    )
    if not rows:
        return 0, ""
    plan = rows[0]
    paid = (await paid_toward([plan_id])).get(plan_id, 0)
    states = installment_states(
        (await installments_of([plan_id])).get(plan_id, []), paid, today=today, policy=policy
    )
    for state in states:
        await Installment.raw(
            """UPDATE installment SET paid_amount = {}, status = {}
               WHERE id = {} AND (paid_amount, status) IS DISTINCT FROM ({}, {})""",
            state.paid,
            state.status,
            state.id,
            state.paid,
            state.status,
        )
    account_id, debtor_id = int(plan["account"]), int(plan["debtor"])
    note = partial(interaction, account_id=account_id, debtor_id=debtor_id, now=now)
    if paid >= int(plan["total"]):
        await _end(plan_id, "completed", now)
        await note(
            kind="plan_completed",
            summary="Plan de pagos completado.",
            data={"plan": plan_id, "paid": paid},
            channel="system",
            direction="",
        )
        return 0, "completed"
    new_misses = 0
    for state in states:
        if state.status != "missed":
            continue
        label = "el anticipo" if state.number == 0 else f"la cuota {state.number}"
        task = await insert_task(
            dedupe_key=f"plan:{plan_id}:installment:{state.number}:missed",
            kind=MISSED_TASK,
            title=f"{plan['debtor_name']} no pagó {label} del plan {plan_id}",
            account_id=account_id,
            assignee=plan["assignee"],
            due_on=today,
            now=now,
            data={
                "plan": plan_id,
                "installment": state.id,
                "number": state.number,
                "due": state.due,
            },
        )
        if task is None:
            continue
        new_misses += 1
        await note(
            kind="plan_installment_missed",
            summary=f"Venció sin pago {label} del plan ({state.due_date.isoformat()}).",
            data={
                "plan": plan_id,
                "installment": state.id,
                "number": state.number,
                "amount": state.amount,
                "paid": state.paid,
            },
            channel="system",
            direction="",
        )
    misses = int(plan["missed_count"])
    if new_misses:
        counted = await Installment.raw(
            """UPDATE payment_plan SET missed_count = missed_count + {} WHERE id = {}
               RETURNING missed_count""",
            new_misses,
            plan_id,
        )
        misses = int(counted[0]["missed_count"])
    if misses >= policy.missed_to_break:
        await _end(plan_id, "broken", now)
        await insert_task(
            dedupe_key=f"plan:{plan_id}:broken",
            kind=BROKEN_TASK,
            title=f"Plan {plan_id} de {plan['debtor_name']} terminado por cuotas impagas",
            account_id=account_id,
            assignee=plan["assignee"],
            due_on=today,
            now=now,
            data={"plan": plan_id, "paid": paid, "missed": misses},
        )
        await note(
            kind="plan_broken",
            summary=(
                f"Plan terminado por {misses} cuotas impagas; lo pagado ({paid}) se "
                "conserva y la cuenta vuelve a la gestión habitual."
            ),
            data={"plan": plan_id, "paid": paid, "missed": misses},
            channel="system",
            direction="",
        )
        return new_misses, "broken"
    return new_misses, ""


async def _end(plan_id: int, status: str, now: dt.datetime) -> None:
    await Installment.raw(
        "UPDATE payment_plan SET status = {}, ended_at = {} WHERE id = {} AND status = 'active'",
        status,
        now,
        plan_id,
    )
