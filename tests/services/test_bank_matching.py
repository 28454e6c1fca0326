"""Automatic matching: each rule with its explanation, ambiguity left to finance, posting once."""

from __future__ import annotations

import asyncio
import datetime as dt

from saldo.money import to_decimal
from saldo.references import payment_reference
from saldo.services.bank_import import import_bank_statement
from saldo.services.bank_matching import match_lines, match_unmatched_lines
from saldo.services.bank_suggestions import suggestions
from saldo.services.ledger import account_balance, open_invoices
from saldo.tables import (
    BankLine,
    Interaction,
    LedgerEntry,
    Payment,
    PaymentAllocation,
    PaymentClaim,
)

from .bank_support import (
    NOW,
    make_claim,
    row,
    set_document,
    statement,
    uid,
    unique_amount,
    unique_document,
)
from .helpers import make_account, make_invoice

BOOKED = dt.date(2026, 11, 3)


async def _import_one(tmp_path, line: tuple[str, ...]) -> BankLine:
    await import_bank_statement(statement(tmp_path / f"{uid()}.csv", [line]), now=NOW)
    found = await BankLine.objects().get(BankLine.transaction_id == line[-1])
    assert found is not None
    return found


def _text(amount: int) -> str:
    return str(to_decimal(amount, "ARS"))


async def _payments_of(line: BankLine) -> list[dict]:
    return await Payment.select().where(Payment.bank_line == line.id)


async def test_our_reference_matches_and_the_invoice_named_is_paid_first(db, tmp_path):
    account = await make_account(name="Juana Molina")
    older = await make_invoice(account, uid("A-"), 40_000, dt.date(2026, 8, 1))
    named = await make_invoice(account, uid("A-"), 25_000, dt.date(2026, 9, 1))
    reference = payment_reference(account.id)

    line = await _import_one(
        tmp_path, row("250.00", reference=f"TRANSF {reference} FC {named.number.lower()}")
    )

    assert line.status == "matched" and line.account == account.id
    assert line.match_rule == "reference"
    assert line.match_note == (
        f"Referencia {reference} en el concepto; Factura {named.number} en el concepto"
    )
    [payment] = await _payments_of(line)
    assert (payment["provider"], payment["provider_payment_id"]) == ("bank", line.transaction_id)
    assert (payment["method"], payment["amount"], payment["account"]) == (
        "transferencia",
        25_000,
        account.id,
    )
    assert await open_invoices(account.id) == [(older.id, 40_000)]
    entry = await LedgerEntry.objects().get(
        (LedgerEntry.account == account.id) & (LedgerEntry.kind == "payment")
    )
    assert entry.effective_date == BOOKED
    note = await Interaction.objects().get(
        (Interaction.account == account.id) & (Interaction.kind == "payment")
    )
    assert note.debtor == account.debtor
    assert "Transferencia bancaria recibida por $" in note.summary
    assert "250,00" in note.summary and reference in note.summary


async def test_a_reference_to_an_account_in_another_currency_is_not_matched(db, tmp_path):
    dollars = await make_account("USD")
    await make_invoice(dollars, uid("U-"), 10_000, dt.date(2026, 9, 1))
    line = await _import_one(
        tmp_path, row("100.00", currency="ARS", reference=payment_reference(dollars.id))
    )
    assert line.status == "unmatched"
    assert await _payments_of(line) == []
    assert await account_balance(dollars.id) == 10_000


async def test_two_references_in_one_description_are_left_for_finance(db, tmp_path):
    first, second = await make_account(), await make_account()
    text = f"{payment_reference(first.id)} y {payment_reference(second.id)}"
    line = await _import_one(tmp_path, row("80.00", reference=text))
    assert line.status == "unmatched"
    found = await suggestions(line.id)
    assert {s.account_id for s in found[:2]} == {first.id, second.id}
    assert all(s.score >= 60 for s in found[:2])
    assert any("Referencia" in reason for reason in found[0].reasons)


