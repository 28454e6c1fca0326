"""Portal sign-in: request a magic link, open it, pass the knowledge check, sign out.

The flow, and what each step promises:

1. `limit_ip()` runs while the request is answered; everything that depends on whether the
   address is known — `request_link()` — runs after the response is sent, so the page, its
   status and its timing are the same for known and unknown addresses. Over the per-address
   limit nothing is sent and nothing on the page changes.
2. `peek_link()` (GET) only reads; `open_link()` (POST) consumes the token with one atomic
   UPDATE, so a link works once even under concurrent clicks.
3. `check_knowledge()` compares the last four digits of the document of every debtor the link
   covers; three wrong answers revoke the link. Success records a `portal_login` interaction.

Collaborators are explicit: the Redis client and key prefix for rate limits, the email sender,
the SMS and WhatsApp channels (`LoginConfig.texts`), the token-hashing key and the clock (`now`).

Where a link goes: an email address gets it by email. A phone number gets it on the channel it
matched — by WhatsApp when it is the debtor's WhatsApp number, by SMS when it is their phone —
when that channel is live (a real provider is configured); otherwise by email, at the address on
file for the debtors with that number, as before those channels existed.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis

from saldo.auth import magic_links
from saldo.auth.magic_links import Contact, ContactKind
from saldo.db import DB
from saldo.errors import SaldoError, ValidationFailed
from saldo.i18n import DEFAULT_LANGUAGE, SUPPORTED_LANGUAGES, gettext
from saldo.notify import Channel, EmailSender, OutgoingMessage, build_message, render_email
from saldo.notify import render_text as render_notify_text
from saldo.notify.sms import to_gsm
from saldo.notify.whatsapp import TEMPLATES as WHATSAPP_TEMPLATES
from saldo.tables import Debtor, Interaction, MagicLinkToken

log = logging.getLogger("saldo.services.portal_login")

LOGIN_INTERACTION = "portal_login"
LOGOUT_INTERACTION = "portal_logout"


@dataclass(frozen=True)
class RateLimits:
    """Fixed windows: links mailed per address, and link requests per client IP."""

    per_address: int = 5
    per_ip: int = 20
    window_seconds: int = 15 * 60


LIMITS = RateLimits()


@dataclass(frozen=True)
class LoginConfig:
    redis: Redis
    key_prefix: str  # every rate-limit key starts with it
    hash_key: bytes  # magic_links.derive_key(SECRET_KEY)
    public_url: str
    mail_from: str
    limits: RateLimits = LIMITS
    texts: Mapping[str, Channel] = field(default_factory=dict)  # "sms", "whatsapp"


# --- errors -------------------------------------------------------------------------------------


class LinkProblem(StrEnum):
    invalid = "invalid"  # malformed or unknown: forged, mistyped, or from another installation
    expired = "expired"
    used = "used"
    revoked = "revoked"
    burnt = "burnt"  # revoked after too many wrong answers to the knowledge check


class LinkInvalid(SaldoError):
    """The magic link cannot sign anyone in; the debtor needs a new one."""

    status_code = 410
    title = "Link no longer valid"

    def __init__(self, reason: LinkProblem) -> None:
        super().__init__(f"the sign-in link is {reason}")
        self.reason = reason


class WrongAnswer(SaldoError):
    """The knowledge check failed; the link still allows `tries_left` more answers."""

    status_code = 422
    title = "Invalid input"

    def __init__(self, tries_left: int) -> None:
        super().__init__("the digits do not match the document on file")
        self.tries_left = tries_left


class TooManyRequests(SaldoError):
    status_code = 429
    title = "Too many requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many sign-in requests from this connection")
        self.retry_after = retry_after


@dataclass(frozen=True)
class SignedIn:
    """What the session needs after a successful knowledge check."""

    debtor_ids: list[int]
    contact: str
    language: str


# --- rate limits --------------------------------------------------------------------------------


async def _hit(redis: Redis, key: str, window_seconds: int) -> tuple[int, int]:
    """Count one event in a fixed window; returns (events so far, seconds until the reset)."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(key, 0, ex=window_seconds, nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _, count, ttl = await pipe.execute()
    return int(count), max(int(ttl), 1)


