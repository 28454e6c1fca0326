"""The figures behind the KPI dashboard: a handful of set-based queries per scope and period list.

`KpiScope` is what every KPI is a function of: a creditor (or all), the accounts' currency, a
date range and a granularity (months or ISO weeks, clipped to the range). `KpiData` runs each
query at most once per scope (a per-request cache: the KPI functions share it, so a dashboard
costs the queries below once, not once per KPI) and returns per-period figures, period `k`
being 1…n and 0 the day before the range (opening balances).

Periods are bucketed in SQL with `width_bucket(date, thresholds)`, thresholds being the period
starts and the day after the range, so a row lands in its period without a join.

Cost, for a scope with E ledger entries up to the range end, I invoices and n periods (reads
only, no locks; each statement in its own short transaction with more `work_mem` and no JIT):

- `balances` (aging at every period end, receivables, overdue and managed accounts): one
  grouped pass over the scope's invoice entries computing each invoice's balance at every
  period end as a filtered sum, then one pass over those invoice rows: O((E + I) × n) filter
  evaluations, no sort per period and no expansion of invoices × periods. This is the heavy
  one. Measured on a synthetic portfolio of 100 000 accounts (300 000 invoices, 480 000
  entries, 12 monthly periods): 2.4 s of database backend CPU for `balances` and 4.5 s for all
  the dashboard's statements (9–13 s of wall time on a shared 2-CPU machine under a load
  average of ~10). It grows linearly with the entries, so a 1M-account portfolio needs tens of
  seconds per request. Invoices settled at every period end drop out after the first pass,
  which helps most on long histories. Balances are not
  stored per period; a month-end snapshot table (creditor, currency, period end, bucket,
  amount — or per invoice) filled by a nightly job would make the aging O(periods) and is the
  step to take before offering the dashboard on portfolios of that size.
- `flows`: one pass over the entries effective inside the range (index on account +
  effective_date); a reversal looks up the kind of the entry it reverses.
- `new_overdue`: the invoices falling due in the range (index on due_date) joined to their
  entries up to the due date.
- promises, plans, contacts, messages: one grouped pass each over the rows of the range.

Time stamps (promise resolution, plan decisions, contacts, messages) are bucketed by their UTC
day, like `promises.promise_kept_rate`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from saldo.db import DB
from saldo.tables import LedgerEntry

__all__ = [
    "BY",
    "CONTACT_KINDS",
    "MAX_PERIODS",
    "REACHED_OUTCOMES",
    "Balances",
    "ContactCounts",
    "CreditorChoice",
    "Flows",
    "KpiData",
    "KpiScope",
    "MessageCounts",
    "Period",
    "PlanCounts",
    "PromiseCounts",
    "creditor_choices",
    "currencies_by_use",
    "split_periods",
]

#: Granularities: calendar months or ISO weeks (Monday to Sunday).
BY: Final = ("month", "week")
#: The most periods one dashboard shows (five years of months, a year of weeks).
MAX_PERIODS: Final = 60
#: Interaction kinds that are an agent's attempt to reach the debtor.
CONTACT_KINDS: Final = ("call", "visit")
#: Outcomes of an attempt that reached the right person.
REACHED_OUTCOMES: Final = ("reached", "promised", "refused", "callback")
#: Ledger kinds that raise what is owed as new billing.
BILLED_KINDS: Final = ("charge", "interest", "fee")


@dataclass(frozen=True, slots=True)
class Period:
    start: dt.date
    end: dt.date  # inclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def _month_end(day: dt.date) -> dt.date:
    first_next = (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
    return first_next - dt.timedelta(days=1)


def split_periods(start: dt.date, end: dt.date, by: str) -> tuple[Period, ...]:
    """Calendar months or ISO weeks (Monday–Sunday) covering start…end, the first and last
    clipped to the range. Raises ValueError for an empty range or an unknown granularity."""
    if end < start:
        raise ValueError("the range ends before it starts")
    if by not in BY:
        raise ValueError(f"granularity must be one of {BY}")
    periods: list[Period] = []
    cursor = start
    while cursor <= end:
        if by == "month":
            last = _month_end(cursor)
        else:
            last = cursor + dt.timedelta(days=6 - cursor.weekday())
        periods.append(Period(cursor, min(last, end)))
        cursor = min(last, end) + dt.timedelta(days=1)
    return tuple(periods)


@dataclass(frozen=True, slots=True)
class KpiScope:
    """Accounts of `creditor_id` (None: every creditor) in `currency`, over start…end."""

    currency: str
    start: dt.date
    end: dt.date
    by: str = "month"
    creditor_id: int | None = None
    periods: tuple[Period, ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "periods", split_periods(self.start, self.end, self.by))

    @property
    def n(self) -> int:
        return len(self.periods)

    @property
    def whole(self) -> Period:
        return Period(self.start, self.end)

    @property
    def days(self) -> int:
        return self.whole.days

    def thresholds(self) -> list[dt.date]:
        """width_bucket() bounds: 0 before the range, k inside period k, n + 1 after it."""
        return [p.start for p in self.periods] + [self.end + dt.timedelta(days=1)]

    def first_instant(self) -> dt.datetime:
        return dt.datetime.combine(self.start, dt.time(), tzinfo=dt.UTC)

    def after_instant(self) -> dt.datetime:
        return dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)


# ---------------------------------------------------------------------------- figures


@dataclass(frozen=True, slots=True)
class Flows:
    """Ledger movements effective inside one period (minor units)."""

    billed: int = 0  # charges, interest and fees (net of their reversals)
    billed_overdue: int = 0  # …of which posted on an invoice already past due
    collected: int = 0  # payments (invoices and credit), net of their reversals
    recovered: int = 0  # …of which paid on an invoice already past due


@dataclass(frozen=True, slots=True)
class Balances:
    """Open invoice amounts at the end of a period (minor units), by aging bucket, and the
    accounts with something past due then."""

    current: int = 0
    d1_30: int = 0
    d31_60: int = 0
    d61_90: int = 0
    d90_plus: int = 0
    overdue_accounts: int = 0
    managed_accounts: int = 0  # overdue accounts with a staff interaction in the period

    @property
    def receivables(self) -> int:
        return self.current + self.overdue

    @property
    def overdue(self) -> int:
        return self.d1_30 + self.d31_60 + self.d61_90 + self.d90_plus

    @property
    def buckets(self) -> tuple[int, int, int, int, int]:
        return (self.current, self.d1_30, self.d31_60, self.d61_90, self.d90_plus)


@dataclass(frozen=True, slots=True)
class PromiseCounts:
    kept: int = 0
    broken: int = 0


@dataclass(frozen=True, slots=True)
class PlanCounts:
    broken: int = 0
    in_force: int = 0


@dataclass(frozen=True, slots=True)
class ContactCounts:
    attempts: int = 0
    reached: int = 0


@dataclass(frozen=True, slots=True)
class MessageCounts:
    sent: int = 0
    blocked: int = 0


#: (column prefix, test on days past due) of each aging bucket, in order.
_BUCKET_TESTS: Final = (
    ("c{k}", "<= 0"),
    ("x{k}_1", "BETWEEN 1 AND 30"),
    ("x{k}_2", "BETWEEN 31 AND 60"),
    ("x{k}_3", "BETWEEN 61 AND 90"),
    ("x{k}_4", "> 90"),
)

_SCOPE: Final = """scope AS MATERIALIZED (
        SELECT id FROM account
        WHERE currency = {} AND ({}::int IS NULL OR creditor = {}::int)
    )"""


def _scope_args(scope: KpiScope) -> list[Any]:
    return [scope.currency, scope.creditor_id, scope.creditor_id]


#: Per-statement settings for the aggregations: room to hash and sort in memory instead of on
#: disk, and no JIT compilation (it costs more than it saves on these one-off statements).
_SETTINGS: Final = ("SET LOCAL work_mem = '64MB'", "SET LOCAL jit = off")


async def _raw(sql: str, *args: Any) -> list[dict[str, Any]]:
    """Run one read in its own short transaction with `_SETTINGS` (`SET LOCAL` ends with it)."""
    async with DB.transaction():
        for setting in _SETTINGS:
            await LedgerEntry.raw(setting)
        rows = await LedgerEntry.raw(sql, *args)
    return list(rows)


class KpiData:
    """The per-request cache: each figure set is queried once per scope, on first use.

    Concurrent callers share the one query in flight (the KPI functions can run together).
    """

    def __init__(self, scope: KpiScope) -> None:
        self.scope = scope
        self._tasks: dict[str, asyncio.Future[Any]] = {}

    async def _once(self, name: str, load: Callable[[], Awaitable[Any]]) -> Any:
        task = self._tasks.get(name)
        if task is None:
            task = self._tasks[name] = asyncio.ensure_future(load())
        return await asyncio.shield(task)

    async def load_all(self) -> None:
        """Run every query now: concurrently, each on its own pooled connection, or one after
        the other inside a caller's transaction (which has a single connection)."""
        if DB.transaction_exists():
            for name in ("flows", "balances", "new_overdue", "promises", "plans", "contacts"):
                await getattr(self, name)()
            await self.messages()
            return
        await asyncio.gather(
            self.flows(),
            self.balances(),
            self.new_overdue(),
            self.promises(),
            self.plans(),
            self.contacts(),
            self.messages(),
        )

    # -- ledger ---------------------------------------------------------------------------

    async def flows(self) -> Mapping[int, Flows]:
        """Period k (1…n) → what was billed, collected and recovered in it."""
        return dict(await self._once("flows", self._flows))

    async def _flows(self) -> dict[int, Flows]:
        s = self.scope
        rows = await _raw(
            f"""
            WITH {_SCOPE}
            SELECT width_bucket(e.effective_date, {{}}::date[]) AS k,
                   coalesce(sum(e.amount) FILTER (WHERE billed), 0)::bigint AS billed,
                   coalesce(sum(e.amount) FILTER (WHERE billed AND late), 0)::bigint
                       AS billed_overdue,
                   coalesce(-sum(e.amount) FILTER (WHERE paid), 0)::bigint AS collected,
                   coalesce(-sum(e.amount) FILTER (WHERE paid AND late), 0)::bigint AS recovered
            FROM ledger_entry e
            JOIN scope ON scope.id = e.account
            LEFT JOIN invoice i ON i.id = e.invoice
            CROSS JOIN LATERAL (SELECT CASE WHEN e.kind = 'reversal' THEN (
                SELECT r.kind FROM ledger_entry r WHERE r.id = e.reverses) ELSE e.kind END AS kind
            ) what
            CROSS JOIN LATERAL (SELECT
                coalesce(what.kind = 'payment', false) AS paid,
                coalesce(what.kind = ANY({{}}::text[]), false) AS billed,
                coalesce(e.effective_date > i.due_date, false) AS late
            ) f
            WHERE e.effective_date BETWEEN {{}} AND {{}}
            GROUP BY 1
            """,
            *_scope_args(s),
            s.thresholds(),
            list(BILLED_KINDS),
            s.start,
            s.end,
        )
        return {
            int(r["k"]): Flows(
                int(r["billed"]), int(r["billed_overdue"]), int(r["collected"]), int(r["recovered"])
            )
            for r in rows
        }

    async def balances(self) -> Mapping[int, Balances]:
        """Period k (0…n) → open invoice amounts at its end by aging bucket (k = 0: the day
        before the range), with the overdue accounts and how many of them staff worked."""
        by_period, _ = await self._once("balances", self._balances)
        return dict(by_period)

    async def managed_in_range(self) -> tuple[int, int]:
        """(accounts overdue at the range's end, of which staff worked any time in the range)."""
        _, in_range = await self._once("balances", self._balances)
        return (int(in_range[0]), int(in_range[1]))

    async def _balances(self) -> tuple[dict[int, Balances], tuple[int, int]]:
        """One pass over the scope's invoice entries and one over its invoices, whatever the
        number of periods: each invoice's balance at every period end is a filtered sum
        (`b<k>`), then the buckets and the overdue accounts are filtered sums and counts over
        those. The statement has a few columns per period; its dates are literals written from
        `date` objects, never from user text."""
        s = self.scope
        ends = [s.start - dt.timedelta(days=1)] + [p.end for p in s.periods]
        ks = range(s.n + 1)

        def day(value: dt.date) -> str:
            return f"DATE '{value.isoformat()}'"

        sums = [f"sum(e.amount) FILTER (WHERE e.effective_date <= {day(ends[k])})" for k in ks]
        balances = ",\n".join(f"{total} AS b{k}" for k, total in zip(ks, sums, strict=True))
        # an invoice settled at every period end adds nothing: drop it before the wide part
        still_open = f"greatest({', '.join(sums)}) > 0"
        buckets = ",\n".join(
            f"sum(o.b{k}) FILTER (WHERE o.b{k} > 0 AND {day(ends[k])} - o.due {test}) "
            f"AS {name.format(k=k)}"
            for k in ks
            for name, test in _BUCKET_TESTS
        )
        overdue = ",\n".join(f"bool_or(o.b{k} > 0 AND {day(ends[k])} > o.due) AS o{k}" for k in ks)
        worked = ",\n".join(
            f"bool_or((x.occurred_at AT TIME ZONE 'UTC')::date "
            f"BETWEEN {day(p.start)} AND {day(p.end)}) AS w{k}"
            for k, p in enumerate(s.periods, start=1)
        )
        counts = ",\n".join(
            f"count(*) FILTER (WHERE a.o{k}) AS n{k}, "
            f"count(*) FILTER (WHERE a.o{k} AND w.w{k}) AS m{k}"
            for k in range(1, s.n + 1)
        )
        rows = await _raw(
            f"""
            WITH {_SCOPE},
            inv AS (
                SELECT e.invoice, {balances}
                FROM ledger_entry e JOIN scope ON scope.id = e.account
                WHERE e.invoice IS NOT NULL AND e.effective_date <= {{}}
                GROUP BY e.invoice
                HAVING {still_open}
            ),
            o AS MATERIALIZED (
                SELECT i.account, i.due_date AS due, inv.*
                FROM inv JOIN invoice i ON i.id = inv.invoice
            ),
            a AS (SELECT o.account, {overdue} FROM o GROUP BY o.account),
            w AS (
                SELECT x.account, {worked}
                FROM interaction x JOIN scope ON scope.id = x.account
                WHERE x.staff IS NOT NULL AND x.occurred_at >= {{}} AND x.occurred_at < {{}}
                GROUP BY x.account
            )
            SELECT * FROM
                (SELECT {buckets} FROM o) sums,
                (SELECT {counts},
                        count(*) FILTER (WHERE a.o{s.n}) AS range_overdue,
                        count(*) FILTER (WHERE a.o{s.n} AND w.account IS NOT NULL)
                            AS range_managed
                 FROM a LEFT JOIN w ON w.account = a.account) accounts
            """,
            *_scope_args(s),
            s.end,
            s.first_instant(),
            s.after_instant(),
        )
        r = rows[0]

        def amount(name: str) -> int:
            return int(r[name] or 0)

        by_period = {
            k: Balances(
                current=amount(f"c{k}"),
                d1_30=amount(f"x{k}_1"),
                d31_60=amount(f"x{k}_2"),
                d61_90=amount(f"x{k}_3"),
                d90_plus=amount(f"x{k}_4"),
                overdue_accounts=amount(f"n{k}") if k else 0,
                managed_accounts=amount(f"m{k}") if k else 0,
            )
            for k in ks
        }
        return by_period, (amount("range_overdue"), amount("range_managed"))

    async def new_overdue(self) -> Mapping[int, int]:
        """Period k → the open amount of the invoices that fell past due in it (the day after
        their due date is in the period), measured on their due date."""
        return dict(await self._once("new_overdue", self._new_overdue))

    async def _new_overdue(self) -> dict[int, int]:
        s = self.scope
        rows = await _raw(
            f"""
            WITH {_SCOPE},
            due AS (
                SELECT i.id, i.due_date,
                       coalesce(sum(e.amount), 0) AS open
                FROM invoice i JOIN scope ON scope.id = i.account
                LEFT JOIN ledger_entry e ON e.invoice = i.id AND e.effective_date <= i.due_date
                WHERE i.due_date BETWEEN {{}} AND {{}}
                GROUP BY i.id, i.due_date
            )
            SELECT width_bucket(due.due_date + 1, {{}}::date[]) AS k,
                   coalesce(sum(greatest(due.open, 0)), 0)::bigint AS amount
            FROM due GROUP BY 1
            """,
            *_scope_args(s),
            s.start - dt.timedelta(days=1),
            s.end - dt.timedelta(days=1),
            s.thresholds(),
        )
        return {int(r["k"]): int(r["amount"]) for r in rows}

    # -- conversations --------------------------------------------------------------------

    async def promises(self) -> Mapping[int, PromiseCounts]:
        """Period k → promises resolved kept / broken in it (cancelled ones do not count)."""
        return dict(await self._once("promises", self._promises))

    async def _promises(self) -> dict[int, PromiseCounts]:
        s = self.scope
        rows = await _raw(
            f"""
            WITH {_SCOPE}
            SELECT width_bucket((pr.resolved_at AT TIME ZONE 'UTC')::date, {{}}::date[]) AS k,
                   count(*) FILTER (WHERE pr.status = 'kept') AS kept,
                   count(*) FILTER (WHERE pr.status = 'broken') AS broken
            FROM promise_to_pay pr JOIN scope ON scope.id = pr.account
            WHERE pr.status IN ('kept', 'broken')
              AND pr.resolved_at >= {{}} AND pr.resolved_at < {{}}
            GROUP BY 1
            """,
            *_scope_args(s),
            s.thresholds(),
            s.first_instant(),
            s.after_instant(),
        )
        return {int(r["k"]): PromiseCounts(int(r["kept"]), int(r["broken"])) for r in rows}

    async def plans(self) -> Mapping[int, PlanCounts]:
        """Period k (1…n, and n + 1 for the whole range) → plans in force during it (agreed on
        or before its end, not ended before its start) and, of those, plans broken in it."""
        return dict(await self._once("plans", self._plans))

    async def _plans(self) -> dict[int, PlanCounts]:
        s = self.scope
        periods = [*s.periods, s.whole]
        rows = await _raw(
            f"""
            WITH {_SCOPE},
            p AS (SELECT * FROM unnest({{}}::int[], {{}}::date[], {{}}::date[])
                  AS p(k, start, finish)),
            plan AS (
                SELECT pl.status,
                       (coalesce(pl.decided_at, pl.created_at) AT TIME ZONE 'UTC')::date AS agreed,
                       (pl.ended_at AT TIME ZONE 'UTC')::date AS ended
                FROM payment_plan pl JOIN scope ON scope.id = pl.account
                WHERE pl.status IN ('active', 'completed', 'broken')
            )
            SELECT p.k, count(*) AS in_force,
                   count(*) FILTER (WHERE plan.status = 'broken'
                                    AND plan.ended BETWEEN p.start AND p.finish) AS broken
            FROM p JOIN plan ON plan.agreed <= p.finish
                            AND (plan.ended IS NULL OR plan.ended >= p.start)
            GROUP BY p.k
            """,
            *_scope_args(s),
            list(range(1, len(periods) + 1)),
            [p.start for p in periods],
            [p.end for p in periods],
        )
        return {int(r["k"]): PlanCounts(int(r["broken"]), int(r["in_force"])) for r in rows}

    async def contacts(self) -> Mapping[int, ContactCounts]:
        """Period k → agent contact attempts (calls, visits) and those that reached the
        debtor."""
        return dict(await self._once("contacts", self._contacts))

    async def _contacts(self) -> dict[int, ContactCounts]:
        s = self.scope
        rows = await _raw(
            f"""
            WITH {_SCOPE}
            SELECT width_bucket((x.occurred_at AT TIME ZONE 'UTC')::date, {{}}::date[]) AS k,
                   count(*) AS attempts,
                   count(*) FILTER (WHERE x.data ->> 'outcome' = ANY({{}}::text[])) AS reached
            FROM interaction x JOIN scope ON scope.id = x.account
            WHERE x.kind = ANY({{}}::text[])
              AND x.occurred_at >= {{}} AND x.occurred_at < {{}}
            GROUP BY 1
            """,
            *_scope_args(s),
            s.thresholds(),
            list(REACHED_OUTCOMES),
            list(CONTACT_KINDS),
            s.first_instant(),
            s.after_instant(),
        )
        return {int(r["k"]): ContactCounts(int(r["attempts"]), int(r["reached"])) for r in rows}

    async def messages(self) -> Mapping[tuple[int, str], MessageCounts]:
        """(period k, channel) → messages sent (by the day sent) and blocked by the guardrails
        (by the day they were due to go out)."""
        return dict(await self._once("messages", self._messages))

    async def _messages(self) -> dict[tuple[int, str], MessageCounts]:
        s = self.scope
        rows = await _raw(
            f"""
            WITH {_SCOPE},
            m AS (
                SELECT n.channel, n.status,
                       CASE WHEN n.status = 'sent' THEN n.sent_at
                            ELSE coalesce(n.send_after, n.created_at) END AS at
                FROM notification n JOIN scope ON scope.id = n.account
                WHERE n.status IN ('sent', 'blocked')
            )
            SELECT width_bucket((m.at AT TIME ZONE 'UTC')::date, {{}}::date[]) AS k, m.channel,
                   count(*) FILTER (WHERE m.status = 'sent') AS sent,
                   count(*) FILTER (WHERE m.status = 'blocked') AS blocked
            FROM m WHERE m.at >= {{}} AND m.at < {{}}
            GROUP BY 1, 2
            """,
            *_scope_args(s),
            s.thresholds(),
            s.first_instant(),
            s.after_instant(),
        )
        return {
            (int(r["k"]), str(r["channel"])): MessageCounts(int(r["sent"]), int(r["blocked"]))
            for r in rows
        }


