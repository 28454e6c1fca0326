"""Finance clears unapplied bank lines by hand and reads the day's reconciliation."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from saldo.errors import Conflict, NotFound, ValidationFailed
from saldo.references import payment_reference
from saldo.services.bank_import import CurrencyTotal, import_bank_statement
from saldo.services.bank_queue import (
    assign_line,
    bank_line,
    mark_not_ours,
    split_line,
    unapplied_lines,
)
from saldo.services.ledger import account_balance, apply_payment, open_invoices
from saldo.services.reconciliation import (
    EXPORT_COLUMNS,
    SourceTotal,
    export_csv,
    reconciliation_summary,
)
from saldo.tables import (
    AuditEvent,
    BankLine,
    Creditor,
    Debtor,
    Interaction,
    Payment,
    PaymentAllocation,
)

from .bank_support import NOW, insert_line, make_staff, row, statement, uid
from .helpers import make_account, make_invoice


def _json(value: object) -> dict:
    return json.loads(value) if isinstance(value, str) else value  # type: ignore[return-value]


async def _payments(line_id: int) -> list[dict]:
    return await Payment.select().where(Payment.bank_line == line_id).order_by(Payment.id)


# ---------------------------------------------------------------------------- assign


async def test_assigning_a_line_pays_the_chosen_invoice_and_is_audited(db):
    account = await make_account()
    older = await make_invoice(account, uid("A-"), 10_000, dt.date(2026, 8, 1))
    chosen = await make_invoice(account, uid("A-"), 5_000, dt.date(2026, 9, 1))
    line = await insert_line(7_000)
    staff = await make_staff()

    done = await assign_line(
        line.id, account_id=account.id, invoice_ids=[chosen.id], staff_id=staff.id, now=NOW
    )

    assert done.status == "assigned" and len(done.payment_ids) == 1
    view = await bank_line(line.id)
    assert (view.status, view.account_id, view.match_rule) == ("assigned", account.id, "manual")
    assert (view.resolved_by, view.resolved_at) == (staff.id, NOW)
    assert view.match_note == f"Asignado a mano por {staff.email}; Factura {chosen.number}"
    assert view.payment_ids == done.payment_ids
    assert view.account_reference == payment_reference(account.id)
    [payment] = await _payments(line.id)
    assert (payment["provider"], payment["provider_payment_id"]) == ("bank", line.transaction_id)
    assert await open_invoices(account.id) == [(older.id, 8_000)]
    event = await AuditEvent.objects().get(
        (AuditEvent.action == "bank_line.assign") & (AuditEvent.object_id == str(line.id))
    )
    assert (event.staff, event.actor, event.object_type) == (staff.id, staff.email, "bank_line")
    assert _json(event.before)["status"] == "unmatched"
    after = _json(event.after)
    assert (after["status"], after["account"], after["invoice_ids"]) == (
        "assigned",
        account.id,
        [chosen.id],
    )
    timeline = await Interaction.objects().get(
        (Interaction.account == account.id) & (Interaction.kind == "payment")
    )
    assert timeline.staff == staff.id


async def test_a_resolved_line_answers_conflict_to_every_operation(db):
    account = await make_account()
    await make_invoice(account, uid("B-"), 10_000, dt.date(2026, 8, 1))
    line = await insert_line(3_000)
    staff = await make_staff()
    await assign_line(line.id, account_id=account.id, staff_id=staff.id, now=NOW)

    with pytest.raises(Conflict, match="ya fue asignado a mano"):
        await assign_line(line.id, account_id=account.id, staff_id=staff.id, now=NOW)
    with pytest.raises(Conflict):
        await split_line(
            line.id, [(account.id, 1_000, ()), (account.id, 2_000, ())], staff_id=staff.id, now=NOW
        )
    with pytest.raises(Conflict):
        await mark_not_ours(line.id, note="duplicado", staff_id=staff.id, now=NOW)
    assert await account_balance(account.id) == 7_000
    assert len(await _payments(line.id)) == 1


async def test_assigning_to_the_wrong_account_or_invoice_names_the_field(db):
    pesos, dollars, stranger = (
        await make_account(),
        await make_account("USD"),
        await make_account(),
    )
    foreign = await make_invoice(stranger, uid("C-"), 1_000, dt.date(2026, 8, 1))
    line = await insert_line(1_000)
    staff = await make_staff()

    with pytest.raises(ValidationFailed, match="USD") as wrong_currency:
        await assign_line(line.id, account_id=dollars.id, staff_id=staff.id, now=NOW)
    assert wrong_currency.value.field == "account_id"
    with pytest.raises(ValidationFailed) as missing:
        await assign_line(line.id, account_id=2_000_000_000, staff_id=staff.id, now=NOW)
    assert missing.value.field == "account_id"
    with pytest.raises(ValidationFailed) as not_theirs:
        await assign_line(
            line.id, account_id=pesos.id, invoice_ids=[foreign.id], staff_id=staff.id, now=NOW
        )
    assert not_theirs.value.field == "invoice_ids"
    with pytest.raises(NotFound):
        await assign_line(2_000_000_000, account_id=pesos.id, staff_id=staff.id, now=NOW)

    assert (await bank_line(line.id)).status == "unmatched"
    assert await _payments(line.id) == []
    assert not await AuditEvent.exists().where(
        (AuditEvent.object_type == "bank_line") & (AuditEvent.object_id == str(line.id))
    )


# ---------------------------------------------------------------------------- split


async def test_a_split_posts_one_payment_per_part(db):
    first, second = await make_account(), await make_account()
    await make_invoice(first, uid("D-"), 6_000, dt.date(2026, 8, 1))
    owed = await make_invoice(second, uid("D-"), 9_000, dt.date(2026, 8, 1))
    line = await insert_line(10_000)
    staff = await make_staff()

    done = await split_line(
        line.id, [(first.id, 6_000, ()), (second.id, 4_000, [owed.id])], staff_id=staff.id, now=NOW
    )

    assert done.status == "split"
    payments = await _payments(line.id)
    assert [(p["provider_payment_id"], p["account"], p["amount"]) for p in payments] == [
        (f"{line.transaction_id}:1", first.id, 6_000),
        (f"{line.transaction_id}:2", second.id, 4_000),
    ]
    assert await account_balance(first.id) == 0
    assert await open_invoices(second.id) == [(owed.id, 5_000)]
    view = await bank_line(line.id)
    assert (view.status, view.match_rule, view.account_id) == ("split", "split", None)
    assert view.match_note == f"Dividido en 2 partes por {staff.email}"
    event = await AuditEvent.objects().get(
        (AuditEvent.action == "bank_line.split") & (AuditEvent.object_id == str(line.id))
    )
    assert [p["amount"] for p in _json(event.after)["parts"]] == [6_000, 4_000]


@pytest.mark.parametrize(
    ("parts", "field", "message"),
    [
        ([(0, 6_000), (1, 3_999)], "parts", "Las partes suman 99.99 y el movimiento es de 100.00"),
        ([(0, 6_000), (1, 4_001)], "parts", "suman 100.01"),
        ([(0, 10_000)], "parts", "entre 2 y 50 partes"),
        ([(0, 10_500), (1, -500)], "parts.1.amount", "positivo"),
        ([(0, 5_000), (2, 5_000)], "parts.1.account_id", "USD"),
    ],
)
async def test_a_split_that_does_not_add_up_is_refused(db, parts, field, message):
    accounts = [await make_account(), await make_account(), await make_account("USD")]
    line = await insert_line(10_000)
    staff = await make_staff()
    with pytest.raises(ValidationFailed, match=message) as refused:
        await split_line(
            line.id,
            [(accounts[i].id, amount, ()) for i, amount in parts],
            staff_id=staff.id,
            now=NOW,
        )
    assert refused.value.field == field
    assert (await bank_line(line.id)).status == "unmatched"
    assert await _payments(line.id) == []


@st.composite
def splits(draw: st.DrawFn) -> tuple[int, list[tuple[int, int]]]:
    """A line amount and parts (account index, amount); often the last part makes them add up."""
    line_amount = draw(st.integers(1, 10**12))
    shares = draw(
        st.lists(st.tuples(st.integers(0, 1), st.integers(-3, line_amount)), min_size=1, max_size=6)
    )
    if draw(st.sampled_from([True, True, True, False])):
        *head, (who, _) = shares
        shares = [*head, (who, line_amount - sum(amount for _, amount in head))]
    return line_amount, shares


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(split=splits())
async def test_any_split_the_service_accepts_sums_to_the_line_and_posts_that_much(db, split):
    line_amount, shares = split
    accounts = [await make_account("CLP"), await make_account("CLP")]
    for account in accounts:
        await make_invoice(account, uid("P-"), 50_000, dt.date(2026, 8, 1))
    parts = [(accounts[who].id, amount, ()) for who, amount in shares]
    line = await insert_line(line_amount, currency="CLP")
    staff = await make_staff()
    before = sum([await account_balance(a.id) for a in accounts])

    try:
        await split_line(line.id, parts, staff_id=staff.id, now=NOW)
    except ValidationFailed:
        assert (await bank_line(line.id)).status == "unmatched"
        assert await _payments(line.id) == []
        assert sum([await account_balance(a.id) for a in accounts]) == before
        return

    event("accepted")
    assert sum(amount for _, amount, _ in parts) == line_amount
    assert all(amount > 0 for _, amount, _ in parts)
    payments = await _payments(line.id)
    assert [p["amount"] for p in payments] == [amount for _, amount, _ in parts]
    allocated = await PaymentAllocation.select(PaymentAllocation.amount).where(
        PaymentAllocation.payment.is_in([p["id"] for p in payments])
    )
    assert sum(a["amount"] for a in allocated) == line_amount
    assert sum([await account_balance(a.id) for a in accounts]) == before - line_amount


# ---------------------------------------------------------------------------- not ours


async def test_a_line_that_is_not_ours_leaves_the_queue_with_its_reason(db):
    line = await insert_line(4_200, booked_on=dt.date(2001, 1, 9))
    staff = await make_staff()
    with pytest.raises(ValidationFailed) as empty:
        await mark_not_ours(line.id, note="   ", staff_id=staff.id, now=NOW)
    assert empty.value.field == "note"

    done = await mark_not_ours(
        line.id, note="Reintegro  de comisión del banco", staff_id=staff.id, now=NOW
    )

    assert (done.status, done.payment_ids) == ("not_ours", ())
    view = await bank_line(line.id)
    assert (view.status, view.match_note) == ("not_ours", "Reintegro de comisión del banco")
    assert await _payments(line.id) == []
    page = await unapplied_lines(limit=500)
    assert line.id not in [x.id for x in page.lines]
    event = await AuditEvent.objects().get(
        (AuditEvent.action == "bank_line.not_ours") & (AuditEvent.object_id == str(line.id))
    )
    assert _json(event.after)["note"] == "Reintegro de comisión del banco"


# ---------------------------------------------------------------------------- the queue


async def test_the_queue_lists_unmatched_lines_oldest_first_by_page(db):
    days = [dt.date(1901, 1, d) for d in (3, 1, 2)]
    lines = [
        await insert_line(1_000 * (i + 1), currency="PYG", booked_on=d) for i, d in enumerate(days)
    ]
    pesos = await insert_line(500, booked_on=dt.date(1900, 12, 31))

    first = await unapplied_lines(limit=2, currency="PYG")
    second = await unapplied_lines(limit=2, offset=2, currency="PYG")

    assert [x.id for x in first.lines] == [lines[1].id, lines[2].id]
    assert second.lines[0].id == lines[0].id
    assert pesos.id not in [x.id for x in first.lines + second.lines]
    assert first.total >= 3 and {t.currency for t in first.totals} == {"PYG"}
    assert first.totals[0].count == first.total
    assert first.lines[0].amount == 2_000 and first.lines[0].filename == "prueba.csv"
    everything = await unapplied_lines(limit=1)
    assert everything.lines[0].id == pesos.id

    for bad, field in (
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"currency": "XXX"}, "currency"),
    ):
        with pytest.raises(ValidationFailed) as refused:
            await unapplied_lines(**bad)
        assert refused.value.field == field


# ---------------------------------------------------------------------------- summary and export


async def test_the_days_summary_counts_each_source_and_the_lines(db, tmp_path):
    day = dt.date(2030, 5, 17)
    online, by_hand = await make_account(), await make_account()
    await make_invoice(online, uid("S-"), 100_000, dt.date(2030, 4, 1))
    await make_invoice(by_hand, uid("S-"), 100_000, dt.date(2030, 4, 1))
    staff = await make_staff()
    await apply_payment(
        account_id=online.id,
        provider="simulated",
        provider_payment_id=uid("SIM-"),
        amount=5_000,
        received_at=dt.datetime(2030, 5, 17, 15, 0, tzinfo=dt.UTC),
    )
    reference = payment_reference(online.id)
    await import_bank_statement(
        statement(
            tmp_path / "dia.csv",
            [
                row("20.00", reference=reference, booked_on=day),
                row("11.00", reference=reference, booked_on=day + dt.timedelta(days=1)),
            ],
        ),
        now=NOW,
    )
    assigned = await insert_line(3_000, booked_on=day)
    await assign_line(assigned.id, account_id=by_hand.id, staff_id=staff.id, now=NOW)
    split = await insert_line(4_000, booked_on=day)
    await split_line(
        split.id, [(online.id, 1_500, ()), (by_hand.id, 2_500, ())], staff_id=staff.id, now=NOW
    )
    await insert_line(700, booked_on=day)
    ignored = await insert_line(900, booked_on=day)
    await mark_not_ours(ignored.id, note="Transferencia propia", staff_id=staff.id, now=NOW)

    summary = await reconciliation_summary(day=day)

    assert summary.incoming == (
        SourceTotal("simulated", "Pago en línea (modo simulado)", "ARS", 1, 5_000),
        SourceTotal("bank_auto", "Banco, conciliado automáticamente", "ARS", 1, 2_000),
        SourceTotal("bank_manual", "Banco, asignado a mano", "ARS", 3, 7_000),
    )
    assert summary.incoming_total("ARS") == 14_000
    assert summary.matched == (CurrencyTotal("ARS", 3, 9_000),)
    assert summary.unmatched == (CurrencyTotal("ARS", 1, 700),)
    assert summary.not_ours == (CurrencyTotal("ARS", 1, 900),)
    [backlog] = [t for t in summary.backlog if t.currency == "ARS"]
    assert backlog.count >= 1 and backlog.amount >= 700
    quiet = await reconciliation_summary(day=dt.date(2030, 5, 16))
    assert quiet.incoming == () and quiet.bank_lines == ()


async def test_the_export_has_one_row_per_allocation(db, tmp_path):
    day = dt.date(2030, 6, 20)
    pesos, chilean = await make_account(), await make_account("CLP")
    creditor_name = f"=Cobranzas {uid()}"
    await Creditor.update({Creditor.name: creditor_name}).where(Creditor.id == pesos.creditor)
    debtor = await Debtor.objects().get(Debtor.id == pesos.debtor)
    invoice = await make_invoice(pesos, uid("F-"), 3_000, dt.date(2030, 5, 1))
    tx = uid("TX-")
    await import_bank_statement(
        statement(
            tmp_path / "export.csv",
            [
                row(
                    "50.25",
                    reference=f"{payment_reference(pesos.id)} {invoice.number}",
                    booked_on=day,
                    transaction_id=tx,
                )
            ],
        ),
        now=NOW,
    )
    online = await apply_payment(
        account_id=chilean.id,
        provider="simulated",
        provider_payment_id=uid("SIM-"),
        amount=12_345,
        received_at=dt.datetime(2030, 6, 20, 23, 0, tzinfo=dt.UTC),
    )
    await apply_payment(
        account_id=chilean.id,
        provider="simulated",
        provider_payment_id=uid("SIM-"),
        amount=1,
        received_at=dt.datetime(2030, 6, 21, 9, 0, tzinfo=dt.UTC),
    )
    [bank_payment] = await Payment.select().where(
        (Payment.provider == "bank") & (Payment.provider_payment_id == tx)
    )

    exported = await export_csv(date_from=day, date_to=day)

    assert exported.endswith("\r\n")
    table = list(csv.reader(io.StringIO(exported)))
    assert tuple(table[0]) == EXPORT_COLUMNS
    rows = [dict(zip(EXPORT_COLUMNS, r, strict=True)) for r in table[1:]]
    assert rows == [
        {
            "date": "2030-06-20",
            "source": "bank_auto",
            "payment_id": str(bank_payment["id"]),
            "transaction_id": tx,
            "creditor": f"'{creditor_name}",
            "debtor_external_id": debtor.external_id,
            "account_reference": payment_reference(pesos.id),
            "invoice_number": invoice.number,
            "amount": "30.00",
            "currency": "ARS",
            "rule": "reference",
        },
        {
            "date": "2030-06-20",
            "source": "bank_auto",
            "payment_id": str(bank_payment["id"]),
            "transaction_id": tx,
            "creditor": f"'{creditor_name}",
            "debtor_external_id": debtor.external_id,
            "account_reference": payment_reference(pesos.id),
            "invoice_number": "saldo a favor",
            "amount": "20.25",
            "currency": "ARS",
            "rule": "reference",
        },
        {
            "date": "2030-06-20",
            "source": "simulated",
            "payment_id": str(online.payment_id),
            "transaction_id": rows[2]["transaction_id"],
            "creditor": rows[2]["creditor"],
            "debtor_external_id": rows[2]["debtor_external_id"],
            "account_reference": payment_reference(chilean.id),
            "invoice_number": "saldo a favor",
            "amount": "12345",
            "currency": "CLP",
            "rule": "",
        },
    ]
    assert rows[2]["transaction_id"].startswith("SIM-")
    with pytest.raises(ValidationFailed) as backwards:
        await export_csv(date_from=day, date_to=day - dt.timedelta(days=1))
    assert backwards.value.field == "date_to"
    assert await BankLine.exists().where(BankLine.transaction_id == tx)
