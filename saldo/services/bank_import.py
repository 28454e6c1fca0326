"""Bank statement import: `saldo bank import FILE` (and the back office's upload, later).

File format — UTF-8 CSV (a byte-order mark is allowed), a header row, `,` as separator:

    date,amount,currency,reference,payer_name,payer_document,transaction_id
    2026-11-03,15000.00,ARS,TRANSF SAL-0001234-82 FC A-0001,PEREZ JUAN,20-12345678-9,TX-88123

- `date`: the booking date, ISO `YYYY-MM-DD`.
- `amount`: a credit as a decimal string with `.` (`15000`, `15000.5`, `15000.50`); no
  thousands separators. Zero or negative amounts are refused: the file lists incoming money only.
- `currency`: an ISO 4217 code Saldo supports (ARS, MXN, COP, PEN, UYU, BRL, EUR, USD, CLP, PYG).
- `reference`: the transfer's free-text description, as the bank shows it. Our payment
  reference (`SAL-0001234-82`, printed on the debtor's payment page) and invoice numbers are
  read from it.
- `payer_name`, `payer_document`: who sent the money, when the bank tells (may be empty; the
  document is compared by its digits only).
- `transaction_id`: the bank's unique id of the movement (required, at most 90 characters,
  once per file).

Columns may come in any order; missing, unknown or repeated columns are refused. Blank lines
are skipped. Line numbers are physical lines, the header being line 1.

A bad row is reported as `ImportFileError(file, line, reason)` and nothing of that file is
imported. Importing the same file again changes nothing and answers the earlier import's
result (files are known by their SHA-256). Overlapping statements are fine: a line whose
`transaction_id` is already stored is skipped as a duplicate. Automatic matching
(`bank_matching.match_lines`) then runs on the new lines only.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from saldo import money
from saldo.db import DB
from saldo.errors import ImportFileError, NotFound
from saldo.services.bank_matching import AUTOMATIC_RULES, match_lines
from saldo.services.bank_posting import staff_actor, write_audit
from saldo.tables import BankImport, BankLine

__all__ = [
    "COLUMNS",
    "BankImportResult",
    "CurrencyTotal",
    "RuleTotal",
    "StatementLine",
    "import_bank_statement",
    "import_result",
    "parse_statement",
]

COLUMNS: Final = (
    "date",
    "amount",
    "currency",
    "reference",
    "payer_name",
    "payer_document",
    "transaction_id",
)
_MAX_FILENAME: Final = 300  # BankImport.filename
#: BankLine.transaction_id holds 100; split parts append ":<n>" for their payment ids.
_MAX_TRANSACTION_ID: Final = 90
_MAX_PAYER_NAME: Final = 300
_MAX_PAYER_DOCUMENT: Final = 40
_MAX_BIGINT: Final = 2**63 - 1
_ISO_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, slots=True)
class StatementLine:
    line_no: int
    booked_on: dt.date
    amount: int
    currency: str
    reference: str
    payer_name: str
    payer_document: str
    transaction_id: str


@dataclass(frozen=True, slots=True)
class CurrencyTotal:
    currency: str
    count: int
    amount: int


@dataclass(frozen=True, slots=True)
class RuleTotal:
    rule: str
    currency: str
    count: int
    amount: int


@dataclass(frozen=True, slots=True)
class BankImportResult:
    """What an import holds now: its lines, how many were new, and where each one went."""

    import_id: int
    filename: str
    imported_at: dt.datetime
    already_imported: bool  # True when this exact file had been imported before
    lines_read: int
    new_lines: int
    duplicates: int  # lines whose transaction_id an earlier statement already had
    matched: tuple[RuleTotal, ...]  # matched automatically, per rule and currency
    resolved_by_hand: tuple[CurrencyTotal, ...]  # assigned, split or marked not ours
    unmatched: tuple[CurrencyTotal, ...]

    @property
    def matched_count(self) -> int:
        return sum(t.count for t in self.matched)

    @property
    def unmatched_count(self) -> int:
        return sum(t.count for t in self.unmatched)

    def summary_lines(self) -> list[str]:
        """A short plain-text report (the CLI prints it)."""
        head = f"bank import #{self.import_id} {self.filename}"
        if self.already_imported:
            lines = [
                f"{head}: already imported on {self.imported_at:%Y-%m-%d %H:%M} UTC, "
                "nothing changed"
            ]
        else:
            lines = [head]
        lines.append(
            f"{self.lines_read} lines read, {self.new_lines} new, "
            f"{self.duplicates} already imported by another statement"
        )
        lines.append(f"matched automatically: {_lines(self.matched_count)}")
        for total in self.matched:
            lines.append(
                f"  {total.rule}: {_lines(total.count)}, {_amount(total.amount, total.currency)}"
            )
        for by_hand in self.resolved_by_hand:
            lines.append(
                f"resolved by hand: {_lines(by_hand.count)}, "
                f"{_amount(by_hand.amount, by_hand.currency)}"
            )
        if not self.unmatched:
            lines.append("unmatched: none")
        for left in self.unmatched:
            lines.append(f"unmatched: {_lines(left.count)}, {_amount(left.amount, left.currency)}")
        return lines


def _lines(count: int) -> str:
    return f"{count} line" if count == 1 else f"{count} lines"


def _amount(minor: int, currency: str) -> str:
    return f"{currency} {money.to_decimal(minor, currency)}"


# ---------------------------------------------------------------------------- parsing


def parse_statement(data: bytes, name: str) -> list[StatementLine]:
    """Check a whole statement file; raise `ImportFileError` for its first bad line."""
    text = _decode(data, name)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ImportFileError(name, 1, f"malformed CSV ({exc})") from None
    if header is None or not any(cell.strip() for cell in header):
        raise ImportFileError(name, 1, "empty file (expected a header line)")
    index = _columns(header, name)
    seen: dict[str, int] = {}
    lines: list[StatementLine] = []
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader, None)
        except csv.Error as exc:
            raise ImportFileError(name, start, f"malformed CSV ({exc})") from None
        if row is None:
            return lines
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(COLUMNS):
            raise ImportFileError(name, start, f"expected {len(COLUMNS)} fields, found {len(row)}")
        fields = {column: row[i] for column, i in index.items()}
        try:
            line = _line(start, fields)
        except ValueError as exc:
            raise ImportFileError(name, start, str(exc)) from None
        earlier = seen.setdefault(line.transaction_id, start)
        if earlier != start:
            raise ImportFileError(
                name, start, f"transaction_id {line.transaction_id!r} repeats line {earlier}"
            )
        lines.append(line)


def _decode(data: bytes, name: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportFileError(name, line, f"invalid UTF-8 (byte 0x{data[exc.start]:02x})") from None
    if "\x00" in text:
        raise ImportFileError(name, text[: text.index("\x00")].count("\n") + 1, "NUL byte")
    return text


def _columns(header: list[str], name: str) -> dict[str, int]:
    columns = [cell.strip().lower() for cell in header]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    missing = [c for c in COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in COLUMNS]
    if repeated:
        raise ImportFileError(name, 1, f"repeated column {', '.join(repeated)}")
    if missing:
        raise ImportFileError(name, 1, f"missing column {', '.join(missing)}")
    if unknown:
        raise ImportFileError(name, 1, f"unknown column {', '.join(unknown)}")
    return {column: columns.index(column) for column in COLUMNS}


def _line(line_no: int, fields: dict[str, str]) -> StatementLine:
    """One row's values; a `ValueError` names the first bad field."""
    raw_date = fields["date"].strip()
    try:
        if not _ISO_DATE.fullmatch(raw_date):
            raise ValueError
        booked_on = dt.date.fromisoformat(raw_date)
    except ValueError:
        raise ValueError(f"date {raw_date!r} is not a date as YYYY-MM-DD") from None
    currency = fields["currency"].strip().upper()
    if currency not in money.EXPONENTS:
        supported = ", ".join(sorted(money.EXPONENTS))
        raise ValueError(f"currency {currency!r} is not supported ({supported})")
    try:
        amount = money.parse_amount(fields["amount"].strip(), currency)
    except money.MalformedAmount as exc:
        raise ValueError(f"amount: {exc}") from None
    if amount <= 0:
        raise ValueError(
            f"amount {fields['amount'].strip()} is not positive (a statement lists credits only)"
        )
    if amount > _MAX_BIGINT:
        raise ValueError("amount is too large")
    payer_name = " ".join(fields["payer_name"].split())
    if len(payer_name) > _MAX_PAYER_NAME:
        raise ValueError(f"payer_name is longer than {_MAX_PAYER_NAME} characters")
    payer_document = fields["payer_document"].strip()
    if len(payer_document) > _MAX_PAYER_DOCUMENT:
        raise ValueError(f"payer_document is longer than {_MAX_PAYER_DOCUMENT} characters")
    transaction_id = fields["transaction_id"].strip()
    if not transaction_id:
        raise ValueError("transaction_id is empty")
    if len(transaction_id) > _MAX_TRANSACTION_ID:
        raise ValueError(f"transaction_id is longer than {_MAX_TRANSACTION_ID} characters")
    return StatementLine(
        line_no=line_no,
        booked_on=booked_on,
        amount=amount,
        currency=currency,
        reference=" ".join(fields["reference"].split()),
        payer_name=payer_name,
        payer_document=payer_document,
        transaction_id=transaction_id,
    )


