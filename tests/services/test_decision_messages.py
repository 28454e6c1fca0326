"""The debtor hears about every decision on their plan or dispute: one outbox message per
decision, queued with it, never twice, on the right channel, rendered with the outcome, and
sent even while a pause holds the account's collection messages."""

from __future__ import annotations

import datetime as dt
import secrets
from pathlib import Path

import pytest

from saldo import money
from saldo.errors import Conflict
from saldo.schedule import Frequency, Proposal
from saldo.services import decision_messages, dispute_staff, disputes, outbox, plan_review, plans
from saldo.services import notify_render as nr
from saldo.services.audit import Actor
from saldo.services.dispute_forms import StaffReplyForm
from saldo.tables import (
    Account,
    ContactPreference,
    Debtor,
    Notification,
    PaymentPlan,
    PlanPolicy,
    StaffUser,
)
from tests.services.outbox_world import NOW, PUBLIC_URL, Party, fakes, party, row, send

__all__ = ["fakes"]

TODAY = dt.date(2026, 11, 3)
GENEROUS = {
    "max_installments": 12,
    "min_down_payment_bp": 1000,
    "min_installment": 0,
    "max_term_days": 365,
    "auto_approve_limit": 10_000_000,
}
REVIEW_ALL = {**GENEROUS, "auto_approve_limit": 0}
DECISIONS = ("plan_approved", "plan_countered", "plan_rejected", "dispute_update")


def clean(text: str) -> str:
    return text.replace("\xa0", " ")


async def debt(*, amount: int = 400_000, policy: dict | None = None, **kwargs) -> Party:
    """A debtor (email on file unless told otherwise) with one overdue invoice."""
    who = await party(invoices=[("F-1", amount, dt.date(2026, 10, 1))], **kwargs)
    if policy is not None:
        await PlanPolicy.insert(PlanPolicy(creditor=who.creditor.id, **policy))
    return who


async def staff() -> int:
    user = StaffUser(email=f"agente.{secrets.token_hex(4)}@example.com", name="Agente")
    await user.save()
    return int(user.id)


def plan_form(down: int, count: int, first: dt.date) -> dict[str, str]:
    return {
        "down_payment": str(money.to_decimal(down, "ARS")) if down else "",
        "installments": str(count),
        "frequency": "monthly",
        "first_date": first.isoformat(),
    }


async def propose(who: Party) -> plans.PlanOutcome:
    return await plans.propose(
        [who.debtor.id], who.account.id, plan_form(40_000, 4, TODAY + dt.timedelta(9)), now=NOW
    )


async def decisions(who: Party) -> list[Notification]:
    """The decision messages queued for this debtor, oldest first."""
    return (
        await Notification.objects()
        .where((Notification.debtor == who.debtor.id) & Notification.template.is_in(DECISIONS))
        .order_by(Notification.id)
        .output(load_json=True)
    )


def summary(found: list[Notification]) -> list[tuple[str, str, int | None, str, str]]:
    return [(n.template, n.idempotency_key, n.account, n.channel, n.status) for n in found]


# ---------------------------------------------------------------------------- plans


async def test_a_plan_approved_within_policy_confirms_it_in_writing(db, fakes):
    who = await debt(policy=GENEROUS)
    outcome = await propose(who)
    assert outcome.status == "active"
    [message] = await decisions(who)
    assert summary([message]) == [
        ("plan_approved", f"plan_approved:{outcome.plan_id}", who.account.id, "email", "queued")
    ]
    assert message.debtor == who.debtor.id
    assert message.context == {"plan_id": outcome.plan_id}
    assert message.created_at == NOW and message.send_after is None

    await send(fakes)

    [mail] = fakes.smtp.to(who.email)
    assert mail.message["Subject"] == f"{who.creditor.name}: su plan de pagos fue aprobado"
    text = clean(mail.text())
    assert "Total del plan: $ 4.000,00" in text and "Anticipo: $ 400,00" in text
    assert "4 cuotas de $ 900,00" in text and "Primer vencimiento: 12/11/2026" in text
    assert f"{PUBLIC_URL}/plans" in text


async def test_a_proposal_waiting_for_review_sends_nothing_yet(db):
    who = await debt(policy=REVIEW_ALL)
    assert (await propose(who)).status == "proposed"
    assert await decisions(who) == []


