"""Every back-office route, walked as anonymous and as each role, against the permission matrix.

The walker reads the routes the running app serves under /backoffice (`route_handler_method_map`)
and requires each one to be listed in `EXPECTED` below — the roles that may use it, or PUBLIC
for the sign-in routes. A new route without an entry fails `test_every_route_is_in_the_matrix`,
and so does a stale entry. Then:

- anonymous: a protected route redirects a browser to /backoffice/login (303) and answers an
  API client 401; a public route never asks for a sign-in;
- each role: a route its role may use does not answer 401/403 (nor 5xx); any other answers
  403 with the back-office "no permission" page (and 403 problem+json for API clients);
- the guard on each route names a permission whose roles in `backoffice.permissions` are
  exactly the roles listed here, so the spec and the matrix cannot drift apart.

To cover a new route: add `(method, path) -> roles` to `EXPECTED` and, for a path parameter,
a value in `PATH_VALUES`.
"""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler

from backoffice.permissions import PERMISSIONS, PUBLIC, Requires
from backoffice.routes import backoffice_router
from tests.services.helpers import make_account
from tests.web import backoffice_fixtures
from tests.web.backoffice_fixtures import (
    JSON,
    csrf_token,
    inject_session,
    make_staff,
)
from tests.web.html import parse

client = backoffice_fixtures.client
bo_app = backoffice_fixtures.bo_app
app_key = backoffice_fixtures.app_key
fresh_rate_limits = backoffice_fixtures.fresh_rate_limits

ROLES = ("agent", "supervisor", "finance", "admin")
ALL = frozenset(ROLES)
ADMIN = frozenset({"admin"})
OPEN = "public"

#: (method, path) -> the roles that may use the route, or OPEN for the sign-in routes.
EXPECTED: dict[tuple[str, str], frozenset[str] | str] = {
    ("GET", "/backoffice"): ALL,
    ("GET", "/backoffice/login"): OPEN,
    ("POST", "/backoffice/login"): OPEN,
    ("GET", "/backoffice/login/code"): OPEN,
    ("POST", "/backoffice/login/code"): OPEN,
    ("GET", "/backoffice/login/enroll"): OPEN,
    ("POST", "/backoffice/login/enroll"): OPEN,
    ("GET", "/backoffice/login/recovery-codes"): ALL,
    ("POST", "/backoffice/login/recovery-codes"): ALL,
    ("GET", "/backoffice/reauth"): ALL,
    ("POST", "/backoffice/reauth"): ALL,
    ("POST", "/backoffice/logout"): ALL,
    ("GET", "/backoffice/invite/{token:str}"): OPEN,
    ("POST", "/backoffice/invite/{token:str}"): OPEN,
    ("GET", "/backoffice/users"): ADMIN,
    ("POST", "/backoffice/users"): ADMIN,
    ("POST", "/backoffice/users/{staff_id:int}/deactivate"): ADMIN,
    ("POST", "/backoffice/users/{staff_id:int}/reactivate"): ADMIN,
    ("POST", "/backoffice/users/{staff_id:int}/reset-totp"): ADMIN,
    ("GET", "/backoffice/audit"): frozenset({"admin", "supervisor"}),
    ("GET", "/backoffice/disputes"): frozenset({"agent", "supervisor"}),
    ("GET", "/backoffice/disputes/{dispute_id:int}"): frozenset({"agent", "supervisor"}),
    ("POST", "/backoffice/disputes/{dispute_id:int}/messages"): frozenset({"agent", "supervisor"}),
    ("POST", "/backoffice/disputes/{dispute_id:int}/resolve"): frozenset({"supervisor"}),
    ("GET", "/backoffice/disputes/{dispute_id:int}/attachments/{attachment_id:int}"): frozenset(
        {"agent", "supervisor"}
    ),
    ("GET", "/backoffice/disputes/reasons"): frozenset({"supervisor", "finance", "admin"}),
    ("GET", "/backoffice/disputes/reasons.csv"): frozenset({"supervisor", "finance", "admin"}),
    ("GET", "/backoffice/plans"): frozenset({"agent", "supervisor"}),
    ("GET", "/backoffice/plans/{plan_id:int}"): frozenset({"agent", "supervisor"}),
    ("POST", "/backoffice/plans/{plan_id:int}/approve"): frozenset({"agent", "supervisor"}),
    ("POST", "/backoffice/plans/{plan_id:int}/reject"): frozenset({"agent", "supervisor"}),
    ("POST", "/backoffice/plans/{plan_id:int}/counter"): frozenset({"agent", "supervisor"}),
    ("POST", "/backoffice/plans/{plan_id:int}/counter/preview"): frozenset({"agent", "supervisor"}),
    ("GET", "/backoffice/plans/{plan_id:int}/agreement.pdf"): frozenset({"agent", "supervisor"}),
    ("GET", "/backoffice/policies/plans"): ADMIN,
    ("POST", "/backoffice/policies/plans"): ADMIN,
    # finance: looking is payments.view, uploading payments.reconcile, clearing apply_unmatched
    ("GET", "/backoffice/reconciliation"): frozenset({"finance", "supervisor"}),
    ("GET", "/backoffice/reconciliation/export.csv"): frozenset({"finance", "supervisor"}),
    ("GET", "/backoffice/payments/unapplied"): frozenset({"finance", "supervisor"}),
    ("GET", "/backoffice/payments/unapplied/{line_id:int}"): frozenset({"finance", "supervisor"}),
    ("POST", "/backoffice/payments/unapplied/{line_id:int}/assign"): frozenset({"finance"}),
    ("POST", "/backoffice/payments/unapplied/{line_id:int}/split"): frozenset({"finance"}),
    ("POST", "/backoffice/payments/unapplied/{line_id:int}/not-ours"): frozenset({"finance"}),
    ("GET", "/backoffice/payments/online/{payment_id:int}"): frozenset({"finance", "supervisor"}),
    ("POST", "/backoffice/payments/online/{payment_id:int}/assign"): frozenset({"finance"}),
    ("GET", "/backoffice/bank/import"): frozenset({"finance"}),
    ("POST", "/backoffice/bank/import"): frozenset({"finance"}),
    ("GET", "/backoffice/bank/imports/{import_id:int}"): frozenset({"finance", "supervisor"}),
    ("GET", "/backoffice/kpis"): frozenset({"supervisor", "finance", "admin"}),
    ("GET", "/backoffice/kpis/export.csv"): frozenset({"supervisor", "finance", "admin"}),
    # messages: the outbox and previews (accounts.view)
    ("GET", "/backoffice/notifications"): ALL,
    ("GET", "/backoffice/notifications/preview"): ALL,
    ("GET", "/backoffice/notifications/preview/body"): ALL,
    ("GET", "/backoffice/notifications/{notification_id:int}"): ALL,
    ("GET", "/backoffice/notifications/{notification_id:int}/body"): ALL,
    # the work queue (at /backoffice), accounts and search
    ("POST", "/backoffice/queue/assign"): frozenset({"supervisor"}),
    ("GET", "/backoffice/accounts/{account_id:int}"): ALL,
    ("GET", "/backoffice/accounts/{account_id:int}/dossier.pdf"): ALL,
    ("POST", "/backoffice/accounts/{account_id:int}/contacts"): frozenset({"agent", "supervisor"}),
    ("POST", "/backoffice/accounts/{account_id:int}/pause"): frozenset({"agent", "supervisor"}),
    ("POST", "/backoffice/accounts/{account_id:int}/resume"): frozenset({"agent", "supervisor"}),
    ("POST", "/backoffice/accounts/{account_id:int}/stage"): frozenset({"agent", "supervisor"}),
    ("POST", "/backoffice/accounts/{account_id:int}/escalate"): frozenset({"agent", "supervisor"}),
    ("GET", "/backoffice/search"): ALL,
}

