"""Turning a bank line into money on an account, and the audit trail of finance's actions.

Every write here runs inside the caller's `DB.transaction()`, after the caller has won the
line (an UPDATE ... WHERE status = 'unmatched' or a row lock), so a line is posted once.
The payment itself is unique by ("bank", provider payment id) through `ledger.apply_payment`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

from saldo import money
from saldo.errors import NotFound
from saldo.services import audit
from saldo.services.ledger import apply_payment
from saldo.services.statement import display_locale
from saldo.tables import Account, Interaction, StaffUser

__all__ = [
    "INTERACTION_KIND",
    "METHOD",
    "PROVIDER",
    "received_at",
    "record_bank_payment",
    "staff_actor",
    "write_audit",
]

PROVIDER: Final = "bank"
METHOD: Final = "transferencia"
INTERACTION_KIND: Final = "payment"


def received_at(booked_on: dt.date) -> dt.datetime:
    """A bank credit counts as received on its booking date (00:00 UTC), the ledger's date."""
    return dt.datetime.combine(booked_on, dt.time(), dt.UTC)


async def record_bank_payment(
    *,
    line: Mapping[str, Any],
    account_id: int,
    provider_payment_id: str,
    amount: int,
    invoice_ids: Sequence[int],
    rule: str,
    note: str,
    now: dt.datetime,
    staff_id: int | None = None,
    details: Mapping[str, Any] | None = None,
) -> int:
    """Post `amount` of bank line `line` to `account_id`; returns the payment id.

    Links the payment to the line (`Payment.bank_line`) and writes the debtor's `Interaction`
    (kind "payment") when the payment is new.
    """
    applied = await apply_payment(
        account_id=account_id,
        provider=PROVIDER,
        provider_payment_id=provider_payment_id,
        amount=amount,
        received_at=received_at(line["booked_on"]),
        method=METHOD,
        preferred_invoice_ids=list(invoice_ids),
        bank_line_id=line["id"],
        raw={
            "bank_line": line["id"],
            "transaction_id": line["transaction_id"],
            "reference": line["reference"],
            "payer_name": line["payer_name"],
            "payer_document": line["payer_document"],
            "rule": rule,
            **(details or {}),
        },
    )
    if applied.newly_applied:
        await _interaction(
            line=line,
            account_id=account_id,
            payment_id=applied.payment_id,
            amount=amount,
            rule=rule,
            note=note,
            now=now,
            staff_id=staff_id,
            details=details or {},
        )
    return applied.payment_id


async def _interaction(
    *,
    line: Mapping[str, Any],
    account_id: int,
    payment_id: int,
    amount: int,
    rule: str,
    note: str,
    now: dt.datetime,
    staff_id: int | None,
    details: Mapping[str, Any],
) -> None:
    rows = await Account.raw(
        """SELECT a.debtor, a.currency, d.country FROM account a JOIN debtor d ON d.id = a.debtor
           WHERE a.id = {}""",
        account_id,
    )
    if not rows:
        raise NotFound(f"account {account_id} does not exist")
    shown = money.format_money(
        amount, rows[0]["currency"], display_locale("es", rows[0]["country"])
    )
    await Interaction.insert(
        Interaction(
            account=account_id,
            debtor=rows[0]["debtor"],
            kind=INTERACTION_KIND,
            channel="bank",
            direction="inbound",
            summary=f"Transferencia bancaria recibida por {shown}. {note}",
            data={
                "payment": payment_id,
                "bank_line": line["id"],
                "transaction_id": line["transaction_id"],
                "booked_on": line["booked_on"].isoformat(),
                "amount": amount,
                "currency": rows[0]["currency"],
                "rule": rule,
                "note": note,
                **details,
            },
            staff=staff_id,
            occurred_at=now,
        )
    )


async def staff_actor(staff_id: int) -> str:
    """The audit actor for a staff id; `NotFound` when there is no such staff user."""
    row = await StaffUser.select(StaffUser.email).where(StaffUser.id == staff_id).first()
    if row is None:
        raise NotFound(f"staff user {staff_id} does not exist")
    return str(row["email"])


async def write_audit(
    *,
    staff_id: int,
    action: str,
    object_type: str,
    object_id: int,
    before: Mapping[str, Any],
    after: Mapping[str, Any],
    now: dt.datetime,
) -> None:
    """One audit event for a finance action, in the caller's transaction."""
    await audit.record(
        audit.Actor(staff_id, await staff_actor(staff_id)),
        action,
        now=now,
        object_type=object_type,
        object_id=object_id,
        before=json.loads(json.dumps(dict(before), default=str)),
        after=json.loads(json.dumps(dict(after), default=str)),
    )
