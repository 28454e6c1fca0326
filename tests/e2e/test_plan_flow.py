"""A payment plan from proposal to first payment, in two real browsers, with a real arq worker:

- Lucía proposes a plan outside the policy at /plans (18 monthly installments; the policy
  allows 12) and sees it go to review;
- a supervisor, created like `saldo staff create` does and signed in with TOTP, finds it in
  the back office's queue, sees the rules it breaks and counter-offers 6 installments with a
  down payment, watching the htmx preview;
- Lucía accepts the counter-offer, pays the down payment through demo mode's provider, sees it
  credited on /plans and downloads the agreement PDF (its text read with pypdf).

An admin then edits a plan policy for a new segment: a wrong value comes back next to its
field, the right one is saved and audited.

Screenshots go to tests/e2e/artifacts/plan-*.png (phone and desktop for the debtor, tablet and
desktop for staff).
"""

from __future__ import annotations

import datetime as dt
import io
import re
import secrets
from pathlib import Path

import pyotp
import pytest
from playwright.async_api import Page, expect
from pypdf import PdfReader

from saldo.services.demo import seed_demo
from saldo.services.staff import create_staff
from saldo.tables import AuditEvent, Creditor, Invoice, PaymentPlan, PlanPolicy

from .conftest import ARTIFACTS

pytestmark = pytest.mark.e2e

PHONE = {"width": 390, "height": 844}
TABLET = {"width": 820, "height": 1180}
DESKTOP = {"width": 1366, "height": 860}
EMAIL = "lucia.fernandez@example.com"  # Conecta Telecom, DNI 33987654
INVOICE = "A-0001-00012503"  # 1 × 19.500,00 + 21 % = 23.595,00, due in ten days
PASSWORD = "planes en cuotas y sin apuro"


async def shoot(page: Page, name: str, sizes: tuple[str, ...]) -> None:
    widths = {"phone": PHONE, "tablet": TABLET, "desktop": DESKTOP}
    for label in sizes:
        await page.set_viewport_size(widths[label])
        await page.screenshot(path=str(ARTIFACTS / f"plan-{name}-{label}.png"), full_page=True)
    await page.set_viewport_size(widths[sizes[0]])


async def debtor_signs_in(page: Page, live_server) -> None:
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
    await page.get_by_label(re.compile("4 dígitos", re.I)).fill("7654")
    await page.get_by_role("button", name=re.compile("Verificar")).click()
    await page.wait_for_url(re.compile(r"/account"))


async def staff_signs_in(page: Page, live_server, email: str) -> None:
    """First sign-in: password, TOTP enrollment with the secret read off the page, codes."""
    await page.goto(f"{live_server.url}/backoffice")
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


