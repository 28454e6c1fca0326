"""The rules of disputes that need no database: reasons and their SLA, statuses and outcomes,
the labels the debtor and staff read, what may be disputed on an invoice and for how much, and
how an amount typed in a form is read.

What an invoice offers (`OpenInvoice`) is read by `dispute_records.open_invoices`; the checks
here (`pick_item`, `check_amount`) run both on the portal form and, under the invoice's row
lock, when the dispute is opened.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Final, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.numbers import NumberFormatError, parse_decimal

from saldo import money
from saldo.errors import Conflict, ValidationFailed
from saldo.i18n import gettext
from saldo.services.statement import Formats

__all__ = [
    "CLOSED_STATUSES",
    "MAX_ID",
    "MAX_MESSAGE",
    "MAX_TEXT",
    "OPEN_STATUSES",
    "OUTCOMES",
    "REASON_CODES",
    "SLA_DAYS",
    "TASK_KIND",
    "Line",
    "OpenInvoice",
    "check_amount",
    "clean_ids",
    "is_closed",
    "parse_user_amount",
    "pick_item",
    "reason_label",
    "reasons",
    "resolution_key",
    "size_text",
    "status_label",
    "task_key",
    "valid_id",
    "zone",
]

#: Reason codes a debtor can choose, in the order the form lists them.
REASON_CODES: Final = (
    "not_received",
    "wrong_amount",
    "already_paid",
    "defective",
    "not_recognized",
    "duplicate",
    "other",
)
#: Calendar days staff have to answer, per reason: records settle "already paid" and
#: "duplicate" quickly; a defective product may need an inspection.
SLA_DAYS: Final[Mapping[str, int]] = {
    "not_received": 7,
    "wrong_amount": 7,
    "already_paid": 5,
    "defective": 10,
    "not_recognized": 7,
    "duplicate": 5,
    "other": 7,
}
OPEN_STATUSES: Final = ("open", "in_review", "waiting_debtor")
CLOSED_STATUSES: Final = ("accepted", "partially_accepted", "rejected", "resolved", "withdrawn")
#: resolve() outcomes and the status each leaves.
OUTCOMES: Final[Mapping[str, str]] = {
    "accept": "accepted",
    "partial": "partially_accepted",
    "reject": "rejected",
}
MAX_TEXT: Final = 2000
MAX_MESSAGE: Final = 4000
TASK_KIND: Final = "dispute"
#: The largest id a PostgreSQL `integer` column holds; larger ids cannot exist.
MAX_ID: Final = 2**31 - 1


def task_key(dispute_id: int) -> str:
    return f"dispute:{dispute_id}"


def resolution_key(dispute_id: int) -> str:
    """The idempotency key of the one credit note a dispute can produce."""
    return f"dispute:{dispute_id}:resolution"


def is_closed(status: str, resolved_at: dt.datetime | None) -> bool:
    return status in CLOSED_STATUSES or resolved_at is not None


# ---------------------------------------------------------------------------- small helpers


def clean_ids(debtor_ids: Sequence[int]) -> list[int]:
    return sorted({int(i) for i in debtor_ids if 0 < int(i) <= MAX_ID})


def valid_id(value: int) -> bool:
    return 0 < value <= MAX_ID


def zone(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def size_text(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{max(1, round(size / 1024))} KB"


# ---------------------------------------------------------------------------- labels


def reason_label(language: str, code: str) -> str:
    """The reason as the debtor reads it (an unknown code is shown as written)."""
    labels = {
        "not_received": gettext(language, "No recibí el producto o servicio"),
        "wrong_amount": gettext(language, "El importe es incorrecto"),
        "already_paid": gettext(language, "Ya lo pagué"),
        "defective": gettext(language, "Producto o servicio defectuoso"),
        "not_recognized": gettext(language, "No reconozco este cargo"),
        "duplicate": gettext(language, "Cargo duplicado"),
        "other": gettext(language, "Otro motivo"),
    }
    return labels.get(code, code.replace("_", " "))


def reasons(language: str) -> tuple[tuple[str, str], ...]:
    """(code, label) for every reason, in the form's order."""
    return tuple((code, reason_label(language, code)) for code in REASON_CODES)


def status_label(language: str, status: str) -> str:
    return {
        "open": gettext(language, "Abierto"),
        "in_review": gettext(language, "En revisión"),
        "waiting_debtor": gettext(language, "Esperando su respuesta"),
        "accepted": gettext(language, "Aceptado"),
        "partially_accepted": gettext(language, "Aceptado en parte"),
        "rejected": gettext(language, "Rechazado"),
        "withdrawn": gettext(language, "Retirado"),
        "resolved": gettext(language, "Resuelto"),
    }.get(status, gettext(language, "En revisión"))


