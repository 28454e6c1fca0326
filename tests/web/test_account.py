"""The signed-in debtor's pages, as a debtor sees them: balance, aging, invoices, PDFs,
statement and preferences (real PostgreSQL and Redis, parsed HTML and PDF text)."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest

import portal.account
from saldo.tables import ContactPreference, Debtor, Interaction
from saldo.web import SESSION_ABSOLUTE_SECONDS
from tests.portal_data import ARS_AGING, ARS_OPEN, ARS_TOTAL, TODAY, World, build_world
from tests.web import portal_fixtures
from tests.web.html import Node, parse
from tests.web.portal_fixtures import csrf_token, pdf_text

client = portal_fixtures.client
sign_in = portal_fixtures.sign_in

HTMX = {"HX-Request": "true"}
NOW = dt.datetime.combine(TODAY, dt.time(15, 0), tzinfo=dt.UTC)


@pytest.fixture(scope="module")
async def world(db) -> World:
    return await build_world()


@pytest.fixture(autouse=True)
def frozen_today(monkeypatch):
    monkeypatch.setattr(portal.account, "_now", lambda: NOW)


def minor(text: str) -> int:
    """The amount a debtor reads, back in minor units ("-$ 1.234,56" -> -123456)."""
    digits = re.sub(r"\D", "", text)
    assert digits, text
    return -int(digits) if "-" in text or "−" in text else int(digits)


def main(response) -> Node:
    node = parse(response.text).by_id("main")
    assert node is not None
    return node


def card(page: Node, account_id: int) -> Node:
    node = page.by_id(f"account-{account_id}")
    assert node is not None, f"account-{account_id} not on the page"
    return node


def dd(node: Node, part: str) -> str:
    found = next((n for n in node.iter() if n.attrs.get("data-part") == part), None)
    assert found is not None, part
    return found.text()


def sum_rows(node: Node) -> list[tuple[str, str]]:
    """(label, amount) of each row of an invoice's sum, in order."""
    rows = []
    for row in node.find_all("div"):
        if "sum__row" in row.attrs.get("class", "").split():
            label, amount = row.find("dt"), row.find("dd")
            assert label is not None and amount is not None
            rows.append((label.text(), amount.text()))
    return rows


# ---------------------------------------------------------------------------- access


@pytest.mark.parametrize("path", ["/account", "/invoices/1", "/invoices/1.pdf", "/statement.pdf",
                                  "/preferences"])  # fmt: skip
async def test_pages_need_a_signed_in_debtor(client, path):
    response = await client.get(path, follow_redirects=False)
    if response.status_code == 303:  # a browser is sent to sign in
        assert response.headers["location"].startswith("/login")
    else:
        assert response.status_code == 401
    problem = await client.get(path, headers={"Accept": "application/json"})
    assert problem.status_code == 401


async def test_a_session_past_its_absolute_lifetime_no_longer_opens_the_account(
    client, sign_in, world
):
    await sign_in(world.maria_ids, created_at=int(time.time()) - SESSION_ABSOLUTE_SECONDS - 5)
    response = await client.get("/account")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


# ---------------------------------------------------------------------------- balance


