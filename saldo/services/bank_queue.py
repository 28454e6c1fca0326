"""Finance's queue of unapplied bank lines, and clearing them by hand.

A line leaves the queue once: assigned to one account, split between accounts, or marked as
not ours. Each operation locks the line (`SELECT ... FOR UPDATE`) in one transaction with
everything it writes, so a line already resolved — by finance or by automatic matching
running at the same time — answers `Conflict`. Every operation writes an `AuditEvent` with the
line before and after.

Payments: an assignment posts one payment with the bank's transaction id; part `n` of a
split (1-based) posts one with `<transaction_id>:<n>`. Parts must sum exactly to the line.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from saldo import money
from saldo.db import DB
from saldo.errors import Conflict, NotFound, ValidationFailed
from saldo.references import payment_reference
from saldo.services.bank_import import CurrencyTotal
from saldo.services.bank_matching import LINE_COLUMNS, invoices_phrase
from saldo.services.bank_posting import record_bank_payment, staff_actor, write_audit
from saldo.tables import Account, BankLine, Invoice

__all__ = [
    "MAX_SPLIT_PARTS",
    "RULE_MANUAL",
    "RULE_NOT_OURS",
    "RULE_SPLIT",
    "BankLineView",
    "Resolution",
    "SplitPart",
    "UnappliedPage",
    "assign_line",
    "bank_line",
    "mark_not_ours",
    "split_line",
    "unapplied_lines",
]

RULE_MANUAL: Final = "manual"
RULE_SPLIT: Final = "split"
RULE_NOT_OURS: Final = "not_ours"
MAX_SPLIT_PARTS: Final = 50
MAX_PAGE: Final = 500
_MAX_NOTE: Final = 1000
_STATUS_TEXT: Final = {
    "matched": "conciliado automáticamente",
    "assigned": "asignado a mano",
    "split": "dividido entre cuentas",
    "not_ours": "marcado como ajeno",
}


@dataclass(frozen=True, slots=True)
class BankLineView:
    id: int
    import_id: int
    filename: str
    line_no: int
    transaction_id: str
    booked_on: dt.date
    amount: int
    currency: str
    reference: str
    payer_name: str
    payer_document: str
    status: str
    account_id: int | None
    account_reference: str
    match_rule: str
    match_note: str
    resolved_by: int | None
    resolved_at: dt.datetime | None
    payment_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class UnappliedPage:
    lines: tuple[BankLineView, ...]
    total: int  # unmatched lines in the filter, across pages
    totals: tuple[CurrencyTotal, ...]  # unmatched amount per currency, across pages
    limit: int
    offset: int


@dataclass(frozen=True, slots=True)
class Resolution:
    line_id: int
    status: str
    payment_ids: tuple[int, ...]


class SplitPart(NamedTuple):
    account_id: int
    amount: int
    invoice_ids: Sequence[int] = ()


# ---------------------------------------------------------------------------- reading

_VIEW_SQL: Final = f"""
    SELECT {", ".join(f"l.{c.strip()}" for c in LINE_COLUMNS.split(","))},
           l.account, l.match_rule, l.match_note, l.resolved_by, l.resolved_at, b.filename,
           coalesce((SELECT array_agg(p.id ORDER BY p.id) FROM payment p WHERE p.bank_line = l.id),
                    ARRAY[]::int[]) AS payment_ids
    FROM bank_line l JOIN bank_import b ON b.id = l.bank_import
"""


async def unapplied_lines(
    *, limit: int = 50, offset: int = 0, currency: str | None = None
) -> UnappliedPage:
    """Unmatched lines, oldest booking first, with the queue's size and amount per currency."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValidationFailed(f"limit debe estar entre 1 y {MAX_PAGE}", field="limit")
    if offset < 0:
        raise ValidationFailed("offset no puede ser negativo", field="offset")
    if currency is not None and currency not in money.EXPONENTS:
        raise ValidationFailed(f"moneda desconocida: {currency}", field="currency")
    rows = await BankLine.raw(
        _VIEW_SQL
        + """
        WHERE l.status = 'unmatched' AND ({}::text IS NULL OR l.currency = {})
        ORDER BY l.booked_on, l.id LIMIT {} OFFSET {}
        """,
        currency,
        currency,
        limit,
        offset,
    )
    totals = await BankLine.raw(
        """
        SELECT currency, count(*)::int AS n, sum(amount)::bigint AS total FROM bank_line
        WHERE status = 'unmatched' AND ({}::text IS NULL OR currency = {})
        GROUP BY currency ORDER BY currency
        """,
        currency,
        currency,
    )
    return UnappliedPage(
        lines=tuple(_view(r) for r in rows),
        total=sum(r["n"] for r in totals),
        totals=tuple(CurrencyTotal(r["currency"], r["n"], int(r["total"])) for r in totals),
        limit=limit,
        offset=offset,
    )


