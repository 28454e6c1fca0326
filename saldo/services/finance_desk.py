"""What finance's back-office screens need around the bank and reconciliation services.

- `upload_statement`: an uploaded statement file is written to a private temporary directory
  under the data directory (its original, cleaned name, which the import records) and imported
  with `bank_import.import_bank_statement`; the file is removed afterwards whatever happens.
- `recent_imports`, `import_detail`: past imports and one import's lines with where each went.
- `line_desk`: a bank line with its suggestions and the account finance is looking at;
  `online_desk` the same for an unapplied online payment; `find_accounts` searches accounts in
  one currency by payment reference, document, external id or name.
- `split_from_form`: the split form's text rows (account reference, amount, invoice numbers)
  turned into `bank_queue.split_line` parts; blank rows are ignored. Errors name the field as
  `parts.<i>.account_id`, `parts.<i>.amount`, `parts.<i>.invoice_ids` (i counts the rows
  kept, from 0) or `parts`, as `split_line` does.
- `reconciliation_page`: the day's summary and what waits to be applied (bank and online).
- `export_for_accounting`: the accounting CSV for a date range, with an audit event saying who
  exported what.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple

from saldo import money
from saldo.errors import ValidationFailed
from saldo.references import account_ids_in, payment_reference
from saldo.services import audit
from saldo.services.bank_import import (
    BankImportResult,
    CurrencyTotal,
    import_bank_statement,
    import_result,
)
from saldo.services.bank_matching import open_invoices_of
from saldo.services.bank_queue import BankLineView, Resolution, SplitPart, bank_line, split_line
from saldo.services.bank_suggestions import Suggestion, suggestions
from saldo.services.ledger import account_balance
from saldo.services.reconciliation import ReconciliationSummary, export_csv, reconciliation_summary
from saldo.services.unapplied_payments import (
    OnlinePaymentView,
    online_backlog,
    online_payment,
    online_suggestions,
)
from saldo.tables import Account, BankImport, BankLine, Invoice

__all__ = [
    "IMPORT_LINES_SHOWN",
    "MAX_STATEMENT_BYTES",
    "AccountChoice",
    "ExportFile",
    "ImportDetail",
    "ImportLine",
    "ImportSummary",
    "LineDesk",
    "OnlineDesk",
    "OpenInvoiceView",
    "ReconciliationPage",
    "SplitRow",
    "export_for_accounting",
    "find_accounts",
    "import_detail",
    "line_desk",
    "online_desk",
    "recent_imports",
    "reconciliation_page",
    "split_from_form",
    "upload_statement",
]

MAX_STATEMENT_BYTES: Final = 20 * 1024 * 1024
IMPORT_LINES_SHOWN: Final = 500
_MAX_MATCHES: Final = 10
_UPLOAD_DIR: Final = ("uploads", "bank-statements")
_SAFE_NAME: Final = re.compile(r"[^A-Za-z0-9._ -]+")


# ---------------------------------------------------------------------------- accounts


@dataclass(frozen=True, slots=True)
class OpenInvoiceView:
    id: int
    number: str
    due_date: dt.date
    open: int


@dataclass(frozen=True, slots=True)
class AccountChoice:
    account_id: int
    reference: str
    debtor_name: str
    debtor_external_id: str
    document: str
    creditor_name: str
    currency: str
    balance: int
    open_invoices: tuple[OpenInvoiceView, ...]


_ACCOUNT_SQL: Final = """
    SELECT a.id, a.currency, d.name AS debtor, d.external_id, d.document_number,
           c.name AS creditor
    FROM account a JOIN debtor d ON d.id = a.debtor JOIN creditor c ON c.id = a.creditor
