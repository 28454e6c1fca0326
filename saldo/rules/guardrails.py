"""Contact guardrails: may this message go now, later, or not at all? Pure, no I/O.

The outbox sender gathers the facts about one message — the debtor's time zone, the policy's
send window, Sundays and holidays, the debtor's quiet hours and opt-outs, what was already sent
on the channel, pauses — and `decide()` answers:

- `Send()`;
- `Defer(until, reason)` — not now; `until` is the earliest moment every rule allows;
- `Block(reason)` — never (no address, opted out, a pause on the account or an item).

Rules, in order:

1. No address on file for the channel → `Block("no_address")`.
2. The debtor opted out of the channel → `Block("opted_out")`.
3. Service messages (a receipt, an answer to the debtor's own request such as the decision on
   their plan proposal or dispute: `guarded=False`) stop here and go, whatever pauses the
   account: the debtor must learn the outcome. Collection messages go on:
4. A pause → `Block("pause:<reason>")` (reasons from `saldo.services.pauses`).
5. The frequency cap: at most `cap.limit` messages on the channel in any rolling window of
   `cap.days` days. With the window full, the message waits until the oldest send in it
   leaves (`reason "cap"`). A limit of 0 or less means no cap.
6. The calendar, all in the debtor's local time: inside the send window (`start` inclusive,
   `end` exclusive; `start == end` is the whole day; `start > end` spans midnight), not on a
   Sunday when the policy skips Sundays, not on a listed holiday, not inside the debtor's
   quiet hours (which may span midnight, e.g. 21:00–08:00). Otherwise it waits for the next
   allowed moment (`reason` "sunday", "holiday", "quiet_hours" or "window"). With no allowed
   moment within `HORIZON_DAYS` → `Block("no_send_moment")`.

The next allowed moment is exact, daylight-saving changes included: it is always one of the
moments where the local clock reaches the window's start, the end of the quiet hours or
midnight (both times an hour that repeats), or a moment the UTC offset changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "DEFAULT_CAP",
    "DEFAULT_WINDOW",
    "HORIZON_DAYS",
    "MEXICO_WINDOW",
    "Block",
    "Calendar",
    "Cap",
    "Decision",
    "Defer",
    "Facts",
    "Send",
    "Window",
    "allowed",
    "cap_free_at",
    "decide",
    "next_allowed",
    "preset_window",
    "zone_of",
]

HORIZON_DAYS: Final = 400
_ONE_DAY: Final = dt.timedelta(days=1)
_MIDNIGHT: Final = dt.time(0, 0)


@dataclass(frozen=True)
class Window:
    """A daily span of local time: `[start, end)`; equal ends mean the whole day."""

    start: dt.time
    end: dt.time

    def contains(self, moment: dt.time) -> bool:
        if self.start == self.end:
            return True
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


DEFAULT_WINDOW: Final = Window(dt.time(8, 0), dt.time(21, 0))
MEXICO_WINDOW: Final = Window(dt.time(7, 0), dt.time(22, 0))


def preset_window(country: str) -> Window:
    """The send window when no policy sets one: 07:00–22:00 in Mexico, else 08:00–21:00."""
    return MEXICO_WINDOW if (country or "").upper() == "MX" else DEFAULT_WINDOW


@dataclass(frozen=True)
class Cap:
    """At most `limit` messages per channel in any `days`-day rolling window."""

    limit: int = 7
    days: int = 7


DEFAULT_CAP: Final = Cap()


@dataclass(frozen=True)
class Calendar:
    """When a debtor may be contacted, in their time zone."""

    timezone: str
    window: Window = DEFAULT_WINDOW
    skip_sundays: bool = False
    holidays: frozenset[dt.date] = frozenset()
    quiet: Window | None = None  # the debtor's quiet hours; equal ends mean none


@dataclass(frozen=True)
class Facts:
    """Everything `decide()` needs about one message."""

    now: dt.datetime  # aware
    calendar: Calendar
    address: str
    opted_in: bool = True
    guarded: bool = True  # a collection message: pauses, caps and the calendar apply
    cap: Cap = DEFAULT_CAP
    recent: tuple[dt.datetime, ...] = ()  # earlier sends that count toward the cap
    pause: str | None = None


@dataclass(frozen=True)
class Send:
    pass


@dataclass(frozen=True)
class Defer:
    until: dt.datetime
    reason: str


@dataclass(frozen=True)
class Block:
    reason: str


Decision = Send | Defer | Block


def zone_of(name: str) -> dt.tzinfo:
    """The time zone called `name`, or UTC when there is none by that name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


