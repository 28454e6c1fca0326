"""Email: the `EmailSender` protocol, SMTP delivery and the development outbox.

`email_sender_from_settings()` picks the implementation once: `SmtpEmail` when SMTP_URL is set,
else `OutboxEmail`, which writes each message to `$SALDO_DATA_DIR/outbox/<timestamp>-<id>.eml`
and logs where it went (and the links in it), so a developer can sign in without a mail server.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from saldo.settings import Settings

log = logging.getLogger("saldo.notify.email")

_LINK = re.compile(r"https?://\S+")
_TRUE = {"1", "true", "yes", "on"}


class EmailSender(Protocol):
    """Delivers one message; raises on failure (callers decide whether to retry or log)."""

    async def send(self, message: EmailMessage) -> None: ...


@dataclass(frozen=True)
class Attachment:
    """A file sent along with a message (`content_type` such as "application/pdf")."""

    filename: str
    content_type: str
    data: bytes


def build_message(
    *,
    sender: str,
    to: str,
    subject: str,
    text: str,
    html: str,
    attachments: Sequence[Attachment] = (),
) -> EmailMessage:
    """A multipart/alternative message: plain text first, HTML as the richer alternative.

    With `attachments` the message is multipart/mixed: the alternative part, then each file.
    """
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.data,
            maintype=maintype,
            subtype=subtype or "octet-stream",
            filename=attachment.filename,
        )
    return message


def text_part(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return str(part.get_content()) if part is not None else ""


# --- SMTP ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpEmail:
    """Sends through an SMTP server: `smtp://user:pass@host:port`.

    `smtps://` is implicit TLS (default port 465); `?starttls=1` upgrades a plain connection
    (default port 587). Plain `smtp://` without it talks in the clear (default port 25), which is
    right for a local relay or a sink such as Mailpit.
    """

    hostname: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False
    start_tls: bool = False
    timeout: float = 15.0

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 15.0) -> SmtpEmail:
        parts = urlsplit(url)
        if parts.scheme not in {"smtp", "smtps"}:
            raise ValueError("SMTP_URL must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError("SMTP_URL needs a host, e.g. smtp://mail.example.com:587")
        use_tls = parts.scheme == "smtps"
        flag = parse_qs(parts.query).get("starttls", ["0"])[0].lower()
        start_tls = not use_tls and flag in _TRUE
        default_port = 465 if use_tls else 587 if start_tls else 25
        return cls(
            hostname=parts.hostname,
            port=parts.port or default_port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=use_tls,
            start_tls=start_tls,
            timeout=timeout,
        )

    async def send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(
            message,
            hostname=self.hostname,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.use_tls,
            start_tls=self.start_tls,
            timeout=self.timeout,
        )


# --- outbox -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxEmail:
    """Development sink: one `.eml` file per message under `directory`, plus a log line."""

    directory: Path

    async def send(self, message: EmailMessage) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.directory / f"{stamp}-{secrets.token_hex(4)}.eml"
        await asyncio.to_thread(self._write, path, message.as_bytes(policy=policy.SMTP))
        links = _LINK.findall(text_part(message))
        log.info(
            "no SMTP_URL: mail to %s (%s) written to %s%s",
            message["To"],
            message["Subject"],
            path,
            "".join(f"\n  link: {link}" for link in links),
        )

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def email_sender_from_settings(settings: Settings) -> EmailSender:
    if settings.smtp_url:
        return SmtpEmail.from_url(settings.smtp_url)
    return OutboxEmail(settings.data_path / "outbox")
