"""Builders for outbox tests: a debtor with invoices, the three channels on loopback fakes."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import pytest

from saldo.notify import Channel
from saldo.notify.email import SmtpChannel, SmtpEmail
from saldo.notify.sms import TwilioSms
from saldo.notify.whatsapp import WhatsAppCloud
from saldo.services import outbox
from saldo.tables import Account, Creditor, Debtor, Invoice, Notification
from tests.fakes.sms import FakeSms
from tests.fakes.whatsapp import FakeWhatsApp
from tests.services.helpers import make_invoice
from tests.smtp_sink import SmtpSink

BA = "America/Argentina/Buenos_Aires"
MX = "America/Mexico_City"
#: A Tuesday: 12:00 in Buenos Aires, 09:00 in Mexico City.
NOW = dt.datetime(2026, 11, 3, 15, 0, tzinfo=dt.UTC)
PUBLIC_URL = "https://saldo.example.com"
MAIL_FROM = "Cobranzas <cobranzas@saldo.example.com>"
KEY = b"k" * 32


def local(zone: str, *args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=ZoneInfo(zone)).astimezone(dt.UTC)


@dataclass
class Party:
    creditor: Creditor
    debtor: Debtor
    account: Account
    invoices: list[Invoice] = field(default_factory=list)

    @property
    def email(self) -> str:
        return self.debtor.email


async def party(
    *,
    country: str = "AR",
    timezone: str = BA,
    language: str = "es",
    agency: str = "",
    email: str | None = None,
    phone: str = "",
    whatsapp: str = "",
    invoices: Sequence[tuple[str, int, dt.date]] = (("F-1", 125_000, dt.date(2026, 11, 8)),),
    name: str = "Ñandú Pérez",
) -> Party:
    tag = secrets.token_hex(4)
    creditor = Creditor(name=f"Servicios Andinos {tag}", country=country, agency_name=agency)
    await creditor.save()
    debtor = Debtor(
        creditor=creditor.id,
        external_id=tag,
        name=name,
        email=f"deudor-{tag}@example.com" if email is None else email,
        phone=phone,
        whatsapp=whatsapp,
        language=language,
        timezone=timezone,
        country=country,
    )
    await debtor.save()
    account = Account(creditor=creditor.id, debtor=debtor.id, currency="ARS")
    await account.save()
    made = [await make_invoice(account, f"{n}-{tag}", total, due) for n, total, due in invoices]
    return Party(creditor, debtor, account, made)


async def remind(
    who: Party,
    *,
    channel: str = "email",
    template: str = "reminder_before_due",
    stage: str = "",
    key: str | None = None,
    invoices: Sequence[Invoice] | None = None,
    context: dict | None = None,
) -> int:
    notification_id = await outbox.queue(
        debtor_id=who.debtor.id,
        account_id=who.account.id,
        channel=channel,
        template=template,
        stage=stage,
        idempotency_key=key or f"test:{secrets.token_hex(6)}",
        invoice_ids=[i.id for i in (who.invoices if invoices is None else invoices)],
        context=context,
        now=NOW,
    )
    assert notification_id is not None
    return notification_id


async def row(notification_id: int) -> Notification:
    found = await Notification.objects().get(Notification.id == notification_id)
    assert found is not None
    return found


@dataclass
class Channels:
    smtp: SmtpSink
    sms: FakeSms
    wa: FakeWhatsApp

    @property
    def channels(self) -> dict[str, Channel]:
        return {
            "email": SmtpChannel(SmtpEmail.from_url(self.smtp.url, timeout=5)),
            "sms": TwilioSms(
                self.sms.url, self.sms.account_sid, self.sms.auth_token, "+5491100000000", timeout=5
            ),
            "whatsapp": WhatsAppCloud(
                self.wa.url, self.wa.token, self.wa.phone_number_id, timeout=5
            ),
        }


@pytest.fixture
def fakes() -> Iterator[Channels]:
    smtp = SmtpSink().start()
    sms = FakeSms(account_sid="AC" + secrets.token_hex(16), auth_token="tok").start()
    wa = FakeWhatsApp(token="wa-" + secrets.token_hex(8)).start()
    try:
        yield Channels(smtp, sms, wa)
    finally:
        smtp.stop()
        sms.stop()
        wa.stop()


async def send(
    fakes: Channels, now: dt.datetime = NOW, channels: dict[str, Channel] | None = None, **kwargs
) -> outbox.SendRun:
    """Send batches until nothing more is due (other tests' rows included)."""
    total = outbox.SendRun()
    for _ in range(50):
        run = await outbox.send_due(
            now=now,
            channels=channels or fakes.channels,
            public_url=PUBLIC_URL,
            mail_from=MAIL_FROM,
            unsubscribe_key=KEY,
            **kwargs,
        )
        for name in ("claimed", "sent", "deferred", "blocked", "cancelled", "retried", "failed"):
            setattr(total, name, getattr(total, name) + getattr(run, name))
        if not run.full:
            return total
    raise AssertionError("the outbox never emptied")