async def test_an_invoice_number_alone_matches_its_only_open_invoice(db, tmp_path):
    account = await make_account()
    invoice = await make_invoice(account, uid("FC-0001-"), 75_000, dt.date(2026, 9, 1))
    line = await _import_one(tmp_path, row("750.00", reference=f"PAGO FACT.{invoice.number}."))
    assert line.status == "matched" and line.match_rule == "invoice_number"
    assert line.match_note == (
        f"Factura {invoice.number} en el concepto (única factura abierta con ese número)"
    )
    assert await open_invoices(account.id) == []


async def test_an_invoice_number_two_creditors_use_is_ambiguous(db, tmp_path):
    number = uid("X-")
    one, two = await make_account(), await make_account()
    await make_invoice(one, number, 10_000, dt.date(2026, 9, 1))
    await make_invoice(two, number, 10_000, dt.date(2026, 9, 1))
    line = await _import_one(tmp_path, row("100.00", reference=f"factura {number}"))
    assert line.status == "unmatched"
    found = await suggestions(line.id)
    mentioned = [s for s in found if f"Factura {number} mencionada en el concepto" in s.reasons]
    assert {s.account_id for s in mentioned} == {one.id, two.id}


async def test_document_and_exact_invoice_amount_match(db, tmp_path):
    account = await make_account(name="Pedro Páramo")
    document = unique_document()
    await set_document(account, document)
    await make_invoice(account, uid("B-"), 30_000, dt.date(2026, 8, 1))
    exact = await make_invoice(account, uid("B-"), 12_345, dt.date(2026, 9, 1))
    digits = "".join(ch for ch in document if ch.isdigit())

    line = await _import_one(
        tmp_path, row("123.45", payer_document=digits, reference="TRANSFERENCIA")
    )

    assert line.status == "matched" and line.match_rule == "document_amount"
    assert line.match_note == (
        f"Documento del pagador {digits} igual al de Pedro Páramo; "
        f"el importe es igual al saldo de la factura {exact.number}"
    )
    [allocation] = await PaymentAllocation.select().where(
        PaymentAllocation.payment == (await _payments_of(line))[0]["id"]
    )
    assert allocation["invoice"] == exact.id


async def test_document_and_the_whole_balance_match(db, tmp_path):
    account = await make_account()
    document = unique_document()
    await set_document(account, document)
    await make_invoice(account, uid("C-"), 30_000, dt.date(2026, 8, 1))
    await make_invoice(account, uid("C-"), 20_000, dt.date(2026, 9, 1))
    line = await _import_one(tmp_path, row("500.00", payer_document=document))
    assert line.match_rule == "document_amount"
    assert line.match_note.endswith("el importe es igual al saldo de la cuenta")
    assert await account_balance(account.id) == 0


async def test_document_without_an_exact_amount_is_only_a_suggestion(db, tmp_path):
    account = await make_account()
    document = unique_document()
    await set_document(account, document)
    await make_invoice(account, uid("D-"), 30_000, dt.date(2026, 8, 1))
    line = await _import_one(tmp_path, row("299.99", payer_document=document))
    assert line.status == "unmatched"
    [top, *_] = await suggestions(line.id)
    assert top.account_id == account.id
    assert f"Documento del pagador ({document}) igual al del deudor" in top.reasons


async def test_one_open_claim_with_the_same_amount_near_the_date_matches(db, tmp_path):
    account = await make_account()
    older = await make_invoice(account, uid("E-"), 50_000, dt.date(2026, 8, 1))
    amount = unique_amount()
    claimed = await make_invoice(account, uid("E-"), amount, dt.date(2026, 9, 1))
    claim = await make_claim(account, amount, BOOKED - dt.timedelta(days=3), [claimed.id])

    line = await _import_one(tmp_path, row(_text(amount), booked_on=BOOKED))

    assert line.status == "matched" and line.match_rule == "claim"
    assert line.match_note == (
        f"Aviso «ya pagué» del deudor del {claim.paid_on:%d/%m/%Y} por el mismo importe "
        "(±3 días de la fecha del banco)"
    )
    stored = await PaymentClaim.objects().get(PaymentClaim.id == claim.id)
    assert stored.status == "matched"
    assert await open_invoices(account.id) == [(older.id, 50_000)]


