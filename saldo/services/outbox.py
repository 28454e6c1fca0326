"""The notification outbox: every message is a row first; this module sends the rows once.

Queueing. `queue()` inserts a row (debtor, account, channel, template, what it is about) with
INSERT … ON CONFLICT (idempotency_key) DO NOTHING, so whoever produces messages (the dunning
run, a payment, a plan decision) can do it again safely; the key says what makes a message
unique, e.g. `dunning:<debtor>:<step>:<channel>:<date>` or `receipt:<payment id>`.

Statuses:

- `queued` — waiting; due once `send_after` (NULL: at once) has passed;
- `deferred` — a guardrail said "not now": `send_after` is the next allowed moment and
  `blocked_reason` why (window, sunday, holiday, quiet_hours, cap); due again then;
- `sending` — claimed by a worker that is sending it right now (see below);
- `sent` — the provider took it: `provider_id`, `sent_at` (it counts toward the caps);
- `blocked` — a guardrail said "never" (`blocked_reason`: no_address, opted_out,
  pause:<reason>, no_send_moment);
- `failed` — a permanent provider error, or `MAX_ATTEMPTS` transient ones (`last_error`);
- `cancelled` — nothing left to say when it was due (`blocked_reason`: nothing_due,
  payment_reversed, promise_closed, judicial_stage, not_found), or withdrawn by its producer.

Sending (`send_due`), one batch:

1. Claim, on a database connection of its own (`saldo.services.outbox_db.holder`): due rows
   are picked with FOR UPDATE SKIP LOCKED (concurrent workers take different rows) and each is
   also marked with a session-level advisory lock on its id (and one on its debtor, so no two
   workers send to one debtor at once and the caps hold). The guardrails
   (`saldo.rules.guardrails`) decide each row at this moment, from a few set-based queries
   for the whole batch: deferred and blocked rows are written as such; the rest are rendered
   (email bodies from a stencil per template shape, `saldo.notify.stencil`), stored with
   their content and address, set to `sending` with `attempts + 1`, and committed.
2. Send them over `SENDERS` connections per channel at once (an SMTP session carries many
   messages, pipelined when the server offers it: `saldo.notify.smtp_session`). The moment a
   provider accepts a message it is queued for recording, and one flush at a time writes
   every outcome queued so far by any batch of the process — `sent` with the provider's id
   (and a `message_sent` interaction for the account's timeline), or back to `queued` with
   `send_after` backed off exponentially after a transient failure, or `failed` after a
   permanent one or the last attempt (`saldo.services.outbox_send`). A batch starts a message
   only while fewer than `SENDERS` of its messages are on their way or accepted but not yet
   committed, and it returns only once all its outcomes are committed.
3. Release the advisory locks: `pg_advisory_unlock_all()`, and the connection serves the next
   batch; after any failure the connection is closed instead, which releases them too.

Exactly once under crashes. The advisory locks are the lease: a row is `sending` only while
the session that claimed it is alive and has not let it go, which it does only after the
row's outcome is committed. If the worker dies — at any point — PostgreSQL ends its sessions
and drops the locks, and the next batch that looks for such rows (`status = 'sending'` and
the lock can be taken: any batch with room to spare, and one at least every `ORPHAN_EVERY`
per process while due rows fill the batches) claims the row again and sends it with the same
content and, for email, the same Message-ID. Nothing is lost: a row leaves
`queued`/`sending` only by a committed outcome. The one window where a message can go twice
is between the provider accepting it and the commit of `sent` — the flush under way plus its
own, a few milliseconds (`outbox_send.PACE` and two statements), for at most `SENDERS`
messages per batch; the crash test (tests/worker/test_outbox_crash.py) kills a worker at
random and counts duplicate Message-IDs at the SMTP sink. A receiving system that
deduplicates by Message-ID closes it for email. Neither Twilio's Messages API nor the
WhatsApp Cloud API takes an idempotency key, so for them the window is the same.

The outbox's connections commit with `synchronous_commit = off`: a commit does not wait for
the write-ahead log to reach the disk (milliseconds per message otherwise). A worker that dies
loses nothing by it; only a crash of the database server itself can forget the last fraction
of a second of `sent` marks, and those messages then go once more — never fewer.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from saldo.errors import NotFound, SaldoError, ValidationFailed
from saldo.i18n import SUPPORTED_LANGUAGES
from saldo.notify.base import Channel, OutgoingMessage
from saldo.rules import guardrails
from saldo.rules.guardrails import Block, Calendar, Cap, Defer, Facts, Send, Window
from saldo.services import notify_render as nr
from saldo.services import outbox_db
from saldo.services.outbox_send import SENDERS, Claim, SendRun, send_all
from saldo.services.pauses import AccountPauses, paused_items
from saldo.services.statement import local_today
from saldo.tables import Notification

__all__ = [
    "BATCH",
    "LEASE_LOCK",
    "MAX_ATTEMPTS",
    "SENDERS",
    "STATUSES",
    "OneResult",
    "SendRun",
    "backoff",
    "cancel",
    "queue",
    "send_due",
    "send_one",
]

#: Rows one batch claims.
BATCH: Final = 200
#: A row fails for good after this many transient failures.
MAX_ATTEMPTS: Final = 5
#: Rows a batch decides and renders before it lets other work of the worker run.
YIELD_EVERY: Final = 16
#: A batch full of due rows still looks for rows left `sending` by a dead worker this often.
ORPHAN_EVERY: Final = dt.timedelta(seconds=5)
#: The first back-off after a transient failure; it doubles per attempt up to MAX_BACKOFF.
RETRY_BASE: Final = dt.timedelta(minutes=5)
MAX_BACKOFF: Final = dt.timedelta(hours=2)
STATUSES: Final = ("queued", "deferred", "sending", "sent", "blocked", "failed", "cancelled")
#: Advisory lock namespaces (the first key of pg_try_advisory_lock(int, int)).
LEASE_LOCK: Final = 0x5A1D0
DEBTOR_LOCK: Final = 0x5A1D1
#: Templates as stored that count toward the caps (the collection kinds, and "overdue").
COUNTED: Final = tuple(sorted(nr.COLLECTION | {"overdue"}))
_INVOICE_TEMPLATES: Final = nr.INVOICE_KINDS | {"overdue", "overdue_judicial"}


def backoff(attempts: int, base: dt.timedelta = RETRY_BASE) -> dt.timedelta:
    """How long to wait after the `attempts`-th failed attempt."""
    return min(base * 2 ** max(attempts - 1, 0), MAX_BACKOFF)


# ---------------------------------------------------------------------------- queueing


async def queue(
    *,
    debtor_id: int,
    channel: str,
    template: str,
    idempotency_key: str,
    now: dt.datetime,
    account_id: int | None = None,
    context: Mapping[str, Any] | None = None,
    invoice_ids: Sequence[int] = (),
    stage: str = "",
    step_offset: int | None = None,
    send_after: dt.datetime | None = None,
    language: str | None = None,
) -> int | None:
    """Queue one message; returns its id, or None when the key was queued before.

    Runs in the caller's transaction when there is one. The language defaults to the
    debtor's; the address is read when the message is sent.
    """
    if channel not in nr.CHANNELS:
        raise ValidationFailed(f"unknown channel {channel!r}", field="channel")
    nr.kind_of(template, stage)  # refuses an unknown template now rather than at send time
    rows = await Notification.raw(
        """
        INSERT INTO notification (debtor, account, channel, template, language, idempotency_key,
                                  context, invoice_ids, stage, step_offset, status, send_after,
                                  created_at)
        SELECT d.id, {}, {}, {}, coalesce({}, d.language), {}, {}::jsonb, {}::jsonb, {}, {},
               'queued', {}, {}
        FROM debtor d WHERE d.id = {}
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id
        """,
        account_id,
        channel,
        template,
        language if language in SUPPORTED_LANGUAGES else None,
        idempotency_key,
        json.dumps(dict(context or {})),
        json.dumps([int(i) for i in invoice_ids]),
        stage,
        step_offset,
        send_after,
        now,
        debtor_id,
    )
    return int(rows[0]["id"]) if rows else None


# ---------------------------------------------------------------------------- claiming

_DUE_QUEUED = """
    SELECT id, debtor FROM notification
    WHERE status = 'queued' AND (send_after IS NULL OR send_after <= $1)
    LIMIT $2
    FOR UPDATE SKIP LOCKED
