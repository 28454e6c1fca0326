"""Builders for payment tests: a scripted in-process provider, checkouts, debtor addresses."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections import deque
from collections.abc import Sequence
from dataclasses import replace

from saldo.payments import ProviderError, ProviderPayment, ProviderPaymentNotFound
from saldo.tables import Account, CheckoutSession, Debtor

NOW = dt.datetime(2026, 11, 1, 15, 0, tzinfo=dt.UTC)


class ScriptedProvider:
    """A `PaymentProvider` whose payments the test sets; `script` queues one-off answers."""

    simulated = False

    def __init__(self) -> None:
        self.name = f"scripted-{secrets.token_hex(3)}"
        self.payments: dict[str, ProviderPayment] = {}
        self.script: dict[str, deque[str]] = {}
        self.fetches: list[str] = []
        self.searches: list[str] = []
        self.failures = 0

    def put(
        self,
        status: str,
        amount: int,
        currency: str,
        reference: str,
        *,
        payment_id: str | None = None,
        method: str = "account_money",
        expires_at: dt.datetime | None = None,
    ) -> str:
        pid = payment_id or str(secrets.randbelow(10**12))
        self.payments[pid] = ProviderPayment(
            id=pid,
            status=status,
            status_detail="accredited" if status == "approved" else status,
            amount=amount,
            currency=currency,
            external_reference=reference,
            method=method,
            approved_at=NOW if status == "approved" else None,
            expires_at=expires_at,
            raw={"id": pid, "status": status},
        )
        return pid

    def set_status(self, pid: str, status: str) -> None:
        self.payments[pid] = replace(self.payments[pid], status=status, raw={"status": status})

    async def fetch_payment(self, payment_id: str) -> ProviderPayment:
        self.fetches.append(payment_id)
        await asyncio.sleep(0)
        if self.failures:
            self.failures -= 1
            raise ProviderError("provider down")
        if payment_id not in self.payments:
            raise ProviderPaymentNotFound(payment_id)
        queued = self.script.get(payment_id)
        if queued:
            return replace(self.payments[payment_id], status=queued.popleft())
        return self.payments[payment_id]

    async def search_payments(self, external_reference: str) -> list[ProviderPayment]:
        self.searches.append(external_reference)
        return [p for p in self.payments.values() if p.external_reference == external_reference]

    async def create_checkout(self, request: object) -> object:  # pragma: no cover
        raise NotImplementedError


async def make_checkout(
    account: Account, provider: ScriptedProvider, amount: int, invoice_ids: Sequence[int] = ()
) -> CheckoutSession:
    checkout = CheckoutSession(
        account=account.id,
        amount=amount,
        currency=account.currency,
        invoice_ids=list(invoice_ids),
        provider=provider.name,
    )
    await checkout.save()
    return checkout


async def with_email(account: Account, email: str = "", language: str = "es") -> None:
    address = email or f"deudor-{secrets.token_hex(3)}@example.com"
    await Debtor.update({Debtor.email: address, Debtor.language: language}).where(
        Debtor.id == account.debtor
    )
