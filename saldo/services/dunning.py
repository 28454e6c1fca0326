"""The daily dunning run: which reminders to queue, which accounts move stage or go to legal.

`run_dunning(as_of=, now=)` decides a whole portfolio's day in a few set-based statements
(steps 2 to 5 in one transaction, on a temporary table of the day's invoice × step rows):

1. Every creditor without a dunning policy gets the default one (`ensure_default_policies`,
   steps in `saldo.rules.dunning.DEFAULT_STEPS`; the Mexico preset window for creditors in MX).
2. The invoices due exactly `offset` days before `as_of` for an offset of some active step are
   the candidates (the `invoice.due_date` index finds them). Each account follows the active
   policy of its creditor and segment, else the creditor's "standard" one. An invoice takes
   part when what is collectable on it — its open amount (the sum of its ledger entries)
   less the part under open dispute — is above zero, and nothing pauses it or its account
   (`saldo.services.pauses`: staff pause, promise in force, open dispute over its whole
   amount, active plan, pending online payment, open "ya pagué" report). Accounts escalated
   to legal collection, and closed ones, get no more reminders.
3. Messages: ONE queued `Notification` per debtor × step × channel, listing all that debtor's
   invoices at that step (`invoice_ids`, and in `context` each with its collectable amount),
   idempotency key `dunning:<debtor>:<step id>:<channel>:<as_of>` (INSERT … ON CONFLICT DO
   NOTHING: running a day twice queues nothing twice). `send_after` is the opening of the
   policy's send window that day in the debtor's time zone; the sender checks every
   guardrail again when it sends. A channel the debtor has no address for is skipped.
4. Judicial steps send nothing: the account gets `legal_escalated_at`, stage "judicial", a
   `Task` (kind "legal_escalation", dedupe "legal:<account>") and an `Interaction`.
5. Stage progression: an account's stage rises to the highest stage of the steps it reached
   (it never goes back by itself), with an `Interaction` for each change.
6. Personal reminders: `installment_due` `INSTALLMENT_REMINDER_DAYS` before each installment
   of an active plan that still has something to pay (key `installment:<id>:<channel>`), and
   `promise_reminder` `PROMISE_REMINDER_DAYS` before a promised date (key
   `promise:<id>:reminder:<channel>`), each on one channel (`rules.dunning.reminder_channel`)
   unless a pause other than its own holds the account.

`context` of a dunning message: creditor, creditor_id, debtor_name, as_of, step_offset, stage,
currency and total (when all invoices share one currency, else null), totals (per currency),
invoices (id, number, due_date, currency, amount = collectable, disputed). It records what was
decided; the outbox renders the amounts from `invoice_ids` when it sends. A debtor with
invoices at one step in two currencies (two accounts) gets one message with `account` NULL.

`run_day(as_of=, now=)` is a whole night's work in the crons' order (commitments, interest and
fees, segmentation, this run); `saldo dunning run [--as-of DATE]` prints its `summary_lines`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from saldo import money
from saldo.db import DB
from saldo.rules import dunning as rules
from saldo.services import accrual, pauses, plan_progress, promises, segmentation
from saldo.services.accrual import AccrualRun
from saldo.services.plans import UpcomingInstallment, upcoming_installments
from saldo.services.segmentation import SegmentationRun
from saldo.tables import DunningPolicy

__all__ = [
    "DayRun",
    "DunningRun",
    "ensure_default_policies",
    "run_day",
    "run_dunning",
]

LEGAL_TASK: Final = "legal_escalation"
_TODAY: Final = "(SELECT today FROM params)"
_STAGE_RANK_SQL: Final = (
    "(CASE {} "
    + " ".join(f"WHEN '{stage}' THEN {rank}" for stage, rank in rules.STAGE_RANK.items())
    + " ELSE 0 END)"
)
_ADDRESS_SQL: Final = (
    "(CASE {channel} WHEN 'email' THEN {d}.email WHEN 'sms' THEN {d}.phone "
    "WHEN 'whatsapp' THEN {d}.whatsapp ELSE '' END)"
)


def _rank(column: str) -> str:
    return _STAGE_RANK_SQL.format(column)


def _address(channel: str, debtor: str) -> str:
    return _ADDRESS_SQL.format(channel=channel, d=debtor)


@dataclass(frozen=True, slots=True)
class DunningRun:
    """What one day's run did (counts of what THIS run inserted or changed)."""

    as_of: dt.date
    decided: int  # invoice × step rows that took part
    queued: Mapping[tuple[str, str], int] = field(default_factory=dict)  # (channel, template)
    escalated: int = 0
    stage_changes: int = 0
    installment_reminders: int = 0
    promise_reminders: int = 0
    policies_created: int = 0

    @property
    def messages(self) -> int:
        return sum(self.queued.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "decided": self.decided,
            "messages": self.messages,
            "queued": {f"{c}:{t}": n for (c, t), n in sorted(self.queued.items())},
            "escalated": self.escalated,
            "stage_changes": self.stage_changes,
            "installment_reminders": self.installment_reminders,
            "promise_reminders": self.promise_reminders,
            "policies_created": self.policies_created,
        }


