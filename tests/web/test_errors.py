"""One error mapping: problem+json for API clients, a styled page for browsers, no traceback."""

from __future__ import annotations

import logging

import pytest

from tests.web.conftest import BOOM_SECRET
from tests.web.html import parse

JSON = {"Accept": "application/json"}


def assert_styled_page(response, status: int) -> None:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    page = parse(response.text)
    stylesheets = [
        link.attrs["href"]
        for link in page.find_all("link")
        if link.attrs.get("rel") == "stylesheet"
    ]
    assert stylesheets and stylesheets[0].startswith("/static/css/saldo.css")
    assert page.find("header") is not None and page.find("footer") is not None
    assert str(status) in page.by_id("main").text()


async def test_unknown_path_is_a_styled_404(client):
    response = await client.get("/no-such-page")
    assert_styled_page(response, 404)
    assert parse(response.text).find("h1").text() == "No encontramos esta página"


async def test_unknown_path_in_english(client):
    response = await client.get("/no-such-page", headers={"Accept-Language": "en"})
    assert_styled_page(response, 404)
    assert parse(response.text).find("h1").text() == "We could not find this page"


async def test_unknown_path_as_problem_json(client):
    response = await client.get("/no-such-page", headers=JSON)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {"type": "about:blank", "title": "Not Found", "status": 404}


async def test_api_paths_always_get_problem_json(client):
    response = await client.get("/api/v1/nothing-here", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


async def test_browser_accept_header_gets_html(client):
    accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = await client.get("/no-such-page", headers={"Accept": accept})
    assert_styled_page(response, 404)


async def test_unexpected_exception_is_a_500_page_without_details(client, caplog):
    with caplog.at_level(logging.ERROR, logger="saldo.app"):
        response = await client.get("/_probe/boom")
    assert_styled_page(response, 500)
    assert BOOM_SECRET not in response.text
    assert "Traceback" not in response.text and "RuntimeError" not in response.text
    assert parse(response.text).find("h1").text() == "Algo salió mal de nuestro lado"
    logged = [r for r in caplog.records if r.name == "saldo.app" and r.exc_info]
    assert logged, "the traceback must be logged"
    assert BOOM_SECRET in str(logged[0].exc_info[1])


async def test_unexpected_exception_as_problem_json(client, caplog):
    with caplog.at_level(logging.CRITICAL, logger="saldo.app"):
        response = await client.get("/_probe/boom", headers=JSON)
    assert response.status_code == 500
    assert response.json() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
    }
    assert BOOM_SECRET not in response.text


async def test_domain_not_found_shows_its_message(client):
    response = await client.get("/_probe/missing")
    assert_styled_page(response, 404)
    assert "No encontramos esa cuenta." in parse(response.text).by_id("main").text()

    problem = (await client.get("/_probe/missing", headers=JSON)).json()
    assert problem == {
        "type": "urn:saldo:problem:not-found",
        "title": "Not found",
        "status": 404,
        "detail": "No encontramos esa cuenta.",
    }


async def test_domain_validation_error_names_the_field(client):
    response = await client.get("/_probe/invalid", headers=JSON)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"] == [
        {"field": "amount", "message": "El monto debe ser mayor que cero."}
    ]
    page = await client.get("/_probe/invalid")
    assert_styled_page(page, 422)
    assert "El monto debe ser mayor que cero." in page.text


async def test_request_validation_error_lists_fields(client):
    response = await client.get("/_probe/typed?n=abc", headers=JSON)
    assert response.status_code == 400
    body = response.json()
    assert body["title"] == "Bad Request"
    assert [e["field"] for e in body["errors"]] == ["n"]
    assert_styled_page(await client.get("/_probe/typed?n=abc"), 400)


async def test_method_not_allowed_keeps_allow_header(client):
    response = await client.delete("/")
    assert_styled_page(response, 405)
    assert "GET" in response.headers["allow"]


@pytest.mark.parametrize("headers", [{}, {"HX-Request": "true"}])
async def test_post_without_csrf_token_is_a_styled_403(client, headers):
    await client.get("/")  # the CSRF cookie is set, but the token is not sent back
    response = await client.post("/_probe/form", data={"x": "1"}, headers=headers)
    assert_styled_page(response, 403)
    assert parse(response.text).find("h1").text() == "No pudimos verificar esta solicitud"


async def test_post_with_csrf_form_field_passes(client):
    await client.get("/")
    token = client.cookies["saldo_csrf"]
    response = await client.post("/_probe/form", data={"_csrf_token": token})
    assert response.status_code == 200
    assert response.json() == {"accepted": "yes"}


async def test_htmx_post_with_csrf_header_passes(client):
    await client.get("/")
    token = client.cookies["saldo_csrf"]
    response = await client.post(
        "/_probe/form", headers={"HX-Request": "true", "x-csrf-token": token}
    )
    assert response.status_code == 200


async def test_forged_csrf_token_is_rejected(client):
    await client.get("/")
    response = await client.post("/_probe/form", data={"_csrf_token": "0" * 128})
    assert response.status_code == 403


async def test_webhooks_are_exempt_from_csrf(client):
    response = await client.post("/webhooks/probe", json={"id": 1})
    assert response.status_code == 200
    assert response.json() == {"received": "yes"}
