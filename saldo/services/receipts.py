"""Payment receipts: the queued `payment_received` notification, rendered and mailed once.

`sync_payment` queues one outbox row per applied payment (`receipt:<payment id>`) in the same
transaction as the posting; `send_notification` renders it in the debtor's language — the
email (`templates/notify/payment_received.txt` / `.html`) and a PDF receipt attached to it —
sends it and marks it sent. The row is locked while it is sent, so two workers never mail the
same receipt, and a receipt already sent is never sent again.

Outbox statuses used here: queued → sent; failed (gave up after `MAX_ATTEMPTS`); blocked (no
address); cancelled (the payment was reversed before its receipt went out).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from saldo.db import DB
from saldo.errors import NotFound, SaldoError
from saldo.i18n import DEFAULT_LANGUAGE, SUPPORTED_LANGUAGES, gettext
from saldo.notify import EmailSender, render_email
from saldo.notify.email import Attachment, build_message
from saldo.pdf import (
    AMBER,
    FONT,
    MARGIN,
    MUTED,
    _brand,
    _creditor_lines,
    _debtor_lines,
    _Document,
    _facts,
    _party_block,
)
from saldo.services import ledger
from saldo.services.statement import (
    CreditorView,
    DebtorView,
    Formats,
    _method_label,
    display_locale,
    local_today,
)
from saldo.tables import Notification

__all__ = [
    "ACCOUNT_PATH",
    "MAX_ATTEMPTS",
    "PREFERENCES_PATH",
    "DeliveryFailed",
    "ReceiptView",
    "queued_receipts",
    "receipt_view",
    "render_receipt_pdf",
    "send_notification",
]

RECEIPT_TEMPLATE: Final = "payment_received"
#: Sending gives up after this many failed attempts (the row is then "failed").
MAX_ATTEMPTS: Final = 5
#: Portal pages the message links to (routes `account:balance` and `account:preferences`;
#: a test checks them against the app's routes): the account, and the opt-out line's page.
ACCOUNT_PATH: Final = "/account"
PREFERENCES_PATH: Final = "/preferences"

_PROVIDERS: Final = {"mercadopago": "Mercado Pago", "bank": "transferencia bancaria"}


class DeliveryFailed(SaldoError):
    """The mail server refused or could not be reached; `final` once no retry is left."""

    status_code = 502
    title = "Message not delivered"

    def __init__(self, message: str, *, attempts: int, final: bool) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.final = final


@dataclass(frozen=True, slots=True)
class AppliedLine:
    invoice_number: str
    due_text: str
    amount: str


@dataclass(frozen=True, slots=True)
class ReceiptView:
    """A payment receipt, every amount and date already formatted for the debtor."""

    language: str
    payment_id: int
    creditor: CreditorView
    debtor: DebtorView
    provider: str  # "Mercado Pago", ...
    simulated: bool
    reference: str  # the provider's payment id
    date_text: str
    today_text: str
    method: str
    amount: str
    applied: tuple[AppliedLine, ...]
    credit: str  # "" when the payment left no credit
    balance_label: str
    balance: str
    public_url: str
    account_url: str
    preferences_url: str

    @property
    def filename(self) -> str:
        return f"comprobante-{self.payment_id}.pdf"


def _language(value: Any) -> str:
    return str(value) if value in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE


async def receipt_view(
    payment_id: int, *, language: str, now: dt.datetime, public_url: str
) -> ReceiptView:
    """Everything a receipt shows, for a posted payment (NotFound for an unapplied one)."""
    rows = await Notification.raw(
        """
        SELECT p.id, p.provider, p.provider_payment_id, p.amount, p.method, p.received_at,
               p.created_at, a.id AS account_id, a.currency,
               d.id AS debtor_id, d.name, d.document_type, d.document_number, d.email, d.phone,
               d.whatsapp, d.country, d.language, d.timezone,
               c.id AS creditor_id, c.name AS creditor_name, c.legal_name, c.tax_id,
               c.email AS creditor_email, c.phone AS creditor_phone,
               c.country AS creditor_country
        FROM payment p JOIN account a ON a.id = p.account
             JOIN debtor d ON d.id = a.debtor JOIN creditor c ON c.id = a.creditor
        WHERE p.id = {}
        """,
        payment_id,
    )
    if not rows:
        raise NotFound(f"payment {payment_id} has no account to issue a receipt for")
    row = rows[0]
    lang = _language(language)
    fmt = Formats(str(row["currency"]), display_locale(lang, str(row["country"])))
    allocations = await Notification.raw(
        """
        SELECT pa.invoice, coalesce(i.number, '') AS number, i.due_date, pa.amount
        FROM payment_allocation pa LEFT JOIN invoice i ON i.id = pa.invoice
        WHERE pa.payment = {} ORDER BY pa.id
        """,
        payment_id,
    )
    applied = tuple(
        AppliedLine(str(a["number"]), fmt.date(a["due_date"]), fmt.money(int(a["amount"])).text)
        for a in allocations
        if a["invoice"] is not None
    )
    credit = sum(int(a["amount"]) for a in allocations if a["invoice"] is None)
    balance = await ledger.account_balance(int(row["account_id"]))
    if balance > 0:
        balance_label = gettext(lang, "Saldo pendiente")
    elif balance < 0:
        balance_label = gettext(lang, "Saldo a favor")
    else:
        balance_label = gettext(lang, "Al día")
    timezone = str(row["timezone"])
    received: dt.datetime = row["received_at"] or row["created_at"]
    method = _method_label(lang, str(row["method"] or ""))
    provider = str(row["provider"])
    base = public_url.rstrip("/")
    return ReceiptView(
        language=lang,
        payment_id=payment_id,
        creditor=CreditorView(
            id=row["creditor_id"],
            name=row["creditor_name"],
            legal_name=row["legal_name"],
            tax_id=row["tax_id"],
            email=row["creditor_email"],
            phone=row["creditor_phone"],
            country=row["creditor_country"],
        ),
        debtor=DebtorView(
            id=row["debtor_id"],
            name=row["name"],
            document_type=row["document_type"],
            document_number=row["document_number"],
            email=row["email"],
            phone=row["phone"],
            whatsapp=row["whatsapp"],
            country=row["country"],
            language=row["language"],
            timezone=timezone,
        ),
        provider=_PROVIDERS.get(provider, provider),
        simulated=provider == "simulated",
        reference=str(row["provider_payment_id"]),
        date_text=fmt.date(local_today(received, timezone)),
        today_text=fmt.date(local_today(now, timezone)),
        method=method[:1].upper() + method[1:] if method else gettext(lang, "Pago"),
        amount=fmt.money(int(row["amount"])).text,
        applied=applied,
        credit=fmt.money(credit).text if credit else "",
        balance_label=balance_label,
        balance=fmt.money(abs(balance)).text,
        public_url=base,
        account_url=f"{base}{ACCOUNT_PATH}",
        preferences_url=f"{base}{PREFERENCES_PATH}",
    )


# ---------------------------------------------------------------------------- the PDF


def render_receipt_pdf(view: ReceiptView) -> bytes:
    """The receipt: creditor and debtor, date, method, amount, what it paid, credit left."""
    pdf = _Document(view.language, "")
    pdf.footer_note = pdf.gettext("Emitido por Saldo el {date} para {name}.").format(
        date=view.today_text, name=view.debtor.name
    )
    title = pdf.gettext("Comprobante de pago")
    pdf.set_title(title)
    pdf.set_author(view.creditor.name)
    pdf.set_creator("Saldo")
    pdf.add_page()
    _brand(pdf, title, view.creditor.name)

    column = (pdf.width - 8) / 2
    y = pdf.get_y()
    end_left = _party_block(
        pdf, pdf.gettext("Emisor"), _creditor_lines(pdf, view.creditor), MARGIN, column
    )
    pdf.set_y(y)
    end_right = _party_block(
        pdf, pdf.gettext("Cliente"), _debtor_lines(view.debtor), MARGIN + column + 8, column
    )
    pdf.set_y(max(end_left, end_right) + 4)

    _facts(
        pdf,
        [
            (pdf.gettext("Fecha de pago"), view.date_text),
            (pdf.gettext("Operación"), view.reference),
            (pdf.gettext("Importe pagado"), view.amount),
        ],
    )
    pdf.text_line(
        pdf.gettext("Pago recibido por {creditor} a través de {provider}.").format(
            creditor=view.creditor.name, provider=view.provider
        ),
        size=9.5,
        bold=True,
    )
    pdf.text_line(f"{pdf.gettext('Medio de pago')}: {view.method}", size=9, color=MUTED)
    if view.simulated:
        pdf.ln(1)
        pdf.text_line(
            pdf.gettext("Pago simulado: modo de demostración, no se movió dinero."),
            size=9,
            bold=True,
            color=AMBER,
        )
    pdf.ln(2)

    pdf.section_title(pdf.gettext("Aplicación del pago"))
    with pdf.table(
        col_widths=[w * pdf.width for w in (0.5, 0.25, 0.25)],
        text_align=("LEFT", "LEFT", "RIGHT"),
    ) as table:
        pdf.set_font(FONT, size=8.5)
        table.row(
            [pdf.gettext("Concepto"), pdf.gettext("Vencimiento"), pdf.gettext("Importe aplicado")]
        )
        for line in view.applied:
            table.row(
                [f"{pdf.gettext('Factura')} {line.invoice_number}", line.due_text, line.amount]
            )
        if view.credit:
            table.row([pdf.gettext("Saldo a favor generado"), "", view.credit])
    pdf.ln(3)
    pdf.totals(
        [
            (pdf.gettext("Importe pagado"), view.amount, True),
            (f"{view.balance_label} · {view.today_text}", view.balance, False),
        ]
    )
    pdf.ln(4)
    pdf.text_line(
        pdf.gettext(
            "Este comprobante refleja la imputación del pago en su cuenta. Puede ver el detalle "
            "y descargar su estado de cuenta en el portal: {url}"
        ).format(url=view.account_url),
        size=7.5,
        color=MUTED,
        height=3.8,
    )
    return bytes(pdf.output())


# ---------------------------------------------------------------------------- sending


def _payment_of(key: str) -> int:
    prefix, _, rest = key.partition(":")
    if prefix != "receipt" or not rest.isdigit():
        raise NotFound(f"notification {key!r} is not a payment receipt")
    return int(rest)


async def send_notification(
    notification_id: int,
    *,
    sender: EmailSender,
    now: dt.datetime,
    public_url: str,
    mail_from: str,
) -> str:
    """Render and send one queued receipt with its PDF; returns the row's status afterwards.

    "sent" for this delivery; a row that is not queued is left as it is and its status
    returned ("sent" already, "blocked", "failed", "cancelled"); "busy" while another worker
    holds the row. A receipt whose payment was reversed in the meantime is cancelled instead
    of sent. A delivery failure is counted on the row and raised as `DeliveryFailed` (after
    the count is committed), `final` once `MAX_ATTEMPTS` is reached.
    """
    failure: DeliveryFailed | None = None
    async with DB.transaction():
        rows = await Notification.raw(
            """
            SELECT id, channel, template, language, to_address, idempotency_key, status,
                   attempts
            FROM notification WHERE id = {} FOR UPDATE SKIP LOCKED
            """,
            notification_id,
        )
        if not rows:
            if await Notification.exists().where(Notification.id == notification_id):
                return "busy"
            raise NotFound(f"notification {notification_id} does not exist")
        row = rows[0]
        if row["status"] != "queued":
            return str(row["status"])
        if row["template"] != RECEIPT_TEMPLATE or row["channel"] != "email":
            raise NotFound(f"notification {notification_id} is not an email receipt")
        payment_id = _payment_of(str(row["idempotency_key"]))
        if await ledger.has_posting(payment_id, ledger.REVERSE):
            await _set(
                notification_id,
                status="cancelled",
                blocked_reason="payment reversed before the receipt was sent",
            )
            return "cancelled"
        language = _language(row["language"])
        view = await receipt_view(payment_id, language=language, now=now, public_url=public_url)
        subject, text, html = render_receipt_email(view)
        message = build_message(
            sender=mail_from,
            to=str(row["to_address"]),
            subject=subject,
            text=text,
            html=html,
            attachments=[Attachment(view.filename, "application/pdf", render_receipt_pdf(view))],
        )
        attempts = int(row["attempts"]) + 1
        try:
            await sender.send(message)
        except Exception as exc:
            final = attempts >= MAX_ATTEMPTS
            await _set(
                notification_id,
                status="failed" if final else "queued",
                attempts=attempts,
                last_error=f"{type(exc).__name__}: {exc}"[:2000],
            )
            failure = DeliveryFailed(str(exc), attempts=attempts, final=final)
        else:
            await _set(
                notification_id,
                status="sent",
                attempts=attempts,
                last_error="",
                sent_at=now,
                subject=subject,
                body_text=text,
                body_html=html,
            )
    if failure is not None:
        raise failure
    return "sent"


def render_receipt_email(view: ReceiptView) -> tuple[str, str, str]:
    """(subject, text, html) of the receipt email."""
    subject = gettext(view.language, "Comprobante de pago — {creditor}").format(
        creditor=view.creditor.name
    )
    text, html = render_email(
        RECEIPT_TEMPLATE,
        view.language,
        {
            "name": view.debtor.name,
            "creditor": view.creditor.name,
            "provider": view.provider,
            "simulated": view.simulated,
            "amount": view.amount,
            "date": view.date_text,
            "method": view.method,
            "reference": view.reference,
            "applied": view.applied,
            "credit": view.credit,
            "balance_label": view.balance_label,
            "balance": view.balance,
            "today": view.today_text,
            "public_url": view.public_url,
            "account_url": view.account_url,
            "preferences_url": view.preferences_url,
        },
    )
    return subject, text, html


async def _set(notification_id: int, **values: Any) -> None:
    columns = {getattr(Notification, name): value for name, value in values.items()}
    await Notification.update(columns).where(Notification.id == notification_id)


async def queued_receipts(
    *, now: dt.datetime, older_than: dt.timedelta = dt.timedelta(minutes=1), limit: int = 200
) -> list[int]:
    """Receipts still queued a while after they were created (their send job was lost)."""
    rows = await Notification.raw(
        """
        SELECT id FROM notification
        WHERE status = 'queued' AND template = {} AND channel = 'email' AND created_at < {}
        ORDER BY id LIMIT {}
        """,
        RECEIPT_TEMPLATE,
        now - older_than,
        limit,
    )
    return [int(r["id"]) for r in rows]
