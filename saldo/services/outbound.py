"""Outbound webhooks: signed events an ERP subscribes to, so it can follow what happens in Saldo.

Events (`EVENTS`) and where they are born, each inside the transaction of the change it tells
about (so an event is never sent for a change that was rolled back):

- `payment.applied` — a payment was posted to an account's ledger (`ledger.post_payment`, the
  one path every applied payment takes: online, bank statement, manual);
- `plan.approved` — a payment plan became active (`plans.activate`: approved by staff,
  auto-approved within the policy, or a counter-offer the debtor accepted);
- `dispute.resolved` — a dispute was closed as accepted, partially accepted or rejected
  (`disputes.resolve`).

`emit(event, key, payload)` inserts one `webhook_delivery` per active endpoint subscribed to the
event, with `event_key` = `<event>:<key>:<endpoint id>` and ON CONFLICT DO NOTHING: an event
emitted twice is delivered once per endpoint.

`deliver_due(now=, client=, secret_key=)` (the `deliver_webhooks` job, every minute) claims the
pending deliveries that are due — a claim pushes `next_attempt_at` past `LEASE` and counts the
attempt, in a short transaction with SKIP LOCKED, so two workers never send one delivery at the
same time — and POSTs each to its endpoint. A 2xx answer marks it delivered; anything else
(another status, a timeout, a refused connection) schedules a retry after
`RETRY_BASE` × 2^(attempts − 1) (at most `RETRY_MAX`), and after `MAX_ATTEMPTS` the delivery is
marked failed. Delivery is at least once: a worker that dies after the POST sends it again
when the lease runs out, so receivers deduplicate by `X-Saldo-Event-Id`.

What an endpoint receives — `POST <url>` with `Content-Type: application/json` and

    {"id": "payment.applied:42", "type": "payment.applied",
     "created_at": "2026-03-01T12:00:00+00:00", "data": {...}}

    X-Saldo-Event: payment.applied
    X-Saldo-Event-Id: payment.applied:42         (the same for every endpoint and retry)
    X-Saldo-Delivery: 17                         (this endpoint's delivery)
    X-Saldo-Signature: t=1772366400,v1=5f0c…

`v1` is the hex HMAC-SHA256, keyed with the endpoint's secret (`whsec_…`, shown once by
`saldo webhook add`), of `"<t>.<raw body>"`, where `t` is the Unix time of the attempt. A
receiver recomputes it over the exact bytes it received, compares in constant time and refuses a
`t` older than a few minutes (`verify_signature` does all three). Secrets are stored encrypted
with AES-256-GCM under a key derived from SECRET_KEY, bound to the endpoint's id.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from saldo.auth.totp import SecretTampered, decrypt_secret, encrypt_secret
from saldo.db import DB
from saldo.errors import ValidationFailed
from saldo.tables import WebhookDelivery, WebhookEndpoint

__all__ = [
    "EVENTS",
    "MAX_ATTEMPTS",
    "DeliveryRun",
    "add_endpoint",
    "deliver_due",
    "dispute_resolved",
    "emit",
    "payment_applied",
    "plan_approved",
    "sign",
    "verify_signature",
]

PAYMENT_APPLIED: Final = "payment.applied"
PLAN_APPROVED: Final = "plan.approved"
DISPUTE_RESOLVED: Final = "dispute.resolved"
EVENTS: Final = (PAYMENT_APPLIED, PLAN_APPROVED, DISPUTE_RESOLVED)

MAX_ATTEMPTS: Final = 10
RETRY_BASE: Final = dt.timedelta(seconds=30)
RETRY_MAX: Final = dt.timedelta(hours=6)
LEASE: Final = dt.timedelta(minutes=10)
BATCH: Final = 50
PARALLEL: Final = 8
TIMEOUT_SECONDS: Final = 10.0
SIGNATURE_TOLERANCE: Final = dt.timedelta(minutes=5)
SIGNATURE_HEADER: Final = "X-Saldo-Signature"
_MAX_ERROR: Final = 500
_MAX_URL: Final = 2000


# ---------------------------------------------------------------------------- secrets


def _key(secret_key: str) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"saldo:webhook-secret:v1"
    ).derive(secret_key.encode())


def _context(endpoint_id: int) -> str:
    return f"webhook-endpoint:{endpoint_id}"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Saldo-Signature` value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str,
    header: str | None,
    body: bytes,
    *,
    now: dt.datetime,
    tolerance: dt.timedelta = SIGNATURE_TOLERANCE,
) -> bool:
    """What a receiver does: the header's `v1` matches the body and `t` is recent."""
    fields: dict[str, str] = {}
    for part in (header or "").split(","):
        name, _, value = part.strip().partition("=")
        fields.setdefault(name, value)
    stamp = fields.get("t", "")
    if not stamp.isdigit() or not stamp.isascii():
        return False
    if abs(now.timestamp() - int(stamp)) > tolerance.total_seconds():
        return False
    expected = sign(secret, int(stamp), body).partition(",v1=")[2]
    return hmac.compare_digest(expected, fields.get("v1", ""))


