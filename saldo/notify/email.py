"""Email: the `EmailSender` protocol, SMTP delivery, the email `Channel` and the dev outbox.

Two ways to send, one wire format:

- `EmailSender` (`send(EmailMessage)`) is the plain interface the portal's sign-in uses;
  `email_sender_from_settings()` picks `SmtpEmail` when SMTP_URL is set, else `OutboxEmail`,
  which writes each message to `$SALDO_DATA_DIR/outbox/email/<timestamp>-<id>.eml` and logs
  where it went (and the links in it), so a developer can sign in without a mail server.
- `SmtpChannel` is the outbox's email `Channel`: it builds the message bytes itself
  (`mime_bytes`: multipart text + HTML, attachments, `List-Unsubscribe` with
  `List-Unsubscribe-Post: List-Unsubscribe=One-Click`, and a `Message-ID` derived from the
  outbox row's idempotency key, so a message sent again after a crash has the same id) and
  sends a batch over one SMTP session (`saldo.notify.smtp_session`: pipelined when the server
  offers PIPELINING). `SenderChannel` puts any `EmailSender` behind the same `Channel`
  interface.

SMTP replies are sorted for the outbox: 5xx to a recipient or to the message, and an address
that cannot be written into a command, are permanent (`PermanentSendError`); 4xx, a refused
sender or login, timeouts and dropped connections are transient (`TransientSendError`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import logging
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, formatdate, make_msgid, parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import parse_qs, quote, unquote, urlsplit

import aiosmtplib

from saldo.notify.base import (
    Attachment,
    OutgoingMessage,
    PermanentSendError,
    SendFunction,
    SendResult,
    TransientSendError,
    message_token,
)
from saldo.notify.smtp_session import SmtpReplyError, SmtpSession
from saldo.settings import Settings

__all__ = [
    "Attachment",
    "EmailSender",
    "OutboxEmail",
    "SenderChannel",
    "SmtpChannel",
    "SmtpEmail",
    "build_message",
    "email_message",
    "email_sender_from_settings",
    "message_id_for",
    "mime_bytes",
    "text_part",
]

log = logging.getLogger("saldo.notify.email")

_LINK = re.compile(r"https?://\S+")
_TRUE = {"1", "true", "yes", "on"}
_CRLF = b"\r\n"


class EmailSender(Protocol):
    """Delivers one message; raises on failure (callers decide whether to retry or log)."""

    async def send(self, message: EmailMessage) -> None: ...


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


# --- the wire format of an outbox message -------------------------------------------------------


@lru_cache(maxsize=64)
def _domain(sender: str) -> str:
    return parseaddr(sender)[1].rpartition("@")[2] or "localhost"


def message_id_for(idempotency_key: str, sender: str) -> str:
    """`<token@sender's domain>`: the same outbox row always gets the same Message-ID."""
    return f"<{message_token(idempotency_key)}@{_domain(sender)}>"


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _header(name: str, value: str) -> bytes:
    value = _one_line(value)
    if value.isascii():
        return f"{name}: {value}".encode() + _CRLF
    encoded = Header(value, "utf-8", maxlinelen=76, header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}".encode("ascii") + _CRLF


def _address(value: str) -> str:
    if "<" not in value and "," not in value and value.isascii() and "@" in value:
        return value.strip()  # a bare address, as outbox rows carry: nothing to parse
    name, address = parseaddr(_one_line(value))
    return formataddr((name, address), charset="utf-8") if address else ""


@lru_cache(maxsize=64)
def _sender_header(sender: str) -> bytes:
    return _header("From", _address(sender))


def _quoted_printable(text: str) -> bytes:
    data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
    return binascii.b2a_qp(data, quotetabs=False, istext=True).replace(b"\n", _CRLF)


#: The longest line a body may have to go unencoded (RFC 5322 allows 998 octets and CRLF).
_LONGEST: Final = 990


def _text_part(subtype: str, text: str, *, eight_bit: bool = False) -> bytes:
    if eight_bit:
        data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
        # As it is, unless a line is too long, or it holds a NUL or what starts a boundary.
        fits = len(data) < _LONGEST or max(map(len, data.split(b"\n"))) < _LONGEST
        if fits and b"\0" not in data and b"=_" not in data:
            return (
                f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
                f"Content-Transfer-Encoding: {'7bit' if data.isascii() else '8bit'}\r\n\r\n"
            ).encode() + data.replace(b"\n", _CRLF)
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode() + _quoted_printable(text)


def _filename(name: str) -> str:
    clean = _one_line(name).replace('"', "") or "adjunto"
    if clean.isascii():
        return f'filename="{clean}"'
    return f"filename*=utf-8''{quote(clean, safe='')}"


def _attachment_part(attachment: Attachment) -> bytes:
    content_type = (
        attachment.content_type if "/" in attachment.content_type else "application/octet-stream"
    )
    return (
        f"Content-Type: {content_type}\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        f"Content-Disposition: attachment; {_filename(attachment.filename)}\r\n\r\n"
    ).encode() + base64.encodebytes(attachment.data).replace(b"\n", _CRLF)


def _multipart(subtype: str, boundary: str, parts: Sequence[bytes]) -> bytes:
    out = [f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode()]
    for part in parts:
        out.append(f"--{boundary}\r\n".encode())
        out.append(part if part.endswith(_CRLF) else part + _CRLF)
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def mime_bytes(
    message: OutgoingMessage, *, date: dt.datetime, eight_bit: bool = False
) -> tuple[bytes, str]:
    """The message as sent over SMTP (CRLF line ends), and its Message-ID.

    multipart/alternative (text, then HTML; text alone when there is no HTML), wrapped in
    multipart/mixed when there are attachments. Bodies are quoted-printable UTF-8 — with
    `eight_bit` (for a server that offers 8BITMIME) UTF-8 as it is, when no line is too long
    — and files base64. With `unsubscribe_url` the List-Unsubscribe headers of RFC 2369 and
    RFC 8058.
    Built by hand rather than with `email.message.EmailMessage`, which is about forty times
    slower and is what limits a large batch.
    """
    token = message_token(message.idempotency_key)
    message_id = message_id_for(message.idempotency_key, message.sender)
    headers = [
        _sender_header(message.sender),
        _header("To", _address(message.to)),
        _header("Subject", message.subject),
        _header("Date", format_datetime(date.astimezone(dt.UTC), usegmt=True)),
        _header("Message-ID", message_id),
        b"MIME-Version: 1.0" + _CRLF,
    ]
    if message.unsubscribe_url:
        headers.append(_header("List-Unsubscribe", f"<{message.unsubscribe_url}>"))
        headers.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" + _CRLF)
    body = (
        _multipart(
            "alternative",
            f"=_a{token}",
            [
                _text_part("plain", message.text, eight_bit=eight_bit),
                _text_part("html", message.html, eight_bit=eight_bit),
            ],
        )
        if message.html
        else _text_part("plain", message.text, eight_bit=eight_bit)
    )
    if message.attachments:
        body = _multipart(
            "mixed", f"=_m{token}", [body, *(_attachment_part(a) for a in message.attachments)]
        )
    return b"".join(headers) + body, message_id


def email_message(message: OutgoingMessage, *, date: dt.datetime) -> EmailMessage:
    """`mime_bytes` as an `EmailMessage`, for an `EmailSender`."""
    data, _ = mime_bytes(message, date=date)
    parsed = message_from_bytes(data, policy=policy.SMTP)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@lru_cache(maxsize=64)
def _envelope(sender: str) -> str:
    return parseaddr(sender)[1]


def _recipient(to: str) -> str:
    if "<" not in to and "," not in to:
        return to.strip()  # a bare address, as outbox rows carry
    return parseaddr(to)[1]


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

    async def session(self) -> SmtpSession:
        """A new SMTP session for many messages (`saldo.notify.smtp_session`)."""
        return await SmtpSession.open(
            hostname=self.hostname,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.use_tls,
            start_tls=self.start_tls,
            time_limit=self.timeout,
        )


def _smtp_failure(exc: Exception) -> TransientSendError | PermanentSendError:
    """Sort an SMTP failure: a 5xx about the recipient or the message is permanent."""
    if isinstance(exc, SmtpReplyError):
        if exc.stage == "rcpt":
            kind = PermanentSendError if exc.permanent else TransientSendError
            return kind(f"recipient {'refused' if exc.permanent else 'deferred'}: {exc}")
        if exc.permanent:
            return PermanentSendError(str(exc))
    return TransientSendError(f"{type(exc).__name__}: {exc}")


@dataclass(frozen=True)
class SmtpChannel:
    """The email `Channel` over SMTP; `connection()` sends a batch over one connection."""

    server: SmtpEmail
    name: str = "email"
    live: bool = True

    async def send(self, message: OutgoingMessage) -> SendResult:
        async with self.connection() as send:
            return await send(message)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[SendFunction]:
        session: SmtpSession | None = None

        async def send(message: OutgoingMessage) -> SendResult:
            nonlocal session
            try:
                if session is None:
                    session = await self.server.session()
                data, message_id = mime_bytes(message, date=_now(), eight_bit=session.eight_bit)
                await session.send(_envelope(message.sender), _recipient(message.to), data)
            except (SmtpReplyError, OSError, TimeoutError) as exc:
                # After a refused transaction the session is reset and goes on; after anything
                # else its state is unknown: the next message starts a new one.
                if session is not None and not session.usable:
                    session.close()
                    session = None
                raise _smtp_failure(exc) from exc
            return SendResult(message_id)

        try:
            yield send
        finally:
            if session is not None:
                try:
                    await session.quit()
                except (SmtpReplyError, OSError, TimeoutError):
                    session.close()


@dataclass(frozen=True)
class SenderChannel:
    """Any `EmailSender` as the email `Channel`; every failure counts as transient."""

    sender: EmailSender
    name: str = "email"
    live: bool = True

    async def send(self, message: OutgoingMessage) -> SendResult:
        built = email_message(message, date=_now())
        try:
            await self.sender.send(built)
        except (PermanentSendError, TransientSendError):
            raise
        except Exception as exc:
            raise TransientSendError(f"{type(exc).__name__}: {exc}") from exc
        return SendResult(str(built["Message-ID"]))


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
    return OutboxEmail(settings.data_path / "outbox" / "email")
