"""arq tasks: thin, idempotent, each calls one service and returns a small dict.

The worker's collaborators are built once in `startup` from the settings (`ctx["settings"]`
when `build_worker` was given them, else the environment): the payment provider
(`ctx["provider"]`), the email sender (`ctx["email_sender"]`), the message channels
(`ctx["channels"]`: email, SMS, WhatsApp, see `saldo.notify`) and the key that signs
unsubscribe links (`ctx["unsubscribe_key"]`).

Payment jobs:

- `process_webhook_event(event_id)` — queued by the webhook handler (`webhook:<event id>`);
- `sync_payment(provider, payment_id)` — queued by the portal when a debtor comes back from
  checkout; `provider` must be the configured provider's name;
- `send_notification(notification_id)` — queued after a posting commits (`notify:<id>`):
  sends that one outbox row now, through the outbox sender;
- `refetch_stale_payments` — cron every 15 minutes: lost notifications, and receipts whose
  send job was lost (a worker stopped between the commit and the enqueue).

Nightly (02:30 UTC): `check_commitments` — missed installments, broken or completed plans,
kept and broken promises (each creates its task once). Then, for the UTC date:
`accrue_interest` (03:00, interest and fees, catching up missed days), `segment_accounts`
(03:30, risk score and segment) and `run_dunning` (04:00, the day's reminders, stage changes
and legal escalations). `saldo dunning run` does the same four on demand.

Every 10 minutes: `refresh_work_queue` — the work queue's risk × balance snapshot.

Every minute: `deliver_webhooks` — the outbound webhooks that are due (`saldo.services.outbound`);
`send_outbox` — one batch of due outbox messages (`saldo.services.outbox`). A full batch
queues the chain's next batch at once; the chain the cron starts also starts more, up to
`ctx["outbox_chains"]` running (each notes itself in `<prefix>outbox:chains`), so a large run is
drained by several batches in parallel and an idle outbox costs one query a minute.

A transient provider or mail failure is retried with exponential back-off
(`ctx["retry_seconds"]` × 2^(try − 1), at most `MAX_BACKOFF_SECONDS`) up to `MAX_TRIES` tries.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from arq.typing import WorkerCoroutine
from arq.worker import Retry

from saldo.db import DB

if TYPE_CHECKING:
    from saldo.services.payments import SyncResult

MAX_TRIES: Final = 6
#: Outbox batches sending in parallel at most (each on its own connections).
OUTBOX_CHAINS: Final = 4
#: A chain that has not started a batch for this long no longer counts as running.
CHAIN_ALIVE_SECONDS: Final = 30
MAX_BACKOFF_SECONDS: Final = 300.0
DEFAULT_RETRY_SECONDS: Final = 5.0


class ProviderMismatch(RuntimeError):
    """A job names a payment provider other than the one this worker is configured with."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def startup(ctx: dict[str, Any]) -> None:
    from saldo.notify import channels_from_settings, email_sender_from_settings
    from saldo.notify.unsubscribe import derive_key
    from saldo.payments import provider_from_settings
    from saldo.settings import Settings

    settings = ctx.get("settings") or Settings.from_env()
    ctx["settings"] = settings
    ctx["owns_pool"] = DB.pool is None
    if ctx["owns_pool"]:
        if settings.database_url and DB.config.get("dsn") != settings.database_url:
            DB.use(settings.database_url)
        await DB.start_connection_pool(min_size=1, max_size=4)
    ctx.setdefault("retry_seconds", DEFAULT_RETRY_SECONDS)
    ctx["provider"] = provider_from_settings(settings)
    ctx["email_sender"] = email_sender_from_settings(settings)
    ctx["channels"] = channels_from_settings(settings)
    ctx["unsubscribe_key"] = derive_key(settings.resolved_secret_key())
    ctx.setdefault("outbox_chains", OUTBOX_CHAINS)


async def shutdown(ctx: dict[str, Any]) -> None:
    if ctx.get("owns_pool"):
        await DB.close_connection_pool()


def _backoff(ctx: dict[str, Any], tries: int) -> float:
    base = float(ctx.get("retry_seconds", DEFAULT_RETRY_SECONDS))
    return float(min(base * 2 ** max(tries - 1, 0), MAX_BACKOFF_SECONDS))


def _retry(ctx: dict[str, Any], exc: Exception) -> Exception:
    """A `Retry` while tries are left, else the error itself (the job then fails)."""
    tries = int(ctx.get("job_try", 1))
    if tries >= MAX_TRIES:
        return exc
    return Retry(defer=_backoff(ctx, tries))


