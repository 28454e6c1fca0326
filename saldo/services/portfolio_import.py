"""Portfolio import: `saldo import DEBTORS.csv INVOICES.csv [--creditor NAME]`.

An idempotent upsert of a creditor's debtors (by external_id) and invoices (by number), built for
millions of rows: the files are COPYed as text into UNLOGGED staging tables, checked with
set-based SQL, then written with a handful of bulk statements (SQL in `import_sql`).

How one import runs:

1. An `import_run` row is written on its own (autocommit), so it survives a failed import.
2. Both headers are read here: columns may come in any order; missing, unknown or repeated
   columns are refused.
3. The files are COPYed into schema `import_run_<id>` (see `import_sql`). The invoices file,
   in two halves when large, loads on connections of its own, and each part is summarised
   there (distinct amounts, typed lines, partial invoice heads); meanwhile the debtors file is
   COPYed and checked on the importing connection. A thread counts the physical lines of each
   part: a row count that differs means a quoted field held a line break (refused, so that a
   staged row number is always the physical line; header = line 1).
4. One transaction checks the debtors file and writes the debtors while the invoices still
   load, then checks the invoices file and writes accounts, invoices, lines and ledger entries.
   Nothing is committed unless both files are valid: any failure rolls everything back, so
   nothing of either file is imported. A bad debtors file is reported before anything about
   the invoices file.
5. The staging schema is dropped; the run row gets its outcome and counts.

Validation reports the lowest bad line of a file. When a line has several problems the first in
this order is reported: invoice number, debtor id, currency, issue date, due date, due before
issue, quantity, unit price, tax rate, rows of one invoice that disagree, unknown debtor, invoice
already imported for another debtor or currency. A file COPY cannot read (invalid UTF-8, wrong
field count, unterminated quote) is rescanned in Python to find the first such line; the lines
before it are then staged again and checked, so a lower bad line still wins.

Writes: new rows are plain INSERTs and changed rows UPDATEs (an advisory lock per creditor
serialises imports); unchanged rows are not touched, so re-importing the same files writes
nothing. An invoice's lines are replaced only when their digest changed. A new invoice posts
one `charge` (key `import:invoice:<invoice id>`); a changed total posts one `adjustment` (key
`import:invoice:<invoice id>:run:<run id>`) for the difference between the new total and what
import entries already hold, so import entries of an invoice always sum to its total.

Trusted inserts: when the database role may set `session_replication_role` (superuser, or
`GRANT SET ON PARAMETER session_replication_role`) and the target tables have no INSERT trigger
of their own, the bulk INSERTs run with it set to `replica`, which skips the per-row foreign key
triggers (about half of the write time at 10M lines). Every id those INSERTs reference was just
written or locked by this transaction, and stored parent rows gaining children are key-share
locked first, exactly what the skipped checks would have done. Otherwise the import runs with
the checks, only slower.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import itertools
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from saldo import money
from saldo.db import DB
from saldo.errors import ImportFileError, ValidationFailed
from saldo.services import import_sql as q
from saldo.tables import Creditor, ImportRun

Progress = Callable[[str], None]

#: Invoices files larger than this are COPYed in two halves on two connections.
SPLIT_BYTES = 32 * 1024 * 1024
#: Memory for the big hash aggregates and joins (2.5M invoices need about 300 MB).
WORK_MEM = "256MB"
_CREDITOR_NAME_MAX = 200  # Creditor.name
_TRUSTED_TABLES = ("debtor", "account", "invoice", "invoice_line", "ledger_entry")
_COPY_LINE = re.compile(r"\bline (\d+)")


@dataclass(frozen=True)
class ImportResult:
    """What one import did (the counts of `tasks.import_portfolio`'s JSON)."""

    run_id: int
    creditor_id: int
    debtors_inserted: int
    debtors_updated: int
    debtors_unchanged: int
    invoices_inserted: int
    invoices_updated: int
    invoices_unchanged: int
    lines_written: int
    accounts_created: int
    ledger_entries_posted: int
    seconds: float
    foreign_key_checks_skipped: bool = False

    def summary(self) -> str:
        return (
            f"import #{self.run_id} done in {self.seconds:.1f} s: "
            f"debtors {self.debtors_inserted:,} new, {self.debtors_updated:,} updated, "
            f"{self.debtors_unchanged:,} unchanged; "
            f"invoices {self.invoices_inserted:,} new, {self.invoices_updated:,} updated, "
            f"{self.invoices_unchanged:,} unchanged; {self.lines_written:,} lines written, "
            f"{self.accounts_created:,} accounts opened, "
            f"{self.ledger_entries_posted:,} ledger entries posted"
        )


async def import_portfolio(
    debtors_csv: Path,
    invoices_csv: Path,
    *,
    creditor: str = "Saldo Demo",
    progress: Progress | None = None,
) -> ImportResult:
    """Import a debtors file and an invoices file for `creditor` (created when missing).

    Raises `ImportFileError(file, line, reason)` for the first bad line; nothing is imported then.
    """
    started = time.perf_counter()
    say = progress or _quiet
    creditor = creditor.strip()
    if not creditor or len(creditor) > _CREDITOR_NAME_MAX:
        raise ValidationFailed("creditor name must be 1 to 200 characters", field="creditor")
    run_id = await _open_run(creditor, debtors_csv, invoices_csv)
    try:
        result = await _import(run_id, creditor, debtors_csv, invoices_csv, say, started)
    except ImportFileError as exc:
        await _close_run(run_id, "failed", error=str(exc))
        say(f"failed: {exc}")
        raise
    except BaseException as exc:
        await asyncio.shield(_close_run(run_id, "failed", error=f"{type(exc).__name__}: {exc}"))
        raise
    await _close_run(run_id, "done", result=result)
    say(f"done in {result.seconds:.1f} s")
    return result


def _quiet(message: str) -> None:
    return None


# ---------------------------------------------------------------------------- the run row


async def _open_run(creditor: str, debtors_csv: Path, invoices_csv: Path) -> int:
    known = await Creditor.select(Creditor.id).where(Creditor.name == creditor).first()
    run = ImportRun(
        creditor=known["id"] if known else None,
        debtors_file=str(debtors_csv),
        invoices_file=str(invoices_csv),
        status="running",
    )
    await run.save()
    return int(run.id)


async def _close_run(
    run_id: int, status: str, *, error: str = "", result: ImportResult | None = None
) -> None:
    values: dict[Any, Any] = {
        ImportRun.status: status,
        ImportRun.error: error,
        ImportRun.finished_at: dt.datetime.now(dt.UTC),
    }
    if result is not None:
        values[ImportRun.creditor] = result.creditor_id
    await ImportRun.update(values).where(ImportRun.id == run_id)


async def _count_run_rows(run_id: int, debtors: int, lines: int) -> None:
    await ImportRun.update(
        {ImportRun.debtors_rows: debtors, ImportRun.invoice_lines_rows: lines}
    ).where(ImportRun.id == run_id)


# ---------------------------------------------------------------------------- files


@dataclass
class _Chunk:
    table: str
    start: int
    end: int
    header: bool
    rows: int = 0
    newlines: int = 0
    copy_error: tuple[int, str] | None = None  # (COPY's line number in this chunk, message)


@dataclass
class _File:
    """One CSV file on its way into a staging table (or a view over several chunk tables)."""

    path: Path
    label: str  # "debtors" | "invoices", for progress messages
    relation: str  # debtor_rows | line_rows
    expected: tuple[str, ...]
    columns: list[str] = field(default_factory=list)  # in file order
    header_error: ImportFileError | None = None
    chunks: list[_Chunk] = field(default_factory=list)
    ends_with_newline: bool = True
    counted: asyncio.Event = field(default_factory=asyncio.Event)
    problem: tuple[int, str] | None = None  # found while loading (debtors)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def rows(self) -> int:
        return sum(c.rows for c in self.chunks)

    @property
    def copy_error(self) -> tuple[int, str] | None:
        """The lowest file line COPY refused, with its message (COPY counts a chunk's lines)."""
        errors, before = [], 0
        for chunk in self.chunks:
            if chunk.copy_error is not None:
                line, message = chunk.copy_error
                errors.append((before + line if line else 0, message))
            before += chunk.newlines
        return min(errors) if errors else None

    def offsets(self) -> list[tuple[str, int]]:
        """Per chunk table, what turns its row number into the file line."""
        result, before = [], 0
        for chunk in self.chunks:
            result.append((chunk.table, before + (1 if chunk.header else 0)))
            before += chunk.newlines
        return result

    def offset(self, chunk: _Chunk) -> int:
        return dict(self.offsets())[chunk.table]

    def line_breaks_in_fields(self) -> bool:
        """True when the copied rows are not one per physical line."""
        lines = sum(c.newlines for c in self.chunks) - 1  # minus the header line
        if not self.ends_with_newline:
            lines += 1
        return self.rows != lines


def _read_header(path: Path, expected: tuple[str, ...]) -> tuple[list[str], ImportFileError | None]:
    name = path.name
    with path.open("rb") as fh:
        raw = fh.readline()
    if not raw.strip():
        return [], ImportFileError(name, 1, "empty file (expected a header line)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return [], ImportFileError(name, 1, "invalid UTF-8 in the header")
    columns = [c.strip() for c in next(csv.reader([text.rstrip("\r\n")]))]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    missing = [c for c in expected if c not in columns]
    unknown = [c for c in columns if c not in expected]
    if repeated:
        return columns, ImportFileError(name, 1, f"repeated column {', '.join(repeated)}")
    if missing:
        return columns, ImportFileError(name, 1, f"missing column {', '.join(missing)}")
    if unknown:
        return columns, ImportFileError(name, 1, f"unknown column {', '.join(unknown)}")
    return columns, None


def _split(path: Path, parts: int) -> list[tuple[int, int]]:
    """Byte ranges that cut the file after line breaks, about equal in size."""
    size = path.stat().st_size
    bounds = [0]
    with path.open("rb") as fh:
        for i in range(1, parts):
            fh.seek(size * i // parts)
            fh.readline()
            cut = fh.tell()
            if bounds[-1] < cut < size:
                bounds.append(cut)
    bounds.append(size)
    return list(itertools.pairwise(bounds))


class _ByteRange:
    """A file-like view of `[start, end)` of a file, for COPY."""

    def __init__(self, path: Path, start: int, end: int) -> None:
        self._fh = path.open("rb")
        self._fh.seek(start)
        self._left = end - start

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size < 0 else min(size, self._left)
        data = self._fh.read(size)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._fh.close()


def _count_newlines(path: Path, chunks: Sequence[_Chunk]) -> bool:
    """Count line breaks per chunk; return whether the file ends with one."""
    last = b"\n"
    with path.open("rb") as fh:
        for chunk in chunks:
            fh.seek(chunk.start)
            left, count = chunk.end - chunk.start, 0
            while left > 0:
                block = fh.read(min(left, 1 << 24))
                if not block:
                    break
                count += block.count(b"\n")
                left -= len(block)
                last = block[-1:]
            chunk.newlines = count
    return last == b"\n"


def _offset_after_line(path: Path, line: int) -> int:
    """Byte offset just past physical line `line` (0 for line 0)."""
    seen, offset = 0, 0
    with path.open("rb") as fh:
        while seen < line:
            block = fh.read(1 << 24)
            if not block:
                return offset
            count = block.count(b"\n")
            if seen + count < line:
                seen += count
                offset += len(block)
                continue
            at = -1
            for _ in range(line - seen):
                at = block.index(b"\n", at + 1)
            return offset + at + 1
    return offset


class _Structural(Exception):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


def _first_structural_error(path: Path, width: int) -> tuple[int, str] | None:
    """Read the file as CSV in Python (slow; used only after COPY refused it)."""
    where = [0]

    def lines() -> Any:
        with path.open("rb") as fh:
            for number, raw in enumerate(fh, start=1):
                where[0] = number
                if b"\x00" in raw:
                    raise _Structural(number, "NUL byte")
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise _Structural(
                        number,
                        f"invalid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})",
                    ) from None

    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # COPY takes fields up to 1 GB
    reader = csv.reader(lines())
    try:
        next(reader, None)
        while True:
            start = reader.line_num + 1
            row = next(reader, None)
            if row is None:
                return None
            if reader.line_num != start:
                return start, "line break inside a quoted field (or a quote never closed)"
            if not row:
                return start, "empty line"
            if len(row) != width:
                return start, f"expected {width} fields, found {len(row)}"
    except _Structural as exc:
        return exc.line, exc.reason
    except csv.Error as exc:
        return where[0], f"malformed CSV ({exc})"


# ---------------------------------------------------------------------------- staging


async def _copy_chunk(conn: Any, s: str, file: _File, chunk: _Chunk) -> None:
    """Create the chunk's table and COPY its bytes, in one (sub)transaction so FREEZE applies."""
    source = _ByteRange(file.path, chunk.start, chunk.end)
    try:
        async with conn.transaction():
            await conn.execute(q.create_chunk(s, chunk.table, file.columns))
            status = await conn.copy_to_table(
                chunk.table,
                schema_name=s,
                source=source,
                columns=file.columns,
                format="csv",
                header=chunk.header,
                force_not_null=file.columns,
                encoding="utf8",
                freeze=True,
            )
        chunk.rows = _count(status)
        await conn.execute(f"ANALYZE {s}.{chunk.table}")
    except asyncpg.PostgresError as exc:
        if not str(getattr(exc, "sqlstate", "")).startswith("22"):  # not a data exception
            raise
        match = _COPY_LINE.search(str(getattr(exc, "context", "") or ""))
        chunk.copy_error = (int(match.group(1)) if match else 0, str(exc))
    finally:
        source.close()


async def _load(conns: Sequence[Any], s: str, file: _File, say: Progress) -> None:
    """COPY and summarise a file's chunks, one connection each, while a thread counts lines.

    A debtors file is checked right away; an invoices chunk gets its distinct amounts, typed
    lines and partial invoice heads (see `import_sql`), so that this per-row work runs on
    several connections at once.
    """

    async def work(conn: Any, chunk: _Chunk) -> None:
        await _copy_chunk(conn, s, file, chunk)
        if chunk.copy_error is None:
            await file.counted.wait()
            await _summarise(conn, s, file, chunk)

    async def count() -> None:
        file.ends_with_newline = await asyncio.to_thread(_count_newlines, file.path, file.chunks)
        file.counted.set()

    await asyncio.gather(*(work(c, k) for c, k in zip(conns, file.chunks, strict=True)), count())
    if file.copy_error is None:
        if file.relation == "line_rows":
            await _create_line_views(conns[0], s, file)
        say(f"{file.label}: {file.rows:,} rows copied")


async def _create_line_views(conn: Any, s: str, file: _File) -> None:
    await conn.execute(q.create_rows_view(s, file.relation, file.offsets(), file.columns))
    tables = [c.table for c in file.chunks]
    typed = await conn.fetchval(
        "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename = ANY($2::text[])",
        s,
        [f"{t}_typed" for t in tables],
    )
    if typed == len(tables):
        await conn.execute(f"DROP VIEW IF EXISTS {s}.line_typed")
        await conn.execute(q.create_typed_view(s, tables))


async def _summarise(conn: Any, s: str, file: _File, chunk: _Chunk) -> None:
    if file.relation == "debtor_rows":  # a single chunk
        await conn.execute(q.create_rows_view(s, file.relation, file.offsets(), file.columns))
        if not file.line_breaks_in_fields():
            file.problem = await _debtor_problem(conn, s)
        return
    await conn.execute(q.summarise_amounts(s, chunk.table))
    offset = file.offset(chunk)
    if await conn.fetchval(q.amounts_are_decimals(s, chunk.table)):
        await conn.execute(q.type_lines(s, chunk.table, offset, money.EXPONENTS))
        await conn.execute(q.summarise_invoices(s, chunk.table, typed=True))
    else:
        await conn.execute(q.summarise_invoices(s, chunk.table, typed=False, offset=offset))


def _plan_chunks(file: _File, parts: int) -> None:
    ranges = _split(file.path, parts)
    file.chunks = [
        _Chunk(table=f"{file.relation}_{i}", start=a, end=b, header=(i == 0))
        for i, (a, b) in enumerate(ranges)
    ]


async def _restage_prefix(conn: Any, s: str, file: _File, lines: int) -> None:
    """Stage and summarise only the file's first `lines` physical lines (header included).

    Runs on the importing connection, inside its transaction (a savepoint around the COPY).
    """
    await conn.execute(f"DROP VIEW IF EXISTS {s}.{file.relation}")
    end = await asyncio.to_thread(_offset_after_line, file.path, lines)
    chunk = _Chunk(table=f"{file.relation}_prefix", start=0, end=end, header=True)
    file.chunks = [chunk]
    await _copy_chunk(conn, s, file, chunk)
    chunk.newlines = lines
    if chunk.copy_error is None:
        if file.relation == "line_rows":
            await _summarise(conn, s, file, chunk)
            await _create_line_views(conn, s, file)
        else:
            await conn.execute(q.create_rows_view(s, file.relation, file.offsets(), file.columns))


# ---------------------------------------------------------------------------- validation


def _first(found: list[tuple[int, int, str]]) -> tuple[int, str] | None:
    if not found:
        return None
    line, _, reason = min(found)
    return line, reason


async def _add(
    found: list[tuple[int, int, str]], order: int, conn: Any, sql: str, *args: Any
) -> None:
    row = await conn.fetchrow(sql, *args)
    if row is not None and row[0] is not None:
        found.append((int(row[0]), order, str(row[1])))


async def _debtor_problem(conn: Any, s: str) -> tuple[int, str] | None:
    found: list[tuple[int, int, str]] = []
    await _add(found, 1, conn, q.debtor_row_problem(s))
    await _add(found, 2, conn, q.debtor_duplicate(s))
    return _first(found)


async def _invoice_problem(
    conn: Any, s: str, creditor_id: int, chunks: Sequence[str]
) -> tuple[int, str] | None:
    found: list[tuple[int, int, str]] = []
    for sql in (q.bad_amounts(s, chunks), *q.create_invoice_heads(s, chunks)):
        await conn.execute(sql)
    repeated = await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {s}.repeated_number)")
    if repeated:
        for sql in q.merge_repeated_heads(s):
            await conn.execute(sql)
    await conn.execute(q.create_date_values(s))
    await conn.execute(f"ANALYZE {s}.invoice_head, {s}.date_value, {s}.bad_amount")
    if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {s}.bad_amount)"):
        await _add(found, 7, conn, q.first_bad_amount(s))
    await _add(found, 1, conn, q.invoice_head_problem(s))
    if repeated and await conn.fetchval(q.invoice_split_exists(s)):
        await _add(found, 11, conn, q.invoice_disagreement(s))
    await conn.execute(q.create_pairs(s), creditor_id)
    await conn.execute(f"ANALYZE {s}.pair")
    await _add(found, 12, conn, q.unknown_debtor(s))
    await conn.execute(q.create_invoice_match(s), creditor_id)
    await conn.execute(f"ANALYZE {s}.invoice_match")
    await _add(found, 13, conn, q.invoice_moves(s))
    return _first(found)


async def _structure_problem(
    conn: Any, s: str, file: _File, check: Callable[[], Any]
) -> ImportFileError:
    """The first bad line of a file COPY refused (or whose rows are not its lines)."""
    found = await asyncio.to_thread(_first_structural_error, file.path, len(file.columns))
    if found is None and file.copy_error is not None and file.copy_error[0] > 0:
        found = file.copy_error
    if found is None and file.line_breaks_in_fields():
        line = await conn.fetchval(q.line_with_field_break(s, file.relation, file.columns))
        found = (int(line), "line break inside a quoted field") if line else None
    if found is None:
        reason = file.copy_error[1] if file.copy_error else "unsupported line breaks"
        return ImportFileError(file.name, None, f"cannot be read as CSV: {reason}")
    line, reason = found
    if line > 2:
        await _restage_prefix(conn, s, file, line - 1)
        if file.copy_error is None:
            earlier = await check()
            if earlier is not None and earlier[0] < line:
                return ImportFileError(file.name, *earlier)
    return ImportFileError(file.name, line, reason)


# ---------------------------------------------------------------------------- writes


@dataclass
class _Writes:
    debtors_inserted: int = 0
    debtors_updated: int = 0
    invoices_inserted: int = 0
    invoices_updated: int = 0
    invoices_total: int = 0
    lines_written: int = 0
    accounts_created: int = 0
    ledger_entries_posted: int = 0


def _count(status: str) -> int:
    return int(status.split()[-1])


class _Writer:
    def __init__(self, conn: Any, s: str, creditor_id: int, run_id: int, trusted: bool) -> None:
        self.conn, self.s, self.creditor_id, self.run_id = conn, s, creditor_id, run_id
        self.trusted = trusted

    async def run(self, sql: str, *args: Any) -> str:
        return str(await self.conn.execute(sql, *args))

    async def insert(self, sql: str, *args: Any) -> int:
        """A bulk INSERT, without per-row foreign key triggers when trusted (see module doc)."""
        if self.trusted:
            await self.conn.execute("SET LOCAL session_replication_role = replica")
        status = await self.conn.execute(sql, *args)
        if self.trusted:
            await self.conn.execute("SET LOCAL session_replication_role = origin")
        return _count(status)

    async def analyze(self, table: str) -> None:
        await self.conn.execute(f"ANALYZE {self.s}.{table}")


async def _write_debtors(w: _Writer, out: _Writes, say: Progress) -> None:
    s, c = w.s, w.creditor_id
    await w.run(q.create_debtor_plan(s), c)
    out.debtors_inserted = await w.insert(q.insert_new_debtors(s), c)
    out.debtors_updated = _count(await w.run(q.update_changed_debtors(s)))
    say(f"debtors: {out.debtors_inserted:,} new, {out.debtors_updated:,} updated")


async def _write_accounts(w: _Writer, out: _Writes, say: Progress) -> None:
    s, c = w.s, w.creditor_id
    await w.run(q.fill_new_debtor_ids(s), c)
    if w.trusted:
        await w.run(q.lock_stored_debtors(s))
    out.accounts_created = await w.insert(q.insert_new_accounts(s), c)
    say(f"accounts: {out.accounts_created:,} opened")


async def _write_invoices(w: _Writer, out: _Writes, contiguous: bool, say: Progress) -> None:
    s, c = w.s, w.creditor_id
    sequence = await w.conn.fetchval("SELECT pg_get_serial_sequence('invoice', 'id')")
    await w.run(q.create_invoice_plan(s, str(sequence)))
    await w.analyze("invoice_plan")
    out.invoices_total = int(await w.conn.fetchval(f"SELECT count(*) FROM {s}.invoice_match"))
    if w.trusted:
        await w.run(q.lock_stored_accounts(s))
    out.invoices_inserted = await w.insert(q.insert_new_invoices(s), c)
    out.invoices_updated = _count(await w.run(q.update_changed_invoices(s)))
    say(f"invoices: {out.invoices_inserted:,} new, {out.invoices_updated:,} updated")
    await w.run(q.delete_replaced_lines(s))
    out.lines_written = await w.insert(q.insert_lines(s, contiguous=contiguous))
    say(f"invoice lines: {out.lines_written:,} written")


async def _post_ledger(w: _Writer, out: _Writes, say: Progress) -> None:
    s = w.s
    basis = json.dumps({"import_run": w.run_id})
    out.ledger_entries_posted = await w.insert(q.post_charges(s), basis)
    out.ledger_entries_posted += await w.insert(q.post_adjustments(s), w.run_id)
    say(f"ledger: {out.ledger_entries_posted:,} entries posted")


# ---------------------------------------------------------------------------- the import


async def _import(
    run_id: int,
    creditor: str,
    debtors_csv: Path,
    invoices_csv: Path,
    say: Progress,
    started: float,
) -> ImportResult:
    debtors = _File(debtors_csv, "debtors", "debtor_rows", q.DEBTOR_COLUMNS)
    invoices = _File(invoices_csv, "invoices", "line_rows", q.INVOICE_COLUMNS)
    for file in (debtors, invoices):
        file.columns, file.header_error = _read_header(file.path, file.expected)
    if debtors.header_error:
        raise debtors.header_error

    s = f"import_run_{run_id}"
    _plan_chunks(debtors, 1)
    _plan_chunks(invoices, 2 if invoices.path.stat().st_size >= SPLIT_BYTES else 1)
    loaders = 0 if invoices.header_error else len(invoices.chunks)
    conns = [await DB.get_new_connection() for _ in range(1 + loaders)]
    main, loading = conns[0], None
    try:
        for conn in conns:
            await conn.execute(f"SET work_mem = '{WORK_MEM}'")
        await _drop_stale_schemas(main)
        await main.execute(q.create_schema(s))
        for sql in q.create_reference_tables(s):
            await main.execute(sql)
        codes = sorted(money.EXPONENTS)
        await main.execute(q.fill_currencies(s), codes, [money.EXPONENTS[c] for c in codes])
        await main.execute(f"ANALYZE {s}.currency, {s}.time_zone")

        # The invoices load on their own connections while the debtors are checked and written.
        if loaders:
            loading = asyncio.ensure_future(_load(conns[1:], s, invoices, say))
        await _load([main], s, debtors, say)
        async with main.transaction():
            outcome = await _validate_and_write(main, s, run_id, creditor, debtors, invoices, say)
            if loading is not None:
                await loading
            await _count_run_rows(run_id, debtors.rows, max(invoices.rows, 0))
            await _validate_and_write_invoices(main, s, outcome, invoices, say)
    finally:
        if loading is not None and not loading.done():  # the debtors file failed first
            loading.cancel()
            await asyncio.gather(loading, return_exceptions=True)
            for conn in conns[1:]:
                conn.terminate()  # it may be stuck in a cancelled COPY, holding locks
        try:
            await main.execute(q.drop_schema(s))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            pass  # a later import drops stale staging schemas
        finally:
            for conn in conns:
                if not conn.is_closed():
                    await conn.close()
    out = outcome.writes
    return ImportResult(
        run_id=run_id,
        creditor_id=outcome.creditor_id,
        debtors_inserted=out.debtors_inserted,
        debtors_updated=out.debtors_updated,
        debtors_unchanged=debtors.rows - out.debtors_inserted - out.debtors_updated,
        invoices_inserted=out.invoices_inserted,
        invoices_updated=out.invoices_updated,
        invoices_unchanged=out.invoices_total - out.invoices_inserted - out.invoices_updated,
        lines_written=out.lines_written,
        accounts_created=out.accounts_created,
        ledger_entries_posted=out.ledger_entries_posted,
        seconds=round(time.perf_counter() - started, 3),
        foreign_key_checks_skipped=outcome.writer.trusted,
    )


async def _drop_stale_schemas(conn: Any) -> None:
    for row in await conn.fetch(q.STALE_SCHEMAS):
        await conn.execute(q.drop_schema(f'"{row[0]}"'))


async def _tune(conn: Any) -> None:
    for setting in (
        "SET LOCAL synchronous_commit = off",
        "SET LOCAL DateStyle = 'ISO, YMD'",
    ):
        await conn.execute(setting)


async def _creditor_id(conn: Any, name: str) -> int:
    await conn.execute(
        "INSERT INTO creditor (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", name
    )
    creditor_id = int(
        await conn.fetchval("SELECT id FROM creditor WHERE name = $1 FOR KEY SHARE", name)
    )
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtext('saldo.portfolio_import'), $1)", creditor_id
    )
    return creditor_id


