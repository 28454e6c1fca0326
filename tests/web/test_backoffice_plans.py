"""Payment plans in the back office, as staff use them: the review queue, one plan with its
account's history, approve / reject / counter-offer as each role may, and the plan-policy
editor (real PostgreSQL and Redis, parsed HTML, PDF text).

The plans here are made in 2009, before any other test's, so they lead the shared queue.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets

import pytest

import backoffice.plans
from saldo import money
from saldo.schedule import Policy
from saldo.services import plan_views, plans
from saldo.services.plan_policy import policy_for
from saldo.tables import (
    Account,
    AuditEvent,
    Installment,
    Interaction,
    PaymentPlan,
    PlanPolicy,
    Task,
)
from tests.services.helpers import make_account, make_invoice
from tests.web import backoffice_fixtures
from tests.web.backoffice_fixtures import csrf_token, inject_session, main, make_staff
from tests.web.html import Node, parse
from tests.web.portal_fixtures import pdf_text

client = backoffice_fixtures.client
bo_app = backoffice_fixtures.bo_app
app_key = backoffice_fixtures.app_key
fresh_rate_limits = backoffice_fixtures.fresh_rate_limits

NOW = dt.datetime(2009, 6, 15, 15, 0, tzinfo=dt.UTC)  # 12:00 in Buenos Aires
TODAY = NOW.date()
HTMX = {"HX-Request": "true"}
TOTAL = 600_000  # ARS 6.000,00 owed on one invoice
POLICY = {
    "max_installments": 6,
    "frequencies": '["monthly", "biweekly"]',
    "min_down_payment_bp": 1000,  # 10 %: ARS 600,00 of 6.000,00
    "auto_approve_limit": 0,  # every proposal goes to review
    "grace_days": 5,
    "missed_to_break": 2,
}


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch):
    monkeypatch.setattr(backoffice.plans, "_now", lambda: NOW)


async def case(name: str = "Ferretería El Tornillo S.R.L.", total: int = TOTAL) -> Account:
    """An account owing `total` on one overdue invoice, at a creditor with `POLICY`."""
    account = await make_account(name=f"{name} {secrets.token_hex(2)}")
    await make_invoice(account, f"A-{account.id}", total, TODAY - dt.timedelta(days=30))
    await PlanPolicy.insert(PlanPolicy(creditor=account.creditor, **POLICY))
    return account


def form(down: int, count: int, frequency: str, first: dt.date, message: str = "") -> dict:
    return {
        "down_payment": str(money.to_decimal(down, "ARS")) if down else "",
        "installments": str(count),
        "frequency": frequency,
        "first_date": first.isoformat(),
        "message": message,
    }


async def propose(account: Account, days_ago: int = 0, *, within: bool = False, **kw) -> int:
    """A proposal made `days_ago`: 12 installments and no down payment (outside the policy),
    or 4 monthly ones with the 10 % down payment (`within`)."""
    moment = NOW - dt.timedelta(days=days_ago)
    first = moment.date() + dt.timedelta(days=10)
    typed = (
        form(60_000, 4, "monthly", first, **kw) if within else form(0, 12, "monthly", first, **kw)
    )
    outcome = await plans.propose([account.debtor], account.id, typed, now=moment)
    assert outcome.status == "proposed"
    return outcome.plan_id


async def signed_in(client, redis, servers, app_key, role: str):
    staff = await make_staff(role, key=app_key, name=f"{role.title()} Prueba")
    await inject_session(client, redis, servers, staff.id)
    return staff


async def post(client, url: str, data: dict | None = None, **headers: str):
    token = await csrf_token(client)
    return await client.post(url, data={"_csrf_token": token, **(data or {})}, headers=headers)


async def status_of(plan_id: int) -> str:
    return (await PaymentPlan.objects().get(PaymentPlan.id == plan_id)).status


async def kinds(account_id: int) -> list[tuple[str, int | None]]:
    rows = (
        await Interaction.select(Interaction.kind, Interaction.staff)
        .where(Interaction.account == account_id)
        .order_by(Interaction.id)
    )
    return [(r["kind"], r["staff"]) for r in rows]


async def plan_audit(plan_id: int) -> list[dict]:
    rows = (
        await AuditEvent.select()
        .where((AuditEvent.object_type == "payment_plan") & (AuditEvent.object_id == str(plan_id)))
        .order_by(AuditEvent.id)
    )
    for row in rows:
        for column in ("before", "after"):
            if isinstance(row[column], str):
                row[column] = json.loads(row[column])
    return rows


def node(response, element_id: str) -> Node:
    found = parse(response.text).by_id(element_id)
    assert found is not None, f"#{element_id} missing in {response.text[:300]}"
    return found


def schedule_amounts(container: Node) -> list[int]:
    return [
        int(row.attrs["data-amount"])
        for row in container.find_all("tr")
        if "bop-sched__row" in row.attrs.get("class", "")
    ]


# ---------------------------------------------------------------------------- the queue


async def test_the_queue_lists_proposals_and_offers_oldest_first_with_the_broken_rules(
    client, redis, servers, app_key
):
    outside, within, countered, approved = [await case() for _ in range(4)]
    old = await propose(outside, days_ago=3, message="Cobro a fin de mes.")
    new = await propose(within, days_ago=1, within=True)
    answered = await propose(countered, days_ago=2)
    done = await propose(approved, days_ago=4, within=True)
    supervisor = await signed_in(client, redis, servers, app_key, "supervisor")
    offer = await post(
        client,
        f"/backoffice/plans/{answered}/counter",
        form(60_000, 6, "monthly", TODAY + dt.timedelta(days=10)),
    )
    assert offer.status_code == 303
    offer_id = int(offer.headers["location"].split("/")[-1].split("?")[0])
    assert (await post(client, f"/backoffice/plans/{done}/approve")).status_code == 303

    await signed_in(client, redis, servers, app_key, "agent")
    response = await client.get("/backoffice/plans")
    assert response.status_code == 200
    rows = [r for r in node(response, "plan-queue").find_all("tr") if r.attrs.get("data-plan")]
    mine = {old, new, answered, offer_id, done}
    ours = [int(r.attrs["data-plan"]) for r in rows if int(r.attrs["data-plan"]) in mine]
    # oldest first; the countered proposal and the approved plan wait for nobody
    assert ours == [old, new, offer_id]  # the offer was made just now
    first = node(response, f"queue-plan-{old}")
    assert first.attrs["data-status"] == "proposed"
    assert "3 días" in first.text() and f"Cuenta #{outside.id}" in first.text()
    codes = {li.attrs["data-code"] for li in first.find_all("li")}
    assert codes == {"too_many", "below_minimum"}
    balance = next(td for td in first.find_all("td") if "data-balance" in td.attrs)
    assert int(balance.attrs["data-balance"]) == TOTAL
    assert "$ 6.000,00" in balance.text()
    assert "12 cuotas" in first.text() and "con mensaje" in first.text()
    assert "Dentro de la política" in node(response, f"queue-plan-{new}").text()
    waiting = node(response, f"queue-plan-{offer_id}")
    assert waiting.attrs["data-status"] == "offered" and "Esperando al deudor" in waiting.text()
    made = await PaymentPlan.objects().get(PaymentPlan.id == offer_id)
    assert made.reviewed_by == supervisor.id


async def test_the_queue_finds_a_debtor_and_filters_by_status_without_reloading(
    client, redis, servers, app_key
):
    account = await case(name="Panadería La Espiga")
    plan_id = await propose(account, days_ago=1)
    await signed_in(client, redis, servers, app_key, "agent")
    row = await Account.select(Account.debtor.name).where(Account.id == account.id).first()
    token = row["debtor.name"].split()[-1]  # "Panadería La Espiga 1f2e": unique to this test

    found = await client.get("/backoffice/plans", params={"q": token, "status": "proposed"})
    rows = [r for r in node(found, "plan-queue").find_all("tr") if r.attrs.get("data-plan")]
    assert [int(r.attrs["data-plan"]) for r in rows] == [plan_id]
    assert node(found, "plan-search").attrs["value"] == token

    fragment = await client.get(
        "/backoffice/plans",
        params={"q": token, "status": "offered"},
        headers=HTMX,
    )
    assert fragment.status_code == 200 and fragment.headers["vary"] == "HX-Request"
    root = parse(fragment.text)
    assert [n.attrs.get("id") for n in root.children if isinstance(n, Node)] == ["plan-queue"]
    assert "Ningún plan en espera coincide" in root.text()

    by_number = await client.get("/backoffice/plans", params={"q": str(account.id)})
    assert node(by_number, f"queue-plan-{plan_id}")


# ---------------------------------------------------------------------------- one plan


async def test_a_plan_shows_the_proposal_its_schedule_rules_and_the_account_history(
    client, redis, servers, app_key
):
    account = await case()
    plan_id = await propose(account, days_ago=2, message="Cobro el 10 de cada mes.")
    await signed_in(client, redis, servers, app_key, "agent")
    response = await client.get(f"/backoffice/plans/{plan_id}")
    assert response.status_code == 200
    page = main(response)
    assert page.find("h1").text().startswith("Ferretería El Tornillo")
    assert node(response, "debtor-message").text() == "Cobro el 10 de cada mes."
    amounts = schedule_amounts(node(response, "plan-schedule"))
    assert len(amounts) == 12 and sum(amounts) == TOTAL  # as if accepted today
    rules = {li.attrs["data-code"]: li.text() for li in node(response, "plan-rules").find_all("li")}
    assert set(rules) == {"too_many", "below_minimum"}
    assert "hasta 6 cuotas" in rules["too_many"] and "$ 600,00" in rules["below_minimum"]
    history = node(response, "account-history").find_all("li")
    assert history[0].attrs["data-kind"] == "plan_proposed"
    assert "12 cuotas" in history[0].text() and "El deudor, en el portal" in history[0].text()
    # amounts and dates as staff read them, not as stored
    assert "$ 6.000,00 en 12 cuotas, mensual, desde el " in history[0].text()
    assert "monthly" not in history[0].text() and "ARS" not in history[0].text()
    # the counter-offer starts from the proposal brought inside the policy
    assert node(response, "counter-installments").attrs["value"] == "6"
    assert node(response, "counter-down_payment").attrs["value"] == "600,00"
    assert node(response, "counter-preview").attrs["data-verdict"] == "within"


async def test_an_unknown_plan_is_not_found(client, redis, servers, app_key):
    await signed_in(client, redis, servers, app_key, "agent")
    assert (await client.get("/backoffice/plans/2147483000")).status_code == 404
    assert (await post(client, "/backoffice/plans/2147483000/approve")).status_code == 404


# ---------------------------------------------------------------------------- approve


async def test_an_agent_may_not_approve_above_policy_and_is_told_why(
    client, redis, servers, app_key
):
    account = await case()
    plan_id = await propose(account)
    await signed_in(client, redis, servers, app_key, "agent")
    page = await client.get(f"/backoffice/plans/{plan_id}")
    approve = node(page, "approve")
    assert approve.find("form") is None and approve.find("button") is None
    assert "solo un supervisor puede aprobarla" in node(page, "approve-why").text()

    forced = await post(client, f"/backoffice/plans/{plan_id}/approve")  # the button is not there
    assert forced.status_code == 403
    assert "solo un supervisor puede aprobarla" in node(forced, "plan-problem").text()
    assert await status_of(plan_id) == "proposed"
    assert await kinds(account.id) == [("plan_proposed", None)]
    assert await Installment.count().where(Installment.plan == plan_id) == 0
    assert await plan_audit(plan_id) == []


async def test_a_supervisor_approves_above_policy_on_the_record(client, redis, servers, app_key):
    account = await case()
    plan_id = await propose(account)
    supervisor = await signed_in(client, redis, servers, app_key, "supervisor")
    page = await client.get(f"/backoffice/plans/{plan_id}")
    button = node(page, "approve").find("button")
    assert button is not None and button.text() == "Aprobar fuera de la política"

    response = await post(client, f"/backoffice/plans/{plan_id}/approve")
    assert response.status_code == 303
    assert response.headers["location"] == f"/backoffice/plans/{plan_id}?done=approved"
    assert await status_of(plan_id) == "active"
    rows = await Installment.select().where(Installment.plan == plan_id)
    assert len(rows) == 12 and sum(r["amount"] for r in rows) == TOTAL
    assert await kinds(account.id) == [("plan_proposed", None), ("plan_approved", supervisor.id)]
    [event] = await plan_audit(plan_id)
    assert event["action"] == "plan.approved" and event["actor"] == supervisor.email
    assert event["after"]["violations"] == ["installments:too_many", "down_payment:below_minimum"]
    task = await Task.objects().get(Task.dedupe_key == f"plan:{plan_id}")
    assert task.status == "done"

    shown = await client.get(response.headers["location"])
    assert "Aprobó el plan" in node(shown, "plan-done").text()
    assert parse(shown.text).by_id("decide") is None  # decided: no forms any more
    pdf = await client.get(f"/backoffice/plans/{plan_id}/agreement.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.headers["content-disposition"].startswith("attachment")
    text = pdf_text(pdf.content)
    assert "Ferretería El Tornillo" in text and "6.000,00" in text


async def test_an_agent_approves_a_proposal_within_policy(client, redis, servers, app_key):
    account = await case()
    plan_id = await propose(account, within=True)
    agent = await signed_in(client, redis, servers, app_key, "agent")
    page = await client.get(f"/backoffice/plans/{plan_id}")
    assert node(page, "approve").find("button").text() == "Aprobar el plan"
    assert (await post(client, f"/backoffice/plans/{plan_id}/approve")).status_code == 303
    assert await status_of(plan_id) == "active"
    assert await kinds(account.id) == [("plan_proposed", None), ("plan_approved", agent.id)]

    again = await post(client, f"/backoffice/plans/{plan_id}/approve")  # decided already
    assert again.status_code == 409
    assert "ya no espera una decisión" in node(again, "plan-problem").text()


# ---------------------------------------------------------------------------- reject


async def test_a_rejection_needs_a_reason_which_the_debtor_then_reads(
    client, redis, servers, app_key
):
    account = await case()
    plan_id = await propose(account)
    agent = await signed_in(client, redis, servers, app_key, "agent")

    empty = await post(client, f"/backoffice/plans/{plan_id}/reject", {"reason": "   "})
    assert empty.status_code == 422
    field = node(empty, "reject-reason")
    assert field.attrs["aria-invalid"] == "true"
    assert "reject-reason-error" in field.attrs["aria-describedby"]
    assert "el deudor lo va a ver" in node(empty, "reject-reason-error").text()
    assert await status_of(plan_id) == "proposed"

    reason = "Doce cuotas es demasiado: proponga hasta seis, con un anticipo del 10 %."
    done = await post(client, f"/backoffice/plans/{plan_id}/reject", {"reason": reason})
    assert done.status_code == 303
    assert await status_of(plan_id) == "rejected"
    assert await kinds(account.id) == [("plan_proposed", None), ("plan_rejected", agent.id)]
    [event] = await plan_audit(plan_id)
    assert (event["action"], event["after"]["reason"]) == ("plan.rejected", reason)
    debtor_page = await plan_views.plan_page([account.debtor], now=NOW)
    last = debtor_page.accounts[0].last
    assert last is not None and (last.id, last.review_reason) == (plan_id, reason)
    shown = await client.get(done.headers["location"])
    assert node(shown, "review-reason").text() == reason


# ---------------------------------------------------------------------------- counter-offer


async def test_the_counter_offer_preview_shows_its_schedule_and_broken_rules(
    client, redis, servers, app_key
):
    account = await case()
    plan_id = await propose(account)
    await signed_in(client, redis, servers, app_key, "agent")
    url = f"/backoffice/plans/{plan_id}/counter/preview"
    first = (TODAY + dt.timedelta(days=7)).isoformat()

    outside = await post(
        client,
        url,
        {"down_payment": "", "installments": "8", "frequency": "weekly", "first_date": first},
        **HTMX,
    )
    assert outside.status_code == 200
    root = [n for n in parse(outside.text).children if isinstance(n, Node)]
    assert [n.attrs.get("id") for n in root] == ["counter-preview"]
    assert root[0].attrs["data-verdict"] == "outside"
    assert {li.attrs["data-code"] for li in root[0].find_all("li")} == {
        "too_many",
        "not_allowed",
        "below_minimum",
    }
    amounts = schedule_amounts(root[0])
    assert len(amounts) == 8 and sum(amounts) == TOTAL

    typed = {"down_payment": "1.000,00", "installments": "5", "frequency": "biweekly"}
    within = await post(client, url, {**typed, "first_date": first}, **HTMX)
    preview = node(within, "counter-preview")
    assert preview.attrs["data-verdict"] == "within"
    assert schedule_amounts(preview) == [100_000, 100_000, 100_000, 100_000, 100_000, 100_000]

    plain = await post(client, url, {"installments": "x", "first_date": first})  # no JavaScript
    assert plain.status_code == 200 and main(plain).find("h1") is not None
    assert node(plain, "counter-installments").attrs["aria-invalid"] == "true"
    assert await status_of(plan_id) == "proposed"


async def test_a_wrong_counter_offer_comes_back_with_messages_next_to_the_fields(
    client, redis, servers, app_key
):
    account = await case()
    plan_id = await propose(account)
    await signed_in(client, redis, servers, app_key, "agent")
    response = await post(
        client,
        f"/backoffice/plans/{plan_id}/counter",
        {
            "down_payment": "7.000,00",  # more than the balance
            "installments": "0",
            "frequency": "monthly",
            "first_date": (TODAY - dt.timedelta(days=1)).isoformat(),
            "note": "Le ofrecemos algo mejor.",
        },
    )
    assert response.status_code == 422
    for name in ("down_payment", "installments", "first_date"):
        assert node(response, f"counter-{name}").attrs["aria-invalid"] == "true"
        assert node(response, f"counter-{name}-error").text()
    assert node(response, "counter-down_payment").attrs["value"] == "7.000,00"  # as typed
    assert node(response, "counter-note").text() == "Le ofrecemos algo mejor."
    assert await status_of(plan_id) == "proposed"
    assert await PaymentPlan.count().where(PaymentPlan.counter_of == plan_id) == 0


async def test_a_counter_offer_goes_to_the_debtor_who_accepts_it(client, redis, servers, app_key):
    account = await case()
    plan_id = await propose(account, days_ago=1)
    agent = await signed_in(client, redis, servers, app_key, "agent")
    first = TODAY + dt.timedelta(days=14)
    response = await post(
        client,
        f"/backoffice/plans/{plan_id}/counter",
        {
            "down_payment": "600,00",
            "installments": "6",
            "frequency": "monthly",
            "first_date": first.isoformat(),
            "note": "Seis cuotas mensuales, con el anticipo mínimo.",
        },
    )
    assert response.status_code == 303
    offer_id = int(response.headers["location"].split("/")[-1].split("?")[0])
    assert response.headers["location"].endswith("?done=countered")
    offer = await PaymentPlan.objects().get(PaymentPlan.id == offer_id)
    assert (offer.status, offer.counter_of, offer.proposed_by) == ("offered", plan_id, "staff")
    assert (offer.total, offer.down_payment, offer.installments_count) == (TOTAL, 60_000, 6)
    assert await status_of(plan_id) == "countered"
    assert await kinds(account.id) == [("plan_proposed", None), ("plan_countered", agent.id)]
    [event] = await plan_audit(plan_id)
    assert event["action"] == "plan.countered" and event["after"]["offer"] == offer_id

    shown = await client.get(response.headers["location"])
    assert "Envió la contraoferta" in node(shown, "plan-done").text()
    assert "Esperando la respuesta del deudor" in node(shown, "plan-waiting").text()
    assert node(shown, "review-reason").text() == "Seis cuotas mensuales, con el anticipo mínimo."
    original = await client.get(f"/backoffice/plans/{plan_id}")
    assert parse(original.text).by_id("decide") is None  # decided: no forms any more
    assert any(
        a.attrs.get("href") == f"/backoffice/plans/{offer_id}" for a in main(original).find_all("a")
    )

    debtor_view = await plan_views.plan_page([account.debtor], now=NOW)
    assert debtor_view.accounts[0].plan.id == offer_id  # type: ignore[union-attr]
    await plans.accept_counter([account.debtor], offer_id, now=NOW + dt.timedelta(hours=1))
    assert await status_of(offer_id) == "active"
    assert [k for k, _ in await kinds(account.id)][-1] == "plan_counter_accepted"
    agreed = await client.get(f"/backoffice/plans/{offer_id}")
    assert schedule_amounts(node(agreed, "plan-schedule"))[0] == 60_000  # the down payment
    assert "Pagado hasta hoy: $ 0,00 de $ 6.000,00." in main(agreed).text()


# ---------------------------------------------------------------------------- the policy editor


async def creditor_policy(account: Account, segment: str = "standard") -> dict | None:
    return await (
        PlanPolicy.select()
        .where((PlanPolicy.creditor == account.creditor) & (PlanPolicy.segment == segment))
        .first()
    )


def policy_form(account: Account, **changes: object) -> dict:
    values: dict = {
        "creditor": str(account.creditor),
        "segment": "standard",
        "max_installments": "9",
        "frequencies": ["monthly", "weekly"],
        "min_down_payment": "12,5",
        "min_installment": "250,50",
        "max_term_days": "400",
        "early_settlement_discount": "5",
        "missed_to_break": "3",
        "grace_days": "7",
        "auto_approve_limit": "5.000,00",
    }
    values.update(changes)
    return values


async def test_the_policy_editor_shows_each_segment_and_where_its_policy_comes_from(
    client, redis, servers, app_key
):
    account = await case()
    await Account.update({Account.segment: "pyme"}).where(Account.id == account.id)
    await signed_in(client, redis, servers, app_key, "admin")
    response = await client.get("/backoffice/policies/plans", params={"creditor": account.creditor})
    assert response.status_code == 200
    standard, pyme = node(response, "segment-standard"), node(response, "segment-pyme")
    assert standard.attrs["data-source"] == "own" and "hasta 6" in standard.text()
    assert "10%" in "".join(standard.text().split())  # the minimum down payment
    assert pyme.attrs["data-source"] == "standard" and "Usa la de «standard»" in pyme.text()
    assert node(response, "policy-max_installments").attrs["value"] == "6"
    assert node(response, "policy-min_down_payment").attrs["value"] == "10"
    checked = {
        i.attrs["value"]
        for i in node(response, "policy-form").find_all("input")
        if i.attrs.get("name") == "frequencies" and "checked" in i.attrs
    }
    assert checked == {"monthly", "biweekly"}

    english = await client.get(
        "/backoffice/policies/plans", params={"creditor": account.creditor, "lang": "en"}
    )
    assert main(english).find("h1").text() == "Plan policies"
    assert (await client.get("/backoffice/policies/plans?creditor=999999999")).status_code == 404


async def test_policy_errors_are_shown_next_to_their_fields_and_nothing_is_saved(
    client, redis, servers, app_key
):
    account = await case()
    admin = await signed_in(client, redis, servers, app_key, "admin")
    before = await creditor_policy(account)
    token = await csrf_token(client)
    response = await client.post(
        "/backoffice/policies/plans",
        data={
            "_csrf_token": token,
            **policy_form(
                account,
                max_installments="0",
                min_down_payment="95",
                min_installment="mucho",
                frequencies=[],
                segment="Segmento Nuevo!",
            ),
        },
    )
    assert response.status_code == 422
    for name in ("segment", "max_installments", "min_down_payment", "min_installment"):
        assert node(response, f"policy-{name}").attrs["aria-invalid"] == "true", name
        assert node(response, f"policy-{name}-error").text(), name
    assert "entre 1 y 60" in node(response, "policy-max_installments-error").text()
    assert "entre 0 y 90" in node(response, "policy-min_down_payment-error").text()
    assert node(response, "policy-frequencies-error").text() == "Elija al menos una frecuencia."
    assert node(response, "policy-min_installment").attrs["value"] == "mucho"  # as typed
    assert await creditor_policy(account) == before
    assert not await AuditEvent.exists().where(
        (AuditEvent.staff == admin.id) & (AuditEvent.action == "plan_policy.saved")
    )


async def test_saving_a_policy_changes_how_proposals_are_judged_and_is_audited(
    client, redis, servers, app_key
):
    account = await case()
    admin = await signed_in(client, redis, servers, app_key, "admin")
    token = await csrf_token(client)
    response = await client.post(
        "/backoffice/policies/plans", data={"_csrf_token": token, **policy_form(account)}
    )
    assert response.status_code == 303
    assert response.headers["location"] == (
        f"/backoffice/policies/plans?creditor={account.creditor}&segment=standard&saved=1"
    )
    assert await policy_for(account.id) == Policy(
        max_installments=9,
        frequencies=(plans.Frequency.weekly, plans.Frequency.monthly),
        min_down_payment_bp=1250,
        min_installment=25_050,
        max_term_days=400,
        early_settlement_discount_bp=500,
        missed_to_break=3,
        grace_days=7,
        auto_approve_limit=500_000,
    )
    event = await (
        AuditEvent.select()
        .where((AuditEvent.staff == admin.id) & (AuditEvent.action == "plan_policy.saved"))
        .first()
    )
    assert event is not None and event["ip"]
    before, after = (
        json.loads(event[c]) if isinstance(event[c], str) else event[c] for c in ("before", "after")
    )
    assert (before["max_installments"], after["max_installments"]) == (6, 9)
    shown = await client.get(response.headers["location"])
    assert node(shown, "policy-saved").text().startswith("Guardamos la política")
    assert node(shown, "policy-min_down_payment").attrs["value"] == "12,5"

    # a new segment of its own
    token = await csrf_token(client)
    created = await client.post(
        "/backoffice/policies/plans",
        data={"_csrf_token": token, **policy_form(account, segment="pyme", max_installments="3")},
    )
    assert created.status_code == 303
    assert (await creditor_policy(account, "pyme"))["max_installments"] == 3
    assert (await creditor_policy(account))["max_installments"] == 9

    # a debtor's proposal is now judged by the saved policy: 9 weekly installments fit it
    first = TODAY + dt.timedelta(days=7)
    judged = await plan_views.preview(
        [account.debtor], account.id, form(75_000, 9, "weekly", first), today=TODAY
    )
    assert judged.violations == ()


async def test_the_navigation_leads_each_role_to_its_plan_pages(client, redis, servers, app_key):
    await signed_in(client, redis, servers, app_key, "agent")
    links = {a.attrs["href"] for a in parse((await client.get("/backoffice")).text).find_all("a")}
    assert "/backoffice/plans" in links and "/backoffice/policies/plans" not in links
    await signed_in(client, redis, servers, app_key, "admin")
    links = {a.attrs["href"] for a in parse((await client.get("/backoffice")).text).find_all("a")}
    assert "/backoffice/policies/plans" in links and "/backoffice/plans" not in links