# ---------------------------------------------------------------------------- default policy


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _default_steps_sql() -> str:
    rows = ", ".join(
        f"({s.offset_days}, {_literal(json.dumps(list(s.channels)))}, {_literal(s.template)}, "
        f"{_literal(s.stage)})"
        for s in rules.DEFAULT_STEPS
    )
    return f"(VALUES {rows}) AS s(offset_days, channels, template, stage)"


def _window_sql(part: str) -> str:
    mx, default = rules.MEXICO_WINDOW, rules.DEFAULT_WINDOW
    return (
        f"(CASE WHEN upper(c.country) = 'MX' THEN '{getattr(mx, part).isoformat()}'::time "
        f"ELSE '{getattr(default, part).isoformat()}'::time END)"
    )


async def _ensure_defaults(creditor_id: int | None) -> list[int]:
    rows = await DunningPolicy.raw(
        f"""WITH missing AS (
                SELECT c.id, c.country FROM creditor c
                WHERE ({{}}::int IS NULL OR c.id = {{}}::int)
                  AND NOT EXISTS (SELECT 1 FROM dunning_policy p WHERE p.creditor = c.id)
            ), created AS (
                INSERT INTO dunning_policy (creditor, segment, name, active, window_start,
                    window_end, skip_sundays, skip_holidays, frequency_cap,
                    frequency_window_days)
                SELECT c.id, '{rules.DEFAULT_SEGMENT}', 'Política estándar', true,
                       {_window_sql("start")}, {_window_sql("end")}, false, false, 7, 7
                FROM missing c
                ON CONFLICT (creditor, segment) DO NOTHING
                RETURNING id
            ), steps AS (
                INSERT INTO dunning_step (policy, offset_days, channels, template, stage)
                SELECT created.id, s.offset_days, s.channels::jsonb, s.template, s.stage
                FROM created CROSS JOIN {_default_steps_sql()}
                ON CONFLICT (policy, offset_days) DO NOTHING
            )
            SELECT id FROM created""",
        creditor_id,
        creditor_id,
    )
    return [int(r["id"]) for r in rows]


async def ensure_default_policies(creditor_id: int) -> int:
    """Give a creditor the default dunning policy when it has none; returns the id of its
    "standard" policy (the existing one if there was one). Idempotent."""
    await _ensure_defaults(creditor_id)
    rows = await DunningPolicy.raw(
        """SELECT id FROM dunning_policy WHERE creditor = {}
           ORDER BY (segment = {}) DESC, id LIMIT 1""",
        creditor_id,
        rules.DEFAULT_SEGMENT,
    )
    return int(rows[0]["id"])


# ---------------------------------------------------------------------------- the day's steps


