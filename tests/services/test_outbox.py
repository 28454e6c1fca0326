"""The outbox sender against real PostgreSQL, a real SMTP server and loopback SMS/WhatsApp fakes:
every channel, the guardrails at send time, retries, failures, and sending exactly once."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from saldo.errors import ValidationFailed
from saldo.notify import OutgoingMessage, SendResult
from saldo.notify.email import message_id_for
from saldo.notify.sms import MAX_SEGMENTS, is_gsm, sms_segments
from saldo.notify.unsubscribe import make_token
from saldo.services import outbox
from saldo.services.ledger import post_entry
from saldo.tables import (
    Account,
    ContactPreference,
    Dispute,
    DunningPolicy,
    EntryKind,
    Interaction,
    Notification,
    PromiseToPay,
)
from tests.services.helpers import make_invoice
from tests.services.outbox_world import (
    BA,
    KEY,
    MX,
    NOW,
    PUBLIC_URL,
    fakes,
    local,
    party,
    remind,
    row,
    send,
)

__all__ = ["fakes"]


def clean(text: str) -> str:
    return text.replace("\xa0", " ")


# ---------------------------------------------------------------------------- queueing


async def test_queueing_twice_with_one_key_makes_one_row(db):
    who = await party()
    key = f"dunning:{who.debtor.id}:-5:email:2026-11-03"
    first = await remind(who, key=key)
    again = await outbox.queue(
        debtor_id=who.debtor.id, channel="email", template="reminder_before_due",
        idempotency_key=key, now=NOW,
    )  # fmt: skip
    assert again is None
    assert await Notification.count().where(Notification.idempotency_key == key) == 1
    assert (await row(first)).status == "queued"


async def test_an_unknown_template_or_channel_is_refused_when_queued(db):
    who = await party()
    with pytest.raises(ValidationFailed):
        await remind(who, template="reminder_in_verse")
    with pytest.raises(ValidationFailed):
        await remind(who, channel="fax")


# ---------------------------------------------------------------------------- each channel


async def test_an_email_reminder_names_creditor_agency_amount_link_and_opt_out(db, fakes):
    who = await party(agency="Cobranzas Integrales SRL", invoices=[
        ("F-1", 125_000, dt.date(2026, 11, 8)), ("F-2", 40_050, dt.date(2026, 11, 8)),
    ])  # fmt: skip
    key = f"dunning:{who.debtor.id}:-5:email:2026-11-03"
    notification_id = await remind(who, key=key)

    await send(fakes)

    [mail] = fakes.smtp.to(who.email)
    message = mail.message
    assert who.creditor.name in message["Subject"] and "08/11/2026" in message["Subject"]
    assert message["Message-ID"] == message_id_for(key, "cobranzas@saldo.example.com")
    token = make_token(KEY, who.debtor.id, "email")
    assert message["List-Unsubscribe"] == f"<{PUBLIC_URL}/unsubscribe/{token}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = clean(mail.text())
    assert "Hola, Ñandú Pérez:" in text
    assert f"Mensaje enviado por Cobranzas Integrales SRL en nombre de {who.creditor.name}" in text
    assert "Total a pagar: $ 1.650,50" in text
    assert f"Factura {who.invoices[1].number} (Vence el 08/11/2026): $ 400,50" in text
    assert f"{PUBLIC_URL}/pay" in text and f"{PUBLIC_URL}/preferences" in text
    html = clean(mail.html())
    assert f'href="{PUBLIC_URL}/unsubscribe/{token}"' in html
    assert "Gestión de cobranza: Cobranzas Integrales SRL" in html

    stored = await row(notification_id)
    assert stored.status == "sent" and stored.attempts == 1 and stored.sent_at == NOW
    assert stored.provider_id == message["Message-ID"]
    assert stored.to_address == who.email and stored.subject == message["Subject"]
    assert "$ 1.650,50" in clean(stored.body_text) and "F-2" in stored.body_html
    logged = await Interaction.objects().where(
        (Interaction.debtor == who.debtor.id) & (Interaction.kind == "message_sent")
    )
    assert [(i.channel, i.direction, i.summary) for i in logged] == [
        ("email", "outbound", message["Subject"])
    ]


async def test_names_are_escaped_in_the_html_and_plain_in_the_text(db, fakes):
    who = await party(name="<b>Ana</b> & Cía", agency="<i>Cobros</i>")
    await remind(who)
    await send(fakes)
    [mail] = fakes.smtp.to(who.email)
    assert "Hola, &lt;b&gt;Ana&lt;/b&gt; &amp; Cía:" in mail.html()
    assert "<b>Ana</b>" not in mail.html() and "<i>Cobros</i>" not in mail.html()
    assert "Hola, <b>Ana</b> & Cía:" in mail.text()


async def test_the_email_speaks_the_debtors_language(db, fakes):
    who = await party(language="en")
    await remind(who, template="overdue", stage="administrative")
    await send(fakes, now=local(BA, 2026, 11, 20, 10, 0))
    [mail] = fakes.smtp.to(who.email)
    assert mail.message["Subject"] == f"{who.creditor.name}: overdue debt notice"
    text = clean(mail.text())
    assert "has had an overdue balance for 12 days" in text
    assert "Stop receiving emails from" in text


async def test_an_sms_reminder_fits_two_segments_and_says_how_to_opt_out(db, fakes):
    who = await party(
        phone="+54 9 11 5555-0101", agency="Cobranzas Integrales del Río de la Plata SRL"
    )
    notification_id = await remind(who, channel="sms")

    await send(fakes)

    [message] = fakes.sms.messages
    assert message["to"] == "+5491155550101" and message["from"] == "+5491100000000"
    body = message["body"]
    assert is_gsm(body) and sms_segments(body) <= MAX_SEGMENTS
    assert who.creditor.name in body and "$ 1.250,00" in body and "08/11/2026" in body
    assert f"{PUBLIC_URL}/account" in body and body.endswith(
        "Responda BAJA para no recibir mas SMS."
    )
    stored = await row(notification_id)
    assert stored.status == "sent" and stored.provider_id == message["sid"]
    assert stored.body_text == body and stored.to_address == "+54 9 11 5555-0101"


async def test_a_whatsapp_reminder_is_an_approved_template_with_parameters(db, fakes):
    who = await party(whatsapp="+54 9 11 5555-0202", language="en")
    notification_id = await remind(who, channel="whatsapp")

    await send(fakes)

    [message] = fakes.wa.messages
    assert message["to"] == "5491155550202"
    template = message["template"]
    assert template["name"] == "saldo_reminder_before_due"
    assert template["language"] == {"code": "en"}
    parameters = [p["text"] for p in template["components"][0]["parameters"]]
    assert parameters == ["Ñandú Pérez", who.creditor.name, "ARS1,250.00", "Nov 8, 2026",
                          f"{PUBLIC_URL}/account"]  # fmt: skip
    stored = await row(notification_id)
    assert stored.status == "sent" and stored.provider_id == message["id"]
    assert message["biz_opaque_callback_data"] == stored.idempotency_key


async def test_without_providers_every_channel_writes_to_the_dev_outbox(db, tmp_path):
    from saldo.notify import channels_from_settings
    from saldo.settings import Settings

    settings = Settings.from_env({"SALDO_DATA_DIR": str(tmp_path)}, dotenv=None)
    channels = channels_from_settings(settings)
    assert {c.live for c in channels.values()} == {False}
    who = await party(phone="+5491155550303", whatsapp="+5491155550303")
    ids = [await remind(who, channel=c) for c in ("email", "sms", "whatsapp")]
    await send(None, channels=channels)  # type: ignore[arg-type]
    for notification_id in ids:
        assert (await row(notification_id)).status == "sent"
    [eml] = (tmp_path / "outbox" / "email").glob("*.eml")
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in eml.read_bytes()
    [sms] = (tmp_path / "outbox" / "sms").glob("*.txt")
    assert "Responda BAJA" in sms.read_text()
    [wa] = (tmp_path / "outbox" / "whatsapp").glob("*.json")
    assert "saldo_reminder_before_due" in wa.read_text()


# ---------------------------------------------------------------------------- guardrails


async def test_outside_the_window_it_is_deferred_to_the_next_allowed_moment(db, fakes):
    who = await party(country="MX", timezone=MX)
    notification_id = await remind(who)
    early = local(MX, 2026, 11, 3, 6, 20)

    await send(fakes, now=early)

    stored = await row(notification_id)
    assert stored.status == "deferred" and stored.blocked_reason == "window"
    assert stored.send_after == local(MX, 2026, 11, 3, 7, 0)  # the Mexico preset starts at 07:00
    assert stored.attempts == 0 and fakes.smtp.to(who.email) == []

    await send(fakes, now=local(MX, 2026, 11, 3, 6, 59))
    assert (await row(notification_id)).status == "deferred"
    await send(fakes, now=local(MX, 2026, 11, 3, 7, 0))
    stored = await row(notification_id)
    assert stored.status == "sent" and stored.blocked_reason == ""
    assert len(fakes.smtp.to(who.email)) == 1


async def test_a_policy_skipping_sundays_and_holidays_defers_past_them(db, fakes):
    from saldo.tables import Holiday

    who = await party(country="UY", timezone="America/Montevideo")
    await DunningPolicy(
        creditor=who.creditor.id, segment="standard", window_start=dt.time(9),
        window_end=dt.time(18), skip_sundays=True, skip_holidays=True,
    ).save()  # fmt: skip
    await Holiday.insert(Holiday(country="UY", day=dt.date(2026, 11, 9), name="Feriado de prueba"))
    notification_id = await remind(who)
    saturday_evening = local("America/Montevideo", 2026, 11, 7, 18, 30)

    await send(fakes, now=saturday_evening)

    stored = await row(notification_id)
    assert stored.status == "deferred"
    assert stored.send_after == local("America/Montevideo", 2026, 11, 10, 9, 0)


async def test_quiet_hours_from_the_preferences_hold_messages(db, fakes):
    who = await party()
    await ContactPreference(
        debtor=who.debtor.id, channel="email", opted_in=True,
        quiet_start=dt.time(11, 0), quiet_end=dt.time(14, 30),
    ).save()  # fmt: skip
    notification_id = await remind(who)
    await send(fakes)  # 12:00 in Buenos Aires
    stored = await row(notification_id)
    assert stored.status == "deferred" and stored.blocked_reason == "quiet_hours"
    assert stored.send_after == local(BA, 2026, 11, 3, 14, 30)


async def test_an_opted_out_channel_is_blocked_and_the_others_still_go(db, fakes):
    who = await party(phone="+5491155550404")
    await ContactPreference(debtor=who.debtor.id, channel="email", opted_in=False).save()
    by_email = await remind(who)
    by_sms = await remind(who, channel="sms")

    await send(fakes)

    assert (await row(by_email)).status == "blocked"
    assert (await row(by_email)).blocked_reason == "opted_out"
    assert (await row(by_sms)).status == "sent"
    assert fakes.smtp.to(who.email) == []


async def test_no_address_blocks_with_the_reason(db, fakes):
    who = await party(phone="")
    notification_id = await remind(who, channel="sms")
    await send(fakes)
    stored = await row(notification_id)
    assert (stored.status, stored.blocked_reason) == ("blocked", "no_address")


async def test_the_frequency_cap_defers_what_would_exceed_it(db, fakes):
    who = await party()
    await DunningPolicy(
        creditor=who.creditor.id, segment="standard", window_start=dt.time(8),
        window_end=dt.time(21), frequency_cap=2, frequency_window_days=7,
    ).save()  # fmt: skip
    first, second, third = [await remind(who) for _ in range(3)]

    await send(fakes)

    assert [(await row(i)).status for i in (first, second, third)] == ["sent", "sent", "deferred"]
    held = await row(third)
    assert held.blocked_reason == "cap" and held.send_after == NOW + dt.timedelta(days=7)
    assert len(fakes.smtp.to(who.email)) == 2

    receipt_like = await remind(who, template="plan_rejected", context={"plan_id": 0})
    await send(fakes)
    assert (await row(receipt_like)).status == "cancelled"  # a service message: no cap, no plan


@pytest.mark.parametrize("pause", ["dispute", "staff_pause", "promise"])
async def test_a_paused_item_blocks_its_reminder(db, fakes, pause):
    who = await party()
    invoice = who.invoices[0]
    if pause == "dispute":
        await Dispute(account=who.account.id, invoice=invoice.id, amount=125_000,
                      reason_code="not_received", status="open").save()  # fmt: skip
    elif pause == "staff_pause":
        await Account.update(
            {Account.paused_until: dt.date(2026, 11, 30), Account.pause_reason: "negociando"}
        ).where(Account.id == who.account.id)
    else:
        await PromiseToPay(account=who.account.id, amount=125_000,
                           promised_date=dt.date(2026, 11, 10)).save()  # fmt: skip
    notification_id = await remind(who)

    await send(fakes)

    stored = await row(notification_id)
    assert (stored.status, stored.blocked_reason) == ("blocked", f"pause:{pause}")
    assert fakes.smtp.to(who.email) == []


async def test_a_partly_disputed_invoice_is_reminded_for_the_undisputed_rest(db, fakes):
    who = await party()
    await Dispute(account=who.account.id, invoice=who.invoices[0].id, amount=25_000,
                  reason_code="wrong_amount", status="in_review").save()  # fmt: skip
    await remind(who)
    await send(fakes)
    [mail] = fakes.smtp.to(who.email)
    assert "Total a pagar: $ 1.000,00" in clean(mail.text())


async def test_what_was_paid_meanwhile_is_not_reminded(db, fakes):
    who = await party()
    notification_id = await remind(who)
    await post_entry(
        account_id=who.account.id, kind=EntryKind.payment, amount=-125_000, currency="ARS",
        effective_date=dt.date(2026, 11, 2), invoice_id=who.invoices[0].id,
        idempotency_key=f"test:paid:{who.invoices[0].id}",
    )  # fmt: skip
    await send(fakes)
    stored = await row(notification_id)
    assert (stored.status, stored.blocked_reason) == ("cancelled", "nothing_due")


async def test_the_judicial_stage_sends_no_message(db, fakes):
    who = await party()
    notification_id = await remind(who, template="overdue", stage="judicial")
    await send(fakes)
    stored = await row(notification_id)
    assert (stored.status, stored.blocked_reason) == ("cancelled", "judicial_stage")


async def test_a_reminder_over_two_accounts_is_held_by_a_pause_on_either(db, fakes):
    """The dunning run groups one debtor's accounts into one message with no account of its
    own; the pause of any account it mentions holds it back."""
    who = await party()
    usd = Account(creditor=who.creditor.id, debtor=who.debtor.id, currency="USD")
    await usd.save()
    dollars = await make_invoice(usd, f"U-{who.debtor.id}", 2_000, dt.date(2026, 11, 8))
    grouped = await outbox.queue(
        debtor_id=who.debtor.id, channel="email", template="reminder_before_due",
        idempotency_key=f"test:grouped:{who.debtor.id}", now=NOW,
        invoice_ids=[who.invoices[0].id, dollars.id],
    )  # fmt: skip
    await send(fakes)
    [mail] = fakes.smtp.to(who.email)
    assert "Total a pagar: $ 1.250,00 + US$ 20,00" in clean(mail.text())
    assert (await row(grouped)).status == "sent"

    again = await outbox.queue(
        debtor_id=who.debtor.id, channel="email", template="reminder_before_due",
        idempotency_key=f"test:grouped-again:{who.debtor.id}", now=NOW,
        invoice_ids=[who.invoices[0].id, dollars.id],
    )  # fmt: skip
    await Dispute(account=usd.id, invoice=dollars.id, amount=2_000, reason_code="not_received",
                  status="open").save()  # fmt: skip
    await send(fakes)
    stored = await row(again)
    assert (stored.status, stored.blocked_reason) == ("blocked", "pause:dispute")


# ---------------------------------------------------------------------------- failures


async def test_a_transient_failure_is_retried_later_with_backoff(db, fakes):
    who = await party(phone="+5491155550505")
    notification_id = await remind(who, channel="sms")
    fakes.sms.fail_next(1, 503)

    await send(fakes)

    stored = await row(notification_id)
    assert stored.status == "queued" and stored.attempts == 1
    assert "HTTP 503" in stored.last_error
    assert stored.send_after == NOW + outbox.backoff(1)
    assert fakes.sms.messages == []

    await send(fakes, now=NOW + dt.timedelta(minutes=4))
    assert (await row(notification_id)).status == "queued"
    await send(fakes, now=NOW + outbox.backoff(1))
    stored = await row(notification_id)
    assert stored.status == "sent" and stored.attempts == 2 and stored.last_error == ""
    assert len(fakes.sms.messages) == 1


async def test_a_permanent_failure_stops_and_is_visible(db, fakes):
    who = await party(phone="+5491155550606", whatsapp="+5491155550606")
    fakes.sms.unreachable.add("+5491155550606")
    fakes.wa.approved.pop("saldo_reminder_before_due")
    by_sms = await remind(who, channel="sms")
    by_wa = await remind(who, channel="whatsapp")

    await send(fakes)

    sms, wa = await row(by_sms), await row(by_wa)
    assert (sms.status, sms.attempts) == ("failed", 1) and "21610" in sms.last_error
    assert (wa.status, wa.attempts) == ("failed", 1) and "132001" in wa.last_error
    await send(fakes, now=NOW + dt.timedelta(days=1))
    assert (await row(by_sms)).attempts == 1


async def test_transient_failures_give_up_after_the_last_attempt(db, fakes):
    who = await party(whatsapp="+5491155550707")
    notification_id = await remind(who, channel="whatsapp")
    fakes.wa.fail_next(outbox.MAX_ATTEMPTS, 429, code=130429)
    now = NOW
    for attempt in range(1, outbox.MAX_ATTEMPTS + 1):
        await send(fakes, now=now)
        stored = await row(notification_id)
        assert stored.attempts == attempt
        now = now + outbox.backoff(attempt)
    assert stored.status == "failed" and "130429" in stored.last_error
    assert fakes.wa.messages == []


# ---------------------------------------------------------------------------- exactly once


async def test_two_workers_at_once_send_each_message_once(db, fakes):
    who = await party()
    ids = [await remind(who) for _ in range(6)]
    await DunningPolicy(
        creditor=who.creditor.id, segment="standard", window_start=dt.time(0),
        window_end=dt.time(0), frequency_cap=0,
    ).save()  # fmt: skip

    runs = await asyncio.gather(*(send(fakes) for _ in range(4)))

    assert sum(r.sent for r in runs) >= 6
    assert [(await row(i)).status for i in ids] == ["sent"] * 6
    ids_seen = [m.message["Message-ID"] for m in fakes.smtp.to(who.email)]
    assert len(ids_seen) == 6 == len(set(ids_seen))


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing after it runs (it is not an Exception the sender handles)."""


