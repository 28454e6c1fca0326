"""The debtor's /pay journey as a browser sees it: the options per account, the checkout
redirect, form errors next to their fields, the live return page, and demo mode's provider
page (real PostgreSQL and Redis, parsed HTML)."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import socket
import time
import uuid

import httpx
import msgspec
import pytest

import portal.pay
from saldo.references import payment_reference
from saldo.services.checkout import sync_job_id
from saldo.tables import CheckoutSession, Payment, SimulatedPayment
from saldo.worker import queue_name
from tests.portal_data import ARS_OPEN, ARS_TOTAL, TODAY, World, build_world
from tests.web import portal_fixtures
from tests.web.html import Node, parse
from tests.web.portal_fixtures import SESSION_COOKIE, csrf_token

client = portal_fixtures.client
sign_in = portal_fixtures.sign_in

HTMX = {"HX-Request": "true"}
NOW = dt.datetime.combine(TODAY, dt.time(15, 0), tzinfo=dt.UTC)
UUID_PATH = re.compile(r"/pay/simulated/([0-9a-f-]{36})")


@pytest.fixture(scope="module")
async def world(db) -> World:
    return await build_world()


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch):
    monkeypatch.setattr(portal.pay, "_now", lambda: NOW)


def minor(text: str) -> int:
    digits = re.sub(r"\D", "", text)
    assert digits, text
    return int(digits)


def main(response: httpx.Response) -> Node:
    node = parse(response.text).by_id("main")
    assert node is not None, response.text[:500]
    return node


def section(page: Node, account_id: int) -> Node:
    node = page.by_id(f"pay-{account_id}")
    assert node is not None, f"pay-{account_id} not on the page"
    return node


def has_class(node: Node, name: str) -> bool:
    return name in node.attrs.get("class", "").split()


async def token(client: httpx.AsyncClient) -> str:
    return csrf_token((await client.get("/pay")).text)


async def post_pay(client: httpx.AsyncClient, **form: object) -> httpx.Response:
    data = {"_csrf_token": await token(client), **form}
    return await client.post("/pay", data=data, follow_redirects=False)


async def checkouts_of(account_id: int) -> int:
    return await CheckoutSession.count().where(CheckoutSession.account == account_id)


async def start(client: httpx.AsyncClient, world: World, **form: object) -> str:
    """Start a checkout for María's ARS account; returns its public id."""
    response = await post_pay(client, account=world.accounts["ARS"], **form)
    assert response.status_code == 303, response.text[:800]
    match = UUID_PATH.fullmatch(response.headers["location"])
    assert match, response.headers["location"]
    return match.group(1)


async def queued(redis, servers, job_id: str) -> bool:
    """Whether the app's queue holds `job_id` (the queue keeps job ids under its prefix)."""
    key = f"{servers.redis_prefix}{job_id}"
    return await redis.zscore(queue_name(servers.redis_prefix), key) is not None


# ---------------------------------------------------------------------------- the options


