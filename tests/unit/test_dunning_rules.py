"""Pure dunning rules: stages only move forward, the default policy, windows, reminder channel."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from saldo.rules.dunning import (
    DEFAULT_STEPS,
    DEFAULT_WINDOW,
    MEXICO_WINDOW,
    STAGE_RANK,
    reminder_channel,
    stage_after,
    window_for,
    window_start_at,
)

STAGES = st.sampled_from([*STAGE_RANK, "closed"])


@given(STAGES, st.lists(st.sampled_from(list(STAGE_RANK)), max_size=8))
def test_a_stage_never_goes_back_and_ends_at_the_highest_step_reached(start, reached):
    stage = start
    for step in reached:
        after = stage_after(stage, step)
        if stage != "closed":
            assert STAGE_RANK[after] >= STAGE_RANK.get(stage, 0)
        stage = after
    if start == "closed":
        assert stage == "closed"
    elif reached:
        assert STAGE_RANK[stage] == max(STAGE_RANK[start], *(STAGE_RANK[s] for s in reached))


def test_the_default_policy_matches_the_collection_stages():
    offsets = [s.offset_days for s in DEFAULT_STEPS]
    assert offsets == [-5, -1, 1, 7, 15, 30, 60]
    assert [s.stage for s in DEFAULT_STEPS] == ["preventive"] * 3 + ["administrative"] * 3 + [
        "judicial"
    ]
    judicial = DEFAULT_STEPS[-1]
    assert judicial.channels == ()  # a task instead of a message
    assert DEFAULT_STEPS[1].channels == ("email", "sms")


def test_windows_and_their_opening_moment():
    assert window_for("mx") == MEXICO_WINDOW == window_for("MX")
    assert window_for("AR") == DEFAULT_WINDOW
    day = dt.date(2031, 7, 1)
    assert window_start_at(day, dt.time(8), "America/Argentina/Buenos_Aires") == dt.datetime(
        2031, 7, 1, 11, tzinfo=dt.UTC
    )
    assert window_start_at(day, dt.time(8), "Europe/Madrid") == dt.datetime(
        2031, 7, 1, 6, tzinfo=dt.UTC
    )  # summer time
    assert window_start_at(day, dt.time(8), "Not/AZone") == dt.datetime(
        2031, 7, 1, 8, tzinfo=dt.UTC
    )


def test_a_personal_reminder_goes_on_the_preferred_channel_when_it_has_an_address():
    addresses = {"email": "a@b.c", "sms": "+54911", "whatsapp": ""}
    assert reminder_channel("sms", addresses) == "sms"
    assert reminder_channel("whatsapp", addresses) == "email"
    assert reminder_channel(None, addresses) == "email"
    assert reminder_channel(None, {"email": "", "sms": "", "whatsapp": "+52"}) == "whatsapp"
    assert reminder_channel("email", {"email": "", "sms": "", "whatsapp": ""}) is None
