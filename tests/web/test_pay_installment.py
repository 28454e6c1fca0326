"""Paying one installment of a payment plan from the portal: `/pay?installment=<id>` offers
exactly what is left of it, the checkout records the installment and pays the plan's invoices
first, and once the payment is synced /plans shows the installment paid (real PostgreSQL and
Redis, the demo provider, parsed HTML).

Plans here are made on the real clock: demo payments are received now, and only payments
received after a plan was made count toward it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets

import httpx
import pytest

from saldo import money
from saldo.payments.simulated import SimulatedProvider
from saldo.services import payments, plans
from saldo.services.ledger import apply_payment
from saldo.tables import CheckoutSession, Installment, LedgerEntry, PlanPolicy
from tests.services.helpers import make_account, make_invoice
from tests.web import portal_fixtures
from tests.web.html import Node, parse
from tests.web.portal_fixtures import csrf_token

client = portal_fixtures.client
sign_in = portal_fixtures.sign_in

TOTAL = 900_000  # ARS 9.000,00 on one invoice
DOWN = 90_000  # the down payment: installment 0, due the day the plan starts
UUID_PATH = re.compile(r"/pay/simulated/([0-9a-f-]{36})")


async def active_plan() -> tuple[object, int, dict[int, int]]:
    """An account with an active plan (approved at once): (account, plan id, number → id)."""
    account = await make_account(name=f"Lucía Fernández {secrets.token_hex(2)}")
    now = dt.datetime.now(dt.UTC)
    await make_invoice(account, f"P-{account.id}", TOTAL, now.date() - dt.timedelta(days=20))
    await PlanPolicy.insert(
        PlanPolicy(creditor=account.creditor, auto_approve_limit=10_000_000, min_down_payment_bp=0)
    )
    outcome = await plans.propose(
        [account.debtor],
        account.id,
        {
            "down_payment": str(money.to_decimal(DOWN, "ARS")),
            "installments": "3",
            "frequency": "monthly",
            "first_date": (now.date() + dt.timedelta(days=10)).isoformat(),
        },
        now=now,
    )
    assert outcome.status == "active"
    rows = await Installment.select().where(Installment.plan == outcome.plan_id)
    return account, outcome.plan_id, {r["number"]: r["id"] for r in rows}


def page_node(response: httpx.Response, element_id: str) -> Node:
    found = parse(response.text).by_id(element_id)
    assert found is not None, f"#{element_id} missing: {response.text[:300]}"
    return found


def inputs(node: Node) -> dict[str, str]:
    return {i.attrs["name"]: i.attrs.get("value", "") for i in node.find_all("input")}


async def pay_installment(client: httpx.AsyncClient, account_id: int, installment_id: int):
    token = csrf_token((await client.get(f"/pay?installment={installment_id}")).text)
    return await client.post(
        "/pay",
        data={
            "_csrf_token": token,
            "account": str(account_id),
            "choice": "installment",
            "installment": str(installment_id),
        },
    )


async def test_an_installment_link_offers_exactly_what_is_left_of_it(client, sign_in):
    account, _, ids = await active_plan()
    await sign_in([account.debtor])

    response = await client.get(f"/pay?installment={ids[0]}")
    assert response.status_code == 200
    card = page_node(response, "pay-installment")
    assert card.find("h2").text() == "Anticipo de su plan de pagos"
    assert int(card.find("p", **{"class": "pay-acct__balance"}).attrs["data-amount"]) == DOWN
    assert inputs(card) | {"_csrf_token": ""} == {
        "_csrf_token": "",
        "account": str(account.id),
        "choice": "installment",
        "installment": str(ids[0]),
    }
    assert "Pagar la cuota · $ 900,00" in card.text()
    assert parse(response.text).by_id(f"pay-{account.id}") is None  # only that installment

    # a part paid by transfer: the link offers the rest
    await apply_payment(
        account_id=account.id,
        provider="bank_transfer",
        provider_payment_id=secrets.token_hex(6),
        amount=30_000,
        received_at=dt.datetime.now(dt.UTC),
    )
    rest = page_node(await client.get(f"/pay?installment={ids[0]}"), "pay-installment")
    assert int(rest.find("p", **{"class": "pay-acct__balance"}).attrs["data-amount"]) == 60_000

    english = await client.get(f"/pay?installment={ids[1]}&lang=en")
    assert page_node(english, "pay-installment").find("h2").text() == (
        "Installment 1 of your payment plan"
    )


async def test_paying_an_installment_pays_the_plans_invoices_and_shows_it_paid(client, sign_in):
    account, _, ids = await active_plan()
    plan_invoice = await LedgerEntry.select(LedgerEntry.invoice).where(
        LedgerEntry.account == account.id
    )
    [covered] = {r["invoice"] for r in plan_invoice}
    # a charge billed after the plan, due earlier: oldest-first would pay it instead
    later = await make_invoice(
        account, f"L-{account.id}", 50_000, dt.date.today() - dt.timedelta(days=90)
    )
    await sign_in([account.debtor])

    started = await pay_installment(client, account.id, ids[0])
    assert started.status_code == 303, started.text[:500]
    public_id = UUID_PATH.fullmatch(started.headers["location"]).group(1)  # type: ignore[union-attr]
    checkout = await CheckoutSession.objects().get(CheckoutSession.public_id == public_id)
    assert (checkout.choice, checkout.installment_id, checkout.amount) == (
        "installment",
        ids[0],
        DOWN,
    )
    stored = checkout.invoice_ids
    assert (json.loads(stored) if isinstance(stored, str) else stored) == [covered]

    demo = await client.get(started.headers["location"])
    assert "Anticipo de su plan de pagos" in page_node(demo, "main").text()
    token = csrf_token(demo.text)
    chosen = await client.post(
        "/pay/simulated",
        data={"_csrf_token": token, "public_id": public_id, "outcome": "approved"},
    )
    payment_id = httpx.URL(chosen.headers["location"]).params["payment_id"]
    # what the worker's sync_payment job does with the payment the provider names
    await payments.sync_payment(SimulatedProvider(), payment_id, now=dt.datetime.now(dt.UTC))

    owed = {
        r["invoice"]: r["amount"]
        for r in await LedgerEntry.raw(
            "SELECT invoice, sum(amount)::bigint AS amount FROM ledger_entry "
            "WHERE account = {} GROUP BY invoice",
            account.id,
        )
    }
    assert owed == {covered: TOTAL - DOWN, later.id: 50_000}

    status = page_node(await client.get(f"/pay/return/{public_id}"), "pay-status")
    assert status.attrs["data-state"] == "approved"
    assert "Anticipo de su plan de pagos" in status.text()

    shown = await client.get("/plans")
    rows = {
        int(r.attrs["data-number"]): r.attrs.get("data-status")
        for r in page_node(shown, f"plan-{account.id}-active").find_all("tr")
        if "data-number" in r.attrs
    }
    assert rows == {0: "paid", 1: "pending", 2: "pending", 3: "pending"}
    assert (await client.get(f"/pay?installment={ids[0]}")).status_code == 404  # nothing left


@pytest.mark.parametrize("value", ["abc", "0", "99999999999", "2147483000"])
async def test_an_installment_that_is_not_there_is_not_found(client, sign_in, value):
    account, _, _ = await active_plan()
    await sign_in([account.debtor])
    assert (await client.get(f"/pay?installment={value}")).status_code == 404


async def test_someone_elses_installment_is_not_found_nor_payable(client, sign_in):
    mine, _, _ = await active_plan()
    theirs, _, their_ids = await active_plan()
    await sign_in([mine.debtor])
    assert (await client.get(f"/pay?installment={their_ids[0]}")).status_code == 404
    token = csrf_token((await client.get("/pay")).text)
    stolen = await client.post(
        "/pay",
        data={
            "_csrf_token": token,
            "account": str(mine.id),
            "choice": "installment",
            "installment": str(their_ids[0]),
        },
    )
    assert stolen.status_code == 404
    assert await CheckoutSession.count().where(CheckoutSession.account == theirs.id) == 0


async def test_an_installment_of_another_account_is_refused_next_to_the_button(client, sign_in):
    account, _, ids = await active_plan()
    other = await make_account()  # a second debtor row of the same person, elsewhere
    await make_invoice(other, f"O-{other.id}", 10_000, dt.date.today())
    await sign_in([account.debtor, other.debtor])
    token = csrf_token((await client.get("/pay")).text)
    response = await client.post(
        "/pay",
        data={
            "_csrf_token": token,
            "account": str(other.id),
            "choice": "installment",
            "installment": str(ids[0]),
        },
    )
    assert response.status_code == 422
    error = page_node(response, "pay-installment-installment-error")
    assert error.text() == "Esa cuota no es de esta cuenta."
    assert await CheckoutSession.count().where(CheckoutSession.account == other.id) == 0