async def _enqueue_notification(ctx: dict[str, Any], notification_id: int) -> None:
    prefix = str(ctx.get("redis_prefix", ""))
    await ctx["redis"].enqueue_job(
        "send_notification", notification_id, _job_id=f"{prefix}notify:{notification_id}"
    )


async def _after_sync(ctx: dict[str, Any], result: SyncResult) -> dict[str, Any]:
    if result.notification_id is not None:
        await _enqueue_notification(ctx, result.notification_id)
    return {
        "payment": result.payment_id,
        "provider_payment_id": result.provider_payment_id,
        "status": result.status,
        "account": result.account_id,
        "posted": result.posted,
        "stale": result.stale,
    }


# ---------------------------------------------------------------------------- payments


async def process_webhook_event(ctx: dict[str, Any], event_id: int) -> dict[str, Any]:
    """Sync the payment an inbox event names; an event already handled is left alone."""
    from saldo.payments import ProviderError
    from saldo.services import payments

    try:
        result = await payments.process_webhook_event(ctx["provider"], event_id, now=_now())
    except ProviderError as exc:  # transient: the service marked the others failed
        raise _retry(ctx, exc) from exc
    if result is None:
        return {"event": event_id, "synced": False}
    return {"event": event_id, "synced": True, **await _after_sync(ctx, result)}


async def sync_payment(ctx: dict[str, Any], provider: str, payment_id: str) -> dict[str, Any]:
    """Fetch one payment from the provider and record it (exactly-once posting)."""
    from saldo.payments import ProviderError, ProviderPaymentNotFound
    from saldo.services import payments

    configured = ctx["provider"]
    if provider != configured.name:
        raise ProviderMismatch(
            f"sync_payment was asked about a {provider!r} payment, but this worker's payment "
            f"provider is {configured.name!r} (check MERCADOPAGO_ACCESS_TOKEN)"
        )
    try:
        result = await payments.sync_payment(configured, str(payment_id), now=_now())
    except ProviderPaymentNotFound as exc:
        return {"provider_payment_id": str(payment_id), "synced": False, "error": str(exc)}
    except ProviderError as exc:
        if not exc.transient:
            raise
        raise _retry(ctx, exc) from exc
    return {"synced": True, **await _after_sync(ctx, result)}


async def send_notification(ctx: dict[str, Any], notification_id: int) -> dict[str, Any]:
    """Send one outbox row now (a receipt, typically); a row already sent is not sent again."""
    from saldo.services import outbox

    settings = ctx["settings"]
    result = await outbox.send_one(
        notification_id,
        now=_now(),
        channels=ctx["channels"],
        public_url=settings.public_url,
        mail_from=settings.mail_from,
        unsubscribe_key=ctx.get("unsubscribe_key"),
    )
    if result.error and not result.final:
        raise Retry(defer=_backoff(ctx, result.attempts))
    done = {"notification": notification_id, "status": result.status}
    return {**done, "error": result.error} if result.error else done


async def send_outbox(ctx: dict[str, Any], chain: str | None = None) -> dict[str, Any]:
    """Send one batch of due outbox messages; a full batch keeps its chain going.

    A job without `chain` (the cron, or a producer that just queued many messages) starts a
    chain and, when its batch was full and fewer than `ctx["outbox_chains"]` chains have
    started a batch in the last `CHAIN_ALIVE_SECONDS`, more chains beside it. A chain ends
    with the first batch that is not full. A chain whose worker died simply stops counting.
    """
    from saldo.services import outbox

    settings = ctx["settings"]
    redis = ctx["redis"]
    chains = f"{ctx.get('redis_prefix', '')}outbox:chains"
    starting = chain is None
    chain = chain or secrets.token_hex(6)
    started = time.time()
    await redis.zadd(chains, {chain: started})
    run = await outbox.send_due(
        now=_now(),
        channels=ctx["channels"],
        limit=int(ctx.get("outbox_batch", outbox.BATCH)),
        public_url=settings.public_url,
        mail_from=settings.mail_from,
        unsubscribe_key=ctx.get("unsubscribe_key"),
    )
    spawned = 0
    if not run.full:
        await redis.zrem(chains, chain)
        return {"chain": chain, "spawned": spawned, **run.as_dict()}
    await redis.enqueue_job("send_outbox", chain)
    if starting:
        await redis.zremrangebyscore(chains, 0, time.time() - CHAIN_ALIVE_SECONDS)
        alive = int(await redis.zcard(chains))
        for _ in range(int(ctx.get("outbox_chains", OUTBOX_CHAINS)) - alive):
            new_chain = secrets.token_hex(6)
            await redis.zadd(chains, {new_chain: time.time()})
            await redis.enqueue_job("send_outbox", new_chain)
            spawned += 1
    return {"chain": chain, "spawned": spawned, **run.as_dict()}


