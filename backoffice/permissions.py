"""The back office's permission matrix — the one place that says which role may do what — and
the guards that enforce it on every route.

Every back-office route carries `guards=[requires("<permission>")]`, or is one of the sign-in
routes marked `opt={PUBLIC: True}`. `tests/web/test_backoffice_permissions.py` walks every
route the app serves under /backoffice as anonymous and as each role and fails on a route that
is neither.

What a guard answers:

- nobody signed in: HTML → 303 to /backoffice/login?next=…; JSON → 401 problem;
- signed in without the permission: 403 (a back-office page, or a problem for JSON);
- a sensitive action (`recent_code`) more than FRESH_SECONDS after the last code: HTML → 303 to
  the re-enter-your-code page, then back; JSON → 401 problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from backoffice.session import NEW_CODES, is_fresh, session_of, signed_in_staff
from saldo.errors import SaldoError
from saldo.services.staff import ROLES

AGENT, SUPERVISOR, FINANCE, ADMIN = "agent", "supervisor", "finance", "admin"
EVERYONE = frozenset(ROLES)

#: permission → the roles that have it.
PERMISSIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        # every signed-in user: the home page, re-authentication, recovery codes, sign-out
        "home.view": EVERYONE,
        "session.own": EVERYONE,
        # collections work
        "queue.view": frozenset({AGENT, SUPERVISOR}),
        "queue.assign": frozenset({SUPERVISOR}),
        "accounts.view": EVERYONE,
        "accounts.contact": frozenset({AGENT, SUPERVISOR}),  # calls, notes, promises, pauses
        "plans.review": frozenset({AGENT, SUPERVISOR}),  # within policy
        "plans.approve_above_policy": frozenset({SUPERVISOR}),
        "disputes.review": frozenset({AGENT, SUPERVISOR}),
        "disputes.resolve": frozenset({SUPERVISOR}),
        # money
        "payments.view": frozenset({FINANCE, SUPERVISOR}),
        "payments.apply_unmatched": frozenset({FINANCE}),
        "payments.reconcile": frozenset({FINANCE}),
        "kpis.view": frozenset({SUPERVISOR, FINANCE, ADMIN}),
        # administration
        "users.manage": frozenset({ADMIN}),
        "policies.manage": frozenset({ADMIN}),
        "audit.view": frozenset({SUPERVISOR, ADMIN}),
    }
)

#: Route opt flag of the sign-in routes, which need no signed-in user.
PUBLIC = "backoffice_public"
#: Route opt flag of the routes a user may open while new recovery codes wait to be read.
WHILE_CODES_PENDING = "backoffice_while_codes_pending"

assert set().union(*PERMISSIONS.values()) <= EVERYONE


def allowed(role: str, permission: str) -> bool:
    return role in PERMISSIONS[permission]


def permissions_of(role: str) -> frozenset[str]:
    return frozenset(name for name, roles in PERMISSIONS.items() if role in roles)


# --- errors (mapped to HTTP in backoffice/errors.py) --------------------------------------------


class StaffLoginRequired(SaldoError):
    status_code = 401
    title = "Sign-in required"

    def __init__(self) -> None:
        super().__init__("sign in to the back office first")


class PermissionDenied(SaldoError):
    status_code = 403
    title = "Forbidden"

    def __init__(self, permission: str) -> None:
        super().__init__(f"your role does not allow {permission}")
        self.permission = permission


class ReauthRequired(SaldoError):
    status_code = 401
    title = "Re-authentication required"

    def __init__(self) -> None:
        super().__init__("enter a current code from your authenticator app to continue")


class RecoveryCodesPending(SaldoError):
    status_code = 409
    title = "Recovery codes not saved"

    def __init__(self) -> None:
        super().__init__("save your recovery codes first")


# --- guards -------------------------------------------------------------------------------------


class Requires:
    """A Litestar guard: a signed-in staff user whose role has `permission`."""

    def __init__(self, permission: str) -> None:
        if permission not in PERMISSIONS:
            raise KeyError(f"{permission!r} is not in the permission matrix")
        self.permission = permission

    async def __call__(
        self, connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        staff = await signed_in_staff(connection)
        if staff is None:
            raise StaffLoginRequired()
        session = session_of(connection) or {}
        if session.get(NEW_CODES) and not handler.opt.get(WHILE_CODES_PENDING):
            raise RecoveryCodesPending()
        if not allowed(staff.role, self.permission):
            raise PermissionDenied(self.permission)

    def __repr__(self) -> str:
        return f"requires({self.permission!r})"


def requires(permission: str) -> Requires:
    return Requires(permission)


async def recent_code(
    connection: ASGIConnection[Any, Any, Any, Any], _handler: BaseRouteHandler
) -> None:
    """A guard placed after `requires()`: the user proved a code within FRESH_SECONDS."""
    if not is_fresh(connection):
        raise ReauthRequired()
