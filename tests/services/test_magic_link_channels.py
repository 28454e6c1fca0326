"""Sign-in links asked for by phone go by WhatsApp or SMS when those channels are live, to the
number on file; without them, by email as before."""

from __future__ import annotations

import datetime as dt
import json
import secrets

import pytest

from saldo.auth import magic_links
from saldo.auth.magic_links import parse_contact
from saldo.notify.outbox import OutboxChannel
from saldo.notify.sms import TwilioSms
from saldo.notify.whatsapp import WhatsAppCloud
from saldo.services import portal_login
from saldo.services.portal_login import LoginConfig
from saldo.tables import Creditor, Debtor, MagicLinkToken
from tests.fakes.sms import FakeSms
from tests.fakes.whatsapp import FakeWhatsApp

KEY = magic_links.derive_key("test-secret")
PUBLIC_URL = "https://portal.example"


class Mailbox:
    def __init__(self) -> None:
        self.sent: list = []

    async def send(self, message) -> None:
        self.sent.append(message)


@pytest.fixture
def providers():
    sms = FakeSms(account_sid="AC" + secrets.token_hex(16), auth_token="tok").start()
    wa = FakeWhatsApp(token="wa-" + secrets.token_hex(6)).start()
    yield sms, wa
    sms.stop()
    wa.stop()


def config(redis, servers, texts) -> LoginConfig:
    return LoginConfig(
        redis=redis,
        key_prefix=f"{servers.redis_prefix}mlc{secrets.token_hex(4)}:",
        hash_key=KEY,
        public_url=PUBLIC_URL,
        mail_from="Saldo <no-reply@saldo.example>",
        texts=texts,
    )


def live(sms: FakeSms, wa: FakeWhatsApp) -> dict:
    return {
        "sms": TwilioSms(sms.url, sms.account_sid, sms.auth_token, "+15550001", timeout=5),
        "whatsapp": WhatsAppCloud(wa.url, wa.token, wa.phone_number_id, timeout=5),
    }


def number() -> str:
    return "+549" + "".join(secrets.choice("0123456789") for _ in range(10))


async def debtor(**fields) -> Debtor:
    creditor = Creditor(name=f"Acreedor {secrets.token_hex(4)}")
    await creditor.save()
    row = Debtor(creditor=creditor.id, external_id=secrets.token_hex(4), name="Ana Núñez",
                 document_number="27.345.678", **fields)  # fmt: skip
    await row.save()
    return row


async def request(contact: str, cfg: LoginConfig, mailbox: Mailbox) -> int:
    parsed = parse_contact(contact)
    assert parsed is not None
    return await portal_login.request_link(
        parsed, ip="10.0.0.9", now=dt.datetime.now(dt.UTC), channel=mailbox, config=cfg
    )


async def token_of(link: str) -> MagicLinkToken:
    token = link.rsplit("/", 1)[1].rstrip(".")
    row = await MagicLinkToken.objects().get(
        MagicLinkToken.token_hash == magic_links.hash_token(token, KEY)
    )
    assert row is not None
    return row


async def test_a_phone_on_file_gets_its_link_by_sms(db, redis, servers, providers):
    sms, wa = providers
    phone = number()
    who = await debtor(email="ana@example.com", phone=phone)
    mailbox = Mailbox()

    assert await request(phone[-10:], config(redis, servers, live(sms, wa)), mailbox) == 1

    [message] = sms.messages
    assert message["to"] == phone and mailbox.sent == []
    link = next(word for word in message["body"].split() if "/login/" in word)
    assert link.startswith(f"{PUBLIC_URL}/login/")
    row = await token_of(link)
    assert row.channel == "sms" and json.loads(row.debtor_ids) == [who.id]
    assert "15 minutos" in message["body"]


async def test_a_whatsapp_number_gets_its_link_as_the_approved_template(
    db, redis, servers, providers
):
    sms, wa = providers
    phone = number()
    await debtor(email="ana@example.com", whatsapp=phone, language="en")
    mailbox = Mailbox()

    await request(phone, config(redis, servers, live(sms, wa)), mailbox)

    [message] = wa.messages
    assert message["template"]["name"] == "saldo_magic_link"
    assert message["template"]["language"] == {"code": "en"}
    link, minutes = [p["text"] for p in message["template"]["components"][0]["parameters"]]
    assert minutes == "15" and (await token_of(link)).channel == "whatsapp"
    assert sms.messages == [] and mailbox.sent == []


async def test_without_live_text_channels_the_link_goes_by_email(db, redis, servers, tmp_path):
    phone = number()
    await debtor(email="ana@example.com", phone=phone)
    mailbox = Mailbox()
    dev = {"sms": OutboxChannel(tmp_path / "sms", "sms"),
           "whatsapp": OutboxChannel(tmp_path / "wa", "whatsapp")}  # fmt: skip

    await request(phone, config(redis, servers, dev), mailbox)

    [message] = mailbox.sent
    assert message["To"] == "ana@example.com"
    assert not (tmp_path / "sms").exists()


async def test_an_sms_provider_failure_changes_nothing_the_visitor_sees(
    db, redis, servers, providers
):
    sms, wa = providers
    phone = number()
    await debtor(email="ana@example.com", phone=phone)
    sms.fail_next(1, 503)
    assert await request(phone, config(redis, servers, live(sms, wa)), Mailbox()) == 0