"""


async def _choice(r: Mapping[str, Any]) -> AccountChoice:
    account_id = int(r["id"])
    return AccountChoice(
        account_id=account_id,
        reference=payment_reference(account_id),
        debtor_name=str(r["debtor"]),
        debtor_external_id=str(r["external_id"]),
        document=str(r["document_number"]),
        creditor_name=str(r["creditor"]),
        currency=str(r["currency"]),
        balance=await account_balance(account_id),
        open_invoices=tuple(
            OpenInvoiceView(inv.id, inv.number, inv.due_date, inv.open)
            for inv in await open_invoices_of(account_id)
        ),
    )


async def _account(account_id: int) -> AccountChoice | None:
    rows = await Account.raw(_ACCOUNT_SQL + " WHERE a.id = {}", account_id)
    return await _choice(rows[0]) if rows else None


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def find_accounts(query: str, *, currency: str) -> list[AccountChoice]:
    """Accounts in `currency` that `query` names: a payment reference, the debtor's document
    or external id, or part of the debtor's name (at most ten, by account)."""
    text = " ".join(query.split())[:200]
    if not text:
        return []
    ids = account_ids_in(text)
    if ids:
        rows = await Account.raw(
            _ACCOUNT_SQL + " WHERE a.id = ANY({}) AND a.currency = {} ORDER BY a.id",
            ids,
            currency,
        )
    else:
        digits = re.sub(r"\D", "", text)
        rows = await Account.raw(
            _ACCOUNT_SQL
            + """
            WHERE a.currency = {}
              AND (d.external_id = {}
                   OR ({} <> '' AND length({}) >= 6
                       AND regexp_replace(d.document_number, '[^0-9]', '', 'g') = {})
                   OR d.name ILIKE {} ESCAPE '\\')
            ORDER BY a.id LIMIT {}
            """,
            currency,
            text,
            digits,
            digits,
            digits,
            f"%{_escape_like(text)}%",
            _MAX_MATCHES,
        )
    return [await _choice(r) for r in rows]


# ---------------------------------------------------------------------------- desks


@dataclass(frozen=True, slots=True)
class LineDesk:
    line: BankLineView
    suggestions: tuple[Suggestion, ...]
    query: str
    matches: tuple[AccountChoice, ...]  # what the search found
    chosen: AccountChoice | None  # the account the assign form is for


@dataclass(frozen=True, slots=True)
class OnlineDesk:
    payment: OnlinePaymentView
    suggestions: tuple[Suggestion, ...]
    query: str
    matches: tuple[AccountChoice, ...]
    chosen: AccountChoice | None


async def _pick(
    currency: str, query: str, account_id: int | None
) -> tuple[tuple[AccountChoice, ...], AccountChoice | None]:
    matches = tuple(await find_accounts(query, currency=currency)) if query.strip() else ()
    chosen = await _account(account_id) if account_id is not None else None
    if chosen is None and len(matches) == 1:
        chosen = matches[0]
    return matches, chosen


async def line_desk(line_id: int, *, query: str = "", account_id: int | None = None) -> LineDesk:
    """A bank line, its suggestions while it is unmatched, and the account being looked at."""
    line = await bank_line(line_id)
    found = tuple(await suggestions(line_id)) if line.status == "unmatched" else ()
    matches, chosen = await _pick(line.currency, query, account_id)
    return LineDesk(line, found, " ".join(query.split()), matches, chosen)


async def online_desk(
    payment_id: int, *, query: str = "", account_id: int | None = None
) -> OnlineDesk:
    payment = await online_payment(payment_id)
    found = tuple(await online_suggestions(payment_id)) if payment.unapplied else ()
    matches, chosen = await _pick(payment.currency, query, account_id)
    return OnlineDesk(payment, found, " ".join(query.split()), matches, chosen)


# ---------------------------------------------------------------------------- split form


class SplitRow(NamedTuple):
    account: str  # a payment reference, e.g. SAL-0001234-82
    amount: str  # a decimal with "." (e.g. 1500.50)
    invoices: str  # invoice numbers separated by commas or spaces (optional)

    @property
    def blank(self) -> bool:
        return not (self.account.strip() or self.amount.strip() or self.invoices.strip())


