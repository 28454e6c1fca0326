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
  gets the outcome as a message, the task is closed and an `AuditEvent` is written
  (`dispute_resolution`).

While a dispute is open, only its amount stops being collected: `disputed_amounts()` is what the
dunning engine and payment plans leave out, never more than the invoice's open amount.

Statuses: open, in_review, waiting_debtor (open ones, as `statement` labels them) and accepted,
partially_accepted, rejected (closed, with `resolved_at`).

The pieces live in their own modules, and every public name stays importable from here:
`dispute_rules` (reasons, SLA, statuses, labels, what may be disputed and for how much),
`dispute_records` (the shared reads), `dispute_forms` (the forms as typed and their checks),
`dispute_views` (what the debtor's pages show), `dispute_resolution` (`resolve`) and
`dispute_staff` (the staff queue, thread, replies and the reason report). This module keeps the
debtor's use cases that write: opening a dispute and writing to its thread.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from saldo import money
from saldo.db import DB
from saldo.errors import Conflict, NotFound, ValidationFailed
from saldo.i18n import gettext
from saldo.services.dispute_forms import (
    DisputeForm,
    InvalidDispute,
    MessageForm,
    Upload,
    check_dispute_form,
    check_message,
    read_dispute_form,
    with_errors,
)
from saldo.services.dispute_records import (
    CLOSED_SQL,
    DISPUTE_COLUMNS,
    DISPUTE_FROM,
    claim_attachments,
    debtor_context,
    debtor_rows,
    dispute_of,
    open_invoices,
)
from saldo.services.dispute_resolution import resolve
from saldo.services.dispute_rules import (
    CLOSED_STATUSES,
    MAX_MESSAGE,
    MAX_TEXT,
    OPEN_STATUSES,
    OUTCOMES,
    REASON_CODES,
    SLA_DAYS,
    TASK_KIND,
    check_amount,
    clean_ids,
    is_closed,
    parse_user_amount,
    pick_item,
    reason_label,
    reasons,
    resolution_key,
    status_label,
    task_key,
    valid_id,
)
from saldo.services.dispute_views import (
    AttachmentView,
    DisputeDetail,
    DisputePage,
    DisputeSummary,
    InvoiceChoice,
    ItemChoice,
    MessageView,
    dispute_attachment,
    dispute_detail,
    dispute_page,
    thread_messages,
)
from saldo.services.statement import display_locale, resolve_language
from saldo.services.uploads import UploadRejected, store_upload
from saldo.tables import Dispute, DisputeMessage, Interaction

__all__ = [
    "CLOSED_SQL",
    "CLOSED_STATUSES",
    "DISPUTE_COLUMNS",
    "DISPUTE_FROM",
    "MAX_MESSAGE",
    "MAX_TEXT",
    "OPEN_STATUSES",
    "OUTCOMES",
    "REASON_CODES",
    "SLA_DAYS",
    "TASK_KIND",
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
    "resolution_key",
    "resolve",
    "status_label",
    "submit_dispute",
    "submit_message",
    "task_key",
    "thread_messages",
]


# ---------------------------------------------------------------------------- opening


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
    ids = clean_ids(debtor_ids)
    if reason_code not in REASON_CODES:
        raise ValidationFailed(gettext(language, "Elija un motivo de la lista."), field="reason")
    text = reason_text.strip()
    if len(text) > MAX_TEXT:
        raise ValidationFailed(
            gettext(language, "Escriba como máximo 2000 caracteres."), field="text"
        )
    if reason_code == "other" and not text:
        raise ValidationFailed(gettext(language, "Cuéntenos el motivo del reclamo."), field="text")
    if not ids or not valid_id(invoice_id) or (line_id is not None and not valid_id(line_id)):
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
        debtors = await debtor_rows(ids)
        locale = display_locale(language, debtors[0]["country"] if debtors else "")
        invoices = await open_invoices(ids, invoice_id=invoice_id)
        invoice, line = pick_item(invoices, account_id, invoice_id, line_id, language)
        disputed = check_amount(invoice, line, amount, language, locale)
        attachments = await claim_attachments(attachment_ids, language)
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
            json.dumps({"dispute": dispute_id, "invoice": invoice_id, "amount": disputed}),
            task_key(dispute_id),
            now,
        )
    return dispute_id


async def submit_dispute(
    debtor_ids: Sequence[int],
    form: Mapping[str, str],
    *,
    upload: Upload | None,
    data_dir: Path,
    language: str | None,
    now: dt.datetime,
) -> int:
    """The portal form: check the fields (`dispute_forms.check_dispute_form`), store the
    attachment, open the dispute. Raises `InvalidDispute` with a message per field; nothing is
    stored then.
    """
    ids = clean_ids(debtor_ids)
    _primary, lang, locale = await debtor_context(ids, language)
    values = read_dispute_form(form)
    invoice, line_id, amount = check_dispute_form(values, await open_invoices(ids), lang, locale)
    attachment_ids: list[int] = []
    if upload is not None:
        try:
            attachment_ids.append(
                await store_upload(upload.data, upload.filename, data_dir=data_dir, language=lang)
            )
        except UploadRejected as rejected:
            raise InvalidDispute(with_errors(values, {"attachment": str(rejected)})) from None
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
        raise InvalidDispute(with_errors(values, {failed.field or "item": str(failed)})) from None
    except Conflict as conflict:
        raise InvalidDispute(with_errors(values, {"item": str(conflict)})) from None


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
    if not valid_id(dispute_id):
        raise NotFound(gettext(language, "No encontramos ese reclamo."))
    async with DB.transaction():
        if debtor_ids is not None:
            rows = await Dispute.raw(
                """SELECT d.id, d.status, d.resolved_at, d.account, a.debtor FROM dispute d
                   JOIN account a ON a.id = d.account
                   WHERE d.id = {} AND a.debtor = ANY({}::int[]) FOR UPDATE OF d""",
                dispute_id,
                clean_ids(debtor_ids),
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
        if is_closed(row["status"], row["resolved_at"]):
            raise Conflict(
                gettext(
                    language,
                    "Este reclamo ya está cerrado. Si no está de acuerdo, puede abrir uno nuevo.",
                )
            )
        attachments = await claim_attachments(
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
    ids = clean_ids(debtor_ids)
    row = await dispute_of(ids, dispute_id)
    lang = resolve_language(language, row["debtor_language"] if row else None)
    if row is None:
        raise NotFound(gettext(lang, "No encontramos ese reclamo."))
    body = check_message(str(form.get("body", "")), has_file=upload is not None, language=lang)
    attachment_id = None
    if upload is not None:
        try:
            attachment_id = await store_upload(
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
        raise InvalidDispute(MessageForm(body, {failed.field or "body": str(failed)})) from None
    except Conflict as conflict:
        raise InvalidDispute(MessageForm(body, {"body": str(conflict)})) from None


# ---------------------------------------------------------------------------- collection


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
