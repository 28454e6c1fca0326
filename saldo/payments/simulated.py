"""Demo mode's payment provider: Mercado Pago's side of a payment kept in `simulated_payment`.

Checkout sends the debtor to Saldo's own demo page (`/pay/simulated/<reference>`), where they
choose the outcome; the payment is then fetched and applied exactly as a real one would be.
"""

from __future__ import annotations

import datetime as dt
import uuid

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


class SimulatedProvider:
    name = "simulated"
    simulated = True

    async def create_checkout(self, request: CheckoutRequest) -> ProviderCheckout:
        return ProviderCheckout(
            preference_id=f"sim-{request.reference}",
            init_point=f"/pay/simulated/{request.reference}",
        )

    async def fetch_payment(self, payment_id: str) -> ProviderPayment:
        if not payment_id.isdigit():
            raise ProviderPaymentNotFound(f"simulated payment {payment_id!r} does not exist")
        rows = await SimulatedPayment.select(
            *SimulatedPayment.all_columns(), SimulatedPayment.checkout.public_id
        ).where(SimulatedPayment.id == int(payment_id))
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
        """The debtor's choice on the demo page: a new payment for the checkout's amount."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown simulated outcome {outcome!r}")
        checkout = await CheckoutSession.objects().get(
            CheckoutSession.public_id == uuid.UUID(reference)
        )
        if checkout is None:
            raise ProviderPaymentNotFound(f"no checkout {reference}")
        status, detail, method = OUTCOMES[outcome]
        row = SimulatedPayment(
            checkout=checkout.id,
            amount=checkout.amount,
            currency=checkout.currency,
            status=status,
            status_detail=detail,
            method=method,
        )
        await row.save()
        return await self.fetch_payment(str(row.id))

    async def set_status(self, payment_id: str, status: str, status_detail: str = "") -> None:
        """Move a simulated payment on (a voucher paid or expired, a refund)."""
        await SimulatedPayment.update(
            {
                SimulatedPayment.status: status,
                SimulatedPayment.status_detail: status_detail,
                SimulatedPayment.updated_at: dt.datetime.now(dt.UTC),
            }
        ).where(SimulatedPayment.id == int(payment_id))


def _as_provider_payment(row: dict[str, object]) -> ProviderPayment:
    created = row["created_at"]
    assert isinstance(created, dt.datetime)
    status = str(row["status"])
    return ProviderPayment(
        id=str(row["id"]),
        status=status,
        status_detail=str(row["status_detail"]),
        amount=int(str(row["amount"])),
        currency=str(row["currency"]),
        external_reference=str(row["checkout.public_id"]),
        method=str(row["method"]),
        approved_at=row["updated_at"] if status == "approved" else None,  # type: ignore[arg-type]
        expires_at=created + dt.timedelta(days=3) if status == "pending" else None,
        raw={k: str(v) for k, v in row.items()},
    )
