"""The portfolio import against real PostgreSQL: totals, idempotency, changes, bad files."""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from saldo import money
from saldo.errors import ImportFileError
from saldo.services import portfolio_import
from saldo.services.portfolio_import import ImportResult, import_portfolio

DEBTORS_HEADER = (
    "external_id,name,document_type,document_number,email,phone,whatsapp,language,timezone,country"
)
INVOICES_HEADER = (
    "invoice_number,debtor_external_id,currency,issue_date,due_date,"
    "description,quantity,unit_price,tax_rate"
)
TABLES = ("creditor", "debtor", "account", "invoice", "invoice_line", "ledger_entry")

DEBTORS = [
    "D1,Muñoz Ibáñez,DNI,27345678,munoz@example.com,+5491144556677,,es,"
    "America/Argentina/Buenos_Aires,AR",
    "D2,José Núñez Peña,RUT,15.678.901-2,jose@example.cl,+56991234567,+56991234567,es,"
    "America/Santiago,CL",
    'D3,"Panadería La Espiga, S.R.L.",CUIT,30-71234567-1,,,,,,',
]
INVOICES = [
    # F-1 (ARS): 1 × 100.00 + 21 % = 121.00; 3 × 0.015 = 0.045 -> 0.05 (half-up, not half-even);
    # 2.5 × 10.01 × 1.21 = 30.28025 -> 30.28. Total 151.33.
    "F-1,D1,ARS,2026-01-05,2026-02-04,Señal de televisión,1,100.00,21",
    "F-1,D1,ARS,2026-01-05,2026-02-04,Cargo por reconexión,3,0.015,0",
    "F-1,D1,ARS,2026-01-05,2026-02-04,Decodificador,2.5,10.01,21",
    # F-2 (CLP, no decimals): 15990 × 1.21 = 19347.9 -> 19348; 2 × 995 × 1.19 = 2368.1 -> 2368.
    "F-2,D2,CLP,2026-01-10,2026-02-09,Plan hogar fibra,1,15990,21",
    "F-2,D2,CLP,2026-01-10,2026-02-09,Instalación,2,995,19",
    # F-3 (USD) for D1: a second account for the same debtor.
    "F-3,D1,USD,2026-01-15,2026-01-15,Licencia de software,1,49.99,0",
    # F-4 (ARS) for D3, zero total: no ledger entry.
    "F-4,D3,ARS,2026-01-20,2026-02-19,Bonificación,1,0,21",
]
EXPECTED_TOTALS = {"F-1": 15133, "F-2": 21716, "F-3": 4999, "F-4": 0}


# ---------------------------------------------------------------------------- helpers


def _creditor() -> str:
    return f"Acreedor {secrets.token_hex(4)}"


