"""The work queue: the accounts to work today, most urgent first, and assigning them to agents.

Priority. An account's score is the sum of the points of each distinct reason it has today:

==================  =======  =================================================================
reason              points   when
==================  =======  =================================================================
broken_promise      1000     an open "broken_promise" task (a promise to pay was not kept)
plan_missed          950     an open "plan_installment_missed" or "plan_broken" task
plan_review          900     a plan proposal waiting for staff (`payment_plan.status` proposed)
plan_offered         850     a counter-offer waiting for the debtor's answer (offered)
dispute_overdue      800     an open dispute past its SLA target
dispute_due          700     an open dispute whose SLA target is within `DISPUTE_SOON`
unapplied            600     an open "ya pagué" report, or an open "match_claim" /
                             "payment_currency_mismatch" task (money waiting to be applied)
high_exposure        500     among the `HIGH_EXPOSURE_TOP` highest risk × balance, if at
                             least `HIGH_EXPOSURE` (see below)
callback             400     the account's next action date (a callback, a visit) is today
                             or past
task                 100     any other open task on the account
==================  =======  =================================================================

Order: accounts with a reason, by score (highest first), then by the date of their most urgent
reason (the oldest due callback or task, the nearest SLA target, the oldest proposal or report
first; "high_exposure" has no date and comes after the dated ones), then risk × balance, then
account id; then every other account that owes something, by risk × balance alone; accounts
whose collection staff paused (`paused_until` today or later) come last, ordered the same way.
Closed accounts are never in the queue.

Risk × balance ("exposure") is the risk score (0–100, `saldo.services.segmentation`) times
the balance in thousandths of the currency's large balance (`saldo.rules.risk.LARGE_BALANCE`,
so pesos, euros and Chilean pesos compare; capped at a thousand large balances). It comes from
the `account_exposure` snapshot (migration 6), which `refresh_exposure()` rebuilds — the
worker does so every `REFRESH_MINUTES`: summing a million ledgers takes about a second, too
slow for every page; an account imported since the last rebuild joins the risk × balance
order at the next one. Reasons, filters, assignees, stages and pauses are always read live,
and so are the balances shown on the page (summed for the rows shown).

`work_queue()` is ONE statement. The reasons of the whole portfolio come from partial indexes
over what is open (migration 6) and are ranked without touching the account table — the first
`RANK_FIRST` with a top-N sort, the rest only if a page gets that far; accounts are then read
in rank order only until the page is full (with the filters applied to each), and the
accounts without a reason are read in the snapshot's index order the same way. So a page
costs the open items of the portfolio plus a page's worth of lookups, not a scan of every
account (`bench/queue_bench.py` measures it on a million).

`assign()` gives accounts (and their open tasks) to an agent, or takes them back, in one
transaction with an `AuditEvent` and a timeline `Interaction` per account that changed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from saldo.db import DB
from saldo.errors import NotFound, ValidationFailed
from saldo.i18n import gettext
from saldo.rules import risk
from saldo.services.audit import Actor
from saldo.services.statement import Amount, Formats, display_locale
from saldo.tables import Account, Stage

__all__ = [
    "DISPUTE_SOON",
    "HIGH_EXPOSURE",
    "HIGH_EXPOSURE_TOP",
    "MAX_ASSIGN",
    "REASONS",
    "REFRESH_MINUTES",
    "STAGES",
    "Choice",
    "QueueFilters",
    "QueuePage",
    "QueueRow",
    "Reason",
    "assign",
    "assignable_staff",
    "queue_choices",
    "refresh_exposure",
    "work_queue",
]

#: An open dispute counts as "due" this long before its SLA target.
DISPUTE_SOON: Final = dt.timedelta(days=2)
#: Risk × balance from which an account is a reason of its own: a risk score of 60 on one
#: large balance (`saldo.rules.risk.LARGE_BALANCE`) of its currency; at most the
#: `HIGH_EXPOSURE_TOP` highest of them are (a reason shared by half a portfolio says nothing).
HIGH_EXPOSURE: Final = 60 * 1000
HIGH_EXPOSURE_TOP: Final = 1000
#: Accounts with a reason are ranked in two steps: the first `RANK_FIRST` (a top-N sort,
#: enough for the first pages of most views), then the rest only when a page reaches them.
RANK_FIRST: Final = 1000
#: How often the worker rebuilds the risk × balance snapshot.
REFRESH_MINUTES: Final = 10
#: At most this many accounts in one assignment.
MAX_ASSIGN: Final = 500
MAX_PAGE: Final = 200
#: Stages staff may filter by (closed accounts are never in the queue).
STAGES: Final = tuple(s.value for s in Stage if s is not Stage.closed)
#: Segments known to the rules, plus the default of a new account.
SEGMENTS: Final = ("standard", *risk.SEGMENTS)
_MAX_ID: Final = 2**31 - 1
_ASSIGNEE_ROLES: Final = ("agent", "supervisor")


@dataclass(frozen=True, slots=True)
class Reason:
    key: str
    bit: int
    points: int


#: Every reason, highest points first (see the module docstring).
REASONS: Final = (
    Reason("broken_promise", 1 << 0, 1000),
    Reason("plan_missed", 1 << 1, 950),
    Reason("plan_review", 1 << 2, 900),
    Reason("plan_offered", 1 << 3, 850),
    Reason("dispute_overdue", 1 << 4, 800),
    Reason("dispute_due", 1 << 5, 700),
    Reason("unapplied", 1 << 6, 600),
    Reason("high_exposure", 1 << 7, 500),
    Reason("callback", 1 << 8, 400),
    Reason("task", 1 << 9, 100),
)
_BIT: Final = {r.key: r.bit for r in REASONS}
#: Task kinds with a reason of their own; other open tasks count as "task". Plan reviews and
#: disputes are read from their own tables (the SLA decides for disputes).
_TASK_REASONS: Final = {
    "broken_promise": "broken_promise",
    "plan_installment_missed": "plan_missed",
    "plan_broken": "plan_missed",
    "match_claim": "unapplied",
    "payment_currency_mismatch": "unapplied",
}
_TASKS_ELSEWHERE: Final = ("plan_review", "dispute")


def _points_sql(flags: str) -> str:
    return "(" + " + ".join(f"(({flags} & {r.bit}) > 0)::int * {r.points}" for r in REASONS) + ")"


def _task_flag_sql() -> str:
    cases = " ".join(f"WHEN '{kind}' THEN {_BIT[key]}" for kind, key in _TASK_REASONS.items())
    return f"(CASE t.kind {cases} ELSE {_BIT['task']} END)"


# ---------------------------------------------------------------------------- filters and rows


@dataclass(frozen=True, slots=True)
class QueueFilters:
    """What narrows the queue. `assignee` is a staff id; `unassigned` asks for accounts with
    nobody assigned (it wins over `assignee`)."""

    creditor_id: int | None = None
    segment: str | None = None
    stage: str | None = None
    assignee: int | None = None
    unassigned: bool = False

    @property
    def active(self) -> bool:
        return any((self.creditor_id, self.segment, self.stage, self.assignee, self.unassigned))


@dataclass(frozen=True, slots=True)
class QueueRow:
    account_id: int
    debtor_id: int
    debtor_name: str
    document: str
    creditor_id: int
    creditor_name: str
    currency: str
    stage: str
    segment: str
    risk_score: int
    assignee_id: int | None
    assignee_name: str
    balance: Amount  # live
    oldest_due: dt.date | None  # the oldest due date of an invoice still open and past due
    days_overdue: int
    next_action_on: dt.date | None
    next_action_note: str
    paused_until: dt.date | None
    legal: bool
    score: int
    reasons: tuple[str, ...]  # reason keys, highest points first
    urgent_on: dt.date | None  # the date of the most urgent reason
    exposure: int  # risk × balance from the snapshot (0 when not in it)

    @property
    def paused(self) -> bool:
        return self.paused_until is not None


@dataclass(frozen=True, slots=True)
class QueuePage:
    rows: tuple[QueueRow, ...]
    offset: int
    limit: int
    has_more: bool
    filters: QueueFilters
    today: dt.date

    @property
    def page(self) -> int:
        return self.offset // self.limit + 1

    @property
    def first(self) -> int:
        return self.offset + 1 if self.rows else 0

    @property
    def last(self) -> int:
        return self.offset + len(self.rows)


def _reasons(flags: int) -> tuple[str, ...]:
    return tuple(r.key for r in REASONS if flags & r.bit)


def _valid_id(value: int | None) -> int | None:
    return value if value is not None and 0 < value <= _MAX_ID else None


class _Sql:
    """Collects the values of `{}` placeholders in the order the text is written."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.values.append(value)
        return "{}"


