"""One account seen whole (the back office's "360°"): who owes, what, since when, what was said
and done, and one timeline of everything that happened.

`account_360(account_id, today=, now=, language=)` gathers:

- the case: creditor, stage, segment, risk score, assignee, staff pause, next action, legal
  escalation, and every pause of reminders in force (`saldo.services.pauses`);
- the debtor and how they want to be contacted (`saldo.services.preferences`);
- the balance with aging, the open and paid invoices and the latest payments — the very
  computation the debtor sees in the portal (`saldo.services.statement.balance`), so staff and
  debtor never see two numbers — and the full statement with its running balance;
- payment plans, promises to pay, disputes (open and closed), open tasks;
- every message: queued, sent, failed or blocked, with the reason it was held back.

`timeline(account_id, page=)` merges, newest first, the account's `Interaction` rows (calls,
visits, notes, portal actions — sign-ins belong to the debtor, not to one account, and are
shown on each of their accounts — plan and promise steps, stage changes, pauses, assignments),
its ledger entries (when each was posted) and its messages (when sent, or created if not:
the message row itself, with its status, stands for the outbox's "message_sent" log line),
one page at a time, in one query.

Times are shown in the debtor's time zone (`timezone`), the zone the calls are made in.
Nothing here writes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from saldo.errors import NotFound
from saldo.i18n import gettext
from saldo.services import preferences, statement
from saldo.services.pauses import AccountPauses, paused_items
from saldo.services.preferences import PreferencesView
from saldo.services.statement import (
    AccountView,
    Amount,
    CreditorView,
    DebtorView,
    Formats,
    Period,
    StatementAccount,
    display_locale,
)
from saldo.tables import Account

__all__ = [
    "TIMELINE_PAGE",
    "Account360",
    "DisputeRow",
    "MessageRow",
    "PlanRow",
    "PromiseRow",
    "TaskRow",
    "TimelineItem",
    "TimelinePage",
    "account_360",
    "account_header",
    "timeline",
]

TIMELINE_PAGE: Final = 30
MESSAGES_SHOWN: Final = 100
_MAX_ID: Final = 2**31 - 1
#: Interaction kinds staff record by hand (`saldo.services.account_actions`).
CONTACT_KINDS: Final = ("call", "visit", "note")
#: Interaction kinds that change the case rather than talk to the debtor.
STATUS_KINDS: Final = (
    "stage_changed",
    "legal_escalation",
    "paused",
    "resumed",
    "assigned",
    "promise_made",
    "promise_kept",
    "promise_broken",
    "promise_cancelled",
)


# ---------------------------------------------------------------------------- view models


@dataclass(frozen=True, slots=True)
class PlanRow:
    id: int
    status: str
    proposed_by: str
    total: Amount
    down_payment: Amount
    installments: int
    frequency: str
    first_date: dt.date
    created_at: dt.datetime
    decided_at: dt.datetime | None
    missed: int


@dataclass(frozen=True, slots=True)
class PromiseRow:
    id: int
    amount: Amount
    promised_date: dt.date
    status: str
    source: str
    created_by: str
    created_at: dt.datetime
    resolved_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class DisputeRow:
    id: int
    invoice_number: str
    amount: Amount
    reason_code: str
    reason_text: str
    status: str
    created_at: dt.datetime
    sla_due_at: dt.datetime | None
    resolved_at: dt.datetime | None
    overdue: bool


@dataclass(frozen=True, slots=True)
class MessageRow:
    id: int
    channel: str
    template: str
    to_address: str
    subject: str
    status: str  # queued, sent, failed, blocked, …
    blocked_reason: str
    last_error: str
    created_at: dt.datetime
    sent_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class TaskRow:
    id: int
    kind: str
    title: str
    due_on: dt.date | None
    assignee: str
    overdue: bool


@dataclass(frozen=True, slots=True)
class TimelineItem:
    source: str  # interaction | ledger | message
    id: int
    at: dt.datetime  # in the debtor's time zone
    category: str  # contact | portal | money | message | status | system
    kind: str
    channel: str
    direction: str
    summary: str
    staff: str
    amount: Amount | None
    status: str  # a message's status
    reason: str  # why a message was blocked, or what failed
    reference: str  # invoice number of a ledger entry, address of a message
    data: Mapping[str, Any]
    date: dt.date | None = None  # the date an event names (a promised date, a pause's end)


@dataclass(frozen=True, slots=True)
class TimelinePage:
    items: tuple[TimelineItem, ...]
    page: int
    has_more: bool
    timezone: str


@dataclass(frozen=True, slots=True)
class Header:
    """The case itself: what every account page and action form needs."""

    account_id: int
    debtor_id: int
    creditor_id: int
    currency: str
    stage: str
    segment: str
    risk_score: int
    assignee_id: int | None
    assignee_name: str
    paused_until: dt.date | None  # the staff pause (may lie in the past: then it has ended)
    pause_reason: str
    next_action_on: dt.date | None
    next_action_note: str
    legal_escalated_at: dt.datetime | None
    opened_at: dt.datetime
    debtor_name: str
    debtor_language: str
    country: str
    timezone: str

    def staff_paused(self, today: dt.date) -> bool:
        return self.paused_until is not None and self.paused_until >= today


@dataclass(frozen=True, slots=True)
class Account360:
    header: Header
    today: dt.date
    language: str
    locale: str
    creditor: CreditorView
    debtor: DebtorView
    preferences: PreferencesView
    view: AccountView  # balance, aging, invoices, payments, open disputes
    ledger: StatementAccount | None  # every entry, with the running balance
    pauses: AccountPauses
    plans: tuple[PlanRow, ...]
    promises: tuple[PromiseRow, ...]
    disputes: tuple[DisputeRow, ...]
    messages: tuple[MessageRow, ...]
    tasks: tuple[TaskRow, ...]
    timeline: TimelinePage

    @property
    def staff_paused(self) -> bool:
        return self.header.staff_paused(self.today)

    @property
    def open_promise(self) -> PromiseRow | None:
        return next((p for p in self.promises if p.status == "open"), None)

    @property
    def blocked_messages(self) -> int:
        return sum(1 for m in self.messages if m.status == "blocked")


# ---------------------------------------------------------------------------- reading


def _zone(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


async def account_header(account_id: int, *, language: str = "es") -> Header:
    """The case row with its debtor's name and assignee (`NotFound` for no such account)."""
    missing = gettext(language, "No encontramos esa cuenta.")
    if not 0 < account_id <= _MAX_ID:
        raise NotFound(missing)
    rows = await Account.raw(
        """SELECT a.*, d.name AS debtor_name, d.language, d.country, d.timezone,
                  coalesce(nullif(s.name, ''), s.email, '') AS assignee_name
           FROM account a JOIN debtor d ON d.id = a.debtor
           LEFT JOIN staff_user s ON s.id = a.assignee
           WHERE a.id = {}""",
        account_id,
    )
    if not rows:
        raise NotFound(missing)
    r = rows[0]
    return Header(
        account_id=int(r["id"]),
        debtor_id=int(r["debtor"]),
        creditor_id=int(r["creditor"]),
        currency=str(r["currency"]),
        stage=str(r["stage"]),
        segment=str(r["segment"]),
        risk_score=int(r["risk_score"]),
        assignee_id=r["assignee"],
        assignee_name=str(r["assignee_name"]) if r["assignee"] else "",
        paused_until=r["paused_until"],
        pause_reason=str(r["pause_reason"] or ""),
        next_action_on=r["next_action_on"],
        next_action_note=str(r["next_action_note"] or ""),
        legal_escalated_at=r["legal_escalated_at"],
        opened_at=r["opened_at"],
        debtor_name=str(r["debtor_name"]),
        debtor_language=str(r["language"]),
        country=str(r["country"]),
        timezone=str(r["timezone"]),
    )


