"""The dispute forms as typed: reading them, checking every field, and the errors that carry the
values back to the page.

- The debtor's forms (open a dispute, reply) answer in the debtor's language: `InvalidDispute`
  holds a `DisputeForm` or `MessageForm` with a ready message per field.
- The staff forms (reply, resolve) hold a reason code per field (`StaffReplyForm`,
  `ResolutionForm` in `InvalidStaffForm`); the back-office templates word them in the staff
  user's language.

Nothing here reads or writes the database: the use cases in `disputes` and `dispute_staff` pass
in what a check needs (the debtor's open invoices, the dispute's currency).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from saldo import money
from saldo.errors import Conflict, SaldoError, ValidationFailed
from saldo.i18n import gettext
from saldo.services.dispute_rules import (
    MAX_MESSAGE,
    MAX_TEXT,
    OUTCOMES,
    REASON_CODES,
    OpenInvoice,
    check_amount,
    parse_user_amount,
    pick_item,
    valid_id,
)

__all__ = [
    "STAFF_LOCALE",
    "DisputeForm",
    "InvalidDispute",
    "InvalidStaffForm",
    "MessageForm",
    "ResolutionForm",
    "StaffReplyForm",
    "Upload",
    "check_dispute_form",
    "check_message",
    "check_resolution",
    "check_staff_reply",
    "parse_item",
    "read_dispute_form",
    "with_errors",
]

_ITEM = re.compile(r"(invoice|line):([1-9][0-9]{0,9})")
#: How staff type amounts: Spanish notation ("3.872,60"), or a plain "3872.60".
STAFF_LOCALE: Final = "es"


@dataclass(frozen=True, slots=True)
class Upload:
    """A file from a form: its name as the browser sent it and its bytes."""

    filename: str
    data: bytes


# ---------------------------------------------------------------------------- the debtor's forms


@dataclass(frozen=True, slots=True)
class DisputeForm:
    """What the "open a dispute" form shows: values as typed and a message per field."""

    item: str = ""
    amount: str = ""
    reason: str = ""
    text: str = ""
    errors: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MessageForm:
    body: str = ""
    errors: Mapping[str, str] = field(default_factory=dict)


class InvalidDispute(SaldoError):
    """The form has errors; `form` carries the values and a message per field."""

    status_code = 422
    title = "Invalid input"

    def __init__(self, form: DisputeForm | MessageForm) -> None:
        super().__init__("; ".join(form.errors.values()))
        self.form = form


def read_dispute_form(form: Mapping[str, str]) -> DisputeForm:
    return DisputeForm(
        item=str(form.get("item", "")).strip(),
        amount=str(form.get("amount", "")).strip(),
        reason=str(form.get("reason", "")).strip(),
        text=str(form.get("text", "")).strip(),
    )


def with_errors(values: DisputeForm, errors: Mapping[str, str]) -> DisputeForm:
    return DisputeForm(values.item, values.amount, values.reason, values.text, dict(errors))


def parse_item(value: str) -> tuple[str, int] | None:
    """("invoice" | "line", id) from the item select's value, else None."""
    match = _ITEM.fullmatch(value.strip())
    if match is None or not valid_id(int(match.group(2))):
        return None
    return match.group(1), int(match.group(2))


