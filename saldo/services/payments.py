"""Online payments: the webhook inbox and exactly-once posting of what the provider reports.

The flow:

1. `receive_notification()` stores a provider notification in the `webhook_event` inbox, unique
   by the provider's event identity, and does nothing else (the HTTP handler answers at once).
2. `process_webhook_event()` (a worker job) takes an inbox event and calls `sync_payment()`.
3. `sync_payment()` re-fetches the payment from the provider — a notification body is never
   trusted — and records it in one transaction: the `payment` row is upserted and locked, its
   account found through the checkout whose `public_id` is the payment's external reference,
   and the provider's status decides the ledger effect (`saldo.payments.effect_of`):
   approved → `ledger.post_payment`; refunded / charged back / cancelled after approval →
   `ledger.reverse_payment`; anything else → nothing. The `payment_posting` gate makes each
   effect happen once per payment, whatever the number, order or concurrency of deliveries.
4. `refetch_stale()` (cron) re-asks the provider about what should have changed by now:
   notifications get lost.

Statuses only move forward. A worker may fetch "approved", stall, and write after another
worker recorded the later "refunded"; `STATUS_RANK` orders statuses so that such a stale
answer never overwrites a newer one (equal ranks may replace each other, e.g. in_mediation and
approved).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from saldo import money
from saldo.db import DB
from saldo.errors import NotFound, SaldoError
from saldo.payments import (
    Effect,
    PaymentProvider,
    ProviderError,
    ProviderPayment,
    ProviderPaymentNotFound,
    effect_of,
)
from saldo.services import ledger
from saldo.services.receipts import RECEIPT_TEMPLATE
from saldo.tables import CheckoutSession, Interaction, Payment, WebhookEvent

__all__ = [
    "CHECKOUT_FINAL",
    "STATUS_RANK",
    "SyncResult",
    "checkout_status",
    "event_key",
    "process_webhook_event",
    "receive_notification",
    "record_payment",
    "refetch_stale",
    "sync_payment",
]

log = logging.getLogger("saldo.services.payments")

PAYMENT_TOPIC: Final = "payment"

#: How far along a provider status is. A fetched status lower than the stored one is stale.
STATUS_RANK: Final[Mapping[str, int]] = {
    "pending": 0,
    "in_process": 0,
    "authorized": 0,
    "rejected": 1,
    "approved": 2,
    "in_mediation": 2,
    "refunded": 3,
    "charged_back": 3,
    "cancelled": 3,
}
_UNKNOWN_RANK: Final = 1

#: The status a checkout shows, by priority: one approved payment makes the checkout approved
#: even after a rejected attempt; a waiting voucher beats a declined card.
_CHECKOUT_PRIORITY: Final = (
    ("approved", ("approved", "in_mediation")),
    ("charged_back", ("charged_back",)),
    ("refunded", ("refunded",)),
    ("pending", ("pending", "in_process", "authorized")),
    ("cancelled", ("cancelled",)),
    ("rejected", ("rejected",)),
)
#: Checkout statuses that need no more looking after.
CHECKOUT_FINAL: Final = frozenset({"approved", "rejected", "refunded", "charged_back", "cancelled"})

STALE_WAITING: Final = dt.timedelta(hours=24)
STALE_EXPIRED_RECHECK: Final = dt.timedelta(hours=1)
STALE_INBOX: Final = dt.timedelta(minutes=5)
STALE_CHECKOUT: Final = dt.timedelta(hours=2)
CHECKOUT_LOOKBACK: Final = dt.timedelta(days=7)
REFETCH_BATCH: Final = 100


def status_rank(status: str) -> int:
    return STATUS_RANK.get(status, _UNKNOWN_RANK)


def _rank_sql(column: str) -> str:
    """`status_rank` as SQL over `column` (the statuses are constants, never user input)."""
    cases = " ".join(f"WHEN '{status}' THEN {rank}" for status, rank in STATUS_RANK.items())
    return f"(CASE {column} {cases} ELSE {_UNKNOWN_RANK} END)"


def checkout_status(payment_statuses: list[str]) -> str | None:
    """The checkout status its payments add up to (None: no payment says anything yet)."""
    present = set(payment_statuses)
    for status, sources in _CHECKOUT_PRIORITY:
        if present.intersection(sources):
            return status
    return None


@dataclass(frozen=True)
class SyncResult:
    """What one sync did. `posted` is "apply" or "reverse" only for the call that posted it;
    `notification_id` is the receipt that call queued (send it once the transaction is
    committed). `stale` means the provider's answer was older than what was already stored,
    so the stored status was kept."""

    payment_id: int
    provider_payment_id: str
    status: str
    account_id: int | None
    checkout_id: int | None
    posted: str | None
    notification_id: int | None
    stale: bool = False


# ---------------------------------------------------------------------------- the inbox


def event_key(
    provider: str, topic: str, data_id: str, request_id: str, body: Mapping[str, Any]
) -> str:
    """The provider's identity of a notification: Mercado Pago's notification `id`, else the
    topic, the resource and the delivery's request id."""
    notification_id = body.get("id")
    if isinstance(notification_id, int | str) and not isinstance(notification_id, bool):
        text = str(notification_id).strip()
        if text:
            return f"{provider}:{text}"[:200]
    return f"{provider}:{topic}:{data_id}:{request_id}"[:200]


