"""Bank statement files: what is stored, what is refused, and that importing twice is harmless."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib

import pytest

from saldo.errors import ImportFileError
from saldo.references import payment_reference
from saldo.services.bank_import import RuleTotal, import_bank_statement
from saldo.tables import AuditEvent, BankImport, BankLine, LedgerEntry, Payment

from .bank_support import NOW, make_staff, row, statement, uid
from .helpers import make_account, make_invoice


async def test_a_statement_is_stored_matched_and_summarised(db, tmp_path):
    account = await make_account()
    await make_invoice(account, uid("F-"), 200_000, dt.date(2026, 10, 1))
    reference = payment_reference(account.id)
    paid, stray, chilean = uid("TX-"), uid("TX-"), uid("TX-")
    path = statement(
        tmp_path / "extracto-noviembre.csv",
        [
            row("1500.5", reference=f"TRANSF {reference}", transaction_id=paid),
            row("99.99", reference="DEPOSITO EFECTIVO", transaction_id=stray),
            row("12345", currency="CLP", payer_name="ANA  ROJAS", transaction_id=chilean),
        ],
    )

    result = await import_bank_statement(path, now=NOW)

    assert (result.lines_read, result.new_lines, result.duplicates) == (3, 3, 0)
    assert not result.already_imported
    assert result.filename == "extracto-noviembre.csv"
    assert result.matched == (RuleTotal("reference", "ARS", 1, 150_050),)
    assert {(t.currency, t.count, t.amount) for t in result.unmatched} == {
        ("ARS", 1, 9_999),
        ("CLP", 1, 12_345),
    }
    lines = {
        r["transaction_id"]: r
        for r in await BankLine.select().where(BankLine.bank_import == result.import_id)
    }
    assert lines[paid]["status"] == "matched" and lines[paid]["account"] == account.id
    assert lines[paid]["line_no"] == 2 and lines[chilean]["line_no"] == 4
    assert lines[stray]["status"] == "unmatched" and lines[stray]["amount"] == 9_999
    assert lines[chilean]["payer_name"] == "ANA ROJAS"
    assert lines[chilean]["booked_on"] == dt.date(2026, 11, 3)
    stored = await BankImport.objects().get(BankImport.id == result.import_id)
    assert stored.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert stored.rows == 3
    summary = "\n".join(result.summary_lines())
    assert "3 lines read, 3 new, 0 already imported" in summary
    assert "reference: 1 line, ARS 1500.50" in summary
    assert "unmatched: 1 line, CLP 12345" in summary


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        ("{ok}\n2026-11-03,-10.00,ARS,,,,{tx}\n", 3, "is not positive"),
        ("{ok}\n2026-11-03,0,ARS,,,,{tx}\n", 3, "is not positive"),
        ("{ok}\n03/11/2026,10.00,ARS,,,,{tx}\n", 3, "is not a date as YYYY-MM-DD"),
        ("{ok}\n2026-02-30,10.00,ARS,,,,{tx}\n", 3, "is not a date"),
        ("{ok}\n2026-11-03,10.00,XYZ,,,,{tx}\n", 3, "currency 'XYZ' is not supported"),
        ('{ok}\n2026-11-03,"1,500.00",ARS,,,,{tx}\n', 3, "is not an amount"),
        ("{ok}\n2026-11-03,10.00,ARS,,,\n", 3, "expected 7 fields, found 6"),
        ("{ok}\n2026-11-03,10.00,ARS,,,,\n", 3, "transaction_id is empty"),
        ("{ok}\n\n2026-11-03,10.00,ARS,,,,{dup}\n", 4, "repeats line 2"),
        (
            '{ok}\n2026-11-03,10.00,ARS,"PAGO\nFACTURA",,,{tx}\n2026-11-03,x,ARS,,,,{tx}\n',
            5,
            "amount",
        ),
    ],
)
async def test_a_bad_row_names_file_and_line_and_nothing_is_imported(
    db, tmp_path, content, line, reason
):
    good, other = uid("TX-"), uid("TX-")
    header = "date,amount,currency,reference,payer_name,payer_document,transaction_id"
    text = content.format(ok=f"{header}\n2026-11-03,10.00,ARS,,,,{good}", tx=other, dup=good)
    path = tmp_path / "malo.csv"
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ImportFileError) as caught:
        await import_bank_statement(path, now=NOW)

    assert (caught.value.file, caught.value.line) == ("malo.csv", line)
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"malo.csv:{line}: ")
    assert not await BankLine.exists().where(BankLine.transaction_id.is_in([good, other]))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert not await BankImport.exists().where(BankImport.sha256 == digest)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (
            "date,amount,currency,reference,payer_name,transaction_id",
            "missing column payer_document",
        ),
        (
            "date,amount,currency,reference,payer_name,payer_document,transaction_id,extra",
            "unknown column extra",
        ),
        ("date,date,amount,currency,reference,payer_name,payer_document", "repeated column date"),
        ("", "empty file"),
    ],
)
async def test_a_bad_header_is_line_one(db, tmp_path, header, reason):
    path = tmp_path / "cabecera.csv"
    path.write_text(f"{header}\n" if header else "", encoding="utf-8")
    with pytest.raises(ImportFileError) as caught:
        await import_bank_statement(path, now=NOW)
    assert caught.value.line == 1
    assert reason in caught.value.reason


async def test_invalid_utf8_is_reported_on_its_line(db, tmp_path):
    header = b"date,amount,currency,reference,payer_name,payer_document,transaction_id\n"
    body = b"2026-11-03,10.00,ARS,,,," + uid("TX-").encode() + b"\n"
    bad = b"2026-11-03,10.00,ARS,PAGO \xff,,," + uid("TX-").encode() + b"\n"
    path = tmp_path / "latin1.csv"
    path.write_bytes(header + body + bad)
    with pytest.raises(ImportFileError) as caught:
        await import_bank_statement(path, now=NOW)
    assert caught.value.line == 3
    assert "invalid UTF-8" in caught.value.reason


async def test_columns_in_any_order_with_a_byte_order_mark_and_blank_lines(db, tmp_path):
    tx = uid("TX-")
    path = tmp_path / "banco.csv"
    path.write_bytes(
        (
            "\ufefftransaction_id,currency,amount,date,payer_document,payer_name,reference\r\n"
            "\r\n"
            f"{tx},usd,25,2026-11-04,,Acme LLC,WIRE 778\r\n"
            "\r\n"
        ).encode()
    )
    result = await import_bank_statement(path, now=NOW)
    assert (result.lines_read, result.new_lines) == (1, 1)
    line = await BankLine.objects().get(BankLine.transaction_id == tx)
    assert (line.currency, line.amount, line.line_no, line.reference) == (
        "USD",
        2_500,
        3,
        "WIRE 778",
    )


async def test_importing_the_same_file_again_changes_nothing(db, tmp_path):
    account = await make_account()
    await make_invoice(account, uid("F-"), 50_000, dt.date(2026, 10, 1))
    path = statement(
        tmp_path / "extracto.csv",
        [
            row("300.00", reference=f"pago {payment_reference(account.id)}"),
            row("12.00", reference="sin datos"),
        ],
    )
    first = await import_bank_statement(path, now=NOW)
    counts = (
        await BankLine.count(),
        await Payment.count(),
        await LedgerEntry.count().where(LedgerEntry.account == account.id),
        await BankImport.count(),
    )

    again = await import_bank_statement(path, now=NOW + dt.timedelta(days=1))

    assert again.already_imported
    assert again.import_id == first.import_id
    assert (again.lines_read, again.new_lines, again.matched, again.unmatched) == (
        first.lines_read,
        first.new_lines,
        first.matched,
        first.unmatched,
    )
    assert counts == (
        await BankLine.count(),
        await Payment.count(),
        await LedgerEntry.count().where(LedgerEntry.account == account.id),
        await BankImport.count(),
    )
    assert "already imported" in again.summary_lines()[0]


async def test_the_same_file_imported_twice_at_once_is_stored_once(db, tmp_path):
    path = statement(tmp_path / "doble.csv", [row("10.00"), row("20.00")])
    results = await asyncio.gather(
        import_bank_statement(path, now=NOW), import_bank_statement(path, now=NOW)
    )
    assert results[0].import_id == results[1].import_id
    assert sorted(r.already_imported for r in results) == [False, True]
    assert await BankLine.count().where(BankLine.bank_import == results[0].import_id) == 2


async def test_an_overlapping_statement_adds_only_its_new_lines(db, tmp_path):
    early, shared, late = uid("TX-"), uid("TX-"), uid("TX-")
    first = await import_bank_statement(
        statement(
            tmp_path / "semana-1.csv",
            [row("10.00", transaction_id=early), row("20.00", transaction_id=shared)],
        ),
        now=NOW,
    )
    second = await import_bank_statement(
        statement(
            tmp_path / "semana-2.csv",
            [row("20.00", transaction_id=shared), row("30.00", transaction_id=late)],
        ),
        now=NOW,
    )
    assert (second.lines_read, second.new_lines, second.duplicates) == (2, 1, 1)
    assert second.import_id != first.import_id
    owners = {
        r["transaction_id"]: r["bank_import"]
        for r in await BankLine.select(BankLine.transaction_id, BankLine.bank_import).where(
            BankLine.transaction_id.is_in([early, shared, late])
        )
    }
    assert owners == {early: first.import_id, shared: first.import_id, late: second.import_id}
    assert "1 already imported by another statement" in "\n".join(second.summary_lines())


async def test_an_import_by_staff_is_audited(db, tmp_path):
    staff = await make_staff()
    result = await import_bank_statement(
        statement(tmp_path / "auditado.csv", [row("10.00")]), imported_by=staff.id, now=NOW
    )
    stored = await BankImport.objects().get(BankImport.id == result.import_id)
    assert stored.imported_by == staff.id
    event = await AuditEvent.objects().get(
        (AuditEvent.action == "bank_import.create")
        & (AuditEvent.object_id == str(result.import_id))
    )
    assert event.staff == staff.id and event.actor == staff.email
