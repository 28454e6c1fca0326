"""Outgoing messages: the `Channel` protocol, its adapters and the templates they carry.

Channels (see `saldo.notify.base`): email over SMTP (`email.SmtpChannel`), SMS through a
Twilio-style API (`sms.TwilioSms`), WhatsApp through the Cloud API (`whatsapp.WhatsAppCloud`),
and the development sink (`outbox.OutboxChannel`) standing in for any of them that is not
configured. `channels_from_settings()` builds the three once; the worker keeps them in
`ctx["channels"]`, and the outbox sender (`saldo.services.outbox`) is their only user besides
the portal's sign-in links.

Message bodies live in `templates/notify/<kind>.txt` and `.html` (email) and
`<kind>.sms.txt` (SMS), rendered in the recipient's language with the same catalogs as the web
pages; WhatsApp carries approved templates (`whatsapp.TEMPLATES`).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from saldo import i18n
from saldo.notify.base import (
    Attachment,
    Channel,
    OutgoingMessage,
    PermanentSendError,
    SendError,
    SendResult,
    TransientSendError,
    open_sender,
)
from saldo.notify.email import (
    EmailSender,
    OutboxEmail,
    SenderChannel,
    SmtpChannel,
    SmtpEmail,
    build_message,
    email_sender_from_settings,
    text_part,
)
from saldo.notify.outbox import OutboxChannel
from saldo.notify.sms import TwilioSms
from saldo.notify.whatsapp import WhatsAppCloud
from saldo.settings import Settings

__all__ = [
    "Attachment",
    "Channel",
    "EmailSender",
    "OutboxEmail",
    "OutgoingMessage",
    "PermanentSendError",
    "SendError",
    "SendResult",
    "SenderChannel",
    "SmtpChannel",
    "SmtpEmail",
    "TransientSendError",
    "build_message",
    "channels_from_settings",
    "email_sender_from_settings",
    "open_sender",
    "render_email",
    "render_text",
    "text_part",
]

TEMPLATES_DIR = Path(__file__).resolve().parent.parent.parent / "templates"


def channels_from_settings(settings: Settings) -> dict[str, Channel]:
    """The three channels: each real one when its settings are there, else the file sink."""
    outbox = settings.data_path / "outbox"
    channels: dict[str, Channel] = {}
    channels["email"] = (
        SmtpChannel(SmtpEmail.from_url(settings.smtp_url))
        if settings.smtp_url
        else OutboxChannel(outbox / "email", "email")
    )
    if (
        settings.sms_api_url
        and settings.sms_account_sid
        and settings.sms_auth_token
        and settings.sms_from
    ):
        channels["sms"] = TwilioSms(
            settings.sms_api_url,
            settings.sms_account_sid,
            settings.sms_auth_token,
            settings.sms_from,
        )
    else:
        channels["sms"] = OutboxChannel(outbox / "sms", "sms")
    if settings.whatsapp_api_url and settings.whatsapp_token and settings.whatsapp_phone_number_id:
        channels["whatsapp"] = WhatsAppCloud(
            settings.whatsapp_api_url, settings.whatsapp_token, settings.whatsapp_phone_number_id
        )
    else:
        channels["whatsapp"] = OutboxChannel(outbox / "whatsapp", "whatsapp")
    return channels


def _translators(language: str, html: bool) -> dict[str, Any]:
    """`_` and `ngettext` for templates, bound to one language, behaving as Jinja's newstyle
    gettext: the text is always a format string (`%(name)s` from keyword arguments, `%%` for
    a percent sign), and in HTML the values are escaped."""

    def _(message: str, **values: Any) -> str:
        text: str = i18n.gettext(language, message)
        if html:  # the catalog's own text; the values are escaped by Markup's `%`
            text = Markup(text)  # noqa: S704
        return text % values

    def ngettext(singular: str, plural: str, n: int, **values: Any) -> str:
        return _(singular if n == 1 else plural, **{"num": n, **values})

    return {"_": _, "gettext": _, "ngettext": ngettext}


@cache
def _environment(language: str, html: bool) -> Environment:
    """One environment per language and kind (HTML escapes, text does not): a translated
    string is then one plain call, not two context lookups per string."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"], default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # templates change with a deploy, not while the worker runs
    )
    env.globals.update(_translators(language, html))
    return env


def _language(language: str) -> str:
    return language if language in i18n.SUPPORTED_LANGUAGES else i18n.DEFAULT_LANGUAGE


def render_email(name: str, language: str, context: dict[str, Any]) -> tuple[str, str]:
    """Render `templates/notify/<name>.txt` and `.html` in `language`: (text, html)."""
    lang = _language(language)
    values = {**context, "lang": lang}
    text = _environment(lang, False).get_template(f"notify/{name}.txt").render(values)
    html = _environment(lang, True).get_template(f"notify/{name}.html").render(values)
    return text, html


def render_text(name: str, language: str, context: dict[str, Any]) -> str:
    """Render one plain-text template, `templates/notify/<name>` (e.g. `overdue.sms.txt`)."""
    lang = _language(language)
    return (
        _environment(lang, False).get_template(f"notify/{name}").render({**context, "lang": lang})
    )
