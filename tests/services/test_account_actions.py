"""What an agent does on an account: contacts (with a promise and the next action), pauses,
stage changes and the escalation to legal collection — each with its timeline entry and its
audit event, and nothing stored when the form is wrong."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from saldo.errors import Conflict, NotFound, ValidationFailed
from saldo.services import account_actions as actions
from saldo.services.account_actions import InvalidAction
from saldo.services.pauses import paused_items
from saldo.tables import Account, AuditEvent, Interaction, PromiseToPay, StaffUser, Task
from tests.services.queue_world import build_rich_account


def _json(value):
    return value if isinstance(value, dict) else json.loads(value)


async def _audit(account_id: int, action: str) -> list[dict]:
    rows = await AuditEvent.select().where(
        AuditEvent.object_type == "account",
        AuditEvent.object_id == str(account_id),
        AuditEvent.action == action,
    )
    return [{**r, "before": _json(r["before"]), "after": _json(r["after"])} for r in rows]


async def _account(account_id: int) -> dict:
    return (await Account.select().where(Account.id == account_id))[0]


async def test_a_call_with_a_promise_is_one_interaction_one_promise_and_the_next_action(db):
    rich = await build_rich_account()
    promised = rich.today + dt.timedelta(days=3)
    next_call = rich.today + dt.timedelta(days=4)
    done = await actions.submit_contact(
        rich.account_id,
        {
            "kind": "call",
            "outcome": "promised",
            "note": "Paga el viernes con transferencia",
            "promise_amount": "1.500,50",
            "promise_date": promised.isoformat(),
            "next_action_on": next_call.isoformat(),
        },
        staff_id=rich.staff_id,
        now=rich.now,
        today=rich.today,
        ip="10.1.2.3",
    )
    call = await Interaction.objects().get(Interaction.id == done.interaction_id)
    assert call.kind == "call" and call.channel == "phone" and call.direction == "out"
    assert call.staff == rich.staff_id and call.summary == "Paga el viernes con transferencia"
    data = _json(call.data)
    assert data["outcome"] == "promised"  # what the contact-rate KPI reads
    assert data["promise_amount"] == 150_050 and data["promise_date"] == promised.isoformat()
    promise = await PromiseToPay.objects().get(PromiseToPay.id == done.promise_id)
    assert (promise.amount, promise.promised_date, promise.status, promise.source) == (
        150_050,
        promised,
        "open",
        "staff",
    )
    assert promise.created_by == rich.staff_id
    made = await Interaction.count().where(
        Interaction.account == rich.account_id, Interaction.kind == "promise_made"
    )
    assert made == 1
    account = await _account(rich.account_id)
    assert account["next_action_on"] == next_call
    assert account["next_action_note"] == "Paga el viernes con transferencia"
    [event] = await _audit(rich.account_id, "account.contact_recorded")
    assert event["staff"] == rich.staff_id and event["ip"] == "10.1.2.3"
    assert event["before"]["next_action_on"] is None
    assert event["after"]["next_action_on"] == next_call.isoformat()
    assert event["after"]["promise"] == done.promise_id
    # the promise now pauses reminders on the account
    assert (await paused_items([rich.account_id], today=rich.today))[rich.account_id].reason == (
        "promise"
    )


async def test_a_contact_without_a_date_clears_a_due_callback_and_keeps_a_future_one(db):
    rich = await build_rich_account()
    await Account.update({Account.next_action_on: rich.today, Account.next_action_note: "x"}).where(
        Account.id == rich.account_id
    )
    await actions.record_contact(
        rich.account_id,
        kind="call",
        outcome="no_answer",
        note="",
        staff_id=rich.staff_id,
        now=rich.now,
        today=rich.today,
    )
    account = await _account(rich.account_id)
    assert account["next_action_on"] is None and account["next_action_note"] == ""
    later = rich.today + dt.timedelta(days=9)
    await Account.update({Account.next_action_on: later}).where(Account.id == rich.account_id)
    await actions.record_contact(
        rich.account_id,
        kind="note",
        outcome="reached",
        note="Dejó un mensaje con la hija",
        staff_id=rich.staff_id,
        now=rich.now,
        today=rich.today,
    )
    assert (await _account(rich.account_id))["next_action_on"] == later
    note = (
        await Interaction.objects()
        .where(Interaction.account == rich.account_id, Interaction.kind == "note")
        .first()
    )
    assert note is not None and _json(note.data)["outcome"] == ""  # a note has no outcome


@pytest.mark.parametrize(
    ("form", "fields"),
    [
        ({"kind": "call", "outcome": "promised"}, {"promise_amount", "promise_date"}),
        ({"kind": "call"}, {"outcome"}),
        ({"kind": "note", "note": ""}, {"note"}),
        ({"kind": "visit", "outcome": "callback"}, {"next_action_on"}),
        (
            {"kind": "call", "outcome": "reached", "next_action_on": "31/02/2026"},
            {"next_action_on"},
        ),
        (
            {"kind": "call", "outcome": "reached", "promise_amount": "100"},
            {"outcome", "promise_date"},
        ),
        ({"kind": "fax", "outcome": "reached"}, {"kind"}),
    ],
)
async def test_a_wrong_contact_form_names_each_field_and_stores_nothing(db, form, fields):
    rich = await build_rich_account()
    before = await Interaction.count().where(Interaction.account == rich.account_id)
    with pytest.raises(InvalidAction) as invalid:
        await actions.submit_contact(
            rich.account_id, form, staff_id=rich.staff_id, now=rich.now, today=rich.today
        )
    assert set(invalid.value.errors) == fields
    assert invalid.value.form.get("kind") == form["kind"]
    assert await Interaction.count().where(Interaction.account == rich.account_id) == before


async def test_a_promise_the_rules_refuse_rolls_back_the_whole_contact(db):
    rich = await build_rich_account()
    before = await Interaction.count().where(Interaction.account == rich.account_id)
    with pytest.raises(InvalidAction) as invalid:
        await actions.submit_contact(
            rich.account_id,
            {
                "kind": "call",
                "outcome": "promised",
                "promise_amount": "999999999",
                "promise_date": (rich.today + dt.timedelta(days=2)).isoformat(),
                "next_action_on": (rich.today + dt.timedelta(days=5)).isoformat(),
            },
            staff_id=rich.staff_id,
            now=rich.now,
            today=rich.today,
        )
    assert "promise_amount" in invalid.value.errors
    assert "saldo" in invalid.value.errors["promise_amount"]
    assert await Interaction.count().where(Interaction.account == rich.account_id) == before
    assert (
        await PromiseToPay.count().where(
            PromiseToPay.status == "open", PromiseToPay.account == rich.account_id
        )
        == 0
    )
    assert (await _account(rich.account_id))["next_action_on"] is None
    assert await _audit(rich.account_id, "account.contact_recorded") == []


async def test_pause_and_resume_with_their_reasons(db):
    rich = await build_rich_account()
    until = rich.today + dt.timedelta(days=10)
    await actions.submit_pause(
        rich.account_id,
        {"until": until.isoformat(), "reason": "Internado, vuelve en diez días"},
        staff_id=rich.staff_id,
        now=rich.now,
        today=rich.today,
    )
    account = await _account(rich.account_id)
    assert account["paused_until"] == until
    pauses = (await paused_items([rich.account_id], today=rich.today))[rich.account_id]
    assert pauses.reason == "staff_pause" and pauses.note == "Internado, vuelve en diez días"
    [event] = await _audit(rich.account_id, "account.paused")
    assert event["before"] == {"paused_until": None, "pause_reason": ""}
    assert event["after"]["paused_until"] == until.isoformat()

    await actions.resume(rich.account_id, staff_id=rich.staff_id, now=rich.now, today=rich.today)
    assert (await _account(rich.account_id))["paused_until"] is None
    [resumed] = await _audit(rich.account_id, "account.resumed")
    assert resumed["before"]["paused_until"] == until.isoformat()
    kinds = [
        r["kind"]
        for r in await Interaction.select(Interaction.kind).where(
            Interaction.account == rich.account_id, Interaction.kind.is_in(["paused", "resumed"])
        )
    ]
    assert sorted(kinds) == ["paused", "resumed"]
    with pytest.raises(Conflict):
        await actions.resume(
            rich.account_id, staff_id=rich.staff_id, now=rich.now, today=rich.today
        )


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"until": "", "reason": "x"}, "until"),
        ({"until": "2020-01-01", "reason": "x"}, "until"),
        ({"until": "9999-12-31", "reason": "x"}, "until"),
        ({"until": "TODAY", "reason": ""}, "reason"),
    ],
)
async def test_a_pause_needs_a_date_within_the_limit_and_a_reason(db, form, field):
    rich = await build_rich_account()
    form = {k: (rich.today.isoformat() if v == "TODAY" else v) for k, v in form.items()}
    with pytest.raises(InvalidAction) as invalid:
        await actions.submit_pause(
            rich.account_id, form, staff_id=rich.staff_id, now=rich.now, today=rich.today
        )
    assert field in invalid.value.errors
    assert (await _account(rich.account_id))["paused_until"] is None


async def test_stage_changes_by_hand_but_judicial_only_by_escalation(db):
    rich = await build_rich_account()
    await actions.change_stage(
        rich.account_id,
        "administrative",
        note="Pasa a gestión",
        staff_id=rich.staff_id,
        now=rich.now,
    )
    assert (await _account(rich.account_id))["stage"] == "administrative"
    [event] = await _audit(rich.account_id, "account.stage_changed")
    assert event["before"]["stage"] == "preventive" and event["after"]["stage"] == "administrative"
    for wrong in ("administrative", "judicial", "nope"):
        with pytest.raises(ValidationFailed) as invalid:
            await actions.change_stage(
                rich.account_id, wrong, note="", staff_id=rich.staff_id, now=rich.now
            )
        assert invalid.value.field == "stage"


async def test_escalation_sets_judicial_makes_one_task_and_can_be_undone_by_a_stage_change(db):
    rich = await build_rich_account()
    await actions.escalate(
        rich.account_id,
        reason="Sin respuesta en 90 días",
        staff_id=rich.staff_id,
        now=rich.now,
        today=rich.today,
    )
    account = await _account(rich.account_id)
    assert account["stage"] == "judicial" and account["legal_escalated_at"] == rich.now
    tasks = await Task.select().where(Task.dedupe_key == f"legal:{rich.account_id}")
    assert len(tasks) == 1 and tasks[0]["kind"] == "legal_escalation"
    [event] = await _audit(rich.account_id, "account.escalated")
    assert event["after"]["reason"] == "Sin respuesta en 90 días"
    assert event["after"]["task"] == tasks[0]["id"]
    with pytest.raises(Conflict):
        await actions.escalate(
            rich.account_id,
            reason="otra vez",
            staff_id=rich.staff_id,
            now=rich.now,
            today=rich.today,
        )
    await actions.change_stage(
        rich.account_id,
        "administrative",
        note="Acuerdo extrajudicial",
        staff_id=rich.staff_id,
        now=rich.now,
    )
    account = await _account(rich.account_id)
    assert account["stage"] == "administrative" and account["legal_escalated_at"] is None


async def test_an_escalation_needs_a_reason_and_an_active_staff_user(db):
    rich = await build_rich_account()
    with pytest.raises(InvalidAction) as invalid:
        await actions.submit_escalation(
            rich.account_id,
            {"reason": "  "},
            staff_id=rich.staff_id,
            now=rich.now,
            today=rich.today,
        )
    assert set(invalid.value.errors) == {"reason"}
    with pytest.raises(NotFound):
        await actions.pause(
            2**31 - 3,
            until=rich.today,
            reason="x",
            staff_id=rich.staff_id,
            now=rich.now,
            today=rich.today,
        )
    await StaffUser.update({StaffUser.active: False}).where(StaffUser.id == rich.staff_id)
    with pytest.raises(NotFound):
        await actions.escalate(
            rich.account_id, reason="x", staff_id=rich.staff_id, now=rich.now, today=rich.today
        )
    assert (await _account(rich.account_id))["legal_escalated_at"] is None
