"""The debtor's balance, invoice and statement views: scoping, aging and sums that add up."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pypdf import PdfReader

from saldo import money
from saldo.errors import NotFound
from saldo.services import statement as svc
from saldo.services.ledger import account_balance
from tests.portal_data import (
    ARS_AGING,
    ARS_OPEN,
    ARS_OVERDUE,
    ARS_TOTAL,
    EUR_TOTAL,
    MXN_TOTAL,
    TODAY,
    World,
    build_world,
)

pytestmark = pytest.mark.usefixtures("db")


@pytest.fixture(scope="module")
async def world(db) -> World:
    return await build_world()


def account(view: svc.BalanceView, currency: str) -> svc.AccountView:
    return next(a for a in view.accounts if a.currency == currency)


def pdf_text(content: bytes) -> str:
    """The PDF's text with no-break spaces as plain spaces, as a reader copying it would get."""
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)
    return text.replace("\xa0", " ")


# ---------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("due", "bucket"),
    [
        (TODAY + dt.timedelta(days=10), "current"),
        (TODAY, "current"),
        (TODAY - dt.timedelta(days=1), "1_30"),
        (TODAY - dt.timedelta(days=30), "1_30"),
        (TODAY - dt.timedelta(days=31), "31_60"),
        (TODAY - dt.timedelta(days=60), "31_60"),
        (TODAY - dt.timedelta(days=61), "61_90"),
        (TODAY - dt.timedelta(days=90), "61_90"),
        (TODAY - dt.timedelta(days=91), "90_plus"),
    ],
)
def test_aging_bucket_edges(due, bucket):
    assert svc.aging_bucket(due, TODAY) == bucket


@given(
    quantity=st.decimals(min_value=0, max_value=10_000, places=4),
    price=st.decimals(min_value=0, max_value=1_000_000, places=6),
    rate=st.sampled_from([Decimal(0), Decimal("10.5"), Decimal(16), Decimal(19), Decimal(21)]),
    currency=st.sampled_from(["ARS", "CLP", "EUR"]),
)
def test_split_line_adds_up_to_the_line_total(quantity, price, rate, currency):
    total = money.line_total(quantity, price, rate, currency)
    net, tax = svc.split_line(quantity, price, total, currency)
    assert net + tax == total
    assert net == money.line_total(quantity, price, Decimal(0), currency)
    assert tax >= 0


def test_running_balances():
    assert svc.running_balances(1000, [500, -200, -1300]) == [1500, 1300, 0]
    assert svc.running_balances(7, []) == []


@pytest.mark.parametrize(
    ("currency", "locale"),
    [("ARS", "es_AR"), ("MXN", "es_MX"), ("CLP", "es_CL"), ("EUR", "es_ES"), ("ARS", "en_US"),
     ("MXN", "es_AR"), ("EUR", "en_US"), ("PYG", "es")],
)  # fmt: skip
@pytest.mark.parametrize("minor", [0, 1, -1, 99, 1234, -123456, 100000, 987654321, -(10**12)])
def test_fast_money_format_matches_babel(currency, locale, minor):
    assert svc.Formats(currency, locale).money(minor).text == money.format_money(
        minor, currency, locale
    )


def test_locale_by_country_and_language():
    assert svc.display_locale("es", "AR") == "es_AR"
    assert svc.display_locale("es", "mx") == "es_MX"
    assert svc.display_locale("es", "CL") == "es_CL"
    assert svc.display_locale("es", "") == "es"
    assert svc.display_locale("es", "X1") == "es"
    assert svc.display_locale("en", "AR") == "en_US"


