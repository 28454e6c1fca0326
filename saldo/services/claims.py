""" "Ya pagué": a debtor reports a payment made outside the portal (a transfer, a deposit, cash
at a branch), optionally with the receipt.

A report becomes, in one transaction:

- a `PaymentClaim` (status "open") with `pause_until` = the debtor's today + the creditor's
  `claim_pause_days`: reminders about the invoices it names pause until then (the dunning engine
  reads it), which gives finance time to find the money;
- a finance `Task` (kind "match_claim", `dedupe_key` "claim:<id>", due on the pause's last day),
  inserted with ON CONFLICT DO NOTHING so a claim never has two;
- an `Interaction` for the account's timeline;
- the receipt, if any, as an `Attachment` (see `saldo.services.uploads`).

Nothing is stored when any field is wrong: `InvalidClaim` carries one message per field.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from saldo.db import DB
from saldo.errors import NotFound, ValidationFailed
from saldo.i18n import gettext
from saldo.services import uploads
from saldo.services.checkout import account_of, open_invoices, parse_money
from saldo.services.statement import Formats, display_locale, local_today, resolve_language
from saldo.tables import Interaction, PaymentClaim

__all__ = [
    "MAX_AGE_DAYS",
    "METHODS",
    "TASK_KIND",
    "ClaimForm",
    "ClaimView",
    "InvalidClaim",
    "Receipt",
    "claim_receipt",
    "claim_view",
    "claim_window",
    "ensure_claim_task",
    "submit_claim",
]

#: How the debtor paid: bank transfer, deposit, cash at a branch, something else.
METHODS: Final = ("transferencia", "deposito", "efectivo", "otro")
#: A report may name a payment made at most this many days ago.
MAX_AGE_DAYS: Final = 90
TASK_KIND: Final = "match_claim"
INTERACTION_KIND: Final = "payment_claimed"
_MAX_REFERENCE: Final = 200
_MAX_ID: Final = 2**31 - 1
_FIELDS: Final = ("account", "paid_on", "amount", "method", "reference", "invoice_ids", "receipt")


@dataclass(frozen=True, slots=True)
class ClaimForm:
    """The form as submitted (all text), re-shown as typed when something is wrong."""

    account: str = ""
    paid_on: str = ""
    amount: str = ""
    method: str = ""
    reference: str = ""
    invoice_ids: tuple[str, ...] = ()
    errors: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Receipt:
    filename: str
    data: bytes


class InvalidClaim(ValidationFailed):
    """One message per wrong field (`errors`), and the form as typed (`form`)."""

    def __init__(self, form: ClaimForm) -> None:
        first = next(iter(form.errors))
        super().__init__(form.errors[first], field=first)
        self.form = form
        self.errors = dict(form.errors)


@dataclass(frozen=True, slots=True)
class ClaimView:
    id: int
    account_id: int
    creditor_name: str
    language: str
    amount: str
    paid_on: str
    method: str
    reference: str
    invoice_numbers: tuple[str, ...]
    pause_until: str | None
    status: str
    receipt_filename: str | None


def claim_window(today: dt.date) -> tuple[dt.date, dt.date]:
    """The first and last date a payment may be reported for."""
    return today - dt.timedelta(days=MAX_AGE_DAYS), today


def _ids(debtor_ids: Sequence[int]) -> list[int]:
    return sorted({int(i) for i in debtor_ids if 0 < int(i) <= _MAX_ID})


def _parse_date(text: str) -> dt.date | None:
    text = text.strip()
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


def _fmt(language: str, country: str, currency: str) -> Formats:
    return Formats(currency, display_locale(language, country))


async def _check(
    debtor_ids: Sequence[int],
    form: ClaimForm,
    receipt: Receipt | None,
    language: str | None,
    now: dt.datetime,
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """The checked values, the account row and the language, or `InvalidClaim`."""
    errors: dict[str, str] = {}
    account_text = form.account.strip()
    account = (
        await account_of(debtor_ids, int(account_text))
        if account_text.isdigit() and len(account_text) < 11
        else None
    )
    lang = resolve_language(language, account["language"] if account else None)
    if account is None:
        errors["account"] = gettext(lang, "Elija la cuenta a la que corresponde el pago.")
    today = local_today(now, account["timezone"] if account else "UTC")
    paid_on = _parse_date(form.paid_on)
    if paid_on is None:
        errors["paid_on"] = gettext(lang, "Indique la fecha del pago (día, mes y año).")
    elif paid_on > today:
        errors["paid_on"] = gettext(lang, "La fecha del pago no puede ser posterior a hoy.")
    elif paid_on < today - dt.timedelta(days=MAX_AGE_DAYS):
        errors["paid_on"] = gettext(
            lang,
            "Solo puede informar pagos de los últimos 90 días. Para pagos anteriores, contáctenos.",
        )
    amount = 0
    if account is not None:
        try:
            amount = parse_money(form.amount, account["currency"], language=lang)
        except ValidationFailed as exc:
            errors["amount"] = str(exc)
        else:
            if amount <= 0:
                errors["amount"] = gettext(lang, "El importe debe ser mayor que cero.")
    if form.method not in METHODS:
        errors["method"] = gettext(lang, "Elija cómo pagó.")
    reference = " ".join(form.reference.split())
    if len(reference) > _MAX_REFERENCE:
        errors["reference"] = gettext(lang, "La referencia puede tener como máximo 200 caracteres.")
    invoice_ids: list[int] = []
    if form.invoice_ids:
        wanted = [int(i) for i in form.invoice_ids if i.isdigit() and 0 < int(i) <= _MAX_ID]
        open_ids = (
            {i["id"] for i in await open_invoices([account["account_id"]])} if account else set()
        )
        if len(wanted) != len(form.invoice_ids) or any(i not in open_ids for i in wanted):
            errors["invoice_ids"] = gettext(
                lang, "Elija solo facturas pendientes de la cuenta indicada."
            )
        invoice_ids = list(dict.fromkeys(wanted))
    if receipt is not None:
        try:
            uploads.check_upload(receipt.data, language=lang)
        except uploads.UploadRejected as exc:
            errors["receipt"] = str(exc)
    if errors:
        ordered: dict[str, str] = {name: errors[name] for name in _FIELDS if name in errors}
        raise InvalidClaim(
            ClaimForm(
                account=form.account,
                paid_on=form.paid_on,
                amount=form.amount,
                method=form.method,
                reference=form.reference,
                invoice_ids=form.invoice_ids,
                errors=ordered,
            )
        )
    assert account is not None and paid_on is not None
    values = {
        "amount": amount,
        "paid_on": paid_on,
        "method": form.method,
        "reference": reference,
        "invoice_ids": invoice_ids,
        "pause_until": today + dt.timedelta(days=int(account["claim_pause_days"])),
    }
    return values, account, lang


_METHOD_NOTES: Final = {
    "transferencia": "transferencia",
    "deposito": "depósito",
    "efectivo": "efectivo en sucursal",
    "otro": "otro medio",
}


async def ensure_claim_task(
    claim_id: int,
    *,
    account_id: int,
    title: str,
    due_on: dt.date | None,
    data: Mapping[str, Any],
) -> int | None:
    """Finance's task to match the claim; returns its id, or None when it already exists."""
    rows = await PaymentClaim.raw(
        """INSERT INTO task (account, kind, title, due_on, status, data, dedupe_key, created_at)
           VALUES ({}, {}, {}, {}, 'open', {}::jsonb, {}, now())
           ON CONFLICT (dedupe_key) DO NOTHING
           RETURNING id""",
        account_id,
        TASK_KIND,
        title,
        due_on,
        json.dumps(dict(data), default=str),
        f"claim:{claim_id}",
    )
    return int(rows[0]["id"]) if rows else None


