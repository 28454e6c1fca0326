"""The outbox's SMTP session against a real SMTP server on loopback (aiosmtpd): pipelined when
the server offers PIPELINING, one command at a time when not, STARTTLS and AUTH, and refusals
that leave the session usable for the next message."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from saldo.notify.base import OutgoingMessage, PermanentSendError, TransientSendError
from saldo.notify.email import SmtpChannel, SmtpEmail, mime_bytes
from saldo.notify.smtp_session import SmtpReplyError, SmtpSession, dot_stuffed

NOW = dt.datetime(2026, 11, 3, 15, 0, tzinfo=dt.UTC)


@dataclass
class Server:
    """aiosmtpd with a handler that refuses some recipients and counts what it hears."""

    pipelining: bool = True
    received: list[tuple[list[str], bytes]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str, responses):
        session.host_name = hostname
        if self.pipelining:
            return [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_MAIL(self, server, session, envelope, address, options):
        self.commands.append("MAIL")
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        self.commands.append("RCPT")
        if address.startswith("nadie@"):
            return "550 5.1.1 no such user"
        if address.startswith("lleno@"):
            return "452 4.2.2 mailbox full"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_RSET(self, server, session, envelope):
        self.commands.append("RSET")
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append((list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 queued"


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(request) -> Iterator[tuple[Server, int]]:
    handler = Server(pipelining=getattr(request, "param", True))
    port = _port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def message(to: str, n: int = 0) -> OutgoingMessage:
    return OutgoingMessage(
        channel="email", to=to, idempotency_key=f"test:{n}", subject=f"Aviso {n} — ñandú",
        text=f"Hola {n}:\n.\n. una línea que empieza con punto\n", html=f"<p>Hola {n}</p>",
        sender="Cobranzas <cobranzas@saldo.example.com>",
    )  # fmt: skip


@pytest.mark.parametrize("server", [True, False], indirect=True, ids=["pipelined", "plain"])
async def test_one_session_carries_many_messages_byte_for_byte(server):
    handler, port = server
    session = await SmtpSession.open(hostname="127.0.0.1", port=port, time_limit=5)
    try:
        assert session.pipelining is handler.pipelining
        sent = [mime_bytes(message(f"ana{n}@example.com", n), date=NOW)[0] for n in range(12)]
        for n, data in enumerate(sent):
            await session.send("cobranzas@saldo.example.com", f"ana{n}@example.com", data)
    finally:
        await session.quit()
    assert [r[0] for r in handler.received] == [[f"ana{n}@example.com"] for n in range(12)]
    assert [r[1] for r in handler.received] == sent  # dot-stuffing undone, nothing altered
    text = message_from_bytes(handler.received[0][1], policy=policy.default).get_body(("plain",))
    assert ". una línea que empieza con punto" in text.get_content()


@pytest.mark.parametrize("server", [True, False], indirect=True, ids=["pipelined", "plain"])
async def test_a_refused_recipient_is_reported_and_the_session_goes_on(server):
    handler, port = server
    session = await SmtpSession.open(hostname="127.0.0.1", port=port, time_limit=5)
    data = mime_bytes(message("x@example.com"), date=NOW)[0]
    try:
        with pytest.raises(SmtpReplyError) as refused:
            await session.send("cobranzas@saldo.example.com", "nadie@example.com", data)
        assert (refused.value.stage, refused.value.code, refused.value.permanent) == (
            "rcpt",
            550,
            True,
        )
        with pytest.raises(SmtpReplyError) as deferred:
            await session.send("cobranzas@saldo.example.com", "lleno@example.com", data)
        assert (deferred.value.code, deferred.value.permanent) == (452, False)
        assert session.usable
        await session.send("cobranzas@saldo.example.com", "ana@example.com", data)
    finally:
        await session.quit()
    assert [r[0] for r in handler.received] == [["ana@example.com"]]
    assert handler.commands.count("RSET") == 2


async def test_an_address_that_would_inject_a_command_is_refused_before_anything_is_sent(server):
    handler, port = server
    session = await SmtpSession.open(hostname="127.0.0.1", port=port, time_limit=5)
    try:
        with pytest.raises(SmtpReplyError) as refused:
            await session.send("a@example.com", "b@example.com>\r\nRCPT TO:<c@example.com", b"x")
        assert refused.value.permanent and session.usable
    finally:
        await session.quit()
    assert handler.commands == [] and handler.received == []


async def test_the_channel_sorts_refusals_and_keeps_sending(server):
    handler, port = server
    channel = SmtpChannel(SmtpEmail.from_url(f"smtp://127.0.0.1:{port}", timeout=5))
    async with channel.connection() as send:
        first = await send(message("ana@example.com", 1))
        with pytest.raises(PermanentSendError):
            await send(message("nadie@example.com", 2))
        with pytest.raises(TransientSendError):
            await send(message("lleno@example.com", 3))
        await send(message("eva@example.com", 4))
    assert len(handler.received) == 2
    parsed = message_from_bytes(handler.received[0][1], policy=policy.default)
    assert parsed["Message-ID"] == first.provider_id


async def test_bodies_go_as_8bit_utf8_where_the_server_takes_it_and_parse_back_the_same(server):
    handler, port = server
    long_line = "x" * 1200
    channel = SmtpChannel(SmtpEmail.from_url(f"smtp://127.0.0.1:{port}", timeout=5))
    async with channel.connection() as send:
        await send(message("ana@example.com", 1))
        await send(replace(message("eva@example.com", 2), text=f"Hola:\n{long_line}\n"))
    plain, long = handler.received[0][1], handler.received[1][1]
    assert b"Content-Transfer-Encoding: 8bit" in plain and b"quoted-printable" not in plain
    assert ". una línea que empieza con punto".encode() in plain
    parsed = message_from_bytes(plain, policy=policy.default)
    text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text.rstrip("\n") == message("ana@example.com", 1).text.rstrip("\n")
    assert parsed.get_body(("html",)).get_content().strip() == "<p>Hola 1</p>"
    # a line longer than SMTP allows goes quoted-printable, and arrives whole
    assert b"quoted-printable" in long and all(len(x) <= 998 for x in long.split(b"\r\n"))
    text = message_from_bytes(long, policy=policy.default).get_body(("plain",)).get_content()
    assert long_line in text


async def test_nothing_listening_is_a_transient_failure():
    channel = SmtpChannel(SmtpEmail.from_url(f"smtp://127.0.0.1:{_port()}", timeout=5))
    with pytest.raises(TransientSendError):
        await channel.send(message("ana@example.com"))


def test_dot_stuffing():
    assert dot_stuffed(b".a\r\nb\r\n.\r\n..c") == b"..a\r\nb\r\n..\r\n...c\r\n.\r\n"


# ---------------------------------------------------------------------------- STARTTLS and AUTH


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
        .not_valid_after(dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_starttls_then_login_then_send(tmp_path):
    cert, key = _certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    logins: list[tuple[str, str]] = []

    def authenticator(server, session, envelope, mechanism, data):
        logins.append((mechanism, data.login.decode(), data.password.decode()))
        ok = data.password == b"clave secreta"
        return AuthResult(success=ok, handled=False)  # a refusal: the server answers 535

    handler = Server()
    port = _port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_context,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    controller.start()
    client_context = ssl.create_default_context(cafile=str(cert))
    try:
        session = await SmtpSession.open(
            hostname="127.0.0.1", port=port, username="cobranzas", password="clave secreta",
            start_tls=True, time_limit=5, tls_context=client_context,
        )  # fmt: skip
        try:
            assert session.writer.get_extra_info("sslcontext") is not None
            data = mime_bytes(message("ana@example.com"), date=NOW)[0]
            await session.send("cobranzas@saldo.example.com", "ana@example.com", data)
        finally:
            await session.quit()
        with pytest.raises(SmtpReplyError) as refused:
            await SmtpSession.open(
                hostname="127.0.0.1", port=port, username="cobranzas", password="otra",
                start_tls=True, time_limit=5, tls_context=client_context,
            )  # fmt: skip
        assert refused.value.stage == "auth"
    finally:
        controller.stop()
    assert [r[0] for r in handler.received] == [["ana@example.com"]]
    assert [login[1:] for login in logins] == [
        ("cobranzas", "clave secreta"),
        ("cobranzas", "otra"),
    ]