def _write(
    tmp_path: Path,
    debtors: list[str],
    invoices: list[str],
    *,
    raw_debtors: bytes | None = None,
    raw_invoices: bytes | None = None,
) -> tuple[Path, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    debtors_csv, invoices_csv = tmp_path / "debtors.csv", tmp_path / "invoices.csv"
    debtors_csv.write_bytes(
        raw_debtors
        if raw_debtors is not None
        else ("\n".join([DEBTORS_HEADER, *debtors]) + "\n").encode()
    )
    invoices_csv.write_bytes(
        raw_invoices
        if raw_invoices is not None
        else ("\n".join([INVOICES_HEADER, *invoices]) + "\n").encode()
    )
    return debtors_csv, invoices_csv


async def _fetch(db: Any, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(db.database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def _counts(db: Any) -> dict[str, int]:
    rows = await _fetch(db, " UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in TABLES))
    return {r[0]: r[1] for r in rows}


async def _snapshot(db: Any, creditor_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """Every row the import owns for one creditor, ids and timestamps included."""
    queries = {
        "debtor": "SELECT * FROM debtor WHERE creditor = $1 ORDER BY id",
        "account": "SELECT * FROM account WHERE creditor = $1 ORDER BY id",
        "invoice": "SELECT * FROM invoice WHERE creditor = $1 ORDER BY id",
        "invoice_line": (
            "SELECT l.* FROM invoice_line l JOIN invoice i ON i.id = l.invoice "
            "WHERE i.creditor = $1 ORDER BY l.id"
        ),
        "ledger_entry": (
            "SELECT e.* FROM ledger_entry e JOIN account a ON a.id = e.account "
            "WHERE a.creditor = $1 ORDER BY e.id"
        ),
    }
    return {
        name: [tuple(r.values()) for r in await _fetch(db, sql, creditor_id)]
        for name, sql in queries.items()
    }


async def _invoices(db: Any, creditor_id: int) -> dict[str, asyncpg.Record]:
    rows = await _fetch(db, "SELECT * FROM invoice WHERE creditor = $1", creditor_id)
    return {r["number"]: r for r in rows}


async def _ledger_sum(db: Any, invoice_id: int) -> int:
    rows = await _fetch(
        db,
        "SELECT coalesce(sum(amount), 0) AS s FROM ledger_entry "
        "WHERE invoice = $1 AND idempotency_key LIKE 'import:%'",
        invoice_id,
    )
    return int(rows[0]["s"])


# ---------------------------------------------------------------------------- happy paths


async def test_small_portfolio_imports_with_exact_totals(db, tmp_path):
    creditor = _creditor()
    messages: list[str] = []
    result = await import_portfolio(
        *_write(tmp_path, DEBTORS, INVOICES), creditor=creditor, progress=messages.append
    )

    assert (result.debtors_inserted, result.invoices_inserted, result.lines_written) == (3, 4, 7)
    assert result.accounts_created == 4  # D1 ARS, D1 USD, D2 CLP, D3 ARS
    assert result.ledger_entries_posted == 3  # F-4 totals zero: no entry
    assert "debtors: 3 rows copied" in messages and "invoices: 7 rows copied" in messages

    invoices = await _invoices(db, result.creditor_id)
    assert {n: r["total"] for n, r in invoices.items()} == EXPECTED_TOTALS
    assert invoices["F-2"]["currency"] == "CLP"
    assert invoices["F-1"]["issue_date"] == dt.date(2026, 1, 5)
    assert invoices["F-1"]["due_date"] == dt.date(2026, 2, 4)

    lines = await _fetch(
        db,
        "SELECT i.number, i.currency, l.* FROM invoice_line l JOIN invoice i ON i.id = l.invoice "
        "WHERE i.creditor = $1 ORDER BY i.number, l.position",
        result.creditor_id,
    )
    assert [(r["number"], r["position"], r["total"]) for r in lines] == [
        ("F-1", 1, 12100),
        ("F-1", 2, 5),
        ("F-1", 3, 3028),
        ("F-2", 1, 19348),
        ("F-2", 2, 2368),
        ("F-3", 1, 4999),
        ("F-4", 1, 0),
    ]
    assert lines[1]["quantity"] == Decimal("3") and lines[1]["unit_price"] == Decimal("0.015")
    for r in lines:  # the SQL agrees with the money module
        assert r["total"] == money.line_total(
            r["quantity"], r["unit_price"], r["tax_rate"], r["currency"]
        )

    entries = await _fetch(
        db,
        "SELECT e.*, i.number FROM ledger_entry e JOIN invoice i ON i.id = e.invoice "
        "WHERE i.creditor = $1 ORDER BY i.number",
        result.creditor_id,
    )
    assert [(e["number"], e["kind"], e["amount"], e["currency"]) for e in entries] == [
        ("F-1", "charge", 15133, "ARS"),
        ("F-2", "charge", 21716, "CLP"),
        ("F-3", "charge", 4999, "USD"),
    ]
    first = entries[0]
    assert first["idempotency_key"] == f"import:invoice:{invoices['F-1']['id']}"
    assert first["description"] == "Factura F-1"
    assert first["effective_date"] == dt.date(2026, 1, 5)
    assert first["account"] == invoices["F-1"]["account"]

    accounts = await _fetch(
        db,
        "SELECT d.external_id, a.currency FROM account a JOIN debtor d ON d.id = a.debtor "
        "WHERE a.creditor = $1 ORDER BY 1, 2",
        result.creditor_id,
    )
    assert [tuple(a.values()) for a in accounts] == [
        ("D1", "ARS"),
        ("D1", "USD"),
        ("D2", "CLP"),
        ("D3", "ARS"),
    ]

    runs = await _fetch(db, "SELECT * FROM import_run WHERE id = $1", result.run_id)
    assert runs[0]["status"] == "done" and runs[0]["creditor"] == result.creditor_id
    assert (runs[0]["debtors_rows"], runs[0]["invoice_lines_rows"]) == (3, 7)
    assert runs[0]["finished_at"] is not None


async def test_accents_and_enye_round_trip(db, tmp_path):
    result = await import_portfolio(*_write(tmp_path, DEBTORS, INVOICES), creditor=_creditor())
    debtors = await _fetch(
        db, "SELECT external_id, name FROM debtor WHERE creditor = $1", result.creditor_id
    )
    assert {r["external_id"]: r["name"] for r in debtors} == {
        "D1": "Muñoz Ibáñez",
        "D2": "José Núñez Peña",
        "D3": "Panadería La Espiga, S.R.L.",
    }
    descriptions = await _fetch(
        db,
        "SELECT l.description FROM invoice_line l JOIN invoice i ON i.id = l.invoice "
        "WHERE i.creditor = $1 AND i.number = 'F-1' ORDER BY l.position",
        result.creditor_id,
    )
    assert [r["description"] for r in descriptions] == [
        "Señal de televisión",
        "Cargo por reconexión",
        "Decodificador",
    ]


async def test_empty_optional_fields_take_the_defaults(db, tmp_path):
    result = await import_portfolio(*_write(tmp_path, DEBTORS, INVOICES), creditor=_creditor())
    rows = await _fetch(
        db,
        "SELECT language, timezone, country, email FROM debtor "
        "WHERE creditor = $1 AND external_id = 'D3'",
        result.creditor_id,
    )
    assert tuple(rows[0].values()) == ("es", "America/Argentina/Buenos_Aires", "AR", "")


async def test_importing_twice_changes_nothing(db, tmp_path):
    files = _write(tmp_path, DEBTORS, INVOICES)
    creditor = _creditor()
    first = await import_portfolio(*files, creditor=creditor)
    before = await _snapshot(db, first.creditor_id)

    again = await import_portfolio(*files, creditor=creditor)

    assert await _snapshot(db, first.creditor_id) == before
    assert again.creditor_id == first.creditor_id
    assert (again.debtors_inserted, again.debtors_updated, again.debtors_unchanged) == (0, 0, 3)
    assert (again.invoices_inserted, again.invoices_updated, again.invoices_unchanged) == (0, 0, 4)
    assert (again.lines_written, again.accounts_created, again.ledger_entries_posted) == (0, 0, 0)


async def test_a_changed_line_updates_the_total_and_posts_one_adjustment(db, tmp_path):
    creditor = _creditor()
    first = await import_portfolio(*_write(tmp_path / "a", DEBTORS, INVOICES), creditor=creditor)
    before = await _invoices(db, first.creditor_id)
    changed = [r.replace("Decodificador,2.5,10.01", "Decodificador,4,10.01") for r in INVOICES]
    debtors = [DEBTORS[0].replace("munoz@example.com", "munoz@ejemplo.com"), *DEBTORS[1:]]
    files = _write(tmp_path / "b", debtors, changed)

    result = await import_portfolio(*files, creditor=creditor)

    # 4 × 10.01 × 1.21 = 48.4484 -> 48.45, was 30.28: total 151.33 -> 169.50.
    after = await _invoices(db, first.creditor_id)
    assert after["F-1"]["total"] == 16950
    assert after["F-1"]["id"] == before["F-1"]["id"]
    assert after["F-1"]["updated_at"] > before["F-1"]["updated_at"]
    for number in ("F-2", "F-3", "F-4"):
        assert after[number] == before[number]
    assert (result.invoices_inserted, result.invoices_updated, result.invoices_unchanged) == (
        0,
        1,
        3,
    )
    assert (result.debtors_updated, result.debtors_unchanged) == (1, 2)
    assert result.lines_written == 3 and result.ledger_entries_posted == 1

    entries = await _fetch(
        db,
        "SELECT kind, amount, idempotency_key FROM ledger_entry WHERE invoice = $1 ORDER BY id",
        after["F-1"]["id"],
    )
    invoice_id = after["F-1"]["id"]
    assert [tuple(e.values()) for e in entries] == [
        ("charge", 15133, f"import:invoice:{invoice_id}"),
        ("adjustment", 1817, f"import:invoice:{invoice_id}:run:{result.run_id}"),
    ]
    assert await _ledger_sum(db, invoice_id) == 16950
    lines = await _fetch(
        db, "SELECT position, total FROM invoice_line WHERE invoice = $1 ORDER BY 1", invoice_id
    )
    assert [tuple(r.values()) for r in lines] == [(1, 12100), (2, 5), (3, 4845)]

    snapshot = await _snapshot(db, first.creditor_id)
    again = await import_portfolio(*files, creditor=creditor)
    assert await _snapshot(db, first.creditor_id) == snapshot
    assert again.ledger_entries_posted == 0


async def test_changing_only_a_description_keeps_the_ledger(db, tmp_path):
    creditor = _creditor()
    first = await import_portfolio(*_write(tmp_path / "a", DEBTORS, INVOICES), creditor=creditor)
    changed = [r.replace("Instalación", "Instalación y configuración") for r in INVOICES]
    result = await import_portfolio(*_write(tmp_path / "b", DEBTORS, changed), creditor=creditor)
    invoices = await _invoices(db, first.creditor_id)
    assert result.invoices_updated == 1 and result.lines_written == 2
    assert result.ledger_entries_posted == 0
    assert invoices["F-2"]["total"] == EXPECTED_TOTALS["F-2"]
    assert await _ledger_sum(db, invoices["F-2"]["id"]) == EXPECTED_TOTALS["F-2"]


async def test_interleaved_rows_and_shuffled_columns(db, tmp_path):
    """Rows of one invoice need not be adjacent; columns may come in any order."""
    columns = INVOICES_HEADER.split(",")
    order = [8, 0, 6, 7, 1, 2, 3, 4, 5]
    rows = [INVOICES[0], INVOICES[3], INVOICES[1], INVOICES[5], INVOICES[2], INVOICES[4]]
    rows.append(INVOICES[6])
    shuffled = [",".join(row.split(",")[i] for i in order) for row in [",".join(columns), *rows]]
    files = _write(tmp_path, DEBTORS, [], raw_invoices=("\n".join(shuffled) + "\n").encode("utf-8"))
    result = await import_portfolio(*files, creditor=_creditor())
    invoices = await _invoices(db, result.creditor_id)
    assert {n: r["total"] for n, r in invoices.items()} == EXPECTED_TOTALS
    lines = await _fetch(
        db,
        "SELECT l.position, l.description FROM invoice_line l WHERE l.invoice = $1 ORDER BY 1",
        invoices["F-1"]["id"],
    )
    assert [r["description"] for r in lines] == [
        "Señal de televisión",
        "Cargo por reconexión",
        "Decodificador",
    ]


async def test_windows_line_endings_a_bom_and_no_final_newline(db, tmp_path):
    debtors = ("\ufeff" + "\r\n".join([DEBTORS_HEADER, *DEBTORS]) + "\r\n").encode()
    invoices = "\r\n".join([INVOICES_HEADER, *INVOICES]).encode()  # no final line break
    result = await import_portfolio(
        *_write(tmp_path, [], [], raw_debtors=debtors, raw_invoices=invoices),
        creditor=_creditor(),
    )
    assert (result.debtors_inserted, result.lines_written) == (3, 7)
    invoices_stored = await _invoices(db, result.creditor_id)
    assert {n: r["total"] for n, r in invoices_stored.items()} == EXPECTED_TOTALS
    names = await _fetch(
        db, "SELECT name FROM debtor WHERE creditor = $1 ORDER BY external_id", result.creditor_id
    )
    assert names[0]["name"] == "Muñoz Ibáñez"

    bad = "\r\n".join([INVOICES_HEADER, *INVOICES[:6], "F-4,D3,ARS,2026-01-20"]).encode()
    with pytest.raises(ImportFileError) as caught:
        await import_portfolio(
            *_write(tmp_path / "bad", DEBTORS, [], raw_invoices=bad), creditor=_creditor()
        )
    assert (caught.value.line, caught.value.reason) == (8, "expected 9 fields, found 4")


async def test_same_result_with_foreign_key_checks(db, tmp_path, monkeypatch):
    """When the role may not skip foreign key triggers the import is the same, only slower."""

    async def never(conn: Any) -> bool:
        return False

    monkeypatch.setattr(portfolio_import, "_may_skip_fk_triggers", never)
    result = await import_portfolio(*_write(tmp_path, DEBTORS, INVOICES), creditor=_creditor())
    assert not result.foreign_key_checks_skipped
    invoices = await _invoices(db, result.creditor_id)
    assert {n: r["total"] for n, r in invoices.items()} == EXPECTED_TOTALS


async def test_a_file_loaded_in_chunks_gives_the_same_invoices(db, tmp_path, monkeypatch):
    """Large files are COPYed in two halves; an invoice may straddle them."""
    files = _write(tmp_path, DEBTORS, INVOICES)
    whole = await import_portfolio(*files, creditor=_creditor())
    monkeypatch.setattr(portfolio_import, "SPLIT_BYTES", 0)
    messages: list[str] = []
    split = await import_portfolio(*files, creditor=_creditor(), progress=messages.append)
    assert "invoices: 7 rows copied" in messages

    def fingerprint(invoices: dict[str, asyncpg.Record]) -> dict[str, tuple[Any, ...]]:
        return {n: (r["total"], r["lines_digest"], r["issue_date"]) for n, r in invoices.items()}

    assert fingerprint(await _invoices(db, split.creditor_id)) == fingerprint(
        await _invoices(db, whole.creditor_id)
    )
    bad = [r.replace(",USD,", ",XYZ,") for r in INVOICES]
    with pytest.raises(ImportFileError) as caught:
        await import_portfolio(*_write(tmp_path / "bad", DEBTORS, bad), creditor=_creditor())
    assert (caught.value.line, caught.value.reason) == (7, 'unknown currency "XYZ"')


async def test_invoices_may_name_debtors_imported_before(db, tmp_path):
    creditor = _creditor()
    await import_portfolio(*_write(tmp_path / "a", DEBTORS, INVOICES), creditor=creditor)
    later = ["F-9,D2,CLP,2026-03-01,2026-03-31,Plan móvil,1,18990,19"]
    result = await import_portfolio(*_write(tmp_path / "b", [], later), creditor=creditor)
    assert (result.invoices_inserted, result.accounts_created) == (1, 0)


def test_result_summary_reads_well():
    result = ImportResult(1, 2, 3, 0, 0, 4, 0, 0, 7, 4, 3, 0.5)
    assert result.summary().startswith("import #1 done in 0.5 s: debtors 3 new")


# ---------------------------------------------------------------------------- bad files


def _swap(rows: list[str], index: int, old: str, new: str) -> list[str]:
    assert old in rows[index]
    return [*rows[:index], rows[index].replace(old, new), *rows[index + 1 :]]


BAD_INVOICES = [
    pytest.param(
        _swap(INVOICES, 3, "F-2,D2,", "F-2,D9,"), 5, 'unknown debtor "D9"', id="unknown-debtor"
    ),
    pytest.param(
        [r.replace("2026-01-10", "2026/01/10") for r in INVOICES],
        5,
        'bad issue_date "2026/01/10" (expected YYYY-MM-DD)',
        id="date-format",
    ),
    pytest.param(
        [r.replace("2026-02-09", "2026-02-30") for r in INVOICES],
        5,
        'bad due_date "2026-02-30" (no such date)',
        id="impossible-date",
    ),
    pytest.param(
        [r.replace("2026-01-15,2026-01-15", "2026-01-15,2026-01-14") for r in INVOICES],
        7,
        "due_date 2026-01-14 is before issue_date 2026-01-15",
        id="due-before-issue",
    ),
    pytest.param(
        _swap(INVOICES, 4, ",2,995,", ",-2,995,"), 6, 'negative quantity "-2"', id="negative-qty"
    ),
    pytest.param(
        [r.replace(",USD,", ",XYZ,") for r in INVOICES],
        7,
        'unknown currency "XYZ"',
        id="unknown-currency",
    ),
    pytest.param(
        _swap(INVOICES, 2, ",10.01,", ',"12,50",'),
        4,
        'malformed unit_price "12,50"',
        id="comma-decimal",
    ),
    pytest.param(
        _swap(INVOICES, 1, ",0.015,", ",1e3,"), 3, 'malformed unit_price "1e3"', id="exponent"
    ),
    pytest.param(
        _swap(INVOICES, 0, ",1,100.00,", ",1.00001,100.00,"),
        2,
        'malformed quantity "1.00001" (expected up to 14 digits',
        id="too-many-decimals",
    ),
    pytest.param(
        _swap(INVOICES, 1, "F-1,D1,ARS,2026-01-05", "F-1,D1,USD,2026-01-05"),
        3,
        'invoice "F-1" disagrees with its line 2 on currency ("USD" here, "ARS" there)',
        id="invoice-rows-disagree",
    ),
    pytest.param(
        _swap(INVOICES, 5, ",0", ",0,extra"), 7, "expected 9 fields, found 10", id="extra-field"
    ),
    pytest.param(
        _swap(INVOICES, 6, "F-4,", ","), 8, "empty invoice_number", id="empty-invoice-number"
    ),
    pytest.param(
        # the lowest line wins, whatever the check that finds it
        _swap(_swap(INVOICES, 5, ",USD,", ",XYZ,"), 2, ",2.5,", ",2.5.1,"),
        4,
        'malformed quantity "2.5.1"',
        id="lowest-line-wins",
    ),
    pytest.param(
        # a line COPY cannot read does not hide an earlier bad line
        _swap(_swap(INVOICES, 5, ",0", ",0,extra"), 2, ",21", ",-21"),
        4,
        'negative tax_rate "-21"',
        id="earlier-line-before-unreadable-one",
    ),
    pytest.param(
        _swap(INVOICES, 4, "Instalación", '"Instalación\nen dos líneas"'),
        6,
        "line break inside a quoted field",
        id="line-break-in-field",
    ),
]


@pytest.mark.parametrize(("invoices", "line", "reason"), BAD_INVOICES)
async def test_a_bad_invoice_row_is_reported_and_nothing_is_imported(
    db, tmp_path, invoices, line, reason
):
    before = await _counts(db)
    debtors_csv, invoices_csv = _write(tmp_path, DEBTORS, invoices)
    with pytest.raises(ImportFileError) as caught:
        await import_portfolio(debtors_csv, invoices_csv, creditor=_creditor())
    assert (caught.value.file, caught.value.line) == ("invoices.csv", line)
    assert caught.value.reason.startswith(reason)
    assert str(caught.value).startswith(f"invoices.csv:{line}: {reason}")
    assert await _counts(db) == before


BAD_DEBTORS = [
    pytest.param(_swap(DEBTORS, 1, "D2,", ","), 3, "empty external_id", id="empty-id"),
    pytest.param(_swap(DEBTORS, 1, ",José Núñez Peña,", ",,"), 3, "empty name", id="empty-name"),
    pytest.param(
        [*DEBTORS, DEBTORS[0].replace("Muñoz", "Otro")],
        5,
        'duplicated external_id "D1" (first on line 2)',
        id="duplicate",
    ),
    pytest.param(
        _swap(DEBTORS, 1, "America/Santiago", "America/Springfield"),
        3,
        'unknown time zone "America/Springfield"',
        id="time-zone",
    ),
    pytest.param(
        _swap(DEBTORS, 0, "munoz@example.com", "munoz at example"),
        2,
        'malformed email "munoz at example"',
        id="email",
    ),
    pytest.param(
        _swap(DEBTORS, 1, ",es,", ",es,x,"), 3, "expected 10 fields, found 11", id="width"
    ),
]


@pytest.mark.parametrize(("debtors", "line", "reason"), BAD_DEBTORS)
async def test_a_bad_debtor_row_is_reported_and_nothing_is_imported(
    db, tmp_path, debtors, line, reason
):
    before = await _counts(db)
    # the invoices file is bad too: the debtors file is reported first
    files = _write(tmp_path, debtors, [r.replace(",USD,", ",XYZ,") for r in INVOICES])
    with pytest.raises(ImportFileError) as caught:
        await import_portfolio(*files, creditor=_creditor())
    assert (caught.value.file, caught.value.line) == ("debtors.csv", line)
    assert caught.value.reason.startswith(reason)
    assert await _counts(db) == before


async def test_a_bad_debtors_file_stops_a_large_invoices_file_still_loading(
    db, tmp_path, monkeypatch
):
    monkeypatch.setattr(portfolio_import, "SPLIT_BYTES", 1 << 20)
    invoices = [
        f"N-{n},D1,ARS,2026-01-05,2026-02-04,Señal de televisión número {n},1,100.00,21"
        for n in range(120_000)
    ]
    before = await _counts(db)
    files = _write(tmp_path, _swap(DEBTORS, 2, "D3,", ","), invoices)
    with pytest.raises(ImportFileError) as caught:
        await import_portfolio(*files, creditor=_creditor())
    assert (caught.value.file, caught.value.line) == ("debtors.csv", 4)
    assert await _counts(db) == before
    schemas = await _fetch(db, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'import_run_%'")
    assert schemas == []


async def test_invalid_utf8_is_reported_with_its_line(db, tmp_path):
    before = await _counts(db)
    text = ("\n".join([INVOICES_HEADER, *INVOICES]) + "\n").encode("utf-8")
    broken = text.replace("Instalación".encode(), b"Instalaci\xf3n")  # Latin-1 "ó"
    with pytest.raises(ImportFileError) as caught:
        await import_portfolio(
            *_write(tmp_path, DEBTORS, [], raw_invoices=broken), creditor=_creditor()
        )
    assert (caught.value.file, caught.value.line) == ("invoices.csv", 6)
    assert caught.value.reason.startswith("invalid UTF-8")
    assert await _counts(db) == before


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (INVOICES_HEADER.replace(",tax_rate", ""), "missing column tax_rate"),
        (INVOICES_HEADER + ",notes", "unknown column notes"),
        (INVOICES_HEADER.replace("quantity", "currency"), "repeated column currency"),
        ("", "empty file (expected a header line)"),
    ],
)
async def test_a_bad_header_is_reported_on_line_1(db, tmp_path, header, reason):
    before = await _counts(db)
    raw = (header + "\n" if header else "").encode()
    with pytest.raises(ImportFileError) as caught:
        await import_portfolio(
            *_write(tmp_path, DEBTORS, [], raw_invoices=raw), creditor=_creditor()
        )
    assert (caught.value.file, caught.value.line, caught.value.reason) == (
        "invoices.csv",
        1,
        reason,
    )
    assert await _counts(db) == before


async def test_a_failed_import_keeps_its_run_row(db, tmp_path):
    files = _write(tmp_path, DEBTORS, [r.replace(",USD,", ",XYZ,") for r in INVOICES])
    with pytest.raises(ImportFileError):
        await import_portfolio(*files, creditor=_creditor())
    runs = await _fetch(
        db, "SELECT * FROM import_run WHERE invoices_file = $1 ORDER BY id DESC", str(files[1])
    )
    assert runs[0]["status"] == "failed"
    assert runs[0]["error"] == 'invoices.csv:7: unknown currency "XYZ"'
    assert runs[0]["finished_at"] is not None and runs[0]["creditor"] is None
    schemas = await _fetch(db, "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'import_run_%'")
    assert schemas == []


async def test_an_invoice_cannot_move_to_another_debtor(db, tmp_path):
    creditor = _creditor()
    await import_portfolio(*_write(tmp_path / "a", DEBTORS, INVOICES), creditor=creditor)
    moved = _swap(INVOICES, 5, "F-3,D1,", "F-3,D2,")
    with pytest.raises(ImportFileError) as caught:
        await import_portfolio(*_write(tmp_path / "b", DEBTORS, moved), creditor=creditor)
    assert caught.value.line == 7
    assert caught.value.reason == (
        'invoice "F-3" was imported before for debtor "D1" in USD; '
        'it cannot move to debtor "D2" in USD'
    )