"""
_DUE_DEFERRED = """
    SELECT id, debtor FROM notification
    WHERE status = 'deferred' AND send_after <= $1
    LIMIT $2
    FOR UPDATE SKIP LOCKED
"""
# OFFSET 0 keeps the planner from testing the lock before the status: only rows that are
# `sending` are ever locked here, and only until LIMIT is reached.
_ORPHANS = f"""
    SELECT id, debtor FROM (SELECT id, debtor FROM notification WHERE status = 'sending' OFFSET 0) s
    WHERE pg_try_advisory_lock({LEASE_LOCK}, s.id)
    LIMIT $1
"""
_ONLY = """
    SELECT id, debtor, status FROM notification
    WHERE id = ANY($1::int[]) AND status IN ('queued', 'deferred')
    FOR UPDATE SKIP LOCKED
"""
_ONLY_ORPHAN = f"""
    SELECT id, debtor FROM (
        SELECT id, debtor FROM notification
        WHERE id = ANY($1::int[]) AND status = 'sending' OFFSET 0
    ) s
    WHERE pg_try_advisory_lock({LEASE_LOCK}, s.id)
"""
_LOCK = f"""
    SELECT t.id FROM unnest($1::int[], $2::int[]) AS t(id, debtor)
    WHERE pg_try_advisory_lock({LEASE_LOCK}, t.id) AND pg_try_advisory_lock({DEBTOR_LOCK}, t.debtor)