def check_dispute_form(
    values: DisputeForm, invoices: Sequence[OpenInvoice], language: str, locale: str
) -> tuple[OpenInvoice, int | None, int | None]:
    """(invoice, line id, amount or None for the default) of a valid "open a dispute" form.

    Fields: `item` ("invoice:<id>" or "line:<id>", one of the debtor's `invoices`), `amount`
    (empty for the default, else in the debtor's notation), `reason` (a code), `text`.
    Raises `InvalidDispute` with a message per wrong field.
    """
    errors: dict[str, str] = {}
    item = parse_item(values.item)
    invoice: OpenInvoice | None = None
    line_id: int | None = None
    if item is None:
        errors["item"] = gettext(language, "Elija qué factura o ítem reclama.")
    else:
        kind, number = item
        if kind == "invoice":
            invoice = next((i for i in invoices if i.id == number), None)
        else:
            invoice = next((i for i in invoices if any(ln[0] == number for ln in i.lines)), None)
            line_id = number
        if invoice is None:
            errors["item"] = gettext(language, "Elija una factura con saldo pendiente de la lista.")
    if values.reason not in REASON_CODES:
        errors["reason"] = gettext(language, "Elija un motivo de la lista.")
    elif values.reason == "other" and not values.text:
        errors["text"] = gettext(language, "Cuéntenos el motivo del reclamo.")
    if len(values.text) > MAX_TEXT:
        errors["text"] = gettext(language, "Escriba como máximo 2000 caracteres.")
    amount: int | None = None
    if values.amount:
        try:
            amount = parse_user_amount(
                values.amount, invoice.currency if invoice else "ARS", locale
            )
        except (ValueError, money.UnknownCurrency):
            errors["amount"] = gettext(
                language, "Escriba un importe válido, por ejemplo 1500 o 1500,50."
            )
    if invoice is not None and "item" not in errors and "amount" not in errors:
        line = next((ln for ln in invoice.lines if ln[0] == line_id), None)
        try:
            pick_item(invoices, invoice.account_id, invoice.id, line_id, language)
            check_amount(invoice, line, amount, language, locale)
        except ValidationFailed as failed:
            errors[failed.field or "item"] = str(failed)
        except Conflict as conflict:
            errors["item"] = str(conflict)
    if errors:
        raise InvalidDispute(with_errors(values, errors))
    assert invoice is not None
    return invoice, line_id, amount


def check_message(body: str, *, has_file: bool, language: str) -> str:
    """The reply's text, stripped; `InvalidDispute` when it is empty (and no file) or too long."""
    text = body.strip()
    if not text and not has_file:
        raise InvalidDispute(MessageForm(text, {"body": gettext(language, "Escriba su mensaje.")}))
    if len(text) > MAX_MESSAGE:
        raise InvalidDispute(
            MessageForm(text, {"body": gettext(language, "Escriba como máximo 4000 caracteres.")})
        )
    return text


# ---------------------------------------------------------------------------- the staff forms


@dataclass(frozen=True, slots=True)
class StaffReplyForm:
    """A staff reply as typed; `errors` maps a field (body, attachment) to a reason code:
    body: "required" | "too_long" | "closed"; attachment: "empty" | "too_large" | "type"."""

    body: str = ""
    errors: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ResolutionForm:
    """The resolution form as typed; `errors` maps a field to a reason code:
    outcome: "choose" | "closed"; amount: "invalid" | "range"; explanation: "required" |
    "too_long"."""

    outcome: str = ""
    amount: str = ""
    explanation: str = ""
    errors: Mapping[str, str] = field(default_factory=dict)


class InvalidStaffForm(SaldoError):
    """A staff form has errors; `form` carries the values and a reason code per field."""

    status_code = 422
    title = "Invalid input"

    def __init__(self, form: StaffReplyForm | ResolutionForm) -> None:
        super().__init__(", ".join(f"{k}: {v}" for k, v in form.errors.items()))
        self.form = form


def check_staff_reply(form: StaffReplyForm, *, has_file: bool) -> str:
    text = form.body.strip()
    if not text and not has_file:
        raise InvalidStaffForm(StaffReplyForm(text, {"body": "required"}))
    if len(text) > MAX_MESSAGE:
        raise InvalidStaffForm(StaffReplyForm(text, {"body": "too_long"}))
    return text


def check_resolution(form: ResolutionForm, currency: str) -> tuple[str, int | None, str]:
    """(outcome, amount for a partial acceptance, explanation) of a resolution form.

    A rejection and a partial acceptance need an explanation for the debtor. The amount is
    read only for a partial acceptance; whether it fits the dispute is `resolve`'s check.
    """
    errors: dict[str, str] = {}
    outcome = form.outcome.strip()
    explanation = form.explanation.strip()
    amount: int | None = None
    if outcome not in OUTCOMES:
        errors["outcome"] = "choose"
    if outcome == "partial":
        try:
            amount = parse_user_amount(form.amount, currency, STAFF_LOCALE)
        except (ValueError, money.UnknownCurrency):
            errors["amount"] = "invalid"
        else:
            if amount <= 0:
                errors["amount"] = "range"
    if outcome in {"reject", "partial"} and not explanation:
        errors["explanation"] = "required"
    if len(explanation) > MAX_MESSAGE:
        errors["explanation"] = "too_long"
    if errors:
        raise InvalidStaffForm(ResolutionForm(form.outcome, form.amount, form.explanation, errors))
    return outcome, amount, explanation
