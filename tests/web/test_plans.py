"""The debtor's /plans pages as a debtor sees them: the proposal form and its live preview,
proposals approved at once or sent to review, counter-offers, the agreement PDF, promises to
pay (real PostgreSQL and Redis, parsed HTML and PDF text)."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from urllib.parse import urlsplit

import pytest

import portal.plans
from saldo.schedule import Frequency, Proposal
from saldo.services import plan_review, plans
from saldo.services.plan_progress import installments_of
from saldo.tables import Account, PaymentPlan, PlanPolicy, PromiseToPay, StaffUser
from tests.portal_data import ARS_OPEN, ARS_TOTAL, MXN_TOTAL, TODAY, World, build_world
from tests.web import portal_fixtures
from tests.web.html import Node, parse
from tests.web.portal_fixtures import csrf_token, pdf_text

client = portal_fixtures.client
sign_in = portal_fixtures.sign_in

HTMX = {"HX-Request": "true"}
NOW = dt.datetime.combine(TODAY, dt.time(15, 0), tzinfo=dt.UTC)
DISPUTED_F1 = 500_000  # tests/portal_data.py: an open dispute on F-1


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch):
    monkeypatch.setattr(portal.plans, "_now", lambda: NOW)


@pytest.fixture
async def world(db) -> World:
    """María's portfolio, with a plan policy at her Argentine creditor (each test its own)."""
    world = await build_world()
    account = await Account.objects().get(Account.id == world.accounts["ARS"])
    await PlanPolicy.insert(
        PlanPolicy(
            creditor=account.creditor,
            max_installments=6,
            frequencies='["monthly", "biweekly"]',
            min_down_payment_bp=1000,
            auto_approve_limit=20_000_000,
            grace_days=5,
            missed_to_break=2,
        )
    )
    return world


def main(response) -> Node:
    node = parse(response.text).by_id("main")
    assert node is not None, response.text[:500]
    return node


def by_id(node: Node, element_id: str) -> Node:
    found = node.by_id(element_id)
    assert found is not None, f"#{element_id} is missing"
    return found


def with_class(node: Node, tag: str, name: str) -> list[Node]:
    return [n for n in node.find_all(tag) if name in n.attrs.get("class", "").split()]


def schedule(node: Node) -> list[int]:
    """The amounts of a schedule table's rows, as the page states them in minor units."""
    return [int(row.attrs["data-amount"]) for row in with_class(node, "tr", "plan-sched__row")]


def total_of(node: Node) -> int:
    cell = next(n for n in node.iter() if "data-total" in n.attrs)
    return int(cell.attrs["data-total"])


def minor(text: str) -> int:
    return int(re.sub(r"\D", "", text))


def proposal(world: World, **changes: str) -> dict[str, str]:
    return {
        "account": str(world.accounts["ARS"]),
        "down_payment": "10368.83",  # 10 % of 103.688,21, rounded up
        "installments": "4",
        "frequency": "monthly",
        "first_date": "2026-12-10",
        **changes,
    }


async def token(client) -> str:
    return csrf_token((await client.get("/plans")).text)


# ---------------------------------------------------------------------------- the page


