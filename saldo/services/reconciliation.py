"""Finance's reconciliation: the day's incoming money by source, and the accounting export.

A payment counts on the ledger date of its allocations (`ledger_entry.effective_date`: the
day it was received; for a bank line, its booking date), so the summary, the export and the
account statements agree. Sources:

- `mercadopago`, `simulated` (demo mode), or any other provider, as recorded;
- `bank_auto`: a bank line matched by a rule (`bank_matching`);
- `bank_manual`: a bank line assigned or split by finance (`bank_queue`).

Export (`export_csv`): one row per payment allocation, RFC 4180 CSV with a header row:

    date,source,payment_id,transaction_id,creditor,debtor_external_id,account_reference,
    invoice_number,amount,currency,rule

`transaction_id` is the provider's payment id (for a bank line the bank's transaction id,
`<transaction_id>:<n>` for part n of a split); `invoice_number` is "saldo a favor" for what
stayed on the account as credit; `amount` is a decimal string with `.`; `rule` is the bank
line's match rule (empty for online payments). Text cells that a spreadsheet would read as a
formula (starting with `=`, `+`, `-`, `@`) are prefixed with `'`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from saldo import money
from saldo.errors import ValidationFailed
from saldo.references import payment_reference
from saldo.services.bank_import import CurrencyTotal
from saldo.tables import BankLine, Payment

__all__ = [
    "EXPORT_COLUMNS",
    "MAX_EXPORT_DAYS",
    "SOURCE_LABELS",
    "LineTotal",
    "ReconciliationSummary",
    "SourceTotal",
    "export_csv",
    "reconciliation_summary",
    "source_of",
]

SOURCE_LABELS: Final = {
    "mercadopago": "Mercado Pago",
    "simulated": "Pago en línea (modo simulado)",
    "bank_auto": "Banco, conciliado automáticamente",
    "bank_manual": "Banco, asignado a mano",
    "manual": "Registrado a mano",
}
_SOURCE_ORDER: Final = tuple(SOURCE_LABELS)
EXPORT_COLUMNS: Final = (
    "date",
    "source",
    "payment_id",
    "transaction_id",
    "creditor",
    "debtor_external_id",
    "account_reference",
    "invoice_number",
    "amount",
    "currency",
    "rule",
)
CREDIT_LABEL: Final = "saldo a favor"
MAX_EXPORT_DAYS: Final = 366
_RESOLVED: Final = ("matched", "assigned", "split")


@dataclass(frozen=True, slots=True)
class SourceTotal:
    source: str
    label: str
    currency: str
    count: int  # payments
    amount: int


@dataclass(frozen=True, slots=True)
class LineTotal:
    status: str  # unmatched | matched | assigned | split | not_ours
    currency: str
    count: int
    amount: int


@dataclass(frozen=True, slots=True)
class ReconciliationSummary:
    day: dt.date
    incoming: tuple[SourceTotal, ...]  # payments applied that day, by source and currency
    bank_lines: tuple[LineTotal, ...]  # bank lines booked that day, by status and currency
    backlog: tuple[CurrencyTotal, ...]  # every unmatched bank line, whatever its day

    @property
    def matched(self) -> tuple[CurrencyTotal, ...]:
        """The day's bank lines that became payments (by a rule or by hand)."""
        return _by_currency(t for t in self.bank_lines if t.status in _RESOLVED)

    @property
    def unmatched(self) -> tuple[CurrencyTotal, ...]:
        return _by_currency(t for t in self.bank_lines if t.status == "unmatched")

    @property
    def not_ours(self) -> tuple[CurrencyTotal, ...]:
        return _by_currency(t for t in self.bank_lines if t.status == "not_ours")

    def incoming_total(self, currency: str) -> int:
        return sum(t.amount for t in self.incoming if t.currency == currency)


def _by_currency(totals: Any) -> tuple[CurrencyTotal, ...]:
    merged: dict[str, tuple[int, int]] = {}
    for t in totals:
        count, amount = merged.get(t.currency, (0, 0))
        merged[t.currency] = (count + t.count, amount + t.amount)
    return tuple(CurrencyTotal(c, n, a) for c, (n, a) in sorted(merged.items()))


def source_of(provider: str, line_status: str | None) -> str:
    if provider == "bank":
        return "bank_auto" if line_status == "matched" else "bank_manual"
    return provider


