"""Interest and fees against a real database: grace days, the fixed fee once, daily interest on the
open principal with its basis, caps, idempotence per day, catching up missed days, what does
not accrue, and the debtor's statement explaining each entry."""

from __future__ import annotations

import datetime as dt
import json

from saldo import money
from saldo.services.accrual import accrue
from saldo.services.statement import invoice_detail
from saldo.tables import Account, FeePolicy, LedgerEntry

from .dunning_world import (
    DAY0,
    Case,
    active_plan,
    at,
    dispute,
    invoice,
    make_case,
    make_creditor,
    pay,
)

DUE = DAY0 + dt.timedelta(days=20)


def day(offset: int) -> dt.date:
    return DUE + dt.timedelta(days=offset)


async def policy(
    creditor_id: int,
    *,
    rate: int = 1_000,
    fee: int = 4_000,
    grace: int = 3,
    cap_bp: int = 0,
    segment: str = "standard",
    active: bool = True,
) -> FeePolicy:
    row = FeePolicy(
        creditor=creditor_id,
        segment=segment,
        daily_rate_ppm=rate,
        fixed_fee=fee,
        grace_days=grace,
        cap_bp=cap_bp,
        active=active,
    )
    await row.save()
    return row


async def charges(invoice_id: int) -> list[tuple[str, int, dt.date, dict[str, object]]]:
    rows = (
        await LedgerEntry.select()
        .where((LedgerEntry.invoice == invoice_id) & LedgerEntry.kind.is_in(["interest", "fee"]))
        .order_by(LedgerEntry.effective_date)
        .order_by(LedgerEntry.kind)
    )
    return [
        (
            r["kind"],
            r["amount"],
            r["effective_date"],
            json.loads(r["basis"]) if isinstance(r["basis"], str) else r["basis"],
        )
        for r in rows
    ]


async def setup(**policy_values: int) -> tuple[Case, int, FeePolicy]:
    creditor = await make_creditor()
    fees = await policy(creditor.id, **policy_values)
    case = await make_case(creditor)
    row = await invoice(case, 100_000, DUE, "INT-1")
    return case, row.id, fees


async def test_nothing_accrues_within_the_grace_days_then_the_fee_once_and_daily_interest(db):
    _, invoice_id, fees = await setup()
    await accrue(as_of=day(3), now=at(day(3), 3), catch_up_days=4)
    assert await charges(invoice_id) == []

    first = await accrue(as_of=day(4), now=at(day(4), 3), catch_up_days=1)
    assert first.fee_entries >= 1 and first.interest_entries >= 1
    [(fee_kind, fee, fee_on, fee_basis), (kind, interest, on, basis)] = await charges(invoice_id)
    assert (fee_kind, fee, fee_on) == ("fee", 4_000, day(4))
    assert fee_basis["fixed_fee"] == 4_000 and fee_basis["due_date"] == DUE.isoformat()
    assert fee_basis["policy"] == fees.id
    assert (kind, interest, on) == ("interest", money.daily_interest(100_000, 1_000, 1), day(4))
    assert interest == 100
    assert basis == {
        "policy": fees.id,
        "due_date": DUE.isoformat(),
        "grace_days": 3,
        "days_past_due": 4,
        "cap_bp": 0,
        "daily_rate_ppm": 1_000,
        "since": day(4).isoformat(),
        "days": 1,
        "principal": 100_000,
    }

    await accrue(as_of=day(4), now=at(day(4), 9), catch_up_days=1)
    assert len(await charges(invoice_id)) == 2


async def test_missed_days_are_caught_up_with_their_own_dates_and_only_once(db):
    _, invoice_id, _ = await setup(fee=0)
    await accrue(as_of=day(5), now=at(day(5), 3), catch_up_days=1)
    await accrue(as_of=day(10), now=at(day(10), 3), catch_up_days=7)  # the worker was down
    await accrue(as_of=day(10), now=at(day(10), 4), catch_up_days=7)
    posted = await charges(invoice_id)
    assert [on for _, _, on, _ in posted] == [day(n) for n in range(4, 11)]
    assert all(amount == 100 for _, amount, _, _ in posted)
    keys = await LedgerEntry.select(LedgerEntry.idempotency_key).where(
        (LedgerEntry.invoice == invoice_id) & (LedgerEntry.kind == "interest")
    )
    assert sorted(k["idempotency_key"] for k in keys) == [
        f"interest:{invoice_id}:{day(n).isoformat()}" for n in range(4, 11)
    ]


