"""Dunning rules without I/O: stages, the default policy, send windows, reminder channels.

Stages only move forward while an account is in collection: preventive → administrative →
judicial (`stage_after`). The default policy (`DEFAULT_STEPS`) is what a creditor without a
dunning policy of its own gets:

=======  ===================  ===========================  ===============
offset   channels             template                     stage
=======  ===================  ===========================  ===============
-5       email                ``reminder_before_due``      preventive
-1       email, sms           ``reminder_before_due``      preventive
+1       email                ``overdue_preventive``       preventive
+7       email, whatsapp      ``overdue_administrative``   administrative
+15      sms                  ``overdue_administrative``   administrative
+30      email                ``overdue_administrative``   administrative
+60      (none)               ``overdue_judicial``         judicial
=======  ===================  ===========================  ===============

The templates are the outbox's message kinds (`saldo.services.notify_render`); a judicial step
renders nothing.

Reminders before the due date and the first one after it are preventive ("recordatorios
tempranos"); from a week late the account is in administrative collection (contact and
negotiation); at 60 days it is escalated to legal collection — a task for the team instead of
more messages.

Send windows: 08:00–21:00 in the debtor's time zone; creditors in Mexico get the 07:00–22:00
preset (`window_for`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "CHANNELS",
    "DEFAULT_SEGMENT",
    "DEFAULT_STEPS",
    "DEFAULT_WINDOW",
    "INSTALLMENT_REMINDER_DAYS",
    "INSTALLMENT_TEMPLATE",
    "JUDICIAL",
    "MEXICO_WINDOW",
    "PROMISE_REMINDER_DAYS",
    "PROMISE_TEMPLATE",
    "STAGE_RANK",
    "Step",
    "Window",
    "reminder_channel",
    "stage_after",
    "window_for",
    "window_start_at",
]

CHANNELS: Final = ("email", "sms", "whatsapp")
DEFAULT_SEGMENT: Final = "standard"
JUDICIAL: Final = "judicial"
#: Order of the collection stages; "closed" is outside it (nothing moves a closed account).
STAGE_RANK: Final[Mapping[str, int]] = {"preventive": 1, "administrative": 2, "judicial": 3}
#: Installment reminders go this many days before the installment's due date.
INSTALLMENT_REMINDER_DAYS: Final = 3
INSTALLMENT_TEMPLATE: Final = "installment_due"
#: Promise reminders go this many days before the promised date.
PROMISE_REMINDER_DAYS: Final = 1
PROMISE_TEMPLATE: Final = "promise_reminder"


@dataclass(frozen=True, slots=True)
class Step:
    offset_days: int  # relative to the due date: -5 is five days before it
    channels: tuple[str, ...]
    template: str
    stage: str


DEFAULT_STEPS: Final = (
    Step(-5, ("email",), "reminder_before_due", "preventive"),
    Step(-1, ("email", "sms"), "reminder_before_due", "preventive"),
    Step(1, ("email",), "overdue_preventive", "preventive"),
    Step(7, ("email", "whatsapp"), "overdue_administrative", "administrative"),
    Step(15, ("sms",), "overdue_administrative", "administrative"),
    Step(30, ("email",), "overdue_administrative", "administrative"),
    Step(60, (), "overdue_judicial", JUDICIAL),
)


@dataclass(frozen=True, slots=True)
class Window:
    """The local hours messages may go out, `start` included, `end` excluded."""

    start: dt.time
    end: dt.time


DEFAULT_WINDOW: Final = Window(dt.time(8), dt.time(21))
MEXICO_WINDOW: Final = Window(dt.time(7), dt.time(22))


def window_for(country: str) -> Window:
    """The preset send window for a creditor in `country` (ISO 3166 alpha-2)."""
    return MEXICO_WINDOW if country.upper() == "MX" else DEFAULT_WINDOW


def stage_after(current: str, reached: str) -> str:
    """The account's stage once a step of stage `reached` fired: the higher of the two.

    A closed account stays closed; an unknown stage counts as below preventive.
    """
    if current == "closed":
        return current
    if STAGE_RANK.get(reached, 0) > STAGE_RANK.get(current, 0):
        return reached
    return current


def reminder_channel(preferred: str | None, addresses: Mapping[str, str]) -> str | None:
    """The one channel for a personal reminder (installment, promise): the debtor's preferred
    channel when it has an address, else the first of email, sms, whatsapp that has one."""
    if preferred in CHANNELS and addresses.get(preferred or ""):
        return preferred
    return next((c for c in CHANNELS if addresses.get(c)), None)


def _zone(name: str) -> dt.tzinfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return dt.UTC


def window_start_at(day: dt.date, start: dt.time, timezone: str) -> dt.datetime:
    """The moment (UTC) the send window opens on `day` in `timezone` (UTC when unknown)."""
    local = dt.datetime.combine(day, start, tzinfo=_zone(timezone))
    return local.astimezone(dt.UTC)
