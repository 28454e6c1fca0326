"""The staff views' arithmetic: timer spans and the report's table add up (Hypothesis)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from saldo.services.dispute_rules import REASON_CODES
from saldo.services.dispute_staff import REPORT_OUTCOMES, ReasonReport, ReasonRow, span

OUTCOMES = ("open", "accepted", "partially_accepted", "rejected", "withdrawn", "resolved")


@given(st.integers(min_value=-(10**9), max_value=10**9))
def test_a_span_is_the_whole_minutes_of_a_duration_either_side_of_zero(seconds):
    days, hours, minutes = span(dt.timedelta(seconds=seconds))
    assert 0 <= hours < 24 and 0 <= minutes < 60
    assert days * 1440 + hours * 60 + minutes == abs(seconds) // 60


def test_a_span_reads_like_the_timer():
    assert span(dt.timedelta(days=-3, hours=-21, minutes=-5)) == (3, 21, 5)
    assert span(dt.timedelta(hours=20, seconds=59)) == (0, 20, 0)


rows = st.lists(
    st.builds(
        ReasonRow,
        reason_code=st.sampled_from(REASON_CODES),
        reason=st.just(""),
        outcome=st.sampled_from(OUTCOMES),
        currency=st.sampled_from(("ARS", "CLP", "USD")),
        count=st.integers(min_value=1, max_value=50),
        disputed=st.integers(min_value=1, max_value=10**9),
        credited=st.integers(min_value=0, max_value=10**9),
    ),
    max_size=30,
    unique_by=lambda r: (r.reason_code, r.outcome, r.currency),
)


@given(rows)
def test_the_report_table_adds_up_per_reason_and_in_total(report_rows):
    report = ReasonReport(dt.date(2026, 1, 1), dt.date(2026, 1, 31), tuple(report_rows))
    summaries = report.by_reason()
    if not report_rows:
        assert summaries == ()
        return
    *per_reason, total = summaries
    assert total.reason_code == ""
    assert {s.reason_code: s.total for s in per_reason} == report.count_by_reason()
    assert total.total == report.total == sum(s.total for s in per_reason)
    for column in REPORT_OUTCOMES:
        assert total.counts[column] == sum(s.counts[column] for s in per_reason)
    by_outcome = report.count_by_outcome()
    assert total.counts["other"] == by_outcome.get("withdrawn", 0) + by_outcome.get("resolved", 0)
    for summary in summaries:
        assert sum(summary.counts.values()) == summary.total
        decided = summary.total - summary.counts["open"]
        assert (summary.accepted_share is None) == (decided == 0)
        if summary.accepted_share is not None:
            assert 0 <= summary.accepted_share <= 100
    currencies = {r.currency for r in report_rows}
    assert len(total.disputed) == len(total.credited) == len(currencies)