async def bank_line(line_id: int) -> BankLineView:
    rows = await BankLine.raw(_VIEW_SQL + " WHERE l.id = {}", line_id)
    if not rows:
        raise NotFound(f"bank line {line_id} does not exist")
    return _view(rows[0])


def _view(r: Mapping[str, Any]) -> BankLineView:
    return BankLineView(
        id=r["id"],
        import_id=r["bank_import"],
        filename=r["filename"],
        line_no=r["line_no"],
        transaction_id=r["transaction_id"],
        booked_on=r["booked_on"],
        amount=int(r["amount"]),
        currency=r["currency"],
        reference=r["reference"],
        payer_name=r["payer_name"],
        payer_document=r["payer_document"],
        status=r["status"],
        account_id=r["account"],
        account_reference=payment_reference(r["account"]) if r["account"] else "",
        match_rule=r["match_rule"],
        match_note=r["match_note"],
        resolved_by=r["resolved_by"],
        resolved_at=r["resolved_at"],
        payment_ids=tuple(r["payment_ids"] or ()),
    )


# ---------------------------------------------------------------------------- resolving


async def assign_line(
    line_id: int,
    *,
    account_id: int,
    invoice_ids: Sequence[int] = (),
    staff_id: int,
    now: dt.datetime,
) -> Resolution:
    """Post the whole line to one account (its `invoice_ids` paid first)."""
    async with DB.transaction():
        line = await _lock_unresolved(line_id)
        actor = await staff_actor(staff_id)
        numbers = await _check_target(line["currency"], account_id, invoice_ids, prefix="")
        note = f"Asignado a mano por {actor}"
        if numbers:
            note += f"; {invoices_phrase(numbers)}"
        await _resolve(line_id, "assigned", account_id, RULE_MANUAL, note, staff_id, now)
        payment_id = await record_bank_payment(
            line=line,
            account_id=account_id,
            provider_payment_id=line["transaction_id"],
            amount=line["amount"],
            invoice_ids=invoice_ids,
            rule=RULE_MANUAL,
            note=note,
            now=now,
            staff_id=staff_id,
        )
        await write_audit(
            staff_id=staff_id,
            action="bank_line.assign",
            object_type="bank_line",
            object_id=line_id,
            before=_snapshot(line),
            after={
                "status": "assigned",
                "account": account_id,
                "invoice_ids": list(invoice_ids),
                "payments": [payment_id],
            },
            now=now,
        )
    return Resolution(line_id, "assigned", (payment_id,))


async def split_line(
    line_id: int,
    parts: Sequence[SplitPart | tuple[int, int, Sequence[int]]],
    *,
    staff_id: int,
    now: dt.datetime,
) -> Resolution:
    """Post the line as several payments; the parts' amounts must sum exactly to the line's.

    Each part is `(account_id, amount, invoice_ids)`; errors name the field as
    `parts.<i>.account_id`, `parts.<i>.amount` or `parts.<i>.invoice_ids` (0-based), or
    `parts` for the count and the sum.
    """
    try:
        checked = [SplitPart(*part) for part in parts]
    except TypeError:
        raise ValidationFailed("Cada parte es (cuenta, importe, facturas)", field="parts") from None
    async with DB.transaction():
        line = await _lock_unresolved(line_id)
        actor = await staff_actor(staff_id)
        if not 2 <= len(checked) <= MAX_SPLIT_PARTS:
            raise ValidationFailed(
                f"Una división necesita entre 2 y {MAX_SPLIT_PARTS} partes", field="parts"
            )
        for i, part in enumerate(checked):
            if not isinstance(part.amount, int) or part.amount <= 0:
                raise ValidationFailed(
                    "Cada parte debe ser un importe positivo", field=f"parts.{i}.amount"
                )
        total = sum(part.amount for part in checked)
        if total != line["amount"]:
            shown = money.to_decimal(line["amount"], line["currency"])
            summed = money.to_decimal(total, line["currency"])
            raise ValidationFailed(
                f"Las partes suman {summed} y el movimiento es de {shown} {line['currency']}",
                field="parts",
            )
        for i, part in enumerate(checked):
            await _check_target(
                line["currency"], part.account_id, part.invoice_ids, prefix=f"parts.{i}."
            )
        note = f"Dividido en {len(checked)} partes por {actor}"
        await _resolve(line_id, "split", None, RULE_SPLIT, note, staff_id, now)
        payment_ids: list[int] = []
        for n, part in enumerate(checked, start=1):
            payment_ids.append(
                await record_bank_payment(
                    line=line,
                    account_id=part.account_id,
                    provider_payment_id=f"{line['transaction_id']}:{n}",
                    amount=part.amount,
                    invoice_ids=part.invoice_ids,
                    rule=RULE_SPLIT,
                    note=f"{note} (parte {n})",
                    now=now,
                    staff_id=staff_id,
                    details={"part": n, "parts": len(checked)},
                )
            )
        await write_audit(
            staff_id=staff_id,
            action="bank_line.split",
            object_type="bank_line",
            object_id=line_id,
            before=_snapshot(line),
            after={
                "status": "split",
                "parts": [
                    {
                        "account": p.account_id,
                        "amount": p.amount,
                        "invoice_ids": list(p.invoice_ids),
                    }
                    for p in checked
                ],
                "payments": payment_ids,
            },
            now=now,
        )
    return Resolution(line_id, "split", tuple(payment_ids))