async def _plans(account_id: int, fmt: Formats) -> tuple[PlanRow, ...]:
    rows = await Account.raw(
        """SELECT id, status, proposed_by, total, down_payment, installments_count, frequency,
                  first_date, created_at, decided_at, missed_count
           FROM payment_plan WHERE account = {} ORDER BY created_at DESC, id DESC""",
        account_id,
    )
    return tuple(
        PlanRow(
            id=int(r["id"]),
            status=str(r["status"]),
            proposed_by=str(r["proposed_by"]),
            total=fmt.money(int(r["total"])),
            down_payment=fmt.money(int(r["down_payment"])),
            installments=int(r["installments_count"]),
            frequency=str(r["frequency"]),
            first_date=r["first_date"],
            created_at=r["created_at"],
            decided_at=r["decided_at"],
            missed=int(r["missed_count"]),
        )
        for r in rows
    )


async def _promises(account_id: int, fmt: Formats) -> tuple[PromiseRow, ...]:
    rows = await Account.raw(
        """SELECT p.id, p.amount, p.promised_date, p.status, p.source, p.created_at,
                  p.resolved_at, coalesce(nullif(s.name, ''), s.email, '') AS created_by
           FROM promise_to_pay p LEFT JOIN staff_user s ON s.id = p.created_by
           WHERE p.account = {} ORDER BY p.created_at DESC, p.id DESC""",
        account_id,
    )
    return tuple(
        PromiseRow(
            id=int(r["id"]),
            amount=fmt.money(int(r["amount"])),
            promised_date=r["promised_date"],
            status=str(r["status"]),
            source=str(r["source"]),
            created_by=str(r["created_by"]),
            created_at=r["created_at"],
            resolved_at=r["resolved_at"],
        )
        for r in rows
    )