class CrashAfterAccept:
    """Delivers to the real channel, then dies before Saldo can record it (a killed worker)."""

    def __init__(self, channel) -> None:
        self.channel = channel
        self.name = channel.name
        self.live = True

    async def send(self, message: OutgoingMessage) -> SendResult:
        await self.channel.send(message)
        raise WorkerKilled()


async def test_a_message_left_sending_by_a_crash_is_sent_again_with_the_same_message_id(db, fakes):
    who = await party()
    notification_id = await remind(who)
    crashing = {**fakes.channels, "email": CrashAfterAccept(fakes.channels["email"])}

    with pytest.raises(WorkerKilled):
        await outbox.send_due(now=NOW, channels=crashing, public_url=PUBLIC_URL,
                              mail_from="cobranzas@saldo.example.com")  # fmt: skip

    assert (await row(notification_id)).status == "sending"  # the session that held it is gone
    await send(fakes)
    stored = await row(notification_id)
    assert stored.status == "sent" and stored.attempts == 2
    first, second = fakes.smtp.to(who.email)
    assert first.message["Message-ID"] == second.message["Message-ID"] == stored.provider_id


async def test_a_row_held_by_a_live_worker_is_left_alone(db, fakes):
    from saldo.db import DB

    who = await party()
    notification_id = await remind(who)
    await Notification.update({Notification.status: "sending"}).where(
        Notification.id == notification_id
    )
    holder = await DB.get_new_connection()  # a worker that is still sending it
    try:
        await holder.execute("SELECT pg_advisory_lock($1, $2)", outbox.LEASE_LOCK, notification_id)
        await send(fakes)
        assert (await row(notification_id)).status == "sending"
        assert fakes.smtp.to(who.email) == []
    finally:
        await holder.close()
    await send(fakes)
    assert (await row(notification_id)).status == "sent"


async def test_send_one_sends_a_row_now_and_never_twice(db, fakes):
    who = await party()
    notification_id = await remind(who)
    kwargs = dict(now=NOW, channels=fakes.channels, public_url=PUBLIC_URL, mail_from="a@b.example")
    first = await outbox.send_one(notification_id, **kwargs)
    again = await outbox.send_one(notification_id, **kwargs)
    assert (first.status, again.status) == ("sent", "sent")
    assert len(fakes.smtp.to(who.email)) == 1