def _account_filters(filters: QueueFilters, v: _Sql) -> str:
    """SQL conditions on `a` (an account row) for the active filters."""
    clauses: list[str] = []
    if filters.creditor_id is not None:
        clauses.append(f"a.creditor = {v(_valid_id(filters.creditor_id) or 0)}")
    if filters.segment:
        clauses.append(f"a.segment = {v(filters.segment[:40])}")
    if filters.stage:
        clauses.append(f"a.stage = {v(filters.stage[:20])}")
    if filters.unassigned:
        clauses.append("a.assignee IS NULL")
    elif filters.assignee is not None:
        clauses.append(f"a.assignee = {v(_valid_id(filters.assignee) or 0)}::int")
    return "".join(f" AND {c}" for c in clauses)


# ---------------------------------------------------------------------------- the query


def _query(
    filters: QueueFilters, *, today: dt.date, now: dt.datetime, offset: int, limit: int
) -> tuple[str, list[Any]]:
    """The statement and its values (dates and filters are placeholders the planner sees as
    values: each statement is planned for them, `plan_cache_mode = force_custom_plan`)."""
    v = _Sql()
    want = offset + limit + 1
    active = "(a.paused_until IS NULL OR a.paused_until < {today})"
    paused = "a.paused_until >= {today}"
    open_account = "a.stage <> 'closed'"
    dispute_open = "d.resolved_at IS NULL AND d.status IN ('open', 'in_review', 'waiting_debtor')"
    tasks_elsewhere = ", ".join(f"'{k}'" for k in _TASKS_ELSEWHERE)
    sql = f"""
        WITH sources AS (
            SELECT t.account, {_task_flag_sql()} AS flag,
                   coalesce(t.due_on, (t.created_at AT TIME ZONE 'UTC')::date) AS urgent,
                   0::bigint AS exposure
            FROM task t
            WHERE t.status = 'open' AND t.account IS NOT NULL
              AND t.kind NOT IN ({tasks_elsewhere})
            UNION ALL
            SELECT p.account,
                   CASE p.status WHEN 'proposed' THEN {_BIT["plan_review"]}
                                 ELSE {_BIT["plan_offered"]} END,
                   (p.created_at AT TIME ZONE 'UTC')::date, 0
            FROM payment_plan p WHERE p.status IN ('proposed', 'offered')
            UNION ALL
            SELECT d.account,
                   CASE WHEN d.sla_due_at < {v(now)}::timestamptz
                        THEN {_BIT["dispute_overdue"]} ELSE {_BIT["dispute_due"]} END,
                   (d.sla_due_at AT TIME ZONE 'UTC')::date, 0
            FROM dispute d
            WHERE {dispute_open} AND d.sla_due_at < {v(now + DISPUTE_SOON)}::timestamptz
            UNION ALL
            SELECT c.account, {_BIT["unapplied"]}, (c.created_at AT TIME ZONE 'UTC')::date, 0
            FROM payment_claim c WHERE c.status = 'open'
            UNION ALL
            (SELECT x.account, {_BIT["high_exposure"]}, NULL::date, x.exposure
             FROM account_exposure x WHERE x.exposure >= {HIGH_EXPOSURE}
             ORDER BY x.exposure DESC, x.account LIMIT {HIGH_EXPOSURE_TOP})
            UNION ALL
            SELECT a.id, {_BIT["callback"]}, a.next_action_on, 0
            FROM account a WHERE a.next_action_on <= {v(today)}::date
        ),
        signal AS MATERIALIZED (
            SELECT account, bit_or(flag) AS flags, min(urgent) AS urgent,
                   max(exposure) AS exposure, {_points_sql("bit_or(flag)")} AS points
            FROM sources WHERE account IS NOT NULL GROUP BY account
        ),
        top AS MATERIALIZED (
            SELECT * FROM signal
            ORDER BY points DESC, urgent ASC NULLS LAST, exposure DESC, account
            LIMIT {RANK_FIRST}
        ),
        rest AS MATERIALIZED (
            SELECT * FROM signal
            ORDER BY points DESC, urgent ASC NULLS LAST, exposure DESC, account
            OFFSET {RANK_FIRST}
        )"""
    for band in range(4):
        gate = " + ".join(f"(SELECT count(*) FROM band{b})" for b in range(band)) or "0"
        condition = (paused if band >= 2 else active).replace("{today}", v(today) + "::date")
        where = _account_filters(filters, v)
        if band in (0, 2):  # accounts with a reason, in rank order, read until the page is full
            sql += f""",
        band{band} AS MATERIALIZED (
            SELECT r.account, {band} AS band, r.points, r.flags, r.urgent, r.exposure
            FROM (SELECT * FROM top UNION ALL SELECT * FROM rest) r
            JOIN LATERAL (SELECT 1 FROM account a
                          WHERE a.id = r.account AND {open_account} AND {condition}{where}) a
              ON true
            WHERE {gate} < {v(want)}
            LIMIT {v(want)}
        )"""
        else:  # everyone else who owes, by risk × balance (the snapshot's index order)
            sql += f""",
        band{band} AS MATERIALIZED (
            SELECT x.account, {band} AS band, 0 AS points, 0 AS flags, NULL::date AS urgent,
                   x.exposure
            FROM (SELECT x.account, x.exposure FROM account_exposure x
                  JOIN account a ON a.id = x.account
                  WHERE {open_account} AND {condition}{where}
                    AND x.account NOT IN (SELECT account FROM signal)
                    AND {gate} < {v(want)}
                  ORDER BY x.exposure DESC, x.account
                  LIMIT {v(want)}) x
        )"""
    sql += f""",
        chosen AS MATERIALIZED (
            SELECT * FROM (
                SELECT * FROM band0 UNION ALL SELECT * FROM band1
                UNION ALL SELECT * FROM band2 UNION ALL SELECT * FROM band3
            ) b
            ORDER BY band, points DESC, urgent ASC NULLS LAST, exposure DESC, account
            OFFSET {v(offset)} LIMIT {v(limit + 1)}
        )
        SELECT c.band, c.points, c.flags, c.urgent,
               coalesce(x.exposure, c.exposure, 0) AS exposure,
               a.id AS account_id, a.currency, a.stage, a.segment, a.risk_score, a.assignee,
               a.next_action_on, a.next_action_note, a.legal_escalated_at,
               CASE WHEN {paused.replace("{today}", v(today) + "::date")}
                    THEN a.paused_until END AS paused_until,
               d.id AS debtor_id, d.name AS debtor_name, d.document_type, d.document_number,
               d.language, d.country, cr.id AS creditor_id, cr.name AS creditor_name,
               coalesce(nullif(su.name, ''), su.email, '') AS assignee_name,
               (SELECT coalesce(sum(e.amount), 0) FROM ledger_entry e
                WHERE e.account = a.id)::bigint AS balance,
               (SELECT min(i.due_date) FROM invoice i
                WHERE i.account = a.id AND i.due_date < {v(today)}::date
                  AND (SELECT coalesce(sum(e.amount), 0) FROM ledger_entry e
                       WHERE e.invoice = i.id) > 0) AS oldest_due
        FROM chosen c
        JOIN account a ON a.id = c.account
        JOIN debtor d ON d.id = a.debtor
        JOIN creditor cr ON cr.id = a.creditor
        LEFT JOIN account_exposure x ON x.account = a.id
        LEFT JOIN staff_user su ON su.id = a.assignee
        ORDER BY c.band, c.points DESC, c.urgent ASC NULLS LAST, c.exposure DESC, c.account
    """
    assert sql.count("{}") == len(v.values)
    return sql, v.values