"""
_LOCK_DEBTORS = f"""
    SELECT t.id FROM unnest($1::int[], $2::int[]) AS t(id, debtor)
    WHERE pg_try_advisory_lock({DEBTOR_LOCK}, t.debtor)
"""
_ROWS = """
    SELECT n.id, n.debtor, n.account, n.channel, n.template, n.language, n.idempotency_key,
           n.context, n.invoice_ids, n.stage, n.status, n.attempts,
           d.name, d.email, d.phone, d.whatsapp, d.language AS debtor_language, d.timezone,
           d.country, c.name AS creditor_name, c.agency_name, c.country AS creditor_country,
           coalesce(a.currency, (SELECT a2.currency FROM account a2 WHERE a2.debtor = d.id
                                 ORDER BY a2.id LIMIT 1), 'ARS') AS currency,
           p.window_start, p.window_end, p.skip_sundays, p.skip_holidays, p.frequency_cap,
           p.frequency_window_days
    FROM notification n
    JOIN debtor d ON d.id = n.debtor
    JOIN creditor c ON c.id = d.creditor
    LEFT JOIN account a ON a.id = n.account
    LEFT JOIN LATERAL (
        SELECT dp.* FROM dunning_policy dp
        WHERE dp.creditor = d.creditor AND dp.active
          AND dp.segment IN (coalesce(a.segment, 'standard'), 'standard')
        ORDER BY dp.segment = coalesce(a.segment, 'standard') DESC
        LIMIT 1
    ) p ON true
    WHERE n.id = ANY($1::int[]) AND n.status IN ('queued', 'deferred', 'sending')
    ORDER BY n.id
"""
_PREFERENCES = """
    SELECT DISTINCT ON (debtor, channel) debtor, channel, opted_in, quiet_start, quiet_end
    FROM contact_preference WHERE debtor = ANY($1::int[])
    ORDER BY debtor, channel, changed_at DESC, id DESC
"""
# OFFSET 0 keeps the planner on the debtor index: statistics taken before a large run (nearly
# nothing `sent`) would send it through the status index, over every message sent since.
_RECENT = """
    SELECT debtor, channel, sent_at FROM (
        SELECT debtor, channel, sent_at, status, template FROM notification
        WHERE debtor = ANY($1::int[]) OFFSET 0
    ) n
    WHERE status = 'sent' AND template = ANY($2::text[]) AND sent_at > $3