async def split_from_form(
    line_id: int, rows: Sequence[SplitRow], *, staff_id: int, now: dt.datetime
) -> Resolution:
    """Parse the split form's rows and split the line (`bank_queue.split_line`)."""
    line = await bank_line(line_id)
    kept = [row for row in rows if not row.blank]
    parts: list[SplitPart] = []
    for i, row in enumerate(kept):
        prefix = f"parts.{i}."
        ids = account_ids_in(row.account)
        if len(ids) != 1:
            raise ValidationFailed(
                "Escribí una referencia de cuenta válida, como SAL-0001234-82",
                field=f"{prefix}account_id",
            )
        try:
            amount = money.parse_amount(row.amount.strip(), line.currency)
        except money.MalformedAmount:
            raise ValidationFailed(
                "Escribí un importe como 1500.50 (con punto decimal)", field=f"{prefix}amount"
            ) from None
        invoice_ids = await _invoice_ids(ids[0], row.invoices, field=f"{prefix}invoice_ids")
        parts.append(SplitPart(ids[0], amount, invoice_ids))
    return await split_line(line_id, parts, staff_id=staff_id, now=now)


async def _invoice_ids(account_id: int, text: str, *, field: str) -> list[int]:
    numbers = [n for n in re.split(r"[,;\s]+", text.strip()) if n]
    if not numbers:
        return []
    rows = await Invoice.raw(
        "SELECT id, upper(number) AS number FROM invoice WHERE account = {} "
        "AND upper(number) = ANY({})",
        account_id,
        [n.upper() for n in numbers],
    )
    by_number = {r["number"]: int(r["id"]) for r in rows}
    missing = [n for n in numbers if n.upper() not in by_number]
    if missing:
        raise ValidationFailed(f"La cuenta no tiene la factura {', '.join(missing)}", field=field)
    return list(dict.fromkeys(by_number[n.upper()] for n in numbers))


# ---------------------------------------------------------------------------- imports


def _clean_filename(filename: str) -> str:
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode("ascii")
    base = _SAFE_NAME.sub("_", base).strip(" ._")[:200]
    return base or "extracto.csv"


async def upload_statement(
    data: bytes, filename: str, *, data_dir: Path, imported_by: int, now: dt.datetime
) -> BankImportResult:
    """Import an uploaded statement file; `ValidationFailed(field="file")` for no or too big a
    file, `ImportFileError` (`file:line: reason`) for a bad one."""
    if not data:
        raise ValidationFailed("Elegí el archivo CSV del extracto", field="file")
    if len(data) > MAX_STATEMENT_BYTES:
        raise ValidationFailed(
            f"El archivo supera {MAX_STATEMENT_BYTES // (1024 * 1024)} MB", field="file"
        )
    parent = data_dir.joinpath(*_UPLOAD_DIR)
    folder = await asyncio.to_thread(_private_dir, parent)
    path = folder / _clean_filename(filename)
    try:
        await asyncio.to_thread(path.write_bytes, data)
        return await import_bank_statement(path, imported_by=imported_by, now=now)
    finally:
        await asyncio.to_thread(shutil.rmtree, folder, True)


def _private_dir(parent: Path) -> Path:
    parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return Path(tempfile.mkdtemp(dir=parent))


@dataclass(frozen=True, slots=True)
class ImportSummary:
    id: int
    filename: str
    imported_at: dt.datetime
    rows: int
    imported_by: str
    matched: int
    resolved_by_hand: int
    unmatched: int


