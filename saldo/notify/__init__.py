"""Outgoing messages: channel adapters and the templates they carry.

Each channel is a Protocol with a real implementation and a development fake, chosen from the
settings once and injected (the web app keeps the email sender in `app.state.email_sender`).
Today there is email (`SmtpEmail`, `OutboxEmail`); SMS and WhatsApp arrive with the
notifications work.

Message bodies live in `templates/notify/<name>.txt` and `.html`, rendered in the recipient's
language with the same catalogs as the web pages.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context, select_autoescape
from jinja2.runtime import Context

from saldo import i18n
from saldo.notify.email import (
    EmailSender,
    OutboxEmail,
    SmtpEmail,
    build_message,
    email_sender_from_settings,
    text_part,
)

__all__ = [
    "EmailSender",
    "OutboxEmail",
    "SmtpEmail",
    "build_message",
    "email_sender_from_settings",
    "render_email",
    "text_part",
]

TEMPLATES_DIR = Path(__file__).resolve().parent.parent.parent / "templates"


@pass_context
def _gettext(context: Context, message: str) -> str:
    return i18n.gettext(str(context.get("lang") or i18n.DEFAULT_LANGUAGE), message)


@pass_context
def _ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    return _gettext(context, singular if n == 1 else plural)


@cache
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(["html"], default_for_string=False),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=_gettext, ngettext=_ngettext, newstyle=True
    )
    return env


def render_email(name: str, language: str, context: dict[str, Any]) -> tuple[str, str]:
    """Render `templates/notify/<name>.txt` and `.html` in `language`: (text, html)."""
    if language not in i18n.SUPPORTED_LANGUAGES:
        language = i18n.DEFAULT_LANGUAGE
    env = _environment()
    values = {**context, "lang": language}
    text = env.get_template(f"notify/{name}.txt").render(values)
    html = env.get_template(f"notify/{name}.html").render(values)
    return text, html