"""
_HOLIDAYS = (
    "SELECT country, day FROM holiday WHERE country = ANY($1::text[]) AND day BETWEEN $2 AND $3"
)


class _OrphanClock:
    """When this process last looked for rows left `sending` while the due rows filled the
    batch: at most every `ORPHAN_EVERY`."""

    def __init__(self) -> None:
        self.last = -math.inf

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < ORPHAN_EVERY.total_seconds():
            return False
        self.last = now
        return True


_orphan_clock = _OrphanClock()


async def _claimable(
    holder: Any, *, now: dt.datetime, limit: int, only: Sequence[int] | None
) -> tuple[list[int], bool]:
    """Ids this batch holds (locked), and whether a wanted row was held by someone else."""
    if only is not None:
        ids = [int(i) for i in only]
        fresh = await holder.fetch(_ONLY, ids)
        orphans = await holder.fetch(_ONLY_ORPHAN, ids)
    else:
        # Rows a dead worker left `sending` come first when it is time to look for them;
        # otherwise only when the due rows leave room (the look walks every row that went
        # through `sending` since the last vacuum: too much for every batch of a long run).
        looked = _orphan_clock.due()
        orphans = await holder.fetch(_ORPHANS, limit) if looked else []
        fresh = []
        for query in (_DUE_QUEUED, _DUE_DEFERRED):
            wanted = limit - len(orphans) - len(fresh)
            if wanted > 0:
                fresh += await holder.fetch(query, now, wanted)
        if not looked and len(fresh) < limit:
            orphans = await holder.fetch(_ORPHANS, limit - len(fresh))
    locked: list[int] = []
    if fresh:
        rows = await holder.fetch(
            _LOCK, [int(r["id"]) for r in fresh], [int(r["debtor"]) for r in fresh]
        )
        locked += [int(r["id"]) for r in rows]
    if orphans:
        rows = await holder.fetch(
            _LOCK_DEBTORS, [int(r["id"]) for r in orphans], [int(r["debtor"]) for r in orphans]
        )
        locked += [int(r["id"]) for r in rows]
    busy = only is not None and not locked
    return sorted(set(locked)), busy


# ---------------------------------------------------------------------------- deciding


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _ids(value: Any) -> list[int]:
    data = _json(value)
    return [int(v) for v in data if str(v).isdigit()] if isinstance(data, list) else []


def _party(row: Mapping[str, Any]) -> nr.Party:
    language = row["debtor_language"] or row["language"]
    return nr.Party(
        debtor_id=int(row["debtor"]),
        name=str(row["name"]),
        email=str(row["email"] or ""),
        phone=str(row["phone"] or ""),
        whatsapp=str(row["whatsapp"] or ""),
        language=str(language if language in SUPPORTED_LANGUAGES else "es"),
        timezone=str(row["timezone"] or "UTC"),
        country=str(row["country"] or ""),
        creditor=str(row["creditor_name"]),
        agency=str(row["agency_name"] or ""),
        currency=str(row["currency"]),
    )


@dataclass
class _Context:
    """What the guardrails need about a batch, read in a few set-based queries."""

    preferences: dict[tuple[int, str], Mapping[str, Any]] = field(default_factory=dict)
    recent: dict[tuple[int, str], list[dt.datetime]] = field(
        default_factory=lambda: defaultdict(list)
    )
    holidays: dict[str, set[dt.date]] = field(default_factory=lambda: defaultdict(set))
    pauses: dict[int, AccountPauses] = field(default_factory=dict)
    lines: dict[int, nr.InvoiceLine] = field(default_factory=dict)

    def accounts_of(self, row: Mapping[str, Any]) -> list[int]:
        """The row's account, or the accounts of the invoices it is about (a reminder that
        groups several accounts of one debtor has no account of its own)."""
        found = {int(row["account"])} if row["account"] is not None else set()
        found |= {self.lines[i].account_id for i in row["invoice_list"] if i in self.lines}
        return sorted(found)


def _cap(row: Mapping[str, Any]) -> Cap:
    if row["frequency_cap"] is None:
        return guardrails.DEFAULT_CAP
    return Cap(int(row["frequency_cap"]), int(row["frequency_window_days"] or 7))


async def _context(holder: Any, rows: Sequence[Mapping[str, Any]], now: dt.datetime) -> _Context:
    found = _Context()
    found.lines = await nr.invoice_lines(
        [i for r in rows if r["template"] in _INVOICE_TEMPLATES for i in r["invoice_list"]]
    )
    debtors = sorted({int(r["debtor"]) for r in rows})
    for p in await holder.fetch(_PREFERENCES, debtors):
        found.preferences[(int(p["debtor"]), str(p["channel"]))] = p
    longest = max((_cap(r).days for r in rows), default=7)
    since = now - dt.timedelta(days=max(longest, 1))
    for s in await holder.fetch(_RECENT, debtors, list(COUNTED), since):
        found.recent[(int(s["debtor"]), str(s["channel"]))].append(s["sent_at"])
    countries = sorted({str(r["country"]) for r in rows if r["skip_holidays"]})
    if countries:
        first = now.date() - dt.timedelta(days=2)
        last = now.date() + dt.timedelta(days=guardrails.HORIZON_DAYS + 2)
        for h in await holder.fetch(_HOLIDAYS, countries, first, last):
            found.holidays[str(h["country"])].add(h["day"])
    by_day: dict[dt.date, set[int]] = defaultdict(set)
    for r in rows:
        by_day[local_today(now, str(r["timezone"]))].update(found.accounts_of(r))
    for today, accounts in by_day.items():
        found.pauses.update(await paused_items(sorted(accounts), today=today))
    return found


def _facts(
    row: Mapping[str, Any], kind: str, party: nr.Party, ctx: _Context, now: dt.datetime
) -> Facts:
    channel = str(row["channel"])
    preference = ctx.preferences.get((party.debtor_id, channel))
    quiet = None
    if preference is not None and preference["quiet_start"] and preference["quiet_end"]:
        quiet = Window(preference["quiet_start"], preference["quiet_end"])
    if row["window_start"] is not None and row["window_end"] is not None:
        window = Window(row["window_start"], row["window_end"])
    else:  # no policy: the preset of the creditor's country, as the dunning run uses
        window = guardrails.preset_window(str(row["creditor_country"] or ""))
    calendar = Calendar(
        timezone=party.timezone,
        window=window,
        skip_sundays=bool(row["skip_sundays"]),
        holidays=frozenset(ctx.holidays.get(party.country, ()))
        if row["skip_holidays"]
        else frozenset(),
        quiet=quiet,
    )
    pause = None
    if kind in nr.COLLECTION:
        for account_id in ctx.accounts_of(row):
            pauses = ctx.pauses.get(account_id)
            pause = pauses.blocks(kind, row["invoice_list"]) if pauses else None
            if pause:
                break
    return Facts(
        now=now,
        calendar=calendar,
        address=party.address(channel),
        opted_in=bool(preference["opted_in"]) if preference is not None else True,
        guarded=kind in nr.COLLECTION,
        cap=_cap(row),
        recent=tuple(ctx.recent.get((party.debtor_id, channel), ())),
        pause=pause,
    )


@dataclass
class _Plan:
    sends: list[Claim] = field(default_factory=list)
    rendered: dict[int, nr.Rendered] = field(default_factory=dict)
    deferred: list[tuple[int, dt.datetime, str]] = field(default_factory=list)
    closed: list[tuple[int, str, str, str]] = field(
        default_factory=list
    )  # id, status, reason, error


async def _plan(
    holder: Any,
    ids: Sequence[int],
    *,
    now: dt.datetime,
    channels: Mapping[str, Channel],
    public_url: str,
    mail_from: str,
    unsubscribe_key: bytes | None,
) -> _Plan:
    # Each row as a dict, with the invoices it is about read once.
    rows = [{**r, "invoice_list": _ids(r["invoice_ids"])} for r in await holder.fetch(_ROWS, ids)]
    plan = _Plan()
    if not rows:
        return plan
    ctx = await _context(holder, rows, now)
    lines = ctx.lines
    for row in rows:
        row_id, channel = int(row["id"]), str(row["channel"])
        try:
            kind = nr.kind_of(str(row["template"]), str(row["stage"] or ""))
        except ValidationFailed as exc:
            plan.closed.append((row_id, "failed", "", str(exc)))
            continue
        if kind is None:
            plan.closed.append((row_id, "cancelled", "judicial_stage", ""))
            continue
        if channel not in channels:
            plan.closed.append((row_id, "failed", "", f"no {channel} channel is set up"))
            continue
        party = _party(row)
        decision = guardrails.decide(_facts(row, kind, party, ctx, now))
        if isinstance(decision, Block):
            plan.closed.append((row_id, "blocked", decision.reason, ""))
            continue
        if isinstance(decision, Defer):
            plan.deferred.append((row_id, decision.until, decision.reason))
            continue
        assert isinstance(decision, Send)
        language = party.lang
        try:
            values, attachments = await nr.load_values(
                kind,
                party=party,
                language=language,
                context=row["context"],
                idempotency_key=str(row["idempotency_key"]),
                lines=[lines[i] for i in row["invoice_list"] if i in lines],
                now=now,
                public_url=public_url,
            )
            links = nr.links_for(
                public_url,
                debtor_id=party.debtor_id,
                channel=channel,
                unsubscribe_key=unsubscribe_key,
            )
            rendered = nr.render(
                kind, channel, party, links, values, language=language, attachments=attachments
            )
        except nr.Skip as exc:
            plan.closed.append((row_id, "cancelled", exc.reason, ""))
            continue
        except (ValidationFailed, KeyError) as exc:
            plan.closed.append((row_id, "failed", "", f"cannot render {kind}: {exc}"))
            continue
        if kind in nr.COLLECTION:
            ctx.recent[(party.debtor_id, channel)].append(now)
        plan.rendered[row_id] = rendered
        # Deciding and rendering is the CPU-heavy part: let other batches of this worker go on
        # sending and recording now and then, so none waits behind a whole batch of renders.
        if len(plan.rendered) % YIELD_EVERY == 0:
            await asyncio.sleep(0)
        plan.sends.append(
            Claim(
                id=row_id,
                account=int(row["account"]) if row["account"] is not None else None,
                debtor=party.debtor_id,
                attempts=int(row["attempts"]) + 1,
                message=OutgoingMessage(
                    channel=channel,
                    to=party.address(channel),
                    idempotency_key=str(row["idempotency_key"]),
                    subject=rendered.subject,
                    text=rendered.text,
                    html=rendered.html,
                    attachments=rendered.attachments,
                    sender=mail_from,
                    unsubscribe_url=rendered.unsubscribe_url,
                    template=rendered.template,
                    language=rendered.language,
                    parameters=rendered.parameters,
                ),
                summary=rendered.subject if channel == "email" else rendered.text[:200],
            )
        )
    return plan


_WRITE_DEFERRED = """
    UPDATE notification n SET status = 'deferred', send_after = v.until, blocked_reason = v.reason
    FROM unnest($1::int[], $2::timestamptz[], $3::text[]) AS v(id, until, reason)
    WHERE n.id = v.id AND n.status IN ('queued', 'deferred', 'sending')
