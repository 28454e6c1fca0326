"""Step 2 of an outbox batch (`saldo.services.outbox`): send the claimed rows, record outcomes.

`send_all()` sends a batch's claims over up to `SENDERS` connections per channel at once (an
SMTP session, pipelined when the server allows it, carries many messages) and hands each
outcome to the batch's `Marker`, which passes it to the process's `Recorder` while the
sending goes on:

- the moment a provider accepts a message it is queued as `sent` (with a `message_sent`
  interaction for the account's timeline); a failure is queued as back to `queued` with
  `send_after` backed off, or as `failed` when it is permanent or the last attempt;
- one flush at a time writes everything queued so far by every batch of the process, one
  statement per kind of outcome, on a connection of its own (`outbox_db.shared`); flushes
  start at least `PACE` apart, so a statement carries a dozen rows rather than one or two,
  and a message waits at most `PACE` and the flush under way;
- a sender starts its next message only while fewer than `SENDERS` messages of the batch are
  on their way or accepted but not yet committed. A worker killed at any instant has thus
  left at most `SENDERS` messages per batch that a provider may have taken without their
  `sent` being committed: those, and only those, can go out twice;
- `send_all()` returns only once every outcome of the batch is committed, so the batch keeps
  its lease (the advisory locks on its holder connection) until then. A write that fails
  stops every batch it carried outcomes of (raised once their other outcomes are written):
  those rows stay `sending`, and the next batch that looks for such rows sends them again.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import weakref
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Final

from saldo.notify.base import Channel, OutgoingMessage, PermanentSendError, open_sender
from saldo.services import outbox_db

__all__ = ["SENDERS", "Claim", "Marker", "SendRun", "send_all"]

#: The shortest time from the start of one flush of outcomes to the start of the next.
PACE: Final = dt.timedelta(milliseconds=4)
#: Connections one batch sends over at once, per channel; also how many of its messages may be
#: on their way or accepted but not yet recorded at any moment.
SENDERS: Final = 8


@dataclass
class SendRun:
    """What one batch did."""

    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    blocked: int = 0
    cancelled: int = 0
    retried: int = 0
    failed: int = 0
    full: bool = False  # the batch was full: more rows may be due

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Claim:
    """A row that will be sent in this batch."""

    id: int
    account: int | None
    debtor: int
    attempts: int
    message: OutgoingMessage
    summary: str


# Rows are found by id. `(n.status = 'sending') IS TRUE` checks the status without offering
# the planner the status index: with statistics taken before a large run (nearly nothing
# `sending`), it would otherwise walk every row that went through `sending` since the last
# vacuum, for every flush.
_MARK_SENT = """
    WITH v AS (
        SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::timestamptz[])
                      AS v(id, provider_id, summary, at)
    ), sent AS (
        UPDATE notification n
        SET status = 'sent', provider_id = v.provider_id, sent_at = v.at, last_error = ''
        FROM v WHERE n.id = v.id AND (n.status = 'sending') IS TRUE
        RETURNING n.id, n.debtor, n.account, n.channel, n.template, v.provider_id, v.summary, v.at
    )
    INSERT INTO interaction (account, debtor, kind, channel, direction, summary, data, occurred_at)
    SELECT account, debtor, 'message_sent', channel, 'outbound', summary,
           jsonb_build_object('notification', id, 'template', template, 'provider_id', provider_id),
           at
    FROM sent
"""
_MARK_UNSENT = """
    UPDATE notification n
    SET status = v.status, send_after = coalesce(v.send_after, n.send_after), last_error = v.error
    FROM unnest($1::int[], $2::text[], $3::timestamptz[], $4::text[])
         AS v(id, status, send_after, error)
    WHERE n.id = v.id AND (n.status = 'sending') IS TRUE
"""
_Sent = tuple[int, str, str, dt.datetime]  # id, provider id, summary, when
_Unsent = tuple[int, str, dt.datetime | None, str]  # id, status, send after, error


class Recorder:
    """Writes the outcomes of every batch of this process, one flush at a time, on the
    process's shared outbox connection (`saldo.services.outbox_db.shared`)."""

    def __init__(self) -> None:
        self.sent: list[tuple[Marker, _Sent]] = []
        self.unsent: list[tuple[Marker, _Unsent]] = []
        self.flushing: asyncio.Task[None] | None = None
        self.started = -math.inf  # when the last flush started (event loop time)

    def add(self, marker: Marker, sent: _Sent | None = None, unsent: _Unsent | None = None) -> None:
        if sent is not None:
            self.sent.append((marker, sent))
        if unsent is not None:
            self.unsent.append((marker, unsent))
        if self.flushing is None or self.flushing.done():
            self.flushing = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self.sent or self.unsent:
            # Outcomes that come within PACE of the last flush wait to go with the next one:
            # a few more rows per statement, rather than a statement for every row or two.
            await asyncio.sleep(self.started + PACE.total_seconds() - loop.time())
            self.started = loop.time()
            sent, self.sent = self.sent, []
            unsent, self.unsent = self.unsent, []
            for statement, outcomes in ((_MARK_SENT, sent), (_MARK_UNSENT, unsent)):
                if outcomes:
                    await self._write(statement, outcomes)

    @staticmethod
    async def _write(statement: str, outcomes: Sequence[tuple[Marker, tuple[Any, ...]]]) -> None:
        counts = Counter(marker for marker, _ in outcomes)
        try:
            connection = await outbox_db.shared()
            await connection.execute(statement, *_columns([row for _, row in outcomes]))
        except Exception as exc:  # every batch with outcomes here learns it, and stops
            await outbox_db.drop_shared()
            for marker, count in counts.items():
                marker.failed(exc, count)
            return
        for marker, count in counts.items():
            if statement is _MARK_SENT:
                marker.run.sent += count
            marker.recorded(count)


