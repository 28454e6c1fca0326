"""A fake Mercado Pago API on 127.0.0.1, for what Saldo uses of the real one.

    with FakeMercadoPago(access_token="TEST-token") as mp:
        settings = replace(settings, mercadopago_api_url=mp.url, ...)
        payment_id = mp.add_payment(status="approved", amount="1234.56", currency="ARS",
                                    external_reference=checkout_public_id)
        note = mp.signed_notification(payment_id, secret="webhook-secret")
        client.post("/webhooks/mercadopago", params=note.query, headers=note.headers,
                    json=note.body)

Endpoints (all require `Authorization: Bearer <access_token>`, else 401):

- `POST /checkout/preferences` validates the items, currency and external_reference (400 with
  Mercado Pago's error shape otherwise) and answers 201 with `id`, `init_point`,
  `sandbox_init_point` and the body echoed. A repeated `X-Idempotency-Key` answers the first
  preference again instead of creating another.
- `GET /checkout/preferences/{id}`
- `GET /v1/payments/{id}` (404 for unknown ids) and `GET /v1/payments/search?external_reference=`.

Control: `add_payment`, `set_status`, `fail_next(n, status)` (the next n requests fail),
`delay` (seconds every answer waits), `requests` (every request received, in order).
The server is a `ThreadingHTTPServer`: requests are served concurrently, state sits behind a lock.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import secrets
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from saldo.money import EXPONENTS
from saldo.payments.signature import sign

__all__ = ["FakeMercadoPago", "Notification", "RecordedRequest"]

# Mercado Pago writes its dates with milliseconds and the seller's offset.
_TZ = dt.timezone(dt.timedelta(hours=-3))
_PREFERENCE_CURRENCIES = frozenset(EXPONENTS)


def mp_datetime(value: dt.datetime) -> str:
    """A datetime as Mercado Pago writes it: `2026-11-01T12:00:00.000-03:00`."""
    local = value.astimezone(_TZ)
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}" + "-03:00"


def json_number(value: Decimal) -> int | float:
    """`value` as the JSON number Mercado Pago would send (an int when whole)."""
    if value == value.to_integral_value():
        return int(value)
    number = float(value)
    assert Decimal(repr(number)) == value, f"{value} has no exact short JSON form"
    return number


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]  # first value of each parameter
    headers: dict[str, str]  # names lower-cased
    json: Any  # the parsed body, or None
    body: bytes = b""  # the body as sent


@dataclass(frozen=True)
class Notification:
    """A webhook as Mercado Pago posts it: query string, headers and JSON body."""

    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def query_string(self) -> str:
        return urlencode(self.query)


@dataclass
class _Failure:
    remaining: int
    status: int


@dataclass
class _State:
    preferences: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_idempotency_key: dict[str, dict[str, Any]] = field(default_factory=dict)
    payments: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    failures: list[_Failure] = field(default_factory=list)


class _ApiError(Exception):
    def __init__(self, status: int, message: str, error: str, cause: list[Any] | None = None):
        super().__init__(message)
        self.status = status
        self.body = {"message": message, "error": error, "status": status, "cause": cause or []}


class FakeMercadoPago:
    def __init__(
        self,
        access_token: str = "TEST-token",
        *,
        delay: float = 0.0,
        collector_id: int = 202809963,
    ) -> None:
        self.access_token = access_token
        self.delay = delay
        self.collector_id = collector_id
        self._lock = threading.Lock()
        self._state = _State()
        self._payment_ids = itertools.count(1_325_000_000 + secrets.randbelow(1_000_000) * 10)
        self._notification_ids = itertools.count(120_000_000_000 + secrets.randbelow(10**6) * 1000)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeMercadoPago is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeMercadoPago:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeMercadoPago:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ inspection

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._state.requests)

    @property
    def preferences(self) -> dict[str, dict[str, Any]]:
        """Preference id → the body it was created with."""
        with self._lock:
            return {
                pid: json.loads(json.dumps(p["body"])) for pid, p in self._state.preferences.items()
            }

    def preference_for(self, external_reference: str) -> dict[str, Any] | None:
        """The latest preference created for `external_reference` (its full answer), or None."""
        with self._lock:
            found = [
                p["answer"]
                for p in self._state.preferences.values()
                if p["body"].get("external_reference") == external_reference
            ]
        return json.loads(json.dumps(found[-1])) if found else None

    def payment(self, payment_id: str) -> dict[str, Any]:
        """The payment as `GET /v1/payments/{id}` answers it."""
        with self._lock:
            return json.loads(json.dumps(self._state.payments[str(payment_id)]))

    # ------------------------------------------------------------------ control

    def add_payment(
        self,
        *,
        status: str,
        amount: str | Decimal,
        currency: str,
        external_reference: str,
        status_detail: str = "accredited",
        payment_type_id: str = "account_money",
        payment_method_id: str = "account_money",
        date_of_expiration: dt.datetime | None = None,
        payment_id: int | None = None,
        payer_email: str = "test_user_123@testuser.com",
    ) -> str:
        """Record a payment (as if a debtor had paid at Mercado Pago); returns its id."""
        value = Decimal(amount)
        now = dt.datetime.now(dt.UTC)
        with self._lock:
            pid = payment_id if payment_id is not None else next(self._payment_ids)
            number = json_number(value)
            payment = {
                "id": pid,
                "date_created": mp_datetime(now),
                "date_approved": mp_datetime(now) if status == "approved" else None,
                "date_last_updated": mp_datetime(now),
                "date_of_expiration": (
                    mp_datetime(date_of_expiration) if date_of_expiration is not None else None
                ),
                "money_release_date": None,
                "operation_type": "regular_payment",
                "issuer_id": None,
                "payment_method_id": payment_method_id,
                "payment_type_id": payment_type_id,
                "status": status,
                "status_detail": status_detail,
                "currency_id": currency,
                "description": "Saldo",
                "live_mode": False,
                "collector_id": self.collector_id,
                "payer": {
                    "id": str(1_000_000 + pid % 1_000_000),
                    "email": payer_email,
                    "type": "guest",
                    "identification": {"type": None, "number": None},
                },
                "metadata": {},
                "external_reference": external_reference,
                "transaction_amount": number,
                "transaction_amount_refunded": 0,
                "installments": 1,
                "transaction_details": {
                    "net_received_amount": number,
                    "total_paid_amount": number,
                    "installment_amount": number,
                    "overpaid_amount": 0,
                },
                "fee_details": [],
                "captured": True,
                "refunds": [],
            }
            self._state.payments[str(pid)] = payment
        return str(pid)

    def set_status(self, payment_id: str, status: str, status_detail: str = "") -> None:
        """Move a payment on (a voucher paid or expired, a refund, a chargeback)."""
        now = mp_datetime(dt.datetime.now(dt.UTC))
        with self._lock:
            payment = self._state.payments[str(payment_id)]
            payment["status"] = status
            payment["status_detail"] = status_detail
            payment["date_last_updated"] = now
            if status == "approved" and payment["date_approved"] is None:
                payment["date_approved"] = now
            if status == "refunded":
                payment["transaction_amount_refunded"] = payment["transaction_amount"]

    def fail_next(self, n: int, status: int = 500) -> None:
        """The next `n` API requests answer `status` with an error body."""
        if n > 0:
            with self._lock:
                self._state.failures.append(_Failure(n, status))

    def signed_notification(
        self,
        payment_id: str,
        *,
        secret: str,
        request_id: str | None = None,
        ts_ms: int | None = None,
    ) -> Notification:
        """The webhook Mercado Pago would post about `payment_id`, signed with `secret`."""
        request_id = request_id if request_id is not None else str(uuid.uuid4())
        ts_ms = ts_ms if ts_ms is not None else int(time.time() * 1000)
        with self._lock:
            notification_id = next(self._notification_ids)
        data_id = str(payment_id)
        return Notification(
            query={"data.id": data_id, "type": "payment"},
            headers={
                "x-signature": sign(
                    secret=secret, data_id=data_id, request_id=request_id, ts_ms=ts_ms
                ),
                "x-request-id": request_id,
                "content-type": "application/json",
            },
            body={
                "action": "payment.updated",
                "api_version": "v1",
                "data": {"id": data_id},
                "date_created": mp_datetime(dt.datetime.fromtimestamp(ts_ms / 1000, dt.UTC)),
                "id": notification_id,
                "live_mode": False,
                "type": "payment",
                "user_id": str(self.collector_id),
            },
        )

    # ------------------------------------------------------------------ the API

    def _handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        parsed: Any = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        with self._lock:
            self._state.requests.append(
                RecordedRequest(method, parts.path, query, headers, parsed, body)
            )
            failure = self._state.failures[0] if self._state.failures else None
            if failure is not None:
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._state.failures.pop(0)
        if self.delay:
            time.sleep(self.delay)
        if failure is not None:
            error = "internal_error" if failure.status >= 500 else "too_many_requests"
            return failure.status, _ApiError(failure.status, error, error).body
        try:
            if headers.get("authorization") != f"Bearer {self.access_token}":
                raise _ApiError(401, "invalid access token", "unauthorized")
            return self._route(method, parts.path, query, headers, body)
        except _ApiError as exc:
            return exc.status, exc.body

    def _route(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        segments = [s for s in path.split("/") if s]
        if method == "POST" and segments == ["checkout", "preferences"]:
            return self._create_preference(headers, body)
        if method == "GET" and len(segments) == 3 and segments[:2] == ["checkout", "preferences"]:
            with self._lock:
                pref = self._state.preferences.get(segments[2])
                if pref is None:
                    raise _ApiError(404, "Preference not found", "not_found")
                return 200, json.loads(json.dumps(pref["answer"]))
        if method == "GET" and segments == ["v1", "payments", "search"]:
            return 200, self._search(query)
        if method == "GET" and len(segments) == 3 and segments[:2] == ["v1", "payments"]:
            with self._lock:
                payment = self._state.payments.get(segments[2])
                if payment is None:
                    raise _ApiError(
                        404,
                        "Payment not found",
                        "not_found",
                        [{"code": 2000, "description": "Payment not found", "data": None}],
                    )
                return 200, json.loads(json.dumps(payment))
        raise _ApiError(404, f"resource {path} not found", "not_found")

    def _create_preference(self, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        try:
            exact = json.loads(body, parse_float=Decimal) if body else None
        except ValueError:
            raise _ApiError(400, "invalid json body", "bad_request") from None
        causes = _preference_errors(exact)
        if causes:
            raise _ApiError(400, causes[0]["description"], "bad_request", causes)
        key = headers.get("x-idempotency-key")
        with self._lock:
            if key and key in self._state.by_idempotency_key:
                return 201, json.loads(json.dumps(self._state.by_idempotency_key[key]))
            pref_id = f"{self.collector_id}-{uuid.uuid4()}"
            echoed = json.loads(body)
            answer = {
                **echoed,
                "id": pref_id,
                "collector_id": self.collector_id,
                "client_id": str(self.collector_id)[:7],
                "operation_type": "regular_payment",
                "date_created": mp_datetime(dt.datetime.now(dt.UTC)),
                "init_point": f"{self.url}/checkout/v1/redirect?pref_id={pref_id}",
                "sandbox_init_point": f"{self.url}/checkout/v1/sandbox/redirect?pref_id={pref_id}",
            }
            self._state.preferences[pref_id] = {"body": echoed, "answer": answer}
            if key:
                self._state.by_idempotency_key[key] = answer
            return 201, json.loads(json.dumps(answer))

    def _search(self, query: dict[str, str]) -> dict[str, Any]:
        try:
            limit = max(1, min(int(query.get("limit", "30")), 1000))
            offset = max(0, int(query.get("offset", "0")))
        except ValueError:
            raise _ApiError(400, "limit and offset must be numbers", "bad_request") from None
        with self._lock:
            found = [
                p
                for p in self._state.payments.values()
                if all(
                    str(p.get(name)) == value
                    for name, value in query.items()
                    if name in ("external_reference", "status")
                )
            ]
            found.sort(key=lambda p: (p["date_created"], p["id"]))
            page = json.loads(json.dumps(found[offset : offset + limit]))
        return {"paging": {"total": len(found), "limit": limit, "offset": offset}, "results": page}


def _preference_errors(body: Any) -> list[dict[str, Any]]:
    """Mercado Pago's validation of a new preference, for the fields Saldo relies on."""

    def cause(code: str, description: str) -> dict[str, Any]:
        return {"code": code, "description": description, "data": None}

    if not isinstance(body, dict):
        return [cause("invalid_body", "body must be a JSON object")]
    causes: list[dict[str, Any]] = []
    items = body.get("items")
    if not isinstance(items, list) or not items:
        causes.append(cause("invalid_items", "items needed"))
        items = []
    currencies = set()
    for item in items:
        if not isinstance(item, dict):
            causes.append(cause("invalid_items", "item must be an object"))
            continue
        title = item.get("title")
        if not isinstance(title, str) or not title.strip():
            causes.append(cause("invalid_title", "item.title needed"))
        quantity = item.get("quantity")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            causes.append(cause("invalid_quantity", "item.quantity must be a positive integer"))
        currency = item.get("currency_id")
        if currency not in _PREFERENCE_CURRENCIES:
            causes.append(cause("invalid_currency_id", f"currency_id {currency!r} invalid"))
            continue
        currencies.add(currency)
        price = item.get("unit_price")
        if isinstance(price, bool) or not isinstance(price, int | Decimal):
            causes.append(cause("invalid_unit_price", "unit_price must be a number"))
        elif price <= 0:
            causes.append(cause("invalid_unit_price", "unit_price must be positive"))
        elif _decimals(Decimal(price)) > EXPONENTS[currency]:
            causes.append(
                cause("invalid_unit_price", f"unit_price has too many decimals for {currency}")
            )
    if len(currencies) > 1:
        causes.append(cause("invalid_currency_id", "all items must have the same currency_id"))
    reference = body.get("external_reference")
    if not isinstance(reference, str) or not reference or len(reference) > 256:
        causes.append(cause("invalid_external_reference", "external_reference needed"))
    return causes


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeMercadoPago

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timeout test) leaves a broken pipe behind: not an error.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeMercadoPago/1.0"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        assert isinstance(self.server, _Server)
        fake = self.server.fake
        status, answer = fake._handle(self.command, self.path, headers, body)
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-request-id", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _serve
    do_POST = _serve
    do_PUT = _serve
    do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        pass