async def _disputes(account_id: int, fmt: Formats, now: dt.datetime) -> tuple[DisputeRow, ...]:
    rows = await Account.raw(
        """SELECT d.id, coalesce(i.number, '') AS invoice_number, d.amount, d.reason_code,
                  d.reason_text, d.status, d.created_at, d.sla_due_at, d.resolved_at
           FROM dispute d LEFT JOIN invoice i ON i.id = d.invoice
           WHERE d.account = {} ORDER BY d.created_at DESC, d.id DESC""",
        account_id,
    )
    return tuple(
        DisputeRow(
            id=int(r["id"]),
            invoice_number=str(r["invoice_number"]),
            amount=fmt.money(int(r["amount"])),
            reason_code=str(r["reason_code"]),
            reason_text=str(r["reason_text"] or ""),
            status=str(r["status"]),
            created_at=r["created_at"],
            sla_due_at=r["sla_due_at"],
            resolved_at=r["resolved_at"],
            overdue=r["resolved_at"] is None
            and r["sla_due_at"] is not None
            and r["sla_due_at"] < now,
        )
        for r in rows
    )


async def _messages(header: Header, limit: int = MESSAGES_SHOWN) -> tuple[MessageRow, ...]:
    rows = await Account.raw(
        """SELECT id, channel, template, to_address, subject, status, blocked_reason,
                  last_error, created_at, sent_at
           FROM notification
           WHERE debtor = {} AND (account = {} OR account IS NULL)
           ORDER BY coalesce(sent_at, created_at) DESC, id DESC LIMIT {}""",
        header.debtor_id,
        header.account_id,
        limit,
    )
    return tuple(
        MessageRow(
            id=int(r["id"]),
            channel=str(r["channel"]),
            template=str(r["template"]),
            to_address=str(r["to_address"]),
            subject=str(r["subject"]),
            status=str(r["status"]),
            blocked_reason=str(r["blocked_reason"] or ""),
            last_error=str(r["last_error"] or ""),
            created_at=r["created_at"],
            sent_at=r["sent_at"],
        )
        for r in rows
    )


async def _tasks(account_id: int, today: dt.date) -> tuple[TaskRow, ...]:
    rows = await Account.raw(
        """SELECT t.id, t.kind, t.title, t.due_on,
                  coalesce(nullif(s.name, ''), s.email, '') AS assignee
           FROM task t LEFT JOIN staff_user s ON s.id = t.assignee
           WHERE t.account = {} AND t.status = 'open'
           ORDER BY t.due_on ASC NULLS LAST, t.id""",
        account_id,
    )
    return tuple(
        TaskRow(
            id=int(r["id"]),
            kind=str(r["kind"]),
            title=str(r["title"]),
            due_on=r["due_on"],
            assignee=str(r["assignee"]),
            overdue=r["due_on"] is not None and r["due_on"] < today,
        )
        for r in rows
    )


async def _ledger(header: Header, language: str, today: dt.date) -> StatementAccount | None:
    rows = await Account.raw(
        "SELECT min(effective_date) AS first, max(effective_date) AS last FROM ledger_entry "
        "WHERE account = {}",
        header.account_id,
    )
    first: dt.date | None = rows[0]["first"]
    if first is None:
        return None
    last: dt.date = max(rows[0]["last"], today)
    first = max(first, last - dt.timedelta(days=statement.MAX_PERIOD_DAYS))
    view = await statement.statement(
        [header.debtor_id], Period(first, last), language=language, today=today
    )
    return next((a for a in view.accounts if a.id == header.account_id), None)


async def account_360(
    account_id: int,
    *,
    today: dt.date,
    now: dt.datetime,
    language: str = "es",
    timeline_page: int = 1,
) -> Account360:
    """Everything about one account (see the module docstring); `NotFound` for no such id."""
    header = await account_header(account_id, language=language)
    ids = [header.debtor_id]
    balance = await statement.balance(ids, language=language, today=today)
    view = next(a for a in balance.accounts if a.id == account_id)
    fmt = Formats(header.currency, view.locale)
    prefs, ledger, pauses = await asyncio.gather(
        preferences.load_preferences(ids, language=language),
        _ledger(header, language, today),
        paused_items([account_id], today=today),
    )
    plans, promises, disputes, messages, tasks, events = await asyncio.gather(
        _plans(account_id, fmt),
        _promises(account_id, fmt),
        _disputes(account_id, fmt, now),
        _messages(header),
        _tasks(account_id, today),
        timeline(account_id, page=timeline_page, language=language, header=header),
    )
    return Account360(
        header=header,
        today=today,
        language=language,
        locale=view.locale,
        creditor=view.creditor,
        debtor=view.debtor,
        preferences=prefs,
        view=view,
        ledger=ledger,
        pauses=pauses[account_id],
        plans=plans,
        promises=promises,
        disputes=disputes,
        messages=messages,
        tasks=tasks,
        timeline=events,
    )


