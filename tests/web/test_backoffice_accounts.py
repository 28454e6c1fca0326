"""The account 360° page and the work done on it, as a browser (with and without htmx) sees
them; the dossier download; account search."""

from __future__ import annotations

import datetime as dt

from saldo.tables import Account, Interaction, PromiseToPay
from tests.services.queue_world import build_rich_account
from tests.web import backoffice_fixtures
from tests.web.backoffice_fixtures import csrf_token, inject_session, main, make_staff
from tests.web.html import parse

client = backoffice_fixtures.client
bo_app = backoffice_fixtures.bo_app
app_key = backoffice_fixtures.app_key
fresh_rate_limits = backoffice_fixtures.fresh_rate_limits

HTMX = {"HX-Request": "true"}


async def _signed_in(client, redis, servers, app_key, role="agent"):
    staff = await make_staff(role, key=app_key, name=f"Persona {role}")
    await inject_session(client, redis, servers, staff.id)
    return staff


def _timeline_titles(node) -> list[str]:
    return [li.find("p").text() for li in node.by_id("timeline").find_all("li")]


async def test_the_360_page_shows_the_case_the_money_messages_and_the_timeline(
    client, redis, servers, app_key
):
    rich = await build_rich_account()
    await _signed_in(client, redis, servers, app_key)
    response = await client.get(f"/backoffice/accounts/{rich.account_id}")
    assert response.status_code == 200
    page = main(response)
    assert page.find("h1").text() == "Ñandú Ibáñez"
    assert f"DNI {rich.document}" in page.find("p", **{"class": "acc-head__contact"}).text()
    tabs = [a.attrs["href"] for a in page.find("nav", **{"class": "acc-tabs"}).find_all("a")]
    assert tabs == [
        "#gestion", "#caso", "#facturas", "#movimientos", "#compromisos", "#reclamos",
        "#mensajes", "#deudor",
    ]  # fmt: skip
    for section in tabs:
        assert page.by_id(section[1:]) is not None, section
    invoices = page.by_id("facturas").find("tbody").find_all("tr")
    assert [r.find("td").text() for r in invoices] == ["A-0001-00000042", "A-0001-00000077"]
    messages = page.by_id("mensajes").text()
    assert "Bloqueado" in messages and "El deudor no acepta ese canal" in messages
    assert "Su factura A-0001-00000042 venció" in messages
    debtor = page.by_id("deudor").text()
    assert "no acepta" in debtor and "America/Argentina/Buenos_Aires" in debtor
    titles = _timeline_titles(page)
    assert any(t.startswith("Pago informado") for t in titles)
    assert any(t.startswith("Mensaje por SMS") for t in titles)
    stamps = [t.attrs["datetime"] for t in page.by_id("timeline").find_all("time")]
    assert stamps == sorted(stamps, reverse=True)
    ledger = page.by_id("movimientos").find("tfoot").text()
    assert "Totales" in ledger
    dossier = page.find("a", href=f"/backoffice/accounts/{rich.account_id}/dossier.pdf")
    assert dossier is not None
    # the work form, with its outcome buttons (radio buttons with labels)
    form = page.by_id("work").find("form")
    assert form.attrs["action"] == f"/backoffice/accounts/{rich.account_id}/contacts"
    assert form.attrs["hx-target"] == "#work"
    outcomes = [i.attrs["value"] for i in form.find_all("input", name="outcome")]
    assert outcomes == ["reached", "no_answer", "wrong_number", "promised", "refused", "callback"]