async def test_pay_needs_a_signed_in_debtor(client):
    response = await client.get("/pay", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


async def test_pay_shows_every_account_with_its_balance_invoices_and_transfer_reference(
    client, sign_in, world
):
    await sign_in(world.maria_ids)
    response = await client.get("/pay")
    assert response.status_code == 200
    page = main(response)

    ars = section(page, world.accounts["ARS"])
    assert world.creditors["AR"] in ars.text()
    balance = ars.find("p", **{"class": "pay-acct__balance"})
    assert balance is not None and balance.text() == "$ 103.688,21"
    assert int(balance.attrs["data-balance"]) == ARS_TOTAL
    boxes = [i for i in ars.find_all("input") if i.attrs.get("name") == "invoice_ids"]
    assert [int(b.attrs["value"]) for b in boxes] == [
        world.invoice(n) for n in ("A-4", "A-1", "A-2", "A-3")
    ]  # oldest due date first; the paid A-5 is not offered
    opens = {
        int(b.attrs["value"]): int(a.attrs["data-open"])
        for b, a in zip(
            boxes,
            [s for s in ars.find_all("span") if has_class(s, "pay-invoice__amount")],
            strict=True,
        )
    }
    assert opens == {world.invoice(k): v for k, v in ARS_OPEN.items()}
    labels = [label.text() for label in ars.find_all("label") if has_class(label, "pay-invoice")]
    assert any(world.number("A-4") in text and "Vencida" in text for text in labels)
    assert any(world.number("A-3") in text and "Vencida" not in text for text in labels)

    reference = ars.find("code")
    assert reference is not None
    assert reference.text() == payment_reference(world.accounts["ARS"])
    assert "Conecta Telecom" in ars.find("div", **{"class": "pay-transfer"}).text()

    # the three ways, each its own form naming the account and the choice
    choices = {
        next(i.attrs["value"] for i in form.find_all("input") if i.attrs.get("name") == "choice")
        for form in ars.find_all("form")
        if any(
            i.attrs.get("name") == "account" and i.attrs["value"] == str(world.accounts["ARS"])
            for i in form.find_all("input")
        )
    }
    assert choices == {"balance", "invoices", "amount"}

    for key in ("MXN", "EUR"):
        assert section(page, world.accounts[key]) is not None
    assert world.number("J-1") not in page.text()
    claim_links = [a for a in page.find_all("a") if a.attrs.get("href") == "/pay/claim"]
    assert claim_links and claim_links[0].text() == "Ya pagué"


async def test_demo_mode_is_announced_on_every_pay_page(client, sign_in, world):
    await sign_in(world.maria_ids)
    page = main(await client.get("/pay"))
    banner = page.by_id("demo-banner")
    assert banner is not None
    assert "Modo demostración — no se mueve dinero real" in banner.text()


async def test_account_page_offers_to_pay_each_account_that_owes(client, sign_in, world):
    await sign_in(world.maria_ids)
    page = main(await client.get("/account"))
    card = page.by_id(f"account-{world.accounts['ARS']}")
    assert card is not None
    links = [a for a in card.find_all("a") if a.text() == "Pagar"]
    assert [a.attrs["href"] for a in links] == [f"/pay#pay-{world.accounts['ARS']}"]


async def test_pay_page_speaks_english_when_asked(client, sign_in, world):
    await sign_in(world.maria_ids)
    page = main(await client.get("/pay?lang=en"))
    assert page.find("h1").text() == "Pay online"
    assert "Demo mode — no real money moves" in page.text()


# ---------------------------------------------------------------------------- starting a checkout


async def test_paying_the_balance_sends_the_debtor_to_the_checkout(client, sign_in, world):
    await sign_in(world.maria_ids)
    public_id = await start(client, world, choice="balance")
    row = await CheckoutSession.objects().get(CheckoutSession.public_id == uuid.UUID(public_id))
    assert row is not None
    assert (row.amount, row.currency, row.choice, row.status) == (
        ARS_TOTAL,
        "ARS",
        "balance",
        "created",
    )
    assert row.init_point == f"/pay/simulated/{public_id}"
    assert row.provider_preference_id == f"sim-{public_id}"
    assert row.payer_email == f"maria.{world.tag}@example.com"
    assert row.expires_at == NOW + dt.timedelta(hours=72)


async def test_paying_chosen_invoices_charges_exactly_their_open_amounts(client, sign_in, world):
    await sign_in(world.maria_ids)
    chosen = [world.invoice("A-1"), world.invoice("A-4")]
    public_id = await start(client, world, choice="invoices", invoice_ids=[str(i) for i in chosen])
    row = await CheckoutSession.objects().get(CheckoutSession.public_id == uuid.UUID(public_id))
    assert row.amount == ARS_OPEN["A-1"] + ARS_OPEN["A-4"]
    assert json.loads(row.invoice_ids) == [
        world.invoice("A-4"),
        world.invoice("A-1"),
    ]  # by due date


async def test_a_custom_amount_is_read_as_the_debtor_writes_it(client, sign_in, world):
    await sign_in(world.maria_ids)
    public_id = await start(client, world, choice="amount", amount="1.234,56")
    row = await CheckoutSession.objects().get(CheckoutSession.public_id == uuid.UUID(public_id))
    assert (row.amount, row.choice) == (123456, "amount")


async def test_an_amount_above_the_balance_is_shown_next_to_the_field(client, sign_in, world):
    await sign_in(world.maria_ids)
    account = world.accounts["ARS"]
    before = await checkouts_of(account)
    response = await post_pay(client, account=account, choice="amount", amount="200000")
    assert response.status_code == 422
    page = main(response)
    fold = page.by_id(f"pay-{account}-amount")
    assert fold is not None and "open" in fold.attrs
    error = page.by_id(f"pay-{account}-amount-error")
    assert error is not None
    assert error.text() == "El importe no puede superar su saldo de $ 103.688,21."
    field = page.by_id(f"pay-{account}-amount-input")
    assert field.attrs["value"] == "200000"
    assert field.attrs["aria-invalid"] == "true"
    assert f"pay-{account}-amount-error" in field.attrs["aria-describedby"]
    # other accounts' forms stay clean
    assert page.by_id(f"pay-{world.accounts['MXN']}-amount-error") is None
    assert await checkouts_of(account) == before


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("", "Escriba el importe que quiere pagar."),
        ("doce mil", "No entendemos ese importe. Escríbalo solo con números, por ejemplo 1234,56."),
        ("10,555", "Escriba el importe con dos decimales como máximo, por ejemplo 1234,56."),
        ("0", "El importe mínimo para pagar en línea es $ 0,01."),
    ],
)
async def test_unreadable_amounts_get_a_clear_message(client, sign_in, world, amount, message):
    await sign_in(world.maria_ids)
    account = world.accounts["ARS"]
    response = await post_pay(client, account=account, choice="amount", amount=amount)
    assert response.status_code == 422
    error = main(response).by_id(f"pay-{account}-amount-error")
    assert error is not None and error.text() == message