async def reconciliation_summary(*, day: dt.date) -> ReconciliationSummary:
    payments = await Payment.raw(
        """
        SELECT p.provider, l.status AS line_status, p.currency,
               count(DISTINCT p.id)::int AS n, sum(pa.amount)::bigint AS total
        FROM payment_allocation pa
        JOIN payment p ON p.id = pa.payment
        JOIN ledger_entry e ON e.id = pa.ledger_entry
        LEFT JOIN bank_line l ON l.id = p.bank_line
        WHERE e.effective_date = {}
        GROUP BY p.provider, l.status, p.currency
        """,
        day,
    )
    incoming: dict[tuple[str, str], tuple[int, int]] = {}
    for r in payments:
        key = (source_of(r["provider"], r["line_status"]), r["currency"])
        count, amount = incoming.get(key, (0, 0))
        incoming[key] = (count + r["n"], amount + int(r["total"]))
    lines = await BankLine.raw(
        """
        SELECT status, currency, count(*)::int AS n, sum(amount)::bigint AS total
        FROM bank_line WHERE booked_on = {} GROUP BY status, currency
        ORDER BY status, currency
        """,
        day,
    )
    backlog = await BankLine.raw(
        """
        SELECT currency, count(*)::int AS n, sum(amount)::bigint AS total
        FROM bank_line WHERE status = 'unmatched' GROUP BY currency ORDER BY currency
        """
    )
    order = {source: i for i, source in enumerate(_SOURCE_ORDER)}
    return ReconciliationSummary(
        day=day,
        incoming=tuple(
            SourceTotal(source, SOURCE_LABELS.get(source, source), currency, n, amount)
            for (source, currency), (n, amount) in sorted(
                incoming.items(), key=lambda kv: (order.get(kv[0][0], len(order)), kv[0])
            )
        ),
        bank_lines=tuple(
            LineTotal(r["status"], r["currency"], r["n"], int(r["total"])) for r in lines
        ),
        backlog=tuple(CurrencyTotal(r["currency"], r["n"], int(r["total"])) for r in backlog),
    )


async def export_csv(*, date_from: dt.date, date_to: dt.date) -> str:
    """Applied payments between two ledger dates (both included), one row per allocation."""
    if date_to < date_from:
        raise ValidationFailed("La fecha final es anterior a la inicial", field="date_to")
    if (date_to - date_from).days >= MAX_EXPORT_DAYS:
        raise ValidationFailed(
            f"Exportá como máximo {MAX_EXPORT_DAYS} días por vez", field="date_to"
        )
    rows = await Payment.raw(
        """
        SELECT e.effective_date, p.id AS payment_id, p.provider, p.provider_payment_id,
               p.currency, l.status AS line_status, l.match_rule, c.name AS creditor,
               d.external_id, p.account, i.number AS invoice_number, pa.amount
        FROM payment_allocation pa
        JOIN payment p ON p.id = pa.payment
        JOIN ledger_entry e ON e.id = pa.ledger_entry
        JOIN account a ON a.id = e.account
        JOIN debtor d ON d.id = a.debtor
        JOIN creditor c ON c.id = a.creditor
        LEFT JOIN invoice i ON i.id = pa.invoice
        LEFT JOIN bank_line l ON l.id = p.bank_line
        WHERE e.effective_date BETWEEN {} AND {}
        ORDER BY e.effective_date, p.id, pa.id
        """,
        date_from,
        date_to,
    )
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    for r in rows:
        writer.writerow(_export_row(r))
    return out.getvalue()


def _export_row(r: Mapping[str, Any]) -> list[str]:
    return [
        r["effective_date"].isoformat(),
        source_of(r["provider"], r["line_status"]),
        str(r["payment_id"]),
        _cell(r["provider_payment_id"]),
        _cell(r["creditor"]),
        _cell(r["external_id"]),
        payment_reference(r["account"]),
        _cell(r["invoice_number"]) if r["invoice_number"] is not None else CREDIT_LABEL,
        str(money.to_decimal(int(r["amount"]), r["currency"])),
        r["currency"],
        r["match_rule"] or "",
    ]


def _cell(value: str) -> str:
    """Keep a spreadsheet from running text as a formula."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