# ---------------------------------------------------------------------------- importing


async def import_bank_statement(
    path: Path, *, imported_by: int | None = None, now: dt.datetime
) -> BankImportResult:
    """Import a statement file and match its new lines automatically.

    Raises `ImportFileError` for a bad file (nothing is imported) and `NotFound` for an
    unknown `imported_by` staff id.
    """
    data = await asyncio.to_thread(path.read_bytes)
    name = path.name[:_MAX_FILENAME]
    lines = parse_statement(data, path.name)
    digest = hashlib.sha256(data).hexdigest()
    if imported_by is not None:
        await staff_actor(imported_by)
    async with DB.transaction():
        created = await BankImport.raw(
            """
            INSERT INTO bank_import (filename, sha256, rows, imported_by, imported_at)
            VALUES ({}, {}, {}, {}, {})
            ON CONFLICT (sha256) DO NOTHING
            RETURNING id
            """,
            name,
            digest,
            len(lines),
            imported_by,
            now,
        )
        if not created:
            existing = await BankImport.select(BankImport.id).where(BankImport.sha256 == digest)
            import_id = int(existing[0]["id"])
            new_ids: list[int] = []
        else:
            import_id = int(created[0]["id"])
            new_ids = await _insert_lines(import_id, lines)
            if imported_by is not None:
                await write_audit(
                    staff_id=imported_by,
                    action="bank_import.create",
                    object_type="bank_import",
                    object_id=import_id,
                    before={},
                    after={"filename": name, "rows": len(lines), "new_lines": len(new_ids)},
                    now=now,
                )
    if not created:
        return await import_result(import_id, already_imported=True)
    await match_lines(new_ids, now=now)
    return await import_result(import_id)


