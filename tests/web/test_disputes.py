"""The debtor's dispute pages as a browser sees them: the form and its errors, uploads checked by
content, downloads, the thread from both sides and the outcome (real PostgreSQL and Redis,
parsed HTML)."""

from __future__ import annotations

import datetime as dt
import re

import pytest

import portal.account
import portal.disputes
from saldo.services import dispute_staff, disputes
from saldo.services.uploads import MAX_UPLOAD_BYTES, store_upload
from saldo.tables import Dispute, InvoiceLine, StaffUser
from tests.portal_data import ARS_TOTAL, TODAY, World, build_world
from tests.web import portal_fixtures
from tests.web.html import Node, parse
from tests.web.portal_fixtures import csrf_token

client = portal_fixtures.client
sign_in = portal_fixtures.sign_in

HTMX = {"HX-Request": "true"}
NOW = dt.datetime.combine(TODAY, dt.time(15, 0), tzinfo=dt.UTC)
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x01" * 200
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture
async def world(db) -> World:
    return await build_world()


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch):
    monkeypatch.setattr(portal.account, "_now", lambda: NOW)
    monkeypatch.setattr(portal.disputes, "_now", lambda: NOW)


def main(response) -> Node:
    node = parse(response.text).by_id("main")
    assert node is not None
    return node


def minor(text: str) -> int:
    digits = re.sub(r"\D", "", text)
    assert digits, text
    return int(digits)


async def lines_of(invoice_id: int) -> list[InvoiceLine]:
    return (
        await InvoiceLine.objects()
        .where(InvoiceLine.invoice == invoice_id)
        .order_by(InvoiceLine.position)
    )


async def signed_in_as_maria(client, sign_in, world) -> str:
    """Sign María in and return a CSRF token for her forms."""
    await sign_in(world.maria_ids)
    return csrf_token((await client.get("/disputes")).text)


async def post_dispute(client, token, data, files=None, headers=None):
    return await client.post(
        "/disputes",
        data={"_csrf_token": token, **data},
        files=files,
        headers=headers,
        follow_redirects=False,
    )


def error_of(page: Node, element_id: str) -> str:
    node = page.by_id(element_id)
    assert node is not None, f"no {element_id} on the page"
    return node.text()


async def staff_user() -> int:
    staff = StaffUser(email=f"agente.{dt.datetime.now().timestamp()}@example.com")
    await staff.save()
    return int(staff.id)


# ---------------------------------------------------------------------------- the page


async def test_the_form_offers_the_debtors_invoices_lines_and_reasons(client, sign_in, world):
    await signed_in_as_maria(client, sign_in, world)
    response = await client.get("/disputes")
    assert response.status_code == 200
    page = main(response)
    select = page.by_id("dispute-item")
    assert select is not None
    values = [o.attrs["value"] for o in select.find_all("option")]
    a1_lines = await lines_of(world.invoice("A-1"))
    assert f"invoice:{world.invoice('A-1')}" in values
    assert [f"line:{line.id}" for line in a1_lines] == [
        v for v in values if v in {f"line:{line.id}" for line in a1_lines}
    ]
    assert f"invoice:{world.invoice('A-5')}" not in values  # paid: nothing to dispute
    assert f"invoice:{world.invoice('J-1')}" not in values  # Julián's
    assert "Julián" not in response.text
    reasons = [i.attrs["value"] for i in page.find_all("input") if i.attrs.get("name") == "reason"]
    assert reasons == list(disputes.REASON_CODES)
    form = page.by_id("dispute-form")
    assert form is not None and form.attrs["enctype"] == "multipart/form-data"
    # the dispute the world opened on F-1 is listed as open
    listed = page.by_id("open-disputes")
    assert listed is not None and world.number("F-1") in listed.text()


async def test_the_invoice_page_links_to_a_preselected_form(client, sign_in, world):
    await signed_in_as_maria(client, sign_in, world)
    invoice_page = main(await client.get(f"/invoices/{world.invoice('A-2')}"))
    link = next(a for a in invoice_page.find_all("a") if a.text() == "Disputar")
    response = await client.get(link.attrs["href"])
    select = main(response).by_id("dispute-item")
    assert select is not None
    chosen = [o.attrs["value"] for o in select.find_all("option") if "selected" in o.attrs]
    assert chosen == [f"invoice:{world.invoice('A-2')}"]


