"""The back office's disputes as staff and the debtor see them: the queue's order and SLA timers,
the thread from both sides, staff replies with files, resolutions (supervisors only), and the
report by reason (real PostgreSQL and Redis, parsed HTML).

The disputes here are opened in 2011-2012 with a frozen clock, so they sort before every other
test's open disputes in the shared database and their timers are exact.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import secrets
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

import backoffice.disputes
from saldo.services import disputes
from saldo.services.ledger import account_balance, post_entry
from saldo.services.uploads import store_upload
from saldo.tables import (
    Account,
    Dispute,
    DisputeMessage,
    EntryKind,
    Invoice,
    InvoiceLine,
    LedgerEntry,
)
from tests.services.helpers import make_account
from tests.web import backoffice_fixtures
from tests.web.backoffice_fixtures import (
    Staff,
    audit_events,
    csrf_token,
    inject_session,
    main,
    make_staff,
    new_client,
    post_form,
)
from tests.web.html import Node, parse

client = backoffice_fixtures.client
bo_app = backoffice_fixtures.bo_app
app_key = backoffice_fixtures.app_key
fresh_rate_limits = backoffice_fixtures.fresh_rate_limits

NOW = dt.datetime(2011, 3, 10, 9, 0, tzinfo=dt.UTC)
HTMX = {"HX-Request": "true"}
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x02" * 120
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture(autouse=True)
def frozen_now(monkeypatch):
    monkeypatch.setattr(backoffice.disputes, "_now", lambda: NOW)


@pytest.fixture
def data_dir(bo_app) -> Path:
    return Path(bo_app.state.settings.data_path)


# ---------------------------------------------------------------------------- builders


async def make_case(
    lines: list[tuple[str, int]], *, name: str = "Ñandú Pérez"
) -> tuple[Account, Invoice, list[int]]:
    """An account with one invoice of `lines` (description, total), charged in full."""
    account = await make_account(name=name)
    total = sum(t for _, t in lines)
    invoice = Invoice(
        creditor=account.creditor,
        account=account.id,
        number=f"F-{secrets.token_hex(3)}",
        currency=account.currency,
        issue_date=dt.date(2011, 1, 10),
        due_date=dt.date(2011, 2, 10),
        total=total,
    )
    await invoice.save()
    line_ids = []
    for position, (description, line_total) in enumerate(lines, start=1):
        line = InvoiceLine(
            invoice=invoice.id,
            position=position,
            description=description,
            quantity=Decimal(1),
            unit_price=Decimal(line_total) / 100,
            tax_rate=Decimal(0),
            total=line_total,
        )
        await line.save()
        line_ids.append(line.id)
    await post_entry(
        account_id=account.id,
        kind=EntryKind.charge,
        amount=total,
        currency=account.currency,
        effective_date=invoice.issue_date,
        invoice_id=invoice.id,
        idempotency_key=f"test:invoice:{invoice.id}",
    )
    return account, invoice, line_ids


async def open_on(account: Account, invoice: Invoice, when: dt.datetime, **kwargs: Any) -> int:
    kwargs.setdefault("reason_code", "wrong_amount")
    return await disputes.open_dispute(
        [account.debtor], account_id=account.id, invoice_id=invoice.id, now=when, **kwargs
    )


async def as_staff(client, redis, servers, app_key, role: str, name: str = "") -> Staff:
    staff = await make_staff(role, key=app_key, name=name)
    await inject_session(client, redis, servers, staff.id)
    return staff


async def debtor_browser(bo_app, redis, servers, debtor_id: int) -> httpx.AsyncClient:
    """A second browser, signed in to the portal as the debtor."""
    browser = new_client(bo_app)
    session_id = secrets.token_hex(16)
    data = {"debtor_ids": [debtor_id], "created_at": int(time.time())}
    await redis.set(
        f"{servers.redis_prefix}session:{session_id}", msgspec.json.encode(data), ex=1800
    )
    browser.cookies.set(backoffice_fixtures.SESSION, session_id)
    return browser


def rows_of(response: httpx.Response, ids: list[int]) -> list[Node]:
    """The queue's rows of these disputes, in the order the page shows them."""
    wanted = {str(i) for i in ids}
    return [
        row
        for row in parse(response.text).find_all("tr")
        if row.attrs.get("data-dispute") in wanted
    ]


