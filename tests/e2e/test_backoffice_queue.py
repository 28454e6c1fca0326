"""An agent's first day in a real browser: created with `saldo staff create`, first sign-in with
TOTP enrollment (the secret read off the page), the work queue, one account opened from it, a
call with a promise to pay recorded in a few clicks (htmx: no reload) and seen on the account's
timeline; then a second sign-in that replays the code already used is refused.
Screenshots at tablet and desktop widths go to tests/e2e/artifacts/queue-*.png."""

from __future__ import annotations

import datetime as dt
import os
import re
import secrets
import subprocess
import sys

import pyotp
import pytest
from playwright.async_api import Page

from saldo.tables import Interaction, PromiseToPay
from tests.services.queue_world import NAMES, ORDER, build_world

from .conftest import ARTIFACTS

pytestmark = pytest.mark.e2e

TABLET = {"width": 820, "height": 1180}
DESKTOP = {"width": 1366, "height": 900}
PASSWORD = "caballo correcto batería grapa"


async def shoot(page: Page, name: str) -> None:
    await page.evaluate("window.scrollTo(0, 0)")  # the sticky header stays at the top
    for label, size in (("tablet", TABLET), ("desktop", DESKTOP)):
        await page.set_viewport_size(size)
        await page.screenshot(path=str(ARTIFACTS / f"queue-{name}-{label}.png"), full_page=True)
    await page.set_viewport_size(DESKTOP)


def staff_create(servers, email: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=servers.database_url, REDIS_URL=servers.redis_url)
    return subprocess.run(
        [sys.executable, "-m", "saldo", "staff", "create", email, "--role", "agent",
         "--name", "Camila Ibáñez"],
        input=f"{PASSWORD}\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )  # fmt: skip


async def password_step(page: Page, base: str, email: str) -> None:
    await page.goto(f"{base}/backoffice")
    assert "/backoffice/login" in page.url
    await page.get_by_label("Correo electrónico").fill(email)
    await page.get_by_label("Contraseña").fill(PASSWORD)
    await page.get_by_role("button", name=re.compile("Continuar")).click()
    await page.wait_for_load_state()


async def test_an_agent_enrolls_works_the_queue_and_records_a_promise(
    db, servers, live_server, browser
):
    email = f"camila.{secrets.token_hex(3)}@saldo.example"
    created = staff_create(servers, email)
    assert created.returncode == 0, created.stderr
    world = await build_world()
    creditor_label = (await _creditor_name(world.creditor_id)).strip()

    context = await browser.new_context(viewport=DESKTOP, locale="es-AR")
    page = await context.new_page()
    await password_step(page, live_server.url, email)
    await page.wait_for_url(re.compile(r"/backoffice/login/enroll"))
    secret = (await page.locator("#totp-secret").inner_text()).replace(" ", "")
    used_code = pyotp.TOTP(secret).now()
    await page.get_by_label("Código de 6 dígitos").fill(used_code)
    await page.get_by_role("button", name=re.compile("Confirmar y continuar")).click()
    await page.wait_for_url(re.compile(r"/backoffice/login/recovery-codes"))
    await page.get_by_role("button", name=re.compile("Ya los guardé")).click()
    await page.wait_for_url(re.compile(r"/backoffice$"))

    # the queue, narrowed to this portfolio with the creditor filter (htmx swaps the results)
    assert await page.locator("h1").inner_text() == "Cuentas para trabajar hoy"
    await page.get_by_label("Acreedor").select_option(label=creditor_label)
    await page.wait_for_url(re.compile(rf"creditor={world.creditor_id}"))
    rows = page.locator("#queue tbody tr")
    await rows.nth(len(ORDER) - 1).wait_for()
    assert await rows.count() == len(ORDER)
    names = [await rows.nth(i).locator("a.q-debtor").inner_text() for i in range(len(ORDER))]
    assert names == [NAMES[k] for k in ORDER]
    assert "Promesa incumplida" in await rows.first.inner_text()
    await shoot(page, "01-queue")

    # open the callback account and record a call where the debtor promises to pay
    await page.get_by_role("link", name=NAMES["callback"]).click()
    await page.wait_for_url(re.compile(rf"/backoffice/accounts/{world.accounts['callback']}$"))
    assert await page.locator("h1").inner_text() == NAMES["callback"]
    await shoot(page, "02-account")
    account_url = page.url
    promised = world.today + dt.timedelta(days=3)
    work = page.locator("#work")
    await work.get_by_role("radio", name="Promete pagar").check()
    note = "Atendió la titular; paga el jueves por transferencia"
    await work.get_by_role("textbox", name="Nota").fill(note)
    await work.get_by_label("Importe (ARS)").fill("5000,00")
    await work.get_by_label("Fecha", exact=True).fill(promised.isoformat())
    await work.get_by_role("button", name=re.compile("Registrar gestión")).click()
    await page.locator("#work .work__notice").wait_for()
    assert page.url == account_url  # no reload: htmx swapped the work area
    assert "Gestión registrada" in await page.locator("#work .work__notice").inner_text()
    timeline = page.locator("#timeline li")
    top = [await timeline.nth(i).locator(".tl__title").inner_text() for i in range(2)]
    assert any("Llamada · Promete pagar" in t for t in top), top
    assert any("Promesa de pago registrada" in t for t in top), top
    assert "paga el jueves" in await page.locator("#timeline").inner_text()
    await shoot(page, "03-promise-on-timeline")

    promise = (
        await PromiseToPay.objects()
        .where(PromiseToPay.account == world.accounts["callback"])
        .first()
    )
    assert promise is not None
    assert (promise.amount, promise.promised_date, promise.source) == (500_000, promised, "staff")
    assert (
        await Interaction.count().where(
            Interaction.account == world.accounts["callback"], Interaction.kind == "call"
        )
        == 1
    )
    # after a reload the promise is still on the timeline and in the case panel
    await page.reload()
    assert "Promesa vigente" in await page.locator("#caso").inner_text()
    assert "Promesa de pago registrada" in await page.locator("#timeline").inner_text()

    # a second sign-in replaying the code used at enrollment is refused
    other = await browser.new_context(viewport=DESKTOP, locale="es-AR")
    second = await other.new_page()
    await password_step(second, live_server.url, email)
    await second.wait_for_url(re.compile(r"/backoffice/login/code"))
    await second.get_by_role("textbox", name="Código").fill(used_code)
    await second.get_by_role("button", name=re.compile("Verificar e ingresar")).click()
    await second.wait_for_load_state()
    assert "/backoffice/login/code" in second.url
    assert "ya se usó" in await second.locator("main").inner_text()
    await other.close()
    await context.close()


async def _creditor_name(creditor_id: int) -> str:
    from saldo.tables import Creditor

    row = await Creditor.select(Creditor.name).where(Creditor.id == creditor_id).first()
    assert row is not None
    return str(row["name"])