async def work_queue(
    *,
    today: dt.date,
    now: dt.datetime,
    filters: QueueFilters | None = None,
    limit: int = 50,
    offset: int = 0,
    language: str = "es",
) -> QueuePage:
    """One page of the queue (see the module docstring for the order)."""
    filters = filters or QueueFilters()
    if filters.stage is not None and filters.stage not in STAGES:
        raise ValidationFailed("unknown stage", field="stage")
    limit = min(max(1, limit), MAX_PAGE)
    offset = max(0, min(offset, 100_000))
    sql, values = _query(filters, today=today, now=now, offset=offset, limit=limit)
    async with DB.transaction():
        # A page is a few milliseconds of work the planner cannot know is small: no JIT
        # compilation, no parallel workers, a plan for these very values.
        for setting in ("jit = off", "max_parallel_workers_per_gather = 0"):
            await Account.raw(f"SET LOCAL {setting}")
        await Account.raw("SET LOCAL plan_cache_mode = force_custom_plan")
        rows = await Account.raw(sql, *values)
    has_more = len(rows) > limit
    return QueuePage(
        rows=tuple(_row(r, today, language) for r in rows[:limit]),
        offset=offset,
        limit=limit,
        has_more=has_more,
        filters=filters,
        today=today,
    )


def _row(r: Mapping[str, Any], today: dt.date, language: str) -> QueueRow:
    fmt = Formats(str(r["currency"]), display_locale(language, str(r["country"])))
    document = " ".join(x for x in (r["document_type"], r["document_number"]) if x)
    oldest: dt.date | None = r["oldest_due"]
    return QueueRow(
        account_id=int(r["account_id"]),
        debtor_id=int(r["debtor_id"]),
        debtor_name=str(r["debtor_name"]),
        document=document,
        creditor_id=int(r["creditor_id"]),
        creditor_name=str(r["creditor_name"]),
        currency=str(r["currency"]),
        stage=str(r["stage"]),
        segment=str(r["segment"]),
        risk_score=int(r["risk_score"]),
        assignee_id=r["assignee"],
        assignee_name=str(r["assignee_name"]) if r["assignee"] else "",
        balance=fmt.money(int(r["balance"])),
        oldest_due=oldest,
        days_overdue=(today - oldest).days if oldest else 0,
        next_action_on=r["next_action_on"],
        next_action_note=str(r["next_action_note"] or ""),
        paused_until=r["paused_until"],
        legal=r["legal_escalated_at"] is not None,
        score=int(r["points"]),
        reasons=_reasons(int(r["flags"])),
        urgent_on=r["urgent"],
        exposure=int(r["exposure"] or 0),
    )