async def test_staff_approval_queues_one_message_and_a_retry_none(db):
    who = await debt(policy=REVIEW_ALL)
    plan_id = (await propose(who)).plan_id
    staff_id = await staff()
    await plan_review.approve(plan_id, staff_id=staff_id, now=NOW)
    with pytest.raises(Conflict):
        await plan_review.approve(plan_id, staff_id=staff_id, now=NOW + dt.timedelta(minutes=1))
    assert await decision_messages.plan_approved(plan_id, now=NOW) is None  # produced again
    assert summary(await decisions(who)) == [
        ("plan_approved", f"plan_approved:{plan_id}", who.account.id, "email", "queued")
    ]


async def test_the_confirmation_names_the_installments_not_the_down_payment(db, fakes):
    who = await debt(policy=REVIEW_ALL)
    plan_id = (
        await plans.propose(
            [who.debtor.id], who.account.id, plan_form(300_000, 2, TODAY + dt.timedelta(9)),
            now=NOW,
        )
    ).plan_id  # fmt: skip
    await plan_review.approve(plan_id, staff_id=await staff(), now=NOW)

    await send(fakes)

    [mail] = fakes.smtp.to(who.email)
    text = clean(mail.text())
    assert "Anticipo: $ 3.000,00" in text and "2 cuotas de $ 500,00" in text


async def test_an_approval_refused_as_above_policy_queues_nothing(db):
    who = await debt(policy={**REVIEW_ALL, "max_installments": 2})
    plan_id = (await propose(who)).plan_id
    with pytest.raises(plan_review.AbovePolicy):
        await plan_review.approve(plan_id, staff_id=await staff(), now=NOW)
    assert await decisions(who) == []


async def test_a_rejection_queues_one_message_with_the_reason(db, fakes):
    who = await debt(policy=REVIEW_ALL)
    plan_id = (await propose(who)).plan_id
    staff_id = await staff()
    await plan_review.reject(plan_id, "El anticipo es muy bajo.", staff_id=staff_id, now=NOW)
    with pytest.raises(Conflict):
        await plan_review.reject(plan_id, "Otra vez", staff_id=staff_id, now=NOW)
    [message] = await decisions(who)
    assert summary([message]) == [
        ("plan_rejected", f"plan_rejected:{plan_id}", who.account.id, "email", "queued")
    ]

    await send(fakes)

    [mail] = fakes.smtp.to(who.email)
    assert mail.message["Subject"] == f"{who.creditor.name}: sobre su propuesta de plan de pagos"
    text = clean(mail.text())
    assert "Motivo: El anticipo es muy bajo." in text and f"{PUBLIC_URL}/plans" in text
    assert (await row(message.id)).status == "sent"


async def test_a_counter_offer_sends_its_terms_and_accepting_it_confirms_the_plan(db, fakes):
    who = await debt(policy=REVIEW_ALL, language="en")
    plan_id = (await propose(who)).plan_id
    offer = Proposal(400_000, 40_000, 3, Frequency.monthly, TODAY + dt.timedelta(14))
    decision = await plan_review.counter_offer(
        plan_id, offer, staff_id=await staff(), now=NOW, note="Tres cuotas iguales."
    )
    [countered] = await decisions(who)
    assert summary([countered]) == [
        (
            "plan_countered",
            f"plan_countered:{plan_id}:{decision.plan_id}",
            who.account.id,
            "email",
            "queued",
        )
    ]
    assert countered.context == {"plan_id": decision.plan_id, "proposal_id": plan_id}

    await send(fakes)

    [mail] = fakes.smtp.to(who.email)
    text = clean(mail.text())
    assert "3 installments of ARS1,200.00" in text  # the offer's terms, not the proposal's
    assert "Tres cuotas iguales." in text

    later = NOW + dt.timedelta(hours=1)
    await plans.accept_counter([who.debtor.id], decision.plan_id, now=later)
    assert [n.idempotency_key for n in await decisions(who)] == [
        f"plan_countered:{plan_id}:{decision.plan_id}",
        f"plan_approved:{decision.plan_id}",
    ]


async def test_declining_an_offer_is_the_debtors_own_act_and_sends_nothing_more(db):
    who = await debt(policy=REVIEW_ALL)
    plan_id = (await propose(who)).plan_id
    offer = Proposal(400_000, 0, 2, Frequency.monthly, TODAY + dt.timedelta(20))
    decision = await plan_review.counter_offer(plan_id, offer, staff_id=await staff(), now=NOW)
    await plans.decline_counter([who.debtor.id], decision.plan_id, now=NOW)
    assert [n.template for n in await decisions(who)] == ["plan_countered"]