async def _may_skip_fk_triggers(conn: Any) -> bool:
    """Whether bulk INSERTs may run as `session_replication_role = replica` (see module doc)."""
    user_triggers = await conn.fetchval(
        """
        SELECT count(*) FROM pg_trigger
        WHERE tgrelid = ANY($1::regclass[]) AND NOT tgisinternal AND (tgtype & 4) <> 0
        """,
        list(_TRUSTED_TABLES),
    )
    if user_triggers:
        return False
    try:
        async with conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")
            await conn.execute("SET LOCAL session_replication_role = origin")
    except asyncpg.InsufficientPrivilegeError:
        return False
    return True


@dataclass
class _Outcome:
    creditor_id: int
    writer: _Writer
    writes: _Writes


async def _validate_and_write(
    main: Any,
    s: str,
    run_id: int,
    creditor: str,
    debtors: _File,
    invoices: _File,
    say: Progress,
) -> _Outcome:
    """In the import transaction: check the debtors file and write the debtors.

    The invoices file is still loading meanwhile; if it turns out bad the transaction rolls
    back and nothing of either file is kept.
    """
    await _tune(main)
    creditor_id = await _creditor_id(main, creditor)

    async def debtor_check() -> tuple[int, str] | None:
        return await _debtor_problem(main, s)

    if debtors.copy_error or debtors.line_breaks_in_fields():
        raise await _structure_problem(main, s, debtors, debtor_check)
    if debtors.problem:
        raise ImportFileError(debtors.name, *debtors.problem)
    w = _Writer(main, s, creditor_id, run_id, await _may_skip_fk_triggers(main))
    out = _Writes()
    await _write_debtors(w, out, say)
    return _Outcome(creditor_id, w, out)


async def _validate_and_write_invoices(
    main: Any, s: str, outcome: _Outcome, invoices: _File, say: Progress
) -> None:
    """In the import transaction: check the invoices file, then write everything else."""

    async def invoice_check() -> tuple[int, str] | None:
        chunks = [c.table for c in invoices.chunks]
        return await _invoice_problem(main, s, outcome.creditor_id, chunks)

    if invoices.header_error:
        raise invoices.header_error
    if invoices.copy_error or invoices.line_breaks_in_fields():
        raise await _structure_problem(main, s, invoices, invoice_check)
    problem = await invoice_check()
    if problem:
        raise ImportFileError(invoices.name, *problem)
    say("both files are valid")

    contiguous = bool(
        await main.fetchval(
            f"SELECT coalesce(bool_and(last_line - first_line + 1 = line_count), true) "
            f"FROM {s}.invoice_head"
        )
    )
    w, out = outcome.writer, outcome.writes
    await _write_accounts(w, out, say)
    await _write_invoices(w, out, contiguous, say)
    await _post_ledger(w, out, say)