async def test_plans_need_a_signed_in_debtor(client):
    response = await client.get("/plans", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


async def test_each_account_shows_what_a_plan_covers_and_a_starting_preview(client, sign_in, world):
    await sign_in(world.maria_ids)
    response = await client.get("/plans")
    assert response.status_code == 200
    page = main(response)
    assert page.find("h1").text() == "Pague en cuotas o elija una fecha"

    ars = by_id(page, f"plan-{world.accounts['ARS']}")
    balance = next(p for p in ars.find_all("p") if "data-balance" in p.attrs)
    assert int(balance.attrs["data-balance"]) == ARS_TOTAL
    assert balance.text() == "$ 103.688,21"
    covered = [
        int(n.attrs["data-amount"]) for n in with_class(ars, "span", "plan-invoices__amount")
    ]
    assert covered == [ARS_OPEN[k] for k in ("A-4", "A-1", "A-2", "A-3")]
    preview = by_id(ars, f"plan-preview-{world.accounts['ARS']}")
    assert preview.attrs["data-verdict"] == "approve"
    assert sum(schedule(preview)) == total_of(preview) == ARS_TOTAL
    policy = " ".join(
        li.text() for li in with_class(ars, "ul", "plan-policy__list")[0].find_all("li")
    )
    assert "Hasta 6 cuotas (cada dos semanas, mensual)." in policy
    assert "Anticipo mínimo: 10% del saldo ($ 10.368,83)." in policy

    mxn = by_id(page, f"plan-{world.accounts['MXN']}")
    mxn_balance = next(p for p in mxn.find_all("p") if "data-balance" in p.attrs)
    assert int(mxn_balance.attrs["data-balance"]) == MXN_TOTAL - DISPUTED_F1
    assert "No incluye $5,000.00 en reclamo" in mxn.text()
    mxn_preview = by_id(mxn, f"plan-preview-{world.accounts['MXN']}")
    assert mxn_preview.attrs["data-verdict"] == "review"  # no policy: every plan is reviewed
    assert sum(schedule(mxn_preview)) == MXN_TOTAL - DISPUTED_F1


async def test_the_htmx_preview_is_the_schedule_with_the_broken_rules_by_field(
    client, sign_in, world
):
    await sign_in(world.maria_ids)
    csrf = await token(client)
    headers = {**HTMX, "x-csrf-token": csrf}
    within = await client.post("/plans/preview", data=proposal(world), headers=headers)
    assert within.status_code == 200
    assert "<html" not in within.text
    root = parse(within.text)
    fragment = [n for n in root.children if not isinstance(n, str)]
    assert [n.attrs.get("id") for n in fragment] == [f"plan-preview-{world.accounts['ARS']}"]
    preview = fragment[0]
    assert preview.attrs["data-verdict"] == "approve"
    amounts = schedule(preview)
    assert amounts == [1_036_883, 2_332_985, 2_332_985, 2_332_984, 2_332_984]
    assert sum(amounts) == total_of(preview) == ARS_TOTAL
    assert "Cumple las condiciones: se aprueba al instante." in preview.text()

    outside = await client.post(
        "/plans/preview",
        data=proposal(world, installments="9", frequency="weekly", down_payment=""),
        headers=headers,
    )
    preview = parse(outside.text).by_id(f"plan-preview-{world.accounts['ARS']}")
    assert preview is not None and preview.attrs["data-verdict"] == "review"
    issues = {
        li.attrs["data-field"]: li.text().replace(" :", ":")
        for li in with_class(preview, "li", "plan-issue")
    }
    assert issues == {
        "installments": "Cuotas: La política permite hasta 6 cuotas.",
        "frequency": "Frecuencia: Frecuencias que se aprueban al instante: cada dos semanas, "
        "mensual.",
        "down_payment": "Anticipo: El anticipo mínimo es $ 10.368,83.",
    }
    link = with_class(preview, "li", "plan-issue")[0].find("a")
    assert link is not None and link.attrs["href"].startswith(f"#plan-{world.accounts['ARS']}-")
    assert sum(schedule(preview)) == ARS_TOTAL


async def test_without_javascript_the_preview_is_the_page_with_the_form_as_typed(
    client, sign_in, world
):
    await sign_in(world.maria_ids)
    data = {
        **proposal(world, installments="0", first_date="mañana"),
        "_csrf_token": await token(client),
    }
    response = await client.post("/plans/preview", data=data)
    assert response.status_code == 200
    page = main(response)
    prefix = f"plan-{world.accounts['ARS']}"
    installments = by_id(page, f"{prefix}-installments")
    assert installments.attrs["value"] == "0"
    assert installments.attrs["aria-invalid"] == "true"
    assert by_id(page, f"{prefix}-installments-error").text() == "Elija entre 1 y 60 cuotas."
    assert by_id(page, f"{prefix}-first_date").attrs["value"] == "mañana"
    assert "por ejemplo 2026-12-02" in by_id(page, f"{prefix}-first_date-error").text()
    assert by_id(page, f"plan-preview-{world.accounts['ARS']}").attrs["data-verdict"] == "invalid"


# ---------------------------------------------------------------------------- proposing


async def test_a_proposal_within_policy_is_approved_and_each_installment_is_payable(
    client, sign_in, world
):
    await sign_in(world.maria_ids)
    data = {**proposal(world), "_csrf_token": await token(client)}
    response = await client.post("/plans", data=data, follow_redirects=False)
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert (location.path, location.query) == ("/plans", "result=active")
    page = main(await client.get("/plans?result=active"))
    assert "Su plan quedó aprobado" in by_id(page, "plans-result").text()
    active = by_id(page, f"plan-{world.accounts['ARS']}-active")
    rows = with_class(active, "tr", "plan-sched__row")
    assert [r.attrs["data-status"] for r in rows] == ["pending"] * 5
    assert sum(schedule(active)) == ARS_TOTAL
    plan = await PaymentPlan.objects().get(PaymentPlan.account == world.accounts["ARS"])
    ids = [r["id"] for r in (await installments_of([plan.id]))[plan.id]]
    pay_links = [a.attrs["href"] for a in active.find_all("a") if "installment=" in a.attrs["href"]]
    assert pay_links == [f"/pay?installment={i}" for i in ids]
    agreement = next(a for a in active.find_all("a") if a.attrs["href"].endswith(".pdf"))
    assert agreement.attrs["href"] == f"/plans/{plan.id}/agreement.pdf"
    assert (
        by_id(page, f"plan-{world.accounts['ARS']}").find(
            "form", id=f"plan-{world.accounts['ARS']}-form"
        )
        is None
    )


async def test_a_proposal_outside_policy_goes_to_review_with_the_message(client, sign_in, world):
    await sign_in(world.maria_ids)
    data = {
        **proposal(world, installments="10"),
        "message": "Cobro a fin de mes.",
        "_csrf_token": await token(client),
    }
    response = await client.post("/plans", data=data, follow_redirects=False)
    assert response.status_code == 303 and "result=proposed" in response.headers["location"]
    page = main(await client.get(response.headers["location"]))
    review = by_id(page, f"plan-{world.accounts['ARS']}-review")
    assert "Su propuesta está en revisión" in review.text()
    assert review.find("blockquote").text() == "Cobro a fin de mes."
    assert sum(schedule(review)) == ARS_TOTAL and len(schedule(review)) == 11
    again = await client.post("/plans", data=data, follow_redirects=False)
    assert again.status_code == 409  # one open plan per account


async def test_a_wrong_proposal_comes_back_with_messages_next_to_the_fields(client, sign_in, world):
    await sign_in(world.maria_ids)
    data = {
        **proposal(world, down_payment="200000", frequency="daily"),
        "_csrf_token": await token(client),
    }
    response = await client.post("/plans", data=data)
    assert response.status_code == 422
    page = main(response)
    prefix = f"plan-{world.accounts['ARS']}"
    down = by_id(page, f"{prefix}-down_payment")
    assert down.attrs["value"] == "200000" and down.attrs["aria-invalid"] == "true"
    assert f"{prefix}-down_payment-error" in down.attrs["aria-describedby"]
    assert by_id(page, f"{prefix}-down_payment-error").text() == (
        "El anticipo debe ser menor que el saldo del plan ($ 103.688,21)."
    )
    assert by_id(page, f"{prefix}-frequency-error").text() == "Elija cada cuánto quiere pagar."
    assert not await PaymentPlan.exists().where(PaymentPlan.account == world.accounts["ARS"])
    empty = await client.post("/plans", data={"_csrf_token": data["_csrf_token"]})
    assert empty.status_code == 422
    assert by_id(main(empty), "plans-problem").text() == "Elija una de sus cuentas."


async def test_another_debtors_account_is_not_found(client, sign_in, world):
    await sign_in(world.maria_ids)
    data = {
        **proposal(world, account=str(world.accounts["JULIAN"])),
        "_csrf_token": await token(client),
    }
    assert (await client.post("/plans", data=data)).status_code == 404
    assert (await client.post("/plans/preview", data=data)).status_code == 404
    assert not await PaymentPlan.exists().where(PaymentPlan.account == world.accounts["JULIAN"])


# ---------------------------------------------------------------------------- counter-offers


async def counter_offered(world: World) -> int:
    staff = StaffUser(email=f"agente.{secrets.token_hex(4)}@example.com")
    await staff.save()
    outcome = await plans.propose(
        world.maria_ids, world.accounts["ARS"], proposal(world, installments="12"), now=NOW
    )
    offer = Proposal(ARS_TOTAL, 0, 6, Frequency.biweekly, TODAY + dt.timedelta(days=10))
    decision = await plan_review.counter_offer(
        outcome.plan_id, offer, staff_id=staff.id, now=NOW, note="Seis cuotas quincenales."
    )
    return decision.plan_id


async def test_a_counter_offer_is_accepted_in_the_portal(client, sign_in, world):
    offer_id = await counter_offered(world)
    await sign_in(world.maria_ids)
    page = main(await client.get("/plans"))
    shown = by_id(page, f"plan-{world.accounts['ARS']}-offer")
    assert shown.find("blockquote").text() == "Seis cuotas quincenales."
    assert sum(schedule(shown)) == ARS_TOTAL and len(schedule(shown)) == 6
    actions = [f.attrs["action"] for f in shown.find_all("form")]
    assert actions == [f"/plans/{offer_id}/accept", f"/plans/{offer_id}/decline"]
    csrf = csrf_token((await client.get("/plans")).text)
    response = await client.post(
        f"/plans/{offer_id}/accept", data={"_csrf_token": csrf}, follow_redirects=False
    )
    assert response.status_code == 303
    page = main(await client.get(response.headers["location"]))
    assert "Aceptó el plan" in by_id(page, "plans-result").text()
    assert by_id(page, f"plan-{world.accounts['ARS']}-active") is not None
    again = await client.post(f"/plans/{offer_id}/accept", data={"_csrf_token": csrf})
    assert again.status_code == 409


async def test_a_counter_offer_is_declined_in_the_portal(client, sign_in, world):
    offer_id = await counter_offered(world)
    await sign_in(world.maria_ids)
    csrf = await token(client)
    response = await client.post(
        f"/plans/{offer_id}/decline", data={"_csrf_token": csrf}, follow_redirects=False
    )
    assert response.status_code == 303
    page = main(await client.get(response.headers["location"]))
    assert by_id(page, f"plan-{world.accounts['ARS']}-last").attrs["class"].endswith("--declined")
    assert by_id(page, f"plan-{world.accounts['ARS']}-form") is not None


# ---------------------------------------------------------------------------- the agreement


async def test_the_agreement_pdf_states_the_terms(client, sign_in, world):
    await sign_in(world.maria_ids)
    outcome = await plans.propose(world.maria_ids, world.accounts["ARS"], proposal(world), now=NOW)
    response = await client.get(f"/plans/{outcome.plan_id}/agreement.pdf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="acuerdo-de-pago-{outcome.plan_id}.pdf"'
    )
    text = " ".join(pdf_text(response.content).split())
    assert "Acuerdo de pago" in text
    assert world.creditors["AR"] in text and "María José Núñez" in text and "27345678" in text
    for short in ("A-4", "A-1", "A-2", "A-3"):
        assert world.number(short) in text
    for amount in ("$ 12.100,00", "$ 22.730,21", "$ 32.679,00", "$ 36.179,00", "$ 103.688,21"):
        assert amount in text
    assert "Anticipo 25/11/2026 $ 10.368,83" in text
    assert "Cuota 4 10/03/2027 $ 23.329,84" in text
    assert "Cada cuota tiene 5 días de gracia" in text and "Con 2 cuotas impagas" in text
    assert "se conserva" in text
    assert (
        "Pagar todas las cuotas cancela por completo la deuda de las facturas detalladas." in text
    )
    english = await client.get(f"/plans/{outcome.plan_id}/agreement.pdf?lang=en")
    words = " ".join(pdf_text(english.content).split())
    assert "Payment agreement" in words and "5 days of grace" in words
    assert 'filename="payment-agreement-' in english.headers["content-disposition"]


async def test_a_plan_not_yet_agreed_has_no_agreement(client, sign_in, world):
    await sign_in(world.maria_ids)
    outcome = await plans.propose(
        world.maria_ids, world.accounts["ARS"], proposal(world, installments="12"), now=NOW
    )
    assert (await client.get(f"/plans/{outcome.plan_id}/agreement.pdf")).status_code == 404


# ---------------------------------------------------------------------------- promises


async def test_a_promise_form_says_what_is_wrong_then_pauses_reminders(client, sign_in, world):
    await sign_in(world.maria_ids)
    csrf = await token(client)
    account = world.accounts["EUR"]
    prefix = f"promise-{account}"
    wrong = await client.post(
        "/plans/promise",
        data={"account": str(account), "amount": "600", "date": "2027-03-01", "_csrf_token": csrf},
    )
    assert wrong.status_code == 422
    page = main(wrong)
    assert by_id(page, f"{prefix}-amount").attrs["value"] == "600"
    assert by_id(page, f"{prefix}-amount-error").text() == (
        "El importe no puede superar el saldo de la cuenta (499,20 €)."
    )
    late = await client.post(
        "/plans/promise",
        data={"account": str(account), "amount": "100", "date": "2027-03-01", "_csrf_token": csrf},
    )
    assert by_id(main(late), f"{prefix}-date-error").text() == (
        "Elija una fecha entre hoy y el 25/12/2026."
    )
    good = await client.post(
        "/plans/promise",
        data={"account": str(account), "amount": "100,50", "date": "2026-12-05",
              "_csrf_token": csrf},
        follow_redirects=False,
    )  # fmt: skip
    assert good.status_code == 303
    page = main(await client.get(good.headers["location"]))
    promise = by_id(page, f"plan-{account}-promise")
    assert promise.find("form") is None
    assert "Prometió pagar 100,50 € el 05/12/2026." in promise.text()
    stored = await PromiseToPay.objects().get(PromiseToPay.account == account)
    assert (stored.amount, stored.promised_date) == (10_050, dt.date(2026, 12, 5))


async def test_odd_input_is_answered_never_a_server_error(client, sign_in, world):
    await sign_in(world.maria_ids)
    csrf = await token(client)
    for url in ("/plans/abc/agreement.pdf", "/plans/99999999999999999999/agreement.pdf",
                "/plans/-1/agreement.pdf"):  # fmt: skip
        assert (await client.get(url)).status_code in {400, 404}, url
    garbage = {
        "account": str(world.accounts["ARS"]),
        "down_payment": "9" * 400,
        "installments": "1" * 50,
        "frequency": "<script>",
        "first_date": "0000-00-00",
        "message": "x" * 5000,
        "_csrf_token": csrf,
    }
    for url in ("/plans", "/plans/preview"):
        response = await client.post(url, data=garbage)
        assert response.status_code in {200, 422}, url
        assert "<script>" not in response.text  # nothing typed is echoed unescaped
    promise = {"account": str(world.accounts["ARS"]), "amount": "9" * 400, "date": "9999-99-99",
               "_csrf_token": csrf}  # fmt: skip
    assert (await client.post("/plans/promise", data=promise)).status_code == 422
