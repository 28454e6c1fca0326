"""A debtor disputes an invoice line with a photo in a real browser; a supervisor — created with
`saldo staff create` and signed in with TOTP — finds it in the back office's queue, reads the
photo, answers with a PDF, and accepts it in part; the portal shows the answer, the outcome and
the lower balance. Screenshots go to tests/e2e/artifacts/: the debtor's pages at phone and
desktop widths (dispute-*), the back office's at tablet and desktop widths
(backoffice-disputes-*)."""

from __future__ import annotations

import os
import re
import secrets
import struct
import subprocess
import sys
import zlib

import pyotp
import pytest
from playwright.async_api import Locator, Page

from saldo.services.demo import seed_demo
from saldo.services.ledger import account_balance
from saldo.tables import Invoice, InvoiceLine

from .conftest import ARTIFACTS

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
TABLET = {"width": 820, "height": 1180}
OFFICE = {"width": 1366, "height": 860}
EMAIL = "maria.nunez@example.com"
PASSWORD = "correcto caballo batería grapa"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


async def shoot(page: Page, name: str) -> None:
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        await page.set_viewport_size(size)
        await page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
    await page.set_viewport_size(PHONE)


async def shoot_office(page: Page, name: str) -> None:
    await page.evaluate("window.scrollTo(0, 0)")  # the sticky header stays on top of the shot
    for label, size in (("tablet", TABLET), ("desktop", OFFICE)):
        await page.set_viewport_size(size)
        await page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
    await page.set_viewport_size(OFFICE)


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
    for _ in range(200):  # up to 20 s: a loaded machine delivers slowly
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