async def limit_ip(ip: str, *, config: LoginConfig) -> None:
    """Count a link request from `ip`; raise TooManyRequests past the per-IP limit.

    The client IP is what the ASGI server reports; behind a reverse proxy, run it with proxy
    headers enabled so this is the visitor's address and not the proxy's.
    """
    key = f"{config.key_prefix}login:ip:{ip or 'unknown'}"
    count, ttl = await _hit(config.redis, key, config.limits.window_seconds)
    if count > config.limits.per_ip:
        raise TooManyRequests(retry_after=ttl)


# --- 1. request a link --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Recipient:
    address: str  # the email address or phone number the link is sent to
    channel: str  # "email", "sms" or "whatsapp"
    name: str
    language: str
    debtor_ids: list[int]


async def _debtors_for(contact: Contact) -> list[dict[str, Any]]:
    if contact.kind is ContactKind.email:
        return await Debtor.raw(
            "SELECT id, name, email, language FROM debtor WHERE lower(email) = {} ORDER BY id",
            contact.value,
        )
    # Digits only, so the LIKE pattern holds no wildcard the visitor chose.
    long_enough = len(contact.value) >= magic_links.PHONE_SUFFIX_DIGITS
    pattern = f"%{contact.value}" if long_enough else contact.value
    rows = await Debtor.raw(
        """
        SELECT id, name, email, language, phone, whatsapp FROM debtor
        WHERE regexp_replace(phone, '[^0-9]', '', 'g') LIKE {}
           OR regexp_replace(whatsapp, '[^0-9]', '', 'g') LIKE {}
        ORDER BY id
        """,
        pattern,
        pattern,
    )
    return [
        row
        for row in rows
        if magic_links.phone_matches(contact.value, row["phone"])
        or magic_links.phone_matches(contact.value, row["whatsapp"])
    ]


def _live(texts: Mapping[str, Channel], name: str) -> bool:
    channel = texts.get(name)
    return channel is not None and channel.live


def _grouped(
    rows: Sequence[dict[str, Any]],
    channel: str,
    address: Callable[[dict[str, Any]], str],
    contact: str,
) -> list[_Recipient]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        key = address(row)
        if key:
            groups.setdefault(key.lower(), []).append(row)
    recipients = []
    for members in groups.values():
        first = members[0]
        language = first["language"] if first["language"] in SUPPORTED_LANGUAGES else None
        recipients.append(
            _Recipient(
                address=contact if channel == "email" and contact else address(first),
                channel=channel,
                name=str(first["name"] or ""),
                language=language or DEFAULT_LANGUAGE,
                debtor_ids=[int(row["id"]) for row in members],
            )
        )
    return recipients


def _recipients(
    contact: Contact, debtors: Sequence[dict[str, Any]], texts: Mapping[str, Channel] | None = None
) -> list[_Recipient]:
    """One link per inbox or phone: a number shared by people with different emails gives each
    of them a link that covers only their own debtor records."""

    def email(row: dict[str, Any]) -> str:
        return str(row["email"] or "").strip()

    if contact.kind is ContactKind.email:
        return _grouped(debtors, "email", email, contact.value)
    texts = texts or {}
    by_whatsapp, by_sms, by_email = [], [], []
    for row in debtors:
        if _live(texts, "whatsapp") and magic_links.phone_matches(
            contact.value, row.get("whatsapp") or ""
        ):
            by_whatsapp.append(row)
        elif _live(texts, "sms") and magic_links.phone_matches(
            contact.value, row.get("phone") or ""
        ):
            by_sms.append(row)
        else:
            by_email.append(row)
    return [
        *_grouped(by_whatsapp, "whatsapp", lambda r: str(r["whatsapp"] or "").strip(), ""),
        *_grouped(by_sms, "sms", lambda r: str(r["phone"] or "").strip(), ""),
        *_grouped(by_email, "email", email, ""),
    ]


async def request_link(
    contact: Contact,
    *,
    ip: str,
    now: dt.datetime,
    channel: EmailSender,
    config: LoginConfig,
) -> int:
    """Send a sign-in link to every inbox or phone on file for `contact`; returns how many.

    Runs after the response is sent and never raises: what happens here (unknown address,
    address over its limit, a mail server or SMS provider failure) must not change what the
    visitor sees. A phone number gets its link by WhatsApp or SMS when that channel is live,
    else by email at the address on file (see the module's docstring); the visitor is never
    told which address or number that is.
    """
    try:
        address_key = f"{config.key_prefix}login:address:{magic_links.address_key(contact)}"
        count, _ = await _hit(config.redis, address_key, config.limits.window_seconds)
        if count > config.limits.per_address:
            log.info("sign-in link not sent: %s over its limit", contact.kind)
            return 0
        recipients = _recipients(contact, await _debtors_for(contact), config.texts)
        for recipient in recipients:
            await _send_link(recipient, contact, ip=ip, now=now, channel=channel, config=config)
        return len(recipients)
    except Exception:
        log.exception("sign-in link request failed")
        return 0


