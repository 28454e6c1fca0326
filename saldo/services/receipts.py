"""Payment receipts: what a receipt says, and its PDF.

`sync_payment` queues one outbox row per applied payment (`receipt:<payment id>`) in the same
transaction as the posting. The outbox sender (`saldo.services.outbox`) renders it like any
other message — `templates/notify/payment_received.*` with `receipt_values()`, in the debtor's
language, with the PDF of `render_receipt_pdf()` attached — and sends it once; a receipt whose
payment was reversed before it went out is cancelled (`payment_reversed`).

`send_notification()` sends one row through that same path with a plain `EmailSender` (the
worker's `send_notification` job and older callers).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Final

from saldo.errors import NotFound, SaldoError
from saldo.i18n import DEFAULT_LANGUAGE, SUPPORTED_LANGUAGES, gettext
from saldo.notify.email import EmailSender, SenderChannel
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
from saldo.services import ledger, outbox
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
    "receipt_values",
    "receipt_view",
    "render_receipt_pdf",
    "send_notification",
]

RECEIPT_TEMPLATE: Final = "payment_received"
#: Sending gives up after this many failed attempts (the row is then "failed").
MAX_ATTEMPTS: Final = outbox.MAX_ATTEMPTS
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


def receipt_values(view: ReceiptView) -> dict[str, Any]:
    """What `templates/notify/payment_received.*` shows besides the debtor, creditor and links."""
    return {
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
    }


async def send_notification(
    notification_id: int,
    *,
    sender: EmailSender,
    now: dt.datetime,
    public_url: str,
    mail_from: str,
) -> str:
    """Send one queued email (a receipt, typically) through the outbox, with `sender`.

    Returns the row's status afterwards: "sent" for this delivery or an earlier one; a row that
    is not waiting is left as it is ("blocked", "failed", "cancelled" — a receipt whose payment
    was reversed in the meantime is cancelled instead of sent); "busy" while another worker
    holds the row. A delivery failure is counted on the row and raised as `DeliveryFailed`
    (after the count is committed), `final` once `MAX_ATTEMPTS` is reached.
    """
    result = await outbox.send_one(
        notification_id,
        now=now,
        channels={"email": SenderChannel(sender)},
        public_url=public_url,
        mail_from=mail_from,
    )
    if result.error:
        raise DeliveryFailed(result.error, attempts=result.attempts, final=result.final)
    return result.status


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
