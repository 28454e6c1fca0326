"""The back office's messages pages: the outbox with its reasons and errors, one message as
sent, and previews of any template for any debtor, channel and language."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from saldo.services import outbox
from saldo.tables import Notification
from tests.services.outbox_world import NOW, party
from tests.web import backoffice_fixtures
from tests.web.backoffice_fixtures import inject_session, main, make_staff
from tests.web.html import parse

client = backoffice_fixtures.client
bo_app = backoffice_fixtures.bo_app
app_key = backoffice_fixtures.app_key
fresh_rate_limits = backoffice_fixtures.fresh_rate_limits


@pytest.fixture
async def agent(client, redis, servers, app_key):
    staff = await make_staff("agent", key=app_key)
    await inject_session(client, redis, servers, staff.id)
    return staff


async def message(who, channel="email", **values) -> int:
    notification_id = await outbox.queue(
        debtor_id=who.debtor.id, account_id=who.account.id, channel=channel,
        template=values.pop("template", "reminder_before_due"),
        idempotency_key=f"bo-test:{who.debtor.id}:{channel}:{len(values)}:{values.get('status')}",
        invoice_ids=[i.id for i in who.invoices], now=NOW,
    )  # fmt: skip
    columns = {getattr(Notification, k): v for k, v in values.items()}
    if columns:
        await Notification.update(columns).where(Notification.id == notification_id)
    return notification_id


@pytest.fixture
async def outbox_rows(db):
    who = await party(phone="+5491155559999", whatsapp="+5491155559999")
    ids = {
        "sent": await message(
            who, status="sent", subject="Servicios: su factura vence el 08/11/2026",
            body_text="Hola", body_html="<p style='color:#0b5f6b'>Hola <strong>HTML</strong></p>",
            provider_id="<abc@saldo.example.com>", sent_at=NOW, attempts=1,
            to_address=who.email,
        ),
        "blocked": await message(who, "sms", status="blocked", blocked_reason="opted_out"),
        "deferred": await message(
            who, "whatsapp", status="deferred", blocked_reason="window",
            send_after=NOW + dt.timedelta(hours=9),
        ),
        "failed": await message(
            who, "sms", template="promise_reminder", status="failed", attempts=1,
            last_error="PermanentSendError: HTTP 400: 21610 Attempt to send to unsubscribed",
        ),
    }  # fmt: skip
    return who, ids


def rows_of(response) -> list:
    table = parse(response.text).find("table")
    assert table is not None, response.text[:400]
    return table.find("tbody").find_all("tr")


async def test_the_list_shows_each_message_with_its_status_and_why(client, agent, outbox_rows):
    who, ids = outbox_rows
    response = await client.get("/backoffice/notifications", params={"debtor": str(who.debtor.id)})
    assert response.status_code == 200
    rows = {r.find("a").attrs["href"].rsplit("/", 1)[1]: r.text() for r in rows_of(response)}
    assert set(rows) == {str(i) for i in ids.values()}
    assert (
        "Enviado" in rows[str(ids["sent"])]
        and "Recordatorio antes del vencimiento" in rows[str(ids["sent"])]
    )
    assert "El deudor dio de baja este canal" in rows[str(ids["blocked"])]
    assert "Fuera del horario de envío" in rows[str(ids["deferred"])]
    assert "21610" in rows[str(ids["failed"])] and "Falló" in rows[str(ids["failed"])]
    summary = main(response).find("p", **{"class": "bo-muted bo-messages__summary"}).text()
    assert "4 mensajes" in summary and "Bloqueado: 1" in summary
    nav = parse(response.text).find("nav", **{"class": "bo-nav"})
    current = nav.find("a", **{"aria-current": "page"})
    assert current.attrs["href"] == "/backoffice/notifications"


async def test_filters_narrow_the_list_and_htmx_gets_only_the_results(client, agent, outbox_rows):
    who, ids = outbox_rows
    params = {"debtor": str(who.debtor.id), "status": "failed"}
    response = await client.get(
        "/backoffice/notifications", params=params, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200 and "<html" not in response.text
    assert parse(response.text).by_id("notifications") is not None
    assert [r.find("a").attrs["href"] for r in rows_of(response)] == [
        f"/backoffice/notifications/{ids['failed']}"
    ]
    by_channel = await client.get(
        "/backoffice/notifications", params={"debtor": str(who.debtor.id), "channel": "whatsapp"}
    )
    assert len(rows_of(by_channel)) == 1


async def test_a_bad_date_is_explained_next_to_its_field(client, agent):
    response = await client.get("/backoffice/notifications", params={"from": "ayer"})
    assert response.status_code == 200
    error = parse(response.text).by_id("from-error")
    assert error is not None and "2026-03-31" in error.text()


async def test_one_message_shows_its_content_in_a_sandboxed_frame(client, agent, outbox_rows):
    _, ids = outbox_rows
    response = await client.get(f"/backoffice/notifications/{ids['sent']}")
    assert response.status_code == 200
    page = main(response)
    assert "Servicios: su factura vence el 08/11/2026" in page.text()
    assert "<abc@saldo.example.com>" in page.text()
    frame = page.find("iframe")
    assert frame.attrs["src"] == f"/backoffice/notifications/{ids['sent']}/body"
    assert "sandbox" in frame.attrs

    body = await client.get(frame.attrs["src"])
    assert body.status_code == 200 and "<strong>HTML</strong>" in body.text
    policy = body.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "sandbox" in policy and "script" not in policy

    failed = await client.get(f"/backoffice/notifications/{ids['failed']}")
    assert "21610 Attempt to send to unsubscribed" in main(failed).text()
    missing = await client.get(f"/backoffice/notifications/{2**31 - 9}")
    assert missing.status_code == 404


async def test_a_preview_renders_any_template_for_a_debtor_and_channel(client, agent, db):
    who = await party(phone="+5491155558888", whatsapp="+5491155558888", agency="Cobranzas SRL")
    base = {"template": "reminder_before_due", "debtor": str(who.debtor.id)}

    email = await client.get(
        "/backoffice/notifications/preview", params={**base, "channel": "email"}
    )
    assert email.status_code == 200
    page = main(email)
    assert f"{who.creditor.name}: su factura vence el 08/11/2026" in page.text()
    frame = page.find("iframe")
    body = await client.get(frame.attrs["src"])
    assert body.status_code == 200 and "$\xa01.250,00" in body.text and "Cobranzas SRL" in body.text

    sms = await client.get("/backoffice/notifications/preview", params={**base, "channel": "sms"})
    text = main(sms).text()
    assert "Responda BAJA" in text
    assert 1 <= int(re.search(r"(\d+) segmentos?", text).group(1)) <= 2

    wa = await client.get("/backoffice/notifications/preview",
                          params={**base, "channel": "whatsapp", "language": "en"})  # fmt: skip
    text = main(wa).text()
    assert "saldo_reminder_before_due" in text and "ARS1,250.00" in text


async def test_a_preview_without_data_of_that_kind_uses_an_example(client, agent, db):
    who = await party()
    response = await client.get(
        "/backoffice/notifications/preview",
        params={"template": "plan_countered", "debtor": str(who.debtor.id), "channel": "email"},
    )
    assert response.status_code == 200
    assert "Datos de ejemplo" in main(response).text()


PREVIEW = {"template": "reminder_before_due", "debtor": "1", "channel": "email"}


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({**PREVIEW, "debtor": "abc"}, "debtor", "número de deudor"),
        ({**PREVIEW, "debtor": "2147483000"}, "debtor", "No hay un deudor"),
        ({**PREVIEW, "template": "poema"}, "template", "Elija un tipo"),
        ({**PREVIEW, "channel": "fax"}, "channel", "Elija un canal"),
    ],
)
async def test_a_preview_form_error_is_shown_next_to_its_field(
    client, agent, params, field, message
):
    response = await client.get("/backoffice/notifications/preview", params=params)
    assert response.status_code == 422
    error = parse(response.text).by_id(f"{field}-error")
    assert error is not None and message in error.text()
    body = await client.get("/backoffice/notifications/preview/body", params=params)
    assert body.status_code == 404


async def test_the_pages_speak_english(client, agent, outbox_rows):
    who, _ = outbox_rows
    response = await client.get(
        "/backoffice/notifications", params={"debtor": str(who.debtor.id), "lang": "en"}
    )
    text = main(response).text()
    assert "Messages" in text and "The debtor turned this channel off" in text
