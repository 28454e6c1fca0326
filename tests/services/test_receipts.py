"""Payment receipts: rendered in the debtor's language, with the PDF, sent once."""

from __future__ import annotations

import datetime as dt
import io
from email.message import EmailMessage

import pytest
from pypdf import PdfReader

from saldo.money import format_money
from saldo.services import ledger
from saldo.services.payments import sync_payment
from saldo.services.receipts import (
    MAX_ATTEMPTS,
    DeliveryFailed,
    queued_receipts,
    send_notification,
)
from saldo.tables import Creditor, Notification

from .helpers import make_account, make_invoice
from .payment_helpers import NOW, ScriptedProvider, make_checkout, with_email

PUBLIC_URL = "https://saldo.example.com/"
MAIL_FROM = "Saldo <cobranzas@saldo.example.com>"


class Outbox:
    """An `EmailSender` that keeps what it sends, and fails the first `fail` sends."""

    def __init__(self, fail: int = 0) -> None:
        self.sent: list[EmailMessage] = []
        self.fail = fail

    async def send(self, message: EmailMessage) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionRefusedError("smtp server down")
        self.sent.append(message)


def pdf_of(message: EmailMessage) -> tuple[str, str, bytes]:
    parts = [p for p in message.iter_attachments()]
    assert len(parts) == 1
    part = parts[0]
    return part.get_filename(), part.get_content_type(), part.get_content()


def pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages).replace("\xa0", " ")


def text_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content().replace("\xa0", " ")


def html_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("html",)).get_content().replace("\xa0", " ")


async def paid_account(language: str = "es", *, email: str = "", overpay: int = 0):
    """An account with two invoices, paid online: the first in full, part of the second."""
    provider = ScriptedProvider()
    account = await make_account(name="Ñandú Pérez")
    await Creditor.update(
        {Creditor.legal_name: "Servicios Andinos S.A.", Creditor.tax_id: "30-71234567-8"}
    ).where(Creditor.id == account.creditor)
    await with_email(account, email, language)
    await make_invoice(account, "FC-0001", 10_000, dt.date(2026, 8, 1))
    await make_invoice(account, "FC-0002", 8_000, dt.date(2026, 9, 1))
    checkout = await make_checkout(account, provider, 15_000)
    pid = provider.put("approved", 15_000 + overpay, "ARS", str(checkout.public_id))
    result = await sync_payment(provider, pid, now=NOW)
    assert result.notification_id is not None
    return account, provider, pid, result


def money(minor: int) -> str:
    return format_money(minor, "ARS", "es_AR").replace("\xa0", " ")


async def send(notification_id: int, outbox: Outbox) -> str:
    return await send_notification(
        notification_id, sender=outbox, now=NOW, public_url=PUBLIC_URL, mail_from=MAIL_FROM
    )


async def test_the_receipt_names_the_creditor_the_payment_and_what_it_paid(db):
    account, _, pid, result = await paid_account(email="nandu@example.com")
    creditor = await Creditor.objects().get(Creditor.id == account.creditor)
    outbox = Outbox()

    assert await send(result.notification_id, outbox) == "sent"

    assert len(outbox.sent) == 1
    message = outbox.sent[0]
    assert message["To"] == "nandu@example.com" and message["From"] == MAIL_FROM
    assert creditor.name in message["Subject"] and "Comprobante de pago" in message["Subject"]
    text = text_of(message)
    assert f"Recibimos su pago a {creditor.name}" in text
    assert money(15_000) in text and pid in text
    assert f"Factura FC-0001: {money(10_000)}" in text
    assert f"Factura FC-0002: {money(5_000)}" in text
    assert f"Saldo pendiente (01/11/2026): {money(3_000)}" in text
    assert "https://saldo.example.com/preferences" in text  # the opt-out line
    html = html_of(message)
    assert 'href="https://saldo.example.com/preferences"' in html
    assert creditor.name in html and money(15_000) in html

    filename, content_type, data = pdf_of(message)
    assert (filename, content_type) == (f"comprobante-{result.payment_id}.pdf", "application/pdf")
    pdf = pdf_text(data)
    for expected in (
        "Comprobante de pago",
        creditor.name,
        "Servicios Andinos S.A.",
        "Ñandú Pérez",
        "01/11/2026",
        "Dinero en cuenta de Mercado Pago",
        pid,
        money(15_000),
        "Factura FC-0001",
        "Factura FC-0002",
        money(5_000),
    ):
        assert expected in pdf, expected

    row = await Notification.objects().get(Notification.id == result.notification_id)
    assert row.status == "sent" and row.sent_at == NOW and row.attempts == 1
    assert row.subject == message["Subject"]
    assert money(15_000) in row.body_text.replace("\xa0", " ")
    assert "FC-0002" in row.body_html


