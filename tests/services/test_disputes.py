"""Disputes: opening (items, amounts, one open per item), the thread, resolution (exactly one credit
note, even under concurrent calls), what collection leaves out, the staff queue and the report."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saldo import money
from saldo.errors import Conflict, NotFound, ValidationFailed
from saldo.services import dispute_staff, disputes
from saldo.services.ledger import account_balance, apply_payment, post_entry
from saldo.services.uploads import store_upload
from saldo.tables import (
    Account,
    AuditEvent,
    Dispute,
    DisputeMessage,
    EntryKind,
    Interaction,
    Invoice,
    InvoiceLine,
    LedgerEntry,
    StaffUser,
    Task,
)
from tests.services.helpers import make_account

NOW = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 40


async def make_invoice(
    account: Account, lines: list[tuple[str, int]], due: dt.date = dt.date(2026, 10, 10)
) -> tuple[Invoice, list[int]]:
    """An invoice with `lines` (description, total), charged in full."""
    total = sum(t for _, t in lines)
    invoice = Invoice(
        creditor=account.creditor,
        account=account.id,
        number=f"D-{secrets.token_hex(4)}",
        currency=account.currency,
        issue_date=due - dt.timedelta(days=30),
        due_date=due,
        total=total,
    )
    await invoice.save()
    line_ids = []
    for position, (description, line_total) in enumerate(lines, start=1):
        line = InvoiceLine(
            invoice=invoice.id,
            position=position,
            description=description,
            quantity=Decimal(1),
            unit_price=Decimal(line_total) / 100,
            tax_rate=Decimal(0),
            total=line_total,
        )
        await line.save()
        line_ids.append(line.id)
    await post_entry(
        account_id=account.id,
        kind=EntryKind.charge,
        amount=total,
        currency=account.currency,
        effective_date=invoice.issue_date,
        invoice_id=invoice.id,
        idempotency_key=f"test:invoice:{invoice.id}",
    )
    return invoice, line_ids


async def make_staff() -> int:
    staff = StaffUser(email=f"agente.{secrets.token_hex(4)}@example.com", name="Agente")
    await staff.save()
    return int(staff.id)


async def case(lines: list[tuple[str, int]] | None = None):
    account = await make_account()
    invoice, line_ids = await make_invoice(
        account, lines or [("Abono mensual", 100000), ("Equipo", 50000)]
    )
    return account, invoice, line_ids


async def open_on(account, invoice, **kwargs) -> int:
    kwargs.setdefault("reason_code", "wrong_amount")
    kwargs.setdefault("now", NOW)
    return await disputes.open_dispute(
        [account.debtor], account_id=account.id, invoice_id=invoice.id, **kwargs
    )


async def dispute_row(dispute_id: int) -> Dispute:
    row = await Dispute.objects().get(Dispute.id == dispute_id)
    assert row is not None
    return row


# ---------------------------------------------------------------------------- opening


async def test_a_line_dispute_defaults_to_the_line_total_and_opens_a_task(db):
    account, invoice, (first, _second) = await case()
    dispute_id = await open_on(
        account, invoice, line_id=first, reason_code="defective", reason_text="No funciona"
    )
    row = await dispute_row(dispute_id)
    assert (row.amount, row.invoice_line, row.status) == (100000, first, "open")
    assert row.sla_due_at == NOW + dt.timedelta(days=disputes.SLA_DAYS["defective"])
    task = await Task.objects().get(Task.dedupe_key == f"dispute:{dispute_id}")
    assert task is not None and task.kind == "dispute" and task.status == "open"
    assert task.account == account.id
    logged = (
        await Interaction.objects()
        .where((Interaction.account == account.id) & (Interaction.kind == "dispute_opened"))
        .output(load_json=True)
    )
    assert [i.data["dispute"] for i in logged] == [dispute_id]
    thread = await DisputeMessage.objects().where(DisputeMessage.dispute == dispute_id)
    assert [(m.author_kind, m.body) for m in thread] == [("debtor", "No funciona")]


async def test_a_partial_amount_on_the_invoice_is_kept(db):
    account, invoice, _ = await case()
    dispute_id = await open_on(account, invoice, amount=12345)
    row = await dispute_row(dispute_id)
    assert (row.amount, row.invoice_line) == (12345, None)


async def test_the_amount_never_exceeds_the_open_amount_or_the_line(db):
    account, invoice, (first, second) = await case()
    with pytest.raises(ValidationFailed) as too_much:
        await open_on(account, invoice, amount=150001)
    assert too_much.value.field == "amount"
    with pytest.raises(ValidationFailed) as over_line:
        await open_on(account, invoice, line_id=second, amount=50001)
    assert over_line.value.field == "amount"
    with pytest.raises(ValidationFailed) as zero:
        await open_on(account, invoice, amount=0)
    assert zero.value.field == "amount"
    # a payment lowers the open amount: the line's default is capped at what is left
    await apply_payment(
        account_id=account.id,
        provider="test",
        provider_payment_id=secrets.token_hex(6),
        amount=120000,
        received_at=NOW,
    )
    dispute_id = await open_on(account, invoice, line_id=first)
    assert (await dispute_row(dispute_id)).amount == 30000
    with pytest.raises(ValidationFailed) as nothing_left:
        await open_on(account, invoice, line_id=second)
    assert nothing_left.value.field == "item"
    assert await Dispute.count().where(Dispute.account == account.id) == 1


async def test_one_open_dispute_per_line_and_per_invoice(db):
    account, invoice, (first, second) = await case()
    await open_on(account, invoice, line_id=first)
    with pytest.raises(Conflict):
        await open_on(account, invoice, line_id=first)
    with pytest.raises(Conflict):
        await open_on(account, invoice)  # the whole invoice overlaps the disputed line
    await open_on(account, invoice, line_id=second)  # another line is fine

    other, invoice2, (line2, _) = await case()
    await open_on(other, invoice2)
    with pytest.raises(Conflict):
        await open_on(other, invoice2, line_id=line2)


async def test_two_concurrent_submissions_open_one_dispute(db):
    account, invoice, (first, _) = await case()
    results = await asyncio.gather(
        open_on(account, invoice, line_id=first),
        open_on(account, invoice, line_id=first),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "int"]
    assert await Dispute.count().where(Dispute.invoice == invoice.id) == 1


async def test_someone_elses_invoice_cannot_be_disputed(db):
    account, invoice, _ = await case()
    stranger = await make_account(name="Otra Persona")
    with pytest.raises(ValidationFailed) as error:
        await disputes.open_dispute(
            [stranger.debtor],
            account_id=account.id,
            invoice_id=invoice.id,
            reason_code="other",
            reason_text="no es mía",
            now=NOW,
        )
    assert error.value.field == "item"
    with pytest.raises(ValidationFailed) as bad_reason:
        await open_on(account, invoice, reason_code="because")
    assert bad_reason.value.field == "reason"
    with pytest.raises(ValidationFailed) as no_text:
        await open_on(account, invoice, reason_code="other")
    assert no_text.value.field == "text"
    assert await Dispute.count().where(Dispute.invoice == invoice.id) == 0


async def test_an_attachment_belongs_to_one_thread_only(db, tmp_path: Path):
    account, invoice, (first, second) = await case()
    attachment = await store_upload(PNG, "foto.png", data_dir=tmp_path)
    dispute_id = await open_on(account, invoice, line_id=first, attachment_ids=[attachment])
    thread = await DisputeMessage.objects().where(DisputeMessage.dispute == dispute_id)
    assert [m.attachment for m in thread] == [attachment]
    with pytest.raises(ValidationFailed) as reused:
        await open_on(account, invoice, line_id=second, attachment_ids=[attachment])
    assert reused.value.field == "attachment"


# ---------------------------------------------------------------------------- the thread


async def test_both_sides_write_and_the_status_follows(db):
    account, invoice, _ = await case()
    dispute_id = await open_on(account, invoice)
    staff_id = await make_staff()
    await disputes.post_message(dispute_id, "¿Tiene la factura?", staff_id=staff_id, now=NOW)
    assert (await dispute_row(dispute_id)).status == "waiting_debtor"
    await disputes.post_message(dispute_id, "Sí, adjunta", debtor_ids=[account.debtor], now=NOW)
    assert (await dispute_row(dispute_id)).status == "in_review"
    thread = await DisputeMessage.objects().where(DisputeMessage.dispute == dispute_id)
    assert [(m.author_kind, m.staff) for m in thread] == [("staff", staff_id), ("debtor", None)]

    stranger = await make_account(name="Otra Persona")
    with pytest.raises(NotFound):
        await disputes.post_message(dispute_id, "hola", debtor_ids=[stranger.debtor], now=NOW)
    with pytest.raises(ValidationFailed):
        await disputes.post_message(dispute_id, "   ", debtor_ids=[account.debtor], now=NOW)
    await disputes.resolve(
        dispute_id, outcome="reject", explanation="Está bien facturado", staff_id=staff_id, now=NOW
    )
    with pytest.raises(Conflict):
        await disputes.post_message(dispute_id, "¿Y?", debtor_ids=[account.debtor], now=NOW)


# ---------------------------------------------------------------------------- resolution


async def credit_notes(invoice_id: int) -> list[LedgerEntry]:
    return (
        await LedgerEntry.objects()
        .where((LedgerEntry.invoice == invoice_id) & (LedgerEntry.kind == EntryKind.credit_note))
        .output(load_json=True)
    )


async def test_accepting_posts_one_credit_note_for_the_disputed_amount(db):
    account, invoice, (first, _) = await case()
    dispute_id = await open_on(account, invoice, line_id=first, reason_code="not_received")
    staff_id = await make_staff()
    entry_id = await disputes.resolve(dispute_id, outcome="accept", staff_id=staff_id, now=NOW)
    notes = await credit_notes(invoice.id)
    assert [(n.id, n.amount) for n in notes] == [(entry_id, -100000)]
    assert notes[0].idempotency_key == f"dispute:{dispute_id}:resolution"
    assert notes[0].basis == {"dispute": dispute_id, "reason": "not_received", "outcome": "accept"}
    assert await account_balance(account.id) == 50000
    row = await dispute_row(dispute_id)
    assert (row.status, row.resolved_amount, row.resolved_at) == ("accepted", 100000, NOW)
    last = (
        await DisputeMessage.objects()
        .where(DisputeMessage.dispute == dispute_id)
        .order_by(DisputeMessage.id, ascending=False)
        .first()
    )
    assert last is not None and last.author_kind == "staff" and "Aceptamos" in last.body
    audit = (
        await AuditEvent.objects()
        .where((AuditEvent.object_type == "dispute") & (AuditEvent.object_id == str(dispute_id)))
        .output(load_json=True)
    )
    assert [(a.action, a.staff, a.after["resolved_amount"]) for a in audit] == [
        ("dispute.resolve", staff_id, 100000)
    ]
    task = await Task.objects().get(Task.dedupe_key == f"dispute:{dispute_id}")
    assert task is not None and task.status == "done"
    assert await disputes.disputed_amounts(account.id) == {}


async def test_concurrent_partial_resolutions_credit_once(db):
    account, invoice, _ = await case()
    dispute_id = await open_on(account, invoice, amount=80000)
    staff_id = await make_staff()
    results = await asyncio.gather(
        *(
            disputes.resolve(
                dispute_id,
                outcome="partial",
                amount=30000,
                explanation="Le reconocemos el equipo",
                staff_id=staff_id,
                now=NOW,
            )
            for _ in range(2)
        ),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "int"]
    assert [n.amount for n in await credit_notes(invoice.id)] == [-30000]
    assert await account_balance(account.id) == 150000 - 30000
    row = await dispute_row(dispute_id)
    assert (row.status, row.resolved_amount) == ("partially_accepted", 30000)
    assert row.resolution == "Le reconocemos el equipo"
    with pytest.raises(Conflict):
        await disputes.resolve(dispute_id, outcome="accept", staff_id=staff_id, now=NOW)
    assert len(await credit_notes(invoice.id)) == 1
    assert (
        await AuditEvent.count().where(
            (AuditEvent.object_type == "dispute") & (AuditEvent.object_id == str(dispute_id))
        )
        == 1
    )


async def test_rejecting_credits_nothing_and_needs_an_explanation(db):
    account, invoice, _ = await case()
    dispute_id = await open_on(account, invoice)
    staff_id = await make_staff()
    with pytest.raises(ValidationFailed) as unexplained:
        await disputes.resolve(dispute_id, outcome="reject", staff_id=staff_id, now=NOW)
    assert unexplained.value.field == "explanation"
    assert (
        await disputes.resolve(
            dispute_id,
            outcome="reject",
            explanation="Entregado el 3/10",
            staff_id=staff_id,
            now=NOW,
        )
        is None
    )
    assert await credit_notes(invoice.id) == []
    assert await account_balance(account.id) == 150000
    assert (await dispute_row(dispute_id)).status == "rejected"


async def test_a_partial_amount_is_between_zero_and_the_disputed_amount(db):
    account, invoice, _ = await case()
    dispute_id = await open_on(account, invoice, amount=50000)
    staff_id = await make_staff()
    for amount in (None, 0, 50000, 60000):
        with pytest.raises(ValidationFailed) as bad:
            await disputes.resolve(
                dispute_id,
                outcome="partial",
                amount=amount,
                explanation="x",
                staff_id=staff_id,
                now=NOW,
            )
        assert bad.value.field == "amount"
    with pytest.raises(ValidationFailed):
        await disputes.resolve(dispute_id, outcome="maybe", staff_id=staff_id, now=NOW)
    with pytest.raises(NotFound):
        await disputes.resolve(2**31 - 2, outcome="accept", staff_id=staff_id, now=NOW)
    assert (await dispute_row(dispute_id)).status == "open"


# ---------------------------------------------------------------------------- collection


async def test_only_the_disputed_amount_stops_being_collected(db):
    account, invoice, (first, second) = await case()
    other_invoice, _ = await make_invoice(account, [("Servicio técnico", 20000)])
    await open_on(account, invoice, line_id=first, amount=40000)
    await open_on(account, invoice, line_id=second, amount=5000)
    closing = await open_on(account, other_invoice, amount=20000)
    assert await disputes.disputed_amounts(account.id) == {
        invoice.id: 45000,
        other_invoice.id: 20000,
    }
    await disputes.resolve(closing, outcome="accept", staff_id=await make_staff(), now=NOW)
    assert await disputes.disputed_amounts(account.id) == {invoice.id: 45000}
    # a payment leaves only 30.000 open: no more than that is held back
    await apply_payment(
        account_id=account.id,
        provider="test",
        provider_payment_id=secrets.token_hex(6),
        amount=120000,
        received_at=NOW,
        preferred_invoice_ids=[invoice.id],
    )
    assert await disputes.disputed_amounts(account.id) == {invoice.id: 30000}


# ---------------------------------------------------------------------------- staff queue


async def test_the_queue_puts_the_nearest_sla_first_and_flags_overdue_ones(db):
    account, invoice, (first, second) = await case()
    other, invoice2, _ = await case()
    nine_days_ago, three_days_ago = NOW - dt.timedelta(days=9), NOW - dt.timedelta(days=3)
    old = await open_on(account, invoice, line_id=first, reason_code="duplicate", now=nine_days_ago)
    recent = await open_on(account, invoice, line_id=second, reason_code="defective", now=NOW)
    middle = await open_on(other, invoice2, reason_code="wrong_amount", now=three_days_ago)
    later = NOW + dt.timedelta(hours=1)
    page = await dispute_staff.dispute_queue(now=later, limit=500)
    mine = [i for i in page.items if i.id in {old, recent, middle}]
    assert [i.id for i in mine] == [old, middle, recent]
    by_id = {i.id: i for i in mine}
    assert by_id[old].overdue and not by_id[middle].overdue and not by_id[recent].overdue
    assert by_id[old].age == dt.timedelta(days=9, hours=1)
    assert by_id[old].remaining == dt.timedelta(days=5) - dt.timedelta(days=9, hours=1)
    assert by_id[recent].remaining == dt.timedelta(days=10) - dt.timedelta(hours=1)
    assert by_id[middle].reason == "El importe es incorrecto"
    assert page.overdue >= 1

    await disputes.resolve(old, outcome="accept", staff_id=await make_staff(), now=later)
    still_open = await dispute_staff.dispute_queue(now=later, limit=500)
    assert old not in {i.id for i in still_open.items}
    closed = await dispute_staff.dispute_queue(now=later, status="closed", limit=500)
    found = next(i for i in closed.items if i.id == old)
    assert found.status == "accepted" and not found.overdue and found.remaining is None
    with pytest.raises(ValidationFailed):
        await dispute_staff.dispute_queue(now=later, status="whatever")


async def test_staff_see_the_whole_thread(db, tmp_path: Path):
    account, invoice, _ = await case()
    attachment = await store_upload(PNG, "remito.png", data_dir=tmp_path)
    dispute_id = await open_on(
        account,
        invoice,
        reason_code="not_received",
        reason_text="Nunca llegó",
        attachment_ids=[attachment],
    )
    staff_id = await make_staff()
    await disputes.post_message(dispute_id, "Lo revisamos", staff_id=staff_id, now=NOW)
    view = await dispute_staff.staff_dispute(dispute_id, now=NOW)
    assert [(m.author_kind, m.body) for m in view.messages] == [
        ("debtor", "Nunca llegó"),
        ("staff", "Lo revisamos"),
    ]
    assert view.messages[0].author == "Ñandú Pérez"
    assert view.messages[0].attachment is not None
    stored = await dispute_staff.staff_attachment(dispute_id, attachment, data_dir=tmp_path)
    assert (stored.content, stored.content_type) == (PNG, "image/png")
    with pytest.raises(NotFound):
        await dispute_staff.staff_attachment(dispute_id + 1, attachment, data_dir=tmp_path)


# ---------------------------------------------------------------------------- report


async def test_the_reason_report_counts_and_adds_up_per_reason_and_outcome(db):
    day = dt.datetime(2019, 5, 6, 12, 0, tzinfo=dt.UTC)  # no other test opens disputes then
    staff_id = await make_staff()
    a1, i1, (l1, l2) = await case()
    a2, i2, _ = await case()
    a3, i3, _ = await case()
    first = await open_on(a1, i1, line_id=l1, reason_code="not_received", now=day)
    await open_on(a1, i1, line_id=l2, reason_code="not_received", now=day)
    third = await open_on(a2, i2, amount=9000, reason_code="duplicate", now=day)
    await open_on(a3, i3, amount=100, reason_code="duplicate", now=day - dt.timedelta(days=1))
    await disputes.resolve(first, outcome="accept", staff_id=staff_id, now=day)
    await disputes.resolve(
        third, outcome="partial", amount=4000, explanation="Parcial", staff_id=staff_id, now=day
    )
    report = await dispute_staff.reason_report(date_from=day.date(), date_to=day.date())
    assert [
        (r.reason_code, r.outcome, r.currency, r.count, r.disputed, r.credited) for r in report.rows
    ] == [
        ("not_received", "accepted", "ARS", 1, 100000, 100000),
        ("not_received", "open", "ARS", 1, 50000, 0),
        ("duplicate", "partially_accepted", "ARS", 1, 9000, 4000),
    ]
    assert report.count_by_reason() == {"not_received": 2, "duplicate": 1}
    wider = await dispute_staff.reason_report(
        date_from=day.date() - dt.timedelta(days=1), date_to=day.date()
    )
    assert wider.count_by_outcome() == {"accepted": 1, "open": 2, "partially_accepted": 1}
    with pytest.raises(ValidationFailed):
        await dispute_staff.reason_report(date_from=day.date(), date_to=dt.date(2019, 1, 1))


# ---------------------------------------------------------------------------- amounts as typed

LOCALES = [("es_AR", "ARS"), ("es_MX", "MXN"), ("en_US", "USD"), ("es_ES", "EUR"),
           ("es_CL", "CLP"), ("es_CO", "COP"), ("es_PY", "PYG"), ("es", "UYU")]  # fmt: skip


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(min_value=0, max_value=10**13), st.sampled_from(LOCALES))
def test_an_amount_shown_to_the_debtor_reads_back_as_the_same_amount(minor, place):
    locale, currency = place
    text = money.format_money(minor, currency, locale)
    assert disputes.parse_user_amount(text, currency, locale) == minor


@pytest.mark.parametrize(
    ("text", "locale", "minor"),
    [("1500", "es_AR", 150000), ("1500,50", "es_AR", 150050), ("1.500", "es_AR", 150000),
     ("1500.50", "es_AR", 150050), ("1,500.50", "en_US", 150050), ("1500,5", "es_MX", 150050),
     ("$ 2.000", "es_AR", 200000)],
)  # fmt: skip
def test_amounts_typed_the_local_way_or_plainly(text, locale, minor):
    assert disputes.parse_user_amount(text, "ARS", locale) == minor


@pytest.mark.parametrize("text", ["", "abc", "-5", "1,234", "12 34", "0,001", "1.2.3,4,5"])
def test_what_is_not_an_amount_is_refused(text):
    with pytest.raises(ValueError):
        disputes.parse_user_amount(text, "ARS", "es_AR")