async def test_the_page_speaks_english_when_asked(client, sign_in, world):
    await signed_in_as_maria(client, sign_in, world)
    page = main(await client.get("/disputes?lang=en"))
    assert "Open a dispute" in page.text() and "Abrir un reclamo" not in page.text()
    assert "The amount is wrong" in page.text()


# ---------------------------------------------------------------------------- opening


async def test_disputing_a_line_with_a_png_shows_it_and_serves_the_file(client, sign_in, world):
    token = await signed_in_as_maria(client, sign_in, world)
    line = (await lines_of(world.invoice("A-1")))[1]  # decodificador: 7.745,21
    response = await post_dispute(
        client,
        token,
        {
            "item": f"line:{line.id}",
            "amount": "",
            "reason": "defective",
            "text": "Uno de los decodificadores no enciende",
        },
        files={"attachment": ("foto decodificador.png", PNG, "application/octet-stream")},
    )
    assert response.status_code == 303
    location = response.headers["location"]
    assert re.fullmatch(r"/disputes/\d+\?opened=1", location)
    dispute_id = int(location.split("/")[2].split("?")[0])

    detail = main(await client.get(location))
    amount = next(n for n in detail.iter() if "data-amount" in n.attrs)
    assert int(amount.attrs["data-amount"]) == 774521
    assert "Recibimos su reclamo" in detail.text()
    assert "Decodificador adicional" in detail.text()
    thread = detail.by_id("dispute-thread")
    assert thread is not None and "Uno de los decodificadores no enciende" in thread.text()
    link = next(a for a in thread.find_all("a") if "foto decodificador.png" in a.text())

    download = await client.get(link.attrs["href"])
    assert download.status_code == 200
    assert download.content == PNG
    assert download.headers["content-type"] == "image/png"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert "foto%20decodificador.png" in download.headers["content-disposition"]
    assert download.headers["x-content-type-options"] == "nosniff"

    listing = main(await client.get("/disputes"))
    card = listing.by_id(f"dispute-{dispute_id}")
    assert card is not None and "Producto o servicio defectuoso" in card.text()
    # the account page now holds that amount back from what is claimed
    account = main(await client.get("/account"))
    notice = next(n for n in account.find_all("ul") if "acct__disputes" in n.attrs.get("class", ""))
    assert world.number("A-1") in notice.text()


async def test_errors_are_shown_next_to_the_fields(client, sign_in, world):
    token = await signed_in_as_maria(client, sign_in, world)
    response = await post_dispute(
        client, token, {"item": "", "amount": "doce", "reason": "", "text": "Algo raro"}
    )
    assert response.status_code == 422
    page = main(response)
    assert "Elija qué factura" in error_of(page, "dispute-item-error")
    assert "importe válido" in error_of(page, "dispute-amount-error")
    assert "motivo" in error_of(page, "dispute-reason-error")
    item = page.by_id("dispute-item")
    assert item is not None and item.attrs.get("aria-invalid") == "true"
    assert "dispute-item-error" in item.attrs["aria-describedby"]
    text = page.by_id("dispute-text")
    assert text is not None and text.text() == "Algo raro"  # what was typed stays
    assert await Dispute.count().where(Dispute.account == world.accounts["ARS"]) == 0


async def test_the_amount_is_capped_by_the_line_and_the_other_reason_needs_text(
    client, sign_in, world
):
    token = await signed_in_as_maria(client, sign_in, world)
    line = (await lines_of(world.invoice("A-1")))[1]
    response = await post_dispute(
        client, token, {"item": f"line:{line.id}", "amount": "8.000", "reason": "other"}
    )
    assert response.status_code == 422
    page = main(response)
    assert "7.745,21" in error_of(page, "dispute-amount-error")
    assert "motivo" in error_of(page, "dispute-text-error")
    amount = page.by_id("dispute-amount")
    assert amount is not None and amount.attrs["value"] == "8.000"


async def test_an_htmx_submission_with_errors_gets_the_form_fragment(client, sign_in, world):
    token = await signed_in_as_maria(client, sign_in, world)
    response = await post_dispute(
        client, token, {"item": "invoice:999999999"}, headers={**HTMX, "x-csrf-token": token}
    )
    assert response.status_code == 200
    assert "<html" not in response.text
    root = parse(response.text).find("form")
    assert root is not None and root.attrs["id"] == "dispute-form"
    assert "Elija una factura con saldo" in error_of(root, "dispute-item-error")