def test_basis_text_explains_interest_and_fees():
    fmt = svc.Formats("ARS", "es_AR")
    interest = {"monthly_rate_bp": 300, "since": "2026-09-10"}
    assert svc.basis_text("es", "interest", interest, fmt) == "3% mensual desde el 10/09/2026"
    english = svc.Formats("ARS", "en_US")
    assert svc.basis_text("en", "interest", interest, english) == "3% monthly since Sep 10, 2026"
    daily = {"daily_rate_ppm": 1000, "from": "2026-09-10", "to": "2026-09-30", "days": 20,
             "principal": 100000}  # fmt: skip
    assert svc.basis_text("es", "interest", daily, fmt) == (
        "0,1% diario del 10/09/2026 al 30/09/2026 sobre $\xa01.000,00 (20 días)"
    )
    fee = {"fixed_fee": 150000, "due_date": "2026-11-10"}
    assert svc.basis_text("es", "fee", fee, fmt) == (
        "cargo fijo de $\xa01.500,00 por factura vencida el 10/11/2026"
    )
    assert svc.basis_text("es", "fee", {"text": "Según contrato"}, fmt) == "Según contrato"
    assert svc.basis_text("es", "interest", {"since": "not a date", "days": True}, fmt) == ""


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2026-13-01", None, "«desde» no es válida"),
        ("01/09/2026", None, "«desde» no es válida"),
        (None, "2026-02-30", "«hasta» no es válida"),
        ("2026-10-01", "2026-09-01", "anterior o igual"),
        ("1990-01-01", "2026-01-01", "diez años"),
    ],
)
def test_parse_period_rejects_bad_input(start, end, message):
    with pytest.raises(svc.InvalidPeriod) as caught:
        svc.parse_period(start, end, today=TODAY)
    assert message in str(caught.value)
    assert caught.value.status_code == 400


def test_parse_period_defaults_and_english():
    assert svc.parse_period(None, "", today=TODAY) == svc.Period(
        TODAY - dt.timedelta(days=365), TODAY
    )
    assert svc.parse_period("2026-01-01", "2026-01-01", today=TODAY).start == dt.date(2026, 1, 1)
    with pytest.raises(svc.InvalidPeriod, match="must be on or before"):
        svc.parse_period("2026-10-01", "2026-09-01", today=TODAY, language="en")


# ---------------------------------------------------------------------------- balance


async def test_balance_groups_every_creditor_and_adds_up(world):
    view = await svc.balance(world.maria_ids, today=TODAY)
    assert view.debtor is not None and view.debtor.name == "María José Núñez"
    assert [g.creditor.name for g in view.groups] == sorted(world.creditors.values())
    assert {a.currency for a in view.accounts} == {"ARS", "MXN", "EUR"}

    ars = account(view, "ARS")
    assert ars.locale == "es_AR"
    assert ars.total_due.minor == ARS_TOTAL == await account_balance(world.accounts["ARS"])
    assert ars.total_due.text == "$\xa0103.688,21"
    assert ars.overdue.minor == ARS_OVERDUE
    assert ars.not_due.minor == ARS_OPEN["A-3"]
    assert ars.overdue.minor + ars.not_due.minor + ars.other.minor == ars.total_due.minor
    assert {i.number.split("-" + world.tag)[0]: i.open.minor for i in ars.invoices} == ARS_OPEN
    assert sum(i.open.minor for i in ars.invoices) + ars.other.minor == ars.total_due.minor
    assert ars.next_due_date == dt.date(2026, 12, 10)
    assert ars.next_due == "10/12/2026"
    assert [p.number for p in ars.paid_invoices] == [world.number("A-5")]

    # the aging buckets are right for the frozen date and sum to the open invoices
    assert {b.key: b.amount.minor for b in ars.aging} == ARS_AGING
    assert sum(b.share for b in ars.aging) == 100

    assert account(view, "MXN").total_due.text == "$22,038.84"  # es_MX: her row there says MX
    assert account(view, "EUR").total_due.text == "499,20\xa0€"
    assert account(view, "MXN").total_due.minor == MXN_TOTAL
    assert account(view, "EUR").total_due.minor == EUR_TOTAL


async def test_every_invoice_adds_up_line_by_line(world):
    view = await svc.balance(world.maria_ids, today=TODAY)
    for acct in view.accounts:
        for invoice in acct.invoices:
            assert sum(line.total.minor for line in invoice.lines) == invoice.total.minor
            assert invoice.subtotal.minor + invoice.tax.minor == invoice.total.minor
            for line in invoice.lines:
                assert line.net.minor + line.tax.minor == line.total.minor
            assert invoice.total.minor + sum(i.amount.minor for i in invoice.items) == (
                invoice.open.minor
            )


