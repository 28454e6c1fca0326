"""Disputes ("reclamos"): a debtor questions an invoice, one of its lines or part of an amount.

Life of a dispute:

- `open_dispute()` (the portal's form goes through `submit_dispute()`): the item must be one of
  the signed-in debtors' invoices (or a line of it); the amount defaults to the line's total or
  to what is still undisputed on the invoice, and can never exceed what is still undisputed
  of the invoice's open amount. One open dispute per item: a whole-invoice dispute blocks any
  other on that invoice, a line dispute blocks the same line and the whole invoice. The check
  runs under a row lock on the invoice, so two submissions cannot both pass it. The SLA target
  is `SLA_DAYS[reason]` calendar days after opening. Opening writes an `Interaction` and a staff
  `Task` (kind "dispute", unique `dedupe_key` "dispute:<id>").
- `post_message()`: debtor or staff add to the thread (text and/or one attachment). A staff
  message sets the status to "waiting_debtor"; the debtor's answer sets it back to "in_review".
- `resolve()` (staff): accept (credit the whole disputed amount), partial (credit part of it) or
  reject (credit nothing, explanation required). Accepting posts ONE `credit_note` ledger entry
  on the invoice with the idempotency key "dispute:<id>:resolution"; the dispute row is locked
  first, so a second resolution — even a concurrent one — gets `Conflict`. The debtor's thread
  gets the outcome as a message, the task is closed and an `AuditEvent` is written.

While a dispute is open, only its amount stops being collected: `disputed_amounts()` is what the
dunning engine and payment plans leave out, never more than the invoice's open amount.

Statuses: open, in_review, waiting_debtor (open ones, as `statement` labels them) and accepted,
partially_accepted, rejected (closed, with `resolved_at`).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.numbers import NumberFormatError, parse_decimal

from saldo import money
from saldo.db import DB
from saldo.errors import Conflict, NotFound, SaldoError, ValidationFailed
from saldo.i18n import gettext
from saldo.services import audit
from saldo.services.ledger import post_entry
from saldo.services.statement import Amount, Formats, display_locale, resolve_language
from saldo.services.uploads import MAX_UPLOAD_BYTES, StoredFile, UploadRejected, read_upload
from saldo.services.uploads import store_upload as _store_upload
from saldo.tables import Dispute, DisputeMessage, EntryKind, Interaction

__all__ = [
    "CLOSED_STATUSES",
    "OPEN_STATUSES",
    "OUTCOMES",
    "REASON_CODES",
    "SLA_DAYS",
    "AttachmentView",
    "DisputeDetail",
    "DisputeForm",
    "DisputePage",
    "DisputeSummary",
    "InvalidDispute",
    "InvoiceChoice",
    "ItemChoice",
    "MessageForm",
    "MessageView",
    "Upload",
    "dispute_attachment",
    "dispute_detail",
    "dispute_page",
    "disputed_amounts",
    "open_dispute",
    "parse_user_amount",
    "post_message",
    "reason_label",
    "reasons",
    "submit_dispute",
    "submit_message",
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
_MAX_ID: Final = 2**31 - 1
_ITEM = re.compile(r"(invoice|line):([1-9][0-9]{0,9})")


def task_key(dispute_id: int) -> str:
    return f"dispute:{dispute_id}"


def resolution_key(dispute_id: int) -> str:
    """The idempotency key of the one credit note a dispute can produce."""
    return f"dispute:{dispute_id}:resolution"


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
    """An amount as a debtor types it, in minor units of `currency`.

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


# ---------------------------------------------------------------------------- errors and forms


@dataclass(frozen=True, slots=True)
class Upload:
    """A file from a form: its name as the browser sent it and its bytes."""

    filename: str
    data: bytes


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


# ---------------------------------------------------------------------------- view models


@dataclass(frozen=True, slots=True)
class ItemChoice:
    """One option of the form's select: a whole invoice or one of its lines."""

    value: str  # "invoice:<id>" or "line:<id>"
    label: str
    amount: Amount  # the most that can be disputed on it


@dataclass(frozen=True, slots=True)
class InvoiceChoice:
    id: int
    number: str
    creditor: str
    currency: str
    open: Amount
    available: Amount  # open minus what is already in dispute
    items: tuple[ItemChoice, ...]


@dataclass(frozen=True, slots=True)
class AttachmentView:
    id: int
    filename: str
    size: str  # "240 KB"
    content_type: str


@dataclass(frozen=True, slots=True)
class MessageView:
    id: int
    author_kind: str  # debtor | staff
    author: str  # "Usted" / the creditor's name
    body: str
    when: str
    attachment: AttachmentView | None


