"""The channels' pure parts: the email wire format, SMS alphabet and segments, phone numbers,
unsubscribe tokens, channel settings — and every template renders within its channel's limits."""

from __future__ import annotations

import datetime as dt
from email import message_from_bytes, policy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from saldo.notify import channels_from_settings
from saldo.notify.base import Attachment, OutgoingMessage
from saldo.notify.email import SmtpChannel, message_id_for, mime_bytes
from saldo.notify.outbox import OutboxChannel
from saldo.notify.sms import MAX_SEGMENTS, TwilioSms, e164, is_gsm, sms_segments, to_gsm
from saldo.notify.unsubscribe import derive_key, make_token, read_token
from saldo.notify.whatsapp import TEMPLATES, WhatsAppCloud, wa_number
from saldo.services import notify_render as nr
from saldo.settings import Settings

NOW = dt.datetime(2026, 11, 3, 15, 0, tzinfo=dt.UTC)


def message(**values) -> OutgoingMessage:
    defaults = dict(
        channel="email", to="ana@example.com", idempotency_key="dunning:7:-5:email:2026-11-03",
        subject="Servicios Andinos: su factura vence el 08/11/2026 — ñandú",
        text="Hola, Ñandú:\n\n. una línea que empieza con punto\nTotal: $ 1.250,00\n",
        html="<p>Hola, <strong>Ñandú</strong></p>" + "<p>relleno</p>" * 40,
        sender="Cobranzas Ñandú <cobranzas@saldo.example.com>",
        unsubscribe_url="https://saldo.example.com/unsubscribe/7-email-abc",
    )  # fmt: skip
    return OutgoingMessage(**{**defaults, **values})


def parse(data: bytes):
    return message_from_bytes(data, policy=policy.default)


def test_the_email_parses_back_with_both_parts_and_the_one_click_headers():
    data, message_id = mime_bytes(message(), date=NOW)
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    parsed = parse(data)
    assert (
        parsed["Message-ID"]
        == message_id
        == message_id_for("dunning:7:-5:email:2026-11-03", "cobranzas@saldo.example.com")
    )
    assert parsed["From"] == "Cobranzas Ñandú <cobranzas@saldo.example.com>"
    assert parsed["Subject"] == "Servicios Andinos: su factura vence el 08/11/2026 — ñandú"
    assert parsed["List-Unsubscribe"] == "<https://saldo.example.com/unsubscribe/7-email-abc>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed.get_content_type() == "multipart/alternative"
    text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.rstrip("\n") == message().text.rstrip("\n")  # the line with a dot survives
    assert "<strong>Ñandú</strong>" in parsed.get_body(("html",)).get_content()
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))


def test_the_message_id_is_the_same_every_time_a_row_is_sent():
    first, _ = mime_bytes(message(), date=NOW)
    again, _ = mime_bytes(message(), date=NOW + dt.timedelta(hours=3))
    assert parse(first)["Message-ID"] == parse(again)["Message-ID"]
    other, _ = mime_bytes(message(idempotency_key="dunning:7:-1:email:2026-11-07"), date=NOW)
    assert parse(other)["Message-ID"] != parse(first)["Message-ID"]


def test_attachments_make_it_mixed_and_arrive_intact():
    pdf = Attachment(
        "comprobante-12.pdf", "application/pdf", b"%PDF-1.7\n" + bytes(range(256)) * 20
    )
    parsed = parse(mime_bytes(message(attachments=(pdf,)), date=NOW)[0])
    assert parsed.get_content_type() == "multipart/mixed"
    [part] = list(parsed.iter_attachments())
    assert (part.get_filename(), part.get_content_type()) == (
        "comprobante-12.pdf",
        "application/pdf",
    )
    assert part.get_content() == pdf.data
    assert "Total: $ 1.250,00" in parsed.get_body(("plain",)).get_content()


def test_header_injection_is_flattened():
    parsed = parse(mime_bytes(message(subject="Hola\r\nBcc: otro@example.com"), date=NOW)[0])
    assert parsed["Bcc"] is None and parsed["Subject"] == "Hola Bcc: otro@example.com"


@given(st.text(max_size=400))
def test_to_gsm_always_gives_the_gsm_alphabet(text):
    assert is_gsm(to_gsm(text))


def test_spanish_accents_are_written_plainly_and_kept_when_the_alphabet_has_them():
    assert to_gsm("Regularícela ¿ya pagó? Ñandú ü é") == "Regularicela ¿ya pago? Ñandu ü é"
    assert to_gsm("$\xa01.250,00 — «hola»") == '$ 1.250,00 - "hola"'


@pytest.mark.parametrize(
    ("text", "segments"),
    [("a" * 160, 1), ("a" * 161, 2), ("a" * 306, 2), ("a" * 307, 3), ("€" * 80, 1),
     ("€" * 81, 2), ("á" * 70, 1), ("á" * 71, 2)],
)  # fmt: skip
def test_segments_follow_the_gsm_and_ucs2_limits(text, segments):
    assert sms_segments(text) == segments