async def test_invoice_items_show_interest_fees_payments_and_credit_notes(world):
    ars = account(await svc.balance(world.maria_ids, today=TODAY), "ARS")
    a1, a2 = ars.invoices[1], ars.invoices[2]  # A-4 is the oldest
    assert a1.number == world.number("A-1")
    assert [line.description for line in a1.lines] == [
        "Abono fibra 300 Mb — agosto",
        "Decodificador adicional",
    ]
    decoder = a1.lines[1]
    assert (decoder.quantity, decoder.unit_price, decoder.tax_rate) == ("2", "$\xa03.200,50", "21%")
    assert (decoder.net.text, decoder.tax.text, decoder.total.text) == (
        "$\xa06.401,00",
        "$\xa01.344,21",
        "$\xa07.745,21",
    )
    assert [(i.kind, i.amount.minor) for i in a1.items] == [
        ("interest", 50000),
        ("payment", -2000000),
    ]
    assert a1.items[0].label == "Interés por mora"
    assert a1.items[0].detail == "3% mensual desde el 10/09/2026"
    assert a1.items[1].detail == "Transferencia bancaria"
    assert a1.status == "overdue" and a1.partially_paid and a1.days_overdue == 76
    assert a1.status_label == "Vencida"

    assert [(i.kind, i.amount.minor) for i in a2.items] == [
        ("fee", 150000),
        ("credit_note", -500000),
    ]
    assert a2.items[1].detail == "Bonificación por corte de servicio"


async def test_balance_in_english(world):
    view = await svc.balance(world.maria_ids, today=TODAY, language="en")
    ars = account(view, "ARS")
    assert view.language == "en" and ars.locale == "en_US"
    assert ars.total_due.text == "ARS103,688.21"
    assert ars.invoices[1].items[0].label == "Late-payment interest"
    assert [b.label for b in ars.aging][-1] == "Over 90 days"


async def test_open_dispute_is_listed(world):
    mxn = account(await svc.balance(world.maria_ids, today=TODAY), "MXN")
    assert [d.reason for d in mxn.disputes] == ["Llegó con una pata rota"]
    assert mxn.disputed.minor == 500000
    assert mxn.invoices[0].disputed is not None
    assert mxn.invoices[0].disputed.minor == 500000


async def test_payments_list_their_allocations(world):
    ars = account(await svc.balance(world.maria_ids, today=TODAY), "ARS")
    assert [p.amount.minor for p in ars.payments] == [2000000, 605000]
    assert ars.payments[0].applied_to[0][0] == world.number("A-1")
    assert ars.payments[0].date == "01/10/2026"


async def test_balance_never_shows_another_debtor(world):
    view = await svc.balance([world.julian_id], today=TODAY)
    assert view.debtor is not None and view.debtor.name == "Julián Pérez Ibáñez"
    numbers = {i.number for a in view.accounts for i in a.invoices}
    assert numbers == {world.number("J-1")}


async def test_balance_of_nobody_is_empty(world):
    view = await svc.balance([], today=TODAY)
    assert view.groups == () and view.debtor is None
    assert (await svc.balance([2**40, -3], today=TODAY)).groups == ()


async def test_credit_on_account_is_counted_in_other_items(world):
    """Julián overpays: the credit is an "other" item and the total goes negative."""
    from saldo.services.ledger import apply_payment

    julian = world.accounts["JULIAN"]
    owed = await account_balance(julian)
    await apply_payment(
        account_id=julian,
        provider="bank_transfer",
        provider_payment_id=f"over-{world.tag}",
        amount=owed + 12345,
        received_at=dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC),
        method="credit_card",
    )
    acct = (await svc.balance([world.julian_id], today=TODAY)).accounts[0]
    assert acct.invoices == ()
    assert acct.total_due.minor == -12345 == acct.other.minor
    assert [(i.kind, i.amount.minor) for i in acct.other_items] == [("credit", -12345)]
    assert acct.other_items[0].detail == "Pago no aplicado a facturas · tarjeta de crédito"
    assert not acct.owes


# ---------------------------------------------------------------------------- invoice


async def test_invoice_detail_is_scoped_to_the_debtor(world):
    detail = await svc.invoice_detail(world.maria_ids, world.invoice("A-1"), today=TODAY)
    assert detail.creditor.name == world.creditors["AR"]
    assert detail.debtor.name == "María José Núñez"
    assert detail.invoice.open.minor == ARS_OPEN["A-1"]
    assert detail.paid.minor == 2000000 and detail.charges.minor == 50000

    for foreign in (world.invoice("J-1"), 0, -1, 2**31, 10**12):
        with pytest.raises(NotFound):
            await svc.invoice_detail(world.maria_ids, foreign, today=TODAY)
    with pytest.raises(NotFound):
        await svc.invoice_detail([world.julian_id], world.invoice("A-1"), today=TODAY)
    with pytest.raises(NotFound):
        await svc.invoice_detail([], world.invoice("A-1"), today=TODAY)


