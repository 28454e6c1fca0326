"""Magic-link tokens and the small pure rules around the portal sign-in.

A token is 32 bytes from `secrets` (256 bits), URL-safe base64 without padding (43 characters).
Only its HMAC-SHA256 under a key derived from SECRET_KEY is stored, so a copy of the database
alone neither reveals live links nor lets anyone check guesses offline. Every comparison of a
secret against a stored value goes through `hmac.compare_digest`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

TOKEN_BYTES = 32
TOKEN_LENGTH = 43  # len(secrets.token_urlsafe(32))
TOKEN_TTL = dt.timedelta(minutes=15)
KNOWLEDGE_WINDOW = dt.timedelta(minutes=15)  # time to answer the check after opening a link
KNOWLEDGE_TRIES = 3
_TOKEN_SHAPE = re.compile(rf"^[A-Za-z0-9_-]{{{TOKEN_LENGTH}}}$")
_EMAIL_SHAPE = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")
MAX_EMAIL_LENGTH = 254
MIN_PHONE_DIGITS = 7
MAX_PHONE_DIGITS = 15  # E.164
PHONE_SUFFIX_DIGITS = 10  # a number typed without its country code still matches from here on
_PHONE_CHARS = re.compile(r"^\+?[\d\s().\-]+$")


def generate_token() -> str:
    """A fresh token: 256 bits from the operating system's CSPRNG."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def derive_key(secret: str) -> bytes:
    """The token-hashing key, derived from SECRET_KEY for this one purpose."""
    return hmac.new(secret.encode(), b"saldo:magic-link", hashlib.sha256).digest()


def hash_token(token: str, key: bytes) -> str:
    """What the database stores: HMAC-SHA256(key, token) as 64 hex characters."""
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


def token_matches(token: str, stored_hash: str, key: bytes) -> bool:
    """Constant-time check of a presented token against a stored hash."""
    return hmac.compare_digest(hash_token(token, key), stored_hash)


def well_formed(token: str) -> bool:
    """True if `token` has the shape `generate_token` produces (cheap reject before any I/O)."""
    return bool(_TOKEN_SHAPE.match(token))


def link_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/login/{token}"


def expires_at(now: dt.datetime) -> dt.datetime:
    return now + TOKEN_TTL


# --- the knowledge check ------------------------------------------------------------------------


def digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isascii() and ch.isdigit())


def document_last4(document_number: str) -> str | None:
    """The last four digits of a document number (`"17.345.112-K"` → `"5112"`), if it has four."""
    found = digits(document_number)
    return found[-4:] if len(found) >= 4 else None


def clean_answer(answer: str) -> str | None:
    """The debtor's answer as four digits, or None when it is not exactly four digits."""
    compact = "".join(answer.split())
    return compact if len(compact) == 4 and compact.isascii() and compact.isdigit() else None


def answer_matches(answer: str, document_number: str) -> bool:
    """Constant-time comparison of a four-digit answer with a document's last four digits."""
    expected = document_last4(document_number)
    if expected is None:
        hmac.compare_digest(answer, "----")  # same work either way
        return False
    return hmac.compare_digest(answer, expected)


# --- contacts -----------------------------------------------------------------------------------


class ContactKind(StrEnum):
    email = "email"
    phone = "phone"


@dataclass(frozen=True)
class Contact:
    """What the debtor typed, normalized: a lower-case email, or a phone number as digits."""

    kind: ContactKind
    value: str

    @property
    def display(self) -> str:
        return self.value if self.kind is ContactKind.email else f"+{self.value}"


def parse_contact(raw: str) -> Contact | None:
    """An email address or a phone/WhatsApp number; None when it is neither."""
    text = raw.strip()
    if "@" in text:
        email = text.lower()
        if len(email) <= MAX_EMAIL_LENGTH and _EMAIL_SHAPE.match(email):
            return Contact(ContactKind.email, email)
        return None
    if not _PHONE_CHARS.match(text):
        return None
    number = digits(text)
    if MIN_PHONE_DIGITS <= len(number) <= MAX_PHONE_DIGITS:
        return Contact(ContactKind.phone, number)
    return None


def phone_matches(typed_digits: str, stored: str) -> bool:
    """A stored number matches the typed one exactly, or ends with it when it is long enough."""
    stored_digits = digits(stored)
    if not stored_digits:
        return False
    if stored_digits == typed_digits:
        return True
    return len(typed_digits) >= PHONE_SUFFIX_DIGITS and stored_digits.endswith(typed_digits)


def address_key(contact: Contact) -> str:
    """A stable, non-reversible name for a contact (rate-limit keys hold no addresses)."""
    return hashlib.sha256(f"{contact.kind}:{contact.value}".encode()).hexdigest()[:32]