# ---------------------------------------------------------------------------- endpoints


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    id: int
    url: str
    events: tuple[str, ...]
    secret: str  # shown once


def _check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if len(url) > _MAX_URL or parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValidationFailed("the URL must be http(s)://host/…", field="url")
    return url


def _check_events(events: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(e.strip() for e in events if e.strip()))
    unknown = [e for e in chosen if e not in EVENTS]
    if unknown or not chosen:
        raise ValidationFailed(
            f"events: choose from {', '.join(EVENTS)}"
            + (f" (unknown: {', '.join(unknown)})" if unknown else ""),
            field="events",
        )
    return chosen


async def add_endpoint(url: str, events: Iterable[str], *, secret_key: str) -> NewEndpoint:
    """Register an endpoint for `events`; its signing secret is returned here and never again."""
    url, chosen = _check_url(url), _check_events(events)
    secret = f"whsec_{secrets.token_urlsafe(32)}"
    async with DB.transaction():
        rows = await WebhookEndpoint.raw(
            "SELECT nextval(pg_get_serial_sequence('webhook_endpoint', 'id')) AS id"
        )
        endpoint_id = int(rows[0]["id"])
        sealed = encrypt_secret(secret, _key(secret_key), context=_context(endpoint_id))
        await WebhookEndpoint.raw(
            """INSERT INTO webhook_endpoint (id, url, secret_enc, events, active, created_at)
               VALUES ({}, {}, {}, {}::jsonb, true, now())""",
            endpoint_id,
            url,
            sealed,
            json.dumps(list(chosen)),
        )
    return NewEndpoint(endpoint_id, url, chosen, secret)


# ---------------------------------------------------------------------------- emitting


