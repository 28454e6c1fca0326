"""The staff side of disputes: the queue with SLA timers, one dispute with its thread, the files,
and the reason report for the KPIs. Resolving (`resolve`) and writing to the thread
(`post_message(..., staff_id=...)`) live in `saldo.services.disputes`.

Staff screens are Spanish first; amounts come as minor units with the currency and, for
convenience, as Spanish text (`format_money(..., "es")`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from saldo import money
from saldo.errors import NotFound, ValidationFailed
from saldo.services.disputes import (
    CLOSED_SQL,
    CLOSED_STATUSES,
    DISPUTE_COLUMNS,
    DISPUTE_FROM,
    OPEN_STATUSES,
    REASON_CODES,
    MessageView,
    reason_label,
    resolution_key,
    status_label,
    thread_messages,
)
from saldo.services.statement import Formats
from saldo.services.uploads import StoredFile, read_upload
from saldo.tables import Dispute

__all__ = [
    "QUEUE_STATUSES",
    "QueueItem",
    "QueuePage",
    "ReasonReport",
    "ReasonRow",
    "StaffDispute",
    "dispute_queue",
    "reason_report",
    "staff_attachment",
    "staff_dispute",
]

#: `status` filters of the queue: every open one (default), every closed one, all, or one status.
QUEUE_STATUSES: Final = ("open", "closed", "all", *OPEN_STATUSES[1:], *CLOSED_STATUSES[:3])
_MAX_ID: Final = 2**31 - 1
_MAX_LIMIT: Final = 500


@dataclass(frozen=True, slots=True)
class QueueItem:
    id: int
    account_id: int
    debtor_id: int
    debtor_name: str
    creditor: str
    invoice_id: int | None
    invoice_number: str
    line_description: str
    currency: str
    amount: int
    amount_text: str
    reason_code: str
    reason: str  # Spanish label
    reason_text: str
    status: str
    status_label: str
    created_at: dt.datetime
    sla_due_at: dt.datetime | None
    resolved_at: dt.datetime | None
    age: dt.timedelta  # since it was opened (until it was resolved, once closed)
    remaining: dt.timedelta | None  # until the SLA target; negative once overdue; None if closed
    overdue: bool
    messages: int
    last_author: str  # "debtor" | "staff" | ""


@dataclass(frozen=True, slots=True)
class QueuePage:
    items: tuple[QueueItem, ...]
    total: int
    overdue: int  # open disputes past their SLA target, whatever the page
    status: str
    limit: int
    offset: int


def _status_filter(status: str) -> tuple[str, list[Any]]:
    if status == "open":
        return f"d.resolved_at IS NULL AND d.status <> ALL({CLOSED_SQL})", []
    if status == "closed":
        return f"(d.resolved_at IS NOT NULL OR d.status = ANY({CLOSED_SQL}))", []
    if status == "all":
        return "TRUE", []
    return "d.status = {}", [status]


async def dispute_queue(
    *, now: dt.datetime, status: str = "open", limit: int = 50, offset: int = 0
) -> QueuePage:
    """Disputes for staff, the nearest SLA target first (closed ones: the latest resolved first).

    `status`: "open" (every open status), "closed", "all" or one status of `QUEUE_STATUSES`.
    """
    if status not in QUEUE_STATUSES:
        raise ValidationFailed(f"unknown status filter {status!r}", field="status")
    limit = min(max(1, limit), _MAX_LIMIT)
    offset = max(0, offset)
    where, values = _status_filter(status)
    order = (
        "d.resolved_at DESC NULLS LAST, d.id DESC"
        if status in {"closed", *CLOSED_STATUSES}
        else "d.sla_due_at ASC NULLS LAST, d.created_at, d.id"
    )
    rows = await Dispute.raw(
        f"""SELECT {DISPUTE_COLUMNS},
                   (SELECT count(*) FROM dispute_message m WHERE m.dispute = d.id) AS messages,
                   (SELECT m.author_kind FROM dispute_message m WHERE m.dispute = d.id
                    ORDER BY m.created_at DESC, m.id DESC LIMIT 1) AS last_author
            {DISPUTE_FROM}
            WHERE {where}
            ORDER BY {order}
            LIMIT {{}} OFFSET {{}}""",
        *values,
        limit,
        offset,
    )
    counts = await Dispute.raw(
        f"""SELECT count(*) AS total FROM dispute d WHERE {where}""",
        *values,
    )
    overdue = await Dispute.raw(
        f"""SELECT count(*) AS n FROM dispute d
            WHERE d.resolved_at IS NULL AND d.status <> ALL({CLOSED_SQL})
              AND d.sla_due_at < {{}}""",
        now,
    )
    return QueuePage(
        items=tuple(_item(r, now) for r in rows),
        total=int(counts[0]["total"]),
        overdue=int(overdue[0]["n"]),
        status=status,
        limit=limit,
        offset=offset,
    )


def _item(r: dict[str, Any], now: dt.datetime) -> QueueItem:
    closed = r["status"] in CLOSED_STATUSES or r["resolved_at"] is not None
    sla: dt.datetime | None = r["sla_due_at"]
    end = r["resolved_at"] if closed and r["resolved_at"] else now
    remaining = sla - now if sla is not None and not closed else None
    return QueueItem(
        id=r["id"],
        account_id=r["account"],
        debtor_id=r["debtor_id"],
        debtor_name=r["debtor_name"],
        creditor=r["creditor"],
        invoice_id=r["invoice"],
        invoice_number=r["invoice_number"],
        line_description=r["line_description"],
        currency=r["currency"],
        amount=int(r["amount"]),
        amount_text=money.format_money(int(r["amount"]), r["currency"], "es"),
        reason_code=r["reason_code"],
        reason=reason_label("es", r["reason_code"]),
        reason_text=r["reason_text"] or "",
        status=r["status"],
        status_label=status_label("es", r["status"]),
        created_at=r["created_at"],
        sla_due_at=sla,
        resolved_at=r["resolved_at"],
        age=end - r["created_at"],
        remaining=remaining,
        overdue=remaining is not None and remaining < dt.timedelta(0),
        messages=int(r["messages"]),
        last_author=r["last_author"] or "",
    )


# ---------------------------------------------------------------------------- one dispute


@dataclass(frozen=True, slots=True)
class StaffDispute:
    item: QueueItem
    messages: tuple[MessageView, ...]
    resolution: str
    resolved_amount: int | None
    credit_entry_id: int | None
    invoice_open: int | None  # what the invoice owes now


async def staff_dispute(dispute_id: int, *, now: dt.datetime) -> StaffDispute:
    """One dispute with its whole thread, for staff (`NotFound` for an unknown id).

    In `messages`, `author` is the debtor's name or the creditor's name; `author_kind` tells
    who wrote.
    """
    if not 0 < dispute_id <= _MAX_ID:
        raise NotFound(f"dispute {dispute_id} does not exist")
    rows = await Dispute.raw(
        f"""SELECT {DISPUTE_COLUMNS},
                   (SELECT count(*) FROM dispute_message m WHERE m.dispute = d.id) AS messages,
                   (SELECT m.author_kind FROM dispute_message m WHERE m.dispute = d.id
                    ORDER BY m.created_at DESC, m.id DESC LIMIT 1) AS last_author
            {DISPUTE_FROM} WHERE d.id = {{}}""",
        dispute_id,
    )
    if not rows:
        raise NotFound(f"dispute {dispute_id} does not exist")
    row = rows[0]
    fmt = Formats(row["currency"], "es")
    messages = await thread_messages(dispute_id, "es", fmt, row["debtor_timezone"], row["creditor"])
    messages = tuple(
        MessageView(
            m.id,
            m.author_kind,
            row["debtor_name"] if m.author_kind == "debtor" else m.author,
            m.body,
            m.when,
            m.attachment,
        )
        for m in messages
    )
    credit = await Dispute.raw(
        "SELECT id FROM ledger_entry WHERE idempotency_key = {}", resolution_key(dispute_id)
    )
    invoice_open = None
    if row["invoice"] is not None:
        owed = await Dispute.raw(
            "SELECT coalesce(sum(amount), 0)::bigint AS open FROM ledger_entry WHERE invoice = {}",
            row["invoice"],
        )
        invoice_open = int(owed[0]["open"])
    return StaffDispute(
        item=_item(row, now),
        messages=messages,
        resolution=row["resolution"] or "",
        resolved_amount=row["resolved_amount"],
        credit_entry_id=int(credit[0]["id"]) if credit else None,
        invoice_open=invoice_open,
    )


async def staff_attachment(dispute_id: int, attachment_id: int, *, data_dir: Path) -> StoredFile:
    """A file of a dispute's thread (`NotFound` unless it belongs to that dispute)."""
    if not 0 < dispute_id <= _MAX_ID or not 0 < attachment_id <= _MAX_ID:
        raise NotFound("attachment not found")
    rows = await Dispute.raw(
        "SELECT 1 FROM dispute_message WHERE dispute = {} AND attachment = {} LIMIT 1",
        dispute_id,
        attachment_id,
    )
    if not rows:
        raise NotFound("attachment not found")
    return await read_upload(attachment_id, data_dir=data_dir)