async def test_payments_cover_interest_and_fees_first_and_interest_follows_the_principal(db):
    case, invoice_id, _ = await setup()
    await accrue(as_of=day(4), now=at(day(4), 3), catch_up_days=1)  # fee 4000 + interest 100
    await pay(case, 50_000, at(day(5), 12), [invoice_id])
    await accrue(as_of=day(5), now=at(day(5), 20), catch_up_days=1)
    *_, (kind, amount, on, basis) = await charges(invoice_id)
    # Open: 100000 + 4100 - 50000 = 54100, all of it principal (the payment took the 4100).
    assert (kind, amount, on, basis["principal"]) == ("interest", 54, day(5), 54_100)


async def test_interest_and_fees_never_exceed_the_cap(db):
    _, invoice_id, _ = await setup(cap_bp=500)  # at most 5 % of 100000 = 5000
    await accrue(as_of=day(20), now=at(day(20), 3), catch_up_days=20)
    posted = await charges(invoice_id)
    assert sum(amount for _, amount, _, _ in posted) == 5_000
    fee, *interest = posted
    assert fee[:2] == ("fee", 4_000)
    assert [a for _, a, _, _ in interest] == [100] * 10  # days 4 … 13: the cap is reached
    assert interest[-1][2] == day(13)
    await accrue(as_of=day(21), now=at(day(21), 3), catch_up_days=1)
    assert len(await charges(invoice_id)) == len(posted)


async def test_a_partial_cap_is_marked_in_the_basis(db):
    _, invoice_id, _ = await setup(cap_bp=445, fee=4_000)  # cap 4450
    await accrue(as_of=day(9), now=at(day(9), 3), catch_up_days=6)
    posted = await charges(invoice_id)
    assert [a for _, a, _, _ in posted] == [4_000, 100, 100, 100, 100, 50]
    assert [b.get("capped", False) for _, _, _, b in posted] == [False] * 5 + [True]
    assert posted[-1][3]["cap_bp"] == 445
    await accrue(as_of=day(10), now=at(day(10), 3), catch_up_days=1)
    assert len(await charges(invoice_id)) == 6


async def test_disputed_money_and_plan_invoices_accrue_nothing(db):
    creditor = await make_creditor()
    await policy(creditor.id, fee=0)
    case = await make_case(creditor)
    partly = await invoice(case, 100_000, DUE)
    planned = await invoice(case, 100_000, DUE)
    await dispute(case, partly.id, 60_000)
    await active_plan(case, [planned.id], [(day(30), 100_000)])
    await accrue(as_of=day(4), now=at(day(4), 3), catch_up_days=1)
    [(_, amount, _, basis)] = await charges(partly.id)
    assert (amount, basis["principal"]) == (40, 40_000)
    assert await charges(planned.id) == []


async def test_the_segment_policy_wins_and_an_inactive_one_charges_nothing(db):
    creditor = await make_creditor()
    await policy(creditor.id, rate=1_000, fee=0)
    await policy(creditor.id, rate=2_000, fee=0, segment="late")
    await policy(creditor.id, rate=9_000, fee=0, segment="early", active=False)
    late = await make_case(creditor)
    early = await make_case(creditor, name="Otra Persona")
    await Account.update({Account.segment: "late"}).where(Account.id == late.account.id)
    await Account.update({Account.segment: "early"}).where(Account.id == early.account.id)
    late_invoice = await invoice(late, 100_000, DUE)
    early_invoice = await invoice(early, 100_000, DUE)
    await accrue(as_of=day(4), now=at(day(4), 3), catch_up_days=1)
    assert [a for _, a, _, _ in await charges(late_invoice.id)] == [200]
    assert [a for _, a, _, _ in await charges(early_invoice.id)] == [100]  # standard's rate


async def test_the_debtors_invoice_page_explains_each_charge_from_its_basis(db):
    case, invoice_id, _ = await setup()
    await accrue(as_of=day(4), now=at(day(4), 3), catch_up_days=1)
    detail = await invoice_detail([case.debtor], invoice_id, language="es", today=day(4))
    texts = {item.kind: item.detail for item in detail.invoice.items}
    assert texts["fee"] == "cargo fijo de $\xa040,00 por factura vencida el 23/03/2031"
    assert texts["interest"] == "0,1% diario desde el 27/03/2031 sobre $\xa01.000,00 (1 día)"
    english = await invoice_detail([case.debtor], invoice_id, language="en", today=day(4))
    assert {i.kind for i in english.invoice.items} == {"fee", "interest"}