async def test_an_htmx_submission_that_works_is_redirected(client, sign_in, world):
    token = await signed_in_as_maria(client, sign_in, world)
    response = await post_dispute(
        client,
        token,
        {"item": f"invoice:{world.invoice('A-4')}", "amount": "1000,50", "reason": "already_paid"},
        headers={**HTMX, "x-csrf-token": token},
    )
    assert response.status_code == 200
    assert re.fullmatch(r"/disputes/\d+\?opened=1", response.headers["hx-redirect"])
    row = await Dispute.objects().get(Dispute.invoice == world.invoice("A-4"))
    assert row is not None and row.amount == 100050 and row.invoice_line is None


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("foto.png", b"<html><script>alert(1)</script></html>", "no es un PDF, JPG ni PNG"),
        ("factura.pdf", b"%PDF-1.4 but never ends", "no es un PDF, JPG ni PNG"),
        ("grande.png", PNG + b"\x00" * MAX_UPLOAD_BYTES, "5 MB"),
    ],
)
async def test_uploads_are_checked_by_content_and_size(
    client, sign_in, world, name, content, message
):
    token = await signed_in_as_maria(client, sign_in, world)
    response = await post_dispute(
        client,
        token,
        {"item": f"invoice:{world.invoice('A-2')}", "reason": "wrong_amount"},
        files={"attachment": (name, content, "image/png")},
    )
    assert response.status_code == 422
    assert message in error_of(main(response), "dispute-attachment-error")
    assert await Dispute.count().where(Dispute.invoice == world.invoice("A-2")) == 0


async def test_a_body_far_over_the_limit_is_refused_without_a_server_error(client, sign_in, world):
    token = await signed_in_as_maria(client, sign_in, world)
    response = await post_dispute(
        client,
        token,
        {"item": f"invoice:{world.invoice('A-2')}", "reason": "wrong_amount"},
        files={"attachment": ("huge.png", PNG + b"\x00" * (2 * MAX_UPLOAD_BYTES), "image/png")},
        headers={"x-csrf-token": token},
    )
    assert response.status_code == 413


async def test_an_empty_file_input_is_no_attachment(client, sign_in, world):
    token = await signed_in_as_maria(client, sign_in, world)
    response = await post_dispute(
        client,
        token,
        {"item": f"invoice:{world.invoice('A-2')}", "reason": "duplicate"},
        files={"attachment": ("", b"", "application/octet-stream")},
    )
    assert response.status_code == 303


async def test_the_same_item_cannot_be_disputed_twice(client, sign_in, world):
    token = await signed_in_as_maria(client, sign_in, world)
    data = {"item": f"invoice:{world.invoice('A-2')}", "reason": "duplicate"}
    assert (await post_dispute(client, token, data)).status_code == 303
    again = await post_dispute(client, token, data)
    assert again.status_code == 422
    assert "Ya hay un reclamo abierto" in error_of(main(again), "dispute-item-error")
    select = main(again).by_id("dispute-item")
    assert select is not None
    assert f"invoice:{world.invoice('A-2')}" not in [
        o.attrs["value"] for o in select.find_all("option")
    ]


# ---------------------------------------------------------------------------- thread and outcome


async def open_for_maria(world, web_settings, *, line: int | None = None, amount=None) -> int:
    file = await store_upload(PDF, "remito.pdf", data_dir=web_settings.data_path)
    return await disputes.open_dispute(
        world.maria_ids,
        account_id=world.accounts["ARS"],
        invoice_id=world.invoice("A-1"),
        line_id=line,
        amount=amount,
        reason_code="not_received",
        reason_text="Nunca llegó el segundo decodificador",
        attachment_ids=[file],
        now=NOW - dt.timedelta(days=1),
    )