# ---------------------------------------------------------------------------- the timeline


def _category(source: str, kind: str, channel: str) -> str:
    if source == "message":
        return "message"
    if source == "ledger" or kind == "payment":
        return "money"
    if kind in CONTACT_KINDS:
        return "contact"
    if kind in STATUS_KINDS or kind.startswith(("plan_", "promise_")):
        return "status"
    if channel == "portal":
        return "portal"
    return "system"


def _data(raw: Any) -> Mapping[str, Any]:
    if isinstance(raw, Mapping):
        return raw
    if isinstance(raw, str) and raw:
        try:
            value = json.loads(raw)
        except ValueError:
            return {}
        return value if isinstance(value, Mapping) else {}
    return {}


async def timeline(
    account_id: int,
    *,
    page: int = 1,
    per_page: int = TIMELINE_PAGE,
    language: str = "es",
    header: Header | None = None,
) -> TimelinePage:
    """One page of the account's merged timeline, newest first (see the module docstring)."""
    header = header or await account_header(account_id, language=language)
    page = min(max(1, page), 10_000)
    zone = _zone(header.timezone)
    fmt = Formats(header.currency, display_locale(language, header.country))
    rows = await Account.raw(
        """
        SELECT * FROM (
            SELECT 'interaction' AS source, x.id, x.occurred_at AS at, x.kind, x.channel,
                   x.direction, x.summary, x.data::text AS data,
                   coalesce(nullif(s.name, ''), s.email, '') AS staff, NULL::bigint AS amount,
                   '' AS status, '' AS reason, '' AS reference
            FROM interaction x LEFT JOIN staff_user s ON s.id = x.staff
            WHERE x.account = {} AND x.kind <> 'message_sent'
            UNION ALL
            SELECT 'interaction', x.id, x.occurred_at, x.kind, x.channel, x.direction,
                   x.summary, x.data::text, '', NULL, '', '', ''
            FROM interaction x
            WHERE x.debtor = {} AND x.account IS NULL AND x.kind <> 'message_sent'
            UNION ALL
            SELECT 'ledger', e.id, e.created_at, e.kind, '', '', e.description, e.basis::text,
                   CASE WHEN e.created_by = 'system' THEN '' ELSE e.created_by END, e.amount,
                   '', '', coalesce(i.number, '')
            FROM ledger_entry e LEFT JOIN invoice i ON i.id = e.invoice
            WHERE e.account = {}
            UNION ALL
            SELECT 'message', n.id, coalesce(n.sent_at, n.created_at), n.template, n.channel,
                   'out', n.subject, NULL, '', NULL, n.status,
                   coalesce(nullif(n.blocked_reason, ''), n.last_error), n.to_address
            FROM notification n
            WHERE n.debtor = {} AND (n.account = {} OR n.account IS NULL)
        ) t
        ORDER BY at DESC, source, id DESC
        LIMIT {} OFFSET {}
        """,
        account_id,
        header.debtor_id,
        account_id,
        header.debtor_id,
        account_id,
        per_page + 1,
        (page - 1) * per_page,
    )
    items = tuple(_item(r, zone, fmt) for r in rows[:per_page])
    return TimelinePage(
        items=items, page=page, has_more=len(rows) > per_page, timezone=header.timezone
    )


_AMOUNT_KINDS: Final = (
    "promise_made",
    "promise_kept",
    "promise_broken",
    "promise_cancelled",
    "payment",
    "payment_claimed",
)


def _item(r: Mapping[str, Any], zone: dt.tzinfo, fmt: Formats) -> TimelineItem:
    source, kind = str(r["source"]), str(r["kind"])
    data = _data(r["data"])
    amount = None
    if r["amount"] is not None:
        amount = fmt.money(int(r["amount"]))
    elif kind in _AMOUNT_KINDS and isinstance(data.get("amount"), int):
        amount = fmt.money(int(data["amount"]))
    named = data.get("date") or data.get("until") or data.get("promise_date")
    try:
        date = dt.date.fromisoformat(named) if isinstance(named, str) else None
    except ValueError:
        date = None
    return TimelineItem(
        source=source,
        id=int(r["id"]),
        at=r["at"].astimezone(zone),
        category=_category(source, kind, str(r["channel"])),
        kind=kind,
        channel=str(r["channel"]),
        direction=str(r["direction"]),
        summary=str(r["summary"] or ""),
        staff=str(r["staff"] or ""),
        amount=amount,
        status=str(r["status"]),
        reason=str(r["reason"] or ""),
        reference=str(r["reference"] or ""),
        data=data,
        date=date,
    )