"""
_WRITE_CLOSED = """
    UPDATE notification n SET status = v.status, blocked_reason = v.reason, last_error = v.error
    FROM unnest($1::int[], $2::text[], $3::text[], $4::text[]) AS v(id, status, reason, error)
    WHERE n.id = v.id AND n.status IN ('queued', 'deferred', 'sending')
"""
_WRITE_SENDING = """
    UPDATE notification n
    SET status = 'sending', attempts = n.attempts + 1, to_address = v.to_address,
        subject = v.subject, body_text = v.body_text, body_html = v.body_html,
        language = v.language, blocked_reason = ''
    FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
         AS v(id, to_address, subject, body_text, body_html, language)
    WHERE n.id = v.id AND n.status IN ('queued', 'deferred', 'sending')
    RETURNING n.id, n.attempts
"""


async def _write_plan(holder: Any, plan: _Plan) -> list[Claim]:
    if plan.deferred:
        await holder.execute(
            _WRITE_DEFERRED,
            [d[0] for d in plan.deferred],
            [d[1] for d in plan.deferred],
            [d[2] for d in plan.deferred],
        )
    if plan.closed:
        await holder.execute(
            _WRITE_CLOSED,
            [c[0] for c in plan.closed],
            [c[1] for c in plan.closed],
            [c[2] for c in plan.closed],
            [c[3][:2000] for c in plan.closed],
        )
    if not plan.sends:
        return []
    stored = [plan.rendered[c.id] for c in plan.sends]
    rows = await holder.fetch(
        _WRITE_SENDING,
        [c.id for c in plan.sends],
        [c.message.to[:254] for c in plan.sends],
        [r.subject for r in stored],
        [r.text if r.channel != "whatsapp" else _whatsapp_copy(r) for r in stored],
        [r.html for r in stored],
        [r.language for r in stored],
    )
    attempts = {int(r["id"]): int(r["attempts"]) for r in rows}
    claimed = []
    for claim in plan.sends:
        if claim.id in attempts:
            claim.attempts = attempts[claim.id]
            claimed.append(claim)
    return claimed


def _whatsapp_copy(rendered: nr.Rendered) -> str:
    parameters = " | ".join(rendered.parameters)
    return f"{rendered.text}\n\n[{rendered.template} ({rendered.language}): {parameters}]"


# ---------------------------------------------------------------------------- sending


async def _batch(
    *,
    now: dt.datetime,
    channels: Mapping[str, Channel],
    limit: int,
    public_url: str,
    mail_from: str,
    unsubscribe_key: bytes | None,
    only: Sequence[int] | None,
    retry_base: dt.timedelta,
    errors: dict[int, str],
) -> tuple[SendRun, bool]:
    run = SendRun()
    async with outbox_db.holder() as holder:  # its advisory locks are the batch's lease
        async with holder.transaction():
            ids, busy = await _claimable(holder, now=now, limit=limit, only=only)
            run.claimed = len(ids)
            run.full = only is None and len(ids) >= limit
            plan = await _plan(
                holder,
                ids,
                now=now,
                channels=channels,
                public_url=public_url,
                mail_from=mail_from,
                unsubscribe_key=unsubscribe_key,
            )
            claims = await _write_plan(holder, plan)
        run.deferred = len(plan.deferred)
        run.blocked = sum(1 for c in plan.closed if c[1] == "blocked")
        run.cancelled = sum(1 for c in plan.closed if c[1] == "cancelled")
        run.failed = sum(1 for c in plan.closed if c[1] == "failed")

        def retry_at(claim: Claim, exc: Exception) -> dt.datetime | None:
            if claim.attempts >= MAX_ATTEMPTS:
                return None
            return now + backoff(claim.attempts, retry_base)

        await send_all(claims, channels, run, now=now, retry_at=retry_at, errors=errors)
        return run, busy


async def send_due(
    *,
    now: dt.datetime,
    channels: Mapping[str, Channel],
    limit: int = BATCH,
    public_url: str,
    mail_from: str,
    unsubscribe_key: bytes | None = None,
    retry_base: dt.timedelta = RETRY_BASE,
) -> SendRun:
    """Send one batch of due messages (at most `limit`); `SendRun.full` says more may wait.

    `channels` maps "email", "sms" and "whatsapp" to their `Channel`; `unsubscribe_key`
    signs the one-click unsubscribe links (without it, emails link to the preferences page
    only).
    """
    run, _ = await _batch(
        now=now,
        channels=channels,
        limit=max(int(limit), 1),
        public_url=public_url,
        mail_from=mail_from,
        unsubscribe_key=unsubscribe_key,
        only=None,
        retry_base=retry_base,
        errors={},
    )
    return run


@dataclass(frozen=True)
class OneResult:
    """What became of one row `send_one` was asked to send."""

    status: str  # the row's status afterwards, or "busy" while another worker holds it
    attempts: int = 0
    error: str = ""

    @property
    def final(self) -> bool:
        return self.status == "failed"


async def send_one(
    notification_id: int,
    *,
    now: dt.datetime,
    channels: Mapping[str, Channel],
    public_url: str,
    mail_from: str,
    unsubscribe_key: bytes | None = None,
    retry_base: dt.timedelta = RETRY_BASE,
) -> OneResult:
    """Send one row now, whatever its `send_after` (the guardrails still apply).

    A row that is not waiting (sent, blocked, failed, cancelled) is left alone and its
    status returned; "busy" when another worker holds it.
    """
    errors: dict[int, str] = {}
    _, busy = await _batch(
        now=now,
        channels=channels,
        limit=1,
        public_url=public_url,
        mail_from=mail_from,
        unsubscribe_key=unsubscribe_key,
        only=[notification_id],
        retry_base=retry_base,
        errors=errors,
    )
    rows = await Notification.raw(
        "SELECT status, attempts FROM notification WHERE id = {}", notification_id
    )
    if not rows:
        raise _missing(notification_id)
    status = str(rows[0]["status"])
    if busy and status in ("queued", "deferred", "sending"):
        status = "busy"
    return OneResult(status, int(rows[0]["attempts"]), errors.get(notification_id, ""))


def _missing(notification_id: int) -> SaldoError:
    return NotFound(f"notification {notification_id} does not exist")


async def cancel(idempotency_keys: Sequence[str], *, reason: str) -> int:
    """Withdraw messages not sent yet (their producer changed its mind); returns how many."""
    rows = await Notification.raw(
        """
        UPDATE notification SET status = 'cancelled', blocked_reason = {}
        WHERE idempotency_key = ANY({}::text[]) AND status IN ('queued', 'deferred')
        RETURNING id
        """,
        reason,
        list(idempotency_keys),
    )
    return len(rows)