async def test_recording_a_call_without_javascript_redirects_and_shows_it_on_top(
    client, redis, servers, app_key
):
    rich = await build_rich_account()
    await _signed_in(client, redis, servers, app_key)
    promised = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    response = await client.post(
        f"/backoffice/accounts/{rich.account_id}/contacts",
        data={
            "_csrf_token": await csrf_token(client),
            "kind": "call",
            "outcome": "promised",
            "note": "Paga el jueves",
            "promise_amount": "1000,00",
            "promise_date": promised,
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == f"/backoffice/accounts/{rich.account_id}#gestion"
    page = main(await client.get(f"/backoffice/accounts/{rich.account_id}"))
    assert "Gestión registrada" in page.by_id("work").text()
    titles = _timeline_titles(page)
    assert "Llamada · Promete pagar" in titles[:2]
    assert "Promesa de pago registrada $ 1.000,00" in [t.replace("\xa0", " ") for t in titles[:2]]
    assert "Promesa vigente" in page.by_id("caso").text()
    again = main(await client.get(f"/backoffice/accounts/{rich.account_id}"))
    assert "Gestión registrada" not in again.by_id("work").text()  # a notice is shown once


async def test_with_htmx_the_work_area_comes_back_with_the_new_contact_or_the_errors(
    client, redis, servers, app_key
):
    rich = await build_rich_account()
    await _signed_in(client, redis, servers, app_key)
    url = f"/backoffice/accounts/{rich.account_id}/contacts"
    token = await csrf_token(client)
    wrong = await client.post(
        url,
        data={"_csrf_token": token, "kind": "call", "outcome": "callback", "note": "Llamar"},
        headers=HTMX,
    )
    assert wrong.status_code == 200 and "<html" not in wrong.text
    work = parse(wrong.text).by_id("work")
    assert work is not None
    assert work.find("input", id="contact-next").attrs.get("aria-invalid") == "true"
    assert work.by_id("contact-next-error").text() == "Elija cuándo volver a llamar."
    assert work.find("textarea").text() == "Llamar"  # what was typed stays
    assert (
        await Interaction.count().where(
            Interaction.account == rich.account_id, Interaction.kind == "call"
        )
        == 0
    )
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).isoformat()
    done = await client.post(
        url,
        data={
            "_csrf_token": token,
            "kind": "call",
            "outcome": "callback",
            "note": "Pide que lo llamen mañana",
            "next_action_on": tomorrow,
        },
        headers=HTMX,
    )
    assert done.status_code == 200
    work = parse(done.text).by_id("work")
    assert work.find("p", role="status").text().startswith("Gestión registrada")
    assert work.find("textarea").text() == ""  # a fresh form
    first = work.by_id("timeline").find("li")
    assert first.find("p").text() == "Llamada · Volver a llamar"
    assert "Pide que lo llamen mañana" in first.text()
    account = await Account.objects().get(Account.id == rich.account_id)
    assert account.next_action_on.isoformat() == tomorrow


async def test_a_wrong_form_without_javascript_is_the_page_with_the_messages(
    client, redis, servers, app_key
):
    rich = await build_rich_account()
    await _signed_in(client, redis, servers, app_key)
    response = await client.post(
        f"/backoffice/accounts/{rich.account_id}/contacts",
        data={"_csrf_token": await csrf_token(client), "kind": "call", "outcome": "promised"},
    )
    assert response.status_code == 422
    page = main(response)
    assert page.find("h1").text() == "Ñandú Ibáñez"
    assert page.by_id("contact-amount-error") is not None
    assert page.by_id("contact-date-error").text() == "Elija la fecha en que va a pagar."
    assert (
        await PromiseToPay.count().where(
            PromiseToPay.account == rich.account_id, PromiseToPay.status == "open"
        )
        == 0
    )


async def test_pause_resume_and_escalate_from_the_page(client, redis, servers, app_key):
    rich = await build_rich_account()
    await _signed_in(client, redis, servers, app_key, role="supervisor")
    base = f"/backoffice/accounts/{rich.account_id}"
    token = await csrf_token(client)
    until = (dt.date.today() + dt.timedelta(days=7)).isoformat()
    empty = await client.post(f"{base}/pause", data={"_csrf_token": token})
    assert empty.status_code == 422
    details = parse(empty.text).by_id("caso").find("details")
    assert "open" in details.attrs and details.by_id("pause-until-error") is not None
    paused = await client.post(
        f"{base}/pause", data={"_csrf_token": token, "until": until, "reason": "Viaja"}
    )
    assert paused.status_code == 303 and paused.headers["location"] == f"{base}#caso"
    page = main(await client.get(base))
    assert "Cobranza pausada" in page.text()
    assert "Pausada hasta" in page.find("ul", **{"class": "acc-tags"}).text()
    resume = page.find("form", action=f"{base}/resume")
    assert resume is not None
    assert (await client.post(f"{base}/resume", data={"_csrf_token": token})).status_code == 303
    late = await client.post(f"{base}/resume", data={"_csrf_token": token})
    assert late.status_code == 409
    assert "no está pausada" in main(late).find("p", role="alert").text()

    escalated = await client.post(f"{base}/escalate", data={"_csrf_token": token, "reason": "Nada"})
    assert escalated.status_code == 303
    page = main(await client.get(base))
    assert "En cobranza judicial desde" in page.text()
    assert page.find("form", action=f"{base}/escalate") is None
    again = await client.post(f"{base}/escalate", data={"_csrf_token": token, "reason": "Otra"})
    assert again.status_code == 409


async def test_finance_sees_the_account_but_not_the_work_forms(client, redis, servers, app_key):
    rich = await build_rich_account()
    await _signed_in(client, redis, servers, app_key, role="finance")
    page = main(await client.get(f"/backoffice/accounts/{rich.account_id}"))
    assert page.by_id("work").find("form") is None
    assert page.find("form", action=f"/backoffice/accounts/{rich.account_id}/pause") is None
    assert page.by_id("timeline") is not None


async def test_the_timeline_pages_as_a_fragment(client, redis, servers, app_key):
    rich = await build_rich_account()
    await Interaction.insert(
        *(
            Interaction(
                account=rich.account_id,
                debtor=rich.debtor_id,
                kind="note",
                summary=f"Nota {n}",
                occurred_at=rich.now - dt.timedelta(hours=n),
            )
            for n in range(30)
        )
    )
    await _signed_in(client, redis, servers, app_key)
    first = main(await client.get(f"/backoffice/accounts/{rich.account_id}"))
    older = first.by_id("timeline").find("a", rel="next")
    assert older is not None and older.attrs["hx-target"] == "#timeline"
    fragment = await client.get(
        f"/backoffice/accounts/{rich.account_id}?tl=2",
        headers={**HTMX, "HX-Target": "timeline"},
    )
    assert fragment.status_code == 200 and "<html" not in fragment.text
    node = parse(fragment.text).find("section")
    assert node.attrs["id"] == "timeline"
    assert "Página 2" in node.text() and node.find("a", rel="prev") is not None


async def test_the_dossier_downloads_as_a_pdf(client, redis, servers, app_key):
    rich = await build_rich_account()
    await _signed_in(client, redis, servers, app_key, role="admin")
    response = await client.get(f"/backoffice/accounts/{rich.account_id}/dossier.pdf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].startswith('attachment; filename="legajo-')
    assert response.content.startswith(b"%PDF")
    missing = await client.get("/backoffice/accounts/2147483000")
    assert missing.status_code == 404


async def test_search_finds_the_account_and_htmx_refreshes_only_the_results(
    client, redis, servers, app_key
):
    rich = await build_rich_account()
    await _signed_in(client, redis, servers, app_key, role="finance")
    response = await client.get(f"/backoffice/search?q={rich.document.replace('.', '')}")
    assert response.status_code == 200
    page = main(response)
    links = [a.attrs["href"] for a in page.by_id("search-results").find_all("a")]
    assert f"/backoffice/accounts/{rich.account_id}" in links
    assert "documento" in page.by_id("search-results").text()
    fragment = await client.get("/backoffice/search?q=nandu ibanez", headers=HTMX)
    node = parse(fragment.text).find("section")
    assert node.attrs["id"] == "search-results" and "<html" not in fragment.text
    assert "Ñandú Ibáñez" in node.text()
    short = main(await client.get("/backoffice/search?q=x"))
    assert "Escriba al menos 2 caracteres." in short.text()
