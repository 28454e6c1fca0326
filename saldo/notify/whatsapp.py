"""WhatsApp through the Cloud API, with approved message templates.

Outside a conversation the debtor opened, WhatsApp only carries templates that Meta approved
beforehand, so a WhatsApp message is a template name, a language and the values of its body
parameters — never free text. `TEMPLATES` maps each of Saldo's message kinds to its approved
template and the order of its parameters; the templates have to be registered under these
names (in Spanish `es` and English `en`) in the WhatsApp Business account.

`WhatsAppCloud` posts
`{"messaging_product": "whatsapp", "to": <digits>, "type": "template", "template": {...}}` to
`{WHATSAPP_API_URL}/v20.0/{WHATSAPP_PHONE_NUMBER_ID}/messages` with a Bearer token and returns
the `wamid`. The outbox key goes along as `biz_opaque_callback_data`, so status webhooks can be
traced back to the row. HTTP 429, 5xx, 401/403 and the API's throttling codes are transient;
other errors (an unknown template, a number without WhatsApp) are permanent.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
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
from saldo.notify.sms import http_failure

__all__ = ["API_VERSION", "TEMPLATES", "WhatsAppCloud", "WhatsAppTemplate"]

API_VERSION: Final = "v20.0"
#: Cloud API error codes that mean "not now" rather than "never".
TRANSIENT_CODES: Final = frozenset({1, 2, 4, 80007, 130429, 131000, 131016, 131056, 133004})
_NON_DIGITS = re.compile(r"\D")


@dataclass(frozen=True)
class WhatsAppTemplate:
    """An approved template: its name and the context values its body parameters take."""

    name: str
    parameters: tuple[str, ...]


#: Saldo's message kinds → approved WhatsApp templates ({{1}}, {{2}}, … in this order).
TEMPLATES: Final[Mapping[str, WhatsAppTemplate]] = {
    "reminder_before_due": WhatsAppTemplate(
        "saldo_reminder_before_due", ("name", "creditor", "total", "due_date", "account_url")
    ),
    "overdue_preventive": WhatsAppTemplate(
        "saldo_overdue_preventive", ("name", "creditor", "total", "due_date", "account_url")
    ),
    "overdue_administrative": WhatsAppTemplate(
        "saldo_overdue_administrative",
        ("name", "creditor", "total", "days_overdue", "account_url"),
    ),
    "payment_received": WhatsAppTemplate(
        "saldo_payment_received", ("name", "creditor", "amount", "date", "account_url")
    ),
    "plan_approved": WhatsAppTemplate(
        "saldo_plan_approved", ("name", "creditor", "installments", "first_date", "plans_url")
    ),
    "plan_countered": WhatsAppTemplate(
        "saldo_plan_countered", ("name", "creditor", "installments", "plans_url")
    ),
    "plan_rejected": WhatsAppTemplate("saldo_plan_rejected", ("name", "creditor", "plans_url")),
    "installment_due": WhatsAppTemplate(
        "saldo_installment_due", ("name", "creditor", "amount", "due_date", "pay_url")
    ),
    "promise_reminder": WhatsAppTemplate(
        "saldo_promise_reminder", ("name", "creditor", "amount", "promised_date", "pay_url")
    ),
    "dispute_update": WhatsAppTemplate(
        "saldo_dispute_update", ("name", "creditor", "dispute_status", "dispute_url")
    ),
    "magic_link": WhatsAppTemplate("saldo_magic_link", ("link", "minutes")),
}


def wa_number(value: str) -> str | None:
    """The digits WhatsApp wants (country code first, no "+"), or None."""
    digits = _NON_DIGITS.sub("", value or "")
    if value.strip().startswith("00"):
        digits = digits[2:]
    return digits if 8 <= len(digits) <= 15 else None


def payload(message: OutgoingMessage, to: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "template",
        "template": {
            "name": message.template,
            "language": {"code": message.language},
            "components": [
                {
                    "type": "body",
                    "parameters": [{"type": "text", "text": p} for p in message.parameters],
                }
            ],
        },
        "biz_opaque_callback_data": message.idempotency_key,
    }


def _failure(response: httpx.Response) -> TransientSendError | PermanentSendError:
    try:
        body: Any = response.json()
    except ValueError:
        body = {}
    error = body.get("error", {}) if isinstance(body, dict) else {}
    code = error.get("code") if isinstance(error, dict) else None
    detail = (
        f"HTTP {response.status_code}: {code or ''} {error.get('message', '') if error else ''}"
    )
    if isinstance(code, int) and code in TRANSIENT_CODES:
        return TransientSendError(detail.strip())
    return http_failure(response, detail.strip())


@dataclass(frozen=True)
class WhatsAppCloud:
    """The WhatsApp `Channel`: Meta's Cloud API, template messages only."""

    base_url: str
    token: str
    phone_number_id: str
    timeout: float = 15.0
    name: str = "whatsapp"
    live: bool = True

    @property
    def path(self) -> str:
        return f"/{API_VERSION}/{self.phone_number_id}/messages"

    async def send(self, message: OutgoingMessage) -> SendResult:
        async with self.connection() as send:
            return await send(message)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[SendFunction]:
        async with httpx.AsyncClient(
            base_url=self.base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=self.timeout,
        ) as client:

            async def send(message: OutgoingMessage) -> SendResult:
                to = wa_number(message.to)
                if to is None:
                    raise PermanentSendError(f"not a WhatsApp number: {message.to!r}")
                if not message.template:
                    raise PermanentSendError("a WhatsApp message needs an approved template")
                try:
                    response = await client.post(self.path, json=payload(message, to))
                except httpx.HTTPError as exc:
                    raise TransientSendError(f"{type(exc).__name__}: {exc}") from exc
                if not response.is_success:
                    raise _failure(response)
                messages = response.json().get("messages") or []
                if not messages or not messages[0].get("id"):
                    raise TransientSendError("the WhatsApp API answered without a message id")
                return SendResult(str(messages[0]["id"]))

            yield send