async def _send_link(
    recipient: _Recipient,
    contact: Contact,
    *,
    ip: str,
    now: dt.datetime,
    channel: EmailSender,
    config: LoginConfig,
) -> None:
    # Sent directly rather than through the Notification outbox: that table keeps message
    # bodies, and a body here holds a live token, which must only ever be stored hashed.
    token = magic_links.generate_token()
    token_hash = magic_links.hash_token(token, config.hash_key)
    await MagicLinkToken(
        token_hash=token_hash,
        contact=contact.value,
        channel=recipient.channel,
        debtor_ids=recipient.debtor_ids,
        requested_ip=ip[:64],
        expires_at=magic_links.expires_at(now),
    ).save()
    minutes = int(magic_links.TOKEN_TTL.total_seconds() // 60)
    values = {
        "link": magic_links.link_url(config.public_url, token),
        "name": recipient.name,
        "minutes": minutes,
        "public_url": config.public_url.rstrip("/"),
    }
    if recipient.channel != "email":
        text = render_notify_text("magic_link.sms.txt", recipient.language, values)
        template = WHATSAPP_TEMPLATES["magic_link"]
        await config.texts[recipient.channel].send(
            OutgoingMessage(
                channel=recipient.channel,
                to=recipient.address,
                idempotency_key=f"magic-link:{token_hash}",
                text=to_gsm(" ".join(text.split())),
                template=template.name,
                language=recipient.language,
                parameters=tuple(str(values[name]) for name in template.parameters),
            )
        )
        return
    text, html = render_email("magic_link", recipient.language, values)
    message = build_message(
        sender=config.mail_from,
        to=recipient.address,
        subject=gettext(recipient.language, "Su enlace para ingresar a Saldo"),
        text=text,
        html=html,
    )
    await channel.send(message)


# --- 2. open it ---------------------------------------------------------------------------------


async def _why_unusable(token_hash: str, now: dt.datetime) -> LinkProblem:
    rows = await MagicLinkToken.raw(
        """
        SELECT used_at, revoked_at, expires_at, knowledge_attempts
        FROM magic_link_token WHERE token_hash = {}
        """,
        token_hash,
    )
    if not rows:
        return LinkProblem.invalid
    row = rows[0]
    if row["revoked_at"] is not None:
        tries = row["knowledge_attempts"] >= magic_links.KNOWLEDGE_TRIES
        return LinkProblem.burnt if tries else LinkProblem.revoked
    if row["used_at"] is not None:
        return LinkProblem.used
    if row["expires_at"] <= now:
        return LinkProblem.expired
    return LinkProblem.invalid  # pragma: no cover - usable after all (a concurrent race)


async def peek_link(token: str, *, now: dt.datetime, hash_key: bytes) -> None:
    """Raise LinkInvalid unless `token` could still be opened. Reads only (GET is safe)."""
    if not magic_links.well_formed(token):
        raise LinkInvalid(LinkProblem.invalid)
    token_hash = magic_links.hash_token(token, hash_key)
    rows = await MagicLinkToken.raw(
        """
        SELECT token_hash FROM magic_link_token
        WHERE token_hash = {} AND used_at IS NULL AND revoked_at IS NULL AND expires_at > {}
        """,
        token_hash,
        now,
    )
    if not rows or not magic_links.token_matches(token, rows[0]["token_hash"], hash_key):
        raise LinkInvalid(await _why_unusable(token_hash, now))


async def open_link(token: str, *, now: dt.datetime, hash_key: bytes) -> int:
    """Consume the link (once, atomically); returns its id for the knowledge check."""
    if not magic_links.well_formed(token):
        raise LinkInvalid(LinkProblem.invalid)
    token_hash = magic_links.hash_token(token, hash_key)
    rows = await MagicLinkToken.raw(
        """
        UPDATE magic_link_token SET used_at = {}
        WHERE token_hash = {} AND used_at IS NULL AND revoked_at IS NULL AND expires_at > {}
        RETURNING id, token_hash
        """,
        now,
        token_hash,
        now,
    )
    if not rows or not magic_links.token_matches(token, rows[0]["token_hash"], hash_key):
        raise LinkInvalid(await _why_unusable(token_hash, now))
    return int(rows[0]["id"])


async def revoke_link(token_id: int, *, now: dt.datetime) -> None:
    """Make a link unusable from now on (idempotent)."""
    await MagicLinkToken.update({MagicLinkToken.revoked_at: now}).where(
        (MagicLinkToken.id == token_id) & MagicLinkToken.revoked_at.is_null()
    )


# --- 3. the knowledge check ---------------------------------------------------------------------


def _ids(value: Any) -> list[int]:
    data = json.loads(value) if isinstance(value, str | bytes) else value
    return [int(i) for i in data] if isinstance(data, list) else []


async def check_knowledge(
    token_id: int, answer: str, *, now: dt.datetime, ip: str = ""
) -> SignedIn:
    """Sign in the debtors of an opened link whose document ends in `answer`.

    A malformed answer (not four digits) costs no try. A wrong one costs one; the last try
    revokes the link (LinkInvalid "burnt"). The check must come within KNOWLEDGE_WINDOW of
    opening the link.
    """
    cleaned = magic_links.clean_answer(answer)
    if cleaned is None:
        raise ValidationFailed("enter exactly four digits", field="last4")
    failure: SaldoError | None = None
    signed_in: SignedIn | None = None
    async with DB.transaction():
        rows = await MagicLinkToken.raw(
            """
            SELECT id, contact, debtor_ids, used_at, revoked_at, knowledge_attempts
            FROM magic_link_token WHERE id = {} FOR UPDATE
            """,
            token_id,
        )
        row = rows[0] if rows else None
        if row is None or row["used_at"] is None:
            raise LinkInvalid(LinkProblem.invalid)
        if row["revoked_at"] is not None:
            tries = row["knowledge_attempts"] >= magic_links.KNOWLEDGE_TRIES
            raise LinkInvalid(LinkProblem.burnt if tries else LinkProblem.revoked)
        if row["used_at"] + magic_links.KNOWLEDGE_WINDOW <= now:
            raise LinkInvalid(LinkProblem.expired)

        debtors = await Debtor.raw(
            "SELECT id, document_number, language FROM debtor WHERE id = ANY({}) ORDER BY id",
            _ids(row["debtor_ids"]),
        )
        matching = [d for d in debtors if magic_links.answer_matches(cleaned, d["document_number"])]
        if matching:
            signed_in = SignedIn(
                debtor_ids=[int(d["id"]) for d in matching],
                contact=str(row["contact"]),
                language=_language(matching[0]["language"]),
            )
            await _record(signed_in.debtor_ids, LOGIN_INTERACTION, now, {"ip": ip[:64]})
        else:
            attempts = int(row["knowledge_attempts"]) + 1
            burnt = attempts >= magic_links.KNOWLEDGE_TRIES
            await MagicLinkToken.update(
                {
                    MagicLinkToken.knowledge_attempts: attempts,
                    MagicLinkToken.revoked_at: now if burnt else None,
                }
            ).where(MagicLinkToken.id == token_id)
            failure = (
                LinkInvalid(LinkProblem.burnt)
                if burnt
                else WrongAnswer(tries_left=magic_links.KNOWLEDGE_TRIES - attempts)
            )
    if failure is not None:  # raised after the commit, so the counted try sticks
        raise failure
    assert signed_in is not None
    return signed_in


def _language(value: Any) -> str:
    return str(value) if value in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE


async def _record(
    debtor_ids: Sequence[int], kind: str, now: dt.datetime, data: dict[str, Any]
) -> None:
    summary = {
        LOGIN_INTERACTION: "Ingresó al portal (enlace de acceso y verificación de documento)",
        LOGOUT_INTERACTION: "Cerró la sesión del portal",
    }[kind]
    if not debtor_ids:
        return
    await Interaction.insert(
        *(
            Interaction(
                debtor=debtor_id,
                kind=kind,
                channel="portal",
                direction="inbound",
                summary=summary,
                data=data,
                occurred_at=now,
            )
            for debtor_id in debtor_ids
        )
    )


# --- sign out -----------------------------------------------------------------------------------


async def logout(debtor_ids: Sequence[int], *, now: dt.datetime) -> None:
    """Note the sign-out in each debtor's timeline (the caller destroys the session)."""
    await _record(debtor_ids, LOGOUT_INTERACTION, now, {})
