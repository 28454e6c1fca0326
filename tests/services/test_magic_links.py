"""Sign-in use cases against real PostgreSQL and Redis: links, knowledge check, rate limits."""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from email.message import EmailMessage

import pytest

from saldo.auth import magic_links
from saldo.auth.magic_links import parse_contact
from saldo.errors import ValidationFailed
from saldo.notify import OutboxEmail, SmtpEmail, build_message, text_part
from saldo.services import portal_login
from saldo.services.portal_login import (
    LinkInvalid,
    LinkProblem,
    LoginConfig,
    RateLimits,
    TooManyRequests,
    WrongAnswer,
)
from saldo.tables import Creditor, Debtor, Interaction, MagicLinkToken
from tests.smtp_sink import LINK, SmtpSink

KEY = magic_links.derive_key("test-secret")
PUBLIC_URL = "https://portal.example"


class Recorder:
    """An EmailSender that keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    async def send(self, message: EmailMessage) -> None:
        self.sent.append(message)

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.sent if m["To"].lower() == address.lower()]

    def token(self, address: str) -> str:
        (message,) = self.to(address)
        return LINK.findall(text_part(message))[0].rsplit("/", 1)[1]


@pytest.fixture
def config(redis, servers) -> LoginConfig:
    return LoginConfig(
        redis=redis,
        key_prefix=f"{servers.redis_prefix}svc{secrets.token_hex(4)}:",
        hash_key=KEY,
        public_url=PUBLIC_URL,
        mail_from="Saldo <no-reply@saldo.example>",
    )


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def unique_email(name: str = "ana") -> str:
    return f"{name}.{secrets.token_hex(4)}@example.com"


def unique_phone() -> str:
    return "+549" + "".join(secrets.choice("0123456789") for _ in range(10))


async def make_debtor(email: str, document: str = "27.345.678", **fields) -> Debtor:
    creditor = Creditor(name=f"Acreedor {secrets.token_hex(4)}")
    await creditor.save()
    debtor = Debtor(
        creditor=creditor.id,
        external_id=secrets.token_hex(4),
        name=fields.pop("name", "Ana Núñez"),
        document_number=document,
        email=email,
        **fields,
    )
    await debtor.save()
    return debtor


async def send(contact: str, config: LoginConfig, channel: Recorder, ip: str = "10.0.0.1") -> int:
    parsed = parse_contact(contact)
    assert parsed is not None
    return await portal_login.request_link(parsed, ip=ip, now=now(), channel=channel, config=config)


async def token_row(token: str) -> dict:
    row = (
        await MagicLinkToken.select()
        .where(MagicLinkToken.token_hash == magic_links.hash_token(token, KEY))
        .output(load_json=True)
        .first()
    )
    assert row is not None
    return row


# --- requesting a link --------------------------------------------------------------------------


async def test_link_covers_every_debtor_with_the_email_and_is_stored_hashed(db, config):
    email = unique_email()
    first = await make_debtor(email)
    second = await make_debtor(email.upper())  # another creditor, same person
    channel = Recorder()

    assert await send(f"  {email.title()} ", config, channel) == 1

    (message,) = channel.to(email)
    assert message["Subject"] == "Su enlace para ingresar a Saldo"
    assert message.get_content_type() == "multipart/alternative"
    link = LINK.findall(text_part(message))[0]
    assert link.startswith(f"{PUBLIC_URL}/login/")
    token = link.rsplit("/", 1)[1]
    assert magic_links.well_formed(token)
    html = message.get_body(preferencelist=("html",))
    assert html is not None and link in html.get_content()

    row = await token_row(token)
    assert row["token_hash"] != token and token not in row["token_hash"]
    assert sorted(row["debtor_ids"]) == sorted([first.id, second.id])
    assert row["contact"] == email
    assert row["requested_ip"] == "10.0.0.1"
    assert row["used_at"] is None and row["revoked_at"] is None
    lifetime = row["expires_at"] - row["created_at"]
    assert dt.timedelta(minutes=14) < lifetime <= dt.timedelta(minutes=15, seconds=5)


async def test_unknown_address_sends_nothing_and_stores_nothing(db, config):
    channel = Recorder()
    before = await MagicLinkToken.count()
    assert await send(unique_email("nadie"), config, channel) == 0
    assert await send(unique_phone(), config, channel) == 0
    assert channel.sent == []
    assert await MagicLinkToken.count() == before


async def test_phone_number_sends_the_link_to_the_email_on_file(db, config):
    email = unique_email("tel")
    phone = unique_phone()
    debtor = await make_debtor(email, phone=phone)
    channel = Recorder()

    typed = f"{phone[:3]} {phone[3:4]} ({phone[4:6]}) {phone[6:10]}-{phone[10:]}"
    assert await send(typed, config, channel) == 1
    token = channel.token(email)
    row = await token_row(token)
    assert row["debtor_ids"] == [debtor.id]
    assert row["contact"] == magic_links.digits(phone)
    assert row["channel"] == "email"

    # The number without its country code still finds the debtor (10+ digits).
    assert await send(phone[-10:], config, channel) == 1
    assert len(channel.to(email)) == 2


async def test_whatsapp_number_is_matched_too(db, config):
    email = unique_email("wa")
    number = unique_phone()
    await make_debtor(email, whatsapp=number)
    channel = Recorder()
    assert await send(number, config, channel) == 1
    assert channel.to(email)


async def test_a_shared_phone_gives_each_inbox_a_link_to_its_own_records(db, config):
    phone = unique_phone()
    ana, luis = unique_email("ana"), unique_email("luis")
    ana_debtor = await make_debtor(ana, phone=phone)
    luis_debtor = await make_debtor(luis, phone=phone, document="30111222")
    await make_debtor("", phone=phone)  # no email on file: nothing can be delivered
    channel = Recorder()

    assert await send(phone, config, channel) == 2
    assert (await token_row(channel.token(ana)))["debtor_ids"] == [ana_debtor.id]
    assert (await token_row(channel.token(luis)))["debtor_ids"] == [luis_debtor.id]


async def test_english_speaking_debtor_gets_the_mail_in_english(db, config):
    email = unique_email("tom")
    await make_debtor(email, language="en", name="Tom Gutiérrez")
    channel = Recorder()
    await send(email, config, channel)
    (message,) = channel.to(email)
    assert message["Subject"] == "Your Saldo sign-in link"
    assert "Hello Tom Gutiérrez," in text_part(message)
    assert "expires in 15 minutes" in text_part(message)


async def test_per_address_limit_stops_sending_quietly(db, config, redis):
    email = unique_email("limite")
    await make_debtor(email)
    channel = Recorder()
    limits = RateLimits(per_address=2, per_ip=100)
    limited = LoginConfig(**{**config.__dict__, "limits": limits})
    results = [await send(email, limited, channel) for _ in range(4)]
    assert results == [1, 1, 0, 0]
    assert len(channel.to(email)) == 2
    keys = [key.decode() async for key in redis.scan_iter(match=f"{config.key_prefix}login:*")]
    assert keys and all(email not in key for key in keys)  # no address in Redis


async def test_per_ip_limit_raises_with_retry_after(db, config):
    limited = LoginConfig(**{**config.__dict__, "limits": RateLimits(per_ip=3)})
    for _ in range(3):
        await portal_login.limit_ip("192.0.2.7", config=limited)
    with pytest.raises(TooManyRequests) as caught:
        await portal_login.limit_ip("192.0.2.7", config=limited)
    assert 0 < caught.value.retry_after <= limited.limits.window_seconds
    await portal_login.limit_ip("192.0.2.8", config=limited)  # other IPs are unaffected


async def test_default_limits():
    assert RateLimits(per_address=5, per_ip=20, window_seconds=900) == portal_login.LIMITS


async def test_delivery_failure_is_logged_not_raised(db, config, caplog):
    email = unique_email("caido")
    await make_debtor(email)

    class Broken:
        async def send(self, message: EmailMessage) -> None:
            raise ConnectionRefusedError("mail server down")

    with caplog.at_level(logging.ERROR, logger="saldo.services.portal_login"):
        assert await send(email, config, Broken()) == 0
    assert any("failed" in r.message for r in caplog.records)


# --- opening a link -----------------------------------------------------------------------------


async def issue(config: LoginConfig, document: str = "27.345.678", **fields) -> tuple[str, Debtor]:
    email = unique_email()
    debtor = await make_debtor(email, document=document, **fields)
    channel = Recorder()
    await send(email, config, channel)
    return channel.token(email), debtor


async def test_peek_reads_without_consuming_and_open_consumes_once(db, config):
    token, _ = await issue(config)
    await portal_login.peek_link(token, now=now(), hash_key=KEY)
    await portal_login.peek_link(token, now=now(), hash_key=KEY)
    assert (await token_row(token))["used_at"] is None

    link_id = await portal_login.open_link(token, now=now(), hash_key=KEY)
    assert (await token_row(token))["id"] == link_id
    assert (await token_row(token))["used_at"] is not None

    for attempt in (portal_login.open_link, portal_login.peek_link):
        with pytest.raises(LinkInvalid) as caught:
            await attempt(token, now=now(), hash_key=KEY)
        assert caught.value.reason is LinkProblem.used


async def test_expired_link_cannot_be_opened(db, config):
    token, _ = await issue(config)
    await MagicLinkToken.update({MagicLinkToken.expires_at: now() - dt.timedelta(seconds=1)}).where(
        MagicLinkToken.token_hash == magic_links.hash_token(token, KEY)
    )
    with pytest.raises(LinkInvalid) as caught:
        await portal_login.open_link(token, now=now(), hash_key=KEY)
    assert caught.value.reason is LinkProblem.expired
    assert (await token_row(token))["used_at"] is None


async def test_revoked_link_cannot_be_opened(db, config):
    token, _ = await issue(config)
    row = await token_row(token)
    await portal_login.revoke_link(row["id"], now=now())
    with pytest.raises(LinkInvalid) as caught:
        await portal_login.open_link(token, now=now(), hash_key=KEY)
    assert caught.value.reason is LinkProblem.revoked


@pytest.mark.parametrize(
    "token",
    [secrets.token_urlsafe(32), "short", "x" * 500, "../../etc/passwd", "a" * 42 + "!", ""],
)
async def test_forged_or_malformed_tokens_are_invalid(db, token):
    with pytest.raises(LinkInvalid) as caught:
        await portal_login.open_link(token, now=now(), hash_key=KEY)
    assert caught.value.reason is LinkProblem.invalid


async def test_a_token_hashed_under_another_key_does_not_open(db, config):
    token, _ = await issue(config)
    with pytest.raises(LinkInvalid):
        await portal_login.open_link(token, now=now(), hash_key=magic_links.derive_key("other"))


# --- the knowledge check ------------------------------------------------------------------------


async def test_right_answer_signs_in_matching_debtors_and_records_the_login(db, config):
    email = unique_email()
    ana = await make_debtor(email, document="27.345.678", language="en")
    same_person = await make_debtor(email, document="DNI 27345678")
    other_person = await make_debtor(email, document="30999111")  # shares the inbox only
    channel = Recorder()
    await send(email, config, channel)
    link_id = await portal_login.open_link(channel.token(email), now=now(), hash_key=KEY)

    signed_in = await portal_login.check_knowledge(link_id, " 56 78 ", now=now(), ip="10.1.1.1")

    assert signed_in.debtor_ids == [ana.id, same_person.id]
    assert other_person.id not in signed_in.debtor_ids
    assert signed_in.contact == email
    assert signed_in.language == "en"
    logins = (
        await Interaction.select()
        .where(
            Interaction.debtor.is_in([ana.id, same_person.id, other_person.id])
            & (Interaction.kind == "portal_login")
        )
        .output(load_json=True)
    )
    assert sorted(r["debtor"] for r in logins) == [ana.id, same_person.id]
    assert all(r["data"] == {"ip": "10.1.1.1"} and r["channel"] == "portal" for r in logins)


async def test_document_with_letters_uses_its_last_four_digits(db, config):
    token, _ = await issue(config, document="17.345.112-K")
    link_id = await portal_login.open_link(token, now=now(), hash_key=KEY)
    await portal_login.check_knowledge(link_id, "5112", now=now())


async def test_three_wrong_answers_burn_the_link(db, config):
    token, _ = await issue(config)
    link_id = await portal_login.open_link(token, now=now(), hash_key=KEY)

    with pytest.raises(WrongAnswer) as first:
        await portal_login.check_knowledge(link_id, "0000", now=now())
    assert first.value.tries_left == 2
    with pytest.raises(WrongAnswer) as second:
        await portal_login.check_knowledge(link_id, "1111", now=now())
    assert second.value.tries_left == 1
    with pytest.raises(LinkInvalid) as third:
        await portal_login.check_knowledge(link_id, "2222", now=now())
    assert third.value.reason is LinkProblem.burnt

    row = await token_row(token)
    assert row["knowledge_attempts"] == 3 and row["revoked_at"] is not None
    with pytest.raises(LinkInvalid) as after:  # even the right answer is too late now
        await portal_login.check_knowledge(link_id, "5678", now=now())
    assert after.value.reason is LinkProblem.burnt


async def test_malformed_answers_cost_no_try(db, config):
    token, _ = await issue(config)
    link_id = await portal_login.open_link(token, now=now(), hash_key=KEY)
    for answer in ("", "123", "12345", "abcd", "１２３４"):
        with pytest.raises(ValidationFailed):
            await portal_login.check_knowledge(link_id, answer, now=now())
    assert (await token_row(token))["knowledge_attempts"] == 0
    await portal_login.check_knowledge(link_id, "5678", now=now())


async def test_knowledge_check_needs_an_opened_link_in_time(db, config):
    token, _ = await issue(config)
    row = await token_row(token)
    with pytest.raises(LinkInvalid):  # not opened yet
        await portal_login.check_knowledge(row["id"], "5678", now=now())
    link_id = await portal_login.open_link(token, now=now(), hash_key=KEY)
    later = now() + magic_links.KNOWLEDGE_WINDOW + dt.timedelta(seconds=1)
    with pytest.raises(LinkInvalid) as caught:
        await portal_login.check_knowledge(link_id, "5678", now=later)
    assert caught.value.reason is LinkProblem.expired
    with pytest.raises(LinkInvalid):
        await portal_login.check_knowledge(10**9, "5678", now=now())


async def test_logout_is_noted_in_the_timeline(db, config):
    _, debtor = await issue(config)
    await portal_login.logout([debtor.id], now=now())
    kinds = await Interaction.select(Interaction.kind).where(Interaction.debtor == debtor.id)
    assert {"kind": "portal_logout"} in kinds


# --- the email adapters -------------------------------------------------------------------------


def sample_message(to: str) -> EmailMessage:
    return build_message(
        sender="Saldo <no-reply@saldo.example>",
        to=to,
        subject="Su enlace para ingresar a Saldo",
        text="Ingrese: https://portal.example/login/abc\n",
        html='<p><a href="https://portal.example/login/abc">Ingresar</a></p>',
    )


async def test_smtp_sender_delivers_multipart_mail_to_a_real_server():
    sink = SmtpSink().start()
    try:
        await SmtpEmail.from_url(sink.url).send(sample_message("ana@example.com"))
    finally:
        sink.stop()
    (received,) = sink.to("ana@example.com")
    assert received.message.get_content_type() == "multipart/alternative"
    assert "https://portal.example/login/abc" in received.text()
    assert 'href="https://portal.example/login/abc"' in received.html()
    assert received.message["Message-ID"].endswith("@saldo.example>")


async def test_outbox_sender_writes_an_eml_file_and_logs_the_link(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="saldo.notify.email"):
        await OutboxEmail(tmp_path / "outbox").send(sample_message("ana@example.com"))
    (path,) = (tmp_path / "outbox").glob("*.eml")
    assert path.name.endswith(".eml") and "-" in path.stem
    assert b"To: ana@example.com" in path.read_bytes()
    assert "https://portal.example/login/abc" in caplog.text