async def test_balance_shows_every_creditor_and_the_numbers_add_up(client, sign_in, world):
    await sign_in(world.maria_ids)
    response = await client.get("/account")
    assert response.status_code == 200
    assert response.headers["vary"] == "HX-Request"
    assert response.headers["cache-control"] == "no-store"
    page = main(response)
    assert page.find("h1").text() == "Hola, María José Núñez"
    assert "Su saldo al 25/11/2026" in page.text()
    creditors = [h.text() for h in page.find_all("h2") if h.attrs.get("class") == "creditor__name"]
    assert creditors == sorted(world.creditors.values())

    ars = card(page, world.accounts["ARS"])
    total = ars.find("p", **{"class": "acct__amount"})
    assert total is not None and total.text() == "$ 103.688,21"
    assert minor(total.text()) == ARS_TOTAL
    overdue, not_due, whole = dd(ars, "overdue"), dd(ars, "not_due"), dd(ars, "total")
    assert (overdue, not_due, whole) == ("$ 67.509,21", "$ 36.179,00", "$ 103.688,21")
    assert minor(overdue) + minor(not_due) == minor(whole)
    assert "Próximo vencimiento: 10/12/2026 por $ 36.179,00" in ars.text()

    # each open invoice: lines -> total, total + movements -> open; opens -> account total
    invoices = [d for d in ars.find_all("details") if d.attrs.get("class") == "inv"]
    assert len(invoices) == 4
    opens = []
    for invoice in invoices:
        rows = sum_rows(invoice)
        labels = [label for label, _ in rows]
        assert labels[:3] == ["Subtotal", "Impuestos", "Total de la factura"]
        assert labels[-1] == "Saldo pendiente"
        subtotal, taxes, billed = (minor(a) for _, a in rows[:3])
        assert subtotal + taxes == billed
        line_totals = [
            minor(td.text())
            for td in invoice.find_all("td")
            if "rtable__strong" in td.attrs.get("class", "")
        ]
        assert sum(line_totals) == billed
        movements = sum(minor(a) for _, a in rows[3:-1])
        assert billed + movements == minor(rows[-1][1]) == int(invoice.attrs["data-open"])
        opens.append(minor(rows[-1][1]))
    assert sorted(opens) == sorted(ARS_OPEN.values())
    assert sum(opens) == minor(total.text())

    a1 = page.by_id(f"invoice-{world.invoice('A-1')}")
    assert a1 is not None
    assert "Abono fibra 300 Mb — agosto" in a1.text()
    rows = dict(sum_rows(a1))
    assert any(label.startswith("Interés por mora") and "3% mensual desde el 10/09/2026" in label
               for label in rows)  # fmt: skip
    assert rows["Total de la factura"] == "$ 42.230,21"
    assert rows["Saldo pendiente"] == "$ 22.730,21"

    mxn = card(page, world.accounts["MXN"])
    assert mxn.find("p", **{"class": "acct__amount"}).text() == "$22,038.84"
    assert "Llegó con una pata rota" in mxn.text()
    eur = card(page, world.accounts["EUR"])
    assert eur.find("p", **{"class": "acct__amount"}).text() == "499,20 €"


async def test_balance_never_shows_another_debtor(client, sign_in, world):
    await sign_in(world.maria_ids)
    text = main(await client.get("/account")).text()
    for foreign in ("Julián", world.number("J-1"), "Plan móvil secreto"):
        assert foreign not in text

    await sign_in([world.julian_id])
    text = main(await client.get("/account")).text()
    assert world.number("J-1") in text
    assert "Núñez" not in text and world.number("A-1") not in text


async def test_aging_view_is_an_htmx_fragment_with_the_right_buckets(client, sign_in, world):
    await sign_in(world.maria_ids)
    response = await client.get("/account?view=aging", headers=HTMX)
    assert response.status_code == 200
    assert response.headers["vary"] == "HX-Request"
    fragment = parse(response.text)
    assert fragment.find("html") is None
    roots = [n for n in fragment.children if isinstance(n, Node)]
    assert len(roots) == 1 and roots[0].attrs["id"] == "accounts"

    ars = card(fragment, world.accounts["ARS"])
    buckets = {
        row.attrs["data-bucket"]: minor(row.find_all("td")[-1].text())
        for row in ars.find_all("tr")
        if "data-bucket" in row.attrs
    }
    assert buckets == ARS_AGING
    labels = [row.find("th").text() for row in ars.find_all("tr") if "data-bucket" in row.attrs]
    assert labels == ["Por vencer", "1 a 30 días", "31 a 60 días", "61 a 90 días", "Más de 90 días"]
    total = next(r for r in ars.find_all("tr") if r.attrs.get("class") == "aging__total")
    assert minor(total.find_all("td")[-1].text()) == sum(buckets.values()) == ARS_TOTAL

    # without htmx the same link is a whole page, with the aging view selected
    page = parse((await client.get("/account?view=aging")).text)
    assert page.find("html") is not None
    current = [
        a
        for a in page.find_all("a", **{"class": "segmented__option"})
        if a.attrs.get("aria-current") == "true"
    ]
    assert [a.attrs["href"] for a in current] == ["/account?view=aging"]
    assert [a.attrs.get("hx-get") for a in current] == ["/account?view=aging"]


async def test_unknown_view_falls_back_to_invoices(client, sign_in, world):
    await sign_in(world.maria_ids)
    response = await client.get("/account?view=%3Cscript%3E")
    assert response.status_code == 200
    assert parse(response.text).by_id(f"account-{world.accounts['ARS']}-invoices") is not None


