""" "Ya pagué" as a debtor uses it: the form, a real receipt upload (checked by its bytes, capped
at 5 MB, stored outside static/), the pause on reminders, finance's task, the confirmation
page and the receipt download (real PostgreSQL and Redis, parsed HTML)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
from pathlib import Path

import httpx
import pytest
import segno
from fpdf import FPDF

import portal.pay
from saldo.services import claims, uploads
from saldo.tables import Attachment, Interaction, PaymentClaim, Task
from tests.portal_data import ARS_OPEN, TODAY, World, build_world
from tests.web import portal_fixtures
from tests.web.html import Node, parse
from tests.web.portal_fixtures import csrf_token

client = portal_fixtures.client
sign_in = portal_fixtures.sign_in

NOW = dt.datetime.combine(TODAY, dt.time(15, 0), tzinfo=dt.UTC)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
async def world(db) -> World:
    return await build_world()


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch):
    monkeypatch.setattr(portal.pay, "_now", lambda: NOW)


def png_receipt() -> bytes:
    buffer = io.BytesIO()
    segno.make("Transferencia OP-778899 $ 22.730,21").save(buffer, kind="png", scale=4)
    return buffer.getvalue()


def pdf_receipt() -> bytes:
    document = FPDF()
    document.add_page()
    document.set_font("helvetica", size=14)
    document.cell(text="Comprobante de transferencia OP-4455")
    return bytes(document.output())


def main(response: httpx.Response) -> Node:
    node = parse(response.text).by_id("main")
    assert node is not None, response.text[:500]
    return node


def form_fields(world: World, **overrides: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "account": str(world.accounts["ARS"]),
        "paid_on": (TODAY - dt.timedelta(days=5)).isoformat(),
        "amount": "22730,21",
        "method": "transferencia",
        "reference": "OP-778899",
        "invoice_ids": [str(world.invoice("A-1"))],
    }
    fields.update(overrides)
    return fields


async def submit(
    client: httpx.AsyncClient,
    fields: dict[str, object],
    receipt: tuple[str, bytes, str] | None = None,
) -> httpx.Response:
    token = csrf_token((await client.get("/pay/claim")).text)
    data = {"_csrf_token": token, **fields}
    files = {"receipt": receipt} if receipt else {"receipt": ("", b"", "application/octet-stream")}
    return await client.post("/pay/claim", data=data, files=files, follow_redirects=False)


async def claim_count(account_id: int) -> int:
    return await PaymentClaim.count().where(PaymentClaim.account == account_id)


def error_of(page: Node, field: str) -> str | None:
    node = page.by_id(f"claim-{field}-error")
    return node.text() if node is not None else None


# ---------------------------------------------------------------------------- the happy path


async def test_the_form_lists_the_debtors_accounts_invoices_and_methods(client, sign_in, world):
    await sign_in(world.maria_ids)
    response = await client.get("/pay/claim")
    assert response.status_code == 200
    page = main(response)
    form = page.by_id("claim-form")
    assert form.attrs["enctype"] == "multipart/form-data"
    options = [o.attrs["value"] for o in page.by_id("claim-account").find_all("option")]
    # by creditor name: Conecta Telecom, Librería Cervantes, Muebles Aztlán
    assert options == ["", *(str(world.accounts[k]) for k in ("ARS", "EUR", "MXN"))]
    methods = [i.attrs["value"] for i in form.find_all("input") if i.attrs.get("name") == "method"]
    assert methods == list(claims.METHODS)
    boxes = {
        i.attrs["value"] for i in form.find_all("input") if i.attrs.get("name") == "invoice_ids"
    }
    assert str(world.invoice("A-1")) in boxes and str(world.invoice("F-1")) in boxes
    assert str(world.invoice("J-1")) not in boxes
    date = page.by_id("claim-paid_on")
    assert date.attrs["max"] == TODAY.isoformat()
    assert date.attrs["min"] == (TODAY - dt.timedelta(days=90)).isoformat()
    receipt = page.by_id("claim-receipt")
    assert receipt.attrs["accept"] == "application/pdf,image/jpeg,image/png"


async def test_a_claim_with_a_png_receipt_pauses_reminders_and_tells_finance(
    client, sign_in, world, web_settings
):
    await sign_in(world.maria_ids)
    image = png_receipt()
    response = await submit(client, form_fields(world), ("transferencia.png", image, "image/png"))
    assert response.status_code == 303, response.text[:1000]
    location = response.headers["location"]
    claim_id = int(location.rsplit("/", 1)[1])
    assert location == f"/pay/claims/{claim_id}"

    claim = await PaymentClaim.objects().get(PaymentClaim.id == claim_id)
    assert claim.account == world.accounts["ARS"]
    assert claim.amount == ARS_OPEN["A-1"]
    assert claim.paid_on == TODAY - dt.timedelta(days=5)
    assert (claim.method, claim.reference, claim.status) == ("transferencia", "OP-778899", "open")
    assert json.loads(claim.invoice_ids) == [world.invoice("A-1")]
    assert claim.pause_until == TODAY + dt.timedelta(days=7)  # the creditor's claim_pause_days

    attachment = await Attachment.objects().get(Attachment.id == claim.attachment)
    digest = hashlib.sha256(image).hexdigest()
    assert (attachment.content_type, attachment.size, attachment.sha256) == (
        "image/png",
        len(image),
        digest,
    )
    assert attachment.filename == "transferencia.png"
    stored = web_settings.data_path / attachment.storage_path
    assert stored == web_settings.data_path / "uploads" / digest[:2] / f"{digest}.png"
    assert stored.read_bytes() == image
    assert "static" not in stored.parts

    tasks = await Task.select().where(Task.dedupe_key == f"claim:{claim_id}")
    assert len(tasks) == 1
    task = tasks[0]
    assert (task["kind"], task["account"], task["status"]) == (
        "match_claim",
        world.accounts["ARS"],
        "open",
    )
    assert task["due_on"] == claim.pause_until
    assert "22.730,21" in task["title"] and "OP-778899" in task["title"]
    interactions = await Interaction.select().where(
        (Interaction.kind == "payment_claimed") & (Interaction.account == world.accounts["ARS"])
    )
    assert any(json.loads(i["data"])["claim_id"] == claim_id for i in interactions)

    # finance's task exists once, however often it is asked for
    again = await claims.ensure_claim_task(
        claim_id, account_id=claim.account, title="x", due_on=None, data={}
    )
    assert again is None
    assert await Task.count().where(Task.dedupe_key == f"claim:{claim_id}") == 1

    page = main(await client.get(location))
    text = page.text()
    assert "Recibimos su aviso de pago" in text
    assert "$ 22.730,21" in text and "20/11/2026" in text and "OP-778899" in text
    assert f"No le enviaremos recordatorios de la factura {world.number('A-1')} hasta el " \
        "02/12/2026" in text  # fmt: skip
    link = next(a for a in page.find_all("a") if a.attrs.get("href", "").endswith("/receipt"))
    assert link.attrs["href"] == f"/pay/claims/{claim_id}/receipt"

    download = await client.get(link.attrs["href"])
    assert download.status_code == 200
    assert download.content == image
    assert download.headers["content-type"] == "image/png"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert 'filename="transferencia.png"' in download.headers["content-disposition"]
    assert download.headers["x-content-type-options"] == "nosniff"


async def test_a_pdf_receipt_is_accepted_whatever_its_name(client, sign_in, world):
    await sign_in(world.maria_ids)
    document = pdf_receipt()
    response = await submit(
        client,
        form_fields(world, method="deposito", invoice_ids=[], reference=""),
        ("Comprobante depósito Nº 4455", document, "application/octet-stream"),
    )
    assert response.status_code == 303
    claim_id = int(response.headers["location"].rsplit("/", 1)[1])
    download = await client.get(f"/pay/claims/{claim_id}/receipt")
    assert download.content == document
    assert download.headers["content-type"] == "application/pdf"
    disposition = download.headers["content-disposition"]
    assert 'filename="Comprobante deposito No 4455.pdf"' in disposition
    assert "filename*=UTF-8''Comprobante%20dep%C3%B3sito%20N%C2%BA%204455.pdf" in disposition
    text = main(await client.get(response.headers["location"])).text()
    assert "No le enviaremos recordatorios de esta cuenta hasta el 02/12/2026" in text


async def test_a_claim_without_receipt_has_nothing_to_download(client, sign_in, world):
    await sign_in(world.maria_ids)
    response = await submit(client, form_fields(world, method="efectivo"))
    assert response.status_code == 303
    claim_id = int(response.headers["location"].rsplit("/", 1)[1])
    claim = await PaymentClaim.objects().get(PaymentClaim.id == claim_id)
    assert claim.attachment is None
    assert "Sin comprobante" in main(await client.get(response.headers["location"])).text()
    assert (await client.get(f"/pay/claims/{claim_id}/receipt")).status_code == 404


# ---------------------------------------------------------------------------- refused files


@pytest.mark.parametrize(
    ("name", "content", "content_type"),
    [
        (
            "recibo.pdf",
            b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" * 64,
            "application/pdf",
        ),
        ("foto.png", b"Pagado el martes por transferencia, gracias\n", "image/png"),
        ("fake.jpg", b"<html><script>alert(1)</script></html>", "image/jpeg"),
        ("cut.png", PNG_MAGIC + b"\x00" * 20, "image/png"),
    ],
)
async def test_a_file_that_is_not_really_a_pdf_jpeg_or_png_is_refused(
    client, sign_in, world, name, content, content_type
):
    await sign_in(world.maria_ids)
    before = await claim_count(world.accounts["ARS"])
    attachments = await Attachment.count()
    response = await submit(client, form_fields(world), (name, content, content_type))
    assert response.status_code == 422
    page = main(response)
    assert error_of(page, "receipt") == (
        "El archivo no es un PDF, JPG ni PNG. Adjunte el comprobante en uno de esos formatos."
    )
    assert page.by_id("claim-receipt").attrs["aria-invalid"] == "true"
    assert page.by_id("claim-amount").attrs["value"] == "22730,21"  # the form keeps what was typed
    assert page.by_id("claim-reference").attrs["value"] == "OP-778899"
    assert await claim_count(world.accounts["ARS"]) == before
    assert await Attachment.count() == attachments


async def test_a_receipt_over_5_mb_is_refused_with_a_message(client, sign_in, world):
    await sign_in(world.maria_ids)
    before = await claim_count(world.accounts["ARS"])
    big = png_receipt() + b"\x00" * uploads.MAX_UPLOAD_BYTES
    response = await submit(client, form_fields(world), ("enorme.png", big, "image/png"))
    assert response.status_code == 422
    assert error_of(main(response), "receipt") == "El archivo supera el máximo de 5 MB."
    assert await claim_count(world.accounts["ARS"]) == before


async def test_a_body_over_the_route_limit_comes_back_to_the_form_with_a_message(
    client, sign_in, world
):
    await sign_in(world.maria_ids)
    before = await claim_count(world.accounts["ARS"])
    huge = PNG_MAGIC + b"\x00" * (portal.pay.CLAIM_MAX_BODY + 1024)
    response = await submit(client, form_fields(world), ("foto.png", huge, "image/png"))
    assert response.status_code == 303
    assert response.headers["location"] == "/pay/claim?error=too_large"
    form = await client.get(response.headers["location"])
    assert form.status_code == 422
    assert error_of(main(form), "receipt") == "El archivo supera el máximo de 5 MB."
    assert await claim_count(world.accounts["ARS"]) == before


# ---------------------------------------------------------------------------- other fields


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (
            {"paid_on": (TODAY + dt.timedelta(days=1)).isoformat()},
            "paid_on",
            "La fecha del pago no puede ser posterior a hoy.",
        ),
        (
            {"paid_on": (TODAY - dt.timedelta(days=91)).isoformat()},
            "paid_on",
            "Solo puede informar pagos de los últimos 90 días. Para pagos anteriores, contáctenos.",
        ),
        ({"paid_on": "2026-02-30"}, "paid_on", "Indique la fecha del pago (día, mes y año)."),
        ({"amount": "0"}, "amount", "El importe debe ser mayor que cero."),
        ({"method": "cheque"}, "method", "Elija cómo pagó."),
        (
            {"reference": "x" * 201},
            "reference",
            "La referencia puede tener como máximo 200 caracteres.",
        ),
        ({"account": ""}, "account", "Elija la cuenta a la que corresponde el pago."),
    ],
)
async def test_each_wrong_field_gets_its_message(client, sign_in, world, overrides, field, message):
    await sign_in(world.maria_ids)
    before = await claim_count(world.accounts["ARS"])
    response = await submit(client, form_fields(world, **overrides))
    assert response.status_code == 422
    page = main(response)
    assert error_of(page, field) == message
    summary = page.by_id("claim-errors")
    assert summary is not None and message in summary.text()
    assert await claim_count(world.accounts["ARS"]) == before


async def test_the_oldest_and_newest_allowed_dates_are_accepted(client, sign_in, world):
    await sign_in(world.maria_ids)
    for paid_on in (TODAY, TODAY - dt.timedelta(days=90)):
        response = await submit(
            client, form_fields(world, paid_on=paid_on.strftime("%d/%m/%Y"), invoice_ids=[])
        )
        assert response.status_code == 303
        claim_id = int(response.headers["location"].rsplit("/", 1)[1])
        claim = await PaymentClaim.objects().get(PaymentClaim.id == claim_id)
        assert claim.paid_on == paid_on


async def test_another_accounts_invoice_is_refused(client, sign_in, world):
    await sign_in(world.maria_ids)
    for invoice in ("F-1", "J-1", "A-5"):  # another account of hers, Julián's, a paid one
        response = await submit(
            client, form_fields(world, invoice_ids=[str(world.invoice(invoice))])
        )
        assert response.status_code == 422
        page = main(response)
        assert (
            error_of(page, "invoice_ids") == "Elija solo facturas pendientes de la cuenta indicada."
        )
        assert world.number("J-1") not in page.text()


async def test_someone_elses_account_cannot_be_named(client, sign_in, world):
    await sign_in(world.maria_ids)
    response = await submit(
        client, form_fields(world, account=str(world.accounts["JULIAN"]), invoice_ids=[])
    )
    assert response.status_code == 422
    assert error_of(main(response), "account") == "Elija la cuenta a la que corresponde el pago."
    assert await claim_count(world.accounts["JULIAN"]) == 0


# ---------------------------------------------------------------------------- scoping


async def test_another_debtors_claim_and_receipt_are_not_found(client, sign_in, world):
    await sign_in([world.julian_id])
    fields = {
        "account": str(world.accounts["JULIAN"]),
        "paid_on": TODAY.isoformat(),
        "amount": "100",
        "method": "otro",
        "reference": "JULIAN-SECRETO",
    }
    response = await submit(client, fields, ("j.png", png_receipt(), "image/png"))
    assert response.status_code == 303
    claim_id = int(response.headers["location"].rsplit("/", 1)[1])
    assert (await client.get(f"/pay/claims/{claim_id}/receipt")).status_code == 200

    await sign_in(world.maria_ids)
    for url in (f"/pay/claims/{claim_id}", f"/pay/claims/{claim_id}/receipt"):
        response = await client.get(url)
        assert response.status_code == 404
        assert "JULIAN-SECRETO" not in response.text


def test_stored_paths_never_leave_the_uploads_directory(tmp_path: Path):
    name = uploads.clean_filename("../../etc/passwd\x00.png", "png")
    assert name == "passwd.png"
    assert uploads.clean_filename("", "pdf") == "comprobante.pdf"
    assert uploads.clean_filename('C:\\fotos\\"recibo".exe', "jpg") == "recibo.jpg"