async def emit(event: str, key: str | int, payload: Mapping[str, Any]) -> int:
    """Queue `event` for every active endpoint subscribed to it; returns how many were new.

    Runs in the caller's transaction. `key` identifies the object (a payment id, ...): the same
    event and key are queued once per endpoint however often this is called.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    rows = await WebhookDelivery.raw(
        """
        INSERT INTO webhook_delivery (endpoint, event, event_key, payload, status, attempts,
                                      last_error, next_attempt_at, created_at)
        SELECT e.id, {}, {} || ':' || e.id, {}::jsonb, 'pending', 0, '', now(), now()
        FROM webhook_endpoint e
        WHERE e.active AND e.events @> jsonb_build_array({}::text)
        ORDER BY e.id
        ON CONFLICT (event_key) DO NOTHING
        RETURNING id
        """,
        event,
        f"{event}:{key}",
        json.dumps(payload, default=_json_default),
        event,
    )
    return len(rows)


def _json_default(value: object) -> str:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    raise TypeError(f"cannot send {type(value).__name__} in a webhook")


async def _has_subscribers(event: str) -> bool:
    rows = await WebhookEndpoint.raw(
        """SELECT EXISTS (SELECT 1 FROM webhook_endpoint
                          WHERE active AND events @> jsonb_build_array({}::text)) AS found""",
        event,
    )
    return bool(rows[0]["found"])


async def payment_applied(payment_id: int) -> int:
    """Emit `payment.applied` for a payment just posted (in the posting's transaction)."""
    if not await _has_subscribers(PAYMENT_APPLIED):
        return 0
    rows = await WebhookDelivery.raw(
        """
        SELECT p.id, p.account, c.name AS creditor, d.external_id, p.provider,
               p.provider_payment_id, p.amount, p.currency, p.method, p.received_at,
               (SELECT coalesce(sum(e.amount), 0) FROM ledger_entry e
                WHERE e.account = p.account)::bigint AS balance
        FROM payment p JOIN account a ON a.id = p.account
        JOIN creditor c ON c.id = a.creditor JOIN debtor d ON d.id = a.debtor
        WHERE p.id = {}
        """,
        payment_id,
    )
    if not rows:
        return 0
    p = rows[0]
    allocations = await WebhookDelivery.raw(
        """SELECT pa.invoice, i.number, pa.amount FROM payment_allocation pa
           LEFT JOIN invoice i ON i.id = pa.invoice WHERE pa.payment = {} ORDER BY pa.id""",
        payment_id,
    )
    return await emit(
        PAYMENT_APPLIED,
        payment_id,
        {
            "payment_id": payment_id,
            "account_id": p["account"],
            "creditor": p["creditor"],
            "debtor_external_id": p["external_id"],
            "provider": p["provider"],
            "provider_payment_id": p["provider_payment_id"],
            "amount": int(p["amount"]),
            "currency": p["currency"],
            "method": p["method"],
            "received_at": p["received_at"],
            "allocations": [
                {"invoice_id": a["invoice"], "invoice_number": a["number"], "amount": a["amount"]}
                for a in allocations
            ],
            "balance": int(p["balance"]),
        },
    )


async def plan_approved(plan_id: int) -> int:
    """Emit `plan.approved` for a plan just made active (in that transaction)."""
    if not await _has_subscribers(PLAN_APPROVED):
        return 0
    rows = await WebhookDelivery.raw(
        """
        SELECT p.id, p.account, p.status, p.proposed_by, p.total, p.down_payment,
               p.installments_count, p.frequency, p.first_date, p.decided_at, a.currency,
               c.name AS creditor, d.external_id
        FROM payment_plan p JOIN account a ON a.id = p.account
        JOIN creditor c ON c.id = a.creditor JOIN debtor d ON d.id = a.debtor
        WHERE p.id = {}
        """,
        plan_id,
    )
    if not rows:
        return 0
    p = rows[0]
    installments = await WebhookDelivery.raw(
        "SELECT number, due_date, amount FROM installment WHERE plan = {} ORDER BY number",
        plan_id,
    )
    return await emit(
        PLAN_APPROVED,
        plan_id,
        {
            "plan_id": plan_id,
            "account_id": p["account"],
            "creditor": p["creditor"],
            "debtor_external_id": p["external_id"],
            "currency": p["currency"],
            "status": p["status"],
            "proposed_by": p["proposed_by"],
            "total": int(p["total"]),
            "down_payment": int(p["down_payment"]),
            "installments_count": int(p["installments_count"]),
            "frequency": p["frequency"],
            "first_date": p["first_date"],
            "approved_at": p["decided_at"],
            "installments": [
                {"number": i["number"], "due_date": i["due_date"], "amount": int(i["amount"])}
                for i in installments
            ],
        },
    )


async def dispute_resolved(dispute_id: int) -> int:
    """Emit `dispute.resolved` for a dispute just closed (in that transaction)."""
    if not await _has_subscribers(DISPUTE_RESOLVED):
        return 0
    rows = await WebhookDelivery.raw(
        """
        SELECT x.id, x.account, x.invoice, i.number, x.amount, x.reason_code, x.status,
               x.resolved_amount, x.resolved_at, a.currency, c.name AS creditor, d.external_id
        FROM dispute x JOIN account a ON a.id = x.account
        JOIN creditor c ON c.id = a.creditor JOIN debtor d ON d.id = a.debtor
        LEFT JOIN invoice i ON i.id = x.invoice
        WHERE x.id = {}
        """,
        dispute_id,
    )
    if not rows:
        return 0
    x = rows[0]
    return await emit(
        DISPUTE_RESOLVED,
        dispute_id,
        {
            "dispute_id": dispute_id,
            "account_id": x["account"],
            "creditor": x["creditor"],
            "debtor_external_id": x["external_id"],
            "invoice_id": x["invoice"],
            "invoice_number": x["number"],
            "currency": x["currency"],
            "amount": int(x["amount"]),
            "reason_code": x["reason_code"],
            "status": x["status"],
            "resolved_amount": x["resolved_amount"],
            "resolved_at": x["resolved_at"],
        },
    )


# ---------------------------------------------------------------------------- delivering


@dataclass(frozen=True, slots=True)
class DeliveryRun:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"delivered": self.delivered, "retrying": self.retrying, "failed": self.failed}