async def supervisor_signs_in(page: Page, servers, base: str) -> None:
    """`saldo staff create --role supervisor`, then the first sign-in: password, TOTP enrollment
    with the secret read off the page, recovery codes, the back-office home."""
    email = f"supervisora.{secrets.token_hex(3)}@saldo.example"
    env = dict(os.environ, DATABASE_URL=servers.database_url, REDIS_URL=servers.redis_url)
    created = subprocess.run(
        [sys.executable, "-m", "saldo", "staff", "create", email, "--role", "supervisor",
         "--name", "Paula Rivas"],
        input=f"{PASSWORD}\n", capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    await page.goto(f"{base}/backoffice")
    await page.get_by_label("Correo electrónico").fill(email)
    await page.get_by_label("Contraseña").fill(PASSWORD)
    await page.get_by_role("button", name=re.compile("Continuar")).click()
    await page.wait_for_url(re.compile(r"/backoffice/login/enroll"))
    secret = (await page.locator("#totp-secret").inner_text()).replace(" ", "")
    await page.get_by_label("Código de 6 dígitos").fill(pyotp.TOTP(secret).now())
    await page.get_by_role("button", name=re.compile("Confirmar y continuar")).click()
    await page.wait_for_url(re.compile(r"/backoffice/login/recovery-codes"))
    await page.get_by_role("button", name=re.compile("Ya los guardé")).click()
    await page.wait_for_url(re.compile(r"/backoffice$"))
    assert "Supervisor" in await page.locator(".bo-user").inner_text()


async def find_in_queue(page: Page, dispute_id: int) -> Locator:
    """The dispute's row, paging through the queue the way a person would."""
    for _ in range(20):
        row = page.locator(f"#queue-{dispute_id}")
        if await row.count():
            return row
        await page.get_by_role("link", name="Siguiente").click()
        await page.wait_for_load_state()
    raise AssertionError(f"dispute {dispute_id} is not in the queue")


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
    db, servers, live_server, browser
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

    before = await account_balance(invoice.account)
    staff_context = await browser.new_context(viewport=OFFICE, locale="es-AR")
    office = await staff_context.new_page()
    await supervisor_signs_in(office, servers, live_server.url)

    # The queue: the new dispute with its SLA timer, found by its reason.
    await office.get_by_role("link", name="Reclamos").click()
    await office.wait_for_url(re.compile(r"/backoffice/disputes$"))
    await office.select_option("#f-reason", value="not_received")
    await office.wait_for_url(re.compile(r"reason=not_received"))
    row = await find_in_queue(office, dispute_id)
    assert "vence en 6 d 23 h" in await row.inner_text()
    assert "Decodificador adicional" in await row.inner_text()
    await shoot_office(office, "backoffice-disputes-01-queue")

    await row.get_by_role("link", name=f"N.º {dispute_id}").click()
    await office.wait_for_url(re.compile(rf"/backoffice/disputes/{dispute_id}$"))
    thread = office.locator("#dispute-thread")
    assert "Pedí dos decodificadores y llegó uno solo" in await thread.inner_text()
    photo = thread.get_by_role("link", name=re.compile("caja-decodificador.png"))
    served = await office.request.get(f"{live_server.url}{await photo.get_attribute('href')}")
    assert served.status == 200 and await served.body() == png()
    assert served.headers["content-disposition"].startswith("attachment")
    await shoot_office(office, "backoffice-disputes-02-detail")

    await office.get_by_label("Respuesta al deudor").fill(
        "Gracias por la foto. Adjuntamos el remito: figura una sola entrega."
    )
    await office.set_input_files(
        "#reply-attachment",
        files=[{"name": "remito-4471.pdf", "mimeType": "application/pdf", "buffer": PDF}],
    )
    await office.get_by_role("button", name="Enviar respuesta").click()
    await office.locator(".bo-flash").wait_for()
    assert "Esperando al deudor" in await office.locator("#dispute-status").inner_text()
    assert "remito-4471.pdf" in await office.locator("#dispute-thread").inner_text()

    # The debtor reads the answer in the portal.
    await page.goto(f"{live_server.url}/disputes/{dispute_id}")
    debtor_thread = await page.text_content("#dispute-thread") or ""
    assert "figura una sola entrega" in debtor_thread and "remito-4471.pdf" in debtor_thread
    await shoot(page, "dispute-04-answered")

    # The supervisor accepts one of the two decoders.
    await office.get_by_label("Aceptar en parte").check()
    await office.get_by_label("Importe a acreditar").fill("3.872,60")
    await office.get_by_label("Explicación al deudor").fill(
        "Le acreditamos un decodificador; el otro figura entregado."
    )
    await shoot_office(office, "backoffice-disputes-03-resolving")
    await office.get_by_role("button", name="Resolver reclamo").click()
    await office.locator("#outcome").wait_for()
    outcome = await office.locator("#outcome").inner_text()
    assert "Aceptado en parte" in outcome and "3.872,60" in outcome
    assert await account_balance(invoice.account) == before - 387260
    await shoot_office(office, "backoffice-disputes-04-resolved")

    await office.get_by_role("link", name="Volver a los reclamos").click()
    await office.get_by_role("link", name="Informe por motivo").click()
    await office.wait_for_url(re.compile(r"/backoffice/disputes/reasons"))
    reason = office.locator('tr[data-reason="not_received"]')
    assert int(await reason.locator('[data-outcome="partially_accepted"]').inner_text()) >= 1
    await shoot_office(office, "backoffice-disputes-05-reasons")
    await staff_context.close()

    await page.goto(f"{live_server.url}/disputes/{dispute_id}")
    outcome = await page.text_content("#outcome") or ""
    assert "Aceptamos su reclamo en parte" in outcome and "3.872,60" in outcome
    assert "Le acreditamos un decodificador" in outcome
    await shoot(page, "dispute-05-outcome")

    await page.goto(f"{live_server.url}/account")
    totals = await page.locator("[data-total]").evaluate_all(
        "nodes => nodes.map(n => Number(n.dataset.total))"
    )
    assert before - 387260 in totals
    await shoot(page, "dispute-06-balance")
    await context.close()