@dataclass(frozen=True, slots=True)
class DisputeSummary:
    id: int
    account_id: int
    invoice_id: int | None
    invoice_number: str
    line_description: str
    creditor: str
    amount: Amount
    reason_code: str
    reason: str  # the label
    reason_text: str
    status: str
    status_label: str
    closed: bool
    opened: str
    answer_by: str | None  # the SLA date, while open
    resolved: str | None
    resolved_amount: Amount | None
    resolution: str


@dataclass(frozen=True, slots=True)
class DisputePage:
    debtor_name: str
    language: str
    locale: str
    open: tuple[DisputeSummary, ...]
    closed: tuple[DisputeSummary, ...]
    invoices: tuple[InvoiceChoice, ...]
    reasons: tuple[tuple[str, str], ...]
    form: DisputeForm
    max_upload_mb: int

    @property
    def can_open(self) -> bool:
        return bool(self.invoices)


@dataclass(frozen=True, slots=True)
class DisputeDetail:
    dispute: DisputeSummary
    messages: tuple[MessageView, ...]
    language: str
    locale: str
    credit: Amount | None  # the credit note the resolution posted
    credit_date: str | None
    invoice_open: Amount | None  # what the invoice owes now
    form: MessageForm
    max_upload_mb: int


# ---------------------------------------------------------------------------- shared reads


def _ids(debtor_ids: Sequence[int]) -> list[int]:
    return sorted({int(i) for i in debtor_ids if 0 < int(i) <= _MAX_ID})


def _valid_id(value: int) -> bool:
    return 0 < value <= _MAX_ID