async def test_a_receipt_is_never_sent_twice(db):
    _, _, _, result = await paid_account()
    outbox = Outbox()
    assert await send(result.notification_id, outbox) == "sent"
    assert await send(result.notification_id, outbox) == "sent"
    assert len(outbox.sent) == 1
    assert result.notification_id not in await queued_receipts(now=NOW + dt.timedelta(hours=1))


async def test_an_overpayment_shows_the_credit_left(db):
    _, _, _, result = await paid_account(overpay=4_000)
    outbox = Outbox()
    await send(result.notification_id, outbox)
    text = text_of(outbox.sent[0])
    assert f"Saldo a favor generado: {money(1_000)}" in text
    assert f"Saldo a favor (01/11/2026): {money(1_000)}" in text
    pdf = pdf_text(pdf_of(outbox.sent[0])[2])
    assert "Saldo a favor generado" in pdf and money(1_000) in pdf


async def test_the_receipt_speaks_the_debtors_language(db):
    _, _, _, result = await paid_account("en")
    outbox = Outbox()
    await send(result.notification_id, outbox)
    message = outbox.sent[0]
    assert message["Subject"].startswith("Payment receipt — ")
    text = text_of(message)
    assert "We received your payment to" in text
    assert "Change your contact preferences" in text
    assert "Invoice FC-0001" in text
    pdf = pdf_text(pdf_of(message)[2])
    assert "Payment receipt" in pdf and "Amount paid" in pdf


async def test_a_failed_delivery_is_counted_and_retried_later(db):
    _, _, _, result = await paid_account()
    outbox = Outbox(fail=1)

    with pytest.raises(DeliveryFailed) as failed:
        await send(result.notification_id, outbox)

    assert failed.value.final is False and failed.value.attempts == 1
    row = await Notification.objects().get(Notification.id == result.notification_id)
    assert row.status == "queued" and row.attempts == 1 and "smtp server down" in row.last_error
    assert result.notification_id in await queued_receipts(now=NOW + dt.timedelta(hours=1))
    assert await send(result.notification_id, outbox) == "sent"
    assert len(outbox.sent) == 1


async def test_sending_gives_up_after_the_last_attempt(db):
    _, _, _, result = await paid_account()
    outbox = Outbox(fail=MAX_ATTEMPTS)
    finals = []
    for _ in range(MAX_ATTEMPTS):
        with pytest.raises(DeliveryFailed) as failed:
            await send(result.notification_id, outbox)
        finals.append(failed.value.final)
    assert finals == [False] * (MAX_ATTEMPTS - 1) + [True]
    assert await send(result.notification_id, outbox) == "failed"
    assert outbox.sent == []


async def test_a_payment_reversed_before_its_receipt_went_out_gets_none(db):
    _, provider, pid, result = await paid_account()
    provider.set_status(pid, "refunded")
    await sync_payment(provider, pid, now=NOW)
    outbox = Outbox()

    assert await send(result.notification_id, outbox) == "cancelled"

    assert outbox.sent == []
    row = await Notification.objects().get(Notification.id == result.notification_id)
    assert row.status == "cancelled" and "reversed" in row.blocked_reason
    assert await ledger.has_posting(result.payment_id, ledger.REVERSE)