async def test_a_plan_outside_policy_is_countered_accepted_paid_and_documented(
    db, live_server, live_worker, browser
):
    await seed_demo(only_if_empty=False)
    invoice = await Invoice.objects().get(Invoice.number == INVOICE)
    assert invoice is not None and invoice.total == 2_359_500
    account_id = invoice.account
    email = f"supervisora.{secrets.token_hex(3)}@saldo.example"
    await create_staff(email, "supervisor", PASSWORD, name="Valeria Supervisora")
    live_worker()

    # --- Lucía proposes 18 monthly installments: the policy allows 12
    debtor_context = await browser.new_context(
        viewport=PHONE, locale="es-AR", accept_downloads=True
    )
    debtor = await debtor_context.new_page()
    await debtor_signs_in(debtor, live_server)
    await debtor.goto(f"{live_server.url}/plans")
    card = debtor.locator(f"#plan-{account_id}")
    await card.get_by_label("Cantidad de cuotas").fill("18")
    await card.get_by_label("Cantidad de cuotas").press("Tab")  # "change": htmx previews
    preview = card.locator(f"#plan-preview-{account_id}")
    await expect(preview).to_have_attribute("data-verdict", "review")
    await expect(preview.locator('[data-code="too_many"]')).to_contain_text("hasta 12 cuotas")
    await card.get_by_label(re.compile("Mensaje para el equipo")).fill(
        "Cobro a fin de mes; en 18 cuotas llego cómoda."
    )
    await shoot(debtor, "01-proposal", ("phone", "desktop"))
    await card.get_by_role("button", name="Enviar propuesta").click()
    await debtor.wait_for_url(re.compile(r"/plans\?result=proposed"))
    await expect(debtor.locator("#plans-result")).to_contain_text("Nuestro equipo la revisa")
    await expect(debtor.locator(f"#plan-{account_id}-review")).to_be_visible()
    proposal = await (
        PaymentPlan.objects()
        .where((PaymentPlan.account == account_id) & (PaymentPlan.status == "proposed"))
        .first()
    )
    assert proposal is not None and proposal.installments_count == 18

    # --- the supervisor finds it in the queue and counter-offers within the policy
    staff_context = await browser.new_context(viewport=DESKTOP, locale="es-AR")
    staff = await staff_context.new_page()
    await staff_signs_in(staff, live_server, email)
    nav = staff.get_by_role("navigation", name="Secciones del back office")
    await nav.get_by_role("link", name="Planes de pago").click()
    await staff.wait_for_url(re.compile(r"/backoffice/plans$"))
    queue = staff.locator("#plan-queue")
    await queue.get_by_label("Buscar deudor, acreedor o número de cuenta").fill("Lucía Fernández")
    await queue.get_by_role("button", name="Buscar").click()
    row = staff.locator(f"#queue-plan-{proposal.id}")
    await expect(row).to_contain_text("18 cuotas")
    await expect(row.locator('[data-code="too_many"]')).to_be_visible()
    await shoot(staff, "02-queue", ("desktop", "tablet"))
    await row.get_by_role("link", name=re.compile("Revisar")).click()  # desktop: the button
    await staff.wait_for_url(re.compile(rf"/backoffice/plans/{proposal.id}$"))
    await expect(staff.locator("#debtor-message")).to_have_text(
        "Cobro a fin de mes; en 18 cuotas llego cómoda."
    )
    await expect(staff.locator("#plan-rules [data-code='too_many']")).to_be_visible()
    await expect(staff.locator("#account-history")).to_contain_text("Propuso un plan de pagos")

    first = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=14)).isoformat()
    counter = staff.locator("#counter-form")
    await counter.get_by_label(re.compile("^Anticipo")).fill("5.000,00")
    await counter.get_by_label("Cantidad de cuotas").fill("6")
    await counter.get_by_label("Frecuencia").select_option("monthly")
    await counter.get_by_label("Primera cuota").fill(first)
    await counter.get_by_label("Primera cuota").press("Tab")
    await counter.get_by_label(re.compile("Nota para el deudor")).fill(
        "Le proponemos 6 cuotas mensuales con un anticipo de $ 5.000."
    )
    counter_preview = staff.locator("#counter-preview")
    await expect(counter_preview).to_have_attribute("data-verdict", "within")
    await expect(counter_preview.locator("tr.bop-sched__row")).to_have_count(7)
    await shoot(staff, "03-counter-offer", ("desktop", "tablet"))
    await staff.get_by_role("button", name="Enviar contraoferta").click()
    await staff.wait_for_url(re.compile(r"/backoffice/plans/\d+\?done=countered"))
    await expect(staff.locator("#plan-done")).to_contain_text("Envió la contraoferta")
    await expect(staff.locator("#plan-waiting")).to_be_visible()
    await shoot(staff, "04-offer-sent", ("desktop", "tablet"))

    # --- Lucía accepts it
    await debtor.goto(f"{live_server.url}/plans")
    offer = debtor.locator(f"#plan-{account_id}-offer")
    await expect(offer).to_contain_text("6, mensual")
    await expect(offer).to_contain_text("Le proponemos 6 cuotas mensuales")
    await shoot(debtor, "05-offer", ("phone", "desktop"))
    await offer.get_by_role("button", name="Aceptar este plan").click()
    await debtor.wait_for_url(re.compile(r"/plans\?result=accepted"))
    active = debtor.locator(f"#plan-{account_id}-active")
    await expect(active.locator('tr[data-number="0"]')).to_have_attribute("data-status", "pending")
    await shoot(debtor, "06-active", ("phone", "desktop"))

    # --- and pays the down payment through the demo provider
    await active.get_by_role("link", name="Pagar cuota").first.click()
    await debtor.wait_for_url(re.compile(r"/pay\?installment=\d+$"))
    installment = debtor.locator("#pay-installment")
    await expect(installment.locator("h2")).to_have_text("Anticipo de su plan de pagos")
    await expect(installment.locator(".pay-acct__balance")).to_have_text("$\u00a05.000,00")
    await shoot(debtor, "07-pay-installment", ("phone", "desktop"))
    await installment.get_by_role("button", name=re.compile("Pagar la cuota")).click()
    await debtor.wait_for_url(re.compile(r"/pay/simulated/[0-9a-f-]{36}$"))
    await expect(debtor.locator(".pay-sim__what")).to_have_text("Anticipo de su plan de pagos")
    await debtor.get_by_role("button", name="Aprobar el pago").click()
    status = debtor.locator("#pay-status")
    await expect(status).to_have_attribute("data-state", "approved", timeout=30_000)
    await expect(status.locator("h2")).to_have_text("¡Pago acreditado!")
    await shoot(debtor, "08-paid", ("phone", "desktop"))

    await debtor.goto(f"{live_server.url}/plans")
    active = debtor.locator(f"#plan-{account_id}-active")
    await expect(active.locator('tr[data-number="0"]')).to_have_attribute("data-status", "paid")
    await expect(active.locator('[data-part="paid"]')).to_have_text("$\u00a05.000,00")
    await expect(active.locator('[data-part="remaining"]')).to_have_text("$\u00a018.595,00")
    await shoot(debtor, "09-credited", ("phone", "desktop"))

    # --- the agreement, as a PDF
    async with debtor.expect_download() as download:
        await active.get_by_role("link", name=re.compile("Acuerdo de pago")).click()
    saved = await (await download.value).path()
    assert saved is not None
    text = "\n".join(
        p.extract_text() for p in PdfReader(io.BytesIO(Path(saved).read_bytes())).pages
    ).replace("\xa0", " ")
    assert "Lucía Fernández" in text and "33987654" in text
    assert "23.595,00" in text and "5.000,00" in text and INVOICE in text

    # the supervisor sees the plan active, the payment counted and the same agreement
    await staff.goto(f"{live_server.url}/backoffice/plans/{proposal.id}")
    await staff.get_by_role("link", name=re.compile("Ver la contraoferta")).click()
    await expect(staff.locator("#plan-schedule tr[data-number='0']")).to_have_attribute(
        "data-status", "paid"
    )
    await expect(staff.locator("#account-history")).to_contain_text(
        "Aceptó la contraoferta de plan de pagos."
    )
    await shoot(staff, "10-active-plan", ("desktop", "tablet"))
    await staff_context.close()
    await debtor_context.close()


