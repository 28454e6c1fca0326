"""Contact guardrails: windows in the debtor's time zone, Sundays and holidays, quiet hours,
rolling frequency caps, opt-outs and pauses — examples, then properties (Hypothesis)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from saldo.rules.guardrails import (
    DEFAULT_WINDOW,
    MEXICO_WINDOW,
    Block,
    Calendar,
    Cap,
    Defer,
    Facts,
    Send,
    Window,
    allowed,
    cap_free_at,
    decide,
    next_allowed,
    preset_window,
)

UTC = dt.UTC
BA = "America/Argentina/Buenos_Aires"  # UTC-3 all year
MX = "America/Mexico_City"  # UTC-6 all year since 2022
ZONES = [BA, MX, "America/Santiago", "Europe/Madrid", "America/Bogota", "America/Sao_Paulo"]


def at(zone: str, *args: int) -> dt.datetime:
    """A local wall time in `zone`, as an aware UTC datetime."""
    return dt.datetime(*args, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def facts(now: dt.datetime, calendar: Calendar, **values) -> Facts:
    return Facts(
        now=now, calendar=calendar, address=values.pop("address", "ana@example.com"), **values
    )


# ---------------------------------------------------------------------------- windows


def test_before_the_window_waits_for_its_start_in_the_debtors_zone():
    calendar = Calendar(BA)
    now = at(BA, 2026, 3, 10, 7, 15)  # 10:15 UTC
    decision = decide(facts(now, calendar))
    assert decision == Defer(at(BA, 2026, 3, 10, 8, 0), "window")
    assert decision.until == dt.datetime(2026, 3, 10, 11, 0, tzinfo=UTC)


def test_inside_the_window_it_goes_and_the_end_is_exclusive():
    calendar = Calendar(BA)
    assert decide(facts(at(BA, 2026, 3, 10, 20, 59), calendar)) == Send()
    late = decide(facts(at(BA, 2026, 3, 10, 21, 0), calendar))
    assert late == Defer(at(BA, 2026, 3, 11, 8, 0), "window")


def test_the_same_instant_is_inside_one_zone_and_outside_another():
    now = dt.datetime(2026, 6, 2, 12, 30, tzinfo=UTC)  # 09:30 in Buenos Aires, 06:30 in Mexico
    assert decide(facts(now, Calendar(BA))) == Send()
    assert decide(facts(now, Calendar(MX, preset_window("MX")))) == Defer(
        at(MX, 2026, 6, 2, 7, 0), "window"
    )


def test_the_mexico_preset_is_seven_to_ten():
    assert preset_window("mx") == MEXICO_WINDOW == Window(dt.time(7), dt.time(22))
    assert preset_window("AR") == DEFAULT_WINDOW == Window(dt.time(8), dt.time(21))
    calendar = Calendar(MX, MEXICO_WINDOW)
    assert decide(facts(at(MX, 2026, 6, 2, 21, 30), calendar)) == Send()
    assert not allowed(at(BA, 2026, 6, 2, 21, 30), Calendar(BA))


def test_mexico_city_keeps_utc_minus_six_all_year():
    """No daylight saving since 2022: 07:00 is 13:00 UTC in January and in July."""
    calendar = Calendar(MX, MEXICO_WINDOW)
    for month in (1, 7):
        early = dt.datetime(2026, month, 15, 12, 0, tzinfo=UTC)
        assert decide(facts(early, calendar)) == Defer(
            dt.datetime(2026, month, 15, 13, 0, tzinfo=UTC), "window"
        )


def test_sundays_are_skipped_when_the_policy_says_so():
    calendar = Calendar(BA, skip_sundays=True)
    saturday_night = at(BA, 2026, 3, 14, 21, 30)
    assert decide(facts(saturday_night, calendar)) == Defer(at(BA, 2026, 3, 16, 8, 0), "window")
    sunday_noon = at(BA, 2026, 3, 15, 12, 0)
    assert decide(facts(sunday_noon, calendar)) == Defer(at(BA, 2026, 3, 16, 8, 0), "sunday")
    assert decide(facts(sunday_noon, Calendar(BA))) == Send()


def test_holidays_are_skipped_when_listed():
    holiday = dt.date(2026, 3, 24)
    calendar = Calendar(BA, holidays=frozenset({holiday, dt.date(2026, 3, 25)}))
    assert decide(facts(at(BA, 2026, 3, 24, 10, 0), calendar)) == Defer(
        at(BA, 2026, 3, 26, 8, 0), "holiday"
    )


def test_quiet_hours_across_midnight_shorten_the_window():
    calendar = Calendar(BA, quiet=Window(dt.time(20, 0), dt.time(9, 30)))
    assert decide(facts(at(BA, 2026, 3, 10, 8, 45), calendar)) == Defer(
        at(BA, 2026, 3, 10, 9, 30), "quiet_hours"
    )
    assert decide(facts(at(BA, 2026, 3, 10, 19, 59), calendar)) == Send()
    assert decide(facts(at(BA, 2026, 3, 10, 20, 0), calendar)) == Defer(
        at(BA, 2026, 3, 11, 9, 30), "quiet_hours"
    )


def test_a_window_over_midnight_and_a_whole_day_window():
    night = Calendar(BA, Window(dt.time(22), dt.time(2)))
    assert allowed(at(BA, 2026, 3, 10, 23, 0), night)
    assert allowed(at(BA, 2026, 3, 11, 1, 59), night)
    assert not allowed(at(BA, 2026, 3, 11, 2, 0), night)
    always = Calendar(BA, Window(dt.time(0), dt.time(0)))
    assert allowed(at(BA, 2026, 3, 11, 3, 0), always)


def test_daylight_saving_gap_is_crossed_exactly():
    """Madrid jumps from 02:00 to 03:00 on 2026-03-29: quiet hours ending at 02:30 end at 03:00."""
    calendar = Calendar(
        "Europe/Madrid", Window(dt.time(0), dt.time(0)), quiet=Window(dt.time(1), dt.time(2, 30))
    )
    now = dt.datetime(2026, 3, 29, 0, 15, tzinfo=UTC)  # 01:15 local, in the quiet hours
    assert next_allowed(now, calendar) == dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST


# ---------------------------------------------------------------------------- caps


def test_the_cap_is_a_rolling_window():
    cap = Cap(limit=2, days=7)
    first = at(BA, 2026, 3, 2, 10, 0)
    sent = (first, at(BA, 2026, 3, 3, 10, 0))
    now = at(BA, 2026, 3, 5, 12, 0)
    assert cap_free_at(now, cap, sent) == first + dt.timedelta(days=7)
    decision = decide(facts(now, Calendar(BA), cap=cap, recent=sent))
    assert decision == Defer(first + dt.timedelta(days=7), "cap")
    later = first + dt.timedelta(days=7)
    assert decide(facts(later, Calendar(BA), cap=cap, recent=sent)) == Send()


def test_a_cap_that_frees_at_night_waits_for_the_morning():
    cap = Cap(limit=1, days=1)
    sent = (at(BA, 2026, 3, 2, 20, 50),)
    decision = decide(facts(at(BA, 2026, 3, 3, 9, 0), Calendar(BA), cap=cap, recent=sent))
    assert decision == Defer(at(BA, 2026, 3, 3, 20, 50), "cap")
    sent = (at(BA, 2026, 3, 2, 21, 30),)  # frees at 21:30, outside the window
    decision = decide(facts(at(BA, 2026, 3, 3, 9, 0), Calendar(BA), cap=cap, recent=sent))
    assert decision == Defer(at(BA, 2026, 3, 4, 8, 0), "cap")


def test_a_zero_cap_means_no_cap():
    many = tuple(at(BA, 2026, 3, 2, 9, m) for m in range(30))
    assert (
        decide(facts(at(BA, 2026, 3, 2, 10, 0), Calendar(BA), cap=Cap(0, 7), recent=many)) == Send()
    )


# ---------------------------------------------------------------------------- blocks


def test_blocks_come_before_any_timing():
    night = at(BA, 2026, 3, 10, 23, 0)
    calendar = Calendar(BA)
    assert decide(facts(night, calendar, address=" ")) == Block("no_address")
    assert decide(facts(night, calendar, opted_in=False)) == Block("opted_out")
    assert decide(facts(night, calendar, pause="dispute")) == Block("pause:dispute")


def test_service_messages_ignore_window_caps_and_pauses_but_not_opt_outs():
    night = at(BA, 2026, 3, 10, 23, 0)
    busy = tuple(night - dt.timedelta(hours=h) for h in range(1, 20))
    service = facts(night, Calendar(BA), guarded=False, recent=busy, pause="promise")
    assert decide(service) == Send()
    assert decide(facts(night, Calendar(BA), guarded=False, opted_in=False)) == Block("opted_out")


def test_no_allowed_moment_blocks():
    every_day = frozenset(dt.date(2026, 1, 1) + dt.timedelta(days=d) for d in range(800))
    decision = decide(facts(at(BA, 2026, 3, 10, 10, 0), Calendar(BA, holidays=every_day)))
    assert decision == Block("no_send_moment")


# ---------------------------------------------------------------------------- properties

minutes = st.integers(min_value=0, max_value=24 * 60 - 1).map(lambda m: dt.time(m // 60, m % 60))
instants = st.datetimes(min_value=dt.datetime(2024, 1, 1), max_value=dt.datetime(2030, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC)
)


@st.composite
def calendars(draw: st.DrawFn) -> Calendar:
    zone = draw(st.sampled_from(ZONES))
    window = Window(draw(minutes), draw(minutes))
    quiet = draw(st.none() | st.builds(Window, minutes, minutes))
    return Calendar(zone, window, draw(st.booleans()), frozenset(), quiet)


def _with_holidays(calendar: Calendar, now: dt.datetime, offsets: list[int]) -> Calendar:
    today = now.astimezone(ZoneInfo(calendar.timezone)).date()
    holidays = frozenset(today + dt.timedelta(days=o) for o in offsets)
    return Calendar(
        calendar.timezone, calendar.window, calendar.skip_sundays, holidays, calendar.quiet
    )


def _whole_minutes_between(start: dt.datetime, end: dt.datetime):
    moment = start.replace(second=0, microsecond=0)
    if moment < start:
        moment += dt.timedelta(minutes=1)
    while moment < end:
        yield moment
        moment += dt.timedelta(minutes=1)


@settings(max_examples=150, deadline=None)
@given(calendars(), instants, st.lists(st.integers(0, 6), max_size=3))
def test_next_allowed_is_allowed_and_nothing_earlier_is(calendar, now, holiday_offsets):
    calendar = _with_holidays(calendar, now, holiday_offsets)
    found = next_allowed(now, calendar)
    if found is None:  # the quiet hours cover the whole window: never in the next ten days
        later = now + dt.timedelta(days=10)
        assert not any(allowed(m, calendar) for m in _whole_minutes_between(now, later))
        return
    assert found >= now
    assert allowed(found, calendar)
    if found == now:
        return
    assert not allowed(now, calendar)
    # every boundary sits on a whole minute, so checking whole minutes is exhaustive
    assert not any(allowed(m, calendar) for m in _whole_minutes_between(now, found))


@settings(max_examples=150, deadline=None)
@given(
    calendars(),
    instants,
    st.integers(1, 5),
    st.integers(1, 7),
    st.lists(st.integers(0, 14 * 24 * 60), max_size=8),
)
def test_decide_defers_to_a_moment_that_every_rule_allows(calendar, now, limit, days, ago):
    cap = Cap(limit, days)
    recent = tuple(now - dt.timedelta(minutes=m) for m in ago)
    decision = decide(Facts(now=now, calendar=calendar, address="x", cap=cap, recent=recent))
    if isinstance(decision, Send):
        assert allowed(now, calendar) and cap_free_at(now, cap, recent) == now
    elif isinstance(decision, Defer):
        assert decision.until > now
        assert allowed(decision.until, calendar)
        assert cap_free_at(decision.until, cap, recent) == decision.until
        assert decision.reason in {"window", "sunday", "holiday", "quiet_hours", "cap"}
    else:
        assert decision == Block("no_send_moment")


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 6), st.integers(1, 7), st.lists(st.integers(1, 36 * 60), min_size=1, max_size=60)
)
def test_following_the_decisions_never_breaks_the_cap(limit, days, gaps):
    """Messages that go whenever `decide` says Send (and wait when it defers) never exceed
    `limit` within any `days`-day window."""
    cap = Cap(limit, days)
    calendar = Calendar(BA, Window(dt.time(0), dt.time(0)))
    now = dt.datetime(2026, 1, 1, tzinfo=UTC)
    sent: list[dt.datetime] = []
    for gap in gaps:
        now += dt.timedelta(minutes=gap)
        decision = decide(
            Facts(now=now, calendar=calendar, address="x", cap=cap, recent=tuple(sent))
        )
        if isinstance(decision, Defer):
            now = decision.until
            decision = decide(
                Facts(now=now, calendar=calendar, address="x", cap=cap, recent=tuple(sent))
            )
        assert isinstance(decision, Send)
        sent.append(now)
        window_start = now - dt.timedelta(days=days)
        assert sum(1 for s in sent if s > window_start) <= limit
