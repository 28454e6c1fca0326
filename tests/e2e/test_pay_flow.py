"""Paying in a real browser, in demo mode, with a real arq worker syncing the payments.

- María pays one invoice: /pay, the invoice, the demo provider page, approve; the return page
  moves from "confirming" to "received" once the worker has synced the payment, and the
  balance drops by exactly that invoice.
- Ignacio (Chile, whole pesos) leaves a cash voucher pending, then reports a transfer with
  "ya pagué" and a photo of the receipt.

Screenshots at phone and desktop widths go to tests/e2e/artifacts/."""

from __future__ import annotations

import datetime as dt
import re
import struct
import zlib
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from saldo.services.demo import seed_demo
from saldo.tables import Invoice

from .conftest import ARTIFACTS

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
EMAIL = "maria.nunez@example.com"
INVOICE = "A-0001-00012400"  # Conecta Telecom, September: 1 × 28.500,00 + 21 %, unpaid
INVOICE_TOTAL = 3_448_500


async def shoot(page: Page, name: str) -> None:
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        await page.set_viewport_size(size)
        await page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
    await page.set_viewport_size(PHONE)


def png(width: int = 32, height: int = 20) -> bytes:
    """A real PNG, as a phone camera would send a photo of a receipt."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xf3\xb7\x5c" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def sign_in(page: Page, live_server, email: str = EMAIL, last4: str = "5678") -> None:
    await page.goto(f"{live_server.url}/login")
    already = len(live_server.smtp.to(email))
    await page.get_by_label(re.compile("correo|teléfono", re.I)).first.fill(email)
    await page.get_by_role("button", name=re.compile("Enviarme el enlace")).click()
    for _ in range(50):
        mails = live_server.smtp.to(email)
        if len(mails) > already:
            break
        await page.wait_for_timeout(100)
    assert len(mails) > already, "no email reached the SMTP sink"
    await page.goto(mails[-1].link())
    await page.get_by_role("button", name=re.compile("Continuar")).click()
    await page.wait_for_load_state()
    await page.get_by_label(re.compile("4 dígitos", re.I)).fill(last4)
    await page.get_by_role("button", name=re.compile("Verificar")).click()
    await page.wait_for_url(re.compile(r"/account"))


async def balance(page: Page, account_id: int) -> int:
    total = page.locator(f"#account-{account_id} .acct__amount")
    value = await total.get_attribute("data-total")
    assert value is not None
    return int(value)


async def test_a_debtor_pays_one_invoice_in_demo_mode_and_the_balance_follows(
    db, live_server, live_worker, browser
):
    await seed_demo(only_if_empty=False)
    invoice = await Invoice.objects().get(Invoice.number == INVOICE)
    assert invoice is not None and invoice.total == INVOICE_TOTAL
    account_id = invoice.account

    context = await browser.new_context(viewport=PHONE, locale="es-AR")
    page = await context.new_page()
    await sign_in(page, live_server)
    before = await balance(page, account_id)

    # /account → "Pagar" on the Conecta account
    await (
        page.locator(f"#account-{account_id}").get_by_role("link", name="Pagar", exact=True).click()
    )
    await page.wait_for_url(re.compile(r"/pay#pay-\d+$"))
    await expect(page.locator("#demo-banner")).to_contain_text("no se mueve dinero real")
    section = page.locator(f"#pay-{account_id}")
    await expect(section.locator("code")).to_have_text(re.compile(r"SAL-\d{7}-\d{2}"))
    await shoot(page, "pay-01-options")

    # choose the September invoice only
    await section.get_by_text("Elegir facturas").click()
    await section.locator("label.pay-invoice", has_text=INVOICE).locator("input").check()
    await shoot(page, "pay-02-invoice-chosen")
    await section.get_by_role("button", name="Pagar las facturas elegidas").click()

    # demo mode's stand-in for Mercado Pago
    await page.wait_for_url(re.compile(r"/pay/simulated/[0-9a-f-]{36}$"))
    await expect(page.locator("h1")).to_have_text("Pagar a Conecta Telecom S.A.")
    await expect(page.locator(".pay-sim__amount")).to_have_text("$\u00a034.485,00")
    await expect(page.locator(".pay-sim__what")).to_contain_text(INVOICE)
    await shoot(page, "pay-03-demo-provider")
    await page.get_by_role("button", name="Aprobar el pago").click()

    # back on Saldo: nothing is known until a worker fetches the payment
    await page.wait_for_url(re.compile(r"/pay/return/[0-9a-f-]{36}\?.*payment_id=\d+"))
    status = page.locator("#pay-status")
    await expect(status).to_have_attribute("data-state", "waiting")
    await expect(status).to_have_attribute("hx-trigger", "every 2s")
    await shoot(page, "pay-04-confirming")

    live_worker()  # the worker picks up the queued sync; htmx polling shows the outcome
    await expect(status).to_have_attribute("data-state", "approved", timeout=30_000)
    await expect(status.locator("h2")).to_have_text("¡Pago acreditado!")
    assert await status.get_attribute("hx-trigger") is None  # polling stopped
    await shoot(page, "pay-05-approved")

    await status.get_by_role("link", name="Ver mi saldo").click()
    await page.wait_for_url(re.compile(r"/account$"))
    after = await balance(page, account_id)
    assert before - after == INVOICE_TOTAL
    card = page.locator(f"#account-{account_id}")
    await expect(card.locator(f"#invoice-{invoice.id}")).to_have_count(0)  # no longer open
    await shoot(page, "pay-06-balance-after")
    await context.close()


async def test_a_pending_voucher_and_a_reported_transfer_in_whole_pesos(
    db, live_server, live_worker, browser
):
    await seed_demo(only_if_empty=False)
    invoice = await Invoice.objects().get(Invoice.number == "CL-000345")
    assert invoice is not None and invoice.currency == "CLP"
    account_id = invoice.account
    live_worker()

    context = await browser.new_context(viewport=PHONE, locale="es-CL", accept_downloads=True)
    page = await context.new_page()
    await sign_in(page, live_server, "ignacio.munoz@example.cl", "9012")
    await page.goto(f"{live_server.url}/pay")
    section = page.locator(f"#pay-{account_id}")
    await section.get_by_text("Pagar otro importe").click()
    await section.get_by_label("Importe en CLP").fill("100.000")  # more than he owes
    await section.get_by_role("button", name="Pagar este importe").click()
    section = page.locator(f"#pay-{account_id}")
    error = section.locator(f"#pay-{account_id}-amount-error")
    await expect(error).to_have_text("El importe no puede superar su saldo de $ 47.588.")
    await expect(section.get_by_label("Importe en CLP")).to_have_attribute("aria-invalid", "true")
    await shoot(page, "pay-06b-amount-error")
    await section.get_by_label("Importe en CLP").fill("10.000")
    await section.get_by_role("button", name="Pagar este importe").click()
    await page.wait_for_url(re.compile(r"/pay/simulated/"))
    await expect(page.locator(".pay-sim__amount")).to_have_text("$\u00a010.000")
    await page.get_by_role("button", name=re.compile("Dejarlo pendiente")).click()

    status = page.locator("#pay-status")
    await expect(status).to_have_attribute("data-state", "pending", timeout=30_000)
    await expect(status).to_contain_text("Pague el cupón de $ 10.000")
    await expect(status).to_contain_text("pausamos los recordatorios")
    await expect(status).to_have_attribute("hx-trigger", "every 2s")  # still listening
    await shoot(page, "pay-07-pending-voucher")

    # the /pay page now shows the payment in progress, and the way to "ya pagué"
    await page.goto(f"{live_server.url}/pay")
    await expect(page.locator(f"#pay-{account_id}")).to_contain_text("en proceso")
    await page.get_by_role("link", name="Ya pagué").click()
    await page.wait_for_url(re.compile(r"/pay/claim$"))
    paid_on = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    await page.get_by_label("Fecha del pago").fill(paid_on)
    await page.get_by_label("Importe pagado").fill("47.588")
    await page.get_by_label("Transferencia bancaria").check()
    await page.get_by_label(re.compile("Número de operación")).fill("TEF-20261124-0091")
    await page.locator("label.pay-invoice", has_text="CL-000345").locator("input").check()
    receipt = png()
    await page.get_by_label(re.compile("Comprobante")).set_input_files(
        {"name": "transferencia.png", "mimeType": "image/png", "buffer": receipt}
    )
    await shoot(page, "pay-08-claim-form")
    await page.get_by_role("button", name="Enviar aviso de pago").click()

    await page.wait_for_url(re.compile(r"/pay/claims/\d+$"))
    main = page.locator("main")
    await expect(main).to_contain_text("Recibimos su aviso de pago")
    await expect(main).to_contain_text("$ 47.588")
    await expect(main).to_contain_text("la factura CL-000345")
    await shoot(page, "pay-09-claim-sent")
    async with page.expect_download() as download:
        await page.get_by_role("link", name=re.compile("transferencia.png")).click()
    saved = await (await download.value).path()
    assert saved is not None and Path(saved).read_bytes() == receipt
    await context.close()
