"""Finance's screens: statement upload, the unapplied payments queue, clearing a bank line or an
online payment by hand, the day's reconciliation and the accounting export.

Every test signs a finance user in (a session as the sign-in leaves it) and reads the parsed
HTML. Days and currencies are picked so that other tests' rows in the shared database never
land in the figures a test checks.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import secrets
from pathlib import Path

import pytest

from saldo.payments import ProviderPayment
from saldo.references import payment_reference
from saldo.services.bank_import import COLUMNS
from saldo.services.ledger import account_balance, open_invoices
from saldo.services.payments import record_payment
from saldo.services.reconciliation import EXPORT_COLUMNS
from saldo.tables import (
    AuditEvent,
    BankImport,
    BankLine,
    Debtor,
    Interaction,
    Payment,
    PaymentAllocation,
    PaymentPosting,
)
from tests.services.bank_support import insert_line, uid, unique_document
from tests.services.helpers import make_account, make_invoice
from tests.web import backoffice_fixtures
from tests.web.backoffice_fixtures import csrf_token, inject_session, main, make_staff
from tests.web.html import Node, parse

client = backoffice_fixtures.client
bo_app = backoffice_fixtures.bo_app
app_key = backoffice_fixtures.app_key
fresh_rate_limits = backoffice_fixtures.fresh_rate_limits

QUEUE = "/backoffice/payments/unapplied"


@pytest.fixture
async def finance(client, redis, servers, app_key):
    staff = await make_staff("finance", key=app_key)
    await inject_session(client, redis, servers, staff.id)
    return staff


def csv_bytes(rows: list[tuple[object, ...]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([str(v) for v in row])
    return out.getvalue().encode("utf-8")


def bank_row(
    day: dt.date, amount: str, reference: str, *, payer: str = "", document: str = ""
) -> tuple[object, ...]:
    return (day.isoformat(), amount, "ARS", reference, payer, document, uid("TX-"))


async def upload(client, name: str, data: bytes):
    return await client.post(
        "/backoffice/bank/import",
        data={"_csrf_token": await csrf_token(client)},
        files={"statement": (name, data, "text/csv")},
    )


async def post(client, url: str, fields: dict[str, object] | list[tuple[str, str]]):
    """A form post; a list of pairs may repeat a name (checkboxes)."""
    items = list(fields.items()) if isinstance(fields, dict) else list(fields)
    data: dict[str, list[str]] = {"_csrf_token": [await csrf_token(client)]}
    for key, value in items:
        data.setdefault(key, []).append(str(value))
    return await client.post(url, data=data)


def by_id(response, element_id: str) -> Node:
    node = parse(response.text).by_id(element_id)
    assert node is not None, f"#{element_id} missing in {response.text[:300]}"
    return node


def stat(response, label: str) -> str:
    for item in main(response).find_all("li"):
        spans = {span.attrs.get("class"): span.text() for span in item.find_all("span")}
        if spans.get("bo-stat__label") == label:
            return spans["bo-stat__value"]
    raise AssertionError(f"no figure labelled {label!r}")


def cells(row: Node) -> list[str]:
    return [c.text() for c in row.children if isinstance(c, Node) and c.tag in ("td", "th")]


async def audit_rows(action: str, object_id: object) -> list[dict]:
    rows = await AuditEvent.select().where(
        (AuditEvent.action == action) & (AuditEvent.object_id == str(object_id))
    )
    for row in rows:
        for column in ("before", "after"):
            if isinstance(row[column], str):
                row[column] = json.loads(row[column])
    return rows


async def line_payments(line_id: int) -> list[dict]:
    return await Payment.select().where(Payment.bank_line == line_id).order_by(Payment.id)


# ---------------------------------------------------------------------------- upload


async def test_uploading_a_statement_shows_what_matched_and_a_second_upload_changes_nothing(
    client, finance, web_settings
):
    day = dt.date(2041, 3, 2)
    by_reference = await make_account()
    await make_invoice(by_reference, uid("FA-"), 15_000_00, day - dt.timedelta(days=9))
    by_number = await make_account()
    numbered = await make_invoice(by_number, uid("B-0001-"), 8_000_00, day)
    data = csv_bytes(
        [
            bank_row(day, "15000.00", f"TRANSF {payment_reference(by_reference.id)}"),
            bank_row(day, "8000.00", f"PAGO FACTURA {numbered.number}"),
            bank_row(day, "1234.50", "TRANSFERENCIA VARIOS", payer="ALGUIEN SIN CUENTA"),
        ]
    )

    first = await upload(client, "extracto-marzo.csv", data)

    assert first.status_code == 303
    result_url = first.headers["location"]
    assert result_url.startswith("/backoffice/bank/imports/")
    import_id = int(result_url.rsplit("/", 1)[1])
    page = await client.get(result_url)
    assert page.status_code == 200
    assert parse(page.text).find("h1").text() == "extracto-marzo.csv"
    assert "Importamos el extracto" in main(page).text()
    assert stat(page, "Líneas leídas") == "3"
    assert stat(page, "Nuevas") == "3"
    assert stat(page, "Ya traídas por otro extracto") == "0"
    assert stat(page, "Conciliadas automáticamente") == "2"
    assert stat(page, "Sin aplicar") == "1"
    assert cells(by_id(page, "rule-reference-ARS")) == ["Referencia de pago", "1", "15.000,00 ARS"]
    assert cells(by_id(page, "rule-invoice_number-ARS")) == [
        "Número de factura",
        "1",
        "8.000,00 ARS",
    ]
    assert cells(by_id(page, "unmatched-ARS"))[:3] == ["Sin aplicar", "1", "1.234,50 ARS"]
    assert await open_invoices(by_reference.id) == []
    assert await account_balance(by_number.id) == 0
    [event] = await audit_rows("bank_import.create", import_id)
    assert event["staff"] == finance.id and event["after"]["new_lines"] == 3
    leftovers = Path(web_settings.data_path) / "uploads" / "bank-statements"
    assert list(leftovers.iterdir()) == []  # the uploaded file is not kept

    again = await upload(client, "extracto-marzo.csv", data)

    assert again.status_code == 303 and again.headers["location"] == result_url
    repeated = await client.get(result_url)
    assert "ya estaba importado" in main(repeated).text()
    assert (
        stat(repeated, "Líneas leídas") == "3"
        and stat(repeated, "Conciliadas automáticamente") == "2"
    )
    assert await BankLine.count().where(BankLine.bank_import == import_id) == 3
    assert await Payment.count().where(Payment.account == by_reference.id) == 1
    assert await account_balance(by_reference.id) == 0
    plain = await client.get(result_url)
    assert "ya estaba importado" not in main(plain).text()  # the notice shows once
    history = await client.get("/backoffice/bank/import")
    [listed] = parse(history.text).find_all("a", href=result_url)
    assert listed.text() == "extracto-marzo.csv"


async def test_a_bad_statement_is_refused_with_its_line_next_to_the_field(client, finance):
    day = dt.date(2041, 3, 3)
    data = csv_bytes([bank_row(day, "100.00", "BIEN"), bank_row(day, "12,50", "MAL", payer="X")])
    name = f"extracto-{secrets.token_hex(3)}.csv"

    refused = await upload(client, name, data)

    assert refused.status_code == 422
    problem = by_id(refused, "statement-error").text()
    assert f"{name}:3:" in problem and "amount" in problem
    field = parse(refused.text).by_id("statement")
    assert field is not None and field.attrs.get("aria-invalid") == "true"
    assert not await BankImport.exists().where(BankImport.filename == name)

    empty = await upload(client, "vacio.csv", b"")
    assert empty.status_code == 422
    assert "Elegí el archivo CSV del extracto" in by_id(empty, "statement-error").text()


# ---------------------------------------------------------------------------- the queue


async def make_online_payment(
    currency: str,
    amount: int,
    *,
    payer_email: str = "",
    received: dt.datetime = dt.datetime(2041, 3, 4, 13, 0, tzinfo=dt.UTC),
) -> int:
    """An approved Mercado Pago payment whose reference names no checkout: unapplied."""
    pid = str(secrets.randbelow(10**12))
    fetched = ProviderPayment(
        id=pid,
        status="approved",
        status_detail="accredited",
        amount=amount,
        currency=currency,
        external_reference=f"pedido-{pid}",
        method="account_money",
        approved_at=received,
        raw={
            "id": pid,
            "status": "approved",
            "external_reference": f"pedido-{pid}",
            "payer": {"email": payer_email},
        },
    )
    result = await record_payment("mercadopago", fetched, now=received)
    assert result.account_id is None and result.posted is None
    return result.payment_id


async def test_the_queue_lists_bank_lines_and_online_payments_oldest_first(
    client, finance, redis, servers, app_key
):
    newer = await insert_line(4_000, currency="UYU", booked_on=dt.date(2000, 1, 5))
    older = await insert_line(2_500, currency="UYU", booked_on=dt.date(2000, 1, 3))
    online = await make_online_payment(
        "UYU", 3_000, received=dt.datetime(2000, 1, 4, 18, 0, tzinfo=dt.UTC)
    )
    elsewhere = await insert_line(9_900, currency="PEN", booked_on=dt.date(2000, 1, 2))

    page = await client.get(QUEUE, params={"currency": "UYU"})

    assert page.status_code == 200
    queue = by_id(page, "unapplied-queue")
    ids = [row.attrs["id"] for row in queue.find("tbody").find_all("tr")]
    assert ids[:3] == [f"bank-{older.id}", f"online-{online}", f"bank-{newer.id}"]
    assert f"bank-{elsewhere.id}" not in ids
    first = cells(by_id(page, f"bank-{older.id}"))
    assert first[0] == "03/01/2000" and first[1] == "Banco" and first[2] == "25,00 UYU"
    assert cells(by_id(page, f"online-{online}"))[1] == "Mercado Pago"
    review = by_id(page, f"online-{online}").find("a")
    assert review.attrs["href"] == f"/backoffice/payments/online/{online}"
    chosen = queue.find("select").find("option", value="UYU")
    assert "selected" in chosen.attrs

    fragment = await client.get(QUEUE, params={"currency": "UYU"}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    root = [n for n in parse(fragment.text).children if isinstance(n, Node)]
    assert len(root) == 1 and root[0].attrs["id"] == "unapplied-queue"

    supervisor = await make_staff("supervisor", key=app_key)
    await inject_session(client, redis, servers, supervisor.id)
    looked = await client.get(f"{QUEUE}/{older.id}")
    assert looked.status_code == 200
    assert parse(looked.text).find("form", action=f"{QUEUE}/{older.id}/assign") is None
    assert "Solo Finanzas aplica" in main(looked).text()
    refused = await post(client, f"{QUEUE}/{older.id}/not-ours", {"note": "no"})
    assert refused.status_code == 403


# ---------------------------------------------------------------------------- one bank line


async def line_with_document(amount: int, document: str, payer: str) -> BankLine:
    line = await insert_line(amount, booked_on=dt.date(2041, 3, 6), payer_name=payer)
    await BankLine.update({BankLine.payer_document: document}).where(BankLine.id == line.id)
    return line


async def test_a_suggestion_prefills_the_assignment_which_posts_once_and_is_audited(
    client, finance
):
    account = await make_account(name="Ferretería Los Álamos S.R.L.")
    document = unique_document()
    await Debtor.update({Debtor.document_number: document}).where(Debtor.id == account.debtor)
    older = await make_invoice(account, uid("A-"), 50_000, dt.date(2041, 1, 10))
    target = await make_invoice(account, uid("A-"), 32_100, dt.date(2041, 2, 10))
    line = await line_with_document(32_100, document, "FERRETERIA LOS ALAMOS SRL")
    url = f"{QUEUE}/{line.id}"

    page = await client.get(url)

    assert page.status_code == 200
    [card] = [
        li
        for li in main(page).find_all("li", **{"class": "fin-suggestion"})
        if payment_reference(account.id) in li.text()
    ]
    text = card.text()
    assert "Ferretería Los Álamos S.R.L." in text
    assert f"Documento del pagador ({document}) igual al del deudor" in text
    assert f"Importe igual al saldo de la factura {target.number}" in text
    score = int(card.find("span", **{"class": "fin-score__value"}).text())
    assert score >= 60
    use = card.find("a", **{"class": "btn btn--secondary btn--sm fin-suggestion__use"})
    assert use.attrs["href"] == f"{url}?account={account.id}&invoice={target.id}#assign"

    picked = await client.get(f"{url}?account={account.id}&invoice={target.id}")
    form = parse(picked.text).find("form", action=f"{url}/assign")
    assert form is not None
    assert form.find("input", name="account_id").attrs["value"] == str(account.id)
    boxes = {
        b.attrs["value"]: "checked" in b.attrs for b in form.find_all("input", type="checkbox")
    }
    assert boxes == {str(older.id): False, str(target.id): True}

    done = await post(
        client, f"{url}/assign", [("account_id", str(account.id)), ("invoice", str(target.id))]
    )

    assert done.status_code == 303 and done.headers["location"] == QUEUE
    queue = await client.get(QUEUE)
    assert (
        f"Asignamos el movimiento a la cuenta {payment_reference(account.id)}" in main(queue).text()
    )
    assert parse(queue.text).by_id(f"bank-{line.id}") is None
    [payment] = await line_payments(line.id)
    assert (payment["account"], payment["amount"]) == (account.id, 32_100)
    assert await open_invoices(account.id) == [(older.id, 50_000)]
    [event] = await audit_rows("bank_line.assign", line.id)
    assert event["staff"] == finance.id
    assert event["before"]["status"] == "unmatched" and event["after"]["account"] == account.id

    twice = await post(client, f"{url}/assign", {"account_id": account.id})

    assert twice.status_code == 409
    assert "ya fue asignado a mano" in by_id(twice, "main").text()
    assert parse(twice.text).find("form", action=f"{url}/assign") is None
    assert len(await line_payments(line.id)) == 1
    assert await account_balance(account.id) == 50_000


async def test_assigning_without_an_account_or_to_another_currency_is_explained(client, finance):
    line = await insert_line(7_500, booked_on=dt.date(2041, 3, 7))
    dollars = await make_account(currency="USD")
    url = f"{QUEUE}/{line.id}"

    missing = await post(client, f"{url}/assign", {})
    assert missing.status_code == 422
    assert by_id(missing, "account-error").text() == "Elija una cuenta antes de asignar."

    wrong = await post(client, f"{url}/assign", {"account_id": dollars.id})
    assert wrong.status_code == 422
    assert by_id(wrong, "account-error").text() == "La cuenta está en USD y el movimiento en ARS"
    assert await line_payments(line.id) == []


async def test_finance_finds_the_account_by_name_or_reference_before_assigning(client, finance):
    line = await insert_line(6_600, booked_on=dt.date(2041, 3, 10))
    family = f"Talleres {secrets.token_hex(3)}"
    one = await make_account(name=f"{family} e Hijos")
    other = await make_account(name=f"{family} Hermanos")
    url = f"{QUEUE}/{line.id}"
    assign_form = {"action": f"{url}/assign"}

    several = await client.get(url, params={"q": family.upper()})
    found = by_id(several, "assign").find("ul", **{"class": "fin-matches"})
    links = [a.attrs["href"] for a in found.find_all("a")]
    assert [h.split("#")[0].split("&")[0] for h in links] == [
        f"{url}?account={one.id}",
        f"{url}?account={other.id}",
    ]
    assert parse(several.text).find("form", **assign_form) is None

    picked = await client.get(links[1].replace("&amp;", "&"))
    form = parse(picked.text).find("form", **assign_form)
    assert form.find("input", name="account_id").attrs["value"] == str(other.id)
    assert f"{family} Hermanos" in form.text()

    exact = await client.get(url, params={"q": payment_reference(one.id)})
    form = parse(exact.text).find("form", **assign_form)
    assert form.find("input", name="account_id").attrs["value"] == str(one.id)

    nothing = await client.get(url, params={"q": "nadie se llama así"})
    assert "No encontramos cuentas en ARS para «nadie se llama así»" in main(nothing).text()


async def test_a_split_that_does_not_add_up_is_explained_and_a_good_one_posts_once(client, finance):
    line = await insert_line(10_000, booked_on=dt.date(2041, 3, 8))
    first, second = await make_account(), await make_account()
    bill = await make_invoice(first, uid("S-"), 4_000, dt.date(2041, 2, 1))
    url = f"{QUEUE}/{line.id}"
    ref1, ref2 = payment_reference(first.id), payment_reference(second.id)
    rows = {
        "parts-0-account": ref1,
        "parts-0-amount": "30.00",
        "parts-0-invoices": "",
        "parts-1-account": ref2,
        "parts-1-amount": "50.00",
        "parts-1-invoices": "",
    }

    short = await post(client, f"{url}/split", {**rows, "action": "split"})

    assert short.status_code == 422
    assert (
        by_id(short, "parts-error").text()
        == "Las partes suman 80.00 y el movimiento es de 100.00 ARS"
    )
    kept = by_id(short, "split-form")
    assert kept.find("input", name="parts-1-amount").attrs["value"] == "50.00"
    assert await line_payments(line.id) == []

    typo = await post(client, f"{url}/split", {**rows, "parts-1-amount": "5O", "action": "split"})
    assert typo.status_code == 422
    assert "importe" in by_id(typo, "parts-1-amount-error").text()
    assert by_id(typo, "parts-1-amount").attrs.get("aria-invalid") == "true"

    wider = await post(client, f"{url}/split", {**rows, "action": "add_row"})
    assert wider.status_code == 200
    assert len(by_id(wider, "split-form").find_all("fieldset")) == 3
    swapped = await client.post(
        f"{url}/split",
        data={"_csrf_token": await csrf_token(client), **rows, "action": "add_row"},
        headers={"HX-Request": "true"},
    )
    assert swapped.status_code == 200 and "<html" not in swapped.text
    [root] = [n for n in parse(swapped.text).children if isinstance(n, Node)]
    assert root.attrs["id"] == "split-form" and len(root.find_all("fieldset")) == 3

    good = {
        **rows,
        "parts-0-amount": "40.00",
        "parts-0-invoices": bill.number.lower(),
        "parts-1-amount": "60.00",
        "parts-2-account": "",
        "parts-2-amount": "",
        "parts-2-invoices": "",
        "action": "split",
    }
    done = await post(client, f"{url}/split", good)

    assert done.status_code == 303 and done.headers["location"] == QUEUE
    assert "Dividimos el movimiento en 2 partes" in main(await client.get(QUEUE)).text()
    payments = await line_payments(line.id)
    assert [(p["account"], p["amount"], p["provider_payment_id"]) for p in payments] == [
        (first.id, 4_000, f"{line.transaction_id}:1"),
        (second.id, 6_000, f"{line.transaction_id}:2"),
    ]
    assert await open_invoices(first.id) == [] and await account_balance(second.id) == -6_000
    [event] = await audit_rows("bank_line.split", line.id)
    assert [p["amount"] for p in event["after"]["parts"]] == [4_000, 6_000]

    again = await post(client, f"{url}/split", good)
    assert again.status_code == 409
    assert len(await line_payments(line.id)) == 2


async def test_not_ours_needs_a_reason_and_takes_the_line_out_of_the_queue(client, finance):
    line = await insert_line(12_345, currency="COP", booked_on=dt.date(2000, 2, 1))
    url = f"{QUEUE}/{line.id}"

    empty = await post(client, f"{url}/not-ours", {"note": "   "})
    assert empty.status_code == 422
    assert "por qué" in by_id(empty, "note-error").text()

    done = await post(client, f"{url}/not-ours", {"note": "Reintegro de comisiones del banco"})

    assert done.status_code == 303
    assert "Marcamos el movimiento como ajeno" in main(await client.get(QUEUE)).text()
    stored = await BankLine.objects().get(BankLine.id == line.id)
    assert (stored.status, stored.match_note) == ("not_ours", "Reintegro de comisiones del banco")
    assert await line_payments(line.id) == []
    [event] = await audit_rows("bank_line.not_ours", line.id)
    assert event["after"]["note"] == "Reintegro de comisiones del banco"
    queue = await client.get(QUEUE, params={"currency": "COP"})
    assert parse(queue.text).by_id(f"bank-{line.id}") is None
    shown = await client.get(url)
    assert "Qué pasó con este movimiento" in main(shown).text()


# ---------------------------------------------------------------------------- online payments


async def test_an_unapplied_online_payment_is_assigned_and_posted_exactly_once(client, finance):
    account = await make_account(currency="MXN", name="Abarrotes Doña Chuy")
    email = f"chuy-{secrets.token_hex(3)}@example.com"
    await Debtor.update({Debtor.email: email}).where(Debtor.id == account.debtor)
    invoice = await make_invoice(account, uid("MX-"), 25_000, dt.date(2041, 2, 20))
    pesos_ar = await make_account(currency="ARS")
    payment_id = await make_online_payment("MXN", 25_000, payer_email=email)
    url = f"/backoffice/payments/online/{payment_id}"

    page = await client.get(url)

    assert page.status_code == 200
    assert "La referencia externa no corresponde" in main(page).text()
    [card] = main(page).find_all("li", **{"class": "fin-suggestion"})
    assert "Abarrotes Doña Chuy" in card.text()
    assert f"Correo del pagador ({email}) igual al del deudor" in card.text()

    wrong = await post(client, f"{url}/assign", {"account_id": pesos_ar.id})
    assert wrong.status_code == 422
    assert by_id(wrong, "account-error").text() == "La cuenta está en ARS y el pago en MXN"

    done = await post(
        client, f"{url}/assign", [("account_id", str(account.id)), ("invoice", str(invoice.id))]
    )

    assert done.status_code == 303 and done.headers["location"] == QUEUE
    assert "Asignamos el pago en línea" in main(await client.get(QUEUE)).text()
    stored = await Payment.objects().get(Payment.id == payment_id)
    assert stored.account == account.id
    assert await open_invoices(account.id) == []
    assert await PaymentPosting.count().where(PaymentPosting.payment == payment_id) == 1
    assert await PaymentAllocation.count().where(PaymentAllocation.payment == payment_id) == 1
    [event] = await audit_rows("payment.assign", payment_id)
    assert (event["staff"], event["actor"]) == (finance.id, finance.email)
    assert event["ip"] and event["before"]["account"] is None
    assert event["after"]["account"] == account.id
    assert await Interaction.exists().where(
        (Interaction.account == account.id) & (Interaction.kind == "payment")
    )

    twice = await post(client, f"{url}/assign", {"account_id": account.id})
    assert twice.status_code == 409
    assert "ya está asignado" in by_id(twice, "main").text()
    shown = await client.get(url)
    assert "Imputación" in main(shown).text() and parse(shown.text).by_id("assign") is None

    replay = await Payment.select(Payment.provider_payment_id).where(Payment.id == payment_id)
    fetched = ProviderPayment(
        id=replay[0]["provider_payment_id"],
        status="approved",
        status_detail="accredited",
        amount=25_000,
        currency="MXN",
        external_reference="pedido-desconocido",
        method="account_money",
        approved_at=dt.datetime(2041, 3, 4, 13, 0, tzinfo=dt.UTC),
    )
    again = await record_payment("mercadopago", fetched, now=dt.datetime.now(dt.UTC))
    assert again.account_id == account.id and again.posted is None
    assert await account_balance(account.id) == 0


# ---------------------------------------------------------------------------- reconciliation


async def test_reconciliation_shows_the_day_and_exports_it_as_csv(client, finance):
    day = dt.date(2041, 3, 9)
    account = await make_account()
    await make_invoice(account, uid("R-"), 20_000_00, day - dt.timedelta(days=30))
    data = csv_bytes(
        [
            bank_row(day, "12000.00", f"PAGO {payment_reference(account.id)}"),
            bank_row(day, "999.99", "DEPOSITO SIN DATOS"),
        ]
    )
    assert (await upload(client, f"conc-{secrets.token_hex(3)}.csv", data)).status_code == 303
    online_account = await make_account()
    online = await make_online_payment(
        "ARS", 3_000_00, received=dt.datetime(2041, 3, 9, 16, 0, tzinfo=dt.UTC)
    )
    assigned = await post(
        client, f"/backoffice/payments/online/{online}/assign", {"account_id": online_account.id}
    )
    assert assigned.status_code == 303

    page = await client.get("/backoffice/reconciliation", params={"day": day.isoformat()})

    assert page.status_code == 200
    assert parse(page.text).find("h1").text() == "Conciliación del 09/03/2041"
    assert cells(by_id(page, "incoming-bank_auto-ARS")) == [
        "Banco, conciliado automáticamente",
        "1",
        "12.000,00 ARS",
    ]
    assert cells(by_id(page, "incoming-mercadopago-ARS")) == ["Mercado Pago", "1", "3.000,00 ARS"]
    assert cells(by_id(page, "incoming-total-ARS")) == ["Total ARS", "2", "15.000,00 ARS"]
    assert cells(by_id(page, "bank-matched-ARS"))[1:] == ["1", "12.000,00 ARS"]
    assert cells(by_id(page, "bank-unmatched-ARS"))[1:] == ["1", "999,99 ARS"]
    assert stat(page, "Pagos imputados") == "2"
    assert stat(page, "Movimientos del banco sin conciliar") == "1"
    link = by_id(page, "waiting-ARS").find("a")
    assert link.attrs["href"] == f"{QUEUE}?currency=ARS"
    nav = parse(page.text).find("nav", **{"class": "bo-nav"})
    current = nav.find("a", **{"aria-current": "page"})
    assert current.attrs["href"] == "/backoffice/reconciliation" and current.text() == "Finanzas"

    export = await client.get(
        "/backoffice/reconciliation/export.csv",
        params={"from": day.isoformat(), "to": day.isoformat()},
    )

    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    assert export.headers["content-disposition"] == (
        'attachment; filename="saldo-conciliacion-2041-03-09-2041-03-09.csv"'
    )
    table = list(csv.reader(io.StringIO(export.text)))
    assert tuple(table[0]) == EXPORT_COLUMNS
    body = [dict(zip(EXPORT_COLUMNS, r, strict=True)) for r in table[1:]]
    assert {(r["source"], r["amount"], r["account_reference"], r["rule"]) for r in body} == {
        ("bank_auto", "12000.00", payment_reference(account.id), "reference"),
        ("mercadopago", "3000.00", payment_reference(online_account.id), ""),
    }
    assert all(r["date"] == "2041-03-09" and r["currency"] == "ARS" for r in body)
    [event] = await audit_rows("reconciliation.export", "2041-03-09..2041-03-09")
    assert event["staff"] == finance.id and event["after"]["rows"] == 2

    backwards = await client.get(
        "/backoffice/reconciliation/export.csv", params={"from": "2041-03-09", "to": "2041-03-01"}
    )
    assert backwards.status_code == 422
    assert by_id(backwards, "to-error").text() == "La fecha final es anterior a la inicial"
    garbled = await client.get(
        "/backoffice/reconciliation/export.csv", params={"from": "ayer", "to": "2041-03-01"}
    )
    assert garbled.status_code == 422
    assert by_id(garbled, "from-error").text() == "Use una fecha como 2026-03-31."

    english = await client.get(  # the language switch is remembered from here on
        "/backoffice/reconciliation", params={"day": day.isoformat(), "lang": "en"}
    )
    assert parse(english.text).find("h1").text() == "Reconciliation for 2041-03-09"
    assert cells(by_id(english, "incoming-total-ARS")) == ["Total ARS", "2", "15,000.00 ARS"]
    assert cells(by_id(english, "incoming-bank_auto-ARS"))[0] == "Bank, matched automatically"
