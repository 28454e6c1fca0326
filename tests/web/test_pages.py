"""Landing and back office pages: language, vendored assets, headers."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from tests.web.html import parse

ROOT = Path(__file__).resolve().parents[2]
EXTERNAL = re.compile(r"^(https?:)?//", re.IGNORECASE)


def heading(markup: str) -> str:
    h1 = parse(markup).find("h1")
    assert h1 is not None
    return h1.text()


def html_lang(markup: str) -> str:
    html = parse(markup).find("html")
    assert html is not None
    return html.attrs["lang"]


async def test_landing_is_spanish_by_default(client):
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert html_lang(response.text) == "es"
    assert heading(response.text) == "Su cuenta, clara y al día."
    login = [a for a in parse(response.text).find_all("a") if a.attrs.get("href") == "/login"]
    assert login and login[0].text() == "Ingresar"


@pytest.mark.parametrize("accept_language", ["en", "en-US,en;q=0.9,es;q=0.5"])
async def test_landing_in_english_by_accept_language(client, accept_language):
    response = await client.get("/", headers={"Accept-Language": accept_language})
    assert html_lang(response.text) == "en"
    assert heading(response.text) == "Your account, clear and up to date."


async def test_lang_query_wins_and_is_remembered(client):
    response = await client.get("/?lang=en", headers={"Accept-Language": "es-AR"})
    assert html_lang(response.text) == "en"
    assert heading(response.text) == "Your account, clear and up to date."
    assert client.cookies.get("saldo_lang") == "en"

    later = await client.get("/backoffice", headers={"Accept-Language": "es-AR"})
    assert html_lang(later.text) == "en"
    assert heading(later.text) == "Collections back office"

    back = await client.get("/?lang=es")
    assert heading(back.text) == "Su cuenta, clara y al día."


async def test_unknown_lang_value_is_ignored(client):
    response = await client.get("/?lang=xx")
    assert response.status_code == 200
    assert html_lang(response.text) == "es"


async def test_backoffice_sends_anonymous_visitors_to_the_staff_sign_in(client):
    login = await client.get("/backoffice", follow_redirects=True)
    assert login.status_code == 200
    assert login.url.path == "/backoffice/login"
    fields = {i.attrs.get("name") for i in parse(login.text).find_all("input")}
    assert {"email", "password"} <= fields


async def test_pages_vary_on_hx_request(client):
    for path in ("/", "/backoffice"):
        for headers in ({}, {"HX-Request": "true"}):
            response = await client.get(path, headers=headers)
            assert response.headers["vary"] == "HX-Request"


async def test_htmx_is_vendored_and_served_from_static(client):
    page = parse((await client.get("/")).text)
    sources = [s.attrs.get("src", "") for s in page.find_all("script")]
    htmx = [src for src in sources if "htmx" in src]
    assert len(htmx) == 1 and htmx[0].startswith("/static/js/htmx.min.js")
    assert "defer" in page.find("script").attrs

    response = await client.get(htmx[0])
    assert response.status_code == 200
    assert "javascript" in response.headers["content-type"]
    body = response.content
    assert b'version:"2.' in body

    vendored = (ROOT / "static" / "js" / "VENDORED.md").read_text()
    assert hashlib.sha256(body).hexdigest() in vendored


@pytest.mark.parametrize("path", ["/", "/?lang=en", "/backoffice", "/no-such-page"])
async def test_no_external_scripts_styles_or_images(client, path):
    page = parse((await client.get(path)).text)
    urls = [s.attrs.get("src", "") for s in page.find_all("script")]
    urls += [link.attrs.get("href", "") for link in page.find_all("link")]
    urls += [img.attrs.get("src", "") for img in page.find_all("img")]
    assert urls and all(url.startswith("/static/") for url in urls), urls
    assert not [url for url in urls if EXTERNAL.match(url)]
    assert not page.find_all("style"), "inline <style> would break the CSP"
    assert not [s for s in page.find_all("script") if not s.attrs.get("src")], "inline script"


async def test_stylesheet_is_served(client):
    page = parse((await client.get("/")).text)
    href = next(
        link.attrs["href"]
        for link in page.find_all("link")
        if link.attrs.get("rel") == "stylesheet"
    )
    response = await client.get(href)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert "--color-primary" in response.text


async def test_csrf_token_reaches_htmx_through_body_hx_headers(client):
    response = await client.get("/")
    body = parse(response.text).find("body")
    assert body is not None
    token = client.cookies.get("saldo_csrf")
    assert token
    assert body.attrs["hx-headers"] == f'{{"x-csrf-token": "{token}"}}'


@pytest.mark.parametrize("path", ["/", "/no-such-page", "/healthz"])
async def test_security_headers(client, path):
    headers = (await client.get(path)).headers
    csp = headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["x-frame-options"] == "DENY"
    assert "strict-transport-security" not in headers  # only behind https


async def test_hsts_when_public_url_is_https(db, make_app):
    from litestar.testing import AsyncTestClient

    async with AsyncTestClient(make_app(public_url="https://saldo.example")) as client:
        response = await client.get("/healthz")
    assert response.headers["strict-transport-security"].startswith("max-age=")