def _due_sql() -> str:
    """The day's invoice × step rows with something to collect (pauses are removed next)."""
    return f"""
        CREATE TEMP TABLE dunning_due ON COMMIT DROP AS
        WITH params AS (SELECT {{}}::date AS today),
        offsets AS (
            SELECT DISTINCT s.offset_days FROM dunning_step s
            JOIN dunning_policy p ON p.id = s.policy WHERE p.active
        ),
        candidates AS (
            SELECT i.id AS invoice, i.account, i.number, i.due_date, i.currency
            FROM offsets o
            JOIN invoice i ON i.due_date = {_TODAY} - o.offset_days
        ),
        stepped AS (
            SELECT c.invoice, c.account, c.number, c.due_date, c.currency, a.debtor,
                   a.creditor, s.id AS step, s.offset_days, s.channels, s.template, s.stage,
                   p.window_start
            FROM candidates c
            JOIN account a ON a.id = c.account
            LEFT JOIN dunning_policy pe
                   ON pe.creditor = a.creditor AND pe.segment = a.segment AND pe.active
            LEFT JOIN dunning_policy ps
                   ON ps.creditor = a.creditor AND ps.segment = '{rules.DEFAULT_SEGMENT}'
                  AND ps.active
            JOIN dunning_policy p ON p.id = coalesce(pe.id, ps.id)
            JOIN dunning_step s ON s.policy = p.id AND s.offset_days = {_TODAY} - c.due_date
            WHERE a.legal_escalated_at IS NULL AND a.stage <> 'closed'
        ),
        disputed AS MATERIALIZED ({pauses.disputed_sql()}),
        amounts AS (
            SELECT st.*, o.open,
                   least(coalesce(ds.amount, 0), greatest(o.open, 0))::bigint AS disputed
            FROM stepped st
            CROSS JOIN LATERAL (
                SELECT coalesce(sum(e.amount), 0)::bigint AS open FROM ledger_entry e
                WHERE e.invoice = st.invoice
            ) o
            LEFT JOIN disputed ds ON ds.invoice = st.invoice
        )
        SELECT am.* FROM amounts am WHERE am.open - am.disputed > 0"""


# Pauses are removed from the analyzed temporary table in two joins, each looking only at the
# accounts that have a step today (a handful of rows, however large the portfolio).
_DUE_ACCOUNTS: Final = "SELECT DISTINCT account FROM dunning_due"
_UNPAUSE_ACCOUNTS_SQL: Final = f"""
    WITH params AS (SELECT {{}}::date AS today)
    DELETE FROM dunning_due d
    USING ({pauses.account_pauses_sql(_TODAY, _DUE_ACCOUNTS)}) ap
    WHERE d.account = ap.account
"""
_UNPAUSE_INVOICES_SQL: Final = f"""
    WITH params AS (SELECT {{}}::date AS today)
    DELETE FROM dunning_due d
    USING ({pauses.invoice_pauses_sql(_TODAY, _DUE_ACCOUNTS)}) ip
    WHERE d.invoice = ip.invoice
"""


