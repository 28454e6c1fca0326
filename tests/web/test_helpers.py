"""The page-or-fragment and redirect helpers, language negotiation and session age (no server)."""

from __future__ import annotations

import pytest
from litestar.response import Redirect, Template
from litestar.testing import RequestFactory

from saldo.app import problem_for
from saldo.errors import Conflict, ValidationFailed
from saldo.web import (
    SESSION_ABSOLUTE_SECONDS,
    SESSION_CREATED_AT,
    negotiate_language,
    page_or_fragment,
    redirect_after_post,
    session_expired,
    wants_fragment,
)

PAGE = "portal/things/list.html"
FRAGMENT = "portal/things/_table.html"
HTMX = {"HX-Request": "true"}


def request(headers: dict[str, str] | None = None):
    return RequestFactory().get("/things", headers=headers or {})


def test_plain_request_gets_the_page_with_vary():
    response = page_or_fragment(request(), PAGE, FRAGMENT, context={"n": 1})
    assert isinstance(response, Template)
    assert response.template_name == PAGE
    assert response.context == {"n": 1}
    assert response.headers["Vary"] == "HX-Request"


def test_htmx_request_gets_the_fragment_with_vary():
    response = page_or_fragment(request(HTMX), PAGE, FRAGMENT)
    assert response.template_name == FRAGMENT
    assert response.headers["Vary"] == "HX-Request"


@pytest.mark.parametrize("extra", [{"HX-Boosted": "true"}, {"HX-History-Restore-Request": "true"}])
def test_boosted_and_history_restore_get_the_page(extra):
    req = request({**HTMX, **extra})
    assert not wants_fragment(req)
    assert page_or_fragment(req, PAGE, FRAGMENT).template_name == PAGE


def test_without_a_fragment_the_page_is_rendered_even_for_htmx():
    response = page_or_fragment(request(HTMX), PAGE)
    assert response.template_name == PAGE
    assert response.headers["Vary"] == "HX-Request"


def test_existing_vary_is_extended_not_replaced():
    response = page_or_fragment(
        request(HTMX), PAGE, FRAGMENT, headers={"Vary": "Accept-Language"}, status_code=422
    )
    assert response.headers["Vary"] == "Accept-Language, HX-Request"
    assert response.status_code == 422


def test_redirect_after_post_is_303_for_plain_forms():
    response = redirect_after_post(request(), "/account")
    assert isinstance(response, Redirect)
    assert response.status_code == 303
    assert response.headers["Vary"] == "HX-Request"
    assert response.url == "/account"


def test_redirect_after_post_is_hx_redirect_for_htmx():
    response = redirect_after_post(request(HTMX), "/account")
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == "/account"
    assert response.headers["Vary"] == "HX-Request"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "es"),
        ("", "es"),
        ("en-US,en;q=0.9", "en"),
        ("es-AR,es;q=0.9,en;q=0.8", "es"),
        ("fr-FR,en;q=0.5,es;q=0.7", "es"),
        ("fr-FR,de;q=0.5", "es"),
        ("en;q=0,es;q=0.1", "es"),
        ("EN-gb", "en"),
        ("en;q=abc, es", "es"),
    ],
)
def test_negotiate_language(header, expected):
    assert negotiate_language(header) == expected


def test_session_absolute_lifetime():
    now = 1_000_000.0
    assert not session_expired({SESSION_CREATED_AT: int(now) - 60}, now)
    assert session_expired({SESSION_CREATED_AT: int(now) - SESSION_ABSOLUTE_SECONDS - 1}, now)
    assert session_expired({"debtor": 1}, now)  # data without a birth date is not trusted
    assert not session_expired({}, now)


def test_problem_for_domain_errors():
    problem = problem_for(ValidationFailed("Monto inválido.", field="amount"))
    assert problem.as_dict() == {
        "type": "urn:saldo:problem:validation-failed",
        "title": "Invalid input",
        "status": 422,
        "detail": "Monto inválido.",
        "errors": [{"field": "amount", "message": "Monto inválido."}],
    }
    assert problem_for(Conflict("Ya existe.")).status == 409


def test_problem_for_unexpected_errors_hides_the_message():
    problem = problem_for(KeyError("secret"))
    assert problem.as_dict() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
    }