#: Values for path parameters (`victim` is a staff user the walk may change).
PATH_VALUES = {
    "{token:str}": lambda w: "not-a-real-invitation",
    "{staff_id:int}": lambda w: w["victim"],
    # no such dispute or file: the guard answers before the 404
    "{dispute_id:int}": lambda w: 2**31 - 7,
    "{attachment_id:int}": lambda w: 2**31 - 7,
    "{plan_id:int}": lambda w: 2**31 - 7,  # no such plan
    "{line_id:int}": lambda w: 2**31 - 7,  # no such bank line
    "{payment_id:int}": lambda w: 2**31 - 7,  # no such payment
    "{import_id:int}": lambda w: 2**31 - 7,  # no such bank import
    "{notification_id:int}": lambda w: 2**31 - 7,  # no such message
    "{account_id:int}": lambda w: w["account"],  # a real account: its pages render
}

SKIPPED_METHODS = {"OPTIONS", "HEAD"}


def backoffice_routes(app: Litestar) -> dict[tuple[str, str], HTTPRouteHandler]:
    functions = {h.fn for route in backoffice_router.routes for h in route.route_handlers}
    found: dict[tuple[str, str], HTTPRouteHandler] = {}
    for path, methods in app.route_handler_method_map.items():
        for method, handler in methods.items():
            if method in SKIPPED_METHODS or not isinstance(handler, HTTPRouteHandler):
                continue
            if handler.fn in functions or path.startswith("/backoffice"):
                found[(method, path)] = handler
    return found


def guards(handler: HTTPRouteHandler) -> list[Any]:
    return [guard for layer in handler.ownership_layers for guard in (layer.guards or [])]


def url(path: str, world: dict[str, Any]) -> str:
    for placeholder, value in PATH_VALUES.items():
        path = path.replace(placeholder, str(value(world)))
    assert "{" not in path, f"add a PATH_VALUES entry for {path}"
    return path


# --- the table ----------------------------------------------------------------------------------