# ---------------------------------------------------------------------------- choices


@dataclass(frozen=True, slots=True)
class CreditorChoice:
    id: int
    name: str
    accounts_by_currency: tuple[tuple[str, int], ...]  # most accounts first

    @property
    def currencies(self) -> tuple[str, ...]:
        return tuple(currency for currency, _ in self.accounts_by_currency)


async def creditor_choices() -> tuple[CreditorChoice, ...]:
    """Every creditor, by name, with how many accounts it has in each currency."""
    rows = await _raw(
        """
        SELECT c.id, c.name, a.currency, count(a.id) AS n
        FROM creditor c LEFT JOIN account a ON a.creditor = c.id
        GROUP BY c.id, c.name, a.currency
        ORDER BY c.name, c.id, n DESC, a.currency
        """
    )
    found: dict[int, tuple[str, list[tuple[str, int]]]] = {}
    for r in rows:
        _, counts = found.setdefault(int(r["id"]), (str(r["name"]), []))
        if r["currency"] is not None:
            counts.append((str(r["currency"]), int(r["n"])))
    return tuple(CreditorChoice(cid, name, tuple(counts)) for cid, (name, counts) in found.items())


def currencies_by_use(
    choices: Sequence[CreditorChoice], creditor_id: int | None
) -> tuple[str, ...]:
    """The currencies of the chosen creditor's accounts (or every creditor's), the one with
    the most accounts first."""
    counts: dict[str, int] = {}
    for choice in choices:
        if creditor_id is None or choice.id == creditor_id:
            for currency, n in choice.accounts_by_currency:
                counts[currency] = counts.get(currency, 0) + n
    return tuple(sorted(counts, key=lambda c: (-counts[c], c)))