_MESSAGES_SQL: Final = f"""
    WITH params AS (SELECT {{}}::date AS today, {{}}::timestamptz AS now),
    zones AS MATERIALIZED (  -- the debtors' time zones PostgreSQL knows (others: UTC)
        SELECT u.timezone AS name
        FROM (SELECT DISTINCT db.timezone FROM dunning_due d JOIN debtor db ON db.id = d.debtor) u
        WHERE u.timezone IN (SELECT name FROM pg_timezone_names)
    ),
    groups AS (
        SELECT d.debtor, d.step, d.template, d.stage, d.offset_days, d.window_start, d.channels,
               d.creditor, min(d.account) AS account_min, max(d.account) AS account_max,
               jsonb_agg(d.invoice ORDER BY d.due_date, d.invoice) AS invoice_ids,
               jsonb_agg(jsonb_build_object(
                   'id', d.invoice, 'number', d.number, 'due_date', d.due_date,
                   'currency', d.currency, 'amount', d.open - d.disputed,
                   'disputed', d.disputed) ORDER BY d.due_date, d.invoice) AS invoices
        FROM dunning_due d WHERE d.stage <> '{rules.JUDICIAL}'
        GROUP BY d.debtor, d.step, d.template, d.stage, d.offset_days, d.window_start,
                 d.channels, d.creditor
    ),
    totals AS (
        SELECT x.debtor, x.step, count(*) AS currencies, min(x.currency) AS currency,
               sum(x.total)::bigint AS total,
               jsonb_agg(jsonb_build_object('currency', x.currency, 'amount', x.total)
                         ORDER BY x.currency) AS totals
        FROM (SELECT debtor, step, currency, sum(open - disputed)::bigint AS total
              FROM dunning_due WHERE stage <> '{rules.JUDICIAL}'
              GROUP BY debtor, step, currency) x
        GROUP BY x.debtor, x.step
    ),
    inserted AS (
        INSERT INTO notification (debtor, account, channel, template, language, to_address,
            subject, body_text, body_html, idempotency_key, context, invoice_ids, stage,
            step_offset, status, blocked_reason, provider_id, attempts, last_error, send_after,
            created_at)
        SELECT g.debtor,
               CASE WHEN g.account_min = g.account_max THEN g.account_min END,
               ch.channel, g.template, db.language, {_address("ch.channel", "db")},
               '', '', '',
               'dunning:' || g.debtor || ':' || g.step || ':' || ch.channel || ':'
                   || {_TODAY}::text,
               jsonb_build_object(
                   'creditor', c.name, 'creditor_id', c.id, 'debtor_name', db.name,
                   'as_of', {_TODAY}, 'step_offset', g.offset_days, 'stage', g.stage,
                   'currency', CASE WHEN t.currencies = 1 THEN t.currency END,
                   'total', CASE WHEN t.currencies = 1 THEN t.total END,
                   'totals', t.totals, 'invoices', g.invoices),
               g.invoice_ids, g.stage, g.offset_days, 'queued', '', '', 0, '',
               ({_TODAY} + g.window_start) AT TIME ZONE coalesce(z.name, 'UTC'),
               (SELECT now FROM params)
        FROM groups g
        JOIN totals t ON t.debtor = g.debtor AND t.step = g.step
        JOIN debtor db ON db.id = g.debtor
        JOIN creditor c ON c.id = g.creditor
        CROSS JOIN LATERAL jsonb_array_elements_text(
            CASE jsonb_typeof(g.channels) WHEN 'array' THEN g.channels ELSE '[]'::jsonb END
        ) AS ch(channel)
        LEFT JOIN zones z ON z.name = db.timezone
        WHERE ch.channel = ANY({{}}::text[])
          AND coalesce({_address("ch.channel", "db")}, '') <> ''
        ON CONFLICT (idempotency_key) DO NOTHING
        RETURNING channel, template
    )
    SELECT channel, template, count(*) AS n FROM inserted GROUP BY channel, template
"""

_ESCALATE_SQL: Final = f"""
    WITH params AS (SELECT {{}}::date AS today, {{}}::timestamptz AS now),
    judicial AS (
        SELECT account, min(offset_days) AS offset_days,
               jsonb_agg(invoice ORDER BY due_date, invoice) AS invoice_ids,
               sum(open - disputed)::bigint AS amount, min(currency) AS currency
        FROM dunning_due WHERE stage = '{rules.JUDICIAL}' GROUP BY account
    ),
    escalated AS (
        UPDATE account a SET legal_escalated_at = (SELECT now FROM params),
                             stage = '{rules.JUDICIAL}'
        FROM judicial j
        WHERE a.id = j.account AND a.legal_escalated_at IS NULL AND a.stage <> 'closed'
        RETURNING a.id, a.debtor, a.assignee, j.offset_days, j.invoice_ids, j.amount,
                  j.currency
    ),
    tasks AS (
        INSERT INTO task (account, kind, title, due_on, status, assignee, data, dedupe_key,
                          created_at)
        SELECT e.id, '{LEGAL_TASK}', 'Derivar a cobranza judicial: ' || d.name, {_TODAY},
               'open', e.assignee,
               jsonb_build_object('invoice_ids', e.invoice_ids, 'amount', e.amount,
                                  'currency', e.currency, 'days_past_due', e.offset_days,
                                  'as_of', {_TODAY}),
               'legal:' || e.id, (SELECT now FROM params)
        FROM escalated e JOIN debtor d ON d.id = e.debtor
        ON CONFLICT (dedupe_key) DO NOTHING
        RETURNING id
    ),
    logged AS (
        INSERT INTO interaction (account, debtor, kind, channel, direction, summary, data,
                                 staff, occurred_at)
        SELECT e.id, e.debtor, 'legal_escalation', 'system', '',
               'Cuenta derivada a cobranza judicial (' || e.offset_days || ' días de atraso).',
               jsonb_build_object('invoice_ids', e.invoice_ids, 'amount', e.amount,
                                  'currency', e.currency, 'as_of', {_TODAY}),
               NULL, (SELECT now FROM params)
        FROM escalated e
        RETURNING id
    )
    SELECT (SELECT count(*) FROM escalated) AS escalated, (SELECT count(*) FROM tasks) AS tasks
"""