async def test_both_sides_see_the_thread(client, sign_in, world, web_settings):
    dispute_id = await open_for_maria(world, web_settings)
    staff_id = await staff_user()
    await disputes.post_message(
        dispute_id, "¿Nos envía una foto del remito?", staff_id=staff_id, now=NOW
    )
    token = await signed_in_as_maria(client, sign_in, world)
    page = main(await client.get(f"/disputes/{dispute_id}"))
    thread = page.by_id("dispute-thread")
    assert thread is not None
    messages = [li for li in thread.find_all("li") if "dmsg" in li.attrs.get("class", "")]
    assert ["dmsg--debtor" in m.attrs["class"] for m in messages] == [True, False]
    assert world.creditors["AR"] in messages[1].text()
    assert "Esperando su respuesta" in page.text()

    reply = await client.post(
        f"/disputes/{dispute_id}/messages",
        data={"_csrf_token": token, "body": "Adjunto el remito"},
        files={"attachment": ("remito.png", PNG, "image/png")},
        follow_redirects=False,
    )
    assert reply.status_code == 303
    assert reply.headers["location"] == f"/disputes/{dispute_id}?sent=1#thread-end"
    staff_view = await dispute_staff.staff_dispute(dispute_id, now=NOW)
    assert [(m.author_kind, m.body) for m in staff_view.messages][-1] == (
        "debtor",
        "Adjunto el remito",
    )
    assert staff_view.messages[-1].attachment is not None
    assert staff_view.item.status == "in_review"


async def test_an_empty_reply_is_shown_with_its_error(client, sign_in, world, web_settings):
    dispute_id = await open_for_maria(world, web_settings)
    token = await signed_in_as_maria(client, sign_in, world)
    response = await client.post(
        f"/disputes/{dispute_id}/messages", data={"_csrf_token": token, "body": "  "}
    )
    assert response.status_code == 422
    assert "Escriba su mensaje" in error_of(main(response), "reply-body-error")
    fragment = await client.post(
        f"/disputes/{dispute_id}/messages",
        data={"body": ""},
        headers={**HTMX, "x-csrf-token": token},
    )
    assert fragment.status_code == 200
    root = parse(fragment.text).find("section")
    assert root is not None and root.attrs["id"] == "dispute-thread"


async def test_an_attachment_is_served_only_with_its_own_dispute(
    client, sign_in, world, web_settings
):
    first = await open_for_maria(world, web_settings)
    second_file = await store_upload(PNG + b"2", "otra.png", data_dir=web_settings.data_path)
    second = await disputes.open_dispute(
        world.maria_ids,
        account_id=world.accounts["ARS"],
        invoice_id=world.invoice("A-2"),
        reason_code="wrong_amount",
        attachment_ids=[second_file],
        now=NOW,
    )
    await signed_in_as_maria(client, sign_in, world)
    assert (await client.get(f"/disputes/{second}/attachments/{second_file}")).status_code == 200
    assert (await client.get(f"/disputes/{first}/attachments/{second_file}")).status_code == 404
    assert (await client.get(f"/disputes/{first}/attachments/99999999999")).status_code == 404
    assert (await client.get("/disputes/99999999999")).status_code == 404


async def test_a_partial_acceptance_shows_the_credit_and_the_new_balance(
    client, sign_in, world, web_settings
):
    line = (await lines_of(world.invoice("A-1")))[1]
    dispute_id = await open_for_maria(world, web_settings, line=line.id)
    await signed_in_as_maria(client, sign_in, world)
    before = main(await client.get("/account"))
    assert str(ARS_TOTAL) in [
        n.attrs["data-total"] for n in before.iter() if "data-total" in n.attrs
    ]

    await disputes.resolve(
        dispute_id,
        outcome="partial",
        amount=387260,
        explanation="Le reconocemos uno de los dos decodificadores.",
        staff_id=await staff_user(),
        now=NOW,
    )
    page = main(await client.get(f"/disputes/{dispute_id}"))
    outcome = page.by_id("outcome")
    assert outcome is not None
    assert "Aceptamos su reclamo en parte" in outcome.text()
    assert "Le reconocemos uno de los dos decodificadores." in outcome.text()
    credit = next(n for n in outcome.iter() if "data-credit" in n.attrs)
    assert int(credit.attrs["data-credit"]) == 387260
    still_open = next(n for n in outcome.iter() if "data-open" in n.attrs)
    assert int(still_open.attrs["data-open"]) == 2273021 - 387260
    thread = page.by_id("dispute-thread")
    assert thread is not None and "Acreditamos $" in thread.text()
    assert page.by_id("reply-body") is None  # closed: no more replies

    after = main(await client.get("/account"))
    totals = [n.attrs["data-total"] for n in after.iter() if "data-total" in n.attrs]
    assert str(ARS_TOTAL - 387260) in totals
    listing = main(await client.get("/disputes"))
    closed = listing.by_id("closed-disputes")
    assert closed is not None and f"Reclamo N.º {dispute_id}" in closed.text()
    assert minor(closed.text().split("Acreditado:")[1].split("·")[0]) == 387260
