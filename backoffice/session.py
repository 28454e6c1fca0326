"""Who is signed in to the back office, kept under its own keys of the server-side session.

  staff          {"id", "mfa", "auth_at"}  the signed-in user: id, the stamp of the TOTP
                                           enrollment signed in with, and when they last
                                           proved a code (sign-in or re-authentication)
  staff_pending  {"id", "enroll", "at"}    passed the password step, the code step is next
  staff_enroll   str                       the encrypted secret being enrolled
  staff_codes    list[str]                 recovery codes waiting to be shown, once
  staff_flash    dict                      a one-time notice for the next page

The portal's keys (`debtor_ids`, `contact`) grant nothing here and these grant nothing there;
both sign-ins start a new session (`rotate_session`), which drops the other's keys. Every
request re-reads the user: a deactivated user, or one whose TOTP was reset, is signed out.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection

from saldo.services import staff_auth
from saldo.services.audit import Actor
from saldo.services.staff_auth import StaffIdentity
from saldo.web import session_expired

STAFF = "staff"
PENDING = "staff_pending"
ENROLL_SECRET = "staff_enroll"  # noqa: S105 - a session key name
NEW_CODES = "staff_codes"
FLASH = "staff_flash"

PENDING_SECONDS = 10 * 60  # time to enter the code after the password
FRESH_SECONDS = 5 * 60  # a sensitive action needs a code proved this recently
_STATE_KEY = "saldo_staff"
_MISSING = object()


def session_of(connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any] | None:
    session = connection.scope.get("session")
    return session if isinstance(session, dict) else None


def staff_session(connection: ASGIConnection[Any, Any, Any, Any]) -> dict[str, Any] | None:
    session = session_of(connection)
    value = session.get(STAFF) if session else None
    if isinstance(value, dict) and isinstance(value.get("id"), int):
        return value
    return None


async def signed_in_staff(connection: ASGIConnection[Any, Any, Any, Any]) -> StaffIdentity | None:
    """The staff user of this session (checked against the database once per request)."""
    cached = connection.state.get(_STATE_KEY, _MISSING)
    if cached is not _MISSING:
        return cached if isinstance(cached, StaffIdentity) else None
    session = session_of(connection)
    if session and session_expired(session, time.time()):
        # Guards run before the app's `before_request` hook, which drops such sessions too late.
        session.clear()
    data = staff_session(connection)
    identity = await staff_auth.current_staff(data["id"]) if data else None
    if identity is not None and data is not None and data.get("mfa") != identity.mfa_stamp:
        identity = None  # signed in with an enrollment that has since been reset
    if identity is None and data is not None and session is not None:
        for key in (STAFF, NEW_CODES, FLASH):
            session.pop(key, None)
    connection.state[_STATE_KEY] = identity
    return identity


def current(connection: ASGIConnection[Any, Any, Any, Any]) -> StaffIdentity:
    """The user the guard let through (handlers behind `requires()` only)."""
    identity = connection.state.get(_STATE_KEY)
    if not isinstance(identity, StaffIdentity):
        raise RuntimeError("current() used on a route without a back-office guard")
    return identity


def is_fresh(connection: ASGIConnection[Any, Any, Any, Any], now: float | None = None) -> bool:
    data = staff_session(connection)
    auth_at = data.get("auth_at") if data else None
    if not isinstance(auth_at, int | float):
        return False
    return (time.time() if now is None else now) - auth_at <= FRESH_SECONDS


def fresh_until(connection: ASGIConnection[Any, Any, Any, Any]) -> dt.datetime | None:
    data = staff_session(connection)
    auth_at = data.get("auth_at") if data else None
    if not isinstance(auth_at, int | float) or not is_fresh(connection):
        return None
    return dt.datetime.fromtimestamp(auth_at + FRESH_SECONDS, dt.UTC)


def client_ip(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    return connection.client.host if connection.client else ""


def actor(connection: ASGIConnection[Any, Any, Any, Any]) -> Actor:
    identity = current(connection)
    return Actor(staff_id=identity.id, label=identity.email, ip=client_ip(connection))


def safe_next(value: str | None) -> str | None:
    """A back-office path to return to after signing in, or None for anything else."""
    if not value or len(value) > 500 or "\\" in value or any(ord(c) < 32 for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    if parts.path != "/backoffice" and not parts.path.startswith("/backoffice/"):
        return None
    if value.startswith("//") or "/../" in parts.path or parts.path.endswith("/.."):
        return None
    return value
