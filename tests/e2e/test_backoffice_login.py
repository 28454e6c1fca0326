"""Staff sign-in in a real browser: a user made with `saldo staff create`, first sign-in with
TOTP enrollment (the secret read off the page, the code computed like an authenticator app
would), recovery codes, the home page; then a second sign-in that replays the same code.
Screenshots at tablet and desktop widths go to tests/e2e/artifacts/backoffice-*.png."""

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

from saldo.tables import StaffUser, Task
from tests.services.helpers import make_account

from .conftest import ARTIFACTS

pytestmark = pytest.mark.e2e

TABLET = {"width": 820, "height": 1180}
DESKTOP = {"width": 1366, "height": 860}
PASSWORD = "correcto caballo batería grapa"


async def shoot(page: Page, name: str) -> None:
    for label, size in (("tablet", TABLET), ("desktop", DESKTOP)):
        await page.set_viewport_size(size)
        await page.screenshot(
            path=str(ARTIFACTS / f"backoffice-{name}-{label}.png"), full_page=True
        )
    await page.set_viewport_size(DESKTOP)


def saldo_staff_create(servers, email: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATABASE_URL=servers.database_url, REDIS_URL=servers.redis_url)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "saldo",
            "staff",
            "create",
            email,
            "--role",
            "admin",
            "--name",
            "Lucía Fernández",
        ],
        input=f"{PASSWORD}\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


async def password_step(page: Page, base: str, email: str) -> None:
    await page.goto(f"{base}/backoffice")
    assert "/backoffice/login" in page.url
    await page.get_by_label("Correo electrónico").fill(email)
    await page.get_by_label("Contraseña").fill(PASSWORD)
    await page.get_by_role("button", name=re.compile("Continuar")).click()
    await page.wait_for_load_state()


async def test_staff_created_by_cli_enrolls_signs_in_and_a_replayed_code_fails(
    db, servers, live_server, browser
):
    email = f"lucia.{secrets.token_hex(3)}@saldo.example"
    created = saldo_staff_create(servers, email)
    assert created.returncode == 0, created.stderr
    assert "enrollment happens at first sign-in" in created.stdout
    staff = await StaffUser.objects().get(StaffUser.email == email)
    account = await make_account(name="Ferretería El Tornillo S.R.L.")
    today = dt.date.today()
    for kind, title, due in (
        ("call", "Llamar por la factura A-0001-00012345", today - dt.timedelta(days=2)),
        ("plan_review", "Revisar plan propuesto en 6 cuotas", today + dt.timedelta(days=1)),
        ("broken_promise", "Promesa de pago incumplida", None),
    ):
        await Task(account=account.id, kind=kind, title=title, due_on=due, assignee=staff.id).save()

    context = await browser.new_context(viewport=DESKTOP, locale="es-AR")
    page = await context.new_page()
    await page.goto(f"{live_server.url}/backoffice/login")
    await shoot(page, "01-login")
    await password_step(page, live_server.url, email)
    await page.wait_for_url(re.compile(r"/backoffice/login/enroll"))
    await shoot(page, "02-enroll")

    secret = (await page.locator("#totp-secret").inner_text()).replace(" ", "")
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    assert await page.locator("svg.qr").count() == 1
    used_code = pyotp.TOTP(secret).now()
    await page.get_by_label("Código de 6 dígitos").fill(used_code)
    await page.get_by_role("button", name=re.compile("Confirmar y continuar")).click()
    await page.wait_for_url(re.compile(r"/backoffice/login/recovery-codes"))
    await shoot(page, "03-recovery-codes")
    assert await page.locator("ol.bo-codes code").count() == 10

    await page.get_by_role("button", name=re.compile("Ya los guardé")).click()
    await page.wait_for_url(re.compile(r"/backoffice$"))
    assert await page.locator("h1").inner_text() == "Hola, Lucía Fernández"
    assert "Administrador" in await page.locator(".bo-user").inner_text()
    tasks = await page.locator("main table").inner_text()
    assert "Revisar plan propuesto en 6 cuotas" in tasks and "Ferretería El Tornillo" in tasks
    await shoot(page, "04-home")

    await page.get_by_role("link", name="Usuarios").click()
    await page.wait_for_url(re.compile(r"/backoffice/users$"))
    assert email in await page.locator("main").inner_text()
    await shoot(page, "05-users")
    await page.get_by_role("link", name="Auditoría").click()
    await page.wait_for_url(re.compile(r"/backoffice/audit"))
    assert "staff.totp_enrolled" in await page.locator("main").inner_text()
    await shoot(page, "06-audit")

    # Another browser, the same password and the very code used a moment ago: refused.
    other = await browser.new_context(viewport=DESKTOP, locale="es-AR")
    second = await other.new_page()
    await password_step(second, live_server.url, email)
    await second.wait_for_url(re.compile(r"/backoffice/login/code"))
    await second.get_by_role("textbox", name="Código").fill(used_code)
    await second.get_by_role("button", name=re.compile("Verificar e ingresar")).click()
    await second.wait_for_load_state()
    assert "/backoffice/login/code" in second.url
    assert "ya se usó" in await second.locator("main").inner_text()
    await shoot(second, "07-replayed-code")
    response = await second.goto(f"{live_server.url}/backoffice")
    assert response is not None and "/backoffice/login" in response.url

    await page.get_by_role("button", name=re.compile("Salir")).click()
    await page.wait_for_url(re.compile(r"/backoffice/login"))
    assert "Cerró su sesión" in await page.locator("main").inner_text()
    await shoot(page, "08-signed-out")
    await other.close()
    await context.close()
