"""The staff side of disputes: the queue with SLA timers, one dispute with its thread, replies,
the resolution from the back-office form, the files, and the reason report for the KPIs.

- `dispute_queue`: nearest SLA target first (closed ones: latest resolved first), filtered by
  status and reason, paginated; each item carries its age and the time left to (or past) its
  SLA target, and an `urgency` the page colours by.
- `staff_reply`: a staff message (text and/or one PDF, JPEG or PNG) in one transaction with its
  `AuditEvent` ("dispute.message") and a `dispute_update` message telling the debtor there is
  news (`decision_messages.dispute_message`); the dispute then waits for the debtor.
- `staff_resolve`: the resolution form read in the dispute's currency, then
  `dispute_resolution.resolve` (credit note, message to the debtor, audit, task closed).
- `reason_report`: count, disputed and credited amounts per reason, outcome and currency;
  `ReasonReport.by_reason()` lays it out as the page's table, `reason_report_csv` as a file.

Staff screens are Spanish first; amounts come as minor units with the currency and, for
convenience, as Spanish text (`format_money(..., "es")`). Form errors are reason codes per field
(`dispute_forms.InvalidStaffForm`), worded by the templates.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from saldo import money
from saldo.db import DB
from saldo.errors import Conflict, NotFound, ValidationFailed
from saldo.services import audit, decision_messages
from saldo.services.dispute_forms import (
    InvalidStaffForm,
    ResolutionForm,
    StaffReplyForm,
    Upload,
    check_resolution,
    check_staff_reply,
)
from saldo.services.dispute_records import (
    CLOSED_SQL,
    DISPUTE_COLUMNS,
    DISPUTE_FROM,
    credit_note,
    invoice_open,
)
from saldo.services.dispute_resolution import resolve
from saldo.services.dispute_rules import (
    CLOSED_STATUSES,
    MAX_ID,
    OPEN_STATUSES,
    REASON_CODES,
    is_closed,
    reason_label,
    reasons,
    resolution_key,
    status_label,
)
from saldo.services.dispute_views import MAX_UPLOAD_MB, MessageView, thread_messages
from saldo.services.disputes import post_message
from saldo.services.statement import Formats
from saldo.services.uploads import StoredFile, UploadRejected, read_upload, store_upload
from saldo.tables import Dispute

__all__ = [
    "QUEUE_STATUSES",
    "REPORT_OUTCOMES",
    "QueueItem",
    "QueuePage",
    "ReasonReport",
    "ReasonRow",
    "ReasonSummary",
    "StaffDispute",
    "dispute_queue",
    "reason_report",
    "reason_report_csv",
    "staff_attachment",
    "staff_dispute",
    "staff_reply",
    "staff_resolve",
]

#: `status` filters of the queue: every open one (default), every closed one, all, or one status.
QUEUE_STATUSES: Final = ("open", "closed", "all", *OPEN_STATUSES[1:], *CLOSED_STATUSES[:3])
#: An open dispute whose SLA target is this close is "soon" (amber) in the queue.
SOON: Final = dt.timedelta(hours=24)
#: The outcome columns of the reason report; any other closed status counts under "other".
REPORT_OUTCOMES: Final = ("open", "accepted", "partially_accepted", "rejected", "other")
_MAX_LIMIT: Final = 500


def span(delta: dt.timedelta) -> tuple[int, int, int]:
    """(days, hours, minutes) of a duration's size, whatever its sign."""
    minutes = int(abs(delta).total_seconds() // 60)
    return minutes // 1440, minutes % 1440 // 60, minutes % 60


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

    @property
    def closed(self) -> bool:
        return is_closed(self.status, self.resolved_at)

    @property
    def urgency(self) -> str:
        """ "closed", "overdue" (past the SLA target), "soon" (within a day) or "ok"."""
        if self.remaining is None:
            return "closed" if self.closed else "ok"
        if self.remaining < dt.timedelta(0):
            return "overdue"
        return "soon" if self.remaining <= SOON else "ok"

    @property
    def remaining_span(self) -> tuple[int, int, int] | None:
        return span(self.remaining) if self.remaining is not None else None

    @property
    def age_span(self) -> tuple[int, int, int]:
        return span(self.age)


@dataclass(frozen=True, slots=True)
class QueuePage:
    items: tuple[QueueItem, ...]
    total: int  # disputes matching the filters
    overdue: int  # open disputes past their SLA target, whatever the filters
    status: str
    limit: int
    offset: int
    reason: str = ""
    open_total: int = 0  # open disputes, whatever the filters
    due_soon: int = 0  # open disputes whose SLA target is within `SOON`
    reasons: tuple[tuple[str, str], ...] = field(default_factory=lambda: reasons("es"))

    @property
    def page(self) -> int:
        return self.offset // self.limit + 1

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.limit))