async def test_balance_in_english_with_en_us_formats(client, sign_in, world):
    await sign_in(world.maria_ids)
    response = await client.get("/account?lang=en")
    page = parse(response.text)
    assert page.find("html").attrs["lang"] == "en"
    body = page.by_id("main")
    assert body.find("h1").text() == "Hello, María José Núñez"
    ars = card(body, world.accounts["ARS"])
    assert ars.find("p", **{"class": "acct__amount"}).text() == "ARS103,688.21"
    assert "Next due date: Dec 10, 2026 for ARS36,179.00" in ars.text()
    assert "Late-payment interest" in ars.text()


async def test_the_debtors_stored_language_is_used(client, sign_in, db):
    english = await build_world(maria_language="en")
    await sign_in(english.maria_ids)
    page = parse((await client.get("/account")).text)
    assert page.find("html").attrs["lang"] == "en"
    assert page.find("h1").text() == "Hello, María José Núñez"
    # a language chosen for the session (at sign-in, or with the switch) wins
    await sign_in(english.maria_ids, language="es")
    assert parse((await client.get("/account")).text).find("h1").text() == "Hola, María José Núñez"


async def test_debtor_without_accounts_sees_a_friendly_empty_state(client, sign_in, world):
    await sign_in([2**31 - 1])
    response = await client.get("/account")
    assert response.status_code == 200
    assert "No tiene deudas registradas" in main(response).text()


# ---------------------------------------------------------------------------- invoice


async def test_invoice_page(client, sign_in, world):
    await sign_in(world.maria_ids)
    response = await client.get(f"/invoices/{world.invoice('A-2')}")
    assert response.status_code == 200
    page = main(response)
    assert page.find("h1").text() == f"Factura {world.number('A-2')}"
    assert world.creditors["AR"] in page.text() and "DNI 27345678" in page.text()
    rows = dict(sum_rows(page))
    assert rows["Total de la factura"] == "$ 36.179,00"
    assert rows["Saldo pendiente"] == "$ 32.679,00"
    fee = next(label for label in rows if label.startswith("Cargo por mora"))
    assert "cargo fijo de $ 1.500,00 por factura vencida el 10/11/2026" in fee
    credit = next(label for label in rows if label.startswith("Nota de crédito"))
    assert rows[credit] == "-$ 5.000,00"
    links = [a.attrs["href"] for a in page.find_all("a")]
    assert f"/invoices/{world.invoice('A-2')}.pdf" in links


@pytest.mark.parametrize("ref", ["abc", "0", "-1", "1.5", "2147483648", "99999999999", "1.PDF",
                                 "1.pdf.pdf", "%20"])  # fmt: skip
async def test_malformed_invoice_ids_are_404(client, sign_in, world, ref):
    await sign_in(world.maria_ids)
    response = await client.get(f"/invoices/{ref}")
    assert response.status_code == 404


async def test_another_debtors_invoice_is_404_never_403(client, sign_in, world):
    await sign_in(world.maria_ids)
    foreign = world.invoice("J-1")
    for path in (f"/invoices/{foreign}", f"/invoices/{foreign}.pdf"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert "Julián" not in response.text
    problem = await client.get(f"/invoices/{foreign}", headers={"Accept": "application/json"})
    assert problem.status_code == 404
    assert problem.headers["content-type"] == "application/problem+json"


async def test_invoice_pdf_download(client, sign_in, world):
    await sign_in(world.maria_ids)
    response = await client.get(f"/invoices/{world.invoice('A-1')}.pdf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == (
        f'attachment; filename="factura-A-1-{world.tag}.pdf"'
    )
    assert "no-store" in response.headers["cache-control"]
    text = pdf_text(response.content)
    for expected in ("Núñez", "Abono fibra 300 Mb — agosto", "Decodificador adicional",
                     "$ 42.230,21", "$ 22.730,21", "Vencida"):  # fmt: skip
        assert expected in text, expected

    eur = await client.get(f"/invoices/{world.invoice('E-1')}.pdf")
    assert "499,20 €" in pdf_text(eur.content).replace(" ", " ")

    english = await client.get(f"/invoices/{world.invoice('A-1')}.pdf?lang=en")
    assert english.headers["content-disposition"].startswith('attachment; filename="invoice-')
    assert "ARS22,730.21" in pdf_text(english.content)


# ---------------------------------------------------------------------------- statement


async def test_statement_pdf(client, sign_in, world):
    await sign_in(world.maria_ids)
    response = await client.get("/statement.pdf?from=2026-09-01&to=2026-10-31")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    text = pdf_text(response.content)
    for expected in ("Estado de cuenta", "Del 01/09/2026 al 31/10/2026", "Núñez",
                     "Saldo inicial", "$ 54.330,21", "$ 71.009,21"):  # fmt: skip
        assert expected in text, expected
    assert "Julián" not in text

    default = await client.get("/statement.pdf")
    assert default.status_code == 200
    assert "Del 25/11/2025 al 25/11/2026" in pdf_text(default.content)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2026-10-01&to=2026-09-01", "anterior o igual"),
        ("from=yesterday", "«desde» no es válida"),
        ("to=2026-02-30", "«hasta» no es válida"),
        ("from=2026-1-1", "«desde» no es válida"),
        ("from=1000-01-01", "diez años"),
    ],
)
async def test_statement_bad_dates_are_a_clear_400(client, sign_in, world, query, message):
    await sign_in(world.maria_ids)
    response = await client.get(f"/statement.pdf?{query}")
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert message in main(response).text()

    problem = await client.get(f"/statement.pdf?{query}", headers={"Accept": "application/json"})
    assert problem.status_code == 400
    body = problem.json()
    assert body["status"] == 400 and message in body["detail"]


