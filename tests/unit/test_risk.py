"""The risk score and segment rules (pure): bounds, monotonicity, the documented points."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from saldo.rules.risk import LARGE_BALANCE, SEGMENTS, Features, score, segment

CURRENCIES = st.sampled_from([*sorted(LARGE_BALANCE), "XYZ"])
COUNTS = st.integers(min_value=0, max_value=6)


@st.composite
def features(draw: st.DrawFn) -> Features:
    return Features(
        balance=draw(st.integers(min_value=-(10**9), max_value=10**12)),
        currency=draw(CURRENCIES),
        days_past_due=draw(st.integers(min_value=-60, max_value=2_000)),
        kept_promises=draw(COUNTS),
        broken_promises=draw(COUNTS),
        broken_plans=draw(COUNTS),
        payments_90d=draw(COUNTS),
        legal=draw(st.booleans()),
    )


@given(features())
def test_the_score_stays_between_0_and_100_and_is_0_when_nothing_is_owed(f):
    assert 0 <= score(f) <= 100
    if f.balance <= 0:
        assert score(f) == 0
        assert segment(f) == "settled"
    assert segment(f) in SEGMENTS


@given(features(), st.integers(min_value=0, max_value=500))
def test_more_days_past_due_never_lowers_the_score(f, more):
    later = replace(f, days_past_due=f.days_past_due + more)
    assert score(later) >= score(f)


@given(features(), st.integers(min_value=0, max_value=10**11))
def test_a_larger_balance_never_lowers_the_score(f, more):
    larger = replace(f, balance=f.balance + more)
    assert score(larger) >= score(f)


@given(features())
def test_a_good_history_never_raises_the_score_and_a_bad_one_never_lowers_it(f):
    assert score(replace(f, kept_promises=f.kept_promises + 1)) <= score(f)
    assert score(replace(f, payments_90d=f.payments_90d + 1)) <= score(f)
    assert score(replace(f, broken_promises=f.broken_promises + 1)) >= score(f)
    assert score(replace(f, broken_plans=f.broken_plans + 1)) >= score(f)


def test_the_documented_points():
    large = LARGE_BALANCE["ARS"]
    base = Features(balance=large // 2, currency="ARS", days_past_due=45)
    assert score(base) == 22 + 12  # 45 days: 45 × 45 / 90 rounded down; half a large balance
    assert score(replace(base, days_past_due=400, balance=large * 3)) == 45 + 25
    assert score(replace(base, broken_promises=5, broken_plans=1)) == 34 + 12 + 8
    assert score(replace(base, kept_promises=1, payments_90d=9)) == 34 - 4 - 9
    worst = replace(base, days_past_due=90, balance=large, broken_promises=2, broken_plans=2)
    assert score(worst) == 45 + 25 + 12 + 16
    best = Features(balance=1, currency="ARS", days_past_due=0, kept_promises=2, payments_90d=3)
    assert score(best) == 0


def test_segments():
    large = LARGE_BALANCE["MXN"]
    f = Features(balance=10_000, currency="MXN", days_past_due=0)
    assert segment(f) == "preventive"
    assert segment(replace(f, days_past_due=-3)) == "preventive"
    assert segment(replace(f, days_past_due=1)) == "early"
    assert segment(replace(f, days_past_due=30)) == "early"
    assert segment(replace(f, days_past_due=31)) == "late"
    assert segment(replace(f, days_past_due=31, balance=large)) == "high_value"
    assert segment(replace(f, days_past_due=0, balance=large)) == "preventive"
    assert segment(replace(f, days_past_due=200, legal=True)) == "legal"
    assert segment(replace(f, balance=0, legal=True)) == "settled"