async def receive_notification(
    *, provider: str, topic: str, data_id: str, request_id: str, body: dict[str, Any]
) -> int | None:
    """Store a (verified) notification; returns the new event's id, or None for a duplicate.

    Topics other than payments are stored as "ignored", so they are never processed.
    """
    status = "received" if topic == PAYMENT_TOPIC else "ignored"
    rows = await WebhookEvent.raw(
        """
        INSERT INTO webhook_event (provider, event_key, topic, resource_id, payload, status,
                                   error, received_at, processed_at)
        VALUES ({}, {}, {}, {}, {}::jsonb, {}, '', now(),
                CASE WHEN {} = 'ignored' THEN now() END)
        ON CONFLICT (event_key) DO NOTHING
        RETURNING id
        """,
        provider,
        event_key(provider, topic, data_id, request_id, body),
        topic[:60],
        data_id[:100],
        json.dumps(body),
        status,
        status,
    )
    return int(rows[0]["id"]) if rows else None


async def _mark_event(event_id: int, status: str, error: str, now: dt.datetime) -> None:
    await WebhookEvent.raw(
        "UPDATE webhook_event SET status = {}, error = {}, processed_at = {} WHERE id = {}",
        status,
        error[:2000],
        now if status != "received" else None,
        event_id,
    )


async def process_webhook_event(
    provider: PaymentProvider, event_id: int, *, now: dt.datetime
) -> SyncResult | None:
    """Act on one inbox event: sync the payment it names, then mark the event processed.

    An event already handled (processed, ignored, failed) is left alone and gives None. A
    payment the provider does not know, or a refusal a retry cannot fix, marks the event
    failed with the reason. A transient `ProviderError` is recorded on the event, which stays
    "received", and propagates so the job is retried (and `refetch_stale` picks it up later).
    """
    rows = await WebhookEvent.raw(
        "SELECT id, provider, topic, resource_id, status FROM webhook_event WHERE id = {}",
        event_id,
    )
    if not rows:
        raise NotFound(f"webhook event {event_id} does not exist")
    event = rows[0]
    if event["status"] != "received":
        return None
    if event["provider"] != provider.name:
        await _mark_event(
            event_id,
            "failed",
            f"event from {event['provider']}, but payments are configured for {provider.name}",
            now,
        )
        return None
    if event["topic"] != PAYMENT_TOPIC:
        await _mark_event(event_id, "ignored", "", now)
        return None
    try:
        result = await sync_payment(provider, str(event["resource_id"]), now=now)
    except ProviderError as exc:
        if exc.transient:
            await _mark_event(event_id, "received", str(exc), now)
            raise
        await _mark_event(event_id, "failed", str(exc), now)
        return None
    except ProviderPaymentNotFound as exc:
        await _mark_event(event_id, "failed", str(exc), now)
        return None
    except SaldoError as exc:
        await _mark_event(event_id, "failed", f"{type(exc).__name__}: {exc}", now)
        return None
    await _mark_event(event_id, "processed", "", now)
    return result


# ---------------------------------------------------------------------------- syncing


async def sync_payment(
    provider: PaymentProvider, provider_payment_id: str, *, now: dt.datetime
) -> SyncResult:
    """Fetch a payment from the provider and record it (see `record_payment`).

    Raises `ProviderPaymentNotFound` for an id the provider does not know and `ProviderError`
    when the provider cannot answer; nothing is written then.
    """
    fetched = await provider.fetch_payment(provider_payment_id)
    return await record_payment(provider.name, fetched, now=now)