_STAGES_SQL: Final = f"""
    WITH params AS (SELECT {{}}::date AS today, {{}}::timestamptz AS now),
    reached AS (
        SELECT d.account, a.stage AS old_stage,
               (array_agg(d.stage ORDER BY {_rank("d.stage")} DESC))[1] AS stage
        FROM dunning_due d JOIN account a ON a.id = d.account
        GROUP BY d.account, a.stage
    ),
    changed AS (
        UPDATE account a SET stage = r.stage
        FROM reached r
        WHERE a.id = r.account AND a.stage <> 'closed'
          AND {_rank("r.stage")} > {_rank("a.stage")}
        RETURNING a.id, a.debtor, r.old_stage, r.stage
    ),
    logged AS (
        INSERT INTO interaction (account, debtor, kind, channel, direction, summary, data,
                                 staff, occurred_at)
        SELECT c.id, c.debtor, 'stage_changed', 'system', '',
               'Etapa de cobranza: ' || c.old_stage || ' → ' || c.stage || '.',
               jsonb_build_object('from', c.old_stage, 'to', c.stage, 'as_of', {_TODAY}),
               NULL, (SELECT now FROM params)
        FROM changed c
        RETURNING id
    )
    SELECT count(*) AS n FROM logged
"""


# ---------------------------------------------------------------------------- personal reminders


_REMINDER_TARGETS_SQL: Final = f"""
    SELECT a.id AS account, a.debtor, a.currency, d.name AS debtor_name, d.language,
           d.timezone, d.email, d.phone, d.whatsapp, d.preferred_channel, c.id AS creditor_id,
           c.name AS creditor, coalesce(pe.window_start, ps.window_start, {{}}::time) AS start
    FROM account a JOIN debtor d ON d.id = a.debtor JOIN creditor c ON c.id = a.creditor
    LEFT JOIN dunning_policy pe ON pe.creditor = a.creditor AND pe.segment = a.segment
         AND pe.active
    LEFT JOIN dunning_policy ps ON ps.creditor = a.creditor
         AND ps.segment = '{rules.DEFAULT_SEGMENT}' AND ps.active
    WHERE a.id = ANY({{}}::int[]) AND a.stage <> 'closed'
"""


@dataclass(frozen=True, slots=True)
class _Reminder:
    account: int
    template: str
    key: str
    context: dict[str, Any]