async def _insert_lines(import_id: int, lines: Sequence[StatementLine]) -> list[int]:
    if not lines:
        return []
    rows = await BankLine.raw(
        """
        INSERT INTO bank_line (bank_import, line_no, transaction_id, booked_on, amount, currency,
                               reference, payer_name, payer_document, status, account,
                               match_rule, match_note, resolved_by, resolved_at)
        SELECT {}, t.line_no, t.transaction_id, t.booked_on, t.amount, t.currency, t.reference,
               t.payer_name, t.payer_document, 'unmatched', NULL, '', '', NULL, NULL
        FROM unnest({}::int[], {}::text[], {}::date[], {}::bigint[], {}::text[], {}::text[],
                    {}::text[], {}::text[])
             AS t(line_no, transaction_id, booked_on, amount, currency, reference, payer_name,
                  payer_document)
        ORDER BY t.line_no
        ON CONFLICT (transaction_id) DO NOTHING
        RETURNING id
        """,
        import_id,
        [x.line_no for x in lines],
        [x.transaction_id for x in lines],
        [x.booked_on for x in lines],
        [x.amount for x in lines],
        [x.currency for x in lines],
        [x.reference for x in lines],
        [x.payer_name for x in lines],
        [x.payer_document for x in lines],
    )
    return sorted(int(r["id"]) for r in rows)


async def import_result(import_id: int, *, already_imported: bool = False) -> BankImportResult:
    """The current state of an import's lines (also what re-importing its file answers)."""
    head = await BankImport.select(
        BankImport.id, BankImport.filename, BankImport.rows, BankImport.imported_at
    ).where(BankImport.id == import_id)
    if not head:
        raise NotFound(f"bank import {import_id} does not exist")
    rows = await BankLine.raw(
        """
        SELECT status, match_rule, currency, count(*)::int AS n, sum(amount)::bigint AS total
        FROM bank_line WHERE bank_import = {}
        GROUP BY status, match_rule, currency
        ORDER BY currency, match_rule
        """,
        import_id,
    )
    order = {rule: i for i, rule in enumerate(AUTOMATIC_RULES)}
    matched = sorted(
        (
            RuleTotal(r["match_rule"], r["currency"], r["n"], int(r["total"]))
            for r in rows
            if r["status"] == "matched"
        ),
        key=lambda t: (order.get(t.rule, len(order)), t.rule, t.currency),
    )
    by_hand: dict[str, list[int]] = {}
    unmatched: dict[str, list[int]] = {}
    for r in rows:
        bucket = (
            unmatched
            if r["status"] == "unmatched"
            else by_hand
            if r["status"] != "matched"
            else None
        )
        if bucket is not None:
            slot = bucket.setdefault(r["currency"], [0, 0])
            slot[0] += r["n"]
            slot[1] += int(r["total"])
    new_lines = sum(r["n"] for r in rows)
    return BankImportResult(
        import_id=import_id,
        filename=head[0]["filename"],
        imported_at=head[0]["imported_at"],
        already_imported=already_imported,
        lines_read=head[0]["rows"],
        new_lines=new_lines,
        duplicates=head[0]["rows"] - new_lines,
        matched=tuple(matched),
        resolved_by_hand=tuple(CurrencyTotal(c, n, a) for c, (n, a) in sorted(by_hand.items())),
        unmatched=tuple(CurrencyTotal(c, n, a) for c, (n, a) in sorted(unmatched.items())),
    )