async def submit_claim(
    debtor_ids: Sequence[int],
    form: ClaimForm,
    receipt: Receipt | None,
    *,
    data_dir: Path,
    now: dt.datetime,
    language: str | None = None,
) -> int:
    """Check and store a "ya pagué" report; returns the claim id.

    Raises `InvalidClaim` (nothing stored) with a message per wrong field: the account must be
    the debtor's; the date a real one, not after today and at most `MAX_AGE_DAYS` ago (in the
    debtor's time zone); the amount positive in the account's currency; the method one of
    `METHODS`; the invoices open invoices of that account; the receipt, when sent, a PDF, JPEG
    or PNG of at most 5 MB judged by its content.
    """
    values, account, lang = await _check(debtor_ids, form, receipt, language, now)
    fmt = _fmt("es", account["country"], account["currency"])
    amount_text = fmt.money(values["amount"]).text
    method_text = _METHOD_NOTES[values["method"]]
    paid_on_text = fmt.date(values["paid_on"])
    async with DB.transaction():
        attachment_id = (
            await uploads.store_upload(
                receipt.data, receipt.filename, data_dir=data_dir, language=lang
            )
            if receipt is not None
            else None
        )
        rows = await PaymentClaim.insert(
            PaymentClaim(
                account=account["account_id"],
                amount=values["amount"],
                paid_on=values["paid_on"],
                method=values["method"],
                reference=values["reference"],
                invoice_ids=json.dumps(values["invoice_ids"]),
                attachment=attachment_id,
                status="open",
                pause_until=values["pause_until"],
                created_at=now,
            )
        ).returning(PaymentClaim.id)
        claim_id = int(rows[0]["id"])
        details = {
            "claim_id": claim_id,
            "amount": values["amount"],
            "currency": account["currency"],
            "paid_on": values["paid_on"].isoformat(),
            "method": values["method"],
            "reference": values["reference"],
            "invoice_ids": values["invoice_ids"],
            "attachment_id": attachment_id,
            "pause_until": values["pause_until"].isoformat(),
        }
        reference = f" (ref. {values['reference']})" if values["reference"] else ""
        await ensure_claim_task(
            claim_id,
            account_id=account["account_id"],
            title=(
                f"Conciliar pago informado: {amount_text} por {method_text} "
                f"del {paid_on_text}{reference}"
            ),
            due_on=values["pause_until"],
            data=details,
        )
        await Interaction.insert(
            Interaction(
                account=account["account_id"],
                debtor=account["debtor_id"],
                kind=INTERACTION_KIND,
                channel="portal",
                direction="inbound",
                summary=(
                    f"Informó un pago de {amount_text} por {method_text} del {paid_on_text}"
                    f"{reference}{' con comprobante' if attachment_id else ''}"
                ),
                data=details,
                occurred_at=now,
            )
        )
    return claim_id