def _status_filter(status: str) -> tuple[str, list[Any]]:
    if status == "open":
        return f"d.resolved_at IS NULL AND d.status <> ALL({CLOSED_SQL})", []
    if status == "closed":
        return f"(d.resolved_at IS NOT NULL OR d.status = ANY({CLOSED_SQL}))", []
    if status == "all":
        return "TRUE", []
    return "d.status = {}", [status]


async def dispute_queue(
    *, now: dt.datetime, status: str = "open", reason: str = "", limit: int = 50, offset: int = 0
) -> QueuePage:
    """Disputes for staff, the nearest SLA target first (closed ones: the latest resolved first).

    `status`: "open" (every open status), "closed", "all" or one status of `QUEUE_STATUSES`;
    `reason`: "" for every reason, else one of `REASON_CODES`.
    """
    if status not in QUEUE_STATUSES:
        raise ValidationFailed(f"unknown status filter {status!r}", field="status")
    if reason and reason not in REASON_CODES:
        raise ValidationFailed(f"unknown reason filter {reason!r}", field="reason")
    limit = min(max(1, limit), _MAX_LIMIT)
    offset = max(0, offset)
    where, values = _status_filter(status)
    if reason:
        where = f"{where} AND d.reason_code = {{}}"
        values = [*values, reason]
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
    open_counts = await Dispute.raw(
        f"""SELECT count(*) AS n,
                   count(*) FILTER (WHERE d.sla_due_at < {{}}) AS overdue,
                   count(*) FILTER (WHERE d.sla_due_at >= {{}} AND d.sla_due_at <= {{}}) AS soon
            FROM dispute d
            WHERE d.resolved_at IS NULL AND d.status <> ALL({CLOSED_SQL})""",
        now,
        now,
        now + SOON,
    )
    return QueuePage(
        items=tuple(_item(r, now) for r in rows),
        total=int(counts[0]["total"]),
        overdue=int(open_counts[0]["overdue"]),
        status=status,
        limit=limit,
        offset=offset,
        reason=reason,
        open_total=int(open_counts[0]["n"]),
        due_soon=int(open_counts[0]["soon"]),
    )


def _item(r: dict[str, Any], now: dt.datetime) -> QueueItem:
    closed = is_closed(r["status"], r["resolved_at"])
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
    credit_amount: int | None = None  # the credit note's amount (positive), once resolved
    max_upload_mb: int = MAX_UPLOAD_MB

    def money(self, minor: int | None) -> str:
        """An amount in the dispute's currency, as staff read it ("3.872,60 ARS")."""
        return "" if minor is None else money.format_money(minor, self.item.currency, "es")


async def _dispute_row(dispute_id: int) -> dict[str, Any]:
    if not 0 < dispute_id <= MAX_ID:
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
    return dict(rows[0])


async def staff_dispute(dispute_id: int, *, now: dt.datetime) -> StaffDispute:
    """One dispute with its whole thread, for staff (`NotFound` for an unknown id).

    In `messages`, `author` is the debtor's name, or for the team's messages the staff user's
    name (the creditor's when none is known); `author_kind` tells who wrote; times are UTC, like
    every time on the staff screens.
    """
    row = await _dispute_row(dispute_id)
    fmt = Formats(row["currency"], "es")
    thread = await thread_messages(dispute_id, "es", fmt, "UTC", row["creditor"])
    messages = tuple(
        MessageView(
            m.id,
            m.author_kind,
            row["debtor_name"] if m.author_kind == "debtor" else (m.staff_name or m.author),
            m.body,
            m.when,
            m.attachment,
            m.staff_name,
        )
        for m in thread
    )
    credit = await credit_note(resolution_key(dispute_id))
    return StaffDispute(
        item=_item(row, now),
        messages=messages,
        resolution=row["resolution"] or "",
        resolved_amount=row["resolved_amount"],
        credit_entry_id=int(credit["id"]) if credit else None,
        invoice_open=await invoice_open(row["invoice"]) if row["invoice"] is not None else None,
        credit_amount=-int(credit["amount"]) if credit else None,
    )


