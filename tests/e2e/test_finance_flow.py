"""Finance in a real browser: a finance user made with `saldo staff create` signs in (TOTP
enrollment), uploads a bank statement, sees what matched and what did not, opens an unmatched
line, assigns it from a suggestion, grows the split form with htmx, reads the day's
reconciliation and downloads the accounting CSV. Screenshots at tablet and desktop widths go to
tests/e2e/artifacts/finance-*.png."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pyotp
import pytest
from playwright.async_api import Locator, Page

from saldo.references import payment_reference
from saldo.services.bank_import import COLUMNS
from saldo.services.ledger import open_invoices
from saldo.tables import Debtor, Payment
from tests.services.bank_support import uid, unique_document
from tests.services.helpers import make_account, make_invoice

from .conftest import ARTIFACTS

pytestmark = pytest.mark.e2e

TABLET = {"width": 820, "height": 1180}
DESKTOP = {"width": 1366, "height": 860}
PASSWORD = "conciliar cada mañana sin apuro"
DAY = dt.date(2041, 4, 14)


async def shoot(page: Page, name: str) -> None:
    await page.evaluate("window.scrollTo(0, 0)")  # the sticky header stays at the top
    for label, size in (("tablet", TABLET), ("desktop", DESKTOP)):
        await page.set_viewport_size(size)
        await page.screenshot(path=str(ARTIFACTS / f"finance-{name}-{label}.png"), full_page=True)
    await page.set_viewport_size(DESKTOP)


def create_finance_user(servers, email: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=servers.database_url, REDIS_URL=servers.redis_url)
    command = [sys.executable, "-m", "saldo", "staff", "create", email, "--role", "finance"]
    return subprocess.run(
        [*command, "--name", "Marta Gómez"],
        input=f"{PASSWORD}\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


async def sign_in_first_time(page: Page, base: str, email: str) -> None:
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


def line(amount: str, reference: str, payer: str = "", document: str = "") -> tuple[str, ...]:
    return (DAY.isoformat(), amount, "ARS", reference, payer, document, uid("TX-"))


async def text(locator: Locator) -> str:
    """What the element shows, with no-break spaces (between amount and currency) as spaces."""
    return (await locator.inner_text()).replace("\xa0", " ")


def statement(path: Path, rows: list[tuple[str, ...]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return path


async def test_finance_uploads_a_statement_assigns_a_line_and_reconciles_the_day(
    db, servers, live_server, browser, tmp_path
):
    email = f"marta.{secrets.token_hex(3)}@saldo.example"
    created = create_finance_user(servers, email)
    assert created.returncode == 0, created.stderr

    known = await make_account(name="Librería Del Centro")
    await make_invoice(known, uid("C-"), 18_500_00, DAY - dt.timedelta(days=20))
    norte = await make_account(name="Distribuidora Norte S.A.")
    document = unique_document()
    await Debtor.update({Debtor.document_number: document}).where(Debtor.id == norte.debtor)
    first_bill = await make_invoice(norte, uid("N-"), 30_000_00, DAY - dt.timedelta(days=40))
    second_bill = await make_invoice(norte, uid("N-"), 12_000_00, DAY - dt.timedelta(days=10))
    file = statement(
        tmp_path / f"extracto-abril-{secrets.token_hex(2)}.csv",
        [
            line("18500.00", f"TRANSF {payment_reference(known.id)}"),
            line("11500.00", "TRANSFERENCIA", "DISTRIBUIDORA NORTE SA", document),
            line("777.70", "DEPOSITO EN EFECTIVO"),
        ],
    )

    context = await browser.new_context(viewport=DESKTOP, locale="es-AR", accept_downloads=True)
    page = await context.new_page()
    await sign_in_first_time(page, live_server.url, email)

    await page.get_by_role("link", name="Finanzas").click()
    await page.wait_for_url(re.compile(r"/backoffice/reconciliation$"))
    await page.get_by_role("link", name="Importar extracto").click()
    await page.wait_for_url(re.compile(r"/backoffice/bank/import$"))
    await page.set_input_files("#statement", str(file))
    await shoot(page, "01-import")
    await page.get_by_role("button", name="Importar y conciliar").click()
    await page.wait_for_url(re.compile(r"/backoffice/bank/imports/\d+$"))

    summary = await text(page.locator("ul.fin-stats"))
    assert re.search(r"3\s+Líneas leídas", summary) and re.search(r"1\s+Conciliadas", summary)
    assert re.search(r"2\s+Sin aplicar", summary)
    assert "Importamos el extracto" in await text(page.locator(".bo-flash"))
    rules = await text(page.locator("#rule-reference-ARS"))
    assert "Referencia de pago" in rules and "18.500,00 ARS" in rules
    lines = page.locator("table.fin-table tbody tr")
    assert await lines.count() == 3
    assert await page.locator("table.fin-table .badge", has_text="Sin aplicar").count() == 2
    assert await page.locator("table.fin-table .badge", has_text="Conciliado").count() == 1
    await shoot(page, "02-result")

    await (
        lines.filter(has_text="DISTRIBUIDORA NORTE SA")
        .get_by_role("link", name=re.compile("Revisar"))
        .click()
    )
    await page.wait_for_url(re.compile(r"/backoffice/payments/unapplied/\d+$"))
    card = page.locator("li.fin-suggestion").filter(has_text="Distribuidora Norte S.A.")
    assert f"Documento del pagador ({document})" in await text(card)
    await shoot(page, "03-line")

    await card.get_by_role("link", name=re.compile("Usar esta cuenta")).click()
    await page.wait_for_url(re.compile(r"account=\d+"))
    await page.locator("label.fin-invoice", has_text=second_bill.number).click()
    await shoot(page, "04-assign")
    await page.get_by_role("button", name=re.compile(r"Asignar 11\.500,00 ARS")).click()
    await page.wait_for_url(re.compile(r"/backoffice/payments/unapplied$"))
    flash = await text(page.locator(".bo-flash"))
    assert f"Asignamos el movimiento a la cuenta {payment_reference(norte.id)}" in flash
    queue = await text(page.locator("#unapplied-queue"))
    assert "DEPOSITO EN EFECTIVO" in queue and "DISTRIBUIDORA NORTE SA" not in queue
    await shoot(page, "05-queue")
    assert await open_invoices(norte.id) == [(first_bill.id, 30_000_00), (second_bill.id, 500_00)]
    assert await Payment.count().where(Payment.account == norte.id) == 1

    # the split form grows by one row in place (htmx), without leaving the page
    await (
        page.locator("#unapplied-queue tr", has_text="DEPOSITO EN EFECTIVO")
        .get_by_role("link", name=re.compile("Revisar"))
        .click()
    )
    await page.wait_for_url(re.compile(r"/backoffice/payments/unapplied/\d+$"))
    url_before = page.url
    assert await page.locator("#split-form fieldset").count() == 2
    await page.get_by_role("button", name="Agregar una parte").click()
    await page.locator("#parts-2-account").wait_for()
    assert await page.locator("#split-form fieldset").count() == 3
    assert page.url == url_before
    await shoot(page, "06-split")

    await page.get_by_role("link", name="Conciliación").click()
    await page.wait_for_url(re.compile(r"/backoffice/reconciliation$"))
    await page.locator("#day").fill(DAY.isoformat())
    await page.get_by_role("button", name="Ver", exact=True).click()
    await page.wait_for_url(re.compile(r"day=2041-04-14"))
    assert await text(page.locator("h1")) == "Conciliación del 14/04/2041"
    auto = await text(page.locator("#incoming-bank_auto-ARS"))
    assert "1" in auto and "18.500,00 ARS" in auto
    by_hand = await text(page.locator("#incoming-bank_manual-ARS"))
    assert "11.500,00 ARS" in by_hand
    assert "30.000,00 ARS" in await text(page.locator("#incoming-total-ARS"))
    pending = await text(page.locator("#bank-unmatched-ARS"))
    assert "777,70 ARS" in pending
    await shoot(page, "07-reconciliation")

    async with page.expect_download() as download_info:
        await page.get_by_role("button", name=re.compile("Descargar CSV")).click()
    download = await download_info.value
    assert download.suggested_filename == "saldo-conciliacion-2041-04-01-2041-04-14.csv"
    rows = list(csv.DictReader(io.StringIO(Path(await download.path()).read_text("utf-8"))))
    assert sorted((r["source"], r["amount"]) for r in rows) == [
        ("bank_auto", "18500.00"),
        ("bank_manual", "11500.00"),
    ]
    await context.close()
