"""A debtor disputes an invoice line with a photo in a real browser; staff accept it in part; the
portal shows the outcome and the lower balance. Screenshots at phone and desktop widths go to
tests/e2e/artifacts/."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import struct
import zlib

import pytest
from playwright.async_api import Page

from saldo.services import disputes
from saldo.services.demo import seed_demo
from saldo.services.ledger import account_balance
from saldo.tables import Invoice, InvoiceLine, StaffUser

from .conftest import ARTIFACTS

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
EMAIL = "maria.nunez@example.com"


async def shoot(page: Page, name: str) -> None:
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        await page.set_viewport_size(size)
        await page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
    await page.set_viewport_size(PHONE)


def png(width: int = 24, height: int = 16) -> bytes:
    """A real PNG (a teal rectangle), as a phone camera would send a photo."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\x0b\x5f\x6b" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def sign_in(page: Page, live_server) -> None:
    await page.goto(f"{live_server.url}/login")
    already = len(live_server.smtp.to(EMAIL))
    await page.get_by_label(re.compile("correo|teléfono", re.I)).first.fill(EMAIL)
    await page.get_by_role("button", name=re.compile("Enviarme el enlace")).click()
    for _ in range(50):
        mails = live_server.smtp.to(EMAIL)
        if len(mails) > already:
            break
        await page.wait_for_timeout(100)
    assert len(mails) > already, "no email reached the SMTP sink"
    await page.goto(mails[-1].link())
    await page.get_by_role("button", name=re.compile("Continuar")).click()
    await page.wait_for_load_state()
    await page.get_by_label(re.compile("4 dígitos", re.I)).fill("5678")
    await page.get_by_role("button", name=re.compile("Verificar")).click()
    await page.wait_for_url(re.compile(r"/account"))


async def decoder_line() -> tuple[InvoiceLine, Invoice]:
    invoice = await Invoice.objects().get(Invoice.number == "A-0001-00012345")
    assert invoice is not None
    line = await InvoiceLine.objects().get(
        (InvoiceLine.invoice == invoice.id) & (InvoiceLine.description == "Decodificador adicional")
    )
    assert line is not None
    return line, invoice


@pytest.mark.e2e
async def test_a_line_disputed_with_a_photo_is_partly_accepted_and_the_balance_follows(
    db, live_server, browser
):
    await seed_demo(only_if_empty=False)
    line, invoice = await decoder_line()
    context = await browser.new_context(viewport=PHONE, locale="es-AR")
    page = await context.new_page()
    await sign_in(page, live_server)

    await page.goto(f"{live_server.url}/invoices/{invoice.id}")
    await page.get_by_role("link", name="Disputar").click()
    await page.wait_for_url(re.compile(r"/disputes\?invoice="))
    await shoot(page, "dispute-01-form")

    await page.select_option("#dispute-item", value=f"line:{line.id}")
    await page.get_by_label("No recibí el producto o servicio").check()
    await page.get_by_label("Cuéntenos qué pasó").fill(
        "Pedí dos decodificadores y llegó uno solo. Adjunto la foto de la caja."
    )
    await page.set_input_files(
        "#dispute-attachment",
        files=[{"name": "caja-decodificador.png", "mimeType": "image/png", "buffer": png()}],
    )
    await page.get_by_role("button", name="Enviar reclamo").click()
    await page.wait_for_url(re.compile(r"/disputes/\d+\?opened=1"))
    dispute_id = int(re.search(r"/disputes/(\d+)", page.url).group(1))  # type: ignore[union-attr]
    await shoot(page, "dispute-02-opened")
    main = await page.text_content("main") or ""
    assert "Recibimos su reclamo" in main
    assert "Decodificador adicional" in main and "7.745,21" in main
    attachment = page.get_by_role("link", name=re.compile("caja-decodificador.png"))
    href = await attachment.get_attribute("href")
    download = await page.request.get(f"{live_server.url}{href}")
    assert download.status == 200 and download.headers["content-type"] == "image/png"
    assert download.headers["content-disposition"].startswith("attachment")

    await page.goto(f"{live_server.url}/disputes")
    listed = await page.text_content("#open-disputes") or ""
    assert f"Reclamo N.º {dispute_id}" in listed and "A-0001-00012345" in listed
    await shoot(page, "dispute-03-listed")

    staff = StaffUser(email=f"agente.{secrets.token_hex(4)}@example.com", name="Agente")
    await staff.save()
    before = await account_balance(invoice.account)
    await disputes.resolve(
        dispute_id,
        outcome="partial",
        amount=387260,
        explanation="Le acreditamos un decodificador; el otro figura entregado.",
        staff_id=staff.id,
        now=dt.datetime.now(dt.UTC),
    )
    assert await account_balance(invoice.account) == before - 387260

    await page.goto(f"{live_server.url}/disputes/{dispute_id}")
    outcome = await page.text_content("#outcome") or ""
    assert "Aceptamos su reclamo en parte" in outcome and "3.872,60" in outcome
    assert "Le acreditamos un decodificador" in outcome
    await shoot(page, "dispute-04-outcome")

    await page.goto(f"{live_server.url}/account")
    totals = await page.locator("[data-total]").evaluate_all(
        "nodes => nodes.map(n => Number(n.dataset.total))"
    )
    assert before - 387260 in totals
    await shoot(page, "dispute-05-balance")
    await context.close()