async def staff_attachment(dispute_id: int, attachment_id: int, *, data_dir: Path) -> StoredFile:
    """A file of a dispute's thread (`NotFound` unless it belongs to that dispute)."""
    if not 0 < dispute_id <= MAX_ID or not 0 < attachment_id <= MAX_ID:
        raise NotFound("attachment not found")
    rows = await Dispute.raw(
        "SELECT 1 FROM dispute_message WHERE dispute = {} AND attachment = {} LIMIT 1",
        dispute_id,
        attachment_id,
    )
    if not rows:
        raise NotFound("attachment not found")
    return await read_upload(attachment_id, data_dir=data_dir)


# ---------------------------------------------------------------------------- staff actions


def _staff_id(actor: audit.Actor) -> int:
    if actor.staff_id is None:
        raise ValueError("a dispute is answered by a staff user")
    return actor.staff_id


async def staff_reply(
    dispute_id: int,
    form: StaffReplyForm,
    *,
    upload: Upload | None,
    actor: audit.Actor,
    data_dir: Path,
    now: dt.datetime,
) -> int:
    """Add a staff message (and file) to the thread; returns the message id.

    One transaction: the file's `Attachment` row, the message (`disputes.post_message`, which
    leaves the dispute "waiting_debtor"), an `AuditEvent` "dispute.message" and the debtor's
    notice (`dispute_update`, key "dispute_message:<message id>"). Raises
    `NotFound` for an unknown dispute and `InvalidStaffForm` for an empty or too long text, a
    refused file, or a dispute already closed.
    """
    staff_id = _staff_id(actor)
    text = check_staff_reply(form, has_file=upload is not None)
    before = await _dispute_row(dispute_id)
    async with DB.transaction():
        attachment_id = None
        if upload is not None:
            try:
                attachment_id = await store_upload(
                    upload.data,
                    upload.filename,
                    data_dir=data_dir,
                    uploaded_by="staff",
                    language="es",
                )
            except UploadRejected as rejected:
                raise InvalidStaffForm(
                    StaffReplyForm(text, {"attachment": rejected.reason})
                ) from None
        try:
            message_id = await post_message(
                dispute_id, text, staff_id=staff_id, attachment_id=attachment_id, now=now
            )
        except Conflict:
            raise InvalidStaffForm(StaffReplyForm(text, {"body": "closed"})) from None
        await audit.record(
            actor,
            "dispute.message",
            now=now,
            object_type="dispute",
            object_id=dispute_id,
            before={"status": before["status"]},
            after={
                "status": "waiting_debtor",
                "message": message_id,
                "attachment": attachment_id,
                "body": text[:200],
            },
        )
        await decision_messages.dispute_message(dispute_id, message_id, now=now)
    return message_id


async def staff_resolve(
    dispute_id: int, form: ResolutionForm, *, actor: audit.Actor, now: dt.datetime
) -> int | None:
    """Resolve from the back-office form; returns the credit note's ledger entry id (None for a
    rejection).

    The partial amount is read in the dispute's currency ("3.872,60" or "3872.60"). Raises
    `NotFound`, or `InvalidStaffForm` with a reason code per wrong field (the amount must be
    more than zero and less than the disputed amount; "closed" when someone resolved it first).
    """
    staff_id = _staff_id(actor)
    row = await _dispute_row(dispute_id)
    if is_closed(row["status"], row["resolved_at"]):
        raise InvalidStaffForm(_with(form, {"outcome": "closed"}))
    outcome, amount, explanation = check_resolution(form, row["currency"])
    try:
        return await resolve(
            dispute_id,
            outcome=outcome,
            amount=amount,
            explanation=explanation,
            staff_id=staff_id,
            now=now,
            ip=actor.ip,
        )
    except ValidationFailed as failed:
        codes = {"amount": "range", "explanation": "required", "outcome": "choose"}
        name = failed.field if failed.field in codes else "outcome"
        raise InvalidStaffForm(_with(form, {name: codes[name]})) from None
    except Conflict:
        raise InvalidStaffForm(_with(form, {"outcome": "closed"})) from None


