"""The admin users page: invite, deactivate, reactivate, reset TOTP — each behind a fresh code,
each in the audit log — and the audit log page that shows them."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from saldo.tables import StaffUser
from tests.web import backoffice_fixtures
from tests.web.backoffice_fixtures import (
    BASE_URL,
    audit_events,
    code,
    heading,
    inject_session,
    main,
    make_staff,
    new_client,
    password_step,
    post_form,
    staff_row,
    unique_email,
)
from tests.web.html import parse

client = backoffice_fixtures.client
bo_app = backoffice_fixtures.bo_app
app_key = backoffice_fixtures.app_key
fresh_rate_limits = backoffice_fixtures.fresh_rate_limits


def row_of(response, staff_id: int):
    row = parse(response.text).by_id(f"staff-{staff_id}")
    assert row is not None
    return row


async def test_changes_need_a_fresh_code_then_come_back(client, redis, servers, app_key):
    admin = await make_staff("admin", key=app_key)
    await inject_session(client, redis, servers, admin.id, fresh=False)

    page = await client.get("/backoffice/users")
    assert page.status_code == 200
    assert "le pediremos un código actual" in main(page).text()

    email = unique_email("nuevo")
    users_url = f"{BASE_URL}/backoffice/users"
    asked = await client.post(  # from the users page, as a browser sends it
        "/backoffice/users",
        data={"_csrf_token": await _csrf(client), "email": email, "role": "finance"},
        headers={"Referer": users_url},
    )
    assert asked.status_code == 303
    target = urlsplit(asked.headers["location"])
    assert target.path == "/backoffice/reauth"
    assert parse_qs(target.query)["next"] == ["/backoffice/users"]
    assert not await StaffUser.exists().where(StaffUser.email == email)

    form = await client.get(asked.headers["location"])
    assert heading(form) == "Confirme que es usted"
    wrong = await post_form(client, "/backoffice/reauth", code="000000", next="/backoffice/users")
    assert wrong.status_code == 422
    done = await post_form(
        client, "/backoffice/reauth", code=code(admin.secret, 1), next="/backoffice/users"
    )
    assert done.status_code == 303 and done.headers["location"] == "/backoffice/users"
    assert "Identidad confirmada hasta" in main(await client.get("/backoffice/users")).text()

    invited = await post_form(
        client,
        "/backoffice/users",
        email=email,
        role="finance",
        name="Nuevo",
    )
    assert invited.status_code == 303 and invited.headers["location"] == "/backoffice/users"
    actions = [e["action"] for e in await audit_events(admin.id)]
    assert actions[-2:] == ["staff.reauth_failed", "staff.reauth"]


async def test_invite_shows_a_one_time_link_that_sets_the_password(
    client, bo_app, redis, servers, app_key
):
    admin = await make_staff("admin", key=app_key)
    await inject_session(client, redis, servers, admin.id)
    email = unique_email("invitada")
    response = await post_form(
        client, "/backoffice/users", email=email.upper(), role="supervisor", name="Rocío Díaz"
    )
    assert response.status_code == 303
    page = await client.get("/backoffice/users")
    link = parse(page.text).by_id("invite-link").attrs["value"]
    assert link.startswith(f"{BASE_URL}/backoffice/invite/")
    assert f"Invitamos a {email}." in main(page).text()
    again = await client.get("/backoffice/users")
    assert parse(again.text).by_id("invite-link") is None  # shown once

    row = await StaffUser.objects().get(StaffUser.email == email)
    assert row.role == "supervisor" and row.name == "Rocío Díaz" and row.password_hash == ""
    assert "Invitado" in row_of(again, row.id).text()
    (event,) = await audit_events(row.id, "staff.invited")
    assert event["actor"] == admin.email and event["staff"] == admin.id
    assert event["after"] == {"email": email, "role": "supervisor", "name": "Rocío Díaz"}

    path = urlsplit(link).path
    async with new_client(bo_app) as newcomer:
        # Before choosing a password there is nothing to sign in with.
        no_password = await newcomer.post(
            "/backoffice/login",
            data={"email": email, "password": "", "_csrf_token": await _csrf(newcomer)},
        )
        assert no_password.status_code == 422

        form = await newcomer.get(path)
        assert form.status_code == 200 and heading(form) == "Elija su contraseña"
        assert email in main(form).text()
        short = await post_form(newcomer, path, password="corta", confirmation="corta")
        assert short.status_code == 422
        assert "al menos 12 caracteres" in main(short).text()
        differ = await post_form(
            newcomer, path, password="una frase bien larga", confirmation="otra frase larga"
        )
        assert differ.status_code == 422 and "no coinciden" in main(differ).text()

        chosen = await post_form(
            newcomer, path, password="una frase bien larga", confirmation="una frase bien larga"
        )
        assert chosen.status_code == 303
        assert chosen.headers["location"] == "/backoffice/login?notice=password_set"
        assert (await newcomer.get(path)).status_code == 410  # the link works once
        reused = await post_form(
            newcomer, path, password="otra frase bien larga", confirmation="otra frase bien larga"
        )
        assert reused.status_code == 410

        first = await newcomer.post(
            "/backoffice/login",
            data={
                "email": email,
                "password": "una frase bien larga",
                "_csrf_token": await _csrf(newcomer),
            },
        )
        assert first.status_code == 303
        assert first.headers["location"] == "/backoffice/login/enroll"
    assert [e["action"] for e in await audit_events(row.id)] == [
        "staff.invited",
        "staff.password_set",
    ]


async def _csrf(browser) -> str:
    return await backoffice_fixtures.csrf_token(browser)


async def test_invite_form_errors_sit_next_to_their_fields(client, redis, servers, app_key):
    admin = await make_staff("admin", key=app_key)
    other = await make_staff("agent", key=app_key)
    await inject_session(client, redis, servers, admin.id)

    bad = await post_form(client, "/backoffice/users", email="not-an-email", role="agent", name="")
    assert bad.status_code == 422
    tree = parse(bad.text)
    assert tree.by_id("invite-email").attrs["aria-invalid"] == "true"
    assert tree.by_id("email-error").text() == "Ingrese un correo electrónico válido."
    assert tree.by_id("invite-email").attrs["value"] == "not-an-email"

    taken = await post_form(client, "/backoffice/users", email=other.email, role="agent", name="")
    assert taken.status_code == 422
    assert parse(taken.text).by_id("email-error").text() == "Ya hay un usuario con ese correo."

    role = await post_form(client, "/backoffice/users", email=unique_email(), role="root", name="")
    assert role.status_code == 422
    assert parse(role.text).by_id("role-error").text() == "Elija uno de los roles de la lista."
    invited = [e["after"]["email"] for e in await audit_events(action="staff.invited")]
    assert "not-an-email" not in invited and invited.count(other.email) == 0


async def test_deactivation_closes_the_users_sessions_and_is_audited(
    client, bo_app, redis, servers, app_key
):
    admin = await make_staff("admin", key=app_key)
    target = await make_staff("finance", key=app_key)
    async with new_client(bo_app) as theirs:
        await inject_session(theirs, redis, servers, target.id)
        assert (await theirs.get("/backoffice")).status_code == 200

        await inject_session(client, redis, servers, admin.id)
        done = await post_form(client, f"/backoffice/users/{target.id}/deactivate")
        assert done.status_code == 303
        page = await client.get("/backoffice/users")
        assert "Desactivamos a" in main(page).text()
        assert "Desactivado" in row_of(page, target.id).text()

        assert (await theirs.get("/backoffice")).status_code == 303  # signed out at once
        again = await password_step(theirs, target)
        assert again.status_code == 422  # and cannot sign in again

    (event,) = await audit_events(target.id, "staff.deactivated")
    assert event["actor"] == admin.email and event["ip"]
    assert event["before"] == {"active": True} and event["after"] == {"active": False}

    # Deactivating twice changes nothing and records nothing more; reactivating undoes it.
    await post_form(client, f"/backoffice/users/{target.id}/deactivate")
    assert len(await audit_events(target.id, "staff.deactivated")) == 1
    back = await post_form(client, f"/backoffice/users/{target.id}/reactivate")
    assert back.status_code == 303
    assert (await staff_row(target.id))["active"] is True
    assert len(await audit_events(target.id, "staff.reactivated")) == 1


async def test_an_admin_cannot_deactivate_themselves(client, redis, servers, app_key):
    admin = await make_staff("admin", key=app_key)
    await inject_session(client, redis, servers, admin.id)
    page = await client.get("/backoffice/users")
    own_row = row_of(page, admin.id)
    assert not [f for f in own_row.find_all("form") if f.attrs["action"].endswith("/deactivate")]

    refused = await post_form(client, f"/backoffice/users/{admin.id}/deactivate")
    assert refused.status_code == 303
    page = await client.get("/backoffice/users")
    assert "No puede desactivar su propio usuario." in main(page).text()
    assert (await staff_row(admin.id))["active"] is True
    assert await audit_events(admin.id, "staff.deactivated") == []


async def test_reset_totp_forces_enrollment_and_ends_old_sessions(
    client, bo_app, redis, servers, app_key
):
    admin = await make_staff("admin", key=app_key)
    target = await make_staff("agent", key=app_key)
    async with new_client(bo_app) as theirs:
        await inject_session(theirs, redis, servers, target.id)
        assert (await theirs.get("/backoffice")).status_code == 200

        await inject_session(client, redis, servers, admin.id)
        done = await post_form(client, f"/backoffice/users/{target.id}/reset-totp")
        assert done.status_code == 303
        assert "Restablecimos la verificación" in main(await client.get("/backoffice/users")).text()

        row = await staff_row(target.id)
        assert row["totp_secret_enc"] is None and row["totp_confirmed_at"] is None
        assert row["recovery_codes"] in ("[]", [])

        assert (await theirs.get("/backoffice")).status_code == 303
        theirs.cookies.clear()
        first = await password_step(theirs, target)
        assert first.headers["location"] == "/backoffice/login/enroll"
        old_code = await post_form(theirs, "/backoffice/login/code", code=code(target.secret, 1))
        assert old_code.status_code == 303 and "expired" in old_code.headers["location"]

    (event,) = await audit_events(target.id, "staff.totp_reset")
    assert event["actor"] == admin.email
    assert event["before"] == {"enrolled": True, "recovery_codes": 10}
    assert event["after"] == {"enrolled": False, "recovery_codes": 0}


async def test_unknown_user_id_is_a_404(client, redis, servers, app_key):
    admin = await make_staff("admin", key=app_key)
    await inject_session(client, redis, servers, admin.id)
    assert (await post_form(client, "/backoffice/users/999999999/reset-totp")).status_code == 404
    assert (await post_form(client, "/backoffice/users/999999999/deactivate")).status_code == 404


# --- the audit log page -------------------------------------------------------------------------


async def test_audit_log_filters_and_reads_only(client, redis, servers, app_key):
    admin = await make_staff("admin", key=app_key)
    target = await make_staff("agent", key=app_key)
    await inject_session(client, redis, servers, admin.id)
    await post_form(client, f"/backoffice/users/{target.id}/deactivate")

    page = await client.get("/backoffice/audit", params={"actor": admin.email})
    assert page.status_code == 200
    rows = parse(page.text).find("table", **{"class": "table bo-table bo-table--audit"})
    texts = [tr.text() for tr in rows.find("tbody").find_all("tr")]
    assert any("staff.deactivated" in t and f"#{target.id}" in t for t in texts)
    assert all(admin.email in t for t in texts)
    assert not [
        f
        for f in parse(page.text).find_all("form")
        if f.attrs.get("method") == "post"
        and f.attrs.get("action", "").startswith("/backoffice/audit")
    ]

    by_object = await client.get(
        "/backoffice/audit",
        params={
            "object_type": "staff_user",
            "object_id": str(target.id),
            "action": "staff.deactivated",
        },
    )
    body = parse(by_object.text).find("tbody")
    (only,) = body.find_all("tr")
    assert "active" in only.text() and "True" in only.text() and "False" in only.text()

    future = await client.get("/backoffice/audit", params={"from": "2999-01-01"})
    assert "No hay eventos con estos filtros." in main(future).text()

    bad = await client.get("/backoffice/audit", params={"from": "ayer", "to": "2020-13-01"})
    assert bad.status_code == 200
    tree = parse(bad.text)
    assert tree.by_id("from-error") is not None and tree.by_id("to-error") is not None

    fragment = await client.get(
        "/backoffice/audit", params={"actor": admin.email}, headers={"HX-Request": "true"}
    )
    root = parse(fragment.text)
    assert root.find("html") is None and root.by_id("audit") is not None


async def test_audit_log_pages(client, redis, servers, app_key):
    admin = await make_staff("admin", key=app_key)
    await inject_session(client, redis, servers, admin.id)
    victims = [await make_staff("agent", key=app_key) for _ in range(3)]
    for victim in victims:  # each creation, deactivation and reactivation is an event
        for _ in range(9):
            await post_form(client, f"/backoffice/users/{victim.id}/deactivate")
            await post_form(client, f"/backoffice/users/{victim.id}/reactivate")
    first = await client.get("/backoffice/audit", params={"actor": admin.email})
    assert "Página 1 de 2" in main(first).text()
    next_link = next(a for a in parse(first.text).find_all("a") if a.attrs.get("rel") == "next")
    second = await client.get(next_link.attrs["href"])
    assert "Página 2 de 2" in main(second).text()
    assert f"actor={admin.email.replace('@', '%40')}" in next_link.attrs["href"]
    first_rows = parse(first.text).find("tbody").find_all("tr")
    second_rows = parse(second.text).find("tbody").find_all("tr")
    assert (len(first_rows), len(second_rows)) == (50, 4)
