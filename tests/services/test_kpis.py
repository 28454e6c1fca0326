"""Each KPI on the small portfolio of tests/services/kpi_world.py, January–March 2026 by month.

The expected numbers are worked out by hand below from the world's events (amounts in
centavos). Balances at each period end, per open invoice (days past due in brackets):

    opening 2025-12-31: INV1 100 000 [30]                         → R0 = 100 000, current 0
    end of January:     INV1 60 000 [61], INV2 50 000 [—], INV3 80 000 [—]
                                                                  → R1 = 190 000, current 130 000
    end of February:    INV1 60 000 [89], INV3 80 000 [9]         → R2 = 140 000, current 0
    end of March:       INV1 60 000 [120], INV3 82 000 [40], INV4 30 000 [—]
                                                                  → R3 = 172 000, current 30 000

Flows: billed Jan 50 000 + 80 000 = 130 000, Feb 0, Mar 2 000 + 30 000 = 32 000;
collected Jan 40 000, Feb 50 000, Mar 10 000 − 10 000 = 0; recovered (paid on an invoice past
due) Jan 40 000, Feb 0 (INV2 paid before its due date), Mar 0. Newly overdue: Feb INV3 80 000
(INV2 fell due with nothing open); interest on overdue INV3 in March 2 000.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saldo.services import kpis
from saldo.services.kpis import UnitCosts
from saldo.services.kpis_data import Flows, KpiData, KpiScope, Period, split_periods
from saldo.services.ledger import post_entry
from saldo.services.promises import promise_kept_rate
from saldo.tables import EntryKind
from tests.services.helpers import make_account, make_invoice
from tests.services.kpi_world import D, World, build_world

JAN, FEB, MAR = 1, 2, 3


@pytest.fixture(scope="module")
async def world(db) -> World:
    return await build_world()


@pytest.fixture
def scope(world) -> KpiScope:
    return KpiScope("ARS", D(2026, 1, 1), D(2026, 3, 31), "month", world.creditor_id)


def values(kpi: kpis.Kpi, line: int = 0) -> list[Decimal | int | None]:
    return [p.value for p in kpi.lines[line].points]


def q(text: str) -> Decimal:
    return Decimal(text)


# ---------------------------------------------------------------------------- periods


def test_months_are_calendar_months_clipped_to_the_range():
    assert split_periods(D(2026, 1, 15), D(2026, 3, 10), "month") == (
        Period(D(2026, 1, 15), D(2026, 1, 31)),
        Period(D(2026, 2, 1), D(2026, 2, 28)),
        Period(D(2026, 3, 1), D(2026, 3, 10)),
    )


def test_weeks_run_monday_to_sunday_clipped_to_the_range():
    # 2026-01-01 is a Thursday
    periods = split_periods(D(2026, 1, 1), D(2026, 1, 20), "week")
    assert periods == (
        Period(D(2026, 1, 1), D(2026, 1, 4)),
        Period(D(2026, 1, 5), D(2026, 1, 11)),
        Period(D(2026, 1, 12), D(2026, 1, 18)),
        Period(D(2026, 1, 19), D(2026, 1, 20)),
    )
    assert sum(p.days for p in periods) == 20


def test_an_empty_range_or_unknown_granularity_is_refused():
    with pytest.raises(ValueError):
        split_periods(D(2026, 2, 1), D(2026, 1, 1), "month")
    with pytest.raises(ValueError):
        split_periods(D(2026, 1, 1), D(2026, 2, 1), "day")


# ---------------------------------------------------------------------------- ledger KPIs


async def test_receivables_and_aging_at_each_period_end(scope):
    data = KpiData(scope)
    balances = await data.balances()
    # opening: INV1 100 000, 30 days past due on 2025-12-31
    assert balances[0].buckets == (0, 100_000, 0, 0, 0)
    # January: INV2 + INV3 not yet due; INV1 60 000 at 61 days
    assert balances[JAN].buckets == (130_000, 0, 0, 60_000, 0)
    # February: INV3 80 000 at 9 days; INV1 60 000 at 89 days
    assert balances[FEB].buckets == (0, 80_000, 0, 60_000, 0)
    # March: INV4 30 000 current; INV3 82 000 at 40 days; INV1 60 000 at 120 days
    assert balances[MAR].buckets == (30_000, 0, 82_000, 0, 60_000)
    assert [balances[k].receivables for k in range(4)] == [100_000, 190_000, 140_000, 172_000]

    aging = await kpis.aging(scope, data)
    assert [line.key for line in aging.lines] == [
        "aging_current",
        "aging_1_30",
        "aging_31_60",
        "aging_61_90",
        "aging_90_plus",
    ]
    assert [values(aging, i) for i in range(5)] == [
        [130_000, 0, 30_000],
        [0, 80_000, 0],
        [0, 0, 82_000],
        [60_000, 60_000, 0],
        [0, 0, 60_000],
    ]
    assert [line.total.value for line in aging.lines] == [30_000, 0, 82_000, 0, 60_000]


async def test_flows_net_payment_reversals(scope):
    flows = await KpiData(scope).flows()
    assert (flows[JAN].billed, flows[JAN].collected, flows[JAN].recovered) == (
        130_000,
        40_000,
        40_000,
    )
    assert (flows[FEB].billed, flows[FEB].collected, flows[FEB].recovered) == (0, 50_000, 0)
    # March: 2 000 interest + 30 000 INV4; a 10 000 payment and its chargeback cancel out
    assert (flows[MAR].billed, flows[MAR].collected, flows[MAR].recovered) == (32_000, 0, 0)
    assert flows[MAR].billed_overdue == 2_000


async def test_dso(scope):
    kpi = await kpis.dso(scope)
    # Jan: 190 000 / 130 000 × 31 = 45.307… ; Feb: nothing billed → undefined;
    # Mar: 172 000 / 32 000 × 31 = 166.625 → 166.6
    assert values(kpi) == [q("45.3"), None, q("166.6")]
    assert kpi.lines[0].points[0].numerator == 190_000
    assert kpi.lines[0].points[0].denominator == 130_000
    # range: 172 000 / 162 000 × 90 days = 95.555… → 95.6
    assert kpi.headline.value == q("95.6")
    assert "÷" in kpi.spec.formula("es") and kpi.spec.definition("en")


async def test_collection_effectiveness_index(scope):
    kpi = await kpis.cei(scope)
    # Jan: (100 000 + 130 000 − 190 000) / (100 000 + 130 000 − 130 000) = 40 000 / 100 000
    # Feb: (190 000 + 0 − 140 000) / (190 000 − 0) = 50 000 / 190 000 = 26.31…
    # Mar: (140 000 + 32 000 − 172 000) / (172 000 − 30 000) = 0 / 142 000
    assert values(kpi) == [q("40.0"), q("26.3"), q("0.0")]
    assert [(p.numerator, p.denominator) for p in kpi.lines[0].points] == [
        (40_000, 100_000),
        (50_000, 190_000),
        (0, 142_000),
    ]
    # range: (100 000 + 162 000 − 172 000) / (262 000 − 30 000) = 90 000 / 232 000 = 38.79…
    assert kpi.headline.value == q("38.8")


async def test_recovery_rate(scope):
    kpi = await kpis.recovery_rate(scope)
    # Jan: 40 000 / (overdue at start 100 000 + newly overdue 0)
    # Feb: 0 / (60 000 + INV3 falling due 80 000)
    # Mar: 0 / (140 000 + interest on overdue INV3 2 000)
    assert values(kpi) == [q("40.0"), q("0.0"), q("0.0")]
    assert [p.denominator for p in kpi.lines[0].points] == [100_000, 140_000, 142_000]
    # range: 40 000 / (100 000 + 80 000 + 2 000) = 21.97… → 22.0
    assert kpi.headline == kpis.Point(q("22.0"), 40_000, 182_000)


# ---------------------------------------------------------------------------- conversations


async def test_promise_kept_rate_agrees_with_the_promises_service(scope, world):
    kpi = await kpis.promise_kept_rate(scope)
    # Jan: 1 kept of 1; Feb: 1 kept, 1 broken (the cancelled one does not count); Mar: none
    assert values(kpi) == [q("100.0"), q("50.0"), None]
    assert kpi.headline == kpis.Point(q("66.7"), 2, 3)  # 2 / 3; April's promise is outside
    service = await promise_kept_rate(
        creditor_id=world.creditor_id, start=scope.start, end=scope.end
    )
    # the service counts every currency: plus the USD account's broken promise in January
    assert (service.kept, service.broken) == (2, 2)


async def test_plan_default_rate(scope):
    kpi = await kpis.plan_default_rate(scope)
    # in force: Jan PL1, PL2, PL3; Feb PL1, PL2 (PL2 broken on 02-15); Mar PL1.
    # The plan broken in December and the proposal never count.
    assert [(p.numerator, p.denominator) for p in kpi.lines[0].points] == [
        (0, 3),
        (1, 2),
        (0, 1),
    ]
    assert values(kpi) == [q("0.0"), q("50.0"), q("0.0")]
    assert kpi.headline == kpis.Point(q("33.3"), 1, 3)


async def test_contact_rate(scope):
    kpi = await kpis.contact_rate(scope)
    # Jan: reached, no answer, a visit with a promise → 2 of 3; Feb: a wrong number → 0 of 1;
    # Mar: only a note, which is not an attempt
    assert values(kpi) == [q("66.7"), q("0.0"), None]
    assert kpi.headline == kpis.Point(q("50.0"), 2, 4)


async def test_accounts_managed(scope):
    kpi = await kpis.accounts_managed(scope)
    # Jan end: A1 overdue, worked (calls) → 1/1. Feb end: A1 and A3 overdue; only A2 was
    # called, A1's system interaction is not staff work → 0/2. Mar end: A1, A3 overdue;
    # a note on A3 → 1/2.
    assert [(p.numerator, p.denominator) for p in kpi.lines[0].points] == [
        (1, 1),
        (0, 2),
        (1, 2),
    ]
    assert values(kpi) == [q("100.0"), q("0.0"), q("50.0")]
    # range: A1 and A3 overdue at the end, both worked at some point → 2/2
    assert kpi.headline == kpis.Point(q("100.0"), 2, 2)


async def test_messages_sent_and_blocked(scope):
    kpi = await kpis.messages(scope)
    sent, blocked = kpi.lines
    assert values(kpi, 0) == [3, 1, 0]  # Jan: 2 emails + 1 SMS; Feb: 1 email
    assert values(kpi, 1) == [1, 1, 0]  # a WhatsApp in January, an email in February
    assert sent.total.value == 4 and blocked.total == kpis.Point(2, 2, 6)
    by_channel = {c.channel: (c.sent, c.blocked) for c in kpi.channels}
    assert by_channel == {"email": (3, 1), "sms": (1, 0), "whatsapp": (0, 1)}


async def test_cost_of_collection_per_peso_recovered(scope):
    costs = UnitCosts(email=100, sms=500, whatsapp=700, agent_contact=10_000)
    kpi = await kpis.collection_cost(scope, unit_costs=costs)
    # Jan: 2 × 100 + 1 × 500 + 3 contacts × 10 000 = 30 700 over 40 000 recovered = 0.7675
    # Feb: 1 × 100 + 1 × 10 000 = 10 100 over nothing recovered → undefined; Mar: nothing
    assert [(p.numerator, p.denominator) for p in kpi.lines[0].points] == [
        (30_700, 40_000),
        (10_100, 0),
        (0, 0),
    ]
    assert values(kpi) == [q("0.7675"), None, None]
    # range: 40 800 / 40 000 = 1.02
    assert kpi.headline.value == q("1.0200")
    rows = {c.channel: (c.sent, c.unit_cost, c.cost) for c in kpi.channels}
    assert rows["email"] == (3, 100, 300)
    assert rows["agent_contact"] == (4, 10_000, 40_000)
    # blocked messages cost nothing
    assert rows["whatsapp"] == (0, 700, 0)


async def test_other_creditors_and_currencies_stay_out(scope, world):
    usd = KpiScope("USD", scope.start, scope.end, "month", world.creditor_id)
    kpi = await kpis.aging(usd)
    # USD: 999 900 billed in November, 500 000 paid on 01-15, due 2025-12-01
    assert sum(line.total.value for line in kpi.lines) == 499_900
    other = await build_world()
    again = await kpis.aging(scope)
    assert [line.total.value for line in again.lines] == [30_000, 0, 82_000, 0, 60_000]
    assert other.creditor_id != world.creditor_id


async def test_weekly_aging_matches_the_ledger_on_each_sunday(world):
    weekly = KpiScope("ARS", D(2026, 2, 2), D(2026, 2, 22), "week", world.creditor_id)
    kpi = await kpis.aging(weekly)
    assert [p.end for p in weekly.periods] == [D(2026, 2, 8), D(2026, 2, 15), D(2026, 2, 22)]
    # Feb 8: INV2 was paid on 02-01; INV1 60 000 at 69 days; INV3 80 000 not yet due
    # Feb 15: same, INV1 at 76 days; Feb 22: INV3 at 3 days, INV1 at 83 days
    assert [[int(p.value or 0) for p in line.points] for line in kpi.lines] == [
        [80_000, 80_000, 0],
        [0, 0, 80_000],
        [0, 0, 0],
        [60_000, 60_000, 60_000],
        [0, 0, 0],
    ]


async def test_every_kpi_shares_one_set_of_queries(scope, monkeypatch):
    from saldo.services import kpis_data

    calls: list[str] = []
    real = kpis_data._raw

    async def counting(sql: str, *args):
        calls.append(sql)
        return await real(sql, *args)

    monkeypatch.setattr(kpis_data, "_raw", counting)
    found = await kpis.all_kpis(scope)
    assert [k.key for k in found.kpis] == [
        "dso",
        "cei",
        "recovery_rate",
        "promise_kept_rate",
        "plan_default_rate",
        "contact_rate",
        "accounts_managed",
        "messages",
        "cost_per_recovered",
        "aging",
    ]
    assert len(calls) == 7  # flows, balances, new overdue, promises, plans, contacts, messages
    for kpi in found.kpis:
        assert kpi.spec.definition("es") != kpi.spec.definition("en")
        assert kpi.spec.formula("es") and kpi.spec.formula("en")
        assert all(len(line.points) == scope.n for line in kpi.lines)


async def test_a_cache_for_another_scope_is_refused(scope, world):
    other = KpiScope("ARS", D(2026, 1, 1), D(2026, 1, 31), "month", world.creditor_id)
    with pytest.raises(ValueError):
        await kpis.dso(scope, KpiData(other))


def test_default_unit_costs_exist_for_every_currency():
    from saldo import money

    assert set(kpis.DEFAULT_UNIT_COSTS) == set(money.EXPONENTS)
    for costs in kpis.DEFAULT_UNIT_COSTS.values():
        assert min(costs.email, costs.sms, costs.whatsapp) > 0
        assert costs.email <= min(costs.sms, costs.whatsapp)  # email is the cheapest channel
        assert costs.agent_contact > max(costs.email, costs.sms, costs.whatsapp)


def test_periods_dates_are_plain_dates():
    scope = KpiScope("ARS", D(2026, 1, 1), D(2026, 1, 31))
    assert scope.thresholds() == [D(2026, 1, 1), D(2026, 2, 1)]
    assert scope.first_instant() == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


async def test_bucket_edges_by_days_past_due_at_the_period_end(db):
    account = await make_account()
    end = D(2026, 6, 30)
    # totals 1, 10, 100, … so each bucket's sum names the invoices in it
    for power, late in enumerate((-1, 0, 1, 30, 31, 60, 61, 90, 91)):
        await make_invoice(account, f"E-{late}", 10**power, end - dt.timedelta(days=late))
    scope = KpiScope("ARS", D(2026, 6, 1), end, "month", account.creditor)
    balances = await KpiData(scope).balances()
    # current: due tomorrow (1) and today (10); 1–30: 1 and 30 days; 31–60; 61–90; over 90
    assert balances[1].buckets == (11, 1_100, 110_000, 11_000_000, 100_000_000)
    assert balances[1].overdue_accounts == 1


# ---------------------------------------------------------------------------- against a model

invoices_st = st.lists(
    st.tuples(st.integers(0, 120), st.integers(0, 60), st.integers(1, 100_000)),
    min_size=1,
    max_size=5,
)
moves_st = st.lists(
    st.tuples(
        st.integers(0, 4),
        st.integers(0, 160),
        st.sampled_from(["payment", "interest", "fee", "credit_note"]),
        st.integers(1, 80_000),
    ),
    max_size=12,
)
BASE = D(2026, 1, 1)
SIGN = {"payment": -1, "credit_note": -1, "interest": 1, "fee": 1}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(invoices=invoices_st, moves=moves_st, by=st.sampled_from(["month", "week"]))
async def test_balances_and_flows_match_a_model_of_the_ledger(db, invoices, moves, by):
    account = await make_account()
    made = []  # (invoice id, due date, [(date, amount, kind)])
    for number, (issued, delay, total) in enumerate(invoices):
        invoice = await make_invoice(
            account, f"M-{number}", total, BASE + dt.timedelta(days=issued + 30 + delay)
        )
        made.append((invoice.id, invoice.due_date, [(invoice.issue_date, total, "charge")]))
    for index, day, kind, amount in moves:
        invoice_id, _, entries = made[index % len(made)]
        on = BASE + dt.timedelta(days=day)
        await post_entry(
            account_id=account.id,
            kind=EntryKind(kind),
            amount=SIGN[kind] * amount,
            currency="ARS",
            effective_date=on,
            invoice_id=invoice_id,
        )
        entries.append((on, SIGN[kind] * amount, kind))
    scope = KpiScope("ARS", D(2026, 2, 10), D(2026, 5, 31), by, account.creditor)
    data = KpiData(scope)
    balances, flows = await data.balances(), await data.flows()

    ends = [scope.start - dt.timedelta(days=1)] + [p.end for p in scope.periods]
    for k, end in enumerate(ends):
        buckets = [0] * 5
        for _, due, entries in made:
            open_amount = sum(amount for on, amount, _ in entries if on <= end)
            if open_amount > 0:
                late = (end - due).days
                slot = 0 if late <= 0 else 1 if late <= 30 else 2 if late <= 60 else 3
                buckets[4 if late > 90 else slot] += open_amount
        assert balances[k].buckets == tuple(buckets), (k, end)
    for k, period in enumerate(scope.periods, start=1):
        inside = [
            (amount, kind)
            for _, _, entries in made
            for on, amount, kind in entries
            if period.start <= on <= period.end
        ]
        got = flows.get(k, Flows())
        assert got.billed == sum(a for a, kind in inside if kind in ("charge", "interest", "fee"))
        assert got.collected == -sum(a for a, kind in inside if kind == "payment")
