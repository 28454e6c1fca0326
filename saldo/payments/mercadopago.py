"""Mercado Pago through its official SDK: Checkout Pro preferences and payment look-ups.

The SDK is synchronous (`requests`), so every call runs in a worker thread. Its API base is a
private constant; `api_url` (MERCADOPAGO_API_URL) is honoured by an HTTP client that rewrites
that prefix, which is how tests point the adapter at the fake server in `tests/fakes`.

Amounts: the preference's `unit_price` is the exact decimal of the minor units (CLP and PYG have
no decimals, ARS/MXN/... two) written as a JSON number; a payment's `transaction_amount` is read
back through `Decimal(str(x))` and must be a whole number of minor units.

Errors: an unknown payment is `ProviderPaymentNotFound`; no connection, a timeout, 5xx and 429
are a transient `ProviderError`; any other refusal is a `ProviderError` with
`transient=False` and Mercado Pago's own message. Nothing of the SDK's leaks out.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, TypeVar

import mercadopago
import requests
from mercadopago.config import RequestOptions
from mercadopago.config.config import Config
from mercadopago.errors import MercadoPagoError
from mercadopago.http import HttpClient
from mercadopago.resources import Preference

from saldo.money import EXPONENTS, to_decimal
from saldo.payments import (
    CheckoutRequest,
    ProviderCheckout,
    ProviderError,
    ProviderPayment,
    ProviderPaymentNotFound,
)

__all__ = ["MercadoPagoProvider"]

T = TypeVar("T")

#: What the SDK prefixes to every path; replaced by `api_url`.
SDK_API_BASE: str = Config().api_base_url
#: Retries the SDK may make on its own (urllib3, HTTPS only, idempotent methods, no back-off).
#: Kept at one: callers (webhook processing, the worker) retry with their own schedule.
SDK_MAX_RETRIES = 1
#: Payments looked at per search page, and pages at most (a checkout has a handful of attempts).
SEARCH_PAGE = 100
SEARCH_MAX_PAGES = 10
_TRANSIENT_STATUSES = frozenset({408, 423, 424, 429})


class ApiUrlHttpClient(HttpClient):
    """The SDK's HTTP client, sending to `api_url` instead of api.mercadopago.com."""

    def __init__(self, api_url: str) -> None:
        super().__init__()
        self.api_url = api_url.rstrip("/")

    def request(
        self,
        method: str,
        url: str,
        maxretries: int | None = None,
        retry_on: list[int] | None = None,
        backoff_factor: float | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        if url.startswith(SDK_API_BASE):
            url = self.api_url + url[len(SDK_API_BASE) :]
        return super().request(method, url, maxretries, retry_on, backoff_factor, **kwargs)


class _Preferences(Preference):
    """`Preference.create` warns that `notification_url` is deprecated in favour of webhooks
    configured in Mercado Pago's panel. Saldo sends it on every preference so that each
    deployment receives its own notifications without panel set-up; the request is the same."""

    def create_with_notification_url(
        self, body: dict[str, Any], request_options: RequestOptions
    ) -> dict[str, Any]:
        return self._post(uri="/checkout/preferences", data=body, request_options=request_options)


class MercadoPagoProvider:
    name = "mercadopago"
    simulated = False

    def __init__(
        self,
        access_token: str,
        *,
        api_url: str = "https://api.mercadopago.com",
        timeout: float = 10.0,
    ) -> None:
        self._access_token = access_token
        self._timeout = float(timeout)
        self._http = ApiUrlHttpClient(api_url)
        self._sdk = mercadopago.SDK(
            access_token, http_client=self._http, request_options=self._options()
        )

    def _options(self, headers: dict[str, str] | None = None) -> RequestOptions:
        return RequestOptions(
            access_token=self._access_token,
            connection_timeout=self._timeout,
            max_retries=SDK_MAX_RETRIES,
            custom_headers=headers,
        )

    # ------------------------------------------------------------------ checkout

    async def create_checkout(self, request: CheckoutRequest) -> ProviderCheckout:
        """A Checkout Pro preference for `request`; the same idempotency key, the same one.

        Raises `ValueError` for a request no provider could accept (no items, a naive expiry,
        an idempotency key outside 1–64 characters, an unsupported currency).
        """
        body = preference_body(request)
        key = request.idempotency_key
        if not 1 <= len(key) <= 64:
            raise ValueError("the idempotency key must have 1 to 64 characters")
        # Lower-case, so it replaces the random key the SDK adds to every request.
        options = self._options({"x-idempotency-key": key})
        preferences = _Preferences(options, self._http)
        answer = await self._call(
            lambda: preferences.create_with_notification_url(body, options), "preference"
        )
        try:
            return ProviderCheckout(
                preference_id=_text(answer["id"]), init_point=_text(answer["init_point"])
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProviderError(f"Mercado Pago answered a preference without {exc}") from None

    # ------------------------------------------------------------------ payments

    async def fetch_payment(self, payment_id: str) -> ProviderPayment:
        if not payment_id.strip():
            raise ProviderPaymentNotFound("an empty payment id")
        payments = self._sdk.payment()
        answer = await self._call(lambda: payments.get(payment_id), "payment")
        return payment_from_json(answer)

    async def search_payments(self, external_reference: str) -> list[ProviderPayment]:
        """Every payment Mercado Pago has for `external_reference`, oldest first."""
        payments = self._sdk.payment()
        found: list[ProviderPayment] = []
        for page in range(SEARCH_MAX_PAGES):
            filters = {
                "external_reference": external_reference,
                "sort": "date_created",
                "criteria": "asc",
                "limit": SEARCH_PAGE,
                "offset": page * SEARCH_PAGE,
            }
            answer = await self._call(partial(payments.search, filters=filters), "search")
            results = answer.get("results")
            if not isinstance(results, list):
                raise ProviderError("Mercado Pago answered a payment search without results")
            found.extend(payment_from_json(item) for item in results)
            paging = answer.get("paging")
            total = paging.get("total") if isinstance(paging, dict) else None
            if not results or not isinstance(total, int) or len(found) >= total:
                break
        return found

    # ------------------------------------------------------------------ plumbing

    async def _call(self, call: Callable[[], Any], what: str) -> dict[str, Any]:
        """Run an SDK call in a thread; its answer's body, or the right error."""
        try:
            result = await asyncio.to_thread(call)
        except requests.RequestException as exc:
            raise ProviderError(f"Mercado Pago unreachable: {type(exc).__name__}") from exc
        except MercadoPagoError as exc:  # an answer that is not JSON
            raise ProviderError(
                f"Mercado Pago answered HTTP {exc.status_code} with an unreadable body",
                status=exc.status_code,
            ) from exc
        status = result.get("status") if isinstance(result, dict) else None
        body = result.get("response") if isinstance(result, dict) else None
        if not isinstance(status, int):
            raise ProviderError("Mercado Pago's SDK returned no status")
        if 200 <= status < 300 and isinstance(body, dict):
            return body
        message = _error_message(body) or f"HTTP {status}"
        if status == 404 and what == "payment":
            raise ProviderPaymentNotFound(f"Mercado Pago: {message}")
        transient = status >= 500 or status in _TRANSIENT_STATUSES
        if 200 <= status < 300:
            message = "an answer that is not a JSON object"
            transient = True
        raise ProviderError(
            f"Mercado Pago refused the {what} request ({status}): {message}",
            status=status,
            transient=transient,
        )


# ---------------------------------------------------------------------- payloads


def unit_price(amount: int, currency: str) -> int | float:
    """`amount` minor units as the JSON number Mercado Pago expects (exact, never rounded).

    Whole-unit currencies give an int; the others the float whose shortest repr is the exact
    decimal (1234.56), which holds up to 15 significant digits — far beyond any invoice.
    """
    value = to_decimal(amount, currency)
    if EXPONENTS[currency] == 0:
        return int(value)
    number = float(value)
    if Decimal(repr(number)) != value:
        raise ValueError(f"{value} {currency} cannot be sent exactly as a JSON number")
    return number


def preference_body(request: CheckoutRequest) -> dict[str, Any]:
    """The Checkout Pro preference for `request`."""
    if not request.items:
        raise ValueError("a checkout needs at least one item")
    if request.expires_at.utcoffset() is None:
        raise ValueError("expires_at must be timezone-aware")
    return {
        "items": [
            {
                "id": str(number),
                "title": item.title,
                "quantity": 1,
                "unit_price": unit_price(item.amount, request.currency),
                "currency_id": request.currency,
            }
            for number, item in enumerate(request.items, start=1)
        ],
        "payer": {"email": request.payer_email},
        "external_reference": request.reference,
        "back_urls": {
            "success": request.back_urls["success"],
            "pending": request.back_urls["pending"],
            "failure": request.back_urls["failure"],
        },
        "auto_return": "approved",
        "notification_url": request.notification_url,
        "expires": True,
        "expiration_date_to": request.expires_at.isoformat(timespec="milliseconds"),
    }


def payment_from_json(raw: Any) -> ProviderPayment:
    """A payment as `GET /v1/payments/{id}` answers it; `ProviderError` if it makes no sense."""
    if not isinstance(raw, dict):
        raise ProviderError("Mercado Pago answered a payment that is not a JSON object")
    try:
        currency = _text(raw["currency_id"])
        if currency not in EXPONENTS:
            raise ValueError(f"currency {currency!r} is not one Saldo handles")
        return ProviderPayment(
            id=_text(raw["id"]),
            status=_text(raw["status"]),
            status_detail=_text(raw.get("status_detail") or ""),
            amount=_minor_units(raw["transaction_amount"], currency),
            currency=currency,
            external_reference=_text(raw.get("external_reference") or ""),
            method=_text(raw.get("payment_type_id") or raw.get("payment_method_id") or ""),
            approved_at=_datetime(raw.get("date_approved")),
            expires_at=_datetime(raw.get("date_of_expiration")),
            raw=raw,
        )
    except (KeyError, TypeError, ValueError) as exc:
        shown = raw.get("id", "?")
        raise ProviderError(
            f"Mercado Pago payment {shown} is malformed: {exc}", transient=False
        ) from None


def _minor_units(value: Any, currency: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(f"transaction_amount {value!r} is not a number")
    try:
        exact = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"transaction_amount {value!r} is not a number") from None
    if not exact.is_finite():
        raise ValueError(f"transaction_amount {value!r} is not a number")
    minor = exact.scaleb(EXPONENTS[currency])
    if minor != minor.to_integral_value():
        raise ValueError(f"transaction_amount {value} has more decimals than {currency} allows")
    return int(minor)


def _datetime(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    parsed = dt.datetime.fromisoformat(_text(value))
    if parsed.utcoffset() is None:
        raise ValueError(f"date {value!r} has no UTC offset")
    return parsed


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"{value!r} is not text")
    return str(value)


def _error_message(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    message = str(body.get("message") or body.get("error") or "")
    causes = body.get("cause")
    if isinstance(causes, list):
        details = [
            str(c.get("description"))
            for c in causes
            if isinstance(c, dict) and c.get("description") and c.get("description") != message
        ]
        if details:
            message = f"{message} ({'; '.join(details)})" if message else "; ".join(details)
    return message
