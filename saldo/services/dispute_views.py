"""What the debtor sees of disputes: the /disputes page (open and past disputes, and what the form
can offer), one dispute with its thread and outcome, and the thread's files.

Nothing here writes. Every function takes the session's `debtor_ids`: a dispute of anyone else
is `NotFound`. Dates are the debtor's local ones, amounts in the debtor's locale.
`thread_messages` is shared with the staff side (`dispute_staff`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from saldo.errors import NotFound
from saldo.i18n import gettext
from saldo.services.dispute_forms import DisputeForm, MessageForm
from saldo.services.dispute_records import (
    credit_note,
    debtor_context,
    dispute_of,
    disputes_of,
    invoice_open,
    open_invoices,
)
from saldo.services.dispute_rules import (
    OpenInvoice,
    clean_ids,
    is_closed,
    reason_label,
    reasons,
    resolution_key,
    size_text,
    status_label,
    valid_id,
    zone,
)
from saldo.services.statement import Amount, Formats, display_locale, resolve_language
from saldo.services.uploads import MAX_UPLOAD_BYTES, StoredFile, read_upload
from saldo.tables import Dispute

__all__ = [
    "AttachmentView",
    "DisputeDetail",
    "DisputePage",
    "DisputeSummary",
    "InvoiceChoice",
    "ItemChoice",
    "MessageView",
    "dispute_attachment",
    "dispute_detail",
    "dispute_page",
    "thread_messages",
]

MAX_UPLOAD_MB = MAX_UPLOAD_BYTES // (1024 * 1024)


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
    staff_name: str = ""  # who wrote a staff message (shown to staff only)


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


def _summary(row: Mapping[str, Any], language: str, fmt: Formats) -> DisputeSummary:
    local = zone(row["debtor_timezone"])
    status = str(row["status"])
    closed = is_closed(status, row["resolved_at"])
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
        opened=fmt.date(row["created_at"].astimezone(local).date()),
        answer_by=fmt.date(sla.astimezone(local).date()) if sla and not closed else None,
        resolved=fmt.date(resolved_at.astimezone(local).date()) if resolved_at else None,
        resolved_amount=fmt.money(int(resolved_amount)) if resolved_amount is not None else None,
        resolution=row["resolution"] or "",
    )


def _choices(invoices: Sequence[OpenInvoice], language: str, locale: str) -> list[InvoiceChoice]:
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
    ids = clean_ids(debtor_ids)
    primary, lang, locale = await debtor_context(ids, language)
    rows = await disputes_of(ids)
    summaries = [
        _summary(r, lang, Formats(r["currency"], display_locale(lang, r["debtor_country"])))
        for r in rows
    ]
    invoices = _choices(await open_invoices(ids), lang, locale)
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
        max_upload_mb=MAX_UPLOAD_MB,
    )


async def dispute_detail(
    debtor_ids: Sequence[int],
    dispute_id: int,
    *,
    language: str | None = None,
    form: MessageForm | None = None,
) -> DisputeDetail:
    """One dispute of the signed-in debtors with its thread; `NotFound` for anyone else's."""
    ids = clean_ids(debtor_ids)
    row = await dispute_of(ids, dispute_id)
    lang = resolve_language(language, row["debtor_language"] if row else None)
    if row is None:
        raise NotFound(gettext(lang, "No encontramos ese reclamo."))
    fmt = Formats(row["currency"], display_locale(lang, row["debtor_country"]))
    summary = _summary(row, lang, fmt)
    messages = await thread_messages(dispute_id, lang, fmt, row["debtor_timezone"], row["creditor"])
    credit = await credit_note(resolution_key(dispute_id))
    owed = await invoice_open(row["invoice"]) if row["invoice"] is not None else None
    return DisputeDetail(
        dispute=summary,
        messages=messages,
        language=lang,
        locale=fmt.locale,
        credit=fmt.money(-int(credit["amount"])) if credit else None,
        credit_date=fmt.date(credit["effective_date"]) if credit else None,
        invoice_open=fmt.money(owed) if owed is not None else None,
        form=form or MessageForm(),
        max_upload_mb=MAX_UPLOAD_MB,
    )


async def thread_messages(
    dispute_id: int, language: str, fmt: Formats, timezone: str, creditor: str
) -> tuple[MessageView, ...]:
    """A dispute's messages, oldest first, dated in `timezone`.

    The debtor's own are by "Usted" (in `language`), the team's by the creditor.
    """
    rows = await Dispute.raw(
        """SELECT m.id, m.author_kind, m.body, m.created_at, m.attachment,
                  a.filename, a.size, a.content_type,
                  coalesce(nullif(s.name, ''), s.email, '') AS staff_name
           FROM dispute_message m LEFT JOIN attachment a ON a.id = m.attachment
           LEFT JOIN staff_user s ON s.id = m.staff
           WHERE m.dispute = {} ORDER BY m.created_at, m.id""",
        dispute_id,
    )
    local = zone(timezone)
    you = gettext(language, "Usted")
    views = []
    for r in rows:
        when = r["created_at"].astimezone(local)
        views.append(
            MessageView(
                id=r["id"],
                author_kind=r["author_kind"],
                author=you if r["author_kind"] == "debtor" else creditor,
                body=r["body"] or "",
                when=f"{fmt.date(when.date())} {when:%H:%M}",
                attachment=AttachmentView(
                    r["attachment"], r["filename"], size_text(int(r["size"])), r["content_type"]
                )
                if r["attachment"] is not None
                else None,
                staff_name=r["staff_name"] or "",
            )
        )
    return tuple(views)


async def dispute_attachment(
    debtor_ids: Sequence[int], dispute_id: int, attachment_id: int, *, data_dir: Path
) -> StoredFile:
    """A file of one of the debtor's disputes; `NotFound` unless it belongs to that dispute."""
    ids = clean_ids(debtor_ids)
    if not ids or not valid_id(dispute_id) or not valid_id(attachment_id):
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