def test_every_route_is_in_the_matrix(bo_app):
    served = set(backoffice_routes(bo_app))
    assert served, "no back-office routes found"
    assert served - set(EXPECTED) == set(), "add these routes to EXPECTED"
    assert set(EXPECTED) - served == set(), "remove stale EXPECTED entries"


def test_every_route_has_a_permission_guard_or_is_public_and_agrees_with_the_matrix(bo_app):
    for (method, path), handler in backoffice_routes(bo_app).items():
        expected = EXPECTED[(method, path)]
        permission_guards = [g for g in guards(handler) if isinstance(g, Requires)]
        if expected == OPEN:
            assert handler.opt.get(PUBLIC) is True, (method, path)
            assert not permission_guards, (method, path)
            continue
        assert handler.opt.get(PUBLIC) is not True, (method, path)
        assert len(permission_guards) == 1, f"{method} {path} needs exactly one requires()"
        permission = permission_guards[0].permission
        assert PERMISSIONS[permission] == expected, (method, path, permission)


def test_the_matrix_keeps_the_rules_the_business_asked_for():
    assert PERMISSIONS["payments.apply_unmatched"] == {"finance"}
    assert PERMISSIONS["plans.approve_above_policy"] == {"supervisor"}
    assert PERMISSIONS["users.manage"] == {"admin"}
    assert PERMISSIONS["policies.manage"] == {"admin"}
    assert set().union(*PERMISSIONS.values()) == ALL


def test_an_unknown_permission_fails_at_import_time():
    with pytest.raises(KeyError):
        Requires("users.delete_everyone")


# --- the walk -----------------------------------------------------------------------------------


@pytest.fixture
async def world(db, app_key) -> dict[str, Any]:
    staff = {role: await make_staff(role, key=app_key) for role in ROLES}
    victim = await make_staff("agent", key=app_key)
    account = await make_account(name="Cuenta del Recorrido")
    return {"staff": staff, "victim": victim.id, "account": account.id}


async def request(client, method: str, target: str, headers: dict[str, str] | None = None):
    if method == "GET":
        return await client.get(target, headers=headers)
    token = await csrf_token(client)
    return await client.post(target, data={"_csrf_token": token}, headers=headers)


async def test_anonymous_is_sent_to_sign_in_and_api_clients_get_401(client, bo_app, world):
    for (method, path), expected in EXPECTED.items():
        target = url(path, world)
        client.cookies.clear()
        response = await request(client, method, target)
        if expected == OPEN:
            assert response.status_code < 500, (method, path, response.status_code)
            location = response.headers.get("location", "")
            assert "next=" not in location, (method, path)
            continue
        assert response.status_code == 303, (method, path, response.status_code)
        assert response.headers["location"].startswith("/backoffice/login"), (method, path)
        client.cookies.clear()
        api = await request(client, method, target, headers=JSON)
        assert api.status_code == 401, (method, path, api.status_code)
        assert api.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("role", ROLES)
async def test_each_role_opens_exactly_what_the_matrix_allows(client, redis, servers, world, role):
    me = world["staff"][role]
    for (method, path), expected in EXPECTED.items():
        if expected == OPEN:
            continue
        target = url(path, world)
        client.cookies.clear()
        await inject_session(client, redis, servers, me.id)  # a new, fresh session each time
        response = await request(client, method, target)
        if role in expected:
            assert response.status_code not in (401, 403), (role, method, path)
            assert response.status_code < 500, (role, method, path, response.status_code)
            location = response.headers.get("location", "")
            guard_redirect = location == "/backoffice/login" or location.startswith(
                "/backoffice/login?next="
            )
            assert not guard_redirect, (role, method, path, location)
        else:
            assert response.status_code == 403, (role, method, path, response.status_code)
            page = parse(response.text)
            assert page.find("h1").text() == "No tiene permiso para ver esta página"
            nav = page.find("nav", **{"class": "bo-nav"})
            assert nav is not None  # still inside the back office, with the user's own nav
            client.cookies.clear()
            await inject_session(client, redis, servers, me.id)
            api = await request(client, method, target, headers=JSON)
            assert api.status_code == 403, (role, method, path)


@pytest.mark.parametrize("role", ROLES)
async def test_the_navigation_shows_only_what_the_role_may_open(
    client, redis, servers, world, role
):
    await inject_session(client, redis, servers, world["staff"][role].id)
    home = await client.get("/backoffice")
    assert home.status_code == 200
    nav = parse(home.text).find("nav", **{"class": "bo-nav"})
    links = {a.attrs["href"] for a in nav.find_all("a")}
    reachable = {
        path
        for (method, path), expected in EXPECTED.items()
        if method == "GET" and expected != OPEN and role in expected and "{" not in path
    }
    assert links <= reachable
    for path in ("/backoffice/users", "/backoffice/audit"):
        assert (path in links) == (role in EXPECTED[("GET", path)]), (role, path)
