"""The development sink: every channel that is not configured writes files instead of sending.

`OutboxChannel(directory, name)` stands in for email (no SMTP_URL), SMS (no SMS_API_URL …) or
WhatsApp (no WHATSAPP_API_URL …) and writes each message under
`$SALDO_DATA_DIR/outbox/<channel>/`: email as `<token>.eml` (the exact bytes SMTP would
carry), SMS as `<token>.txt`, WhatsApp as `<token>.json` (the Cloud API request body). The
token comes from the outbox row's idempotency key, so a message sent twice is one file. Each
write is logged with the links in the message, so a developer can follow them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from saldo.notify.base import OutgoingMessage, SendResult, message_token
from saldo.notify.email import mime_bytes
from saldo.notify.whatsapp import payload

__all__ = ["OutboxChannel"]

log = logging.getLogger("saldo.notify.outbox")

_LINK = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True)
class OutboxChannel:
    """Writes the messages of channel `name` as files under `directory`."""

    directory: Path
    name: str
    live: bool = False

    async def send(self, message: OutgoingMessage) -> SendResult:
        token = message_token(message.idempotency_key)
        if self.name == "email":
            data, provider_id = mime_bytes(message, date=dt.datetime.now(dt.UTC))
            path = self.directory / f"{token}.eml"
        elif self.name == "whatsapp":
            body = payload(message, message.to)
            data = json.dumps(body, ensure_ascii=False, indent=2).encode()
            path = self.directory / f"{token}.json"
            provider_id = f"outbox:{path.name}"
        else:
            data = f"To: {message.to}\n\n{message.text}\n".encode()
            path = self.directory / f"{token}.txt"
            provider_id = f"outbox:{path.name}"
        await asyncio.to_thread(self._write, path, data)
        shown = message.text or " ".join(message.parameters)
        links = dict.fromkeys(_LINK.findall(shown))
        log.info(
            "no %s provider configured: message to %s written to %s%s",
            self.name,
            message.to,
            path,
            "".join(f"\n  link: {link}" for link in links),
        )
        return SendResult(provider_id)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