def timer(row: Node) -> Node:
    cell = next(c for c in row.find_all("td") if "data-sla" in c.attrs)
    found = next(n for n in cell.iter() if "dsla" in n.attrs.get("class", "").split())
    return found


def error_text(page: Node, element_id: str) -> str:
    node = page.by_id(element_id)
    assert node is not None, f"no {element_id} on the page"
    return node.text()


async def multipart(
    client: httpx.AsyncClient,
    url: str,
    fields: dict[str, str],
    file: tuple[str, bytes, str] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    token = await csrf_token(client)
    return await client.post(
        url,
        data={"_csrf_token": token, **fields},
        files={"attachment": file}
        if file
        else {"attachment": ("", b"", "application/octet-stream")},
        headers=headers,
    )


# ---------------------------------------------------------------------------- the queue


async def test_the_queue_shows_the_nearest_sla_first_with_colored_timers(
    client, redis, servers, app_key
):
    account, invoice, (l1, l2, l3) = await make_case(
        [("Abono", 100000), ("Equipo", 50000), ("Instalación", 20000)], name="Rosa Quispe"
    )
    # already_paid: 5 days; not_received: 7 days; duplicate: 5 days
    late = await open_on(
        account,
        invoice,
        NOW - dt.timedelta(days=9, hours=-3),
        line_id=l1,
        reason_code="already_paid",
    )
    soon = await open_on(
        account,
        invoice,
        NOW - dt.timedelta(days=6, hours=4),
        line_id=l2,
        reason_code="not_received",
    )
    calm = await open_on(
        account, invoice, NOW - dt.timedelta(hours=21), line_id=l3, reason_code="duplicate"
    )
    await as_staff(client, redis, servers, app_key, "agent")

    response = await client.get("/backoffice/disputes")
    assert response.status_code == 200
    assert response.headers["vary"] == "HX-Request"
    rows = rows_of(response, [late, soon, calm])
    assert [r.attrs["data-dispute"] for r in rows] == [str(late), str(soon), str(calm)]
    texts = {r.attrs["data-dispute"]: timer(r) for r in rows}
    assert texts[str(late)].text() == "vencida hace 3 d 21 h"
    assert "dsla--overdue" in texts[str(late)].attrs["class"]
    assert texts[str(soon)].text() == "vence en 20 h"
    assert "dsla--soon" in texts[str(soon)].attrs["class"]
    assert texts[str(calm)].text() == "vence en 4 d 3 h"
    assert "dsla--ok" in texts[str(calm)].attrs["class"]
    ages = {r.attrs["data-dispute"]: r.find("td", **{"data-age": ""}).text() for r in rows}
    assert ages == {str(late): "8 d 21 h", str(soon): "6 d 4 h", str(calm): "21 h"}
    first = rows[0].text()
    assert "Rosa Quispe" in first and invoice.number in first and "Abono" in first
    assert "Dice que ya pagó" in first and "1.000,00" in first
    overdue = parse(response.text).find("span", **{"data-stat": "overdue"})
    assert overdue is not None and int(overdue.text()) >= 1

    only = await client.get("/backoffice/disputes", params={"reason": "duplicate"})
    assert [r.attrs["data-dispute"] for r in rows_of(only, [late, soon, calm])] == [str(calm)]
    selected = parse(only.text).by_id("f-reason").find("option", selected="")
    assert selected is not None and selected.attrs["value"] == "duplicate"

    english = await client.get("/backoffice/disputes", params={"reason": "duplicate", "lang": "en"})
    (row,) = rows_of(english, [calm])
    assert timer(row).text() == "due in 4 d 3 h"
    assert "Duplicate charge" in row.text() and "New" in row.text()

    closed = await client.get("/backoffice/disputes", params={"status": "closed"})
    assert rows_of(closed, [late, soon, calm]) == []

    fragment = await client.get(
        "/backoffice/disputes", params={"reason": "duplicate"}, headers=HTMX
    )
    assert "<html" not in fragment.text
    root = parse(fragment.text).find("div")
    assert root is not None and root.attrs["id"] == "dispute-queue"
    assert root.attrs["hx-trigger"] == "every 60s"
    assert root.attrs["hx-get"] == "/backoffice/disputes?reason=duplicate&page=1"


async def test_the_queue_pages_and_an_unknown_filter_falls_back_to_open_disputes(
    client, redis, servers, app_key, monkeypatch
):
    monkeypatch.setattr(backoffice.disputes, "PER_PAGE", 2)
    account, invoice, lines = await make_case([(f"Ítem {n}", 1000) for n in range(3)])
    ids = [
        await open_on(
            account, invoice, NOW - dt.timedelta(days=20 - n), line_id=line, reason_code="other",
            reason_text="Revisar",
        )
        for n, line in enumerate(lines)
    ]  # fmt: skip
    await as_staff(client, redis, servers, app_key, "supervisor")
    first = await client.get("/backoffice/disputes", params={"reason": "other", "status": "nope"})
    assert [r.attrs["data-dispute"] for r in rows_of(first, ids)] == [str(ids[0]), str(ids[1])]
    pager = parse(first.text).find("nav", **{"class": "bo-pager"})
    assert pager is not None
    following = pager.find("a", rel="next")
    assert following is not None
    second = await client.get(following.attrs["href"])
    assert [r.attrs["data-dispute"] for r in rows_of(second, ids)] == [str(ids[2])]


# ---------------------------------------------------------------------------- the thread


async def test_staff_and_debtor_see_one_thread_and_a_staff_file_is_served_by_content(
    client, bo_app, redis, servers, app_key, data_dir
):
    account, invoice, (line, _other) = await make_case([("Decodificador", 387260), ("Abono", 5000)])
    photo = await store_upload(PNG, "caja.png", data_dir=data_dir)
    dispute_id = await open_on(
        account,
        invoice,
        NOW - dt.timedelta(days=1),
        line_id=line,
        reason_code="not_received",
        reason_text="Llegó un solo decodificador.",
        attachment_ids=[photo],
    )
    agent = await as_staff(client, redis, servers, app_key, "agent", name="Carla Gómez")
    url = f"/backoffice/disputes/{dispute_id}"

    page = await client.get(url)
    assert page.status_code == 200
    thread = parse(page.text).by_id("dispute-thread")
    assert thread is not None
    assert "Llegó un solo decodificador." in thread.text() and "Ñandú Pérez" in thread.text()
    link = next(a for a in thread.find_all("a") if "caja.png" in a.text())
    download = await client.get(link.attrs["href"])
    assert download.status_code == 200 and download.content == PNG
    assert download.headers["content-type"] == "image/png"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert parse(page.text).find("form", **{"class": "dresolve__form"}) is None  # agents reply only
    assert "Solo un supervisor" in parse(page.text).by_id("dispute-resolution").text()

    sent = await multipart(
        client,
        f"{url}/messages",
        {"body": "¿Nos manda el remito que firmó?"},
        ("remito modelo.pdf", PDF, "application/pdf"),
    )
    assert sent.status_code == 303
    assert sent.headers["location"] == f"{url}#thread-end"
    after = await client.get(url)
    assert "Enviamos su respuesta" in main(after).text()
    staff_message = parse(after.text).find_all("li", **{"class": "dmsg dmsg--staff"})
    assert len(staff_message) == 1
    assert "Carla Gómez" in staff_message[0].text()
    assert "¿Nos manda el remito que firmó?" in staff_message[0].text()
    file_link = staff_message[0].find("a")
    served = await client.get(file_link.attrs["href"])
    assert served.content == PDF and served.headers["content-type"] == "application/pdf"
    assert 'filename="remito modelo.pdf"' in served.headers["content-disposition"]
    status = parse(after.text).by_id("dispute-status")
    assert "Esperando al deudor" in status.text()

    events = [
        e for e in await audit_events(action="dispute.message") if e["object_id"] == str(dispute_id)
    ]
    assert len(events) == 1
    assert events[0]["actor"] == agent.email and events[0]["staff"] == agent.id
    assert events[0]["after"]["body"] == "¿Nos manda el remito que firmó?"
    assert events[0]["before"] == {"status": "open"}

    debtor = await debtor_browser(bo_app, redis, servers, account.debtor)
    async with debtor:
        portal_page = await debtor.get(f"/disputes/{dispute_id}")
        assert portal_page.status_code == 200
        portal_thread = parse(portal_page.text).by_id("dispute-thread")
        assert "¿Nos manda el remito que firmó?" in portal_thread.text()
        portal_link = next(a for a in portal_thread.find_all("a") if "remito" in a.text())
        assert (await debtor.get(portal_link.attrs["href"])).content == PDF
        assert "Esperando su respuesta" in main(portal_page).text()
        token = next(
            i.attrs["value"]
            for i in parse(portal_page.text).find_all("input")
            if i.attrs.get("name") == "_csrf_token"
        )
        answered = await debtor.post(
            f"/disputes/{dispute_id}/messages",
            data={"_csrf_token": token, "body": "Sí, ahí va la foto del remito."},
        )
        assert answered.status_code == 303

    back = await client.get(url)
    debtor_messages = parse(back.text).find_all("li", **{"class": "dmsg dmsg--debtor"})
    assert "Sí, ahí va la foto del remito." in debtor_messages[-1].text()
    assert "En revisión" in parse(back.text).by_id("dispute-status").text()
    queue = await client.get("/backoffice/disputes")
    (row,) = rows_of(queue, [dispute_id])
    assert "Último mensaje del deudor" in row.text()


async def test_a_reply_needs_text_or_a_real_file_and_nothing_is_kept_otherwise(
    client, redis, servers, app_key
):
    account, invoice, _ = await make_case([("Abono", 10000)])
    dispute_id = await open_on(account, invoice, NOW - dt.timedelta(days=2))
    await as_staff(client, redis, servers, app_key, "supervisor")
    url = f"/backoffice/disputes/{dispute_id}/messages"

    empty = await multipart(client, url, {"body": "   "})
    assert empty.status_code == 422
    page = parse(empty.text)
    assert error_text(page, "reply-body-error") == "Escriba un mensaje o adjunte un archivo."
    assert page.by_id("reply-body").attrs["aria-invalid"] == "true"

    disguised = await multipart(
        client,
        url,
        {"body": "Adjunto"},
        ("factura.pdf", b"MZ\x90\x00 not a pdf", "application/pdf"),
    )
    assert disguised.status_code == 422
    page = parse(disguised.text)
    assert error_text(page, "reply-attachment-error") == "El archivo no es un PDF, JPG ni PNG."
    assert page.by_id("reply-body").text() == "Adjunto"  # what was typed comes back

    fragment = await multipart(client, url, {"body": ""}, headers=HTMX)
    assert fragment.status_code == 200
    root = parse(fragment.text).find("section")
    assert root is not None and root.attrs["id"] == "dispute-thread"
    assert await DisputeMessage.count().where(DisputeMessage.dispute == dispute_id) == 0
    assert (await Dispute.objects().get(Dispute.id == dispute_id)).status == "open"

    missing = await multipart(client, "/backoffice/disputes/2147483000/messages", {"body": "Hola"})
    assert missing.status_code == 404


# ---------------------------------------------------------------------------- resolving


async def test_a_supervisor_accepts_in_part_and_the_debtor_sees_the_credit(
    client, bo_app, redis, servers, app_key
):
    account, invoice, (line, _) = await make_case(
        [("Decodificador adicional", 774520), ("Abono", 10000)]
    )
    dispute_id = await open_on(
        account, invoice, NOW - dt.timedelta(days=3), line_id=line, reason_code="not_received"
    )
    supervisor = await as_staff(client, redis, servers, app_key, "supervisor")
    url = f"/backoffice/disputes/{dispute_id}"
    before = await account_balance(account.id)
    form = parse((await client.get(url)).text).find("form", **{"class": "dresolve__form"})
    assert form is not None and form.attrs["action"] == f"{url}/resolve"

    done = await post_form(
        client,
        f"{url}/resolve",
        outcome="partial",
        amount="3.872,60",
        explanation="Le acreditamos un decodificador; el otro figura entregado.",
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"{url}#resolution"
    assert await account_balance(account.id) == before - 387260
    credits = await LedgerEntry.objects().where(
        (LedgerEntry.invoice == invoice.id) & (LedgerEntry.kind == EntryKind.credit_note)
    )
    assert [(c.amount, c.idempotency_key) for c in credits] == [
        (-387260, f"dispute:{dispute_id}:resolution")
    ]
    events = [
        e for e in await audit_events(action="dispute.resolve") if e["object_id"] == str(dispute_id)
    ]
    assert len(events) == 1
    assert events[0]["actor"] == supervisor.email and events[0]["ip"]
    assert events[0]["after"]["resolved_amount"] == 387260
    assert events[0]["after"]["ledger_entry"] == credits[0].id

    page = await client.get(url)
    outcome = parse(page.text).by_id("outcome")
    assert outcome is not None
    assert "Aceptado en parte" in outcome.text()
    assert outcome.find("dd", **{"data-credit-note": str(credits[0].id)}) is not None
    assert "3.872,60" in outcome.text() and "Le acreditamos un decodificador" in outcome.text()
    assert "Resolvimos el reclamo" in main(page).text()
    assert parse(page.text).find("form", **{"class": "dreply"}) is None  # closed: no more replies

    again = await post_form(client, f"{url}/resolve", outcome="accept")
    assert again.status_code == 422
    assert error_text(parse(again.text), "resolve-outcome-error") == (
        "Otra persona ya resolvió este reclamo. Esta es su decisión."
    )
    assert await LedgerEntry.count().where(LedgerEntry.invoice == invoice.id) == 2

    debtor = await debtor_browser(bo_app, redis, servers, account.debtor)
    async with debtor:
        portal = await debtor.get(f"/disputes/{dispute_id}")
        box = parse(portal.text).by_id("outcome")
        assert box is not None and "Aceptamos su reclamo en parte" in box.text()
        assert box.find("dd", **{"data-credit": "387260"}) is not None
        thread = parse(portal.text).by_id("dispute-thread").text()
        assert "Acreditamos" in thread and "3.872,60" in thread
        assert "Le acreditamos un decodificador" in thread


async def test_an_agent_cannot_resolve(client, redis, servers, app_key):
    account, invoice, _ = await make_case([("Abono", 10000)])
    dispute_id = await open_on(account, invoice, NOW - dt.timedelta(days=1))
    await as_staff(client, redis, servers, app_key, "agent")
    refused = await post_form(
        client, f"/backoffice/disputes/{dispute_id}/resolve", outcome="accept"
    )
    assert refused.status_code == 403
    assert await LedgerEntry.count().where(LedgerEntry.invoice == invoice.id) == 1
    row = await Dispute.objects().get(Dispute.id == dispute_id)
    assert row.status == "open" and row.resolved_at is None


async def test_a_rejection_needs_an_explanation_and_an_amount_must_fit(
    client, bo_app, redis, servers, app_key
):
    account, invoice, _ = await make_case([("Abono", 10000)])
    dispute_id = await open_on(account, invoice, NOW - dt.timedelta(days=1), amount=6000)
    await as_staff(client, redis, servers, app_key, "supervisor")
    url = f"/backoffice/disputes/{dispute_id}/resolve"

    bare = await post_form(client, url, outcome="reject", explanation="  ")
    assert bare.status_code == 422
    page = parse(bare.text)
    assert error_text(page, "resolve-explanation-error") == "Explique la decisión al deudor."
    assert page.find("input", value="reject").attrs.get("checked") == ""

    nothing = await post_form(client, url)
    assert error_text(parse(nothing.text), "resolve-outcome-error").startswith("Elija si acepta")

    too_much = await post_form(client, url, outcome="partial", amount="60,00", explanation="x")
    assert too_much.status_code == 422
    assert "menor que 60,00" in error_text(parse(too_much.text), "resolve-amount-error")
    garbled = await post_form(client, url, outcome="partial", amount="unos pesos", explanation="x")
    assert "importe válido" in error_text(parse(garbled.text), "resolve-amount-error")

    fragment = await client.post(
        url, data={"_csrf_token": await csrf_token(client), "outcome": "reject"}, headers=HTMX
    )
    assert fragment.status_code == 200
    assert parse(fragment.text).find("section").attrs["id"] == "dispute-resolution"
    assert (await Dispute.objects().get(Dispute.id == dispute_id)).status == "open"

    rejected = await client.post(
        url,
        data={
            "_csrf_token": await csrf_token(client),
            "outcome": "reject",
            "explanation": "El importe coincide con el contrato firmado.",
        },
        headers=HTMX,
    )
    assert rejected.status_code == 200
    assert rejected.headers["hx-redirect"] == f"/backoffice/disputes/{dispute_id}"
    row = await Dispute.objects().get(Dispute.id == dispute_id)
    assert (row.status, row.resolved_amount) == ("rejected", 0)
    assert await LedgerEntry.count().where(LedgerEntry.invoice == invoice.id) == 1
    debtor = await debtor_browser(bo_app, redis, servers, account.debtor)
    async with debtor:
        portal = await debtor.get(f"/disputes/{dispute_id}")
        assert "No aceptamos su reclamo" in parse(portal.text).by_id("outcome").text()
        assert "El importe coincide con el contrato firmado." in portal.text


async def test_an_unknown_dispute_is_a_404(client, redis, servers, app_key):
    await as_staff(client, redis, servers, app_key, "supervisor")
    assert (await client.get("/backoffice/disputes/2147483001")).status_code == 404
    missing_file = await client.get("/backoffice/disputes/2147483001/attachments/1")
    assert missing_file.status_code == 404


# ---------------------------------------------------------------------------- the reason report


async def test_the_reason_report_counts_and_sums_per_reason_and_downloads_as_csv(
    client, redis, servers, app_key
):
    day = dt.datetime(2012, 2, 14, 12, 0, tzinfo=dt.UTC)  # no other test opens disputes then
    resolver = await make_staff("supervisor", key=app_key)
    a1, i1, (l1, l2) = await make_case([("Abono", 100000), ("Equipo", 50000)])
    a2, i2, _ = await make_case([("Servicio", 20000)])
    a3, i3, _ = await make_case([("Servicio", 30000)])
    first = await open_on(a1, i1, day, line_id=l1, reason_code="not_received")
    await open_on(a1, i1, day, line_id=l2, reason_code="not_received")
    third = await open_on(a2, i2, day, amount=9000, reason_code="duplicate")
    fourth = await open_on(a3, i3, day, amount=3000, reason_code="duplicate")
    await disputes.resolve(first, outcome="accept", staff_id=resolver.id, now=day)
    await disputes.resolve(
        third, outcome="partial", amount=4000, explanation="En parte", staff_id=resolver.id, now=day
    )
    await disputes.resolve(
        fourth, outcome="reject", explanation="No", staff_id=resolver.id, now=day
    )
    # opened after the period: not counted
    await open_on(
        a3, i3, day + dt.timedelta(days=30), amount=100, reason_code="other", reason_text="x"
    )
    await as_staff(client, redis, servers, app_key, "finance")

    period = {"from": "2012-02-01", "to": "2012-02-29"}
    response = await client.get("/backoffice/disputes/reasons", params=period)
    assert response.status_code == 200
    table = parse(response.text).by_id("reason-report")
    rows = {r.attrs["data-reason"]: r for r in table.find_all("tr") if "data-reason" in r.attrs}
    assert set(rows) == {"not_received", "duplicate", ""}

    def counts(row: Node) -> dict[str, str]:
        return {
            c.attrs["data-outcome"]: c.text()
            for c in row.find_all("td")
            if "data-outcome" in c.attrs
        }

    assert counts(rows["not_received"]) == {
        "open": "1", "accepted": "1", "partially_accepted": "0", "rejected": "0",
    }  # fmt: skip
    assert counts(rows["duplicate"]) == {
        "open": "0", "accepted": "0", "partially_accepted": "1", "rejected": "1",
    }  # fmt: skip
    assert rows[""].find("td", **{"data-total": ""}).text() == "4"
    assert rows["not_received"].find("td", **{"data-disputed": ""}).text() == "1.500,00 ARS"
    assert rows["not_received"].find("td", **{"data-credited": ""}).text() == "1.000,00 ARS"
    assert rows["duplicate"].find("td", **{"data-disputed": ""}).text() == "120,00 ARS"
    assert rows["duplicate"].find("td", **{"data-credited": ""}).text() == "40,00 ARS"
    assert "50 %" in rows["duplicate"].text()  # one of the two decided ones was accepted in part

    link = table.find("a", download="")
    assert link.attrs["href"] == "/backoffice/disputes/reasons.csv?from=2012-02-01&to=2012-02-29"
    download = await client.get(link.attrs["href"])
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    assert download.headers["content-disposition"] == (
        'attachment; filename="reclamos-por-motivo-2012-02-01-2012-02-29.csv"'
    )
    lines = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert lines[0] == [
        "motivo", "codigo_motivo", "resultado", "moneda", "reclamos",
        "importe_reclamado", "importe_acreditado",
    ]  # fmt: skip
    assert [line[1:] for line in lines[1:]] == [
        ["not_received", "accepted", "ARS", "1", "1000.00", "1000.00"],
        ["not_received", "open", "ARS", "1", "500.00", "0.00"],
        ["duplicate", "partially_accepted", "ARS", "1", "90.00", "40.00"],
        ["duplicate", "rejected", "ARS", "1", "30.00", "0.00"],
    ]

    swapped = await client.get(
        "/backoffice/disputes/reasons", params={"from": "2012-03-01", "to": "2012-02-01"}
    )
    assert swapped.status_code == 422
    assert (
        error_text(parse(swapped.text), "r-to-error") == "La fecha final es anterior a la inicial."
    )
    bad_csv = await client.get("/backoffice/disputes/reasons.csv", params={"from": "ayer"})
    assert bad_csv.status_code == 422
    far = await client.get("/backoffice/disputes/reasons", params={"to": "9999-12-31"})
    assert far.status_code == 422
    assert error_text(parse(far.text), "r-to-error") == "Use una fecha como 2026-03-31."
    empty = await client.get(
        "/backoffice/disputes/reasons", params={"from": "2010-01-01", "to": "2010-01-02"}
    )
    assert "No se abrieron reclamos en este período." in empty.text


@pytest.mark.parametrize(
    ("role", "target"),
    [
        ("agent", "/backoffice/disputes"),
        ("supervisor", "/backoffice/disputes"),
        ("finance", "/backoffice/disputes/reasons"),
        ("admin", "/backoffice/disputes/reasons"),
    ],
)
async def test_the_navigation_leads_each_role_to_what_it_may_open(
    client, redis, servers, app_key, role, target
):
    await as_staff(client, redis, servers, app_key, role)
    home = await client.get("/backoffice")
    nav = parse(home.text).find("nav", **{"class": "bo-nav"})
    link = next(a for a in nav.find_all("a") if a.text() == "Reclamos")
    assert link.attrs["href"] == target
    page = await client.get(target)
    assert page.status_code == 200
    current = (
        parse(page.text).find("nav", **{"class": "bo-nav"}).find("a", **{"aria-current": "page"})
    )
    assert current is not None and current.text() == "Reclamos"
