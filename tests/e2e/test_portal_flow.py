"""The whole debtor journey in a real browser, with screenshots of every page at phone and
desktop widths under tests/e2e/artifacts/."""

from __future__ import annotations

import io
import re

from playwright.async_api import Page
from pypdf import PdfReader

from saldo.services.demo import seed_demo

from .conftest import ARTIFACTS

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}


async def shoot(page: Page, name: str) -> None:
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        await page.set_viewport_size(size)
        await page.screenshot(path=str(ARTIFACTS / f"{name}-{label}.png"), full_page=True)
    await page.set_viewport_size(PHONE)


async def test_debtor_signs_in_by_magic_link_reads_the_balance_downloads_a_pdf_and_leaves(
    db, live_server, browser
):
    await seed_demo(only_if_empty=False)
    context = await browser.new_context(viewport=PHONE, locale="es-AR", accept_downloads=True)
    page = await context.new_page()

    await page.goto(f"{live_server.url}/login")
    await shoot(page, "01-login")
    await page.get_by_label(re.compile("correo|teléfono", re.I)).first.fill(
        "maria.nunez@example.com"
    )
    await page.get_by_role("button", name=re.compile("Enviarme el enlace")).click()
    await page.wait_for_load_state()
    await shoot(page, "02-link-sent")

    for _ in range(50):
        mails = live_server.smtp.to("maria.nunez@example.com")
        if mails:
            break
        await page.wait_for_timeout(100)
    assert mails, "no email reached the SMTP sink"
    link = mails[-1].link()
    assert link.startswith(f"{live_server.url}/login/")

    await page.goto(link)
    await shoot(page, "03-continue")
    await page.get_by_role("button", name=re.compile("Continuar")).click()
    await page.wait_for_load_state()
    await shoot(page, "04-knowledge-check")
    await page.get_by_label(re.compile("4 dígitos", re.I)).fill("5678")
    await page.get_by_role("button", name=re.compile("Verificar")).click()
    await page.wait_for_url(re.compile(r"/account"))
    await shoot(page, "05-balance")
    body = await page.text_content("main")
    assert "María José Núñez" in body
    assert "Conecta Telecom S.A." in body and "Muebles Aztlán S.A. de C.V." in body
    assert "A-0001-00012345" in body

    pdf_link = page.locator("a[href$='.pdf']").first
    href = await pdf_link.get_attribute("href")
    response = await page.request.get(f"{live_server.url}{href}")
    assert response.status == 200
    assert response.headers["content-type"].startswith("application/pdf")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(await response.body())).pages)
    assert "Núñez" in text and "Factura" in text

    await page.get_by_role("button", name=re.compile("Salir")).first.click()
    await page.wait_for_url(re.compile(r"/login"))
    await shoot(page, "06-signed-out")
    again = await page.goto(f"{live_server.url}/account")
    assert again is not None and "/login" in again.url
    await context.close()
