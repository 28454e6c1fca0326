"""Demo mode's payment provider: Mercado Pago's side of a payment kept in `simulated_payment`.

Checkout sends the debtor to Saldo's own demo page (`/pay/simulated/<reference>`), where they
choose the outcome; the payment is then fetched and applied exactly as a real one would be.
`raw` has the shape of Mercado Pago's payment JSON, so whatever stores or shows it needs no
special case.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from saldo.db import DB
from saldo.money import to_decimal
from saldo.payments import (
    CheckoutRequest,
    ProviderCheckout,
    ProviderPayment,
    ProviderPaymentNotFound,
)
from saldo.tables import CheckoutSession, SimulatedPayment

OUTCOMES = {
    # outcome → (status, status_detail, method)
    "approved": ("approved", "accredited", "account_money"),
    "pending": ("pending", "pending_waiting_payment", "ticket"),
    "rejected": ("rejected", "cc_rejected_insufficient_amount", "credit_card"),
}
#: How long a simulated voucher stays payable, as Mercado Pago's cash vouchers do.
VOUCHER_LIFETIME = dt.timedelta(days=3)
_MAX_ID = 2**31 - 1  # simulated_payment.id is a PostgreSQL integer


class SimulatedProvider:
    name = "simulated"
    simulated = True

    async def create_checkout(self, request: CheckoutRequest) -> ProviderCheckout:
        return ProviderCheckout(
            preference_id=f"sim-{request.reference}",
            init_point=f"/pay/simulated/{request.reference}",
        )

    async def fetch_payment(self, payment_id: str) -> ProviderPayment:
        number = _payment_number(payment_id)
        rows = await SimulatedPayment.select(
            *SimulatedPayment.all_columns(), SimulatedPayment.checkout.public_id
        ).where(SimulatedPayment.id == number)
        if not rows:
            raise ProviderPaymentNotFound(f"simulated payment {payment_id} does not exist")
        return _as_provider_payment(rows[0])

    async def search_payments(self, external_reference: str) -> list[ProviderPayment]:
        try:
            public_id = uuid.UUID(external_reference)
        except ValueError:
            return []
        rows = await (
            SimulatedPayment.select(
                *SimulatedPayment.all_columns(), SimulatedPayment.checkout.public_id
            )
            .where(SimulatedPayment.checkout.public_id == public_id)
            .order_by(SimulatedPayment.id)
        )
        return [_as_provider_payment(row) for row in rows]

    async def simulate(self, reference: str, outcome: str) -> ProviderPayment:
        """The debtor's choice on the demo page: a new payment for the checkout's amount.

        A checkout pays once: when it already has an approved payment, that payment is returned
        and nothing new is created (a double submit cannot pay twice). The checkout row is
        locked meanwhile, so two concurrent choices cannot both create one.
        `ProviderPaymentNotFound` for an unknown checkout, `ValueError` for an unknown outcome.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown simulated outcome {outcome!r}")
        try:
            public_id = uuid.UUID(reference)
        except ValueError:
            raise ProviderPaymentNotFound(f"no checkout {reference!r}") from None
        async with DB.transaction():
            checkouts = await CheckoutSession.raw(
                "SELECT id, amount, currency FROM checkout_session WHERE public_id = {} FOR UPDATE",
                public_id,
            )
            if not checkouts:
                raise ProviderPaymentNotFound(f"no checkout {reference}")
            checkout = checkouts[0]
            approved = await (
                SimulatedPayment.select(SimulatedPayment.id)
                .where(
                    (SimulatedPayment.checkout == checkout["id"])
                    & (SimulatedPayment.status == "approved")
                )
                .order_by(SimulatedPayment.id)
                .first()
            )
            if approved is not None:
                payment_id = int(approved["id"])
            else:
                status, detail, method = OUTCOMES[outcome]
                rows = await SimulatedPayment.insert(
                    SimulatedPayment(
                        checkout=checkout["id"],
                        amount=checkout["amount"],
                        currency=checkout["currency"],
                        status=status,
                        status_detail=detail,
                        method=method,
                    )
                ).returning(SimulatedPayment.id)
                payment_id = int(rows[0]["id"])
        return await self.fetch_payment(str(payment_id))

    async def set_status(self, payment_id: str, status: str, status_detail: str = "") -> None:
        """Move a simulated payment on (a voucher paid or expired, a refund)."""
        rows = await (
            SimulatedPayment.update(
                {
                    SimulatedPayment.status: status,
                    SimulatedPayment.status_detail: status_detail,
                    SimulatedPayment.updated_at: dt.datetime.now(dt.UTC),
                }
            )
            .where(SimulatedPayment.id == _payment_number(payment_id))
            .returning(SimulatedPayment.id)
        )
        if not rows:
            raise ProviderPaymentNotFound(f"simulated payment {payment_id} does not exist")


def _payment_number(payment_id: str) -> int:
    text = payment_id.strip()
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= _MAX_ID:
        raise ProviderPaymentNotFound(f"simulated payment {payment_id!r} does not exist")
    return int(text)


def _as_provider_payment(row: dict[str, Any]) -> ProviderPayment:
    created: dt.datetime = row["created_at"]
    updated: dt.datetime = row["updated_at"]
    status = str(row["status"])
    amount = int(row["amount"])
    currency = str(row["currency"])
    reference = str(row["checkout.public_id"])
    approved_at = updated if status == "approved" else None
    expires_at = created + VOUCHER_LIFETIME if status == "pending" else None
    return ProviderPayment(
        id=str(row["id"]),
        status=status,
        status_detail=str(row["status_detail"]),
        amount=amount,
        currency=currency,
        external_reference=reference,
        method=str(row["method"]),
        approved_at=approved_at,
        expires_at=expires_at,
        raw={
            "id": int(row["id"]),
            "status": status,
            "status_detail": str(row["status_detail"]),
            "transaction_amount": str(to_decimal(amount, currency)),  # exact, never a float
            "currency_id": currency,
            "external_reference": reference,
            "payment_type_id": str(row["method"]),
            "payment_method_id": str(row["method"]),
            "date_created": created.isoformat(timespec="milliseconds"),
            "date_approved": approved_at.isoformat(timespec="milliseconds")
            if approved_at
            else None,
            "date_last_updated": updated.isoformat(timespec="milliseconds"),
            "date_of_expiration": expires_at.isoformat(timespec="milliseconds")
            if expires_at
            else None,
            "live_mode": False,
            "simulated": True,
        },
    )
