"""Interest and fees against a real database: grace days, the fixed fee once, daily interest on the
open principal with its basis, caps, idempotence per day, catching up missed days, what does
not accrue, and the debtor's statement explaining each entry. The SQL's arithmetic is checked
against `saldo.money` on random cases, and whole runs against a model of the rules."""

from __future__ import annotations

import datetime as dt
import json
import random
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saldo import money
from saldo.services.accrual import accrue, fee_key, interest_key
from saldo.services.accrual_sql import cap_sql, capped_sql, interest_sql
from saldo.services.ledger import post_entry, reverse_entry
from saldo.services.statement import invoice_detail
from saldo.tables import Account, EntryKind, FeePolicy, LedgerEntry

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


# ---------------------------------------------------------------------------- SQL = money.py

amounts = st.integers(min_value=-(10**12), max_value=10**18)
cases = st.lists(
    st.tuples(
        amounts,  # principal
        st.integers(0, 1_000_000),  # daily rate, ppm
        st.integers(0, 10**12),  # amount to cap
        st.integers(0, 10**12),  # already charged
        st.sampled_from([0, 1, 150, 445, 2_000, 10_000, 99_999]),  # cap, basis points
    ),
    min_size=1,
    max_size=60,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(batch=cases)
async def test_the_sql_arithmetic_is_money_py(db, batch):
    principal, rate, amount, charged, cap_bp = (list(column) for column in zip(*batch, strict=True))
    rows = await FeePolicy.raw(
        f"""SELECT n, {interest_sql("c.principal", "c.rate")} AS interest,
                   {cap_sql("c.principal", "c.cap_bp")} AS cap,
                   {capped_sql("c.amount", "c.charged", cap_sql("c.principal", "c.cap_bp"))}
                       AS capped
            FROM unnest({{}}::bigint[], {{}}::int[], {{}}::bigint[], {{}}::bigint[], {{}}::int[])
                 WITH ORDINALITY AS c(principal, rate, amount, charged, cap_bp, n)
            ORDER BY n""",
        principal,
        rate,
        amount,
        charged,
        cap_bp,
    )
    for row, (p, r, a, c, bp) in zip(rows, batch, strict=True):
        cap = max(0, p * bp // 10_000) if bp else None
        assert int(row["interest"]) == money.daily_interest(p, r, 1), (p, r)
        assert (None if row["cap"] is None else int(row["cap"])) == cap, (p, bp)
        expected = a if cap is None else money.capped(a, c, cap)
        assert int(row["capped"]) == expected, (a, c, cap)


# ---------------------------------------------------------------------------- the whole run


@dataclass
class Modelled:
    """One invoice of a random portfolio, and what the rules of the module docstring post."""

    case: Case
    id: int
    total: int
    due: dt.date
    rate: int
    fee: int
    grace: int
    cap_bp: int
    disputed: int = 0
    payments: dict[dt.date, int] = field(default_factory=dict)

    def expected(self, days: list[dt.date]) -> list[tuple[str, dt.date, int, int, bool]]:
        """(kind, day, amount, basis principal, capped) posted over `days`, in order."""
        posted: list[tuple[str, dt.date, int, int, bool]] = []
        charged, fee_posted = 0, False
        cap = max(0, self.total * self.cap_bp // 10_000) if self.cap_bp else None
        for on in days:
            paid = sum(amount for when, amount in self.payments.items() if when <= on)
            open_amount = self.total + charged - paid
            if on <= self.due + dt.timedelta(days=self.grace) or open_amount <= 0:
                continue
            principal = max(0, min(self.total, open_amount) - self.disputed)
            if self.fee and not fee_posted and principal > 0:
                fee = self.fee if cap is None else money.capped(self.fee, charged, cap)
                if fee > 0:
                    posted.append(("fee", on, fee, self.total, fee < self.fee))
                    charged, fee_posted = charged + fee, True
            full = money.daily_interest(principal, self.rate, 1)
            interest = full if cap is None else money.capped(full, charged, cap)
            if interest > 0:
                posted.append(("interest", on, interest, principal, interest < full))
                charged += interest
        return posted


START = DAY0 + dt.timedelta(days=200)  # away from the other tests' days


async def random_portfolio(seed: int) -> list[Modelled]:
    rng = random.Random(seed)
    creditor = await make_creditor()
    modelled: list[Modelled] = []
    for n in range(12):
        # One policy per segment, so invoices of one creditor differ in rate, fee, grace and cap.
        segment = f"s{seed}-{n}"
        rules = {
            "rate": rng.choice([0, 1, 333, 4_999, 20_000]),
            "fee": rng.choice([0, 1, 2_500, 4_000]),
            "grace": rng.randint(0, 4),
            "cap_bp": rng.choice([0, 150, 500, 2_000]),
        }
        if not rules["rate"] and not rules["fee"]:
            rules["rate"] = 777
        await policy(creditor.id, segment=segment, **rules)
        case = await make_case(creditor)
        await Account.update({Account.segment: segment}).where(Account.id == case.account.id)
        total = rng.choice([1, 300, 60_000, 3_000_000])
        total = rng.randint(1, total)  # small ones reach their cap within the days
        due = START + dt.timedelta(days=rng.randint(-6, 3))
        row = await invoice(case, total, due)
        item = Modelled(case, row.id, total, due, **rules)
        if rng.random() < 0.3:
            item.disputed = rng.randint(1, total)
            await dispute(case, row.id, item.disputed)
        for _ in range(rng.randint(0, 2)):
            item.payments[START + dt.timedelta(days=rng.randint(0, 14))] = rng.randint(
                1, max(1, total // 5)
            )
        modelled.append(item)
    return modelled


async def posted(invoice_ids: list[int]) -> dict[int, list[tuple[str, dt.date, int, int, bool]]]:
    rows = await LedgerEntry.select().where(
        LedgerEntry.invoice.is_in(invoice_ids) & LedgerEntry.kind.is_in(["interest", "fee"])
    )
    found: dict[int, list[tuple[str, dt.date, int, int, bool]]] = {i: [] for i in invoice_ids}
    for r in rows:
        basis = json.loads(r["basis"]) if isinstance(r["basis"], str) else r["basis"]
        if r["kind"] == "fee":
            assert r["idempotency_key"] == fee_key(r["invoice"])
        else:
            assert r["idempotency_key"] == interest_key(r["invoice"], r["effective_date"])
        assert (
            basis["days_past_due"]
            == (r["effective_date"] - dt.date.fromisoformat(basis["due_date"])).days
        )
        found[r["invoice"]].append(
            (r["kind"], r["effective_date"], r["amount"], basis["principal"], "capped" in basis)
        )
    return {i: sorted(e, key=lambda x: (x[1], x[0] != "fee")) for i, e in found.items()}


async def run_days(modelled: list[Modelled]) -> list[dt.date]:
    """Daily runs with a gap caught up later and repeated runs; payments arrive before the run
    that first covers their day."""
    days = [START + dt.timedelta(days=n) for n in range(15)]
    runs = [(days[n], 1) for n in range(5)] + [(days[9], 7), (days[9], 7)]
    runs += [(days[n], 1) for n in range(10, 15)] + [(days[14], 3)]
    paid: set[tuple[int, dt.date]] = set()
    for as_of, catch_up in runs:
        for item in modelled:
            for when, amount in sorted(item.payments.items()):
                if when <= as_of and (item.id, when) not in paid:
                    paid.add((item.id, when))
                    await pay(item.case, amount, at(when, 12), [item.id])
        await accrue(as_of=as_of, now=at(as_of, 3), catch_up_days=catch_up)
    return days


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_every_entry_is_what_money_py_computes_for_a_random_portfolio(db, seed):
    modelled = await random_portfolio(seed)
    days = await run_days(modelled)
    found = await posted([m.id for m in modelled])
    for item in modelled:
        assert found[item.id] == item.expected(days), item


async def test_a_user_insert_trigger_on_the_ledger_still_fires(db):
    """With a trigger of its own on ledger_entry, accrual posts with every check in force."""
    for sql in (
        "CREATE TABLE accrual_seen (key text)",
        """CREATE FUNCTION accrual_seen() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN INSERT INTO accrual_seen VALUES (NEW.idempotency_key); RETURN NEW; END $$""",
        """CREATE TRIGGER accrual_seen AFTER INSERT ON ledger_entry
           FOR EACH ROW EXECUTE FUNCTION accrual_seen()""",
    ):
        await FeePolicy.raw(sql)
    try:
        _, invoice_id, _ = await setup()
        await accrue(as_of=day(5), now=at(day(5), 3), catch_up_days=2)
        seen = await FeePolicy.raw("SELECT key FROM accrual_seen")
    finally:
        for sql in (
            "DROP TRIGGER accrual_seen ON ledger_entry",
            "DROP FUNCTION accrual_seen()",
            "DROP TABLE accrual_seen",
        ):
            await FeePolicy.raw(sql)
    ours = [
        r["key"]
        for r in seen
        if r["key"].split(":")[:2] in (["fee", str(invoice_id)], ["interest", str(invoice_id)])
    ]
    assert sorted(ours) == [
        f"fee:{invoice_id}",
        f"interest:{invoice_id}:{day(4).isoformat()}",
        f"interest:{invoice_id}:{day(5).isoformat()}",
    ]
    assert [a for _, a, _, _ in await charges(invoice_id)] == [4_000, 100, 100]
    descriptions = await LedgerEntry.select(LedgerEntry.description).where(
        (LedgerEntry.invoice == invoice_id) & LedgerEntry.kind.is_in(["interest", "fee"])
    )
    assert {d["description"] for d in descriptions} == {
        "Cargo por la factura INT-1 vencida",
        "Interés por mora de la factura INT-1",
    }


async def test_a_reversed_payment_and_a_credit_note_change_the_principal(db):
    case, invoice_id, _ = await setup(fee=0)
    await pay(case, 30_000, at(day(1), 12), [invoice_id])
    await accrue(as_of=day(4), now=at(day(4), 3), catch_up_days=1)
    [entry] = await LedgerEntry.select(LedgerEntry.id).where(
        (LedgerEntry.invoice == invoice_id) & (LedgerEntry.kind == "payment")
    )
    await reverse_entry(entry["id"], idempotency_key=f"test:undo:{entry['id']}", reason="Rebotó")
    await post_entry(
        account_id=case.account.id,
        kind=EntryKind.credit_note,
        amount=-10_000,
        currency="ARS",
        effective_date=day(5),
        invoice_id=invoice_id,
        idempotency_key=f"test:credit:{invoice_id}",
    )
    await accrue(as_of=day(5), now=at(day(5), 3), catch_up_days=1)
    principals = [basis["principal"] for *_, basis in await charges(invoice_id)]
    # Day 4: 100000 − 30000 paid. Day 5: the payment bounced, a credit note took 10000 off.
    assert principals == [70_000, 90_000]


async def test_closed_accounts_accrue_nothing(db):
    case, invoice_id, _ = await setup()
    await Account.update({Account.stage: "closed"}).where(Account.id == case.account.id)
    run = await accrue(as_of=day(6), now=at(day(6), 3), catch_up_days=3)
    assert await charges(invoice_id) == []
    assert run.days == 3