async def _checkout_for(reference: str, provider: str) -> dict[str, Any] | None:
    """The checkout (with its account's currency and debtor) `reference` names, if any."""
    try:
        public_id = uuid.UUID(reference.strip())
    except (ValueError, AttributeError):
        return None
    rows = await CheckoutSession.raw(
        """
        SELECT c.id, c.account, c.invoice_ids, c.provider, a.currency AS account_currency,
               a.debtor
        FROM checkout_session c JOIN account a ON a.id = c.account
        WHERE c.public_id = {} AND c.provider = {}
        """,
        public_id,
        provider,
    )
    return rows[0] if rows else None


_UPSERT_PAYMENT: Final = """
    INSERT INTO payment (account, provider, provider_payment_id, amount, currency, status,
                         status_detail, method, checkout, received_at, expires_at, provider_data,
                         created_at, updated_at)
    VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}::jsonb, {}, {})
    ON CONFLICT (provider, provider_payment_id) DO UPDATE SET
        status = EXCLUDED.status,
        status_detail = EXCLUDED.status_detail,
        method = EXCLUDED.method,
        expires_at = EXCLUDED.expires_at,
        provider_data = EXCLUDED.provider_data,
        updated_at = EXCLUDED.updated_at,
        received_at = coalesce(payment.received_at, EXCLUDED.received_at),
        account = coalesce(payment.account, EXCLUDED.account),
        checkout = coalesce(payment.checkout, EXCLUDED.checkout)
    WHERE __RANK__ <= {}
    RETURNING id
""".replace("__RANK__", _rank_sql("payment.status"))


def _invoice_ids(raw: Any) -> list[int]:
    data = json.loads(raw) if isinstance(raw, str | bytes) else raw
    if not isinstance(data, list):
        return []
    ids = []
    for item in data:
        if isinstance(item, int) and not isinstance(item, bool):
            ids.append(item)
        elif isinstance(item, str) and item.isdigit():
            ids.append(int(item))
    return ids


async def record_payment(
    provider_name: str, fetched: ProviderPayment, *, now: dt.datetime
) -> SyncResult:
    """Record what the provider says about a payment, in one transaction.

    The payment row is upserted (a stale status never replaces a newer one) and locked. Its
    account comes from the checkout named by the external reference: a malformed or unknown
    reference leaves the payment unapplied (no account) for finance; a payment in another
    currency than the account is not posted either, and a finance task explains why. Then the
    stored status's effect is applied once (`ledger.post_payment` / `ledger.reverse_payment`),
    the checkout's status follows its payments, the debtor's timeline gets an interaction for
    what was posted, and an applied payment queues its receipt in the notification outbox.
    """
    async with DB.transaction():
        checkout = await _checkout_for(fetched.external_reference, provider_name)
        same_currency = checkout is not None and checkout["account_currency"] == fetched.currency
        account_id = checkout["account"] if checkout is not None and same_currency else None
        received_at = fetched.approved_at or (now if fetched.status == "approved" else None)
        rank = status_rank(fetched.status)
        updated = await Payment.raw(
            _UPSERT_PAYMENT,
            account_id,
            provider_name,
            fetched.id,
            fetched.amount,
            fetched.currency,
            fetched.status[:30],
            fetched.status_detail[:60],
            fetched.method[:60],
            checkout["id"] if checkout is not None else None,
            received_at,
            fetched.expires_at,
            json.dumps(fetched.raw, default=str),
            now,
            now,
            rank,
        )
        rows = await Payment.raw(
            """
            SELECT id, account, amount, currency, status, checkout FROM payment
            WHERE provider = {} AND provider_payment_id = {} FOR NO KEY UPDATE
            """,
            provider_name,
            fetched.id,
        )
        payment = rows[0]
        payment_id = int(payment["id"])
        status = str(payment["status"])
        effect = effect_of(status)
        posted: str | None = None
        notification_id: int | None = None
        if payment["account"] is not None:
            preferred = _invoice_ids(checkout["invoice_ids"]) if checkout is not None else []
            if effect is Effect.apply:
                posting = await ledger.post_payment(payment_id, preferred_invoice_ids=preferred)
                if posting.posted:
                    posted = ledger.APPLY
                    notification_id = await _queue_receipt(payment_id, payment["account"], now)
            elif effect is Effect.reverse and await ledger.has_posting(payment_id, ledger.APPLY):
                posting = await ledger.reverse_payment(
                    payment_id, reason=_reversal_reason(status), effective_date=now.date()
                )
                if posting.posted:
                    posted = ledger.REVERSE
            if posted is not None:
                await _record_interaction(provider_name, fetched.id, payment, posted, now)
        elif checkout is not None and not same_currency and effect is Effect.apply:
            await _currency_task(provider_name, fetched, payment_id, checkout, now)
        if payment["checkout"] is not None:
            await _update_checkout(int(payment["checkout"]), now)
    return SyncResult(
        payment_id=payment_id,
        provider_payment_id=fetched.id,
        status=status,
        account_id=payment["account"],
        checkout_id=payment["checkout"],
        posted=posted,
        notification_id=notification_id,
        stale=not updated,
    )


