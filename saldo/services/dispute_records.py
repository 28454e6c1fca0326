"""The reads disputes share: a dispute with its invoice, line, account, creditor and debtor in one
row (`DISPUTE_COLUMNS` / `DISPUTE_FROM`), the debtors' disputes, their open invoices with what
is already disputed, the credit note a resolution posted, and the check that an uploaded file is
still free to attach.

Every debtor-scoped read takes the session's debtor ids; a dispute of anyone else is None.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from saldo.errors import ValidationFailed
from saldo.i18n import gettext
from saldo.services.dispute_rules import Line, OpenInvoice, valid_id
from saldo.services.statement import display_locale, resolve_language
from saldo.tables import Dispute

__all__ = [
    "CLOSED_SQL",
    "DISPUTE_COLUMNS",
    "DISPUTE_FROM",
    "claim_attachments",
    "credit_note",
    "debtor_context",
    "debtor_rows",
    "dispute_of",
    "disputes_of",
    "invoice_open",
    "open_invoices",
]

CLOSED_SQL: Final = "ARRAY['accepted','partially_accepted','rejected','resolved','withdrawn']"

DISPUTE_COLUMNS: Final = """
    d.id, d.account, d.invoice, d.invoice_line, d.amount, d.reason_code, d.reason_text,
    d.status, d.resolution, d.resolved_amount, d.sla_due_at, d.created_at, d.resolved_at,
    coalesce(i.number, '') AS invoice_number, coalesce(l.description, '') AS line_description,
    a.currency, a.debtor AS debtor_id, c.name AS creditor, db.name AS debtor_name,
    db.language AS debtor_language, db.country AS debtor_country, db.timezone AS debtor_timezone
"""
DISPUTE_FROM: Final = """
    FROM dispute d JOIN account a ON a.id = d.account
    JOIN creditor c ON c.id = a.creditor
    JOIN debtor db ON db.id = a.debtor
    LEFT JOIN invoice i ON i.id = d.invoice
    LEFT JOIN invoice_line l ON l.id = d.invoice_line
"""


async def debtor_rows(ids: list[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    return await Dispute.raw(
        """SELECT id, name, language, country, timezone FROM debtor
           WHERE id = ANY({}::int[]) ORDER BY id""",
        ids,
    )


async def debtor_context(
    ids: list[int], language: str | None
) -> tuple[dict[str, Any] | None, str, str]:
    """The first debtor's row, the language to answer in and the locale for amounts and dates."""
    debtors = await debtor_rows(ids)
    primary = debtors[0] if debtors else None
    lang = resolve_language(language, primary["language"] if primary else None)
    locale = display_locale(lang, primary["country"] if primary else "")
    return primary, lang, locale


async def disputes_of(ids: list[int]) -> list[dict[str, Any]]:
    if not ids:
        return []
    return await Dispute.raw(
        f"""SELECT {DISPUTE_COLUMNS} {DISPUTE_FROM}
            WHERE a.debtor = ANY({{}}::int[])
            ORDER BY d.created_at DESC, d.id DESC""",
        ids,
    )


async def dispute_of(ids: list[int], dispute_id: int) -> dict[str, Any] | None:
    if not ids or not valid_id(dispute_id):
        return None
    rows = await Dispute.raw(
        f"""SELECT {DISPUTE_COLUMNS} {DISPUTE_FROM}
            WHERE d.id = {{}} AND a.debtor = ANY({{}}::int[])""",
        dispute_id,
        ids,
    )
    return rows[0] if rows else None


async def invoice_open(invoice_id: int) -> int:
    """What an invoice owes now: the sum of its ledger entries."""
    owed = await Dispute.raw(
        "SELECT coalesce(sum(amount), 0)::bigint AS open FROM ledger_entry WHERE invoice = {}",
        invoice_id,
    )
    return int(owed[0]["open"])


async def credit_note(key: str) -> dict[str, Any] | None:
    """The ledger entry posted under an idempotency key (a resolution's credit note)."""
    rows = await Dispute.raw(
        "SELECT id, amount, effective_date FROM ledger_entry WHERE idempotency_key = {}", key
    )
    return rows[0] if rows else None


async def open_invoices(ids: list[int], *, invoice_id: int | None = None) -> list[OpenInvoice]:
    """The debtors' invoices with something still owed, with what is already disputed."""
    if not ids:
        return []
    only = "AND i.id = {}" if invoice_id is not None else ""
    rows = await Dispute.raw(
        f"""WITH owed AS (
                SELECT e.invoice, sum(e.amount)::bigint AS open
                FROM ledger_entry e JOIN invoice i ON i.id = e.invoice
                JOIN account a ON a.id = i.account
                WHERE a.debtor = ANY({{}}::int[]) {only}
                GROUP BY e.invoice
            )
            SELECT i.id, i.account, i.number, a.currency, c.name AS creditor, o.open
            FROM owed o JOIN invoice i ON i.id = o.invoice
            JOIN account a ON a.id = i.account JOIN creditor c ON c.id = a.creditor
            WHERE o.open > 0
            ORDER BY c.name, i.due_date, i.id""",
        ids,
        *([invoice_id] if invoice_id is not None else []),
    )
    if not rows:
        return []
    invoice_ids = [r["id"] for r in rows]
    lines = await Dispute.raw(
        """SELECT id, invoice, description, total FROM invoice_line
           WHERE invoice = ANY({}::int[]) ORDER BY invoice, position""",
        invoice_ids,
    )
    disputes = await Dispute.raw(
        f"""SELECT invoice, invoice_line, amount FROM dispute
            WHERE invoice = ANY({{}}::int[]) AND resolved_at IS NULL
              AND status <> ALL({CLOSED_SQL})""",
        invoice_ids,
    )
    disputed: dict[int, int] = {}
    whole: set[int] = set()
    disputed_lines: set[int] = set()
    for d in disputes:
        disputed[d["invoice"]] = disputed.get(d["invoice"], 0) + int(d["amount"])
        if d["invoice_line"] is None:
            whole.add(d["invoice"])
        else:
            disputed_lines.add(d["invoice_line"])
    by_invoice: dict[int, list[Line]] = {}
    for line in lines:
        by_invoice.setdefault(line["invoice"], []).append(
            (line["id"], line["description"], int(line["total"]), line["id"] in disputed_lines)
        )
    return [
        OpenInvoice(
            id=r["id"],
            account_id=r["account"],
            number=r["number"],
            currency=r["currency"],
            creditor=r["creditor"],
            open=int(r["open"]),
            disputed=disputed.get(r["id"], 0),
            whole_disputed=r["id"] in whole,
            lines=tuple(by_invoice.get(r["id"], [])),
        )
        for r in rows
    ]


async def claim_attachments(attachment_ids: Sequence[int], language: str) -> list[int]:
    """Lock the given attachments and check none is linked to anything yet."""
    wanted = sorted({int(a) for a in attachment_ids})
    if not wanted:
        return []
    rows = await Dispute.raw(
        """SELECT a.id FROM attachment a
           WHERE a.id = ANY({}::int[])
             AND NOT EXISTS (SELECT 1 FROM dispute_message m WHERE m.attachment = a.id)
             AND NOT EXISTS (SELECT 1 FROM payment_claim p WHERE p.attachment = a.id)
           FOR UPDATE OF a""",
        [a for a in wanted if valid_id(a)],
    )
    if len(rows) != len(wanted):
        raise ValidationFailed(
            gettext(language, "No pudimos usar el archivo adjunto; vuelva a adjuntarlo."),
            field="attachment",
        )
    return [int(a) for a in attachment_ids if int(a) in wanted]