async def test_invoice_errors_are_shown_next_to_the_invoice_list(client, sign_in, world):
    await sign_in(world.maria_ids)
    account = world.accounts["ARS"]
    for invoice_ids, message in (
        ([], "Elija al menos una factura para pagar."),
        (
            [str(world.invoice("A-5"))],  # paid already
            "Alguna de las facturas elegidas ya no está pendiente. Revise la lista.",
        ),
        (
            [str(world.invoice("J-1"))],  # Julián's
            "Alguna de las facturas elegidas ya no está pendiente. Revise la lista.",
        ),
    ):
        response = await post_pay(
            client, account=account, choice="invoices", invoice_ids=invoice_ids
        )
        assert response.status_code == 422
        page = main(response)
        assert page.by_id(f"pay-{account}-invoices").attrs.get("open") is not None
        error = page.by_id(f"pay-{account}-invoice_ids-error")
        assert error is not None and error.text() == message
        assert world.number("J-1") not in page.text()


async def test_someone_elses_account_is_not_found(client, sign_in, world):
    await sign_in(world.maria_ids)
    response = await post_pay(client, account=world.accounts["JULIAN"], choice="balance")
    assert response.status_code == 404
    assert await checkouts_of(world.accounts["JULIAN"]) == 0


async def test_a_form_without_an_account_is_refused_with_a_message(client, sign_in, world):
    await sign_in(world.maria_ids)
    response = await post_pay(client, choice="balance")
    assert response.status_code == 422
    error = main(response).by_id("pay-error")
    assert error is not None and error.text() == "Elija la cuenta que quiere pagar."


# ---------------------------------------------------------------------------- the return page


def polling(node: Node) -> bool:
    return "hx-get" in node.attrs or "hx-trigger" in node.attrs


async def test_return_page_polls_while_waiting_and_queues_the_named_payment(
    client, sign_in, world, redis, servers
):
    await sign_in(world.maria_ids)
    public_id = await start(client, world, choice="balance")
    url = f"/pay/return/{public_id}"
    response = await client.get(f"{url}?status=approved&payment_id=987654321")
    assert response.status_code == 200
    status = main(response).by_id("pay-status")
    assert status is not None
    assert status.attrs["data-state"] == "waiting"
    assert status.attrs["hx-get"] == url
    assert status.attrs["hx-trigger"] == "every 2s"
    assert status.attrs["hx-swap"] == "outerHTML"
    assert "Estamos confirmando su pago" in status.text()
    refresh = [a for a in status.find_all("a") if a.attrs.get("href") == url]
    assert refresh and "Actualizar" in refresh[0].text()  # works without JavaScript
    job = sync_job_id("simulated", "987654321")
    assert await queued(redis, servers, job)

    # the poll itself is the fragment: one root element with the same id, nothing else
    fragment = await client.get(url, headers=HTMX)
    assert fragment.headers["vary"] == "HX-Request"
    tree = parse(fragment.text)
    roots = [n for n in tree.children if isinstance(n, Node)]
    assert len(roots) == 1 and roots[0].attrs["id"] == "pay-status"
    assert tree.find("html") is None