def _reversal_reason(status: str) -> str:
    return {
        "refunded": "Pago reembolsado",
        "charged_back": "Contracargo del pago",
        "cancelled": "Pago cancelado",
    }.get(status, f"Pago revertido ({status})")


async def _update_checkout(checkout_id: int, now: dt.datetime) -> None:
    """Set the checkout's status from all its payments (the checkout row is locked first, so
    two payments of one checkout recorded at once cannot leave an outdated status)."""
    locked = await CheckoutSession.raw(
        "SELECT status FROM checkout_session WHERE id = {} FOR NO KEY UPDATE", checkout_id
    )
    statuses = await Payment.raw("SELECT status FROM payment WHERE checkout = {}", checkout_id)
    status = checkout_status([str(r["status"]) for r in statuses])
    if status is None or not locked or locked[0]["status"] == status:
        return
    await CheckoutSession.raw(
        "UPDATE checkout_session SET status = {}, updated_at = {} WHERE id = {}",
        status,
        now,
        checkout_id,
    )


def _amount_text(amount: int, currency: str) -> str:
    return f"{currency} {money.to_decimal(amount, currency)}"


async def _record_interaction(
    provider: str,
    provider_payment_id: str,
    payment: Mapping[str, Any],
    posted: str,
    now: dt.datetime,
) -> None:
    amount = _amount_text(int(payment["amount"]), str(payment["currency"]))
    if posted == ledger.APPLY:
        summary = f"Pago recibido: {amount} ({provider} {provider_payment_id})"
    else:
        summary = (
            f"Pago revertido ({payment['status']}): {amount} ({provider} {provider_payment_id})"
        )
    await Interaction.raw(
        """
        INSERT INTO interaction (account, debtor, kind, channel, direction, summary, data,
                                 occurred_at)
        SELECT a.id, a.debtor, 'payment', {}, 'inbound', {}, {}::jsonb, {}
        FROM account a WHERE a.id = {}
        """,
        provider[:20],
        summary,
        json.dumps(
            {
                "payment": int(payment["id"]),
                "effect": posted,
                "status": str(payment["status"]),
                "amount": int(payment["amount"]),
                "currency": str(payment["currency"]),
            }
        ),
        now,
        payment["account"],
    )


async def _queue_receipt(payment_id: int, account_id: int, now: dt.datetime) -> int | None:
    """The receipt's outbox row, once per payment (`receipt:<payment id>`).

    A debtor without an email address gets the row too, blocked with the reason, so the
    timeline shows why no receipt went out.
    """
    rows = await Payment.raw(
        """
        INSERT INTO notification (debtor, account, channel, template, language, to_address,
                                  idempotency_key, status, blocked_reason, created_at)
        SELECT d.id, a.id, 'email', {}, d.language, d.email, {},
               CASE WHEN btrim(d.email) = '' THEN 'blocked' ELSE 'queued' END,
               CASE WHEN btrim(d.email) = '' THEN 'no email address on file' ELSE '' END,
               {}
        FROM account a JOIN debtor d ON d.id = a.debtor
        WHERE a.id = {}
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING id, status
        """,
        RECEIPT_TEMPLATE,
        f"receipt:{payment_id}",
        now,
        account_id,
    )
    if not rows or rows[0]["status"] != "queued":
        return None
    return int(rows[0]["id"])


