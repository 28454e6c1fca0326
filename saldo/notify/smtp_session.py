"""One SMTP session that carries many messages, pipelined when the server offers it.

`SmtpSession.open()` connects (plain, implicit TLS or STARTTLS), says EHLO (HELO when the
server knows no ESMTP) and logs in (AUTH PLAIN or LOGIN) when given a user. `send()` then
runs one mail transaction: with PIPELINING (RFC 2920) MAIL FROM, RCPT TO and DATA go out in
one write and their three replies are read together, then the message and its final dot in
another — two round trips instead of four; without it, each command waits for its reply.
Nothing is parsed twice: the caller hands over the finished bytes (CRLF line ends, as
`saldo.notify.email.mime_bytes` writes them; 8-bit only when `eight_bit` says the server takes
it, and then announced with BODY=8BITMIME), and only the dot-stuffing of RFC 5321 §4.5.2 is
done here.

A refused command raises `SmtpReplyError` with the stage it failed at ("connect", "helo",
"tls", "auth", "address", "mail", "rcpt", "data" or "message") and the server's code; after
a refused transaction the session is reset (RSET) and sends the next message. A timeout or a
dropped connection raises `TimeoutError` or `OSError`, and `usable` turns False: the
session's state is unknown and it must be closed.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from functools import cache
from typing import Final

__all__ = ["SmtpReplyError", "SmtpSession"]

_CRLF: Final = b"\r\n"
_BAD_IN_ADDRESS: Final = frozenset("<>\r\n\0 \t")


class SmtpReplyError(Exception):
    """The server answered a command with an error."""

    def __init__(self, stage: str, code: int, text: str) -> None:
        super().__init__(f"{stage}: {code} {text}")
        self.stage = stage
        self.code = code
        self.text = text

    @property
    def permanent(self) -> bool:
        """A 5xx about the recipient or the message: sending it again cannot help."""
        return self.stage in ("rcpt", "data", "message", "address") and 500 <= self.code < 600


@cache
def _local_hostname() -> str:
    return socket.getfqdn() or "localhost"


def _address(value: str, utf8: bool) -> bytes:
    if not value or _BAD_IN_ADDRESS.intersection(value):
        raise SmtpReplyError("address", 553, f"not a usable address: {value!r}")
    if not value.isascii() and not utf8:
        raise SmtpReplyError("address", 553, f"the server takes no non-ASCII address: {value}")
    return value.encode()


def dot_stuffed(data: bytes) -> bytes:
    """The message as DATA carries it: lines starting with "." doubled, then CRLF "." CRLF."""
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    if not data.endswith(_CRLF):
        data += _CRLF
    return data + b".\r\n"


class SmtpSession:
    """An open SMTP connection (see the module docstring); close with `quit()` or `close()`."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout: float
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout = timeout
        self.extensions: dict[str, str] = {}
        self.usable = True  # False once the conversation is in an unknown state

    @property
    def pipelining(self) -> bool:
        return "PIPELINING" in self.extensions

    @property
    def eight_bit(self) -> bool:
        """Whether the server takes 8-bit message bodies (RFC 6152)."""
        return "8BITMIME" in self.extensions

    @classmethod
    async def open(
        cls,
        *,
        hostname: str,
        port: int,
        username: str | None = None,
        password: str | None = None,
        use_tls: bool = False,
        start_tls: bool = False,
        time_limit: float = 15.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> SmtpSession:
        """Connect and greet; `time_limit` bounds that and every later exchange (seconds).

        TLS verifies the server against the system's certificates unless `tls_context` says
        otherwise."""
        context = (tls_context or ssl.create_default_context()) if use_tls or start_tls else None
        async with asyncio.timeout(time_limit):
            reader, writer = await asyncio.open_connection(
                hostname,
                port,
                ssl=context if use_tls else None,
                server_hostname=hostname if use_tls else None,
            )
            session = cls(reader, writer, time_limit)
            try:
                code, text = await session._reply()
                if code != 220:
                    raise SmtpReplyError("connect", code, text)
                await session._hello()
                if start_tls:
                    if "STARTTLS" not in session.extensions:
                        raise SmtpReplyError("tls", 502, "the server does not offer STARTTLS")
                    await session._expect(b"STARTTLS\r\n", 220, "tls")
                    assert context is not None
                    await writer.start_tls(context, server_hostname=hostname)
                    await session._hello()
                if username is not None:
                    await session._login(username, password or "")
            except BaseException:
                session.close()
                raise
        return session

    async def send(self, sender: str, recipient: str, data: bytes) -> str:
        """Send one message (`data` with CRLF line ends); returns the server's final reply."""
        utf8 = "SMTPUTF8" in self.extensions
        mail_from, rcpt_to = _address(sender, utf8), _address(recipient, utf8)
        parameters = b""
        if not data.isascii():
            if not self.eight_bit:
                raise SmtpReplyError("message", 554, "the server takes 7-bit messages only")
            parameters += b" BODY=8BITMIME"
        if utf8 and not (sender.isascii() and recipient.isascii()):
            parameters += b" SMTPUTF8"
        mail = b"MAIL FROM:<" + mail_from + b">" + parameters + _CRLF
        rcpt = b"RCPT TO:<" + rcpt_to + b">\r\n"
        try:
            async with asyncio.timeout(self.timeout):
                return await self._transaction(mail, rcpt, data)
        except SmtpReplyError as exc:
            if exc.stage == "reply":
                self.usable = False
            raise
        except BaseException:
            self.usable = False
            raise

    async def _transaction(self, mail: bytes, rcpt: bytes, data: bytes) -> str:
        if self.pipelining:
            self.writer.write(mail + rcpt + b"DATA\r\n")
            replies = [await self._reply(), await self._reply(), await self._reply()]
        else:
            replies = []
            for command in (mail, rcpt, b"DATA\r\n"):
                self.writer.write(command)
                replies.append(await self._reply())
                if _failure(replies) is not None:
                    break
        failure = _failure(replies)
        if failure is not None:
            if len(replies) == 3 and replies[2][0] == 354:
                self.writer.write(b".\r\n")  # DATA went through after all: send nothing
                await self._reply()
            self.writer.write(b"RSET\r\n")
            if (await self._reply())[0] != 250:
                self.usable = False
            raise failure
        self.writer.write(dot_stuffed(data))
        code, text = await self._reply()
        if code // 100 != 2:
            raise SmtpReplyError("message", code, text)
        return text

    async def quit(self) -> None:
        try:
            async with asyncio.timeout(self.timeout):
                self.writer.write(b"QUIT\r\n")
                await self._reply()
        finally:
            self.close()

    def close(self) -> None:
        self.usable = False
        self.writer.close()

    # ----------------------------------------------------------------- the conversation

    async def _reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = await self.reader.readline()
            if not line.endswith(b"\n"):
                raise ConnectionResetError("the SMTP server closed the connection")
            lines.append(line[4:].strip())
            if line[3:4] != b"-":
                break
        try:
            code = int(line[:3])
        except ValueError:
            raise SmtpReplyError("reply", 0, line.decode("utf-8", "replace").strip()) from None
        return code, b"\n".join(lines).decode("utf-8", "replace")

    async def _expect(self, command: bytes, code: int, stage: str) -> str:
        self.writer.write(command)
        got, text = await self._reply()
        if got != code:
            raise SmtpReplyError(stage, got, text)
        return text

    async def _hello(self) -> None:
        self.writer.write(b"EHLO " + _local_hostname().encode() + _CRLF)
        code, text = await self._reply()
        if code != 250:
            await self._expect(b"HELO " + _local_hostname().encode() + _CRLF, 250, "helo")
            self.extensions = {}
            return
        self.extensions = {}
        for line in text.split("\n")[1:]:
            keyword, _, params = line.partition(" ")
            self.extensions[keyword.upper()] = params

    async def _login(self, username: str, password: str) -> None:
        methods = self.extensions.get("AUTH", "").upper().split()
        if "PLAIN" in methods:
            token = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
            await self._expect(f"AUTH PLAIN {token}\r\n".encode(), 235, "auth")
        elif "LOGIN" in methods:
            await self._expect(b"AUTH LOGIN\r\n", 334, "auth")
            await self._expect(base64.b64encode(username.encode()) + _CRLF, 334, "auth")
            await self._expect(base64.b64encode(password.encode()) + _CRLF, 235, "auth")
        else:
            raise SmtpReplyError("auth", 504, "the server offers neither AUTH PLAIN nor LOGIN")


def _failure(replies: list[tuple[int, str]]) -> SmtpReplyError | None:
    """The first refusal among the replies to MAIL FROM, RCPT TO and DATA."""
    for stage, (code, text) in zip(("mail", "rcpt", "data"), replies, strict=False):
        if (code != 354) if stage == "data" else (code // 100 != 2):
            return SmtpReplyError(stage, code, text)
    return None