async def test_a_claim_outside_the_window_or_shared_is_not_matched(db, tmp_path):
    account = await make_account()
    amount = unique_amount()
    far = await make_claim(account, amount, BOOKED - dt.timedelta(days=4))
    line = await _import_one(tmp_path, row(_text(amount), booked_on=BOOKED))
    assert line.status == "unmatched"
    assert (await PaymentClaim.objects().get(PaymentClaim.id == far.id)).status == "open"

    other = await make_account()
    twin = uid("TX-")
    await make_claim(account, amount + 1, BOOKED)
    await make_claim(other, amount + 1, BOOKED + dt.timedelta(days=1))
    ambiguous = await _import_one(
        tmp_path, row(_text(amount + 1), booked_on=BOOKED, transaction_id=twin)
    )
    assert ambiguous.status == "unmatched"
    found = await suggestions(ambiguous.id)
    near = [s for s in found if any("dentro de ±3 días" in r for r in s.reasons)]
    assert {s.account_id for s in near} == {account.id, other.id}


async def test_a_mistyped_reference_does_not_match_but_is_suggested(db, tmp_path):
    account = await make_account()
    await make_invoice(account, uid("G-"), 10_000, dt.date(2026, 9, 1))
    good = payment_reference(account.id)
    digits = list(good[4:11])
    digits[-1] = str((int(digits[-1]) + 1) % 10)
    typo = f"SAL-{''.join(digits)}-{good[-2:]}"

    line = await _import_one(tmp_path, row("100.00", reference=f"transf {typo}"))

    assert line.status == "unmatched"
    assert await account_balance(account.id) == 10_000
    found = await suggestions(line.id)
    mine = next(s for s in found if s.account_id == account.id)
    assert any(r.startswith(f"Texto parecido a una referencia: «{typo}»") for r in mine.reasons)
    assert "Importe igual al saldo de la cuenta" in mine.reasons
    assert mine.account_reference == good


async def test_a_similar_payer_name_is_suggested(db, tmp_path):
    surname = uid("Q").lower()
    account = await make_account(name=f"Íñigo {surname.capitalize()} Sáez")
    line = await _import_one(tmp_path, row("1.00", payer_name=f"INIGO {surname.upper()}"))
    assert line.status == "unmatched"
    [top, *_] = await suggestions(line.id)
    assert top.account_id == account.id
    assert any(r.startswith("Nombre parecido") for r in top.reasons)
    assert 0 < top.score < 60


async def test_matching_twice_at_once_posts_each_line_once(db, tmp_path):
    account = await make_account()
    numbers = [uid("H-") for _ in range(4)]
    lines = [row("10.00", reference=f"pago {number}") for number in numbers]
    result = await import_bank_statement(statement(tmp_path / "tarde.csv", lines), now=NOW)
    assert result.unmatched_count == 4  # the invoices are not loaded yet
    for number in numbers:
        await make_invoice(account, number, 5_000, dt.date(2026, 9, 1))
    ids = [
        r["id"]
        for r in await BankLine.select(BankLine.id).where(BankLine.bank_import == result.import_id)
    ]

    runs = await asyncio.gather(
        match_lines(ids, now=NOW), match_lines(ids, now=NOW), match_unmatched_lines(now=NOW)
    )

    posted = [line_id for run in runs for line_id in run.matched_ids if line_id in ids]
    assert sorted(posted) == sorted(ids)
    assert await Payment.count().where(Payment.bank_line.is_in(ids)) == 4
    assert await account_balance(account.id) == 4 * 5_000 - 4 * 1_000
    assert (
        await Interaction.count().where(
            (Interaction.account == account.id) & (Interaction.kind == "payment")
        )
        == 4
    )
    again = await match_lines(ids, now=NOW)
    assert again.matched == () and again.examined == 0