def _zone(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def _size_text(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB"
    return f"{max(1, round(size / 1024))} KB"


async def _debtor_rows(ids: list[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    return await Dispute.raw(
        """SELECT id, name, language, country, timezone FROM debtor
           WHERE id = ANY({}::int[]) ORDER BY id""",
        ids,
    )


CLOSED_SQL: Final = "ARRAY['accepted','partially_accepted','rejected','resolved','withdrawn']"

DISPUTE_COLUMNS: Final = """
    d.id, d.account, d.invoice, d.invoice_line, d.amount, d.reason_code, d.reason_text,
    d.status, d.resolution, d.resolved_amount, d.sla_due_at, d.created_at, d.resolved_at,
    coalesce(i.number, '') AS invoice_number, coalesce(l.description, '') AS line_description,
    a.currency, a.debtor AS debtor_id, c.name AS creditor, db.name AS debtor_name,
    db.language AS debtor_language, db.country AS debtor_country, db.timezone AS debtor_timezone
"""
DISPUTE_FROM: Final = """
    FROM dispute d JOIN account a ON a.id = d.account
    JOIN creditor c ON c.id = a.creditor
    JOIN debtor db ON db.id = a.debtor
    LEFT JOIN invoice i ON i.id = d.invoice
    LEFT JOIN invoice_line l ON l.id = d.invoice_line
"""


async def _disputes_of(ids: list[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    return await Dispute.raw(
        f"""SELECT {DISPUTE_COLUMNS} {DISPUTE_FROM}
            WHERE a.debtor = ANY({{}}::int[])
            ORDER BY d.created_at DESC, d.id DESC""",
        ids,
    )


async def _dispute_of(ids: list[int], dispute_id: int) -> dict[str, Any] | None:
    if not ids or not _valid_id(dispute_id):
        return None
    rows = await Dispute.raw(
        f"""SELECT {DISPUTE_COLUMNS} {DISPUTE_FROM}
            WHERE d.id = {{}} AND a.debtor = ANY({{}}::int[])""",
        dispute_id,
        ids,
    )
    return rows[0] if rows else None


def _summary(row: Mapping[str, Any], language: str, fmt: Formats) -> DisputeSummary:
    zone = _zone(row["debtor_timezone"])
    status = str(row["status"])
    closed = status in CLOSED_STATUSES or row["resolved_at"] is not None
    sla: dt.datetime | None = row["sla_due_at"]
    resolved_at: dt.datetime | None = row["resolved_at"]
    resolved_amount = row["resolved_amount"]
    return DisputeSummary(
        id=row["id"],
        account_id=row["account"],
        invoice_id=row["invoice"],
        invoice_number=row["invoice_number"],
        line_description=row["line_description"],
        creditor=row["creditor"],
        amount=fmt.money(int(row["amount"])),
        reason_code=row["reason_code"],
        reason=reason_label(language, str(row["reason_code"])),
        reason_text=row["reason_text"] or "",
        status=status,
        status_label=status_label(language, status),
        closed=closed,
        opened=fmt.date(row["created_at"].astimezone(zone).date()),
        answer_by=fmt.date(sla.astimezone(zone).date()) if sla and not closed else None,
        resolved=fmt.date(resolved_at.astimezone(zone).date()) if resolved_at else None,
        resolved_amount=fmt.money(int(resolved_amount)) if resolved_amount is not None else None,
        resolution=row["resolution"] or "",
    )


# ---------------------------------------------------------------------------- the form's choices


@dataclass(frozen=True, slots=True)
class _Invoice:
    id: int
    account_id: int
    number: str
    currency: str
    creditor: str
    open: int
    disputed: int
    whole_disputed: bool  # an open dispute covers the whole invoice
    lines: tuple[tuple[int, str, int, bool], ...]  # (id, description, total, disputed)

    @property
    def available(self) -> int:
        return max(0, self.open - self.disputed)


async def _open_invoices(ids: list[int], *, invoice_id: int | None = None) -> list[_Invoice]:
    """The debtors' invoices with something still owed, with what is already disputed."""
    if not ids:
        return []
    only = "AND i.id = {}" if invoice_id is not None else ""
    rows = await Dispute.raw(
        f"""WITH owed AS (
                SELECT e.invoice, sum(e.amount)::bigint AS open
                FROM ledger_entry e JOIN invoice i ON i.id = e.invoice
                JOIN account a ON a.id = i.account
                WHERE a.debtor = ANY({{}}::int[]) {only}
                GROUP BY e.invoice
            )
            SELECT i.id, i.account, i.number, a.currency, c.name AS creditor, o.open
            FROM owed o JOIN invoice i ON i.id = o.invoice
            JOIN account a ON a.id = i.account JOIN creditor c ON c.id = a.creditor
            WHERE o.open > 0
            ORDER BY c.name, i.due_date, i.id""",
        ids,
        *([invoice_id] if invoice_id is not None else []),
    )
    if not rows:
        return []
    invoice_ids = [r["id"] for r in rows]
    lines = await Dispute.raw(
        """SELECT id, invoice, description, total FROM invoice_line
           WHERE invoice = ANY({}::int[]) ORDER BY invoice, position""",
        invoice_ids,
    )
    disputes = await Dispute.raw(
        f"""SELECT invoice, invoice_line, amount FROM dispute
            WHERE invoice = ANY({{}}::int[]) AND resolved_at IS NULL
              AND status <> ALL({CLOSED_SQL})""",
        invoice_ids,
    )
    disputed: dict[int, int] = {}
    whole: set[int] = set()
    disputed_lines: set[int] = set()
    for d in disputes:
        disputed[d["invoice"]] = disputed.get(d["invoice"], 0) + int(d["amount"])
        if d["invoice_line"] is None:
            whole.add(d["invoice"])
        else:
            disputed_lines.add(d["invoice_line"])
    by_invoice: dict[int, list[tuple[int, str, int, bool]]] = {}
    for line in lines:
        by_invoice.setdefault(line["invoice"], []).append(
            (line["id"], line["description"], int(line["total"]), line["id"] in disputed_lines)
        )
    return [
        _Invoice(
            id=r["id"],
            account_id=r["account"],
            number=r["number"],
            currency=r["currency"],
            creditor=r["creditor"],
            open=int(r["open"]),
            disputed=disputed.get(r["id"], 0),
            whole_disputed=r["id"] in whole,
            lines=tuple(by_invoice.get(r["id"], [])),
        )
        for r in rows
    ]


def _choices(invoices: Sequence[_Invoice], language: str, locale: str) -> list[InvoiceChoice]:
    result: list[InvoiceChoice] = []
    for inv in invoices:
        if inv.available <= 0 or inv.whole_disputed:
            continue
        fmt = Formats(inv.currency, locale)
        any_line_disputed = any(line[3] for line in inv.lines)
        items: list[ItemChoice] = []
        if not any_line_disputed:
            items.append(
                ItemChoice(
                    f"invoice:{inv.id}",
                    gettext(language, "Toda la factura {number}").format(number=inv.number),
                    fmt.money(inv.available),
                )
            )
        for line_id, description, total, line_disputed in inv.lines:
            if line_disputed or total <= 0:
                continue
            items.append(
                ItemChoice(f"line:{line_id}", description, fmt.money(min(total, inv.available)))
            )
        if items:
            result.append(
                InvoiceChoice(
                    id=inv.id,
                    number=inv.number,
                    creditor=inv.creditor,
                    currency=inv.currency,
                    open=fmt.money(inv.open),
                    available=fmt.money(inv.available),
                    items=tuple(items),
                )
            )
    return result


# ---------------------------------------------------------------------------- debtor: pages


async def _context(ids: list[int], language: str | None) -> tuple[dict[str, Any] | None, str, str]:
    debtors = await _debtor_rows(ids)
    primary = debtors[0] if debtors else None
    lang = resolve_language(language, primary["language"] if primary else None)
    locale = display_locale(lang, primary["country"] if primary else "")
    return primary, lang, locale


async def dispute_page(
    debtor_ids: Sequence[int],
    *,
    language: str | None = None,
    form: DisputeForm | None = None,
    invoice_id: int | None = None,
) -> DisputePage:
    """The debtor's open and past disputes and what the form can offer.

    `invoice_id` preselects that invoice's whole-invoice item (the invoice page links here).
    """
    ids = _ids(debtor_ids)
    primary, lang, locale = await _context(ids, language)
    rows = await _disputes_of(ids)
    summaries = [
        _summary(r, lang, Formats(r["currency"], display_locale(lang, r["debtor_country"])))
        for r in rows
    ]
    invoices = _choices(await _open_invoices(ids), lang, locale)
    if form is None:
        item = ""
        if invoice_id is not None:
            wanted = f"invoice:{invoice_id}"
            for inv in invoices:
                if inv.id == invoice_id:
                    values = [i.value for i in inv.items]
                    item = wanted if wanted in values else values[0]
        form = DisputeForm(item=item)
    return DisputePage(
        debtor_name=primary["name"] if primary else "",
        language=lang,
        locale=locale,
        open=tuple(s for s in summaries if not s.closed),
        closed=tuple(s for s in summaries if s.closed),
        invoices=tuple(invoices),
        reasons=reasons(lang),
        form=form,
        max_upload_mb=MAX_UPLOAD_BYTES // (1024 * 1024),
    )


async def dispute_detail(
    debtor_ids: Sequence[int],
    dispute_id: int,
    *,
    language: str | None = None,
    form: MessageForm | None = None,
) -> DisputeDetail:
    """One dispute of the signed-in debtors with its thread; `NotFound` for anyone else's."""
    ids = _ids(debtor_ids)
    row = await _dispute_of(ids, dispute_id)
    lang = resolve_language(language, row["debtor_language"] if row else None)
    if row is None:
        raise NotFound(gettext(lang, "No encontramos ese reclamo."))
    fmt = Formats(row["currency"], display_locale(lang, row["debtor_country"]))
    summary = _summary(row, lang, fmt)
    messages = await thread_messages(dispute_id, lang, fmt, row["debtor_timezone"], row["creditor"])
    credit = await Dispute.raw(
        "SELECT amount, effective_date FROM ledger_entry WHERE idempotency_key = {}",
        resolution_key(dispute_id),
    )
    invoice_open = None
    if row["invoice"] is not None:
        owed = await Dispute.raw(
            "SELECT coalesce(sum(amount), 0)::bigint AS open FROM ledger_entry WHERE invoice = {}",
            row["invoice"],
        )
        invoice_open = fmt.money(int(owed[0]["open"]))
    return DisputeDetail(
        dispute=summary,
        messages=messages,
        language=lang,
        locale=fmt.locale,
        credit=fmt.money(-int(credit[0]["amount"])) if credit else None,
        credit_date=fmt.date(credit[0]["effective_date"]) if credit else None,
        invoice_open=invoice_open,
        form=form or MessageForm(),
        max_upload_mb=MAX_UPLOAD_BYTES // (1024 * 1024),
    )


async def thread_messages(
    dispute_id: int, language: str, fmt: Formats, timezone: str, creditor: str
) -> tuple[MessageView, ...]:
    rows = await Dispute.raw(
        """SELECT m.id, m.author_kind, m.body, m.created_at, m.attachment,
                  a.filename, a.size, a.content_type
           FROM dispute_message m LEFT JOIN attachment a ON a.id = m.attachment
           WHERE m.dispute = {} ORDER BY m.created_at, m.id""",
        dispute_id,
    )
    zone = _zone(timezone)
    you = gettext(language, "Usted")
    views = []
    for r in rows:
        local = r["created_at"].astimezone(zone)
        views.append(
            MessageView(
                id=r["id"],
                author_kind=r["author_kind"],
                author=you if r["author_kind"] == "debtor" else creditor,
                body=r["body"] or "",
                when=f"{fmt.date(local.date())} {local:%H:%M}",
                attachment=AttachmentView(
                    r["attachment"], r["filename"], _size_text(int(r["size"])), r["content_type"]
                )
                if r["attachment"] is not None
                else None,
            )
        )
    return tuple(views)


async def dispute_attachment(
    debtor_ids: Sequence[int], dispute_id: int, attachment_id: int, *, data_dir: Path
) -> StoredFile:
    """A file of one of the debtor's disputes; `NotFound` unless it belongs to that dispute."""
    ids = _ids(debtor_ids)
    if not ids or not _valid_id(dispute_id) or not _valid_id(attachment_id):
        raise NotFound("attachment not found")
    rows = await Dispute.raw(
        """SELECT 1 FROM dispute_message m JOIN dispute d ON d.id = m.dispute
           JOIN account a ON a.id = d.account
           WHERE m.dispute = {} AND m.attachment = {} AND a.debtor = ANY({}::int[])
           LIMIT 1""",
        dispute_id,
        attachment_id,
        ids,
    )
    if not rows:
        raise NotFound("attachment not found")
    return await read_upload(attachment_id, data_dir=data_dir)


# ---------------------------------------------------------------------------- debtor: opening


def _check_amount(
    invoice: _Invoice,
    line: tuple[int, str, int, bool] | None,
    amount: int | None,
    language: str,
    locale: str,
) -> int:
    """The amount to dispute: the given one if it fits, else the default; raises on a bad one."""
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


def _pick(
    invoices: Sequence[_Invoice],
    account_id: int,
    invoice_id: int,
    line_id: int | None,
    language: str,
) -> tuple[_Invoice, tuple[int, str, int, bool] | None]:
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


async def _claim_attachments(attachment_ids: Sequence[int], language: str) -> list[int]:
    """Lock the given attachments and check none is linked to anything yet."""
    wanted = sorted({int(a) for a in attachment_ids})
    if not wanted:
        return []
    rows = await Dispute.raw(
        """SELECT a.id FROM attachment a
           WHERE a.id = ANY({}::int[])
             AND NOT EXISTS (SELECT 1 FROM dispute_message m WHERE m.attachment = a.id)
             AND NOT EXISTS (SELECT 1 FROM payment_claim p WHERE p.attachment = a.id)
           FOR UPDATE OF a""",
        [a for a in wanted if _valid_id(a)],
    )
    if len(rows) != len(wanted):
        raise ValidationFailed(
            gettext(language, "No pudimos usar el archivo adjunto; vuelva a adjuntarlo."),
            field="attachment",
        )
    return [int(a) for a in attachment_ids if int(a) in wanted]


async def open_dispute(
    debtor_ids: Sequence[int],
    *,
    account_id: int,
    invoice_id: int,
    line_id: int | None = None,
    amount: int | None = None,
    reason_code: str,
    reason_text: str = "",
    attachment_ids: Sequence[int] = (),
    now: dt.datetime,
    language: str = "es",
) -> int:
    """Open a dispute on one of the debtors' invoices (or a line of it); returns its id.

    Raises `ValidationFailed` (field item, amount, reason, text or attachment) for bad input and
    `Conflict` when the item already has an open dispute.
    """
    ids = _ids(debtor_ids)
    if reason_code not in REASON_CODES:
        raise ValidationFailed(gettext(language, "Elija un motivo de la lista."), field="reason")
    text = reason_text.strip()
    if len(text) > MAX_TEXT:
        raise ValidationFailed(
            gettext(language, "Escriba como máximo 2000 caracteres."), field="text"
        )
    if reason_code == "other" and not text:
        raise ValidationFailed(gettext(language, "Cuéntenos el motivo del reclamo."), field="text")
    if not ids or not _valid_id(invoice_id) or (line_id is not None and not _valid_id(line_id)):
        raise ValidationFailed(
            gettext(language, "Elija una factura con saldo pendiente de la lista."), field="item"
        )
    async with DB.transaction():
        locked = await Dispute.raw(
            """SELECT i.id, a.debtor FROM invoice i JOIN account a ON a.id = i.account
               WHERE i.id = {} AND a.id = {} AND a.debtor = ANY({}::int[])
               FOR UPDATE OF i""",
            invoice_id,
            account_id,
            ids,
        )
        if not locked:
            raise ValidationFailed(
                gettext(language, "Elija una factura con saldo pendiente de la lista."),
                field="item",
            )
        debtors = await _debtor_rows(ids)
        locale = display_locale(language, debtors[0]["country"] if debtors else "")
        invoices = await _open_invoices(ids, invoice_id=invoice_id)
        invoice, line = _pick(invoices, account_id, invoice_id, line_id, language)
        disputed = _check_amount(invoice, line, amount, language, locale)
        attachments = await _claim_attachments(attachment_ids, language)
        sla_due = now + dt.timedelta(days=SLA_DAYS[reason_code])
        inserted = await Dispute.insert(
            Dispute(
                account=account_id,
                invoice=invoice_id,
                invoice_line=line[0] if line else None,
                amount=disputed,
                reason_code=reason_code,
                reason_text=text,
                status="open",
                sla_due_at=sla_due,
                created_at=now,
            )
        ).returning(Dispute.id)
        dispute_id = int(inserted[0]["id"])
        bodies = [text] + [""] * (len(attachments) - 1) if attachments else ([text] if text else [])
        files: list[int | None] = list(attachments) or [None] * len(bodies)
        if bodies:
            await DisputeMessage.insert(
                *(
                    DisputeMessage(
                        dispute=dispute_id,
                        author_kind="debtor",
                        body=body,
                        attachment=file,
                        created_at=now,
                    )
                    for body, file in zip(bodies, files, strict=True)
                )
            )
        debtor_id = int(locked[0]["debtor"])
        what = f"factura {invoice.number}" + (f", ítem «{line[1]}»" if line else "")
        shown = money.format_money(disputed, invoice.currency, "es")
        await Interaction.insert(
            Interaction(
                account=account_id,
                debtor=debtor_id,
                kind="dispute_opened",
                channel="portal",
                direction="inbound",
                summary=f"Abrió el reclamo N.º {dispute_id} por {shown} ({what}): "
                f"{reason_label('es', reason_code)}",
                data={
                    "dispute": dispute_id,
                    "invoice": invoice_id,
                    "line": line[0] if line else None,
                    "amount": disputed,
                    "reason": reason_code,
                    "attachments": attachments,
                },
                occurred_at=now,
            )
        )
        await Dispute.raw(
            """INSERT INTO task (account, kind, title, due_on, status, assignee, data, dedupe_key,
                                 created_at, done_at)
               VALUES ({}, {}, {}, {}, 'open', NULL, {}::jsonb, {}, {}, NULL)
               ON CONFLICT (dedupe_key) DO NOTHING""",
            account_id,
            TASK_KIND,
            f"Revisar reclamo N.º {dispute_id}: {reason_label('es', reason_code)} ({what})",
            sla_due.date(),
            _json({"dispute": dispute_id, "invoice": invoice_id, "amount": disputed}),
            task_key(dispute_id),
            now,
        )
    return dispute_id


def _json(value: Mapping[str, Any]) -> str:
    return json.dumps(value)


def _parse_item(value: str) -> tuple[str, int] | None:
    match = _ITEM.fullmatch(value.strip())
    if match is None or not _valid_id(int(match.group(2))):
        return None
    return match.group(1), int(match.group(2))


async def submit_dispute(
    debtor_ids: Sequence[int],
    form: Mapping[str, str],
    *,
    upload: Upload | None,
    data_dir: Path,
    language: str | None,
    now: dt.datetime,
) -> int:
    """The portal form: check the fields, store the attachment, open the dispute.

    Fields: `item` ("invoice:<id>" or "line:<id>", one of the page's choices), `amount` (empty
    for the default, else in the debtor's notation), `reason` (a code), `text`. Raises
    `InvalidDispute` with a message per field; nothing is stored then.
    """
    ids = _ids(debtor_ids)
    _primary, lang, locale = await _context(ids, language)
    values = DisputeForm(
        item=str(form.get("item", "")).strip(),
        amount=str(form.get("amount", "")).strip(),
        reason=str(form.get("reason", "")).strip(),
        text=str(form.get("text", "")).strip(),
    )
    errors: dict[str, str] = {}
    invoices = await _open_invoices(ids)
    item = _parse_item(values.item)
    invoice: _Invoice | None = None
    line_id: int | None = None
    if item is None:
        errors["item"] = gettext(lang, "Elija qué factura o ítem reclama.")
    else:
        kind, number = item
        if kind == "invoice":
            invoice = next((i for i in invoices if i.id == number), None)
        else:
            invoice = next((i for i in invoices if any(ln[0] == number for ln in i.lines)), None)
            line_id = number
        if invoice is None:
            errors["item"] = gettext(lang, "Elija una factura con saldo pendiente de la lista.")
    if values.reason not in REASON_CODES:
        errors["reason"] = gettext(lang, "Elija un motivo de la lista.")
    elif values.reason == "other" and not values.text:
        errors["text"] = gettext(lang, "Cuéntenos el motivo del reclamo.")
    if len(values.text) > MAX_TEXT:
        errors["text"] = gettext(lang, "Escriba como máximo 2000 caracteres.")
    amount: int | None = None
    if values.amount:
        try:
            amount = parse_user_amount(
                values.amount, invoice.currency if invoice else "ARS", locale
            )
        except (ValueError, money.UnknownCurrency):
            errors["amount"] = gettext(
                lang, "Escriba un importe válido, por ejemplo 1500 o 1500,50."
            )
    if invoice is not None and "item" not in errors and "amount" not in errors:
        line = next((ln for ln in invoice.lines if ln[0] == line_id), None)
        try:
            _pick(invoices, invoice.account_id, invoice.id, line_id, lang)
            _check_amount(invoice, line, amount, lang, locale)
        except ValidationFailed as failed:
            errors[failed.field or "item"] = str(failed)
        except Conflict as conflict:
            errors["item"] = str(conflict)
    if errors:
        raise InvalidDispute(_with_errors(values, errors))
    assert invoice is not None
    attachment_ids: list[int] = []
    if upload is not None:
        try:
            attachment_ids.append(
                await _store_upload(upload.data, upload.filename, data_dir=data_dir, language=lang)
            )
        except UploadRejected as rejected:
            raise InvalidDispute(_with_errors(values, {"attachment": str(rejected)})) from None
    try:
        return await open_dispute(
            ids,
            account_id=invoice.account_id,
            invoice_id=invoice.id,
            line_id=line_id,
            amount=amount,
            reason_code=values.reason,
            reason_text=values.text,
            attachment_ids=attachment_ids,
            now=now,
            language=lang,
        )
    except ValidationFailed as failed:
        raise InvalidDispute(_with_errors(values, {failed.field or "item": str(failed)})) from None
    except Conflict as conflict:
        raise InvalidDispute(_with_errors(values, {"item": str(conflict)})) from None


def _with_errors(values: DisputeForm, errors: Mapping[str, str]) -> DisputeForm:
    return DisputeForm(values.item, values.amount, values.reason, values.text, dict(errors))


# ---------------------------------------------------------------------------- messages


async def post_message(
    dispute_id: int,
    body: str,
    *,
    debtor_ids: Sequence[int] | None = None,
    staff_id: int | None = None,
    attachment_id: int | None = None,
    now: dt.datetime,
    language: str = "es",
) -> int:
    """Add a message to a dispute's thread, as the debtor (`debtor_ids`) or staff (`staff_id`).

    Returns the message id. A debtor can only write on their own disputes (`NotFound`
    otherwise). A closed dispute takes no more messages (`Conflict`). A message needs text or an
    attachment (`ValidationFailed`, field "body").
    """
    if (debtor_ids is None) == (staff_id is None):
        raise ValueError("give exactly one author: debtor_ids or staff_id")
    text = body.strip()
    if not text and attachment_id is None:
        raise ValidationFailed(gettext(language, "Escriba su mensaje."), field="body")
    if len(text) > MAX_MESSAGE:
        raise ValidationFailed(
            gettext(language, "Escriba como máximo 4000 caracteres."), field="body"
        )
    if not _valid_id(dispute_id):
        raise NotFound(gettext(language, "No encontramos ese reclamo."))
    async with DB.transaction():
        if debtor_ids is not None:
            rows = await Dispute.raw(
                """SELECT d.id, d.status, d.resolved_at, d.account, a.debtor FROM dispute d
                   JOIN account a ON a.id = d.account
                   WHERE d.id = {} AND a.debtor = ANY({}::int[]) FOR UPDATE OF d""",
                dispute_id,
                _ids(debtor_ids),
            )
        else:
            rows = await Dispute.raw(
                """SELECT d.id, d.status, d.resolved_at, d.account, a.debtor FROM dispute d
                   JOIN account a ON a.id = d.account WHERE d.id = {} FOR UPDATE OF d""",
                dispute_id,
            )
        if not rows:
            raise NotFound(gettext(language, "No encontramos ese reclamo."))
        row = rows[0]
        if row["status"] in CLOSED_STATUSES or row["resolved_at"] is not None:
            raise Conflict(
                gettext(
                    language,
                    "Este reclamo ya está cerrado. Si no está de acuerdo, puede abrir uno nuevo.",
                )
            )
        attachments = await _claim_attachments(
            [attachment_id] if attachment_id is not None else [], language
        )
        by_staff = staff_id is not None
        inserted = await DisputeMessage.insert(
            DisputeMessage(
                dispute=dispute_id,
                author_kind="staff" if by_staff else "debtor",
                staff=staff_id,
                body=text,
                attachment=attachments[0] if attachments else None,
                created_at=now,
            )
        ).returning(DisputeMessage.id)
        status = row["status"]
        new_status = "waiting_debtor" if by_staff else ("in_review" if status != "open" else status)
        if new_status != status:
            await Dispute.update({Dispute.status: new_status}).where(Dispute.id == dispute_id)
        await Interaction.insert(
            Interaction(
                account=row["account"],
                debtor=row["debtor"],
                kind="dispute_message",
                channel="portal",
                direction="outbound" if by_staff else "inbound",
                summary=f"Mensaje en el reclamo N.º {dispute_id}: {text[:200]}"
                + (" (con adjunto)" if attachments else ""),
                data={
                    "dispute": dispute_id,
                    "message": int(inserted[0]["id"]),
                    "attachment": attachments[0] if attachments else None,
                },
                staff=staff_id,
                occurred_at=now,
            )
        )
    return int(inserted[0]["id"])


async def submit_message(
    debtor_ids: Sequence[int],
    dispute_id: int,
    form: Mapping[str, str],
    *,
    upload: Upload | None,
    data_dir: Path,
    language: str | None,
    now: dt.datetime,
) -> int:
    """The portal's reply form (`body` and an optional file); `InvalidDispute` on errors."""
    ids = _ids(debtor_ids)
    row = await _dispute_of(ids, dispute_id)
    lang = resolve_language(language, row["debtor_language"] if row else None)
    if row is None:
        raise NotFound(gettext(lang, "No encontramos ese reclamo."))
    body = str(form.get("body", "")).strip()
    values = MessageForm(body=body)
    if not body and upload is None:
        raise InvalidDispute(MessageForm(body, {"body": gettext(lang, "Escriba su mensaje.")}))
    if len(body) > MAX_MESSAGE:
        raise InvalidDispute(
            MessageForm(body, {"body": gettext(lang, "Escriba como máximo 4000 caracteres.")})
        )
    attachment_id = None
    if upload is not None:
        try:
            attachment_id = await _store_upload(
                upload.data, upload.filename, data_dir=data_dir, language=lang
            )
        except UploadRejected as rejected:
            raise InvalidDispute(MessageForm(body, {"attachment": str(rejected)})) from None
    try:
        return await post_message(
            dispute_id,
            body,
            debtor_ids=ids,
            attachment_id=attachment_id,
            now=now,
            language=lang,
        )
    except ValidationFailed as failed:
        raise InvalidDispute(
            MessageForm(values.body, {failed.field or "body": str(failed)})
        ) from None
    except Conflict as conflict:
        raise InvalidDispute(MessageForm(values.body, {"body": str(conflict)})) from None


# ---------------------------------------------------------------------------- collection


async def disputed_amounts(account_id: int) -> dict[int, int]:
    """{invoice id: amount under open dispute} for an account: what collection must leave out.

    Never more than the invoice's open amount (a payment may have arrived meanwhile), and
    invoices with nothing left to dispute are not listed.
    """
    rows = await Dispute.raw(
        f"""WITH disputed AS (
                SELECT invoice, sum(amount)::bigint AS amount FROM dispute
                WHERE account = {{}} AND invoice IS NOT NULL AND resolved_at IS NULL
                  AND status <> ALL({CLOSED_SQL})
                GROUP BY invoice
            )
            SELECT d.invoice, least(d.amount, greatest(coalesce(
                (SELECT sum(e.amount) FROM ledger_entry e WHERE e.invoice = d.invoice), 0), 0)
            )::bigint AS amount
            FROM disputed d""",
        account_id,
    )
    return {int(r["invoice"]): int(r["amount"]) for r in rows if int(r["amount"]) > 0}


# ---------------------------------------------------------------------------- staff: resolution


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
    if not _valid_id(dispute_id):
        raise NotFound(f"dispute {dispute_id} does not exist")
    async with DB.transaction():
        rows = await Dispute.raw(
            f"""SELECT {DISPUTE_COLUMNS} {DISPUTE_FROM} WHERE d.id = {{}} FOR UPDATE OF d""",
            dispute_id,
        )
        if not rows:
            raise NotFound(f"dispute {dispute_id} does not exist")
        row = rows[0]
        if row["status"] in CLOSED_STATUSES or row["resolved_at"] is not None:
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