async def _queue_reminders(
    reminders: Sequence[_Reminder], *, as_of: dt.date, now: dt.datetime
) -> Counter[tuple[str, str]]:
    """Queue personal reminders (one channel each) for accounts no other pause holds."""
    queued: Counter[tuple[str, str]] = Counter()
    if not reminders:
        return queued
    account_ids = sorted({r.account for r in reminders})
    held = await pauses.paused_items(account_ids, today=as_of)
    targets = {
        int(t["account"]): t
        for t in await DunningPolicy.raw(
            _REMINDER_TARGETS_SQL, rules.DEFAULT_WINDOW.start, account_ids
        )
    }
    for reminder in reminders:
        target = targets.get(reminder.account)
        pause = held.get(reminder.account)
        if target is None or (pause and pause.blocks(reminder.template, ())):
            continue
        addresses = {
            "email": target["email"] or "",
            "sms": target["phone"] or "",
            "whatsapp": target["whatsapp"] or "",
        }
        channel = rules.reminder_channel(target["preferred_channel"], addresses)
        if channel is None:
            continue
        context = {
            "creditor": target["creditor"],
            "creditor_id": int(target["creditor_id"]),
            "debtor_name": target["debtor_name"],
            "currency": target["currency"],
            "as_of": as_of.isoformat(),
            **reminder.context,
        }
        rows = await DunningPolicy.raw(
            """INSERT INTO notification (debtor, account, channel, template, language,
                   to_address, subject, body_text, body_html, idempotency_key, context,
                   invoice_ids, stage, step_offset, status, blocked_reason, provider_id,
                   attempts, last_error, send_after, created_at)
               VALUES ({}, {}, {}, {}, {}, {}, '', '', '', {}, {}::jsonb, '[]'::jsonb, '',
                       NULL, 'queued', '', '', 0, '', {}, {})
               ON CONFLICT (idempotency_key) DO NOTHING
               RETURNING id""",
            int(target["debtor"]),
            reminder.account,
            channel,
            reminder.template,
            target["language"],
            addresses[channel],
            f"{reminder.key}:{channel}",
            json.dumps(context),
            rules.window_start_at(as_of, target["start"], str(target["timezone"])),
            now,
        )
        if rows:
            queued[(channel, reminder.template)] += 1
    return queued


async def _installment_reminders(*, as_of: dt.date, now: dt.datetime) -> Counter[tuple[str, str]]:
    day = as_of + dt.timedelta(days=rules.INSTALLMENT_REMINDER_DAYS)
    upcoming: list[UpcomingInstallment] = await upcoming_installments(start=day, end=day)
    reminders = [
        _Reminder(
            account=u.account_id,
            template=rules.INSTALLMENT_TEMPLATE,
            key=f"installment:{u.installment_id}",
            context={
                "plan_id": u.plan_id,
                "installment_id": u.installment_id,
                "number": u.number,
                "due_date": u.due_date.isoformat(),
                "amount": u.amount,
                "total": u.amount,
            },
        )
        for u in upcoming
    ]
    return await _queue_reminders(reminders, as_of=as_of, now=now)


async def _promise_reminders(*, as_of: dt.date, now: dt.datetime) -> Counter[tuple[str, str]]:
    day = as_of + dt.timedelta(days=rules.PROMISE_REMINDER_DAYS)
    rows = await DunningPolicy.raw(
        """SELECT id, account, amount, promised_date FROM promise_to_pay
           WHERE status = 'open' AND promised_date = {} ORDER BY id""",
        day,
    )
    reminders = [
        _Reminder(
            account=int(r["account"]),
            template=rules.PROMISE_TEMPLATE,
            key=f"promise:{r['id']}:reminder",
            context={
                "promise_id": int(r["id"]),
                "amount": int(r["amount"]),
                "total": int(r["amount"]),
                "promised_date": r["promised_date"].isoformat(),
            },
        )
        for r in rows
    ]
    return await _queue_reminders(reminders, as_of=as_of, now=now)


# ---------------------------------------------------------------------------- the run