async def test_return_page_ignores_a_payment_id_that_is_not_one(
    client, sign_in, world, redis, servers
):
    await sign_in(world.maria_ids)
    public_id = await start(client, world, choice="balance")
    response = await client.get(f"/pay/return/{public_id}?payment_id=null")
    assert response.status_code == 200
    assert not await queued(redis, servers, sync_job_id("simulated", "null"))


async def set_state(public_id: str, status: str, method: str | None = None) -> None:
    row = await CheckoutSession.objects().get(CheckoutSession.public_id == uuid.UUID(public_id))
    await CheckoutSession.update({CheckoutSession.status: status}).where(
        CheckoutSession.id == row.id
    )
    if method:
        await Payment.insert(
            Payment(
                account=row.account,
                provider="simulated",
                provider_payment_id=f"state-{uuid.uuid4()}",
                amount=row.amount,
                currency=row.currency,
                status=status,
                method=method,
                checkout=row.id,
                expires_at=NOW + dt.timedelta(days=3),
            )
        )


@pytest.mark.parametrize(
    ("status", "method", "title", "polls"),
    [
        ("pending", "ticket", "Pago pendiente", True),
        ("approved", "account_money", "¡Pago acreditado!", False),
        ("rejected", "credit_card", "El pago fue rechazado", False),
        ("refunded", None, "Pago anulado", False),
    ],
)
async def test_return_page_says_what_happened_and_stops_polling_when_final(
    client, sign_in, world, status, method, title, polls
):
    await sign_in(world.maria_ids)
    public_id = await start(client, world, choice="invoices", invoice_ids=[world.invoice("A-1")])
    await set_state(public_id, status, method)
    node = main(await client.get(f"/pay/return/{public_id}")).by_id("pay-status")
    assert node is not None
    assert node.attrs["data-state"] == status
    assert node.find("h2").text() == title
    assert polling(node) is polls
    assert "$ 22.730,21" in node.text()
    assert world.number("A-1") in node.text()
    links = {a.attrs["href"] for a in node.find_all("a")}
    if status == "pending":
        assert "pausamos los recordatorios de estas facturas" in node.text()
        assert "Vence el 28/11/2026." in node.text()  # the voucher's due date
    if status == "approved":
        assert "/account" in links
    if status == "rejected":
        assert "/pay" in links  # try again


async def test_an_unpaid_link_past_its_expiry_is_final(client, sign_in, world, monkeypatch):
    await sign_in(world.maria_ids)
    public_id = await start(client, world, choice="balance")
    monkeypatch.setattr(portal.pay, "_now", lambda: NOW + dt.timedelta(hours=73))
    node = main(await client.get(f"/pay/return/{public_id}")).by_id("pay-status")
    assert node.attrs["data-state"] == "expired"
    assert not polling(node)
    assert "/pay" in {a.attrs["href"] for a in node.find_all("a")}


async def test_return_page_of_someone_elses_checkout_is_not_found(
    client, sign_in, world, redis, servers
):
    await sign_in(world.maria_ids)
    public_id = await start(client, world, choice="balance")
    await sign_in([world.julian_id])
    response = await client.get(f"/pay/return/{public_id}?payment_id=55")
    assert response.status_code == 404
    assert world.creditors["AR"] not in response.text
    assert not await queued(redis, servers, sync_job_id("simulated", "55"))
    assert (await client.get("/pay/return/not-a-uuid")).status_code == 404


# ---------------------------------------------------------------------------- demo mode


async def test_demo_page_shows_the_checkout_and_its_three_outcomes(client, sign_in, world):
    await sign_in(world.maria_ids)
    public_id = await start(client, world, choice="invoices", invoice_ids=[world.invoice("A-4")])
    response = await client.get(f"/pay/simulated/{public_id}")
    assert response.status_code == 200
    page = main(response)
    assert "Modo demostración — no se mueve dinero real" in page.by_id("demo-banner").text()
    assert page.find("h1").text() == f"Pagar a {world.creditors['AR']}"
    amount = page.find("p", **{"class": "pay-sim__amount"})
    assert int(amount.attrs["data-amount"]) == ARS_OPEN["A-4"]
    buttons = [b for b in page.find_all("button") if b.attrs.get("name") == "outcome"]
    assert [b.attrs["value"] for b in buttons] == ["approved", "pending", "rejected"]


