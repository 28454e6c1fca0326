"""Batch upsert of debtors and invoices for `/api/v1`, through the portfolio import's own rules.

`PUT /api/v1/debtors` and `PUT /api/v1/invoices` take a creditor (by name, created when missing,
as `saldo import --creditor`) and up to `MAX_ITEMS` items whose fields are the columns of the
import's CSV files. The items are written as those two files (a header-only file for the other
one) and imported by `portfolio_import.import_portfolio`, so every rule is the import's: the
checks and their order, the line totals (`quantity × unit_price × (1 + tax_rate/100)` rounded
half-up to the currency's minor unit), debtors upserted by `external_id` and invoices by number,
a charge for a new invoice and one adjustment when a total changes. Sending the same batch again
writes nothing. All or nothing: one bad item refuses the whole batch.

A refusal is `ValidationFailed` (HTTP 422) whose `field` names the item, `items[3].email` or
`items[0].lines[2].quantity`, with the import's reason as the message (line numbers in it become
item positions). JSON can carry what a CSV line cannot, so a few checks run here first, before
any file is written:

- text holding a line break (the import refuses one inside a quoted field), a NUL character
  (PostgreSQL text cannot hold it) or an unpaired surrogate (not UTF-8);
- an invoice number repeated within the batch (in a CSV file its rows would become lines of one
  invoice; here they are two items, which is a mistake).

Every accepted batch leaves an `import_run` row (as the CLI's imports do) and an audit event
naming the API key.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import re
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from saldo.errors import ImportFileError, ValidationFailed
from saldo.services import audit
from saldo.services.import_sql import DEBTOR_COLUMNS, INVOICE_COLUMNS
from saldo.services.portfolio_import import ImportResult, import_portfolio

__all__ = [
    "INVOICE_HEAD",
    "LINE_COLUMNS",
    "MAX_ITEMS",
    "MAX_LINES",
    "DebtorUpsert",
    "InvoiceUpsert",
    "upsert_debtors",
    "upsert_invoices",
]

#: Items in one request; larger portfolios go through several requests or `saldo import`.
MAX_ITEMS = 1000
#: Lines of one invoice.
MAX_LINES = 500

#: An invoice item's own fields, and those of each of its `lines`.
INVOICE_HEAD = INVOICE_COLUMNS[:5]
LINE_COLUMNS = INVOICE_COLUMNS[5:]

_DEBTORS_FILE = "debtors.csv"
_INVOICES_FILE = "invoices.csv"

Item = Mapping[str, Any]


class DebtorUpsert(msgspec.Struct, kw_only=True):
    """What a debtors batch did. Unchanged debtors were not written at all."""

    creditor_id: int
    import_run: int
    inserted: int
    updated: int
    unchanged: int


class InvoiceUpsert(msgspec.Struct, kw_only=True):
    """What an invoices batch did. Unchanged invoices were not written at all."""

    creditor_id: int
    import_run: int
    inserted: int
    updated: int
    unchanged: int
    lines_written: int
    accounts_created: int
    ledger_entries_posted: int


# ---------------------------------------------------------------------------- use cases


async def upsert_debtors(
    creditor: str, items: Sequence[Item], *, actor: str, now: dt.datetime
) -> DebtorUpsert:
    """Upsert a creditor's debtors: `items` map the debtors file's columns to their text (a
    missing column is empty). Raises `ValidationFailed` naming the first bad item."""
    _check_batch(creditor, items)
    rows = []
    for index, item in enumerate(items):
        rows.append([_value(item, column, f"items[{index}]") for column in DEBTOR_COLUMNS])
    places = [f"items[{i}]" for i in range(len(items))]
    result = await _import(creditor, rows, [], debtor_places=places)
    outcome = DebtorUpsert(
        creditor_id=result.creditor_id,
        import_run=result.run_id,
        inserted=result.debtors_inserted,
        updated=result.debtors_updated,
        unchanged=result.debtors_unchanged,
    )
    await _audit(actor, "api.debtors.upsert", now, result.run_id, len(items), outcome)
    return outcome


async def upsert_invoices(
    creditor: str, items: Sequence[Item], *, actor: str, now: dt.datetime
) -> InvoiceUpsert:
    """Upsert a creditor's invoices: `items` map `INVOICE_HEAD` to text and `lines` to a list
    of mappings of `LINE_COLUMNS`; their debtors must be stored already. Raises
    `ValidationFailed` naming the first bad item."""
    _check_batch(creditor, items)
    first_at: dict[str, int] = {}
    rows: list[list[str]] = []
    places: list[str] = []
    for index, item in enumerate(items):
        at = f"items[{index}]"
        head = [_value(item, column, at) for column in INVOICE_HEAD]
        lines = item.get("lines")
        if not isinstance(lines, Sequence) or not 1 <= len(lines) <= MAX_LINES:
            raise ValidationFailed(
                f"{at}.lines: an invoice has 1 to {MAX_LINES} lines", field=f"{at}.lines"
            )
        for number, line in enumerate(lines):
            where = f"{at}.lines[{number}]"
            rows.append([*head, *(_value(line, column, where) for column in LINE_COLUMNS)])
            places.append(where)
        earlier = first_at.setdefault(head[0], index)
        if earlier != index:
            raise ValidationFailed(
                f"{at}.invoice_number: duplicated invoice_number {_shown(head[0])} "
                f"(first at items[{earlier}])",
                field=f"{at}.invoice_number",
            )
    result = await _import(creditor, [], rows, invoice_places=places)
    outcome = InvoiceUpsert(
        creditor_id=result.creditor_id,
        import_run=result.run_id,
        inserted=result.invoices_inserted,
        updated=result.invoices_updated,
        unchanged=result.invoices_unchanged,
        lines_written=result.lines_written,
        accounts_created=result.accounts_created,
        ledger_entries_posted=result.ledger_entries_posted,
    )
    await _audit(actor, "api.invoices.upsert", now, result.run_id, len(items), outcome)
    return outcome


def _check_batch(creditor: str, items: Sequence[Item]) -> None:
    _check_text("creditor", creditor)
    if len(items) > MAX_ITEMS:
        raise ValidationFailed(f"items: at most {MAX_ITEMS} in one request", field="items")


def _value(item: Any, column: str, at: str) -> str:
    value = item.get(column, "") if isinstance(item, Mapping) else None
    field = f"{at}.{column}"
    if not isinstance(value, str):
        raise ValidationFailed(f"{field}: expected text", field=field)
    _check_text(field, value)
    return value


# ---------------------------------------------------------------------------- the import


async def _import(
    creditor: str,
    debtor_rows: Sequence[list[str]],
    invoice_rows: Sequence[list[str]],
    *,
    debtor_places: Sequence[str] = (),
    invoice_places: Sequence[str] = (),
) -> ImportResult:
    with tempfile.TemporaryDirectory(prefix="saldo-api-") as folder:
        debtors = Path(folder) / _DEBTORS_FILE
        invoices = Path(folder) / _INVOICES_FILE
        await asyncio.to_thread(_write_csv, debtors, DEBTOR_COLUMNS, debtor_rows)
        await asyncio.to_thread(_write_csv, invoices, INVOICE_COLUMNS, invoice_rows)
        try:
            return await import_portfolio(debtors, invoices, creditor=creditor)
        except ImportFileError as exc:
            places = debtor_places if exc.file == _DEBTORS_FILE else invoice_places
            raise _refusal(exc, places) from None


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


async def _audit(
    actor: str, action: str, now: dt.datetime, run_id: int, items: int, outcome: msgspec.Struct
) -> None:
    after = {"items": items, **msgspec.structs.asdict(outcome)}
    await audit.record(
        audit.Actor(None, actor),
        action,
        now=now,
        object_type="import_run",
        object_id=run_id,
        after=after,
    )


# ---------------------------------------------------------------------------- refusals


def _check_text(field: str, value: str) -> None:
    reason = None
    if "\r" in value or "\n" in value:
        reason = "line break in the text"
    elif "\x00" in value:
        reason = "NUL character in the text"
    else:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            reason = "unpaired surrogate in the text (not valid Unicode)"
    if reason:
        raise ValidationFailed(f"{field}: {reason}", field=field)


def _shown(value: str) -> str:
    return f'"{value[:40]}…"' if len(value) > 40 else f'"{value}"'


# The import's reasons, by the column they are about (see `import_sql` and `portfolio_import`).
_ITEM_REASONS: tuple[tuple[re.Pattern[str], str | None], ...] = (
    (re.compile(r"^empty (\w+)"), None),
    (re.compile(r"^(\w+) longer than"), None),
    (re.compile(r"^malformed (email|language|country)\b"), None),
    (re.compile(r"^unknown time zone"), "timezone"),
    (re.compile(r"^duplicated external_id"), "external_id"),
    (re.compile(r"^unknown currency"), "currency"),
    (re.compile(r"^bad (issue_date|due_date)"), None),
    (re.compile(r"^due_date .* is before issue_date"), "due_date"),
    (re.compile(r"^invoice total too large"), "lines"),
    (re.compile(r"^unknown debtor"), "debtor_external_id"),
    (re.compile(r"^invoice .* disagrees with"), "invoice_number"),
)
_LINE_REASON = re.compile(r"^(?:negative|malformed) (quantity|unit_price|tax_rate)\b")
_MOVED = re.compile(r"for debtor (.*) in (\w+); it cannot move to debtor (.*) in (\w+)$")
# The import names other lines only in these two reasons (never inside a quoted value).
_FIRST_ON_LINE = re.compile(r"\(first on line (\d+)\)$")
_ITS_LINE = re.compile(r"^(invoice .* disagrees with its )line (\d+)( on \w+ \()")


def _refusal(exc: ImportFileError, places: Sequence[str]) -> ValidationFailed:
    """The import's refusal of a file line, told about the item (and line) it came from."""

    def place(line: int | None) -> str | None:
        index = (line or 0) - 2  # line 1 is the header
        return places[index] if 0 <= index < len(places) else None

    row = place(exc.line)

    def first_at(match: re.Match[str]) -> str:
        found = place(int(match.group(1)))
        return f"(first at {found})" if found else match.group(0)

    def its(match: re.Match[str]) -> str:
        found = place(int(match.group(2)))
        return f"{match.group(1)}{found}{match.group(3)}" if found else match.group(0)

    reason = _ITS_LINE.sub(its, _FIRST_ON_LINE.sub(first_at, exc.reason))
    if row is None:
        return ValidationFailed(f"items: {reason}", field="items")
    item = row.split(".")[0]  # items[3] of items[3].lines[1]
    field = item
    if match := _LINE_REASON.match(exc.reason):
        field = f"{row}.{match.group(1)}"
    elif match := _MOVED.search(exc.reason):
        moved = match.group(1) != match.group(3)
        field = f"{item}.{'debtor_external_id' if moved else 'currency'}"
    else:
        for pattern, column in _ITEM_REASONS:
            if found := pattern.match(exc.reason):
                field = f"{item}.{column or found.group(1)}"
                break
    return ValidationFailed(f"{field}: {reason}", field=field)
