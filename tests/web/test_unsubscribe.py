"""One-click unsubscribe: the link in every message opts its debtor out of its channel, with
no sign-in — a confirm page for people, a bare POST for mail clients (RFC 8058)."""

from __future__ import annotations

import datetime as dt
import secrets

from saldo.notify.unsubscribe import derive_key, make_token
from saldo.tables import ContactPreference, Creditor, Debtor, Interaction
from tests.web import portal_fixtures
from tests.web.html import parse

client = portal_fixtures.client


async def debtor() -> tuple[Debtor, Creditor]:
    creditor = Creditor(name=f"Servicios Andinos {secrets.token_hex(3)}")
    await creditor.save()
    row = Debtor(creditor=creditor.id, external_id=secrets.token_hex(4), name="Ñandú Pérez",
                 email=f"nandu-{secrets.token_hex(3)}@example.com")  # fmt: skip
    await row.save()
    return row, creditor


def token_for(web_settings, debtor_id: int, channel: str = "email") -> str:
    return make_token(derive_key(web_settings.resolved_secret_key()), debtor_id, channel)


async def preferences(debtor_id: int) -> list[ContactPreference]:
    return await ContactPreference.objects().where(ContactPreference.debtor == debtor_id)


async def test_the_link_shows_a_confirmation_and_changes_nothing(client, web_settings):
    who, creditor = await debtor()
    token = token_for(web_settings, who.id)

    response = await client.get(f"/unsubscribe/{token}")

    assert response.status_code == 200
    page = parse(response.text)
    assert page.find("h1").text() == "¿Dejar de recibir mensajes por este medio?"
    assert creditor.name in page.by_id("main").text()
    assert "correo electrónico" in page.by_id("main").text()
    form = page.find("form", **{"class": "unsubscribe__form"})
    assert form.attrs["method"] == "post" and form.attrs["action"] == f"/unsubscribe/{token}"
    assert await preferences(who.id) == []


async def test_a_mail_clients_one_click_post_opts_out_once(client, web_settings):
    who, _ = await debtor()
    await ContactPreference(debtor=who.id, channel="email", opted_in=True,
                            quiet_start=dt.time(21), quiet_end=dt.time(8)).save()  # fmt: skip
    token = token_for(web_settings, who.id)
    client.cookies.clear()

    response = await client.post(
        f"/unsubscribe/{token}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 200
    assert "set-cookie" not in response.headers  # no session for a mail client
    assert parse(response.text).find("h1").text() == "Listo: no le escribiremos más por este medio"
    newest = max(await preferences(who.id), key=lambda p: p.id)
    assert (newest.channel, newest.opted_in, newest.source) == ("email", False, "unsubscribe_link")
    assert (newest.quiet_start, newest.quiet_end) == (dt.time(21), dt.time(8))
    logged = await Interaction.objects().where(Interaction.debtor == who.id)
    assert [(i.kind, i.channel) for i in logged] == [("preference_changed", "email")]

    again = await client.post(f"/unsubscribe/{token}")
    assert again.status_code == 200
    assert len(await preferences(who.id)) == 2
    assert await Interaction.count().where(Interaction.debtor == who.id) == 1
    shown = await client.get(f"/unsubscribe/{token}")
    assert "Listo" in parse(shown.text).find("h1").text()


async def test_each_token_only_opts_out_its_own_channel(client, web_settings):
    who, _ = await debtor()
    await client.post(f"/unsubscribe/{token_for(web_settings, who.id, 'sms')}")
    [row] = await preferences(who.id)
    assert (row.channel, row.opted_in) == ("sms", False)


async def test_a_forged_or_altered_token_is_a_404_page(client, web_settings):
    who, _ = await debtor()
    token = token_for(web_settings, who.id)
    altered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    someone_else = f"{who.id + 1}" + token[len(str(who.id)) :]
    for bad in (altered, token.replace("-email-", "-sms-"), "nada", someone_else):
        for method in ("GET", "POST"):
            response = await client.request(method, f"/unsubscribe/{bad}")
            assert response.status_code == 404, (method, bad)
            assert parse(response.text).find("h1").text() == "Este enlace no es válido"
    assert await preferences(who.id) == []


async def test_the_page_speaks_english(client, web_settings):
    who, creditor = await debtor()
    response = await client.get(f"/unsubscribe/{token_for(web_settings, who.id)}?lang=en")
    page = parse(response.text)
    assert page.find("h1").text() == "Stop receiving messages this way?"
    assert f"We will stop sending you messages from {creditor.name} by email." in page.text()


def test_message_links_point_at_real_portal_pages(make_app):
    from saldo.services.notify_render import PATHS

    app = make_app()
    routes = {
        "account": "account:balance",
        "preferences": "account:preferences",
        "pay": "pay:start",
        "plans": "plans:index",
        "disputes": "disputes:index",
    }
    for key, name in routes.items():
        assert app.route_reverse(name) == PATHS[key], key
    assert app.route_reverse("unsubscribe:confirm", token="t") == f"{PATHS['unsubscribe']}/t"
    assert app.route_reverse("disputes:detail", dispute_id=9) == f"{PATHS['disputes']}/9"
