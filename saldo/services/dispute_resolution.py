"""Resolving a dispute (staff): accept, accept in part, or reject.

Accepting credits the whole disputed amount, a partial acceptance part of it (more than zero,
less than the disputed amount), a rejection nothing (an explanation for the debtor is required
for a rejection and a partial acceptance). A credit is ONE `credit_note` ledger entry on the
invoice with the idempotency key "dispute:<id>:resolution"; the dispute row is locked first, so
a second resolution, even a concurrent one, gets `Conflict`. In the same transaction the
debtor's thread gets the outcome as a message in the debtor's language (the portal shows it),
the account's timeline an `Interaction`, the review task is closed and an `AuditEvent` records
who decided what, from where; the `dispute.resolved` webhook is queued
(`outbound.dispute_resolved`) and so is a `dispute_update` message telling the debtor the
outcome (`decision_messages.dispute_resolved`, key "dispute_resolved:<id>").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from saldo import money
from saldo.db import DB
from saldo.errors import Conflict, NotFound, ValidationFailed
from saldo.i18n import gettext
from saldo.services import audit, decision_messages, outbound
from saldo.services.dispute_records import DISPUTE_COLUMNS, DISPUTE_FROM
from saldo.services.dispute_rules import (
    MAX_MESSAGE,
    OUTCOMES,
    is_closed,
    resolution_key,
    status_label,
    task_key,
    valid_id,
)
from saldo.services.ledger import post_entry
from saldo.services.statement import Amount, Formats, display_locale, resolve_language
from saldo.tables import Dispute, DisputeMessage, EntryKind, Interaction

__all__ = ["resolve"]


async def resolve(
    dispute_id: int,
    *,
    outcome: str,
    amount: int | None = None,
    explanation: str = "",
    staff_id: int,
    now: dt.datetime,
    ip: str = "",
) -> int | None:
    """Close a dispute: "accept", "partial" (with `amount`) or "reject" (with `explanation`).

    Returns the id of the credit note posted (None for a rejection). Raises `NotFound`,
    `Conflict` when the dispute is already resolved, and `ValidationFailed` (field outcome,
    amount or explanation) for bad input. Everything happens in one transaction.
    """
    if outcome not in OUTCOMES:
        raise ValidationFailed("choose accept, partial or reject", field="outcome")
    text = explanation.strip()
    if outcome in {"reject", "partial"} and not text:
        raise ValidationFailed("explain the decision to the debtor", field="explanation")
    if len(text) > MAX_MESSAGE:
        raise ValidationFailed("the explanation is too long (4000 characters)", field="explanation")
    if not valid_id(dispute_id):
        raise NotFound(f"dispute {dispute_id} does not exist")
    async with DB.transaction():
        rows = await Dispute.raw(
            f"""SELECT {DISPUTE_COLUMNS} {DISPUTE_FROM} WHERE d.id = {{}} FOR UPDATE OF d""",
            dispute_id,
        )
        if not rows:
            raise NotFound(f"dispute {dispute_id} does not exist")
        row = rows[0]
        if is_closed(row["status"], row["resolved_at"]):
            raise Conflict(f"dispute {dispute_id} is already resolved ({row['status']})")
        staff = await Dispute.raw("SELECT email FROM staff_user WHERE id = {}", staff_id)
        if not staff:
            raise NotFound(f"staff user {staff_id} does not exist")
        disputed = int(row["amount"])
        if outcome == "accept":
            credited = disputed
        elif outcome == "partial":
            if amount is None or not 0 < amount < disputed:
                raise ValidationFailed(
                    "a partial acceptance credits more than zero and less than the disputed amount",
                    field="amount",
                )
            credited = amount
        else:
            credited = 0
        entry_id = None
        if credited:
            entry_id = await post_entry(
                account_id=row["account"],
                kind=EntryKind.credit_note,
                amount=-credited,
                currency=row["currency"],
                effective_date=now.date(),
                invoice_id=row["invoice"],
                description=f"Nota de crédito por el reclamo N.º {dispute_id}",
                basis={"dispute": dispute_id, "reason": row["reason_code"], "outcome": outcome},
                idempotency_key=resolution_key(dispute_id),
                created_by=f"staff:{staff_id}",
            )
            if entry_id is None:  # the key exists: someone else resolved it
                raise Conflict(f"dispute {dispute_id} is already resolved")
        status = OUTCOMES[outcome]
        await Dispute.update(
            {
                Dispute.status: status,
                Dispute.resolution: text,
                Dispute.resolved_amount: credited,
                Dispute.resolved_at: now,
            }
        ).where(Dispute.id == dispute_id)
        lang = resolve_language(None, row["debtor_language"])
        fmt = Formats(row["currency"], display_locale(lang, row["debtor_country"]))
        body = _outcome_message(lang, outcome, fmt.money(credited), fmt.money(disputed), row)
        if text:
            body = f"{body}\n\n{text}"
        await DisputeMessage.insert(
            DisputeMessage(
                dispute=dispute_id, author_kind="staff", staff=staff_id, body=body, created_at=now
            )
        )
        shown = money.format_money(credited, row["currency"], "es")
        await Interaction.insert(
            Interaction(
                account=row["account"],
                debtor=row["debtor_id"],
                kind="dispute_resolved",
                channel="portal",
                direction="outbound",
                summary=f"Reclamo N.º {dispute_id} {status_label('es', status).lower()}"
                + (f": nota de crédito por {shown}" if credited else ""),
                data={
                    "dispute": dispute_id,
                    "outcome": outcome,
                    "credited": credited,
                    "ledger_entry": entry_id,
                },
                staff=staff_id,
                occurred_at=now,
            )
        )
        await Dispute.raw(
            """UPDATE task SET status = 'done', done_at = {}
               WHERE dedupe_key = {} AND status <> 'done'""",
            now,
            task_key(dispute_id),
        )
        await audit.record(
            audit.Actor(staff_id, str(staff[0]["email"]), ip),
            "dispute.resolve",
            now=now,
            object_type="dispute",
            object_id=dispute_id,
            before={"status": row["status"], "amount": disputed},
            after={
                "status": status,
                "resolved_amount": credited,
                "ledger_entry": entry_id,
                "explanation": text,
            },
        )
        await outbound.dispute_resolved(dispute_id)
        await decision_messages.dispute_resolved(dispute_id, now=now)
    return entry_id


def _outcome_message(
    language: str, outcome: str, credited: Amount, disputed: Amount, row: Mapping[str, Any]
) -> str:
    number = row["invoice_number"]
    if outcome == "accept":
        return gettext(
            language, "Aceptamos su reclamo. Acreditamos {amount} en la factura {number}."
        ).format(amount=credited, number=number)
    if outcome == "partial":
        return gettext(
            language,
            "Aceptamos su reclamo en parte. Acreditamos {amount} de los {disputed} reclamados "
            "en la factura {number}.",
        ).format(amount=credited, disputed=disputed, number=number)
    return gettext(
        language,
        "Revisamos su reclamo y no podemos aceptarlo. El importe de la factura {number} "
        "vuelve a estar pendiente de pago.",
    ).format(number=number)
