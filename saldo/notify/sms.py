"""SMS through a Twilio-style HTTP API, and the arithmetic of SMS segments.

`TwilioSms` posts `To`, `From` and `Body` form-encoded to
`{SMS_API_URL}/2010-04-01/Accounts/{SMS_ACCOUNT_SID}/Messages.json` with HTTP basic auth
(account SID and auth token) and returns the message SID. HTTP 429, 5xx, 401/403 (a
credentials problem, not the message's) and network failures are transient; any other 4xx
(an invalid or unreachable number, a body the provider refuses) is permanent.

Segments: a message in the GSM 03.38 alphabet fits 160 characters in one SMS and 153 per
part when split; anything else is sent as UCS-2, 70 and 67. Spanish accents such as á, í,
ó and ú are not in that alphabet, so `to_gsm()` writes them plainly (a → a) before counting,
which keeps a reminder within two segments instead of five.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

import httpx

from saldo.notify.base import (
    OutgoingMessage,
    PermanentSendError,
    SendFunction,
    SendResult,
    TransientSendError,
)

__all__ = [
    "GSM_BASIC",
    "GSM_EXTENDED",
    "MAX_SEGMENTS",
    "TwilioSms",
    "e164",
    "is_gsm",
    "sms_segments",
    "to_gsm",
]

GSM_BASIC: Final = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED: Final = "^{}\\[~]|€\f"
#: The longest message a template may render to.
MAX_SEGMENTS: Final = 2

_GSM = frozenset(GSM_BASIC) | frozenset(GSM_EXTENDED)
_PLAIN: Final = {
    "\u00a0": " ",
    "\u202f": " ",
    "\u2009": " ",
    "–": "-",
    "—": "-",
    "‐": "-",
    "“": '"',
    "”": '"',
    "«": '"',
    "»": '"',
    "‘": "'",
    "’": "'",
    "…": "...",
    "·": "-",
    "•": "-",
    "º": "o",
    "ª": "a",
    "°": "o",
}
_NON_DIGITS = re.compile(r"\D")


def is_gsm(text: str) -> bool:
    return all(c in _GSM for c in text)


def to_gsm(text: str) -> str:
    """`text` in the GSM alphabet: accents the alphabet lacks are dropped (á → a), typographic
    marks become their plain forms, and anything else left over becomes "?"."""
    out = []
    for char in text:
        if char in _GSM:
            out.append(char)
            continue
        plain = _PLAIN.get(char)
        if plain is None:
            stripped = "".join(
                c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c)
            )
            plain = stripped if stripped and all(c in _GSM for c in stripped) else "?"
        out.append(plain)
    return "".join(out)


def sms_segments(text: str) -> int:
    """How many SMS parts `text` is sent as."""
    if not text:
        return 1
    if is_gsm(text):
        septets = sum(2 if c in GSM_EXTENDED else 1 for c in text)
        return 1 if septets <= 160 else math.ceil(septets / 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def e164(number: str) -> str | None:
    """`+<digits>` for a number written with its country code (spaces, dashes and
    parentheses are ignored), or None when it cannot be one (fewer than 8 or more than 15
    digits)."""
    digits = _NON_DIGITS.sub("", number or "")
    if number.strip().startswith("00"):
        digits = digits[2:]
    if not 8 <= len(digits) <= 15:
        return None
    return f"+{digits}"


def _error_text(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if isinstance(body, dict):
        return f"HTTP {response.status_code}: {body.get('code', '')} {body.get('message', '')}"
    return f"HTTP {response.status_code}"


def http_failure(response: httpx.Response, detail: str) -> TransientSendError | PermanentSendError:
    """Sort a provider's non-2xx answer (shared with the WhatsApp channel)."""
    status = response.status_code
    if status == 429 or status >= 500 or status in (401, 403, 408):
        return TransientSendError(detail)
    return PermanentSendError(detail)


@dataclass(frozen=True)
class TwilioSms:
    """The SMS `Channel`: a Twilio-compatible Messages API."""

    base_url: str
    account_sid: str
    auth_token: str
    sender: str
    timeout: float = 15.0
    name: str = "sms"
    live: bool = True

    @property
    def path(self) -> str:
        return f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    async def send(self, message: OutgoingMessage) -> SendResult:
        async with self.connection() as send:
            return await send(message)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[SendFunction]:
        async with httpx.AsyncClient(
            base_url=self.base_url.rstrip("/"),
            auth=(self.account_sid, self.auth_token),
            timeout=self.timeout,
        ) as client:

            async def send(message: OutgoingMessage) -> SendResult:
                to = e164(message.to)
                if to is None:
                    raise PermanentSendError(f"not a phone number: {message.to!r}")
                try:
                    response = await client.post(
                        self.path, data={"To": to, "From": self.sender, "Body": message.text}
                    )
                except httpx.HTTPError as exc:
                    raise TransientSendError(f"{type(exc).__name__}: {exc}") from exc
                if response.is_success:
                    sid = response.json().get("sid") if response.content else None
                    if not sid:
                        raise TransientSendError("the SMS provider answered without a sid")
                    return SendResult(str(sid))
                raise http_failure(response, _error_text(response))

            yield send
