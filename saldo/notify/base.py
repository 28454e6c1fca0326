"""What every channel shares: the message, the result, the two kinds of failure, the protocol.

A `Channel` sends one `OutgoingMessage` and answers with the provider's id for it, or raises:

- `TransientSendError` — worth trying again later (a timeout, a refused connection, a 4xx SMTP
  reply, HTTP 429 or 5xx, a provider's rate limit);
- `PermanentSendError` — trying again cannot help (an address the server rejects for good, a
  phone number the provider says is invalid, a template that does not exist).

A channel that can send several messages over one connection also offers `connection()`, an
async context manager yielding a `send` function; `open_sender()` picks whichever the channel
has, so callers batch without knowing which channels can.

`live` is False for the development sink (`saldo.notify.outbox`), so a caller can tell a real
SMS provider from the file it would otherwise write.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "Attachment",
    "BatchingChannel",
    "Channel",
    "OutgoingMessage",
    "PermanentSendError",
    "SendError",
    "SendFunction",
    "SendResult",
    "TransientSendError",
    "message_token",
    "open_sender",
]


@dataclass(frozen=True)
class Attachment:
    """A file sent along with a message (`content_type` such as "application/pdf")."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class OutgoingMessage:
    """One message, ready for a channel.

    `idempotency_key` is the outbox row's key: email derives its Message-ID from it, so a
    message sent again after a crash carries the same id. Email uses `sender`, `subject`,
    `text`, `html`, `attachments` and `unsubscribe_url` (the one-click link of the
    List-Unsubscribe header); SMS uses `text`; WhatsApp uses the approved `template`, its
    `language` and body `parameters`.
    """

    channel: str
    to: str
    idempotency_key: str
    subject: str = ""
    text: str = ""
    html: str = ""
    attachments: tuple[Attachment, ...] = ()
    sender: str = ""
    unsubscribe_url: str = ""
    template: str = ""
    language: str = "es"
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class SendResult:
    """The provider's id for the message (Message-ID for email, SID, wamid, file name)."""

    provider_id: str


class SendError(Exception):
    """A message did not go out; see the two subclasses."""


class TransientSendError(SendError):
    """The provider could not take the message now; the same message may succeed later."""


class PermanentSendError(SendError):
    """The provider refused the message for good."""


SendFunction = Callable[[OutgoingMessage], Awaitable[SendResult]]


class Channel(Protocol):
    """Sends messages of one kind (`name`: "email", "sms" or "whatsapp")."""

    @property
    def name(self) -> str: ...

    @property
    def live(self) -> bool: ...

    async def send(self, message: OutgoingMessage) -> SendResult: ...


@runtime_checkable
class BatchingChannel(Protocol):
    """A channel that keeps one connection open for several messages."""

    def connection(self) -> AbstractAsyncContextManager[SendFunction]: ...


@asynccontextmanager
async def _single(channel: Channel) -> AsyncIterator[SendFunction]:
    yield channel.send


def open_sender(channel: Channel) -> AbstractAsyncContextManager[SendFunction]:
    """`channel.connection()` when it batches, else its plain `send`."""
    if isinstance(channel, BatchingChannel):
        return channel.connection()
    return _single(channel)


def message_token(idempotency_key: str) -> str:
    """A stable, opaque token for a message (Message-ID local part, file names)."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
