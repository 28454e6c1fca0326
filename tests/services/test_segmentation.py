"""Nightly segmentation against a real database: the features each account gets from its ledger
and history, the score and segment written, and the SQL rules agreeing with the pure ones."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from saldo.rules import risk
from saldo.services.segmentation import account_features, segment_accounts
from saldo.tables import Account, PaymentPlan, PromiseToPay

from .dunning_world import DAY0, at, invoice, make_case, make_creditor, pay

AS_OF = DAY0 + dt.timedelta(days=100)


async def stored(account_id: int) -> tuple[int, str]:
    row = await Account.objects().get(Account.id == account_id)
    assert row is not None
    return row.risk_score, row.segment


async def test_each_account_gets_its_features_score_and_segment(db):
    creditor = await make_creditor()
    late = await make_case(creditor)
    await invoice(late, 300_000, AS_OF - dt.timedelta(days=45))
    paid_part = await invoice(late, 100_000, AS_OF - dt.timedelta(days=200))
    await pay(late, 100_000, at(AS_OF - dt.timedelta(days=10)), [paid_part.id])
    await PromiseToPay(
        account=late.account.id, amount=1, promised_date=DAY0, status="broken"
    ).save()
    await PromiseToPay(account=late.account.id, amount=1, promised_date=DAY0, status="kept").save()
    await PaymentPlan(
        account=late.account.id, status="broken", total=1, installments_count=1, first_date=DAY0
    ).save()

    upcoming = await make_case(creditor, name="Al Día")
    await invoice(upcoming, 50_000, AS_OF + dt.timedelta(days=5))
    settled = await make_case(creditor, name="Sin Deuda")
    done = await invoice(settled, 50_000, AS_OF - dt.timedelta(days=5))
    await pay(settled, 50_000, at(AS_OF - dt.timedelta(days=1)), [done.id])
    legal = await make_case(creditor, name="En Juicio")
    await invoice(legal, 80_000, AS_OF - dt.timedelta(days=120))
    await Account.update({Account.legal_escalated_at: at(AS_OF)}).where(
        Account.id == legal.account.id
    )

    result = await segment_accounts(as_of=AS_OF, creditor_ids=[creditor.id])
    assert result.changed == 4
    assert result.segments == {"late": 1, "preventive": 1, "settled": 1, "legal": 1}

    ids = [c.account.id for c in (late, upcoming, settled, legal)]
    found = await account_features(ids, as_of=AS_OF)
    features, _, _ = found[late.account.id]
    assert features == risk.Features(
        balance=300_000,
        currency="ARS",
        days_past_due=45,
        kept_promises=1,
        broken_promises=1,
        broken_plans=1,
        payments_90d=1,
        legal=False,
    )
    expected = {
        late.account.id: (22 + 0 + 6 + 8 - 4 - 3, "late"),
        upcoming.account.id: (0, "preventive"),
        settled.account.id: (0, "settled"),
        legal.account.id: (45, "legal"),
    }
    for account_id, (score, segment) in expected.items():
        f, sql_score, sql_segment = found[account_id]
        assert (risk.score(f), risk.segment(f)) == (score, segment)
        assert (sql_score, sql_segment) == (score, segment)
        assert await stored(account_id) == (score, segment)

    again = await segment_accounts(as_of=AS_OF, creditor_ids=[creditor.id])
    assert again.changed == 0
    assert [await stored(a) for a in ids] == [expected[a] for a in ids]


async def test_the_as_of_date_decides_what_counts(db):
    creditor = await make_creditor()
    case = await make_case(creditor)
    await invoice(case, 100_000, AS_OF - dt.timedelta(days=10))
    [(f, _, segment)] = (await account_features([case.account.id], as_of=AS_OF)).values()
    assert (f.days_past_due, segment) == (10, "early")
    [(f, _, segment)] = (
        await account_features([case.account.id], as_of=AS_OF + dt.timedelta(days=31))
    ).values()
    assert (f.days_past_due, segment) == (41, "late")


FEATURES = st.builds(
    risk.Features,
    balance=st.integers(min_value=-(10**10), max_value=10**13),
    currency=st.sampled_from([*sorted(risk.LARGE_BALANCE), "XYZ"]),
    days_past_due=st.integers(min_value=-400, max_value=5_000),
    kept_promises=st.integers(min_value=0, max_value=9),
    broken_promises=st.integers(min_value=0, max_value=9),
    broken_plans=st.integers(min_value=0, max_value=9),
    payments_90d=st.integers(min_value=0, max_value=9),
    legal=st.booleans(),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(FEATURES, min_size=1, max_size=40))
async def test_the_sql_rules_agree_with_the_pure_ones(db, batch):
    columns = dict(
        balance="f.balance",
        currency="f.currency",
        days_past_due="f.dpd",
    )
    score_sql = risk.score_sql(
        **columns,
        kept_promises="f.kept",
        broken_promises="f.broken",
        broken_plans="f.plans",
        payments_90d="f.payments",
    )
    segment_sql = risk.segment_sql(**columns, legal="f.legal")
    rows = await Account.raw(
        f"""SELECT f.n, {score_sql} AS score, {segment_sql} AS segment
            FROM unnest({{}}::int[], {{}}::bigint[], {{}}::text[], {{}}::int[], {{}}::int[],
                        {{}}::int[], {{}}::int[], {{}}::int[], {{}}::bool[])
                 AS f(n, balance, currency, dpd, kept, broken, plans, payments, legal)
            ORDER BY f.n""",
        list(range(len(batch))),
        [f.balance for f in batch],
        [f.currency for f in batch],
        [f.days_past_due for f in batch],
        [f.kept_promises for f in batch],
        [f.broken_promises for f in batch],
        [f.broken_plans for f in batch],
        [f.payments_90d for f in batch],
        [f.legal for f in batch],
    )
    assert [(r["score"], r["segment"]) for r in rows] == [
        (risk.score(f), risk.segment(f)) for f in batch
    ]
