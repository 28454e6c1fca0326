"""The account 360°: every part of the case, figures that agree with the ledger, and the one
timeline merged newest first across interactions, ledger entries and messages."""

from __future__ import annotations

import datetime as dt

import pytest

from saldo.errors import NotFound
from saldo.services.account_360 import account_360, timeline
from saldo.services.ledger import account_balance
from saldo.services.plan_records import interaction
from saldo.tables import Interaction
from tests.services.queue_world import build_rich_account


async def test_the_360_has_the_case_the_money_and_every_commitment(db):
    rich = await build_rich_account()
    view = await account_360(rich.account_id, today=rich.today, now=rich.now)
    balance = await account_balance(rich.account_id)

    assert view.debtor.name == "Ñandú Ibáñez" and view.debtor.document_number == rich.document
    assert view.header.segment == "late" and view.header.risk_score == 55
    assert view.creditor.legal_name == "Conecta Telecom S.A."
    # the money: the portal's own computation, which adds up to the ledger
    assert view.view.total_due.minor == balance
    assert sum(b.amount.minor for b in view.view.aging) == sum(
        i.open.minor for i in view.view.invoices
    )
    assert [i.number for i in view.view.invoices] == ["A-0001-00000042", "A-0001-00000077"]
    assert [p.number for p in view.view.paid_invoices] == ["A-0001-00000011"]
    assert view.ledger is not None and view.ledger.closing.minor == balance
    assert view.ledger.rows[-1].balance.minor == balance
    assert {r.label for r in view.ledger.rows} >= {"Interés por mora", "Cargo por mora"}
    # commitments and conversations
    assert [(p.status, p.amount.minor) for p in view.promises] == [("kept", 100_000)]
    assert [(p.status, p.installments) for p in view.plans] == [("rejected", 6)]
    assert [(d.status, d.invoice_number) for d in view.disputes] == [("open", "A-0001-00000077")]
    assert [(m.channel, m.status, m.blocked_reason) for m in view.messages] == [
        ("sms", "blocked", "opted_out"),
        ("email", "sent", ""),
    ]
    assert view.blocked_messages == 1
    assert [t.title for t in view.tasks] == ["Llamar por la A-42"]
    # preferences: sms opted out, as the portal stored it
    assert view.preferences.form.opted_in["sms"] is False
    assert view.preferences.form.opted_in["email"] is True
    assert not view.staff_paused and view.open_promise is None


async def test_the_timeline_merges_everything_newest_first_in_pages(db):
    rich = await build_rich_account()
    await interaction(
        account_id=rich.account_id,
        debtor_id=rich.debtor_id,
        kind="message_sent",
        summary="logged by the outbox",
        now=rich.now,
        channel="email",
    )
    first = await timeline(rich.account_id, per_page=5)
    items = list(first.items)
    page = 1
    while first.has_more:
        page += 1
        first = await timeline(rich.account_id, page=page, per_page=5)
        items += first.items
    stamps = [i.at for i in items]
    assert stamps == sorted(stamps, reverse=True)
    sources = {i.source for i in items}
    assert sources == {"interaction", "ledger", "message"}
    kinds = [i.kind for i in items]
    # the outbox's own log line is the message row itself, shown once
    assert "message_sent" not in kinds
    assert "portal_login" in kinds  # a sign-in belongs to the debtor: on each of their accounts
    assert "payment_claimed" in kinds
    assert all(i.summary != "De otra cuenta" for i in items)  # nobody else's
    blocked = next(i for i in items if i.source == "message" and i.status == "blocked")
    assert blocked.reason == "opted_out" and blocked.category == "message"
    charges = [i for i in items if i.kind == "charge"]
    assert len(charges) == 3 and all(i.category == "money" and i.amount for i in charges)
    assert str(items[0].at.tzinfo) == "America/Argentina/Buenos_Aires"


async def test_a_new_contact_is_on_top_of_the_timeline(db):
    rich = await build_rich_account()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    await Interaction(
        account=rich.account_id,
        debtor=rich.debtor_id,
        kind="note",
        summary="Arriba de todo",
        staff=rich.staff_id,
        occurred_at=later,
    ).save()
    page = await timeline(rich.account_id)
    assert page.items[0].summary == "Arriba de todo"
    assert page.items[0].staff == "Andrés Agente" and page.items[0].category == "contact"


async def test_no_such_account(db):
    with pytest.raises(NotFound):
        await account_360(2**31 - 5, today=dt.date.today(), now=dt.datetime.now(dt.UTC))
    with pytest.raises(NotFound):
        await timeline(0)