async def refetch_stale_payments(ctx: dict[str, Any]) -> dict[str, Any]:
    """Cron: ask the provider about what should have changed, and send lost receipts."""
    from saldo.services import payments, receipts

    now = _now()
    refetched = await payments.refetch_stale(ctx["provider"], now=now)
    queued = await receipts.queued_receipts(now=now, older_than=dt.timedelta(0))
    for notification_id in queued:
        await _enqueue_notification(ctx, notification_id)
    return {"refetched": refetched, "receipts": len(queued)}


# ---------------------------------------------------------------------------- commitments


async def check_commitments(ctx: dict[str, Any]) -> dict[str, Any]:
    """Nightly: missed installments and broken plans, then kept and broken promises."""
    from saldo.services import plan_progress, promises

    now = _now()
    plans = await plan_progress.check_plans(today=now.date(), now=now)
    kept_or_broken = await promises.check_promises(today=now.date(), now=now)
    return {"plans": plans.as_dict(), "promises": kept_or_broken.as_dict()}


# ---------------------------------------------------------------------------- dunning


async def accrue_interest(ctx: dict[str, Any]) -> dict[str, Any]:
    """Nightly: late-payment interest and fees for today (and days missed before it)."""
    from saldo.services import accrual

    now = _now()
    return (await accrual.accrue(as_of=now.date(), now=now)).as_dict()


async def segment_accounts(ctx: dict[str, Any]) -> dict[str, Any]:
    """Nightly: every account's risk score and segment."""
    from saldo.services import segmentation

    now = _now()
    return (await segmentation.segment_accounts(as_of=now.date())).as_dict()


async def run_dunning(ctx: dict[str, Any]) -> dict[str, Any]:
    """Daily: queue today's reminders, move stages, escalate to legal (idempotent per day)."""
    from saldo.services import dunning

    now = _now()
    return (await dunning.run_dunning(as_of=now.date(), now=now)).as_dict()


# ---------------------------------------------------------------------------- outbound webhooks


async def deliver_webhooks(ctx: dict[str, Any]) -> dict[str, Any]:
    """Cron, every minute: POST the signed webhook deliveries that are due (retries included)."""
    import httpx

    from saldo.services import outbound

    async with httpx.AsyncClient(follow_redirects=False) as client:
        run = await outbound.deliver_due(
            now=_now(), client=client, secret_key=ctx["settings"].resolved_secret_key()
        )
    return run.as_dict()


# ---------------------------------------------------------------------------- work queue


async def refresh_work_queue(ctx: dict[str, Any]) -> dict[str, Any]:
    """Cron, every `work_queue.REFRESH_MINUTES`: rebuild the risk × balance snapshot the back
    office's work queue orders by (readers keep the old one until it is done)."""
    from saldo.services import work_queue

    started = time.monotonic()
    await work_queue.refresh_exposure()
    return {"refreshed": True, "seconds": round(time.monotonic() - started, 3)}


# ---------------------------------------------------------------------------- portfolio


async def import_portfolio(
    ctx: dict[str, Any], debtors_csv: str, invoices_csv: str, creditor: str
) -> dict[str, Any]:
    """Import a portfolio; safe to run twice (the import is an idempotent upsert)."""
    from saldo.errors import ImportFileError
    from saldo.services.portfolio_import import import_portfolio as run_import

    try:
        result = await run_import(Path(debtors_csv), Path(invoices_csv), creditor=creditor)
    except ImportFileError as exc:
        return {"ok": False, "file": exc.file, "line": exc.line, "reason": exc.reason}
    return {"ok": True, **asdict(result)}


FUNCTIONS: list[WorkerCoroutine] = [
    import_portfolio,
    process_webhook_event,
    sync_payment,
    send_notification,
    send_outbox,
    refetch_stale_payments,
    check_commitments,
    accrue_interest,
    segment_accounts,
    run_dunning,
    deliver_webhooks,
    refresh_work_queue,
]