async def recent_imports(*, limit: int = 10) -> list[ImportSummary]:
    rows = await BankImport.raw(
        """
        SELECT b.id, b.filename, b.imported_at, b.rows, coalesce(s.email, '') AS imported_by,
               count(l.id) FILTER (WHERE l.status = 'matched')::int AS matched,
               count(l.id) FILTER (WHERE l.status NOT IN ('matched', 'unmatched'))::int AS by_hand,
               count(l.id) FILTER (WHERE l.status = 'unmatched')::int AS unmatched
        FROM bank_import b
        LEFT JOIN staff_user s ON s.id = b.imported_by
        LEFT JOIN bank_line l ON l.bank_import = b.id
        GROUP BY b.id, s.email
        ORDER BY b.imported_at DESC, b.id DESC LIMIT {}
        """,
        limit,
    )
    return [
        ImportSummary(
            id=int(r["id"]),
            filename=str(r["filename"]),
            imported_at=r["imported_at"],
            rows=int(r["rows"]),
            imported_by=str(r["imported_by"]),
            matched=int(r["matched"]),
            resolved_by_hand=int(r["by_hand"]),
            unmatched=int(r["unmatched"]),
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class ImportLine:
    id: int
    line_no: int
    transaction_id: str
    booked_on: dt.date
    amount: int
    currency: str
    reference: str
    payer_name: str
    status: str
    account_reference: str
    match_rule: str
    match_note: str


@dataclass(frozen=True, slots=True)
class ImportDetail:
    result: BankImportResult
    lines: tuple[ImportLine, ...]  # the first IMPORT_LINES_SHOWN, unmatched first


async def import_detail(import_id: int, *, already_imported: bool = False) -> ImportDetail:
    result = await import_result(import_id, already_imported=already_imported)
    rows = await BankLine.raw(
        """
        SELECT id, line_no, transaction_id, booked_on, amount, currency, reference, payer_name,
               status, account, match_rule, match_note
        FROM bank_line WHERE bank_import = {}
        ORDER BY (status = 'unmatched') DESC, line_no LIMIT {}
        """,
        import_id,
        IMPORT_LINES_SHOWN,
    )
    return ImportDetail(
        result=result,
        lines=tuple(
            ImportLine(
                id=int(r["id"]),
                line_no=int(r["line_no"]),
                transaction_id=str(r["transaction_id"]),
                booked_on=r["booked_on"],
                amount=int(r["amount"]),
                currency=str(r["currency"]),
                reference=str(r["reference"]),
                payer_name=str(r["payer_name"]),
                status=str(r["status"]),
                account_reference=payment_reference(r["account"]) if r["account"] else "",
                match_rule=str(r["match_rule"]),
                match_note=str(r["match_note"]),
            )
            for r in rows
        ),
    )


# ---------------------------------------------------------------------------- reconciliation


@dataclass(frozen=True, slots=True)
class ReconciliationPage:
    summary: ReconciliationSummary
    online_backlog: tuple[CurrencyTotal, ...]

    @property
    def currencies(self) -> tuple[str, ...]:
        """Every currency the day's figures mention, sorted."""
        s = self.summary
        found = {t.currency for t in s.incoming} | {t.currency for t in s.bank_lines}
        return tuple(sorted(found))

    @property
    def waiting(self) -> tuple[tuple[str, int, int, int, int], ...]:
        """(currency, bank lines, bank amount, online payments, online amount) still unapplied."""
        bank = {t.currency: t for t in self.summary.backlog}
        online = {t.currency: t for t in self.online_backlog}
        rows = []
        for currency in sorted(set(bank) | set(online)):
            b, o = bank.get(currency), online.get(currency)
            rows.append(
                (
                    currency,
                    b.count if b else 0,
                    b.amount if b else 0,
                    o.count if o else 0,
                    o.amount if o else 0,
                )
            )
        return tuple(rows)


async def reconciliation_page(*, day: dt.date) -> ReconciliationPage:
    return ReconciliationPage(await reconciliation_summary(day=day), await online_backlog())


@dataclass(frozen=True, slots=True)
class ExportFile:
    filename: str
    content: str
    rows: int


async def export_for_accounting(
    *, date_from: dt.date, date_to: dt.date, actor: audit.Actor, now: dt.datetime
) -> ExportFile:
    """The accounting CSV (`reconciliation.export_csv`), recorded in the audit log."""
    content = await export_csv(date_from=date_from, date_to=date_to)
    rows = max(0, sum(1 for _ in csv.reader(io.StringIO(content, newline=""))) - 1)
    await audit.record(
        actor,
        "reconciliation.export",
        now=now,
        object_type="reconciliation",
        object_id=f"{date_from.isoformat()}..{date_to.isoformat()}",
        after={"from": date_from.isoformat(), "to": date_to.isoformat(), "rows": rows},
    )
    return ExportFile(
        filename=f"saldo-conciliacion-{date_from.isoformat()}-{date_to.isoformat()}.csv",
        content=content,
        rows=rows,
    )