async def refresh_exposure() -> None:
    """Rebuild the risk × balance snapshot (readers keep the old one until it is done)."""
    await Account.raw("REFRESH MATERIALIZED VIEW CONCURRENTLY account_exposure")


# ---------------------------------------------------------------------------- choices


@dataclass(frozen=True, slots=True)
class Choice:
    value: str
    label: str


@dataclass(frozen=True, slots=True)
class QueueChoices:
    creditors: tuple[Choice, ...]
    staff: tuple[Choice, ...]
    segments: tuple[str, ...] = SEGMENTS
    stages: tuple[str, ...] = STAGES


async def assignable_staff() -> tuple[Choice, ...]:
    """Active agents and supervisors: who may be given accounts."""
    rows = await Account.raw(
        """SELECT id, coalesce(nullif(name, ''), email) AS label FROM staff_user
           WHERE active AND role = ANY({}::text[]) ORDER BY lower(coalesce(nullif(name, ''),
           email)), id""",
        list(_ASSIGNEE_ROLES),
    )
    return tuple(Choice(str(r["id"]), str(r["label"])) for r in rows)


async def queue_choices() -> QueueChoices:
    creditors = await Account.raw("SELECT id, name FROM creditor ORDER BY lower(name), id")
    return QueueChoices(
        creditors=tuple(Choice(str(r["id"]), str(r["name"])) for r in creditors),
        staff=await assignable_staff(),
    )