def _columns(rows: Sequence[tuple[Any, ...]]) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)]


_recorders: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Recorder] = (
    weakref.WeakKeyDictionary()
)


def _recorder() -> Recorder:
    loop = asyncio.get_running_loop()
    found = _recorders.get(loop)
    if found is None:
        found = _recorders[loop] = Recorder()
    return found


#: When to try a message again after a failure (`None`: never, it has failed for good).
RetryAt = Callable[[Claim, Exception], dt.datetime | None]


class Marker:
    """One batch's outcomes on their way to the `Recorder` (see the module docstring)."""

    def __init__(
        self,
        recorder: Recorder,
        run: SendRun,
        *,
        now: dt.datetime,
        retry_at: RetryAt,
        errors: dict[int, str],
        limit: int = SENDERS,
    ) -> None:
        self.recorder = recorder
        self.run = run
        self.now = now
        self.retry_at = retry_at
        self.errors = errors
        self.limit = limit
        self.unrecorded = 0  # outcomes known here, not yet committed
        self.in_flight = 0  # messages handed to a provider, no answer yet
        self.error: Exception | None = None
        self.progress = asyncio.Event()

    async def room(self) -> None:
        """Wait until one more message may go (fewer than `limit` unrecorded or in flight)."""
        while self.error is None and self.unrecorded + self.in_flight >= self.limit:
            await self.progress.wait()
        if self.error is not None:
            raise self.error  # a failed write stops the senders too
        self.in_flight += 1

    def accepted(self, claim: Claim, provider_id: str) -> None:
        self.in_flight -= 1
        self.unrecorded += 1
        self.recorder.add(self, sent=(claim.id, provider_id[:200], claim.summary, self.now))

    def refused(self, claim: Claim, exc: Exception) -> None:
        self.in_flight -= 1
        self.unrecorded += 1
        text = f"{type(exc).__name__}: {exc}"[:2000]
        self.errors[claim.id] = text
        later = None if isinstance(exc, PermanentSendError) else self.retry_at(claim, exc)
        if later is not None:
            self.recorder.add(self, unsent=(claim.id, "queued", later, text))
            self.run.retried += 1
        else:
            self.recorder.add(self, unsent=(claim.id, "failed", None, text))
            self.run.failed += 1

    def recorded(self, count: int) -> None:
        self.unrecorded -= count
        self._progressed()

    def failed(self, exc: Exception, count: int) -> None:
        self.unrecorded -= count
        self.error = self.error or exc
        self._progressed()

    def _progressed(self) -> None:
        self.progress.set()
        self.progress = asyncio.Event()

    async def close(self) -> None:
        """Wait until every outcome is written or has failed to be; raises if one failed."""
        while self.unrecorded > 0:
            await self.progress.wait()
        if self.error is not None:
            raise self.error


async def send_all(
    claims: Sequence[Claim],
    channels: Mapping[str, Channel],
    run: SendRun,
    *,
    now: dt.datetime,
    retry_at: RetryAt,
    errors: dict[int, str],
) -> None:
    """Send `claims`; returns once every outcome is committed (raises if one could not be)."""
    recorder = _recorder()
    marker = Marker(recorder, run, now=now, retry_at=retry_at, errors=errors)
    by_channel: dict[str, deque[Claim]] = defaultdict(deque)
    for claim in claims:
        by_channel[claim.message.channel].append(claim)

    async def sender(channel: Channel, waiting: deque[Claim]) -> None:
        async with open_sender(channel) as send:
            while waiting:
                await marker.room()
                if not waiting:  # another sender took the last one meanwhile
                    marker.in_flight -= 1
                    break
                claim = waiting.popleft()
                try:
                    result = await send(claim.message)
                except Exception as exc:  # a provider's answer, or a bug: never lose the row
                    marker.refused(claim, exc)
                else:
                    marker.accepted(claim, result.provider_id)

    try:
        results = await asyncio.gather(
            *(
                sender(channels[name], waiting)
                for name, waiting in by_channel.items()
                for _ in range(min(SENDERS, len(waiting)))
            ),
            return_exceptions=True,
        )
    finally:
        await marker.close()  # every outcome committed before the caller lets the lease go
    for result in results:
        if isinstance(result, BaseException):
            raise result
