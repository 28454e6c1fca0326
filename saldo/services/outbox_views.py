"""What staff see of the outbox: the messages (filtered, paginated), one message, a preview.

Read-only. The list shows every row with its status and why it is waiting or stopped
(`blocked_reason`: window, cap, opted_out, pause:dispute, …) and the last provider error;
the detail page shows the content as it was sent. Previews are `notify_render.preview`.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Final

from saldo.errors import NotFound
from saldo.services import notify_render
from saldo.services.outbox import STATUSES
from saldo.tables import Notification

__all__ = [
    "PER_PAGE",
    "TEMPLATES",
    "MessageFilters",
    "MessagePage",
    "MessageRow",
    "message",
    "search",
]

PER_PAGE: Final = 50
#: Templates a row may name (the kinds, and "overdue" with a stage).
TEMPLATES: Final = (*notify_render.PREVIEWABLE, "overdue")


@dataclass(frozen=True)
class MessageFilters:
    status: str = ""
    channel: str = ""
    template: str = ""
    debtor: str = ""  # a debtor id, or part of a name or address
    date_from: dt.date | None = None  # created, inclusive (UTC days)
    date_to: dt.date | None = None

    @property
    def active(self) -> bool:
        return any(
            (self.status, self.channel, self.template, self.debtor, self.date_from, self.date_to)
        )


@dataclass(frozen=True)
class MessageRow:
    id: int
    created_at: dt.datetime
    debtor_id: int
    debtor_name: str
    creditor: str
    account_id: int | None
    channel: str
    template: str
    stage: str
    status: str
    reason: str
    send_after: dt.datetime | None
    sent_at: dt.datetime | None
    attempts: int
    last_error: str
    to_address: str
    idempotency_key: str = ""
    subject: str = ""
    body_text: str = ""
    body_html: str = ""
    provider_id: str = ""
    language: str = ""
    invoice_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class MessagePage:
    rows: list[MessageRow]
    page: int
    pages: int
    total: int
    by_status: dict[str, int]


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _where(filters: MessageFilters) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    values: list[Any] = []
    if filters.status in STATUSES:
        clauses.append("n.status = {}")
        values.append(filters.status)
    if filters.channel in notify_render.CHANNELS:
        clauses.append("n.channel = {}")
        values.append(filters.channel)
    if filters.template in TEMPLATES:
        clauses.append("n.template = {}")
        values.append(filters.template)
    text = filters.debtor.strip()[:100]
    if text.isdigit() and len(text) < 10:
        clauses.append("n.debtor = {}")
        values.append(int(text))
    elif text:
        clauses.append("(d.name ILIKE {} ESCAPE '\\' OR n.to_address ILIKE {} ESCAPE '\\')")
        pattern = f"%{_escape_like(text)}%"
        values += [pattern, pattern]
    if filters.date_from:
        clauses.append("n.created_at >= {}")
        values.append(dt.datetime.combine(filters.date_from, dt.time(), tzinfo=dt.UTC))
    if filters.date_to:
        clauses.append("n.created_at < {}")
        end = filters.date_to + dt.timedelta(days=1)
        values.append(dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), values


_COLUMNS = """n.id, n.created_at, n.debtor, d.name AS debtor_name, c.name AS creditor, n.account,
              n.channel, n.template, n.stage, n.status, n.blocked_reason, n.send_after,
              n.sent_at, n.attempts, n.last_error, n.to_address"""
_FROM = """FROM notification n JOIN debtor d ON d.id = n.debtor
           JOIN creditor c ON c.id = d.creditor"""


def _row(r: dict[str, Any], **extra: Any) -> MessageRow:
    return MessageRow(
        id=int(r["id"]),
        created_at=r["created_at"],
        debtor_id=int(r["debtor"]),
        debtor_name=str(r["debtor_name"]),
        creditor=str(r["creditor"]),
        account_id=int(r["account"]) if r["account"] is not None else None,
        channel=str(r["channel"]),
        template=str(r["template"]),
        stage=str(r["stage"] or ""),
        status=str(r["status"]),
        reason=str(r["blocked_reason"] or ""),
        send_after=r["send_after"],
        sent_at=r["sent_at"],
        attempts=int(r["attempts"]),
        last_error=str(r["last_error"] or ""),
        to_address=str(r["to_address"] or ""),
        **extra,
    )


async def search(
    filters: MessageFilters, *, page: int = 1, per_page: int = PER_PAGE
) -> MessagePage:
    """One page of messages matching `filters`, newest first, with counts per status."""
    where, values = _where(filters)
    counted = await Notification.raw(
        f"SELECT n.status, count(*) AS n {_FROM}{where} GROUP BY n.status", *values
    )
    by_status = {str(r["status"]): int(r["n"]) for r in counted}
    total = sum(by_status.values())
    pages = max(1, math.ceil(total / per_page))
    page = min(max(1, page), pages)
    rows = await Notification.raw(
        f"SELECT {_COLUMNS} {_FROM}{where} ORDER BY n.id DESC LIMIT {{}} OFFSET {{}}",
        *values,
        per_page,
        (page - 1) * per_page,
    )
    return MessagePage(
        rows=[_row(r) for r in rows], page=page, pages=pages, total=total, by_status=by_status
    )


async def message(notification_id: int) -> MessageRow:
    """One message with its content as sent (NotFound for an unknown id)."""
    rows = await Notification.raw(
        f"""SELECT {_COLUMNS}, n.idempotency_key, n.subject, n.body_text, n.body_html,
                   n.provider_id, n.language, n.invoice_ids
            {_FROM} WHERE n.id = {{}}""",
        notification_id,
    )
    if not rows:
        raise NotFound(f"message {notification_id} does not exist")
    r = rows[0]
    invoice_ids = notify_render.id_list(r["invoice_ids"])
    return _row(
        r,
        idempotency_key=str(r["idempotency_key"]),
        subject=str(r["subject"] or ""),
        body_text=str(r["body_text"] or ""),
        body_html=str(r["body_html"] or ""),
        provider_id=str(r["provider_id"] or ""),
        language=str(r["language"] or ""),
        invoice_ids=invoice_ids,
    )
