"""Payment providers behind one Protocol: Mercado Pago (the official SDK) and the simulated
provider that demo mode uses when MERCADOPAGO_ACCESS_TOKEN is unset.

Amounts cross this boundary as integer minor units; `Decimal` exists only inside the adapters,
where Mercado Pago's payloads are built and read.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from saldo.errors import SaldoError

if TYPE_CHECKING:
    from saldo.settings import Settings


class Effect(StrEnum):
    """What a provider status means for the ledger."""

    apply = "apply"  # the money is ours: post the allocations
    reverse = "reverse"  # refunded, charged back or cancelled after approval: reverse them
    wait = "wait"  # pending, in process, in mediation: nothing yet (reminders pause)
    none = "none"  # rejected or unknown: nothing to post


_EFFECTS = {
    "approved": Effect.apply,
    "refunded": Effect.reverse,
    "charged_back": Effect.reverse,
    "cancelled": Effect.reverse,
    "pending": Effect.wait,
    "in_process": Effect.wait,
    "in_mediation": Effect.wait,
    "authorized": Effect.wait,
}


def effect_of(status: str) -> Effect:
    return _EFFECTS.get(status, Effect.none)


@dataclass(frozen=True)
class CheckoutItem:
    title: str
    amount: int  # minor units


@dataclass(frozen=True)
class CheckoutRequest:
    reference: str  # our CheckoutSession.public_id; Mercado Pago's external_reference
    currency: str
    items: list[CheckoutItem]
    payer_email: str
    back_urls: dict[str, str]  # "success", "pending", "failure" → absolute URLs
    notification_url: str
    expires_at: dt.datetime
    idempotency_key: str


@dataclass(frozen=True)
class ProviderCheckout:
    preference_id: str
    init_point: str  # where to send the debtor (absolute URL, or a path for the simulated one)


@dataclass(frozen=True)
class ProviderPayment:
    id: str
    status: str
    status_detail: str
    amount: int  # minor units of `currency`
    currency: str
    external_reference: str
    method: str
    approved_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None  # when a pending voucher/transfer lapses
    raw: dict[str, Any] = field(default_factory=dict)


class PaymentProvider(Protocol):
    name: str  # stored as Payment.provider
    simulated: bool

    async def create_checkout(self, request: CheckoutRequest) -> ProviderCheckout: ...

    async def fetch_payment(self, payment_id: str) -> ProviderPayment: ...

    async def search_payments(self, external_reference: str) -> list[ProviderPayment]: ...


class ProviderError(SaldoError):
    """The provider could not be reached or refused the request.

    `transient` is True for what a retry may fix (no connection, timeout, 5xx, 429) and False
    for a refusal (another 4xx); `status` is the provider's HTTP status when there was one.
    """

    status_code = 502
    title = "Payment provider unavailable"

    def __init__(self, message: str, *, status: int | None = None, transient: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.transient = transient


class ProviderPaymentNotFound(SaldoError):
    status_code = 404
    title = "Payment not found at the provider"


def provider_from_settings(settings: Settings) -> PaymentProvider:
    """Mercado Pago when MERCADOPAGO_ACCESS_TOKEN is set, else the simulated provider."""
    if settings.mercadopago_access_token:
        from saldo.payments.mercadopago import MercadoPagoProvider

        return MercadoPagoProvider(
            settings.mercadopago_access_token, api_url=settings.mercadopago_api_url
        )
    from saldo.payments.simulated import SimulatedProvider

    return SimulatedProvider()