# ---------------------------------------------------------------------------- assignment


@dataclass(frozen=True, slots=True)
class Assignment:
    changed: tuple[int, ...]  # accounts whose assignee changed
    unchanged: int  # accounts that already had that assignee
    staff_id: int | None
    staff_name: str = ""
    missing: tuple[int, ...] = field(default_factory=tuple)


async def assign(
    account_ids: Sequence[int],
    staff_id: int | None,
    *,
    by: Actor,
    now: dt.datetime,
    language: str = "es",
) -> Assignment:
    """Give these accounts (and their open tasks) to `staff_id`, or to nobody with None.

    `ValidationFailed` for no accounts, more than `MAX_ASSIGN`, or an assignee who is not an
    active agent or supervisor; `NotFound` when none of the accounts exists. One transaction:
    the accounts are locked, only those whose assignee changes are written, each with an
    `AuditEvent` ("account.assigned", before/after) and an `Interaction` on its timeline.
    """
    ids = sorted({int(i) for i in account_ids if 0 < int(i) <= _MAX_ID})
    if not ids:
        raise ValidationFailed(gettext(language, "Marque al menos una cuenta."), field="accounts")
    if len(ids) > MAX_ASSIGN:
        raise ValidationFailed(
            gettext(language, "Se pueden asignar hasta {count} cuentas a la vez.").format(
                count=MAX_ASSIGN
            ),
            field="accounts",
        )
    name = ""
    if staff_id is not None:
        staff = await Account.raw(
            """SELECT coalesce(nullif(name, ''), email) AS label FROM staff_user
               WHERE id = {} AND active AND role = ANY({}::text[])""",
            staff_id if 0 < staff_id <= _MAX_ID else 0,
            list(_ASSIGNEE_ROLES),
        )
        if not staff:
            raise ValidationFailed(
                gettext(language, "Elija un agente o supervisor activo."), field="assignee"
            )
        name = str(staff[0]["label"])
    async with DB.transaction():
        locked = await Account.raw(
            "SELECT id, assignee FROM account WHERE id = ANY({}::int[]) ORDER BY id FOR UPDATE",
            ids,
        )
        if not locked:
            raise NotFound(gettext(language, "No encontramos esas cuentas."))
        changed = await Account.raw(
            """WITH old AS (SELECT id, assignee FROM account WHERE id = ANY({}::int[])),
               upd AS (
                   UPDATE account a SET assignee = {}::int FROM old
                   WHERE a.id = old.id AND a.assignee IS DISTINCT FROM {}::int
                   RETURNING a.id, a.debtor, old.assignee AS before
               ),
               tasks AS (
                   UPDATE task t SET assignee = {}::int FROM upd
                   WHERE t.account = upd.id AND t.status = 'open'
                   RETURNING t.id
               ),
               audit AS (
                   INSERT INTO audit_event (staff, actor, action, object_type, object_id,
                                            before, after, ip, created_at)
                   SELECT {}, {}, 'account.assigned', 'account', upd.id::text,
                          jsonb_build_object('assignee', upd.before),
                          jsonb_build_object('assignee', {}::int,
                                             'tasks', (SELECT count(*) FROM tasks)),
                          {}, {}
                   FROM upd
               ),
               timeline AS (
                   INSERT INTO interaction (account, debtor, kind, channel, direction, summary,
                                            data, staff, occurred_at)
                   SELECT upd.id, upd.debtor, 'assigned', 'backoffice', '', {},
                          jsonb_build_object('from', upd.before, 'to', {}::int), {}, {}
                   FROM upd
               )
               SELECT id FROM upd ORDER BY id""",
            ids,
            staff_id,
            staff_id,
            staff_id,
            by.staff_id,
            by.label[:254],
            staff_id,
            by.ip[:64],
            now,
            f"Cuenta asignada a {name}." if staff_id is not None else "Cuenta sin asignar.",
            staff_id,
            by.staff_id,
            now,
        )
    found = {int(r["id"]) for r in locked}
    done = tuple(int(r["id"]) for r in changed)
    return Assignment(
        changed=done,
        unchanged=len(found) - len(done),
        staff_id=staff_id,
        staff_name=name,
        missing=tuple(i for i in ids if i not in found),
    )