async def _claim_row(debtor_ids: Sequence[int], claim_id: int) -> dict[str, Any] | None:
    ids = _ids(debtor_ids)
    if not ids or not 0 < claim_id <= _MAX_ID:
        return None
    rows = await PaymentClaim.raw(
        """SELECT pc.id, pc.account, pc.amount, pc.paid_on, pc.method, pc.reference,
                  pc.invoice_ids, pc.attachment, pc.status, pc.pause_until,
                  a.currency, c.name AS creditor_name, d.country, d.language,
                  att.filename AS receipt_filename
           FROM payment_claim pc
           JOIN account a ON a.id = pc.account
           JOIN creditor c ON c.id = a.creditor
           JOIN debtor d ON d.id = a.debtor
           LEFT JOIN attachment att ON att.id = pc.attachment
           WHERE pc.id = {} AND a.debtor = ANY({}::int[])""",
        claim_id,
        ids,
    )
    return rows[0] if rows else None


async def claim_view(
    debtor_ids: Sequence[int], claim_id: int, *, language: str | None = None
) -> ClaimView:
    """One claim of the signed-in debtors (`NotFound` for anyone else's)."""
    row = await _claim_row(debtor_ids, claim_id)
    lang = resolve_language(language, row["language"] if row else None)
    if row is None:
        raise NotFound(gettext(lang, "No encontramos ese aviso de pago."))
    fmt = _fmt(lang, row["country"], row["currency"])
    invoice_ids = row["invoice_ids"]
    if isinstance(invoice_ids, str):
        invoice_ids = json.loads(invoice_ids or "[]")
    numbers: tuple[str, ...] = ()
    if invoice_ids:
        found = await PaymentClaim.raw(
            "SELECT id, number FROM invoice WHERE id = ANY({}::int[]) AND account = {}",
            list(invoice_ids),
            row["account"],
        )
        by_id = {r["id"]: r["number"] for r in found}
        numbers = tuple(by_id[i] for i in invoice_ids if i in by_id)
    return ClaimView(
        id=row["id"],
        account_id=row["account"],
        creditor_name=row["creditor_name"],
        language=lang,
        amount=fmt.money(int(row["amount"])).text,
        paid_on=fmt.date(row["paid_on"]),
        method=row["method"],
        reference=row["reference"],
        invoice_numbers=numbers,
        pause_until=fmt.date(row["pause_until"]) if row["pause_until"] else None,
        status=row["status"],
        receipt_filename=row["receipt_filename"],
    )


async def claim_receipt(
    debtor_ids: Sequence[int], claim_id: int, *, data_dir: Path, language: str | None = None
) -> uploads.StoredFile:
    """The receipt of one of the debtor's claims (`NotFound` for anyone else's, or none)."""
    row = await _claim_row(debtor_ids, claim_id)
    lang = resolve_language(language, row["language"] if row else None)
    if row is None or row["attachment"] is None:
        raise NotFound(gettext(lang, "No encontramos ese comprobante."))
    return await uploads.read_upload(int(row["attachment"]), data_dir=data_dir)
