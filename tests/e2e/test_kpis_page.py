"""The KPI dashboard in a real browser: a supervisor made with `saldo staff create` signs in
(TOTP enrollment), opens "Indicadores" (its navigation item marked current), narrows it to one
creditor (htmx swaps the board), reads a KPI's data table, switches to weeks, and downloads the
CSV. Screenshots at tablet and desktop widths go to tests/e2e/artifacts/kpis-*.png."""

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
from playwright.async_api import Page

from saldo.services.kpis_view import CSV_COLUMNS
from tests.services.kpi_world import build_history

from .conftest import ARTIFACTS

pytestmark = pytest.mark.e2e

TABLET = {"width": 820, "height": 1180}
DESKTOP = {"width": 1440, "height": 900}
PASSWORD = "medir lo que importa cada semana"


async def shoot(page: Page, name: str) -> None:
    await page.evaluate("window.scrollTo(0, 0)")
    for label, size in (("tablet", TABLET), ("desktop", DESKTOP)):
        await page.set_viewport_size(size)
        await page.screenshot(path=str(ARTIFACTS / f"kpis-{name}-{label}.png"), full_page=True)
    await page.set_viewport_size(DESKTOP)


def create_supervisor(servers, email: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=servers.database_url, REDIS_URL=servers.redis_url)
    command = [sys.executable, "-m", "saldo", "staff", "create", email, "--role", "supervisor"]
    return subprocess.run(
        [*command, "--name", "Inés Supervisora"],
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


async def test_supervisor_reads_the_kpis_of_a_creditor_and_downloads_them(
    db, servers, live_server, browser
):
    email = f"ines.{secrets.token_hex(3)}@saldo.example"
    created = create_supervisor(servers, email)
    assert created.returncode == 0, created.stderr
    today = dt.datetime.now(dt.UTC).date()
    world = await build_history(today, name=f"Distribuidora Pampa S.A. ({secrets.token_hex(2)})")

    context = await browser.new_context(viewport=DESKTOP, locale="es-AR", accept_downloads=True)
    page = await context.new_page()
    await sign_in_first_time(page, live_server.url, email)
    await page.goto(f"{live_server.url}/backoffice/kpis")
    assert await page.locator("h1").inner_text() == "Indicadores"
    nav = page.locator("nav.bo-nav").get_by_role("link", name="Indicadores")
    assert await nav.get_attribute("aria-current") == "page"

    await page.get_by_label("Acreedor").select_option(label=world.creditor_name)
    await page.get_by_role("button", name="Aplicar").click()
    await page.wait_for_url(re.compile(rf"creditor={world.creditor_id}"))
    summary = page.locator(".kpi-summary__text")
    assert world.creditor_name in await summary.inner_text()
    assert "12 meses" in await summary.inner_text()  # the last twelve months by default

    # every KPI: a tile with a value, a chart that is an image with a name, a definition
    assert await page.locator(".kpi-tile").count() == 10
    assert await page.locator("section.kpi-card svg[role=img]").count() == 10
    assert await page.locator(".kpi-def__text").count() == 10
    dso = await page.locator("a[href='#kpi-dso'] .kpi-tile__value").inner_text()
    assert re.fullmatch(r"[\d.]+,\d días", dso), dso
    aging = page.locator("#kpi-aging")
    assert await aging.locator("g.chart__bar-group").count() >= 12
    await shoot(page, "01-dashboard")

    await aging.get_by_text("Ver los datos por período").click()
    table = aging.locator("details table")
    await table.wait_for()
    assert await table.locator("tbody tr").count() >= 12
    await page.locator("#kpi-aging").scroll_into_view_if_needed()
    await page.screenshot(path=str(ARTIFACTS / "kpis-02-aging-data-desktop.png"))

    await page.get_by_label("Agrupar por").select_option("week")
    await page.get_by_label("Desde").fill((today - dt.timedelta(days=70)).isoformat())
    await page.get_by_role("button", name="Aplicar").click()
    await page.wait_for_url(re.compile(r"by=week"))
    assert "semanas" in await page.locator(".kpi-summary__text").inner_text()
    await shoot(page, "03-weeks")

    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Descargar CSV").click()
    download = await download_info.value
    assert download.suggested_filename.startswith(f"saldo-kpis-{world.creditor_id}-ARS-")
    rows = list(csv.reader(io.StringIO(Path(await download.path()).read_text("utf-8"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    periods = {r[2] for r in rows[1:]}
    assert "total" in periods and any(re.fullmatch(r"\d{4}-W\d{2}", p) for p in periods)

    await page.goto(f"{live_server.url}/backoffice/kpis?creditor={world.creditor_id}&lang=en")
    assert await page.locator("h1").inner_text() == "KPIs"
    assert await page.locator("#kpi-cei h2").inner_text() == "Collection effectiveness index (CEI)"
    await shoot(page, "04-english")
    await context.close()