async def test_an_admin_edits_a_plan_policy_for_a_new_segment(db, live_server, browser):
    await seed_demo(only_if_empty=False)
    creditor = await Creditor.objects().get(Creditor.name == "Muebles Aztlán S.A. de C.V.")
    assert creditor is not None
    email = f"admin.{secrets.token_hex(3)}@saldo.example"
    await create_staff(email, "admin", PASSWORD, name="Andrés Administrador")
    segment = f"pyme-{secrets.token_hex(3)}"  # no account is in it: nothing else changes

    context = await browser.new_context(viewport=DESKTOP, locale="es-MX")
    page = await context.new_page()
    await staff_signs_in(page, live_server, email)
    nav = page.get_by_role("navigation", name="Secciones del back office")
    await nav.get_by_role("link", name="Políticas de planes").click()
    await page.wait_for_url(re.compile(r"/backoffice/policies/plans$"))
    await page.get_by_label("Acreedor", exact=True).select_option(str(creditor.id))
    await page.get_by_role("button", name="Ver políticas").click()
    await expect(page.locator("#segment-standard")).to_have_attribute("data-source", "defaults")

    form = page.locator("#policy-form")
    await form.get_by_label("Segmento", exact=True).fill(segment)
    await form.get_by_label("Máximo de cuotas").fill("0")
    await form.get_by_label("Anticipo mínimo (%)").fill("15")
    await form.get_by_label("Semanal").uncheck()
    await form.get_by_role("button", name="Guardar la política").click()
    await expect(page.locator("#policy-max_installments-error")).to_have_text(
        "Escriba un número entero entre 1 y 60."
    )
    await expect(page.locator("#policy-max_installments")).to_have_attribute("aria-invalid", "true")
    await expect(page.locator("#policy-min_down_payment")).to_have_value("15")  # as typed
    await shoot(page, "11-policy-error", ("desktop", "tablet"))
    assert not await PlanPolicy.exists().where(PlanPolicy.segment == segment)

    await page.locator("#policy-max_installments").fill("8")
    await page.get_by_role("button", name="Guardar la política").click()
    await expect(page.locator("#policy-saved")).to_contain_text(segment)
    row = page.locator(f"#segment-{segment}")
    await expect(row).to_have_attribute("data-source", "own")
    await expect(row).to_contain_text("hasta 8")
    await expect(row).to_contain_text("Cada dos semanas, Mensual")
    await shoot(page, "12-policy-saved", ("desktop", "tablet"))
    saved = await PlanPolicy.objects().get(
        (PlanPolicy.creditor == creditor.id) & (PlanPolicy.segment == segment)
    )
    assert saved is not None
    assert (saved.max_installments, saved.min_down_payment_bp) == (8, 1500)
    assert await AuditEvent.exists().where(
        (AuditEvent.action == "plan_policy.saved") & (AuditEvent.object_id == str(saved.id))
    )
    await context.close()
