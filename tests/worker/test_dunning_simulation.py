"""Sixty simulated days of collections over a small portfolio, with a controllable clock.

Every simulated day at 04:00 UTC the nightly work runs (`run_day`: commitments, interest and
fees, segmentation, the dunning run), and every simulated hour the outbox sender sends what is
due (`send_due`, with recording channels). Meanwhile debtors pay, dispute, promise, report
payments, start online payments, and staff pause an account — at set moments.

The test computes on its own, from the scenario and the default steps written out below, which
messages each debtor must get and how each ends, and compares that with what happened. Then it
checks, for every message that went out: inside the send window in the debtor's time zone, not
on a Sunday or holiday where the policy says so, not in the debtor's quiet hours, never over
the frequency cap, never on an opted-out channel, never about a paused item, never twice.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from saldo.notify.base import OutgoingMessage, SendResult
from saldo.services.dunning import ensure_default_policies, run_day
from saldo.services.outbox import send_due
from saldo.tables import (
    Account,
    DunningPolicy,
    FeePolicy,
    Holiday,
    Invoice,
    LedgerEntry,
    Notification,
    Task,
)
from tests.services.dunning_world import (
    Case,
    active_plan,
    claim,
    dispute,
    invoice,
    make_case,
    make_creditor,
    opt_out,
    pay,
    pending_payment,
    promise,
    quiet_hours,
    staff_pause,
)

D0 = dt.date(2030, 6, 3)  # a Monday
DAYS = 60
AR, CORDOBA = "America/Argentina/Buenos_Aires", "America/Argentina/Cordoba"
MEXICO, CANCUN = "America/Mexico_City", "America/Cancun"

# The default policy, written out: offset → channels. +60 escalates instead of writing.
STEPS: dict[int, tuple[str, ...]] = {
    -5: ("email",),
    -1: ("email", "sms"),
    1: ("email",),
    7: ("email", "whatsapp"),
    15: ("sms",),
    30: ("email",),
}
TEMPLATES = {
    -5: "reminder_before_due",
    -1: "reminder_before_due",
    1: "overdue_preventive",
    7: "overdue_administrative",
    15: "overdue_administrative",
    30: "overdue_administrative",
}
LEGAL_AFTER = 60
AR_WINDOW = (dt.time(8), dt.time(21))
MX_WINDOW = (dt.time(7), dt.time(22))
MX_CAP = 3
AR_CAP = 7
MX_HOLIDAY = 16  # a Wednesday


def day(n: int) -> dt.date:
    return D0 + dt.timedelta(days=n)


def moment(n: int, hour: int) -> dt.datetime:
    return dt.datetime.combine(day(n), dt.time(hour), tzinfo=dt.UTC)


# ---------------------------------------------------------------------------- the scenario


@dataclass
class Bill:
    name: str
    amount: int
    due: int  # day number
    paused_days: set[int] = field(default_factory=set)  # days the item is paused
    closed_from: int | None = None  # first day with nothing left to collect
    disputed: int = 0  # amount under dispute from the start


@dataclass
class Person:
    key: str
    mx: bool = False
    tz: str = AR
    email: bool = True
    phone: bool = True
    whatsapp: bool = True
    preferred: str | None = None
    bills: list[Bill] = field(default_factory=list)
    account_paused: set[int] = field(default_factory=set)
    escalated_from: int | None = None
    opted_out: set[str] = field(default_factory=set)
    quiet: dict[str, tuple[dt.time, dt.time]] = field(default_factory=dict)

    def has(self, channel: str) -> bool:
        return {"email": self.email, "sms": self.phone, "whatsapp": self.whatsapp}[channel]


def through(first: int, last: int) -> set[int]:
    return set(range(first, last + 1))


PEOPLE = [
    Person("ana", bills=[Bill("A-1", 100_000, 10), Bill("A-2", 40_000, 10)]),
    Person(
        "bruno",
        bills=[Bill("B-1", 80_000, 12)],
        opted_out={"sms"},
        quiet={"email": (dt.time(8), dt.time(13))},
    ),
    Person(
        "carla",
        mx=True,
        tz=MEXICO,
        bills=[Bill("C-1", 30_000, 8), Bill("C-2", 30_000, 10), Bill("C-3", 30_000, 12)],
    ),
    Person(
        "diego",
        bills=[
            Bill("D-1", 50_000, 14, paused_days=through(0, DAYS), disputed=50_000),
            Bill("D-2", 60_000, 14, disputed=18_000),
            Bill("D-3", 20_000, 13, paused_days=through(21, DAYS)),  # disputed on day 20, 10:00
        ],
    ),
    Person(
        "elena",
        preferred="sms",
        bills=[Bill("E-1", 100_000, 5, paused_days=through(0, DAYS)), Bill("E-2", 25_000, 20)],
    ),
    Person("fede", bills=[Bill("F-1", 70_000, 10)], account_paused=through(0, 20)),
    Person(
        "gabi",
        tz=CORDOBA,
        whatsapp=False,
        bills=[Bill("G-1", 45_000, 6, paused_days=through(8, 15))],
    ),
    Person("hugo", bills=[Bill("H-1", 90_000, 8)], account_paused=through(0, 12)),
    Person("iris", bills=[Bill("I-1", 55_000, 10, closed_from=18)]),
    Person("juan", bills=[Bill("J-1", 65_000, 20, paused_days=through(18, 22))]),
    Person(
        "kike",
        bills=[Bill("K-1", 75_000, -5), Bill("K-2", 15_000, 50)],
        escalated_from=55,
    ),
    Person(
        "luz",
        mx=True,
        tz=CANCUN,
        bills=[Bill("L-1", 35_000, 20)],
        quiet={"whatsapp": (dt.time(7), dt.time(9))},
    ),
]
BY_KEY = {p.key: p for p in PEOPLE}


@dataclass(frozen=True)
class Expected:
    day: int
    offset: int | None  # None for installment and promise reminders
    template: str
    channel: str
    bills: frozenset[str]
    status: str = "sent"
    reason: str = ""


def expected_messages(person: Person) -> set[Expected]:
    """What the scenario says this person gets, computed from the rules stated above."""
    found: set[Expected] = set()
    for d in range(DAYS):
        if person.escalated_from is not None and d >= person.escalated_from:
            break
        if d in person.account_paused:
            continue
        for offset, channels in STEPS.items():
            bills = frozenset(
                b.name
                for b in person.bills
                if b.due + offset == d
                and d not in b.paused_days
                and (b.closed_from is None or d < b.closed_from)
            )
            if not bills:
                continue
            for channel in channels:
                if person.has(channel):
                    found.add(Expected(d, offset, TEMPLATES[offset], channel, bills))
    return found


def outcomes() -> dict[str, set[Expected]]:
    """Every person's messages and how each ends (the scenario's events decide the ends)."""
    result = {p.key: expected_messages(p) for p in PEOPLE}

    def end(key: str, d: int, channel: str | None, status: str, reason: str) -> None:
        for e in list(result[key]):
            if e.day == d and (channel is None or e.channel == channel):
                result[key].remove(e)
                result[key].add(
                    Expected(e.day, e.offset, e.template, e.channel, e.bills, status, reason)
                )

    for e in list(result["bruno"]):
        if e.channel == "sms":
            end("bruno", e.day, "sms", "blocked", "opted_out")
    end("diego", 20, None, "blocked", "pause:dispute")  # queued at 04:00, disputed at 10:00
    end("iris", 17, None, "cancelled", "nothing_due")  # queued at 04:00, paid at 05:00
    result["elena"] |= {
        Expected(12, None, "installment_due", "sms", frozenset()),
        Expected(27, None, "installment_due", "sms", frozenset()),
    }
    result["fede"].add(Expected(19, None, "promise_reminder", "email", frozenset()))
    return result


# ---------------------------------------------------------------------------- the world


START = dt.datetime(2030, 6, 3, tzinfo=dt.UTC)


@dataclass
class Clock:
    now: dt.datetime = START


@dataclass
class Recorder:
    """A channel that records what it was asked to send, at the simulated time."""

    name: str
    clock: Clock
    sent: list[tuple[dt.datetime, OutgoingMessage]] = field(default_factory=list)
    live: bool = False

    async def send(self, message: OutgoingMessage) -> SendResult:
        self.sent.append((self.clock.now, message))
        return SendResult(f"{self.name}-{len(self.sent)}")


@dataclass
class World:
    cases: dict[str, Case]
    bills: dict[str, Invoice]
    events: dict[tuple[int, int], list[Callable[[], Awaitable[object]]]]


async def build_world() -> World:
    ar = await make_creditor("AR")
    mx = await make_creditor("MX")
    await FeePolicy(creditor=ar.id, daily_rate_ppm=500, fixed_fee=0, grace_days=3).save()
    mx_policy = await ensure_default_policies(mx.id)
    await DunningPolicy.update(
        {
            DunningPolicy.frequency_cap: MX_CAP,
            DunningPolicy.skip_sundays: True,
            DunningPolicy.skip_holidays: True,
        }
    ).where(DunningPolicy.id == mx_policy)
    await Holiday.raw(
        "INSERT INTO holiday (country, day, name) VALUES ('MX', {}, 'Feriado de prueba') "
        "ON CONFLICT (country, day) DO NOTHING",
        day(MX_HOLIDAY),
    )
    cases: dict[str, Case] = {}
    bills: dict[str, Invoice] = {}
    for p in PEOPLE:
        case = await make_case(
            mx if p.mx else ar,
            name=p.key.capitalize(),
            currency="MXN" if p.mx else "ARS",
            timezone=p.tz,
            country="MX" if p.mx else "AR",
            email=f"{p.key}.{ar.id}@ejemplo.com" if p.email else "",
            phone=f"+549110000{ar.id:04d}" if p.phone else "",
            whatsapp=f"+549110000{ar.id:04d}" if p.whatsapp else "",
            preferred_channel=p.preferred,
        )
        cases[p.key] = case
        for b in p.bills:
            bills[b.name] = await invoice(case, b.amount, day(b.due), f"{b.name}-{ar.id}")
        before = moment(0, 0) - dt.timedelta(days=1)
        for channel in p.opted_out:
            await opt_out(case.debtor, channel, before)
        for channel, (start, end) in p.quiet.items():
            await quiet_hours(case.debtor, channel, start, end, before)

    c = cases
    await dispute(c["diego"], bills["D-1"].id, 50_000)
    await dispute(c["diego"], bills["D-2"].id, 18_000)
    await active_plan(c["elena"], [bills["E-1"].id], [(day(15), 50_000), (day(30), 50_000)])
    await promise(c["fede"], 70_000, day(20))
    await staff_pause(c["hugo"], until=day(12))

    async def open_amount(name: str) -> int:
        rows = await LedgerEntry.raw(
            "SELECT sum(amount)::bigint AS open FROM ledger_entry WHERE invoice = {}",
            bills[name].id,
        )
        return int(rows[0]["open"])

    async def pay_all(key: str, name: str, when: dt.datetime) -> None:
        await pay(c[key], await open_amount(name), when, [bills[name].id])

    async def dispute_all(key: str, name: str) -> None:  # interest included
        await dispute(c[key], bills[name].id, await open_amount(name))

    events: dict[tuple[int, int], list[Callable[[], Awaitable[object]]]] = defaultdict(list)
    events[(8, 1)].append(lambda: claim(c["gabi"], [bills["G-1"].id], until=day(15)))
    events[(13, 10)].append(lambda: pay(c["elena"], 50_000, moment(13, 10), [bills["E-1"].id]))
    events[(17, 5)].append(lambda: pay_all("iris", "I-1", moment(17, 5)))
    events[(18, 1)].append(
        lambda: pending_payment(c["juan"], [bills["J-1"].id], 65_000, expires=moment(22, 23))
    )
    events[(20, 10)].append(lambda: dispute_all("diego", "D-3"))
    return World(cases, bills, events)


async def simulate(world: World, channels: dict[str, Recorder], clock: Clock) -> None:
    for d in range(DAYS):
        for hour in range(24):
            now = moment(d, hour)
            clock.now = now
            for event in world.events.get((d, hour), []):
                await event()
            if hour == 4:
                await run_day(as_of=day(d), now=now)
            while True:
                run = await send_due(
                    now=now,
                    channels=channels,  # type: ignore[arg-type]
                    public_url="https://saldo.example",
                    mail_from="Saldo <cobranzas@saldo.example>",
                )
                if not run.full:
                    break


# ---------------------------------------------------------------------------- the test


def _json(value: object) -> object:
    return json.loads(value) if isinstance(value, str) else value


async def test_sixty_days_of_dunning_send_exactly_the_expected_messages(db):
    world = await build_world()
    clock = Clock()
    channels = {name: Recorder(name, clock) for name in ("email", "sms", "whatsapp")}
    await simulate(world, channels, clock)

    names = {inv.id: name for name, inv in world.bills.items()}
    debtors = {case.debtor: key for key, case in world.cases.items()}
    rows = await Notification.select().where(Notification.debtor.is_in(list(debtors)))
    sent_rows = [r for r in rows if r["status"] == "sent"]

    # 1. Exactly the expected messages per debtor, each ending as expected.
    actual: dict[str, set[Expected]] = {key: set() for key in world.cases}
    for r in rows:
        decided = dt.date.fromisoformat(str(_json(r["context"])["as_of"]))  # type: ignore[index]
        actual[debtors[r["debtor"]]].add(
            Expected(
                (decided - D0).days,
                r["step_offset"],
                r["template"],
                r["channel"],
                frozenset(names[i] for i in _json(r["invoice_ids"])),  # type: ignore[union-attr]
                r["status"],
                r["blocked_reason"] if r["status"] != "sent" else "",
            )
        )
    expected = outcomes()
    for key in world.cases:
        assert actual[key] == expected[key], key

    # 2. None twice: one row per key, and each key handed to a channel once.
    handed = Counter(m.idempotency_key for ch in channels.values() for _, m in ch.sent)
    assert set(handed.values()) == {1}
    assert set(handed) >= {r["idempotency_key"] for r in sent_rows}
    assert len({r["idempotency_key"] for r in rows}) == len(rows)

    # 3. None to an opted-out channel.
    for r in sent_rows:
        assert r["channel"] not in BY_KEY[debtors[r["debtor"]]].opted_out

    # 4. None outside the window, on a skipped day or in quiet hours, in the debtor's zone.
    for r in sent_rows:
        person = BY_KEY[debtors[r["debtor"]]]
        local = r["sent_at"].astimezone(ZoneInfo(person.tz))
        start, end = MX_WINDOW if person.mx else AR_WINDOW
        assert start <= local.time() < end, (person.key, local)
        if person.mx:
            assert local.weekday() != 6, (person.key, local)
            assert local.date() != day(MX_HOLIDAY), (person.key, local)
        if r["channel"] in person.quiet:
            quiet_start, quiet_end = person.quiet[r["channel"]]
            assert not quiet_start <= local.time() < quiet_end, (person.key, local)

    # 5. Never over the cap, in any rolling window, per debtor and channel.
    by_channel: dict[tuple[str, str], list[dt.datetime]] = defaultdict(list)
    for r in sent_rows:
        by_channel[(debtors[r["debtor"]], r["channel"])].append(r["sent_at"])
    for (key, _channel), times in by_channel.items():
        cap = MX_CAP if BY_KEY[key].mx else AR_CAP
        times.sort()
        for i, t in enumerate(times):
            assert sum(1 for s in times[: i + 1] if s > t - dt.timedelta(days=7)) <= cap, key
    assert max(len(t) for (k, _), t in by_channel.items() if k == "carla") > MX_CAP  # it bit

    # 6. Never about a paused item: no sent reminder names an item paused that day.
    for r in sent_rows:
        person = BY_KEY[debtors[r["debtor"]]]
        sent_day = (r["sent_at"].astimezone(ZoneInfo(person.tz)).date() - D0).days
        assert sent_day not in person.account_paused or r["template"] == "promise_reminder"
        for invoice_id in _json(r["invoice_ids"]):  # type: ignore[union-attr]
            bill = next(b for b in person.bills if b.name == names[invoice_id])
            assert sent_day not in bill.paused_days, (person.key, bill.name, sent_day)

    # 7. When nothing held them back, messages went at the window's first hour, that day.
    for r in sent_rows:
        key = debtors[r["debtor"]]
        if key == "ana":
            decided = dt.date.fromisoformat(str(_json(r["context"])["as_of"]))  # type: ignore[index]
            assert r["sent_at"] == dt.datetime.combine(decided, dt.time(11), tzinfo=dt.UTC)
        if key == "bruno" and r["channel"] == "email":  # quiet until 13:00 in Buenos Aires
            assert r["sent_at"].astimezone(dt.UTC).time() == dt.time(16)
    [luz_whatsapp] = [
        r for r in sent_rows if debtors[r["debtor"]] == "luz" and r["channel"] == "whatsapp"
    ]
    # Day 27 is a Sunday: Monday, after the quiet hours (09:00 in Cancún, UTC−5).
    assert luz_whatsapp["sent_at"] == moment(28, 14)

    # 8. The judicial step escalated instead of writing, once.
    kike = world.cases["kike"].account.id
    account = await Account.objects().get(Account.id == kike)
    assert account is not None and account.stage == "judicial"
    assert account.legal_escalated_at == moment(55, 4)
    assert await Task.count().where((Task.account == kike) & (Task.kind == "legal_escalation")) == 1

    # 9. Interest accrued once a day from the end of the grace days on.
    interest = await LedgerEntry.select(LedgerEntry.effective_date).where(
        (LedgerEntry.invoice == world.bills["A-1"].id) & (LedgerEntry.kind == "interest")
    )
    assert sorted(r["effective_date"] for r in interest) == [day(n) for n in range(14, DAYS)]
