"""Every debtor-scoped route of the portal keeps each debtor to their own data.

The walker reads the routes the running app actually has (`route_handler_method_map`), keeps
those that come from `portal_router`, and:

- every route with a path parameter must be listed in `FOREIGN` (how to build another debtor's
  id for it, and the debtor's own id to show the route works) or in `PUBLIC` (why it is not
  debtor-scoped). A new parameterized route without an entry fails `test_every_parameterized_
  portal_route_is_covered`, and so does a stale entry;
- with another debtor's ids, every `FOREIGN` request answers 404 (never 403, never 500), and
  the same request with the signed-in debtor's own ids answers 200;
- every debtor-scoped route without path parameters shows only the signed-in debtor's data
  (pages and PDFs are searched for the other debtor's name, invoice numbers and email).

To cover a new route, add a `FOREIGN` entry: `(method, path template)` -> a function of the
test `World` returning `(foreign urls, own urls)`. `World` has two debtors: María (signed in)
and Julián (the other one); add to `tests/portal_data.py` whatever objects the route needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler

from portal import account
from portal.routes import portal_router
from portal.session import require_debtor
from tests.portal_data import World, build_world
from tests.web import portal_fixtures
from tests.web.dispute_world import add_disputes, disputes_of
from tests.web.pay_world import add_payments, payments_of
from tests.web.plan_world import add_plans, plans_of
from tests.web.portal_fixtures import csrf_token, pdf_text

client = portal_fixtures.client
sign_in = portal_fixtures.sign_in

Urls = tuple[list[str], list[str]]

#: Parameterized debtor-scoped routes: (foreign urls, own urls) for the signed-in María.
FOREIGN: dict[tuple[str, str], Callable[[World], Urls]] = {
    ("GET", "/invoices/{ref:str}"): lambda w: (
        [f"/invoices/{w.invoice('J-1')}", f"/invoices/{w.invoice('J-1')}.pdf"],
        [f"/invoices/{w.invoice('A-1')}", f"/invoices/{w.invoice('A-1')}.pdf"],
    ),
    ("GET", "/disputes/{dispute_id:int}"): lambda w: (
        [f"/disputes/{disputes_of(w).julian}"],
        [f"/disputes/{disputes_of(w).maria}"],
    ),
    ("POST", "/disputes/{dispute_id:int}/messages"): lambda w: (
        [f"/disputes/{disputes_of(w).julian}/messages"],
        [f"/disputes/{disputes_of(w).maria}/messages"],
    ),
    ("GET", "/disputes/{dispute_id:int}/attachments/{attachment_id:int}"): lambda w: (
        [
            f"/disputes/{disputes_of(w).julian}/attachments/{disputes_of(w).julian_file}",
            f"/disputes/{disputes_of(w).maria}/attachments/{disputes_of(w).julian_file}",
            f"/disputes/{disputes_of(w).julian}/attachments/{disputes_of(w).maria_file}",
        ],
        [f"/disputes/{disputes_of(w).maria}/attachments/{disputes_of(w).maria_file}"],
    ),
    ("GET", "/pay/return/{public_id:str}"): lambda w: (
        [f"/pay/return/{payments_of(w).julian_checkout}"],
        [f"/pay/return/{payments_of(w).maria_checkout}"],
    ),
    ("GET", "/pay/simulated/{public_id:str}"): lambda w: (
        [f"/pay/simulated/{payments_of(w).julian_checkout}"],
        [f"/pay/simulated/{payments_of(w).maria_checkout}"],
    ),
    ("GET", "/pay/claims/{claim_id:int}"): lambda w: (
        [f"/pay/claims/{payments_of(w).julian_claim}"],
        [f"/pay/claims/{payments_of(w).maria_claim}"],
    ),
    ("GET", "/pay/claims/{claim_id:int}/receipt"): lambda w: (
        [f"/pay/claims/{payments_of(w).julian_claim}/receipt"],
        [f"/pay/claims/{payments_of(w).maria_claim}/receipt"],
    ),
    ("GET", "/plans/{plan_id:int}/agreement.pdf"): lambda w: (
        [f"/plans/{plans_of(w).julian_agreed}/agreement.pdf", "/plans/2147483648/agreement.pdf"],
        [f"/plans/{plans_of(w).maria_agreed}/agreement.pdf"],
    ),
    ("POST", "/plans/{plan_id:int}/accept"): lambda w: (
        [f"/plans/{plans_of(w).julian_agreed}/accept"],
        [f"/plans/{plans_of(w).maria_offer}/accept"],
    ),
    ("POST", "/plans/{plan_id:int}/decline"): lambda w: (
        [f"/plans/{plans_of(w).julian_agreed}/decline"],
        [f"/plans/{plans_of(w).maria_offer_to_decline}/decline"],
    ),
}

#: Parameterized portal routes that are not debtor-scoped, and why.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/login/{token:str}"): "the token is the credential (tests/web/test_login.py)",
    ("POST", "/login/{token:str}"): "the token is the credential (tests/web/test_login.py)",
    ("GET", "/unsubscribe/{token:str}"): "a signed token (tests/web/test_unsubscribe.py)",
    ("POST", "/unsubscribe/{token:str}"): "a signed token (tests/web/test_unsubscribe.py)",
}

#: Query strings for debtor-scoped routes without path parameters that need one.
QUERIES: dict[tuple[str, str], str] = {
    ("GET", "/statement.pdf"): "from=2026-01-01&to=2026-12-31",
}

SKIPPED_METHODS = {"OPTIONS", "HEAD"}


def portal_routes(app: Litestar) -> dict[tuple[str, str], HTTPRouteHandler]:
    """(method, path) -> handler for every route the app serves from `portal_router`."""
    functions = {h.fn for route in portal_router.routes for h in route.route_handlers}
    found: dict[tuple[str, str], HTTPRouteHandler] = {}
    for path, methods in app.route_handler_method_map.items():
        for method, handler in methods.items():
            if method in SKIPPED_METHODS or not isinstance(handler, HTTPRouteHandler):
                continue
            if handler.fn in functions:
                found[(method, path)] = handler
    return found


def guards(handler: HTTPRouteHandler) -> list[Any]:
    return [guard for layer in handler.ownership_layers for guard in (layer.guards or [])]


def debtor_scoped(handler: HTTPRouteHandler) -> bool:
    return require_debtor in guards(handler)


@pytest.fixture(scope="module")
async def world(db, web_settings) -> World:
    world = await build_world()
    await add_disputes(world, web_settings.data_path)
    await add_payments(world, web_settings.data_path)
    await add_plans(world)
    return world


@pytest.fixture
def routes(make_app) -> dict[tuple[str, str], HTTPRouteHandler]:
    return portal_routes(make_app(extra_route_handlers=()))


def markers(world: World, who: str) -> list[str]:
    """Text that would betray one debtor's data on another debtor's page."""
    if who == "julian":
        return ["Julián", "Pérez Ibáñez", world.number("J-1"), f"julian.{world.tag}".lower(),
                "Plan móvil secreto"]  # fmt: skip
    return ["Núñez", world.number("A-1"), world.number("F-1"), f"maria.{world.tag}".lower(),
            "Abono fibra"]  # fmt: skip


def readable(response: httpx.Response) -> str:
    if response.headers.get("content-type", "").startswith("application/pdf"):
        return pdf_text(response.content)
    return response.text


# ---------------------------------------------------------------------------- the map is complete


def test_the_walker_finds_the_portal_routes(routes):
    assert ("GET", "/account") in routes
    assert ("GET", "/invoices/{ref:str}") in routes
    assert ("POST", "/preferences") in routes
    assert ("GET", "/healthz") not in routes  # not a portal route


def test_every_parameterized_portal_route_is_covered(routes):
    parameterized = {key for key in routes if "{" in key[1]}
    missing = parameterized - FOREIGN.keys() - PUBLIC.keys()
    assert missing == set(), (
        "add these routes to FOREIGN (another debtor's id must answer 404) or to PUBLIC"
    )
    stale = FOREIGN.keys() - parameterized
    assert stale == set(), "FOREIGN lists routes the portal no longer has"
    for key in FOREIGN:
        assert debtor_scoped(routes[key]), f"{key} needs guards=[require_debtor]"
    for key in PUBLIC.keys() & routes.keys():
        assert not debtor_scoped(routes[key]), f"{key} is debtor-scoped: move it to FOREIGN"


def test_every_account_route_requires_a_debtor(routes):
    functions = {h.fn for h in account.handlers if isinstance(h, HTTPRouteHandler)}
    mine = {key: h for key, h in routes.items() if h.fn in functions}
    assert len(mine) == len(account.handlers)
    assert [key for key, h in mine.items() if not debtor_scoped(h)] == []


# ---------------------------------------------------------------------------- foreign ids are 404


@pytest.mark.parametrize("key", sorted(FOREIGN), ids=lambda key: f"{key[0]} {key[1]}")
async def test_foreign_ids_answer_404(client, sign_in, world, key):
    method, _ = key
    foreign, own = FOREIGN[key](world)
    assert foreign and own
    await sign_in(world.maria_ids)
    token = csrf_token((await client.get("/preferences")).text)
    headers = {"x-csrf-token": token}
    for url in own:
        response = await client.request(method, url, headers=headers)
        # an empty POST is answered with its form again, with the errors (422), or it is done
        # and redirects (303)
        assert response.status_code in ({200} if method == "GET" else {200, 303, 422}), url
    for url in foreign:
        response = await client.request(method, url, headers=headers)
        assert response.status_code == 404, url
        assert not [m for m in markers(world, "julian") if m.lower() in readable(response).lower()]
        as_json = await client.request(
            method, url, headers={**headers, "Accept": "application/json"}
        )
        assert as_json.status_code == 404, url


# ---------------------------------------------------------------------------- no foreign data


def unparameterized_debtor_routes(routes) -> list[tuple[str, str]]:
    return sorted(key for key, h in routes.items() if "{" not in key[1] and debtor_scoped(h))


async def test_debtor_routes_without_parameters_show_only_the_signed_in_debtor(
    client, sign_in, world, routes
):
    keys = unparameterized_debtor_routes(routes)
    assert {("GET", "/account"), ("GET", "/preferences"), ("GET", "/statement.pdf")} <= set(keys)
    for me, other, ids in (
        ("maria", "julian", world.maria_ids),
        ("julian", "maria", [world.julian_id]),
    ):
        await sign_in(ids)
        token = csrf_token((await client.get("/preferences")).text)
        for method, path in keys:
            query = QUERIES.get((method, path))
            url = f"{path}?{query}" if query else path
            if method == "GET":
                response = await client.get(url)
                assert response.status_code == 200, url
                text = readable(response).lower()
                assert [m for m in markers(world, me) if m.lower() in text], (
                    f"{url} shows nothing of the signed-in debtor; pick a better marker"
                )
            else:  # an empty submission: re-shown forms must not carry anyone else's data
                response = await client.request(
                    method, url, data={"_csrf_token": token}, follow_redirects=False
                )
                assert response.status_code in {200, 303, 400, 422}, url
                text = readable(response).lower()
            leaked = [m for m in markers(world, other) if m.lower() in text]
            assert leaked == [], f"{method} {url} as {me} shows {other}'s data"
