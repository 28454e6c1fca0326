"""Back-office sign-in over HTTP: password, TOTP, enrollment, recovery codes, lockout, sessions."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from urllib.parse import parse_qs, urlsplit

import msgspec
import pyotp

from saldo.auth import totp
from saldo.services.staff_auth import LOCKOUT
from saldo.tables import StaffUser
from tests.web import backoffice_fixtures
from tests.web.backoffice_fixtures import (
    JSON,
    SESSION,
    audit_events,
    code,
    heading,
    inject_session,
    main,
    make_staff,
    new_client,
    password_step,
    post_form,
    sign_in,
    staff_row,
    stored_session,
)
from tests.web.html import parse

client = backoffice_fixtures.client
bo_app = backoffice_fixtures.bo_app
fresh_rate_limits = backoffice_fixtures.fresh_rate_limits
app_key = backoffice_fixtures.app_key

FAILED = "El correo o la contraseña no son correctos."


def alert_text(response) -> str:
    alert = next((p for p in main(response).find_all("p") if p.attrs.get("role") == "alert"), None)
    assert alert is not None, response.text[:800]
    return alert.text()


def field_value(response, name: str) -> str | None:
    field = next(
        (i for i in parse(response.text).find_all("input") if i.attrs.get("name") == name), None
    )
    return None if field is None else field.attrs.get("value", "")


# --- the password step --------------------------------------------------------------------------


async def test_login_page_is_a_real_form(client):
    page = await client.get("/backoffice/login")
    assert page.status_code == 200
    assert heading(page) == "Back office de cobranza"
    form = parse(page.text).find("form", method="post")
    assert form is not None and form.attrs["action"] == "/backoffice/login"
    labels = {label.attrs["for"] for label in form.find_all("label")}
    assert {"email", "password"} <= labels
    assert form.find("input", name="_csrf_token") is not None
    password = form.find("input", name="password")
    assert password.attrs["type"] == "password"
    assert password.attrs["autocomplete"] == "current-password"


async def test_wrong_password_unknown_email_and_inactive_user_answer_identically(client, app_key):
    known = await make_staff("agent", key=app_key)
    inactive = await make_staff("agent", key=app_key)
    await StaffUser.update({StaffUser.active: False}).where(StaffUser.id == inactive.id)

    wrong = await password_step(client, known, password="not the password at all")
    unknown = await post_form(
        client, "/backoffice/login", email="nobody.here@saldo.example", password="whatever pass"
    )
    off = await password_step(client, inactive)  # the right password, but deactivated

    for response in (wrong, unknown, off):
        assert response.status_code == 422
        assert alert_text(response).startswith(FAILED)
        assert SESSION not in response.headers.get("set-cookie", "")

    def page_without_email(response) -> str:
        text = main(response).text()
        email = field_value(response, "email") or ""
        return text.replace(email, "")

    assert page_without_email(wrong) == page_without_email(unknown) == page_without_email(off)

    reasons = {
        e["actor"]: e["after"]["reason"]
        for e in await audit_events(action="staff.login_failed")
        if e["actor"] in {known.email, inactive.email, "nobody.here@saldo.example"}
    }
    assert reasons == {
        known.email: "wrong_password",
        inactive.email: "inactive",
        "nobody.here@saldo.example": "unknown_email",
    }
    assert (await staff_row(known.id))["failed_attempts"] == 1
    assert (await staff_row(inactive.id))["failed_attempts"] == 0


async def test_unknown_email_costs_an_argon2_verification_like_a_known_one(client, app_key):
    known = await make_staff("agent", key=app_key)

    async def timed(**fields) -> float:
        start = time.perf_counter()
        response = await post_form(client, "/backoffice/login", **fields)
        assert response.status_code == 422
        return time.perf_counter() - start

    await timed(email="warm.up@saldo.example", password="x" * 12)  # the dummy hash is made once
    unknown = min([await timed(email="ghost@saldo.example", password="x" * 12) for _ in range(3)])
    wrong = min([await timed(email=known.email, password="x" * 12) for _ in range(3)])
    assert unknown > wrong * 0.5, (unknown, wrong)


async def test_empty_fields_are_a_form_error_not_a_failure(client, app_key):
    known = await make_staff("agent", key=app_key)
    response = await post_form(client, "/backoffice/login", email=known.email, password="")
    assert response.status_code == 422
    assert alert_text(response) == "Ingrese su correo y su contraseña."
    assert field_value(response, "email") == known.email
    assert (await staff_row(known.id))["failed_attempts"] == 0


async def test_too_many_attempts_from_one_ip_get_429(client):
    for _ in range(30):
        await post_form(client, "/backoffice/login", email="a@saldo.example", password="p")
    response = await post_form(client, "/backoffice/login", email="a@saldo.example", password="p")
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0
    assert "demasiados intentos" in alert_text(response)


# --- lockout ------------------------------------------------------------------------------------


async def test_lockout_after_five_failures_then_backoff_doubles(client, app_key):
    staff = await make_staff("finance", key=app_key)
    for _ in range(LOCKOUT.threshold):
        response = await password_step(client, staff, password="wrong password!")
        assert response.status_code == 422
    row = await staff_row(staff.id)
    assert row["failed_attempts"] == 5
    first_lock = row["locked_until"] - dt.datetime.now(dt.UTC)
    assert dt.timedelta(seconds=50) < first_lock <= dt.timedelta(seconds=60)
    assert [
        e["after"]["failed_attempts"] for e in await audit_events(staff.id, "staff.locked")
    ] == [5]

    # Locked: even the right password gets the very same answer.
    right = await password_step(client, staff)
    assert right.status_code == 422 and alert_text(right).startswith(FAILED)

    # The minute passes; the next failure locks again, twice as long.
    await StaffUser.raw(
        "UPDATE staff_user SET locked_until = now() - interval '1 second' WHERE id = {}", staff.id
    )
    await password_step(client, staff, password="wrong again!!")
    row = await staff_row(staff.id)
    second_lock = row["locked_until"] - dt.datetime.now(dt.UTC)
    assert dt.timedelta(seconds=110) < second_lock <= dt.timedelta(seconds=120)

    # Once it passes, the right password and a code sign in and reset the counter.
    await StaffUser.raw(
        "UPDATE staff_user SET locked_until = now() - interval '1 second' WHERE id = {}", staff.id
    )
    done = await sign_in(client, staff)
    assert done.status_code == 303 and done.headers["location"] == "/backoffice"
    row = await staff_row(staff.id)
    assert row["failed_attempts"] == 0 and row["locked_until"] is None


async def test_wrong_codes_count_towards_the_lockout(client, app_key):
    staff = await make_staff("agent", key=app_key)
    assert (await password_step(client, staff)).status_code == 303
    for attempt in range(LOCKOUT.threshold - 1):
        wrong = await post_form(client, "/backoffice/login/code", code="000000")
        assert wrong.status_code == 422, attempt
        assert "no es válido" in main(wrong).text()
    last = await post_form(client, "/backoffice/login/code", code="000000")
    assert last.status_code == 303
    assert last.headers["location"] == "/backoffice/login?notice=locked"
    page = await client.get(last.headers["location"])
    assert "bloqueamos el acceso" in main(page).text()
    # The pending sign-in is gone: a right code now changes nothing.
    late = await post_form(client, "/backoffice/login/code", code=code(staff.secret, 1))
    assert late.status_code == 303 and "notice=expired" in late.headers["location"]
    assert (await staff_row(staff.id))["locked_until"] is not None


# --- enrollment and the second factor -----------------------------------------------------------


async def test_first_sign_in_enrolls_totp_then_shows_recovery_codes_once(
    client, app_key, redis, servers
):
    staff = await make_staff("supervisor", key=app_key, enrolled=False, name="Inés Ortúzar")
    anonymous = await client.get("/backoffice/login")
    assert anonymous.status_code == 200

    first = await password_step(client, staff)
    assert first.status_code == 303
    assert first.headers["location"] == "/backoffice/login/enroll"
    assert (await client.get("/backoffice/login/code")).status_code == 303  # no code step yet

    page = await client.get("/backoffice/login/enroll")
    assert page.status_code == 200
    assert heading(page) == "Configure la verificación en dos pasos"
    tree = parse(page.text)
    svg = tree.find("svg", **{"class": "qr"})
    assert svg is not None and "style" not in page.text.split('class="qr"')[1].split("</svg>")[0]
    secret = tree.by_id("totp-secret").text().replace(" ", "")
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    link = next(a for a in tree.find_all("a") if a.attrs.get("href", "").startswith("otpauth://"))
    assert f"secret={secret}" in link.attrs["href"] and "issuer=Saldo" in link.attrs["href"]
    assert staff.email in main(page).text()
    # Reloading keeps the same secret (it waits in the session until confirmed).
    again = parse((await client.get("/backoffice/login/enroll")).text)
    assert again.by_id("totp-secret").text().replace(" ", "") == secret
    assert (await staff_row(staff.id))["totp_secret_enc"] is None

    wrong = await post_form(client, "/backoffice/login/enroll", code="123456")
    assert wrong.status_code == 422
    assert "no coincide" in main(wrong).text()

    before_id = client.cookies.get(SESSION)
    confirmed = await post_form(client, "/backoffice/login/enroll", code=pyotp.TOTP(secret).now())
    assert confirmed.status_code == 303
    assert confirmed.headers["location"] == "/backoffice/login/recovery-codes"
    assert client.cookies.get(SESSION) != before_id  # a new session id at sign-in
    assert await stored_session(redis, servers, before_id) is None

    row = await staff_row(staff.id)
    assert row["totp_confirmed_at"] is not None and row["totp_last_step"] is not None
    assert secret not in row["totp_secret_enc"]
    assert (
        totp.decrypt_secret(row["totp_secret_enc"], app_key, context=totp.staff_context(staff.id))
        == secret
    )

    # Anything else waits until the codes are saved.
    blocked = await client.get("/backoffice")
    assert blocked.status_code == 303
    assert blocked.headers["location"] == "/backoffice/login/recovery-codes"

    shown = await client.get("/backoffice/login/recovery-codes")
    assert shown.status_code == 200
    codes = [
        c.text() for c in parse(shown.text).find("ol", **{"class": "bo-codes"}).find_all("code")
    ]
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = (
        msgspec.json.decode(row["recovery_codes"])
        if isinstance(row["recovery_codes"], str)
        else row["recovery_codes"]
    )
    assert sorted(stored) == sorted(totp.hash_recovery_code(c) for c in codes)
    assert not any(c in row["recovery_codes"] for c in codes)

    done = await post_form(client, "/backoffice/login/recovery-codes")
    assert done.status_code == 303 and done.headers["location"] == "/backoffice"
    assert (await client.get("/backoffice/login/recovery-codes")).status_code == 303  # once
    home = await client.get("/backoffice")
    assert home.status_code == 200
    assert heading(home) == "Cuentas para trabajar hoy"  # a supervisor lands on the queue
    actions = [e["action"] for e in await audit_events(staff.id)]
    assert actions[-2:] == ["staff.totp_enrolled", "staff.login"]


async def test_the_same_code_is_refused_the_second_time(bo_app, app_key):
    staff = await make_staff("agent", key=app_key)
    current = code(staff.secret)
    async with new_client(bo_app) as first, new_client(bo_app) as second:
        assert (await sign_in(first, staff, current)).status_code == 303
        step = (await staff_row(staff.id))["totp_last_step"]

        replay = await sign_in(second, staff, current)
        assert replay.status_code == 422
        assert "ya se usó" in main(replay).text()
        assert (await second.get("/backoffice")).status_code == 303
        assert (await staff_row(staff.id))["totp_last_step"] == step


async def test_two_concurrent_sign_ins_with_one_code_let_exactly_one_in(bo_app, app_key):
    staff = await make_staff("agent", key=app_key)
    async with new_client(bo_app) as first, new_client(bo_app) as second:
        for browser in (first, second):
            assert (await password_step(browser, staff)).status_code == 303
        fresh = code(staff.secret, 1)
        answers = await asyncio.gather(
            post_form(first, "/backoffice/login/code", code=fresh),
            post_form(second, "/backoffice/login/code", code=fresh),
        )
    assert sorted(a.status_code for a in answers) == [303, 422]
    assert len(await audit_events(staff.id, "staff.login")) == 1


async def test_a_recovery_code_signs_in_once(client, bo_app, app_key):
    staff = await make_staff("finance", key=app_key)
    typed = staff.codes[3].upper().replace("-", " ")  # as someone might type it
    done = await sign_in(client, staff, typed)
    assert done.status_code == 303
    home = await client.get("/backoffice")
    assert "Le quedan 9." in main(home).text()
    assert len(msgspec.json.decode((await staff_row(staff.id))["recovery_codes"])) == 9
    (event,) = await audit_events(staff.id, "staff.login")
    assert event["after"] == {"method": "recovery_code", "recovery_codes_left": 9}

    async with new_client(bo_app) as other:
        again = await sign_in(other, staff, staff.codes[3])
        assert again.status_code == 422
        other_code = await sign_in(other, staff, staff.codes[4])
        assert other_code.status_code == 303


async def test_next_brings_the_user_back_and_foreign_targets_are_ignored(client, app_key):
    staff = await make_staff("admin", key=app_key)
    asked = await client.get("/backoffice/audit?action=staff.login")
    assert asked.status_code == 303
    login_url = asked.headers["location"]
    assert parse_qs(urlsplit(login_url).query)["next"] == ["/backoffice/audit?action=staff.login"]
    page = await client.get(login_url)
    assert field_value(page, "next") == "/backoffice/audit?action=staff.login"

    first = await password_step(client, staff, next_url="/backoffice/audit?action=staff.login")
    done = await post_form(
        client,
        first.headers["location"],
        code=code(staff.secret, 1),
        next="/backoffice/audit?action=staff.login",
    )
    assert done.headers["location"] == "/backoffice/audit?action=staff.login"

    for target in (
        "https://evil.example/",
        "//evil.example/backoffice",
        "/account",
        "/backoffice\\x",
    ):
        page = await client.get("/backoffice/login", params={"next": target})
        # signed in already: the login page forwards, never off the back office
        assert page.headers["location"] == "/backoffice", target


# --- sessions -----------------------------------------------------------------------------------


async def test_idle_and_absolute_expiry(client, app_key, redis, servers):
    staff = await make_staff("agent", key=app_key)
    assert (await sign_in(client, staff)).status_code == 303
    key = f"{servers.redis_prefix}session:{client.cookies[SESSION]}"
    assert (await client.get("/backoffice")).status_code == 200
    assert 0 < await redis.ttl(key) <= 30 * 60  # renewed on every request, 30 minutes idle

    await redis.pexpire(key, 1)  # idle for longer than the limit
    await asyncio.sleep(0.05)
    idle = await client.get("/backoffice")
    assert idle.status_code == 303 and idle.headers["location"].startswith("/backoffice/login")

    session_id = await inject_session(client, redis, servers, staff.id)
    assert (await client.get("/backoffice")).status_code == 200
    key = f"{servers.redis_prefix}session:{session_id}"
    data = msgspec.json.decode(await redis.get(key))
    data["created_at"] = int(time.time()) - 12 * 3600 - 5  # born more than 12 hours ago
    await redis.set(key, msgspec.json.encode(data), ex=600)
    old = await client.get("/backoffice")
    assert old.status_code == 303 and old.headers["location"].startswith("/backoffice/login")


async def test_sign_out_destroys_the_session_server_side(client, app_key, redis, servers):
    staff = await make_staff("agent", key=app_key)
    assert (await sign_in(client, staff)).status_code == 303
    session_id = client.cookies[SESSION]
    assert await stored_session(redis, servers, session_id) is not None

    home = await client.get("/backoffice")
    form = next(
        f
        for f in parse(home.text).find_all("form")
        if f.attrs.get("action") == "/backoffice/logout"
    )
    assert form.attrs["method"] == "post"
    out = await post_form(client, "/backoffice/logout")
    assert out.status_code == 303
    assert out.headers["location"].startswith("/backoffice/login?notice=signed_out")
    assert await stored_session(redis, servers, session_id) is None
    page = await client.get(out.headers["location"])
    assert "Cerró su sesión" in main(page).text()

    client.cookies.set(SESSION, session_id, domain="testserver.local")  # an old cookie: nothing
    assert (await client.get("/backoffice")).status_code == 303
    assert [e["action"] for e in await audit_events(staff.id)][-1] == "staff.logout"


async def test_debtor_and_staff_sessions_do_not_cross(client, app_key, redis, servers):
    staff = await make_staff("admin", key=app_key)
    await inject_session(client, redis, servers, staff.id)
    assert (await client.get("/backoffice")).status_code == 200
    account = await client.get("/account")
    assert account.status_code == 303 and account.headers["location"] == "/login"

    client.cookies.clear()
    # A debtor's session (even one that also carries a bogus staff value) opens no back office.
    await inject_session(client, redis, servers, staff.id, debtor_ids=[1])
    session_key = f"{servers.redis_prefix}session:{client.cookies[SESSION]}"
    await redis.set(
        session_key,
        msgspec.json.encode({"debtor_ids": [1], "created_at": int(time.time())}),
        ex=600,
    )
    denied = await client.get("/backoffice")
    assert denied.status_code == 303 and denied.headers["location"].startswith("/backoffice/login")


async def test_a_session_from_before_a_totp_reset_is_signed_out(client, app_key, redis, servers):
    staff = await make_staff("agent", key=app_key)
    await inject_session(client, redis, servers, staff.id)
    assert (await client.get("/backoffice")).status_code == 200
    await StaffUser.raw(
        "UPDATE staff_user SET totp_confirmed_at = now() + interval '1 second' WHERE id = {}",
        staff.id,
    )
    assert (await client.get("/backoffice")).status_code == 303


async def test_json_clients_get_401_not_a_redirect(client):
    response = await client.get("/backoffice", headers=JSON)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 401


async def test_htmx_requests_are_sent_to_sign_in_with_hx_redirect(client):
    response = await client.get("/backoffice/users", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.headers["hx-redirect"].startswith("/backoffice/login?next=")