async def test_paid_invoice_detail(world):
    detail = await svc.invoice_detail(world.maria_ids, world.invoice("A-5"), today=TODAY)
    assert detail.invoice.status == "paid" and detail.invoice.open.minor == 0
    assert detail.invoice.status_label == "Pagada"


async def test_invoice_pdf_has_lines_parties_and_status(world):
    document = await svc.invoice_pdf(world.maria_ids, world.invoice("A-1"), today=TODAY)
    assert document.filename == f"factura-A-1-{world.tag}.pdf"
    assert document.content.startswith(b"%PDF")
    text = pdf_text(document.content)
    for expected in (
        f"Factura A-1-{world.tag}",
        "María José Núñez",
        "DNI 27345678",
        world.creditors["AR"],
        "Abono fibra 300 Mb — agosto",
        "Decodificador adicional",
        "$ 7.745,21",
        "$ 42.230,21",
        "Interés por mora",
        "3% mensual desde el 10/09/2026",
        "$ 22.730,21",
        "Vencida",
    ):
        assert expected in text, expected


async def test_euro_invoice_pdf_renders_the_euro_sign(world):
    document = await svc.invoice_pdf(world.maria_ids, world.invoice("E-1"), today=TODAY)
    text = pdf_text(document.content)
    assert "499,20 €" in text.replace("\xa0", " ")
    assert "Enciclopedia ilustrada (12 tomos)" in text
    assert "NIF" not in text  # the test creditor has no tax id


# ---------------------------------------------------------------------------- statement


async def test_statement_running_balance(world):
    period = svc.Period(dt.date(2026, 9, 1), dt.date(2026, 10, 31))
    view = await svc.statement(world.maria_ids, period, today=TODAY)
    ars = next(a for a in view.accounts if a.currency == "ARS")
    # before September: A-4 (12.100,00) and A-5 (6.050,00 − its payment) and A-1 billed 01/08
    assert ars.opening.minor == 1210000 + 4223021
    assert [(r.label, r.amount.minor) for r in ars.rows] == [
        ("Interés por mora", 50000),
        (f"Factura A-2-{world.tag}", 3617900),  # same day as the payment, posted before it
        ("Pago recibido", -2000000),
    ]
    balance = ars.opening.minor
    for row in ars.rows:
        balance += row.amount.minor
        assert row.balance.minor == balance
    assert ars.closing.minor == balance
    assert ars.opening.minor + ars.debits.minor - ars.credits.minor == ars.closing.minor
    assert ars.rows[2].credit is not None and ars.rows[2].credit.text == "$\xa020.000,00"
    assert ars.rows[2].debit is None

    everything = svc.Period(dt.date(2026, 1, 1), TODAY)
    whole = await svc.statement(world.maria_ids, everything, today=TODAY)
    assert next(a for a in whole.accounts if a.currency == "ARS").closing.minor == ARS_TOTAL


async def test_statement_pdf_lists_rows_with_balances(world):
    period = svc.Period(dt.date(2026, 9, 1), dt.date(2026, 10, 31))
    document = await svc.statement_pdf(world.maria_ids, period, today=TODAY)
    assert document.filename == "estado-de-cuenta-2026-09-01-2026-10-31.pdf"
    text = pdf_text(document.content)
    for expected in (
        "Estado de cuenta",
        "Del 01/09/2026 al 31/10/2026",
        "María José Núñez",
        "Saldo inicial",
        "$ 54.330,21",  # opening
        "$ 54.830,21",  # after the interest
        "$ 91.009,21",  # after invoice A-2
        "$ 71.009,21",  # closing, after the payment
        "Saldo final",
        world.creditors["MX"],
    ):
        assert expected in text, expected
    for foreign in ("Julián", "J-1"):
        assert foreign not in text

    english = await svc.statement_pdf(world.maria_ids, period, today=TODAY, language="en")
    assert english.filename.startswith("statement-")
    assert "Opening balance" in pdf_text(english.content)


def test_pdf_fonts_are_the_vendored_ones():
    import hashlib
    from pathlib import Path

    from saldo.pdf import FONT_DIR

    listed = (FONT_DIR / "VENDORED.md").read_text(encoding="utf-8")
    for name in ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf"):
        digest = hashlib.sha256(Path(FONT_DIR / name).read_bytes()).hexdigest()
        assert f"`{name}`" in listed and digest in listed, name
    assert (FONT_DIR / "DejaVu-LICENSE").is_file()
