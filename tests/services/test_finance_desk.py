"""The services behind finance's screens: finding accounts, the split form's text rows, the
unapplied queue's pages and totals."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saldo import money
from saldo.errors import ValidationFailed
from saldo.references import payment_reference
from saldo.services.finance_desk import SplitRow, find_accounts, split_from_form
from saldo.services.ledger import account_balance
from saldo.services.unapplied_payments import unapplied_queue
from saldo.tables import Debtor, Payment

from .bank_support import NOW, insert_line, make_staff, uid, unique_document
from .helpers import make_account, make_invoice


async def test_accounts_are_found_by_reference_document_external_id_or_name(db):
    name = f"Panadería La Espiga {secrets.token_hex(2)} 100%"
    account = await make_account(currency="PEN", name=name)
    document = unique_document()
    external = uid("EXT-")
    await Debtor.update({Debtor.document_number: document, Debtor.external_id: external}).where(
        Debtor.id == account.debtor
    )
    await make_invoice(account, uid("P-"), 7_000, dt.date(2041, 1, 1))
    soles = "PEN"

    by_reference = await find_accounts(f"ref {payment_reference(account.id)}", currency=soles)
    assert [a.account_id for a in by_reference] == [account.id]
    assert by_reference[0].balance == 7_000 and len(by_reference[0].open_invoices) == 1
    digits = "".join(c for c in document if c.isdigit())
    assert [a.account_id for a in await find_accounts(digits, currency=soles)] == [account.id]
    assert [a.account_id for a in await find_accounts(external, currency=soles)] == [account.id]
    fragment = name.split()[-2].upper()  # the random part, in another case
    assert [a.account_id for a in await find_accounts(fragment, currency=soles)] == [account.id]
    assert account.id in [a.account_id for a in await find_accounts("espiga", currency=soles)]
    assert await find_accounts(payment_reference(account.id), currency="ARS") == []
    assert await find_accounts("   ", currency=soles) == []
    literal = await find_accounts(f"{fragment} 100%", currency=soles)
    assert [a.account_id for a in literal] == [account.id]  # % is a character, not a wildcard
    assert await find_accounts("%", currency="PYG") == []


async def test_split_rows_name_the_row_and_field_that_is_wrong(db):
    line = await insert_line(9_000, booked_on=dt.date(2041, 5, 1))
    first, second = await make_account(), await make_account()
    staff = await make_staff()
    good = SplitRow(payment_reference(first.id), "40", "")

    cases = [
        ([good, SplitRow("", "", ""), SplitRow("SAL-0000001-00", "50", "")], "parts.1.account_id"),
        ([good, SplitRow(payment_reference(second.id), "50,00", "")], "parts.1.amount"),
        ([good, SplitRow(payment_reference(second.id), "50", "Z-404")], "parts.1.invoice_ids"),
        ([good, SplitRow(payment_reference(second.id), "49.99", "")], "parts"),
        ([good], "parts"),
    ]
    for rows, field in cases:
        with pytest.raises(ValidationFailed) as refused:
            await split_from_form(line.id, rows, staff_id=staff.id, now=NOW)
        assert refused.value.field == field, rows
    assert await Payment.count().where(Payment.bank_line == line.id) == 0


@st.composite
def text_parts(draw: st.DrawFn) -> tuple[str, list[int], list[str]]:
    """A currency, parts in minor units, and how a person would type each one."""
    currency = draw(st.sampled_from(["EUR", "CLP", "USD"]))
    parts = draw(st.lists(st.integers(1, 10**9), min_size=2, max_size=4))
    typed = []
    for part in parts:
        text = str(money.to_decimal(part, currency))
        if "." in text and draw(st.booleans()):
            text = text.rstrip("0").rstrip(".")  # "12.50" typed as "12.5", "12.00" as "12"
        typed.append(f"{' ' * draw(st.integers(0, 2))}{text}")
    return currency, parts, typed


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=text_parts(), blanks=st.integers(0, 2))
async def test_typed_split_amounts_post_exactly_the_parts_and_sum_to_the_line(db, case, blanks):
    currency, parts, typed = case
    accounts = [await make_account(currency) for _ in parts]
    line = await insert_line(sum(parts), currency=currency, booked_on=dt.date(2041, 5, 2))
    staff = await make_staff()
    rows = [
        SplitRow(f" {payment_reference(a.id)} ", t, "")
        for a, t in zip(accounts, typed, strict=True)
    ]
    rows[1:1] = [SplitRow("", " ", "")] * blanks

    done = await split_from_form(line.id, rows, staff_id=staff.id, now=NOW)

    payments = (
        await Payment.select(Payment.account, Payment.amount)
        .where(Payment.bank_line == line.id)
        .order_by(Payment.id)
    )
    assert [(p["account"], p["amount"]) for p in payments] == [
        (a.id, part) for a, part in zip(accounts, parts, strict=True)
    ]
    assert len(done.payment_ids) == len(parts)
    assert [await account_balance(a.id) for a in accounts] == [-part for part in parts]


async def test_the_queue_pages_oldest_first_and_totals_every_page(db):
    currency = "PYG"
    day = dt.date(1999, 12, 1)
    lines = [
        await insert_line(1_000 + i, currency=currency, booked_on=day + dt.timedelta(days=i))
        for i in range(3)
    ]
    everything = await unapplied_queue(currency=currency, per_page=500)
    mine = [item.id for item in everything.items if item.kind == "bank"][:3]
    assert mine == [line.id for line in lines]

    first = await unapplied_queue(currency=currency, per_page=2)
    second = await unapplied_queue(currency=currency, per_page=2, page=2)
    assert [i.id for i in first.items] == [line.id for line in lines[:2]]
    assert second.items[0].id == lines[2].id
    assert first.pages == second.pages >= 2
    assert first.totals == second.totals == everything.totals
    assert sum(t.count for t in first.totals) == first.total == everything.total
    beyond = await unapplied_queue(currency=currency, per_page=2, page=10_000)
    assert beyond.page == beyond.pages
    with pytest.raises(ValidationFailed):
        await unapplied_queue(currency="XXX")