async def _currency_task(
    provider: str,
    fetched: ProviderPayment,
    payment_id: int,
    checkout: Mapping[str, Any],
    now: dt.datetime,
) -> None:
    title = (
        f"Pago {provider} {fetched.id} de {_amount_text(fetched.amount, fetched.currency)}: "
        f"la cuenta es en {checkout['account_currency']}, no se imputó. Revisar y asignar."
    )
    await Payment.raw(
        """
        INSERT INTO task (account, kind, title, due_on, status, data, dedupe_key, created_at)
        VALUES ({}, 'payment_currency_mismatch', {}, {}, 'open', {}::jsonb, {}, {})
        ON CONFLICT (dedupe_key) DO NOTHING
        """,
        checkout["account"],
        title,
        now.date(),
        json.dumps(
            {
                "payment": payment_id,
                "provider": provider,
                "provider_payment_id": fetched.id,
                "amount": fetched.amount,
                "currency": fetched.currency,
                "account_currency": checkout["account_currency"],
                "checkout": checkout["id"],
            }
        ),
        f"payment-currency:{payment_id}",
        now,
    )


# ---------------------------------------------------------------------------- lost notifications


async def refetch_stale(provider: PaymentProvider, *, now: dt.datetime) -> int:
    """Ask the provider again about what should have changed by now; returns how many
    payments and events were looked at again (for checkouts: the payments the search found).

    - payments still waiting (pending, in process…) whose `expires_at` has passed (rechecked
      at most hourly after that) or that were not updated for 24 hours;
    - inbox events still "received" five minutes after they arrived;
    - checkouts created more than two hours ago (and less than a week) with no payment yet,
      searched at the provider by their external reference.

    A provider that cannot be reached ends the sweep early; the next one starts over.
    """
    count = 0
    try:
        for payment_id in await _waiting_payments(provider.name, now):
            await _again(sync_payment(provider, payment_id, now=now), f"payment {payment_id}")
            count += 1
        for event_id in await _stale_events(provider.name, now):
            await _again(process_webhook_event(provider, event_id, now=now), f"event {event_id}")
            count += 1
        for reference in await _silent_checkouts(provider.name, now):
            for fetched in await provider.search_payments(reference):
                await _again(
                    record_payment(provider.name, fetched, now=now), f"payment {fetched.id}"
                )
                count += 1
    except ProviderError as exc:
        log.warning("refetching stale payments stopped: %s", exc)
    return count


async def _again(step: Awaitable[object], what: str) -> None:
    """One item of the sweep: a problem with it is logged and the sweep goes on, except a
    transient provider error, which ends the sweep."""
    try:
        await step
    except ProviderError as exc:
        if exc.transient:
            raise
        log.warning("refetching %s failed: %s", what, exc)
    except SaldoError as exc:
        log.warning("refetching %s failed: %s", what, exc)


async def _waiting_payments(provider: str, now: dt.datetime) -> list[str]:
    waiting = [s for s, rank in STATUS_RANK.items() if effect_of(s) is Effect.wait and rank == 0]
    rows = await Payment.raw(
        """
        SELECT provider_payment_id FROM payment
        WHERE provider = {} AND status = ANY({}::text[])
          AND ((expires_at IS NOT NULL AND expires_at < {} AND updated_at < {})
               OR updated_at < {})
        ORDER BY updated_at LIMIT {}
        """,
        provider,
        waiting,
        now,
        now - STALE_EXPIRED_RECHECK,
        now - STALE_WAITING,
        REFETCH_BATCH,
    )
    return [str(r["provider_payment_id"]) for r in rows]


async def _stale_events(provider: str, now: dt.datetime) -> list[int]:
    rows = await WebhookEvent.raw(
        """
        SELECT id FROM webhook_event
        WHERE provider = {} AND status = 'received' AND received_at < {}
        ORDER BY id LIMIT {}
        """,
        provider,
        now - STALE_INBOX,
        REFETCH_BATCH,
    )
    return [int(r["id"]) for r in rows]


async def _silent_checkouts(provider: str, now: dt.datetime) -> list[str]:
    rows = await CheckoutSession.raw(
        """
        SELECT c.public_id FROM checkout_session c
        WHERE c.provider = {} AND c.created_at < {} AND c.created_at > {}
          AND c.status <> ALL({}::text[])
          AND NOT EXISTS (SELECT 1 FROM payment p WHERE p.checkout = c.id)
        ORDER BY c.created_at LIMIT {}
        """,
        provider,
        now - STALE_CHECKOUT,
        now - CHECKOUT_LOOKBACK,
        sorted(CHECKOUT_FINAL),
        REFETCH_BATCH,
    )
    return [str(r["public_id"]) for r in rows]