# ---------------------------------------------------------------------------- disputes


async def dispute(who: Party, amount: int = 100_000) -> int:
    return await disputes.open_dispute(
        [who.debtor.id],
        account_id=who.account.id,
        invoice_id=who.invoices[0].id,
        amount=amount,
        reason_code="wrong_amount",
        now=NOW,
    )


@pytest.mark.parametrize(
    ("outcome", "amount", "explanation"),
    [
        ("accept", None, ""),
        ("partial", 30_000, "Reconocemos el recargo."),
        ("reject", None, "Está bien facturado."),
    ],
)
async def test_a_resolution_queues_one_message_and_a_second_one_none(
    db, outcome, amount, explanation
):
    who = await debt()
    dispute_id = await dispute(who)
    staff_id = await staff()
    await disputes.resolve(
        dispute_id,
        outcome=outcome,
        amount=amount,
        explanation=explanation,
        staff_id=staff_id,
        now=NOW,
    )
    with pytest.raises(Conflict):
        await disputes.resolve(dispute_id, outcome="accept", staff_id=staff_id, now=NOW)
    assert await decision_messages.dispute_resolved(dispute_id, now=NOW) is None
    [message] = await decisions(who)
    assert summary([message]) == [
        ("dispute_update", f"dispute_resolved:{dispute_id}", who.account.id, "email", "queued")
    ]
    assert (message.debtor, message.context) == (who.debtor.id, {"dispute_id": dispute_id})


@pytest.mark.parametrize(
    ("language", "status", "credited"),
    [
        ("es", "Estado del reclamo: Aceptado en parte", "Importe reconocido: $ 300,00"),
        ("en", "Dispute status: Partly accepted", "Amount credited: ARS300.00"),
    ],
)
async def test_the_resolution_message_says_the_outcome_and_the_amount_credited(
    db, fakes, language, status, credited
):
    who = await debt(language=language)
    dispute_id = await dispute(who)
    await disputes.resolve(
        dispute_id,
        outcome="partial",
        amount=30_000,
        explanation="Reconocemos el recargo por mora.",
        staff_id=await staff(),
        now=NOW,
    )
    [message] = await decisions(who)

    await send(fakes)

    assert (await row(message.id)).status == "sent"
    [mail] = fakes.smtp.to(who.email)
    text = clean(mail.text())
    assert status in text and credited in text
    assert "Reconocemos el recargo por mora." in text
    assert f"{PUBLIC_URL}/disputes" in text
    # a closed dispute no longer promises to hold reminders back
    assert "no le enviaremos avisos" not in text and "reminders" not in text
    assert who.invoices[0].number in text
    html = clean(mail.html())
    assert credited.split(": ")[1] in html


async def test_a_staff_message_in_the_thread_tells_the_debtor_and_theirs_does_not(
    db, tmp_path: Path
):
    who = await debt()
    dispute_id = await dispute(who)
    staff_id = await staff()
    actor = Actor(staff_id, "agente@example.com")
    first = await dispute_staff.staff_reply(
        dispute_id, StaffReplyForm("¿Tiene el remito?"), upload=None, actor=actor,
        data_dir=tmp_path, now=NOW,
    )  # fmt: skip
    await disputes.post_message(dispute_id, "Sí", debtor_ids=[who.debtor.id], now=NOW)
    second = await dispute_staff.staff_reply(
        dispute_id, StaffReplyForm("Gracias, lo revisamos."), upload=None, actor=actor,
        data_dir=tmp_path, now=NOW,
    )  # fmt: skip
    assert await decision_messages.dispute_message(dispute_id, first, now=NOW) is None
    found = await decisions(who)
    assert summary(found) == [
        ("dispute_update", f"dispute_message:{first}", who.account.id, "email", "queued"),
        ("dispute_update", f"dispute_message:{second}", who.account.id, "email", "queued"),
    ]
    assert found[0].context == {"dispute_id": dispute_id, "message_id": first}


# ---------------------------------------------------------------------------- pauses