def retry_delay(attempts: int) -> dt.timedelta:
    """How long after its `attempts`-th failed attempt a delivery is tried again."""
    return min(RETRY_BASE * 2 ** max(attempts - 1, 0), RETRY_MAX)


async def _claim(now: dt.datetime, limit: int) -> list[dict[str, Any]]:
    async with DB.transaction():
        rows = await WebhookDelivery.raw(
            """
            UPDATE webhook_delivery d SET next_attempt_at = {}, attempts = d.attempts + 1
            FROM webhook_endpoint e
            WHERE e.id = d.endpoint AND d.id IN (
                SELECT id FROM webhook_delivery
                WHERE status = 'pending' AND next_attempt_at <= {}
                ORDER BY next_attempt_at, id
                LIMIT {}
                FOR UPDATE SKIP LOCKED)
            RETURNING d.id, d.endpoint, d.event, d.event_key, d.payload, d.attempts,
                      d.created_at, e.url, e.secret_enc, e.active
            """,
            now + LEASE,
            now,
            limit,
        )
    return [dict(r) for r in rows]


def _body(row: Mapping[str, Any]) -> bytes:
    payload = row["payload"]
    data = json.loads(payload) if isinstance(payload, str) else payload
    event_id = str(row["event_key"]).rsplit(":", 1)[0]
    envelope = {
        "id": event_id,
        "type": row["event"],
        "created_at": row["created_at"].isoformat(),
        "data": data,
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


async def _send(
    row: Mapping[str, Any], *, now: dt.datetime, client: httpx.AsyncClient, secret_key: str
) -> str | None:
    """POST one delivery; None when the endpoint took it, else what went wrong."""
    if not row["active"]:
        return "the endpoint was deactivated"
    try:
        secret = decrypt_secret(
            str(row["secret_enc"]), _key(secret_key), context=_context(int(row["endpoint"]))
        )
    except SecretTampered:
        return "the endpoint's secret does not decrypt (was SECRET_KEY changed?)"
    body = _body(row)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Saldo-Webhooks/1",
        "X-Saldo-Event": str(row["event"]),
        "X-Saldo-Event-Id": str(row["event_key"]).rsplit(":", 1)[0],
        "X-Saldo-Delivery": str(row["id"]),
        SIGNATURE_HEADER: sign(secret, int(now.timestamp()), body),
    }
    try:
        response = await client.post(
            str(row["url"]), content=body, headers=headers, timeout=TIMEOUT_SECONDS
        )
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:_MAX_ERROR] or type(exc).__name__
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"


async def _record(row: Mapping[str, Any], error: str | None, now: dt.datetime) -> str:
    if error is None:
        await WebhookDelivery.raw(
            """UPDATE webhook_delivery SET status = 'delivered', delivered_at = {},
                   next_attempt_at = NULL, last_error = ''
               WHERE id = {}""",
            now,
            row["id"],
        )
        return "delivered"
    attempts = int(row["attempts"])
    final = attempts >= MAX_ATTEMPTS or not row["active"]
    await WebhookDelivery.raw(
        """UPDATE webhook_delivery SET status = {}, last_error = {}, next_attempt_at = {}
           WHERE id = {}""",
        "failed" if final else "pending",
        error,
        None if final else now + retry_delay(attempts),
        row["id"],
    )
    return "failed" if final else "retrying"


async def deliver_due(
    *, now: dt.datetime, client: httpx.AsyncClient, secret_key: str, limit: int = BATCH
) -> DeliveryRun:
    """Send the deliveries that are due (up to `limit`), `PARALLEL` at a time."""
    rows = await _claim(now, limit)
    gate = asyncio.Semaphore(PARALLEL)

    async def one(row: Mapping[str, Any]) -> str:
        async with gate:
            error = await _send(row, now=now, client=client, secret_key=secret_key)
        return await _record(row, error, now)

    outcomes = await asyncio.gather(*(one(r) for r in rows))
    return DeliveryRun(
        delivered=outcomes.count("delivered"),
        retrying=outcomes.count("retrying"),
        failed=outcomes.count("failed"),
    )