async def run_dunning(*, as_of: dt.date, now: dt.datetime) -> DunningRun:
    """Decide `as_of`'s dunning for every creditor (see the module docstring). Idempotent:
    running the same day again queues, escalates and changes nothing more."""
    created = await _ensure_defaults(None)
    async with DB.transaction():
        await DunningPolicy.raw(_due_sql(), as_of)
        await DunningPolicy.raw("ANALYZE dunning_due")
        await DunningPolicy.raw(_UNPAUSE_ACCOUNTS_SQL, as_of)
        await DunningPolicy.raw(_UNPAUSE_INVOICES_SQL, as_of)
        decided_rows = await DunningPolicy.raw("SELECT count(*) AS n FROM dunning_due")
        message_rows = await DunningPolicy.raw(_MESSAGES_SQL, as_of, now, list(rules.CHANNELS))
        escalation = await DunningPolicy.raw(_ESCALATE_SQL, as_of, now)
        stages = await DunningPolicy.raw(_STAGES_SQL, as_of, now)
    # Outside the transaction: the plan reads run concurrently (one connection each), and
    # every reminder is its own idempotent insert.
    installments = await _installment_reminders(as_of=as_of, now=now)
    promised = await _promise_reminders(as_of=as_of, now=now)
    queued: Counter[tuple[str, str]] = Counter()
    for r in message_rows:
        queued[(str(r["channel"]), str(r["template"]))] += int(r["n"])
    return DunningRun(
        as_of=as_of,
        decided=int(decided_rows[0]["n"]),
        queued=dict(queued + installments + promised),
        escalated=int(escalation[0]["escalated"]),
        stage_changes=int(stages[0]["n"]),
        installment_reminders=sum(installments.values()),
        promise_reminders=sum(promised.values()),
        policies_created=len(created),
    )


# ---------------------------------------------------------------------------- one whole day


@dataclass(frozen=True, slots=True)
class DayRun:
    """Everything `run_day` did, in the order it did it."""

    as_of: dt.date
    plans: Mapping[str, int]
    promises: Mapping[str, int]
    accrual: AccrualRun
    segmentation: SegmentationRun
    dunning: DunningRun

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "plans": dict(self.plans),
            "promises": dict(self.promises),
            "accrual": self.accrual.as_dict(),
            "segmentation": self.segmentation.as_dict(),
            "dunning": self.dunning.as_dict(),
        }

    def summary_lines(self) -> list[str]:
        """What the day did, for `saldo dunning run` to print."""
        accrued, segmented, decided = self.accrual, self.segmentation, self.dunning
        lines = [
            f"dunning run for {self.as_of.isoformat()}",
            f"commitments: {self.plans.get('checked', 0)} active plans checked "
            f"({self.plans.get('missed', 0)} installments missed, "
            f"{self.plans.get('broken', 0)} plans broken, "
            f"{self.plans.get('completed', 0)} completed); "
            f"promises: {self.promises.get('kept', 0)} kept, "
            f"{self.promises.get('broken', 0)} broken",
            f"interest: {accrued.interest_entries} entries{_amounts(accrued.interest)}",
            f"fees: {accrued.fee_entries} entries{_amounts(accrued.fees)}",
            f"segmentation: {segmented.changed} accounts changed"
            + (
                " ("
                + ", ".join(f"{name} {n}" for name, n in sorted(segmented.segments.items()))
                + ")"
                if segmented.segments
                else ""
            ),
            f"decided: {decided.decided} invoice steps; queued: {decided.messages} messages",
        ]
        lines += [
            f"  {channel} {template}: {n}"
            for (channel, template), n in sorted(decided.queued.items())
        ]
        lines += [
            f"escalated to legal collection: {decided.escalated} accounts",
            f"stage changes: {decided.stage_changes}",
        ]
        return lines


def _amounts(by_currency: Mapping[str, int]) -> str:
    if not by_currency:
        return ""
    return (
        " ("
        + ", ".join(
            f"{currency} {money.to_decimal(amount, currency)}"
            for currency, amount in sorted(by_currency.items())
        )
        + ")"
    )


async def run_day(*, as_of: dt.date, now: dt.datetime) -> DayRun:
    """A whole day of collections work, as the worker's nightly crons do it, in their order:
    commitments (missed installments, broken plans, kept and broken promises), interest and
    fees, segmentation, then the dunning run. Every part is idempotent; `saldo dunning run`
    calls this."""
    plans = await plan_progress.check_plans(today=as_of, now=now)
    kept_or_broken = await promises.check_promises(today=as_of, now=now)
    accrued = await accrual.accrue(as_of=as_of, now=now)
    segmented = await segmentation.segment_accounts(as_of=as_of)
    decided = await run_dunning(as_of=as_of, now=now)
    return DayRun(
        as_of=as_of,
        plans=plans.as_dict(),
        promises=kept_or_broken.as_dict(),
        accrual=accrued,
        segmentation=segmented,
        dunning=decided,
    )
