"""Bearer keys for `/api/v1`: who is calling, and may they do this.

A key (`saldo apikey create NAME`, see `saldo.services.apikeys`) reads
`saldo_<prefix>_<secret>`; only its SHA-256 is stored. The key's row is found by its public
prefix and the hash compared in constant time (`hmac.compare_digest`), so a guess learns nothing
from how long the answer took. A revoked key is refused like an unknown one, with its own reason.

Scopes (`api_key.scopes`): `read` for the GET routes, `write` for the upserts; a new key has
both. `last_used_at` is refreshed at most once a minute per key (a conditional UPDATE), so busy
integrations do not write on every request.
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
from dataclasses import dataclass
from typing import Any, Final, Literal

from saldo.services.apikeys import key_hash
from saldo.tables import ApiKey

__all__ = ["SCOPES", "ApiCaller", "Denied", "authenticate", "bearer_token"]

SCOPES: Final = ("read", "write")
_TOUCH_EVERY: Final = dt.timedelta(minutes=1)
_MAX_KEY_CHARS: Final = 200


@dataclass(frozen=True, slots=True)
class ApiCaller:
    key_id: int
    name: str
    scopes: frozenset[str]

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"api:{self.name}"


@dataclass(frozen=True, slots=True)
class Denied:
    """Why a request was refused: `status` 401 (who are you?) or 403 (not with this key)."""

    status: Literal[401, 403]
    reason: str
    scope: str = ""


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of an `Authorization: Bearer <key>` header, else None."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


async def authenticate(token: str | None, *, scope: str, now: dt.datetime) -> ApiCaller | Denied:
    """The caller behind `token` if it may use `scope`, else why not."""
    if token is None:
        return Denied(401, "missing bearer API key")
    row = await _find(token)
    if row is None:
        return Denied(401, "unknown API key")
    if row["revoked_at"] is not None:
        return Denied(401, "this API key was revoked")
    scopes = _scopes(row["scopes"])
    caller = ApiCaller(int(row["id"]), str(row["name"]), scopes)
    if scope not in scopes:
        return Denied(403, f"this API key lacks the {scope!r} scope", scope=scope)
    await ApiKey.raw(
        """UPDATE api_key SET last_used_at = {}
           WHERE id = {} AND (last_used_at IS NULL OR last_used_at < {})""",
        now,
        caller.key_id,
        now - _TOUCH_EVERY,
    )
    return caller


async def _find(token: str) -> dict[str, Any] | None:
    parts = token.split("_", 2)
    if len(token) > _MAX_KEY_CHARS or len(parts) != 3 or parts[0] != "saldo":
        return None
    prefix = parts[1]
    if not (prefix.isascii() and prefix.isalnum() and len(prefix) <= 16):
        return None
    try:
        digest = key_hash(token)
    except UnicodeEncodeError:
        return None
    rows = await ApiKey.raw(
        "SELECT id, name, key_hash, scopes, revoked_at FROM api_key WHERE prefix = {}", prefix
    )
    found = None
    for row in rows:  # every candidate is compared, so timing does not tell which matched
        if hmac.compare_digest(str(row["key_hash"]), digest):
            found = dict(row)
    return found


def _scopes(raw: Any) -> frozenset[str]:
    value = json.loads(raw) if isinstance(raw, str) else raw
    return frozenset(str(v) for v in value) if isinstance(value, list) else frozenset()
