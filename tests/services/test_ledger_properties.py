"""Property: whatever the interleaving of charges, payments, duplicated deliveries and
reversals, the balance equals what a simple model of distinct events predicts."""

import asyncio
import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saldo.services.ledger import account_balance, apply_payment, post_entry, reverse_entry
from saldo.tables import EntryKind, LedgerEntry

from .helpers import make_account, make_invoice

NOW = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)

payment_ids = st.sampled_from(["p1", "p2", "p3", "p4"])
operations = st.lists(
    st.one_of(
        st.tuples(st.just("charge"), st.integers(1, 50_000), st.sampled_from(["c1", "c2", "c3"])),
        st.tuples(st.just("pay"), st.integers(1, 80_000), payment_ids),
        st.tuples(st.just("refund"), st.just(0), payment_ids),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations, concurrent=st.booleans())
async def test_balance_matches_the_model_of_distinct_events(db, ops, concurrent):
    account = await make_account()
    await make_invoice(account, "BASE", 10_000, dt.date(2026, 9, 1))
    # Each event key carries one amount, as a real event would; duplicates replay it.
    amounts: dict[tuple[str, str], int] = {}
    for kind, amount, key in ops:
        amounts.setdefault((kind, key), amount)

    async def run(kind: str, amount: int, key: str) -> None:
        if kind == "charge":
            await post_entry(
                account_id=account.id,
                kind=EntryKind.fee,
                amount=amounts[(kind, key)],
                currency="ARS",
                effective_date=NOW.date(),
                idempotency_key=f"{account.id}:{key}",
            )
        elif kind == "pay":
            await apply_payment(
                account_id=account.id,
                provider="mercadopago",
                provider_payment_id=f"{account.id}-{key}",
                amount=amounts[(kind, key)],
                received_at=NOW,
            )
        else:
            entries = await LedgerEntry.select(LedgerEntry.id).where(
                LedgerEntry.idempotency_key.like(f"payment:mercadopago:{account.id}-{key}:%")
            )
            for row in entries:
                await reverse_entry(
                    row["id"], idempotency_key=f"refund:{row['id']}", reason="Reembolso"
                )

    if concurrent:
        await asyncio.gather(*(run(*op) for op in ops))
    else:
        for op in ops:
            await run(*op)

    entries = await LedgerEntry.select(LedgerEntry.amount, LedgerEntry.kind).where(
        LedgerEntry.account == account.id
    )
    balance = await account_balance(account.id)
    assert balance == sum(e["amount"] for e in entries)

    charges = {key: value for (kind, key), value in amounts.items() if kind == "charge"}
    payments_posted = -sum(e["amount"] for e in entries if e["kind"] == "payment")
    reversed_total = sum(e["amount"] for e in entries if e["kind"] == "reversal")
    # every distinct payment id was posted exactly once, whatever arrived first
    paid_ids = {key for kind, _, key in ops if kind == "pay"}
    assert payments_posted == sum(amounts[("pay", k)] for k in paid_ids)
    assert balance == 10_000 + sum(charges.values()) - payments_posted + reversed_total
    # a reversal never exceeds what it reverses
    assert 0 <= reversed_total <= payments_posted