def _with(form: ResolutionForm, errors: dict[str, str]) -> ResolutionForm:
    return ResolutionForm(form.outcome, form.amount, form.explanation, errors)


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
class ReasonSummary:
    """One reason over every outcome: counts per `REPORT_OUTCOMES` column and amounts per
    currency (different currencies never add up), as Spanish text."""

    reason_code: str
    reason: str
    counts: dict[str, int]
    total: int
    disputed: tuple[str, ...]  # one text per currency
    credited: tuple[str, ...]

    @property
    def accepted_share(self) -> int | None:
        """Percent of the decided disputes accepted in full or in part (None if none decided)."""
        decided = self.total - self.counts.get("open", 0)
        if decided <= 0:
            return None
        won = self.counts.get("accepted", 0) + self.counts.get("partially_accepted", 0)
        return round(100 * won / decided)


def _outcome_column(outcome: str) -> str:
    return outcome if outcome in REPORT_OUTCOMES else "other"


def _texts(amounts: dict[str, int]) -> tuple[str, ...]:
    return tuple(money.format_money(v, c, "es") for c, v in sorted(amounts.items()))


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

    @property
    def total(self) -> int:
        return sum(row.count for row in self.rows)

    def by_reason(self) -> tuple[ReasonSummary, ...]:
        """One summary per reason that has disputes, in the reason list's order, then the
        whole period as a last summary with the code "" (when there is any dispute)."""
        groups: dict[str, list[ReasonRow]] = {}
        for row in self.rows:
            groups.setdefault(row.reason_code, []).append(row)
        summaries = [self._summary(code, rows[0].reason, rows) for code, rows in groups.items()]
        if summaries:
            summaries.append(self._summary("", "", list(self.rows)))
        return tuple(summaries)

    @staticmethod
    def _summary(code: str, label: str, rows: list[ReasonRow]) -> ReasonSummary:
        counts = dict.fromkeys(REPORT_OUTCOMES, 0)
        disputed: dict[str, int] = {}
        credited: dict[str, int] = {}
        for row in rows:
            counts[_outcome_column(row.outcome)] += row.count
            disputed[row.currency] = disputed.get(row.currency, 0) + row.disputed
            credited[row.currency] = credited.get(row.currency, 0) + row.credited
        return ReasonSummary(
            reason_code=code,
            reason=label,
            counts=counts,
            total=sum(counts.values()),
            disputed=_texts(disputed),
            credited=_texts(credited),
        )


async def reason_report(*, date_from: dt.date, date_to: dt.date) -> ReasonReport:
    """Disputes opened between two dates (inclusive, UTC days): count, disputed and credited
    amounts per reason, outcome and currency (amounts of different currencies never add up).

    Rows follow the reason list's order, then outcome and currency.
    """
    if date_from > date_to:
        raise ValidationFailed("date_from is after date_to", field="date_from")
    if date_to >= dt.date.max:
        raise ValidationFailed("date_to is out of range", field="date_to")
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


#: The CSV's header: Spanish, one row per reason, outcome and currency.
CSV_HEADER: Final = (
    "motivo",
    "codigo_motivo",
    "resultado",
    "moneda",
    "reclamos",
    "importe_reclamado",
    "importe_acreditado",
)


def reason_report_csv(report: ReasonReport) -> str:
    """The report as CSV (UTF-8, `,`, header row, amounts as decimals with `.` like the
    portfolio import), one row per reason, outcome and currency."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for row in report.rows:
        writer.writerow(
            (
                row.reason,
                row.reason_code,
                row.outcome,
                row.currency,
                row.count,
                money.to_decimal(row.disputed, row.currency),
                money.to_decimal(row.credited, row.currency),
            )
        )
    return out.getvalue()