@dataclass(frozen=True)
class _Clock:
    calendar: Calendar
    zone: dt.tzinfo = field(default=dt.UTC)

    def local(self, moment: dt.datetime) -> dt.datetime:
        return moment.astimezone(self.zone)

    def why_not(self, moment: dt.datetime) -> str | None:
        """None when `moment` is allowed, else the first rule it breaks."""
        local = self.local(moment)
        day, time = local.date(), local.time().replace(tzinfo=None)
        calendar = self.calendar
        if calendar.skip_sundays and day.weekday() == 6:
            return "sunday"
        if day in calendar.holidays:
            return "holiday"
        quiet = calendar.quiet
        if quiet is not None and quiet.start != quiet.end and quiet.contains(time):
            return "quiet_hours"
        if not calendar.window.contains(time):
            return "window"
        return None


def _clock(calendar: Calendar) -> _Clock:
    return _Clock(calendar, zone_of(calendar.timezone))


def allowed(moment: dt.datetime, calendar: Calendar) -> bool:
    """True when the calendar allows contact at `moment`."""
    return _clock(calendar).why_not(moment) is None


def _offset(moment: dt.datetime, zone: dt.tzinfo) -> dt.timedelta | None:
    return moment.astimezone(zone).utcoffset()


def _transition(day: dt.date, zone: dt.tzinfo) -> dt.datetime | None:
    """The moment the UTC offset changes during local `day`, if it does (to the second)."""
    low = dt.datetime.combine(day, _MIDNIGHT, tzinfo=zone).astimezone(dt.UTC)
    high = dt.datetime.combine(day + _ONE_DAY, _MIDNIGHT, tzinfo=zone).astimezone(dt.UTC)
    before = _offset(low, zone)
    if before == _offset(high, zone):
        return None
    while high - low > dt.timedelta(seconds=1):
        middle = low + (high - low) / 2
        if _offset(middle, zone) == before:
            low = middle
        else:
            high = middle
    whole = high.replace(microsecond=0)
    return whole if _offset(whole, zone) != before else high


def _boundaries(day: dt.date, clock: _Clock) -> Iterator[dt.datetime]:
    """Every moment of local `day` where an allowed stretch can begin."""
    times = {clock.calendar.window.start, _MIDNIGHT}
    if clock.calendar.quiet is not None:
        times.add(clock.calendar.quiet.end)
    for time in times:
        for fold in (0, 1):
            local = dt.datetime.combine(day, time, tzinfo=clock.zone).replace(fold=fold)
            yield local.astimezone(dt.UTC)
    change = _transition(day, clock.zone)
    if change is not None:
        yield change


def next_allowed(
    moment: dt.datetime, calendar: Calendar, *, horizon_days: int = HORIZON_DAYS
) -> dt.datetime | None:
    """The earliest moment at or after `moment` the calendar allows (None within the horizon)."""
    clock = _clock(calendar)
    if clock.why_not(moment) is None:
        return moment
    first = clock.local(moment).date() - _ONE_DAY
    for offset in range(horizon_days + 2):
        day = first + dt.timedelta(days=offset)
        for candidate in sorted(set(_boundaries(day, clock))):
            if candidate > moment and clock.why_not(candidate) is None:
                return candidate
    return None


def cap_free_at(now: dt.datetime, cap: Cap, recent: Iterable[dt.datetime]) -> dt.datetime:
    """The earliest moment from `now` on when one more message stays within `cap`."""
    if cap.limit <= 0:
        return now
    span = dt.timedelta(days=max(cap.days, 0))
    inside = sorted(s for s in recent if now - span < s <= now)
    if len(inside) < cap.limit:
        return now
    return inside[len(inside) - cap.limit] + span


def decide(facts: Facts) -> Decision:
    """Send, defer or block one message (see the module's rules)."""
    if not facts.address.strip():
        return Block("no_address")
    if not facts.opted_in:
        return Block("opted_out")
    if not facts.guarded:
        return Send()
    if facts.pause:
        return Block(f"pause:{facts.pause}")
    earliest = cap_free_at(facts.now, facts.cap, facts.recent)
    at = next_allowed(earliest, facts.calendar)
    if at is None:
        return Block("no_send_moment")
    if at <= facts.now:
        return Send()
    if earliest > facts.now:
        return Defer(at, "cap")
    reason = _clock(facts.calendar).why_not(facts.now)
    return Defer(at, reason or "window")


def counted(sent: Collection[dt.datetime], now: dt.datetime, cap: Cap) -> int:
    """How many of `sent` fall inside the cap's rolling window ending at `now`."""
    span = dt.timedelta(days=max(cap.days, 0))
    return sum(1 for s in sent if now - span < s <= now)