async def test_the_statement_form_on_the_balance_page(client, sign_in, world):
    await sign_in(world.maria_ids)
    page = parse((await client.get("/account")).text)
    form = next(f for f in page.find_all("form") if f.attrs.get("action") == "/statement.pdf")
    assert form.attrs["method"] == "get"
    fields = {i.attrs["name"]: i.attrs["value"] for i in form.find_all("input")}
    assert fields == {"from": "2025-11-25", "to": "2026-11-25"}
    labels = {label.attrs["for"] for label in form.find_all("label")}
    assert labels == {"statement-from", "statement-to"}


# ---------------------------------------------------------------------------- preferences


GOOD = {
    "language": "en",
    "preferred_channel": "whatsapp",
    "channel_email": "1",
    "channel_whatsapp": "1",
    "quiet_start": "21:30",
    "quiet_end": "08:00",
    "pay_day": "15",
}


async def test_preferences_page_shows_the_current_choice(client, sign_in, world):
    await sign_in(world.maria_ids)
    response = await client.get("/preferences")
    assert response.status_code == 200
    page = parse(response.text)
    form = page.by_id("preferences-form")
    assert form is not None and form.attrs["method"] == "post"
    assert form.attrs["hx-post"] == form.attrs["action"] == "/preferences"
    checked = {
        (i.attrs["name"], i.attrs.get("value"))
        for i in form.find_all("input")
        if "checked" in i.attrs
    }
    assert ("language", "es") in checked
    assert {("channel_email", "1"), ("channel_sms", "1"), ("channel_whatsapp", "1")} <= checked
    assert f"maria.{world.tag.lower()}@example.com" in form.text().lower()
    for element in form.find_all("input") + form.find_all("select"):
        if element.attrs.get("type") in {"hidden", "radio", "checkbox"}:
            continue
        labelled = [
            label
            for label in form.find_all("label")
            if label.attrs.get("for") == element.attrs["id"]
        ]
        assert labelled, element.attrs


