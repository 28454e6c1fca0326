"""Portal sign-in over HTTP: magic link by real SMTP, knowledge check, sessions, CSRF, limits."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import msgspec
import pytest
from litestar import Litestar, Request, get

from portal.session import require_debtor, signed_in_debtors
from saldo.tables import Creditor, Debtor, Interaction, MagicLinkToken
from tests.smtp_sink import SmtpSink
from tests.web.conftest import PROBES, AppFactory
from tests.web.html import Node, parse

BASE_URL = "http://testserver.local"
SESSION = "saldo_session"
CSRF = "saldo_csrf"
JSON = {"Accept": "application/json"}


@get("/_guarded", name="probe:guarded", guards=[require_debtor])
async def guarded(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return {"debtor_ids": signed_in_debtors(request)}


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def login_app(make_app: AppFactory, smtp: SmtpSink) -> Litestar:
    return make_app(extra_route_handlers=(PROBES, guarded), smtp_url=smtp.url, public_url=BASE_URL)


@pytest.fixture(autouse=True)
async def fresh_rate_limits(redis, servers) -> None:
    """Every request here comes from the test client's one IP: start each test at zero."""
    async for key in redis.scan_iter(match=f"{servers.redis_prefix}login:*"):
        await redis.delete(key)


def new_client(app: Litestar) -> httpx.AsyncClient:
    """A browser of its own. The app runs on the test's event loop (not in the thread of
    Litestar's test client), so its queries share the loop of the database pool the tests use.
    httpx's ASGI transport returns once the app is done, background tasks included, so a
    requested link is in the SMTP sink when the response arrives."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL)


@pytest.fixture
async def client(db: Any, login_app: Litestar) -> AsyncIterator[httpx.AsyncClient]:
    async with new_client(login_app) as browser:
        yield browser
    await login_app.state.redis.aclose()


# --- helpers ------------------------------------------------------------------------------------


def unique_email(name: str = "maria") -> str:
    return f"{name}.{secrets.token_hex(4)}@example.com"


def random_phone() -> str:
    return "+549" + "".join(secrets.choice("0123456789") for _ in range(10))


async def make_debtor(email: str, document: str = "27.345.678", **fields: Any) -> Debtor:
    creditor = Creditor(name=f"Acreedor {secrets.token_hex(4)}")
    await creditor.save()
    debtor = Debtor(
        creditor=creditor.id,
        external_id=secrets.token_hex(4),
        name=fields.pop("name", "María José Núñez"),
        document_number=document,
        email=email,
        **fields,
    )
    await debtor.save()
    return debtor


async def csrf_token(client: httpx.AsyncClient) -> str:
    if CSRF not in client.cookies:
        await client.get("/login")
    return client.cookies[CSRF]


async def post_form(client: httpx.AsyncClient, url: str, **fields: str):
    return await client.post(url, data={"_csrf_token": await csrf_token(client), **fields})


async def request_link(client: httpx.AsyncClient, contact: str):
    return await post_form(client, "/login", contact=contact)


def link_path(smtp: SmtpSink, email: str, index: int = -1) -> str:
    messages = smtp.to(email)
    assert messages, f"no mail for {email}"
    link = messages[index].link()
    assert link.startswith(f"{BASE_URL}/login/")
    return urlsplit(link).path


def session_id(client: httpx.AsyncClient) -> str | None:
    return client.cookies.get(SESSION)


async def stored_session(redis, servers, sid: str | None) -> dict[str, Any] | None:
    if not sid:
        return None
    raw = await redis.get(f"{servers.redis_prefix}session:{sid}")
    return None if raw is None else msgspec.json.decode(raw)


def main(response) -> Node:
    node = parse(response.text).by_id("main")
    assert node is not None
    return node


def heading(response) -> str:
    h1 = parse(response.text).find("h1")
    assert h1 is not None
    return h1.text()


async def sign_in(client, smtp: SmtpSink, email: str, answer: str = "5678"):
    await request_link(client, email)
    path = link_path(smtp, email)
    opened = await post_form(client, path)
    assert opened.status_code == 303, opened.text
    return await post_form(client, "/login/verify", last4=answer)


async def token_row(path: str) -> dict[str, Any]:
    from saldo.auth.magic_links import derive_key, hash_token

    # The web settings generate SECRET_KEY into their data dir; the app derives the same key.
    token = path.rsplit("/", 1)[1]
    rows = await MagicLinkToken.select().output(load_json=True)
    settings_key = _app_key()
    digest = hash_token(token, derive_key(settings_key))
    matches = [r for r in rows if r["token_hash"] == digest]
    assert len(matches) == 1
    return matches[0]


_KEYS: dict[str, str] = {}


def _app_key() -> str:
    return _KEYS["secret"]


@pytest.fixture(autouse=True)
def remember_secret(web_settings) -> None:
    _KEYS["secret"] = web_settings.resolved_secret_key()


# --- the whole flow -----------------------------------------------------------------------------


async def test_sign_in_with_a_magic_link_and_the_knowledge_check(client, smtp, redis, servers):
    email = unique_email()
    first = await make_debtor(email)
    second = await make_debtor(email.upper(), document="DNI 27345678")  # another creditor

    page = await client.get("/login")
    assert page.status_code == 200
    assert heading(page) == "Ingrese a su cuenta"
    form = parse(page.text).find("form", method="post")
    assert form is not None and form.attrs["action"] == "/login"
    label = form.find("label")
    assert label is not None and label.attrs["for"] == "contact"
    assert form.find("input", name="_csrf_token") is not None

    sent = await request_link(client, email.upper())
    assert sent.status_code == 200
    assert heading(sent) == "Revise su correo"
    (mail,) = smtp.to(email)
    assert mail.message["Subject"] == "Su enlace para ingresar a Saldo"
    assert mail.link() in mail.html()
    path = link_path(smtp, email)

    # GET shows a Continue button and consumes nothing (mail scanners prefetch links).
    for _ in range(2):
        shown = await client.get(path)
        assert shown.status_code == 200
        assert heading(shown) == "Continúe para ingresar"
        button_form = parse(shown.text).find("form", method="post")
        assert button_form is not None and button_form.attrs["action"] == path
        assert button_form.find("button").text() == "Continuar"
        assert not button_form.find_all("input", type="text")
    assert (await token_row(path))["used_at"] is None

    # POST consumes the link; the pending sign-in lives in the session, not in a URL.
    opened = await post_form(client, path)
    assert opened.status_code == 303
    assert opened.headers["location"] == "/login/verify"
    assert (await token_row(path))["used_at"] is not None
    before_id = session_id(client)
    pending = await stored_session(redis, servers, before_id)
    assert pending is not None and "debtor_ids" not in pending

    check = await client.get("/login/verify")
    assert check.status_code == 200
    assert heading(check) == "Confirme su identidad"
    assert (await client.get("/_guarded")).status_code == 303  # not signed in yet

    wrong = await post_form(client, "/login/verify", last4="1234")
    assert wrong.status_code == 422
    field = next(f for f in parse(wrong.text).find_all("div") if f.attrs.get("class") == "field")
    entry = field.find("input", name="last4")
    error = field.by_id("last4-error")
    assert entry is not None and entry.attrs["aria-invalid"] == "true"
    assert "last4-error" in entry.attrs["aria-describedby"].split()
    assert error is not None and "no coinciden" in error.text()
    assert "Le quedan 2 intentos." in error.text()

    right = await post_form(client, "/login/verify", last4="5678")
    assert right.status_code == 303
    assert right.headers["location"] == "/account"

    after_id = session_id(client)
    assert after_id and before_id and after_id != before_id
    assert await stored_session(redis, servers, before_id) is None  # the old id is gone
    session = await stored_session(redis, servers, after_id)
    assert session is not None
    assert sorted(session["debtor_ids"]) == sorted([first.id, second.id])
    assert session["contact"] == email
    assert session["language"] == "es"
    assert "login_link_id" not in session

    allowed = await client.get("/_guarded")
    assert allowed.status_code == 200
    assert sorted(allowed.json()["debtor_ids"]) == sorted([first.id, second.id])
    account = await client.get("/account")
    assert not (account.status_code == 303 and account.headers["location"].startswith("/login")), (
        "a signed-in debtor must get past the /account guard"
    )

    logins = await Interaction.select().where(
        Interaction.debtor.is_in([first.id, second.id]) & (Interaction.kind == "portal_login")
    )
    assert len(logins) == 2

    # Signed in, /login goes to the account.
    again = await client.get("/login")
    assert again.status_code == 303 and again.headers["location"] == "/account"


async def test_a_phone_number_gets_the_link_by_email(client, smtp, redis, servers):
    email = unique_email("tel")
    phone = random_phone()
    debtor = await make_debtor(email, whatsapp=phone)
    typed = f"{phone[:3]} {phone[3]} {phone[4:6]} {phone[6:10]}-{phone[10:]}"

    sent = await request_link(client, typed)
    assert sent.status_code == 200
    assert email not in sent.text
    await post_form(client, link_path(smtp, email))
    signed = await post_form(client, "/login/verify", last4="5678")
    assert signed.status_code == 303
    session = await stored_session(redis, servers, session_id(client))
    assert session is not None and session["debtor_ids"] == [debtor.id]
    assert session["contact"] == phone.lstrip("+")


async def test_the_debtors_language_preference_follows_the_session(client, smtp, redis, servers):
    email = unique_email("tom")
    await make_debtor(email, language="en", name="Tomás Gutiérrez")
    await request_link(client, email)
    (mail,) = smtp.to(email)
    assert mail.message["Subject"] == "Your Saldo sign-in link"
    assert "Hello Tomás Gutiérrez," in mail.text()

    await post_form(client, link_path(smtp, email))
    await post_form(client, "/login/verify", last4="5678")
    page = await client.get("/logout", headers={"Accept-Language": "es-AR"})
    assert parse(page.text).find("html").attrs["lang"] == "en"
    assert heading(page) == "Sign out?"

    switched = await client.get("/logout?lang=es")
    assert heading(switched) == "¿Cerrar la sesión?"
    later = await client.get("/logout", headers={"Accept-Language": "en"})
    assert heading(later) == "¿Cerrar la sesión?"  # the switch holds for the session


async def test_login_pages_in_english(client):
    page = await client.get("/login?lang=en")
    assert heading(page) == "Sign in to your account"
    assert parse(page.text).find("label").text() == "Email or phone number"


# --- identical answers --------------------------------------------------------------------------


async def test_known_and_unknown_addresses_get_byte_identical_answers(client, smtp):
    known = unique_email("conocida")
    unknown = unique_email("desconocida")
    phone_known = random_phone()
    await make_debtor(known, phone=phone_known)

    await csrf_token(client)
    answers = [
        await request_link(client, contact)
        for contact in (known, unknown, phone_known, random_phone())
    ]
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    assert {a.headers["content-type"] for a in answers} == {"text/html; charset=utf-8"}
    assert all(SESSION not in a.headers.get("set-cookie", "") for a in answers)
    assert len(smtp.to(known)) == 2  # one for the address, one for the phone number
    assert smtp.to(unknown) == []


async def test_the_answer_leaves_before_the_address_is_looked_up(client, login_app, monkeypatch):
    """Whether an address is known is decided after the response is sent, so neither the
    body nor its timing can depend on it."""
    from saldo.services import portal_login

    events: list[str] = []
    lookup = portal_login._debtors_for

    async def traced_lookup(contact):
        events.append("lookup")
        return await lookup(contact)

    class TracedSender:
        async def send(self, message) -> None:
            events.append("mail")

    email = unique_email()
    await make_debtor(email)
    monkeypatch.setattr(portal_login, "_debtors_for", traced_lookup)
    login_app.state.email_sender = TracedSender()

    token = await csrf_token(client)
    body = urlencode({"_csrf_token": token, "contact": email}).encode()
    cookies = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
    request = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return request.pop(0) if request else {"type": "http.disconnect"}

    async def send(message):
        if message["type"] == "http.response.start":
            events.append(f"status {message['status']}")
        elif message["type"] == "http.response.body" and not message.get("more_body"):
            events.append("response sent")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/login",
        "raw_path": b"/login",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver.local"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"cookie", cookies.encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver.local", 80),
    }
    await login_app(scope, receive, send)
    assert events == ["status 200", "response sent", "lookup", "mail"]


# --- links that must not work -------------------------------------------------------------------


async def assert_link_refused(response, headline: str) -> None:
    assert response.status_code == 410
    assert heading(response) == headline
    again = [a for a in main(response).find_all("a") if a.attrs.get("href") == "/login"]
    assert again and again[0].text() == "Pedir un enlace nuevo"


async def test_a_link_works_once(client, login_app, smtp):
    email = unique_email()
    await make_debtor(email)
    await request_link(client, email)
    path = link_path(smtp, email)
    assert (await post_form(client, path)).status_code == 303

    async with new_client(login_app) as other:
        await assert_link_refused(await other.get(path), "Este enlace ya se usó")
        await assert_link_refused(await post_form(other, path), "Este enlace ya se usó")
        assert (await other.get("/login/verify")).headers["location"] == "/login"
        assert (await other.get("/_guarded")).status_code == 303


async def test_an_expired_link_never_signs_in(client, smtp):
    email = unique_email()
    await make_debtor(email)
    await request_link(client, email)
    path = link_path(smtp, email)
    row = await token_row(path)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    await MagicLinkToken.update({MagicLinkToken.expires_at: past}).where(
        MagicLinkToken.id == row["id"]
    )
    await assert_link_refused(await client.get(path), "Este enlace venció")
    await assert_link_refused(await post_form(client, path), "Este enlace venció")
    assert (await client.get("/_guarded")).status_code == 303


async def test_a_revoked_link_never_signs_in(client, smtp):
    email = unique_email()
    await make_debtor(email)
    await request_link(client, email)
    path = link_path(smtp, email)
    row = await token_row(path)
    await MagicLinkToken.update({MagicLinkToken.revoked_at: dt.datetime.now(dt.UTC)}).where(
        MagicLinkToken.id == row["id"]
    )
    await assert_link_refused(await post_form(client, path), "Este enlace no es válido")
    assert (await client.get("/_guarded")).status_code == 303


@pytest.mark.parametrize(
    "token",
    [secrets.token_urlsafe(32), "abc", "x" * 300, "%00", "%C3%B1" * 20, "a.b"],
)
async def test_forged_tokens_get_a_clear_page_never_a_500(client, token):
    await assert_link_refused(await client.get(f"/login/{token}"), "Este enlace no es válido")
    await assert_link_refused(
        await post_form(client, f"/login/{token}"), "Este enlace no es válido"
    )
    assert (await client.get("/_guarded")).status_code == 303


async def test_paths_that_are_not_tokens_are_never_a_500(client):
    for path in ("/login/..%2F..%2Fetc", "/login/a/b", "/login/" + "z" * 5000):
        assert (await client.get(path)).status_code in {404, 410}


async def test_three_wrong_answers_burn_the_link(client, smtp):
    email = unique_email()
    await make_debtor(email)
    await request_link(client, email)
    path = link_path(smtp, email)
    await post_form(client, path)

    first = await post_form(client, "/login/verify", last4="0000")
    assert "Le quedan 2 intentos." in first.text
    second = await post_form(client, "/login/verify", last4="1111")
    assert "Le queda 1 intento." in parse(second.text).by_id("last4-error").text()
    third = await post_form(client, "/login/verify", last4="2222")
    await assert_link_refused(third, "Desactivamos este enlace")

    row = await token_row(path)
    assert row["revoked_at"] is not None and row["knowledge_attempts"] == 3
    gone = await client.get("/login/verify")
    assert gone.status_code == 303 and gone.headers["location"] == "/login"
    late = await post_form(client, "/login/verify", last4="5678")
    assert late.status_code == 303 and late.headers["location"] == "/login"
    assert (await client.get("/_guarded")).status_code == 303


async def test_a_malformed_answer_is_explained_and_costs_no_try(client, smtp):
    email = unique_email()
    await make_debtor(email)
    await request_link(client, email)
    path = link_path(smtp, email)
    await post_form(client, path)
    for answer in ("12", "abcd", ""):
        response = await post_form(client, "/login/verify", last4=answer)
        assert response.status_code == 422
        error = parse(response.text).by_id("last4-error")
        assert error is not None and error.text() == "Ingrese exactamente 4 números."
    assert (await token_row(path))["knowledge_attempts"] == 0


async def test_invalid_contact_is_explained_next_to_the_field(client):
    response = await request_link(client, "no es un correo")
    assert response.status_code == 422
    entry = parse(response.text).find("input", name="contact")
    assert entry is not None and entry.attrs["aria-invalid"] == "true"
    assert entry.attrs["value"] == "no es un correo"
    error = parse(response.text).by_id("contact-error")
    assert error is not None and "válido" in error.text()


async def test_a_new_link_does_not_end_other_sessions(client, login_app, smtp):
    ana, luis = unique_email("ana"), unique_email("luis")
    await make_debtor(ana)
    await make_debtor(luis, document="30111222")
    assert (await sign_in(client, smtp, ana)).status_code == 303

    async with new_client(login_app) as other:
        assert (await sign_in(other, smtp, luis, answer="1222")).status_code == 303
        await request_link(other, ana)  # a new link for Ana, requested elsewhere

    assert (await client.get("/_guarded")).status_code == 200


# --- rate limits --------------------------------------------------------------------------------


async def test_per_address_limit_stops_mail_but_not_the_page(client, smtp):
    email = unique_email("limite")
    await make_debtor(email)
    answers = [await request_link(client, email) for _ in range(7)]
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1
    assert len(smtp.to(email)) == 5


async def test_per_ip_limit_answers_429(client):
    for _ in range(20):
        assert (await request_link(client, unique_email("ip"))).status_code == 200
    blocked = await request_link(client, unique_email("ip"))
    assert blocked.status_code == 429
    assert 0 < int(blocked.headers["retry-after"]) <= 900
    alert = parse(blocked.text).find("p", role="alert")
    assert alert is not None and "demasiados pedidos" in alert.text()
    assert parse(blocked.text).find("form", method="post") is not None


# --- CSRF ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/login", {"contact": "ana@example.com"}),
        (f"/login/{secrets.token_urlsafe(32)}", {}),
        ("/login/verify", {"last4": "5678"}),
        ("/logout", {}),
    ],
)
async def test_posts_without_the_csrf_token_are_refused(client, path, data):
    await client.get("/login")
    response = await client.post(path, data=data)
    assert response.status_code == 403


async def test_a_link_cannot_be_opened_without_the_csrf_token(client, smtp):
    email = unique_email()
    await make_debtor(email)
    await request_link(client, email)
    path = link_path(smtp, email)
    assert (await client.post(path)).status_code == 403
    assert (await token_row(path))["used_at"] is None


# --- logout -------------------------------------------------------------------------------------


async def test_logout_destroys_the_session_server_side(client, smtp, redis, servers):
    email = unique_email()
    debtor = await make_debtor(email)
    await sign_in(client, smtp, email)
    sid = session_id(client)
    assert await stored_session(redis, servers, sid) is not None

    confirm = await client.get("/logout")
    assert confirm.status_code == 200
    form = parse(confirm.text).find("form", method="post")
    assert form is not None and form.attrs["action"] == "/logout"

    out = await post_form(client, "/logout")
    assert out.status_code == 303
    location = urlsplit(out.headers["location"])
    assert location.path == "/login"
    assert parse_qs(location.query) == {"signed_out": ["1"], "lang": ["es"]}
    assert await redis.get(f"{servers.redis_prefix}session:{sid}") is None
    assert (await client.get("/_guarded")).status_code == 303

    page = await client.get(out.headers["location"])
    status = parse(page.text).find("p", role="status")
    assert status is not None and status.text() == "Cerró su sesión. ¡Hasta pronto!"
    outs = await Interaction.select().where(
        (Interaction.debtor == debtor.id) & (Interaction.kind == "portal_logout")
    )
    assert len(outs) == 1


async def test_logout_page_without_a_session_goes_to_login(client):
    response = await client.get("/logout")
    assert response.status_code == 303 and response.headers["location"] == "/login"


# --- the guard ----------------------------------------------------------------------------------


async def test_guarded_route_redirects_browsers_to_login(client):
    response = await client.get("/_guarded")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


async def test_guarded_route_tells_htmx_to_navigate(client):
    response = await client.get("/_guarded", headers={"HX-Request": "true"})
    assert response.headers["hx-redirect"] == "/login"


async def test_guarded_route_is_a_401_problem_for_json_clients(client):
    response = await client.get("/_guarded", headers=JSON)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Sign-in required"