# ---------------------------------------------------------------------------- amounts


def parse_user_amount(text: str, currency: str, locale: str) -> int:
    """An amount as a person types it, in minor units of `currency`.

    Accepts the locale's own notation ("1.234,56" in es_AR, "1,234.56" in en_US and es_MX), a
    plain number with one decimal separator ("1234.56" or "1234,56"), and a currency symbol or
    code around it. Raises `ValueError` for anything else, a negative amount, or more decimals
    than the currency has.
    """
    digits = re.search(r"\d.*\d|\d", text)
    if digits is None or "-" in text or len(text) > 40:
        raise ValueError(text)
    number = digits.group(0)
    if re.fullmatch(r"[\d.,]+", number) is None:
        raise ValueError(text)
    try:
        value = parse_decimal(number, locale=locale, strict=True)
    except NumberFormatError:
        if re.fullmatch(r"\d+([.,]\d+)?", number) is None:
            raise ValueError(text) from None
        value = Decimal(number.replace(",", "."))
    scaled = value.scaleb(money.exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValueError(text)
    return int(scaled)


# ---------------------------------------------------------------------------- what can be disputed

#: One line of an invoice: (id, description, total, under open dispute).
Line: TypeAlias = tuple[int, str, int, bool]


@dataclass(frozen=True, slots=True)
class OpenInvoice:
    """An invoice with something still owed, and what of it is already in dispute."""

    id: int
    account_id: int
    number: str
    currency: str
    creditor: str
    open: int
    disputed: int
    whole_disputed: bool  # an open dispute covers the whole invoice
    lines: tuple[Line, ...]

    @property
    def available(self) -> int:
        return max(0, self.open - self.disputed)


def pick_item(
    invoices: Sequence[OpenInvoice],
    account_id: int,
    invoice_id: int,
    line_id: int | None,
    language: str,
) -> tuple[OpenInvoice, Line | None]:
    """The invoice (and line) a dispute is about, if it may be disputed now.

    One open dispute per item: a whole-invoice dispute blocks any other on that invoice, a line
    dispute blocks the same line and the whole invoice (`Conflict`).
    """
    invoice = next((i for i in invoices if i.id == invoice_id), None)
    if invoice is None or invoice.account_id != account_id:
        raise ValidationFailed(
            gettext(language, "Elija una factura con saldo pendiente de la lista."), field="item"
        )
    line = None
    if line_id is not None:
        line = next((ln for ln in invoice.lines if ln[0] == line_id), None)
        if line is None:
            raise ValidationFailed(gettext(language, "Elija un ítem de la lista."), field="item")
    busy = (
        invoice.whole_disputed
        or (line is None and any(ln[3] for ln in invoice.lines))
        or (line is not None and line[3])
    )
    if busy:
        raise Conflict(
            gettext(
                language,
                "Ya hay un reclamo abierto sobre esta factura o este ítem. Puede seguirlo "
                "desde la lista de reclamos.",
            )
        )
    return invoice, line


def check_amount(
    invoice: OpenInvoice,
    line: Line | None,
    amount: int | None,
    language: str,
    locale: str,
) -> int:
    """The amount to dispute: the given one if it fits, else the default; raises on a bad one.

    The default is the line's total, or what is still undisputed on the invoice; never more
    than what is still undisputed of the invoice's open amount.
    """
    fmt = Formats(invoice.currency, locale)
    available = invoice.available
    if available <= 0:
        raise ValidationFailed(
            gettext(language, "Todo el saldo de esta factura ya está en reclamo."), field="item"
        )
    if amount is None:
        return min(line[2], available) if line is not None else available
    if amount <= 0:
        raise ValidationFailed(
            gettext(language, "Ingrese un importe mayor que cero."), field="amount"
        )
    if line is not None and amount > line[2]:
        raise ValidationFailed(
            gettext(language, "El importe no puede superar el total del ítem ({total}).").format(
                total=fmt.money(line[2])
            ),
            field="amount",
        )
    if amount > available:
        raise ValidationFailed(
            gettext(
                language,
                "El importe no puede superar {max}, el saldo de la factura que aún no está "
                "en reclamo.",
            ).format(max=fmt.money(available)),
            field="amount",
        )
    return amount