async def test_a_paused_account_still_hears_the_decisions(db, fakes, tmp_path: Path):
    """An open dispute, a staff pause and the active plan itself hold the account's collection
    messages; none holds the outcome of a decision."""
    who = await debt(policy=GENEROUS)

    async def reminder() -> int:
        queued = await outbox.queue(
            debtor_id=who.debtor.id, account_id=who.account.id, channel="email",
            template="reminder_before_due", idempotency_key=f"test:{secrets.token_hex(6)}",
            invoice_ids=[who.invoices[0].id], now=NOW,
        )  # fmt: skip
        assert queued is not None
        return queued

    dispute_id = await dispute(who, amount=400_000)  # the whole invoice: a dispute pause
    await dispute_staff.staff_reply(
        dispute_id, StaffReplyForm("Lo revisamos."), upload=None,
        actor=Actor(await staff(), "agente@example.com"), data_dir=tmp_path, now=NOW,
    )  # fmt: skip
    held = await reminder()

    await send(fakes)

    assert ((await row(held)).status, (await row(held)).blocked_reason) == (
        "blocked",
        "pause:dispute",
    )
    assert [(n.template, n.status) for n in await decisions(who)] == [("dispute_update", "sent")]

    await Account.update(
        {Account.paused_until: dt.date(2026, 11, 30), Account.pause_reason: "negociando"}
    ).where(Account.id == who.account.id)
    await disputes.resolve(dispute_id, outcome="reject", explanation="No corresponde.",
                           staff_id=await staff(), now=NOW)  # fmt: skip
    assert (await propose(who)).status == "active"  # the plan pauses the account too
    held = await reminder()

    await send(fakes)

    assert (await row(held)).status == "blocked"
    assert (await row(held)).blocked_reason.startswith("pause:")
    assert [(n.template, n.status, n.blocked_reason) for n in await decisions(who)] == [
        ("dispute_update", "sent", ""),
        ("dispute_update", "sent", ""),
        ("plan_approved", "sent", ""),
    ]
    assert len(fakes.smtp.to(who.email)) == 3


def test_decision_kinds_are_not_collection_messages() -> None:
    assert not set(DECISIONS) & nr.COLLECTION


# ---------------------------------------------------------------------------- channels


@pytest.mark.parametrize(
    ("preferred", "addresses", "opted_out", "channel"),
    [
        (None, {"email": "a@example.com", "sms": "+5491155550101"}, set(), "email"),
        ("sms", {"email": "a@example.com", "sms": "+5491155550101"}, set(), "sms"),
        ("whatsapp", {"email": "a@example.com", "whatsapp": ""}, set(), "email"),
        (None, {"email": "", "sms": "", "whatsapp": "+5491155550202"}, set(), "whatsapp"),
        (None, {"email": "a@example.com", "sms": "+5491155550101"}, {"email"}, "sms"),
        (None, {"email": "a@example.com"}, {"email"}, "email"),  # blocked when sent: visible
        (None, {"email": "", "sms": "", "whatsapp": ""}, set(), None),
    ],
)
def test_the_channel_is_the_reminders_rule_among_what_the_debtor_still_receives(
    preferred, addresses, opted_out, channel
) -> None:
    assert decision_messages.pick_channel(preferred, addresses, frozenset(opted_out)) == channel


async def test_an_opted_out_email_is_replaced_by_sms_and_no_address_queues_nothing(db, fakes):
    texted = await debt(policy=REVIEW_ALL, phone="+54 9 11 5555-0101")
    await ContactPreference(debtor=texted.debtor.id, channel="email", opted_in=False).save()
    plan_id = (await propose(texted)).plan_id
    await plan_review.reject(plan_id, "Muy largo.", staff_id=await staff(), now=NOW)
    [message] = await decisions(texted)
    assert (message.channel, message.template) == ("sms", "plan_rejected")

    await send(fakes)

    [sms] = [m for m in fakes.sms.messages if m["to"] == "+5491155550101"]
    assert texted.creditor.name in sms["body"] and f"{PUBLIC_URL}/plans" in sms["body"]

    unreachable = await debt(policy=REVIEW_ALL, email="")
    await Debtor.update({Debtor.preferred_channel: "sms"}).where(Debtor.id == unreachable.debtor.id)
    plan_id = (await propose(unreachable)).plan_id
    await plan_review.reject(plan_id, "Muy largo.", staff_id=await staff(), now=NOW)
    assert await decisions(unreachable) == []
    assert (await PaymentPlan.objects().get(PaymentPlan.id == plan_id)).status == "rejected"