def test_phone_numbers():
    assert e164("+54 9 11 5555-0101") == "+5491155550101"
    assert e164("0054 9 11 5555 0101") == "+5491155550101"
    assert e164("5555") is None and e164("") is None
    assert wa_number("+54 9 11 5555-0101") == "5491155550101"


def test_unsubscribe_tokens_are_signed_per_debtor_and_channel():
    key = derive_key("secret")
    token = make_token(key, 42, "sms")
    assert read_token(key, token).debtor_id == 42 and read_token(key, token).channel == "sms"
    assert read_token(derive_key("other"), token) is None
    assert read_token(key, token.replace("-sms-", "-email-")) is None
    assert read_token(key, "43" + token[2:]) is None
    assert read_token(key, "not a token") is None


def test_channels_come_from_settings_and_fall_back_to_the_dev_outbox(tmp_path):
    bare = channels_from_settings(Settings.from_env({"SALDO_DATA_DIR": str(tmp_path)}, dotenv=None))
    assert all(isinstance(c, OutboxChannel) and not c.live for c in bare.values())
    assert bare["sms"].directory == tmp_path / "outbox" / "sms"
    full = channels_from_settings(
        Settings.from_env(
            {
                "SALDO_DATA_DIR": str(tmp_path), "SMTP_URL": "smtp://mail.example:2525",
                "SMS_API_URL": "https://api.twilio.com", "SMS_ACCOUNT_SID": "AC1",
                "SMS_AUTH_TOKEN": "t", "SMS_FROM": "+15550001",
                "WHATSAPP_API_URL": "https://graph.facebook.com", "WHATSAPP_TOKEN": "w",
                "WHATSAPP_PHONE_NUMBER_ID": "123",
            },
            dotenv=None,
        )
    )  # fmt: skip
    assert isinstance(full["email"], SmtpChannel) and full["email"].server.port == 2525
    assert isinstance(full["sms"], TwilioSms) and full["sms"].path.endswith("/AC1/Messages.json")
    assert (
        isinstance(full["whatsapp"], WhatsAppCloud)
        and full["whatsapp"].path == "/v20.0/123/messages"
    )


@pytest.mark.parametrize(
    ("env", "words"),
    [({"SMS_API_URL": "https://api.twilio.com"}, "SMS_ACCOUNT_SID"),
     ({"WHATSAPP_TOKEN": "w"}, "WHATSAPP_API_URL"),
     ({"SMS_API_URL": "ftp://x", "SMS_ACCOUNT_SID": "a", "SMS_AUTH_TOKEN": "b", "SMS_FROM": "c"},
      "SMS_API_URL")],
)  # fmt: skip
def test_half_configured_channels_are_refused_by_name(env, words):
    with pytest.raises(ValueError, match=words):
        Settings.from_env(env, dotenv=None)


# ---------------------------------------------------------------------------- every template

PARTY = nr.Party(
    debtor_id=7, name="María de los Ángeles Fernández Quiroga", email="m@example.com",
    phone="+5491155550101", whatsapp="+5491155550101", language="es",
    timezone="America/Argentina/Buenos_Aires", country="AR",
    creditor="Distribuidora Eléctrica del Noroeste Argentino S.A.",
    agency="Estudio Jurídico y Cobranzas Integrales del Río de la Plata SRL", currency="ARS",
)  # fmt: skip


@pytest.mark.parametrize("language", ["es", "en"])
@pytest.mark.parametrize("kind", nr.PREVIEWABLE)
def test_every_kind_renders_on_every_channel_naming_creditor_and_a_way_out(kind, language):
    values = nr.sample_values(kind, PARTY, dt.date(2026, 11, 3), language)
    for channel in nr.CHANNELS:
        links = nr.links_for(
            "https://saldo.example.com", debtor_id=7, channel=channel, unsubscribe_key=b"k" * 32
        )
        rendered = nr.render(kind, channel, PARTY, links, values, language=language)
        if channel == "email":
            assert PARTY.creditor in rendered.text and PARTY.agency in rendered.text
            assert links.preferences_url in rendered.text and links.unsubscribe_url in rendered.html
            assert links.public_url in rendered.text
            assert "{" not in rendered.subject and rendered.subject.strip()
        elif channel == "sms":
            assert sms_segments(rendered.text) <= MAX_SEGMENTS and is_gsm(rendered.text)
            assert "https://saldo.example.com/" in rendered.text
            assert ("BAJA" if language == "es" else "STOP") in rendered.text
            assert to_gsm(PARTY.creditor[:20]) in rendered.text
        else:
            template = TEMPLATES[kind]
            assert rendered.template == template.name
            assert len(rendered.parameters) == len(template.parameters)
            assert all(p.strip() for p in rendered.parameters)