# ---------------------------------------------------------------------------- the reason report


@dataclass(frozen=True, slots=True)
class ReasonRow:
    reason_code: str
    reason: str  # Spanish label
    outcome: str  # "open" or the closed status
    currency: str
    count: int
    disputed: int  # minor units
    credited: int  # minor units credited by resolutions


@dataclass(frozen=True, slots=True)
class ReasonReport:
    date_from: dt.date
    date_to: dt.date
    rows: tuple[ReasonRow, ...]

    def count_by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.reason_code] = counts.get(row.reason_code, 0) + row.count
        return counts

    def count_by_outcome(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.outcome] = counts.get(row.outcome, 0) + row.count
        return counts


async def reason_report(*, date_from: dt.date, date_to: dt.date) -> ReasonReport:
    """Disputes opened between two dates (inclusive, UTC days): count, disputed and credited
    amounts per reason, outcome and currency (amounts of different currencies never add up).

    Rows follow the reason list's order, then outcome and currency.
    """
    if date_from > date_to:
        raise ValidationFailed("date_from is after date_to", field="date_from")
    start = dt.datetime.combine(date_from, dt.time(), tzinfo=dt.UTC)
    end = dt.datetime.combine(date_to + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    rows = await Dispute.raw(
        f"""SELECT d.reason_code,
                   CASE WHEN d.resolved_at IS NULL AND d.status <> ALL({CLOSED_SQL})
                        THEN 'open' ELSE d.status END AS outcome,
                   a.currency, count(*) AS n, sum(d.amount)::bigint AS disputed,
                   coalesce(sum(d.resolved_amount), 0)::bigint AS credited
            FROM dispute d JOIN account a ON a.id = d.account
            WHERE d.created_at >= {{}} AND d.created_at < {{}}
            GROUP BY 1, 2, 3""",
        start,
        end,
    )
    order = {code: index for index, code in enumerate(REASON_CODES)}
    report = [
        ReasonRow(
            reason_code=r["reason_code"],
            reason=reason_label("es", r["reason_code"]),
            outcome=r["outcome"],
            currency=r["currency"],
            count=int(r["n"]),
            disputed=int(r["disputed"]),
            credited=int(r["credited"]),
        )
        for r in rows
    ]
    report.sort(
        key=lambda r: (order.get(r.reason_code, len(order)), r.reason_code, r.outcome, r.currency)
    )
    return ReasonReport(date_from, date_to, tuple(report))