async def test_choosing_an_outcome_pays_like_mercado_pago_would(
    client, sign_in, world, redis, servers
):
    await sign_in(world.maria_ids)
    public_id = await start(client, world, choice="invoices", invoice_ids=[world.invoice("A-4")])
    response = await client.post(
        "/pay/simulated",
        data={"_csrf_token": await token(client), "public_id": public_id, "outcome": "approved"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    location = httpx.URL(response.headers["location"])
    assert location.path == f"/pay/return/{public_id}"
    assert location.params["status"] == "approved"
    assert location.params["external_reference"] == public_id
    payment_id = location.params["payment_id"]
    simulated = await SimulatedPayment.objects().get(SimulatedPayment.id == int(payment_id))
    assert (simulated.status, simulated.amount, simulated.currency) == (
        "approved",
        ARS_OPEN["A-4"],
        "ARS",
    )
    assert await queued(redis, servers, sync_job_id("simulated", payment_id))

    # following the redirect shows the return page, waiting for the worker
    page = main(await client.get(str(location)))
    assert page.by_id("pay-status").attrs["data-state"] == "waiting"


async def test_an_unknown_outcome_or_foreign_checkout_changes_nothing(client, sign_in, world):
    await sign_in(world.maria_ids)
    public_id = await start(client, world, choice="balance")
    csrf = await token(client)
    bad = await client.post(
        "/pay/simulated", data={"_csrf_token": csrf, "public_id": public_id, "outcome": "maybe"}
    )
    assert bad.status_code == 422
    await sign_in([world.julian_id])
    csrf = csrf_token((await client.get("/pay")).text)
    foreign = await client.post(
        "/pay/simulated",
        data={"_csrf_token": csrf, "public_id": public_id, "outcome": "approved"},
    )
    assert foreign.status_code == 404
    assert (await client.get(f"/pay/simulated/{public_id}")).status_code == 404
    checkout = await CheckoutSession.objects().get(
        CheckoutSession.public_id == uuid.UUID(public_id)
    )
    assert await SimulatedPayment.count().where(SimulatedPayment.checkout == checkout.id) == 0


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def real_provider_client(db, make_app, redis, servers, world):
    """María's browser on an app configured for Mercado Pago, whose API is an unused loopback
    port (nothing answers there)."""
    app = make_app(
        mercadopago_access_token="TEST-0000000000000000-000000-not-a-real-token",
        mercadopago_api_url=f"http://127.0.0.1:{unused_port()}",
    )
    session_id = secrets.token_hex(16)
    data = {"debtor_ids": world.maria_ids, "created_at": int(time.time())}
    await redis.set(
        f"{servers.redis_prefix}session:{session_id}", msgspec.json.encode(data), ex=1800
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as c:
        c.cookies.set(SESSION_COOKIE, session_id)
        yield c
    await app.state.redis.aclose()


async def test_demo_page_does_not_exist_with_a_real_provider(
    client, sign_in, world, real_provider_client
):
    await sign_in(world.maria_ids)
    public_id = await start(client, world, choice="balance")  # a demo checkout
    browser = real_provider_client
    assert (await browser.get(f"/pay/simulated/{public_id}")).status_code == 404
    page = main(await browser.get("/pay"))
    assert page.by_id("demo-banner") is None
    csrf = csrf_token((await browser.get("/pay")).text)
    response = await browser.post(
        "/pay/simulated",
        data={"_csrf_token": csrf, "public_id": public_id, "outcome": "approved"},
    )
    assert response.status_code == 404
    checkout = await CheckoutSession.objects().get(
        CheckoutSession.public_id == uuid.UUID(public_id)
    )
    assert await SimulatedPayment.count().where(SimulatedPayment.checkout == checkout.id) == 0


async def test_an_unreachable_provider_is_a_message_not_a_crash(
    client, sign_in, world, real_provider_client
):
    await sign_in(world.maria_ids)
    browser = real_provider_client
    csrf = csrf_token((await browser.get("/pay")).text)
    response = await browser.post(
        "/pay",
        data={"_csrf_token": csrf, "account": world.accounts["ARS"], "choice": "balance"},
        follow_redirects=False,
    )
    assert response.status_code == 503
    error = main(response).by_id("pay-error")
    assert error is not None
    assert "No pudimos conectar con Mercado Pago" in error.text()