async def mark_not_ours(line_id: int, *, note: str, staff_id: int, now: dt.datetime) -> Resolution:
    """Take a credit that is not a debtor's payment out of the queue, saying why."""
    note = " ".join(note.split())
    async with DB.transaction():
        line = await _lock_unresolved(line_id)
        await staff_actor(staff_id)
        if not note:
            raise ValidationFailed("Explicá por qué el movimiento no es de un deudor", field="note")
        if len(note) > _MAX_NOTE:
            raise ValidationFailed(f"La nota no puede superar {_MAX_NOTE} caracteres", field="note")
        await _resolve(line_id, "not_ours", None, RULE_NOT_OURS, note, staff_id, now)
        await write_audit(
            staff_id=staff_id,
            action="bank_line.not_ours",
            object_type="bank_line",
            object_id=line_id,
            before=_snapshot(line),
            after={"status": "not_ours", "note": note},
            now=now,
        )
    return Resolution(line_id, "not_ours", ())


async def _lock_unresolved(line_id: int) -> dict[str, Any]:
    rows = await BankLine.raw(
        f"SELECT {LINE_COLUMNS}, account FROM bank_line WHERE id = {{}} FOR UPDATE", line_id
    )
    if not rows:
        raise NotFound(f"bank line {line_id} does not exist")
    line = dict(rows[0])
    if line["status"] != "unmatched":
        state = _STATUS_TEXT.get(line["status"], line["status"])
        raise Conflict(f"El movimiento {line['transaction_id']} ya fue {state}")
    return line


async def _check_target(
    currency: str, account_id: int, invoice_ids: Sequence[int], *, prefix: str
) -> list[str]:
    """Refuse an account in another currency or invoices of another account; the numbers."""
    if not isinstance(account_id, int) or isinstance(account_id, bool):
        raise ValidationFailed("Elegí una cuenta", field=f"{prefix}account_id")
    account = await Account.select(Account.currency).where(Account.id == account_id).first()
    if account is None:
        raise ValidationFailed("La cuenta no existe", field=f"{prefix}account_id")
    if account["currency"] != currency:
        raise ValidationFailed(
            f"La cuenta está en {account['currency']} y el movimiento en {currency}",
            field=f"{prefix}account_id",
        )
    wanted = list(dict.fromkeys(invoice_ids))
    if not all(isinstance(i, int) for i in wanted):
        raise ValidationFailed("Factura inválida", field=f"{prefix}invoice_ids")
    if not wanted:
        return []
    rows = await Invoice.select(Invoice.id, Invoice.number).where(
        Invoice.id.is_in(wanted) & (Invoice.account == account_id)
    )
    numbers = {r["id"]: r["number"] for r in rows}
    if len(numbers) != len(wanted):
        raise ValidationFailed(
            "Alguna de las facturas no es de esa cuenta", field=f"{prefix}invoice_ids"
        )
    return [numbers[i] for i in wanted]


async def _resolve(
    line_id: int,
    status: str,
    account_id: int | None,
    rule: str,
    note: str,
    staff_id: int,
    now: dt.datetime,
) -> None:
    await BankLine.raw(
        """
        UPDATE bank_line SET status = {}, account = {}, match_rule = {}, match_note = {},
                             resolved_by = {}, resolved_at = {}
        WHERE id = {}
        """,
        status,
        account_id,
        rule,
        note,
        staff_id,
        now,
        line_id,
    )


def _snapshot(line: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "status": line["status"],
        "account": line["account"],
        "transaction_id": line["transaction_id"],
        "amount": line["amount"],
        "currency": line["currency"],
    }