async def test_saving_preferences_stores_every_change_and_logs_it(client, sign_in, db):
    world = await build_world()
    await sign_in(world.maria_ids)
    token = csrf_token((await client.get("/preferences")).text)
    response = await client.post(
        "/preferences", data={**GOOD, "_csrf_token": token}, follow_redirects=False
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/preferences?saved=1&lang=en"

    debtors = await Debtor.select().where(Debtor.id.is_in(world.maria_ids))
    assert {(d["language"], d["preferred_channel"], d["preferred_pay_day"]) for d in debtors} == {
        ("en", "whatsapp", 15)
    }
    rows = await ContactPreference.select().where(ContactPreference.debtor == world.maria_ids[0])
    assert {(r["channel"], r["opted_in"]) for r in rows} == {
        ("email", True),
        ("sms", False),
        ("whatsapp", True),
    }
    assert all(r["source"] == "portal" for r in rows)
    assert {(r["quiet_start"], r["quiet_end"]) for r in rows} == {(dt.time(21, 30), dt.time(8, 0))}
    logged = await Interaction.select().where(
        Interaction.debtor.is_in(world.maria_ids) & (Interaction.kind == "preference_changed")
    )
    assert len(logged) == 3
    changes = logged[0]["data"]
    changes = changes if isinstance(changes, dict) else __import__("json").loads(changes)
    assert changes["source"] == "portal"
    assert changes["changes"]["language"] == {"from": "es", "to": "en"}
    assert changes["changes"]["opted_in_sms"] == {"from": True, "to": False}

    shown = await client.get(response.headers["location"])
    page = parse(shown.text)
    assert page.find("html").attrs["lang"] == "en"
    assert "Your preferences have been saved." in page.by_id("main").text()
    assert "Last change:" in page.by_id("main").text()

    # saving the same choice again changes nothing and logs nothing
    token = csrf_token(shown.text)
    again = await client.post(
        "/preferences", data={**GOOD, "_csrf_token": token}, follow_redirects=False
    )
    assert again.status_code == 303
    assert await Interaction.count().where(Interaction.debtor.is_in(world.maria_ids)) == 3


async def test_htmx_save_answers_with_hx_redirect(client, sign_in, world):
    await sign_in(world.maria_ids)
    token = csrf_token((await client.get("/preferences")).text)
    response = await client.post(
        "/preferences",
        data={**GOOD, "language": "es", "_csrf_token": token},
        headers={**HTMX, "x-csrf-token": token},
    )
    assert response.status_code == 200
    assert response.headers["hx-redirect"] == "/preferences?saved=1&lang=es"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"quiet_start": "25:00"}, "quiet_start", "hora válida"),
        ({"quiet_end": ""}, "quiet_end", "inicio y el fin"),
        ({"quiet_end": "21:30"}, "quiet_end", "distinto del inicio"),
        ({"pay_day": "32"}, "pay_day", "entre 1 y 31"),
        ({"language": "fr"}, "language", "español o inglés"),
        ({"preferred_channel": "sms"}, "preferred_channel", "no quiere recibir"),
        ({"preferred_channel": "pigeon"}, "preferred_channel", "de la lista"),
    ],
)
async def test_bad_preferences_are_shown_next_to_the_field(
    client, sign_in, world, changes, field, message
):
    await sign_in(world.maria_ids)
    token = csrf_token((await client.get("/preferences")).text)
    data = {**GOOD, "language": "es", **changes, "_csrf_token": token}
    response = await client.post("/preferences", data=data)
    assert response.status_code == 422
    page = parse(response.text)
    assert page.find("html") is not None
    error = page.by_id(f"pref-{field}-error")
    assert error is not None and message in error.text()
    summary = page.by_id("preferences-errors")
    assert summary is not None and summary.attrs["role"] == "alert"

    fragment = await client.post("/preferences", data=data, headers={**HTMX, "x-csrf-token": token})
    assert fragment.status_code == 200
    tree = parse(fragment.text)
    assert tree.find("html") is None
    roots = [n for n in tree.children if isinstance(n, Node)]
    assert len(roots) == 1 and roots[0].attrs["id"] == "preferences-form"
    assert message in tree.by_id(f"pref-{field}-error").text()


async def test_preferred_channel_needs_an_address_on_file(client, sign_in, db):
    world = await build_world()
    await Debtor.update({Debtor.whatsapp: ""}).where(Debtor.id.is_in(world.maria_ids))
    await sign_in(world.maria_ids)
    token = csrf_token((await client.get("/preferences")).text)
    response = await client.post("/preferences", data={**GOOD, "_csrf_token": token})
    assert response.status_code == 422
    assert (
        "No tenemos datos de contacto"
        in parse(response.text).by_id("pref-preferred_channel-error").text()
    )
    assert (
        await ContactPreference.count().where(ContactPreference.debtor.is_in(world.maria_ids)) == 0
    )


async def test_saving_preferences_needs_the_csrf_token(client, sign_in, world):
    await sign_in(world.maria_ids)
    await client.get("/preferences")
    response = await client.post("/preferences", data=GOOD)
    assert response.status_code == 403


# ---------------------------------------------------------------------------- speed


async def test_balance_with_200_invoice_lines_shows_every_line(client, sign_in, db):
    """The size bench/portal_bench.py times; here only that the page is whole."""
    from tests.portal_data import build_big_debtor

    debtor_id = await build_big_debtor(lines=200)
    await sign_in([debtor_id])
    response = await client.get("/account")
    assert response.status_code == 200
    rows = [r for r in parse(response.text).find_all("tr") if r.find("th", scope="row")]
    assert len(rows) == 200
