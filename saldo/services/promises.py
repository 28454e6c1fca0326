"""Promises to pay: a date and an amount, from the debtor (portal) or an agent (back office).

A promise pauses reminders on its account until its date (`promises_in_force`, read by the
dunning run). An account holds at most one open promise: `make_promise` locks the account row
(`FOR UPDATE`) in its transaction, so two submissions at once cannot both get in. A promise
needs an amount above zero and at most the account's balance, a date from today to
`PROMISE_MAX_DAYS` ahead, and no active payment plan on the account (the plan's installments
are the promises then; a plan that becomes active cancels an open promise).

Status: open → kept | broken | cancelled. `check_promises` (nightly) decides:

- kept: the payments received since the promise was made (`payment.received_at`, through the
  ledger entries' allocations; net of reversals) and up to the promised date + the plan
  policy's grace days (in the debtor's time zone) add up to the promised amount — as soon as
  they do, even before the date;
- broken: the date + grace days have passed without that: a `Task` (kind "broken_promise",
  dedupe "promise:<id>:broken") for the account's assignee and an `Interaction`.

`promise_kept_rate` counts kept and broken promises for the KPIs.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from saldo import money
from saldo.db import DB
from saldo.errors import NotFound, ValidationFailed
from saldo.i18n import gettext
from saldo.services.audit import record
from saldo.services.checkout import parse_money
from saldo.services.plan_policy import policies_for
from saldo.services.plan_records import insert_task, interaction, staff_actor
from saldo.services.statement import Formats, display_locale, local_today, resolve_language
from saldo.tables import PromiseToPay

__all__ = [
    "PROMISE_MAX_DAYS",
    "InvalidPromise",
    "PromiseCheck",
    "PromiseForm",
    "PromiseRate",
    "PromiseRefused",
    "Staff",
    "check_promises",
    "make_promise",
    "promise_kept_rate",
    "promises_in_force",
    "submit_promise",
]

#: A promise may name a date at most this many days away.
PROMISE_MAX_DAYS: Final = 30
BROKEN_TASK: Final = "broken_promise"
_MAX_ID: Final = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Staff:
    """An agent recording a promise from the back office (no debtor scoping)."""

    id: int
    ip: str = ""


@dataclass(frozen=True, slots=True)
class PromiseForm:
    """The portal's promise form as typed."""

    account: str = ""
    amount: str = ""
    date: str = ""

    @classmethod
    def from_mapping(cls, form: Mapping[str, Any]) -> PromiseForm:
        def text(name: str) -> str:
            value = form.get(name, "")
            return str(value).strip()[:100] if isinstance(value, str) else ""

        return cls(account=text("account"), amount=text("amount"), date=text("date"))


class PromiseRefused(ValidationFailed):
    """A promise that cannot be made; `field` says which value is wrong."""


class InvalidPromise(ValidationFailed):
    """The portal form has errors: one message per field, and the form as typed."""

    def __init__(self, form: PromiseForm, errors: Mapping[str, str]) -> None:
        first = next(iter(errors))
        super().__init__(errors[first], field=first)
        self.form = form
        self.errors = dict(errors)


def _ids(debtor_ids: Sequence[int]) -> list[int]:
    return sorted({int(i) for i in debtor_ids if 0 < int(i) <= _MAX_ID})


_ACCOUNT: Final = """
    SELECT a.id, a.currency, a.assignee, a.debtor AS debtor_id, d.name AS debtor_name,
           d.language, d.country, d.timezone
    FROM account a JOIN debtor d ON d.id = a.debtor
"""


async def _locked_account(by: Sequence[int] | Staff, account_id: int) -> dict[str, Any]:
    if not 0 < account_id <= _MAX_ID:
        raise NotFound("No encontramos esa cuenta.")
    if isinstance(by, Staff):
        rows = await PromiseToPay.raw(f"{_ACCOUNT} WHERE a.id = {{}} FOR UPDATE OF a", account_id)
    else:
        rows = await PromiseToPay.raw(
            f"{_ACCOUNT} WHERE a.id = {{}} AND a.debtor = ANY({{}}::int[]) FOR UPDATE OF a",
            account_id,
            _ids(by),
        )
    if not rows:
        raise NotFound("No encontramos esa cuenta.")
    return dict(rows[0])


async def make_promise(
    by: Sequence[int] | Staff,
    account_id: int,
    amount: int,
    promised_date: dt.date,
    *,
    now: dt.datetime,
    source: str | None = None,
    language: str | None = None,
) -> int:
    """Record a promise; returns its id.

    `by` is the session's debtor ids (portal: another debtor's account is `NotFound`) or a
    `Staff` agent. `source` defaults to "portal" or "staff". Raises `PromiseRefused` naming the
    field when the promise breaks a rule (see the module docstring).
    """
    actor = await staff_actor(by.id, by.ip) if isinstance(by, Staff) else None
    origin = source or ("staff" if actor else "portal")
    async with DB.transaction():
        account = await _locked_account(by, account_id)
        lang = resolve_language(language, account["language"])
        fmt = Formats(account["currency"], display_locale(lang, account["country"]))
        today = local_today(now, account["timezone"])
        balance_rows = await PromiseToPay.raw(
            "SELECT coalesce(sum(amount), 0)::bigint AS balance FROM ledger_entry "
            "WHERE account = {}",
            account_id,
        )
        balance = int(balance_rows[0]["balance"])
        open_rows = await PromiseToPay.raw(
            "SELECT promised_date FROM promise_to_pay WHERE account = {} AND status = 'open'",
            account_id,
        )
        if open_rows:
            raise PromiseRefused(
                gettext(
                    lang, "Ya hay una promesa de pago abierta en esta cuenta, para el {date}."
                ).format(date=fmt.date(open_rows[0]["promised_date"])),
                field="account",
            )
        if await PromiseToPay.raw(
            "SELECT 1 FROM payment_plan WHERE account = {} AND status = 'active'", account_id
        ):
            raise PromiseRefused(
                gettext(
                    lang, "Esta cuenta tiene un plan de pagos activo: las cuotas son su compromiso."
                ),
                field="account",
            )
        if balance <= 0:
            raise PromiseRefused(
                gettext(lang, "Esta cuenta no tiene saldo pendiente."), field="account"
            )
        if amount <= 0:
            raise PromiseRefused(
                gettext(lang, "El importe debe ser mayor que cero."), field="amount"
            )
        if amount > balance:
            raise PromiseRefused(
                gettext(lang, "El importe no puede superar el saldo de la cuenta ({amount}).")
                .format(amount=fmt.money(balance)),
                field="amount",
            )  # fmt: skip
        last = today + dt.timedelta(days=PROMISE_MAX_DAYS)
        if not today <= promised_date <= last:
            raise PromiseRefused(
                gettext(lang, "Elija una fecha entre hoy y el {date}.").format(date=fmt.date(last)),
                field="date",
            )
        rows = await PromiseToPay.raw(
            """INSERT INTO promise_to_pay (account, amount, promised_date, status, source,
                                           created_by, created_at)
               VALUES ({}, {}, {}, 'open', {}, {}, {}) RETURNING id""",
            account_id,
            amount,
            promised_date,
            origin,
            actor.staff_id if actor else None,
            now,
        )
        promise_id = int(rows[0]["id"])
        text = f"{account['currency']} {money.to_decimal(amount, account['currency'])}"
        await interaction(
            account_id=account_id,
            debtor_id=int(account["debtor_id"]),
            kind="promise_made",
            summary=f"Promesa de pago: {text} el {promised_date.isoformat()}.",
            data={
                "promise": promise_id,
                "amount": amount,
                "date": promised_date.isoformat(),
                "source": origin,
            },
            now=now,
            staff_id=actor.staff_id if actor else None,
            channel="backoffice" if actor else "portal",
        )
        if actor:
            await record(
                actor,
                "promise.created",
                now=now,
                object_type="promise_to_pay",
                object_id=promise_id,
                after={
                    "account": account_id,
                    "amount": amount,
                    "date": promised_date.isoformat(),
                },
            )
    return promise_id


def _parse_date(text: str) -> dt.date | None:
    match = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text) or re.fullmatch(
        r"(\d{1,2})/(\d{1,2})/(\d{4})", text
    )
    if match is None:
        return None
    a, b, c = (int(g) for g in match.groups())
    year, month, day = (a, b, c) if "-" in text else (c, b, a)
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


async def submit_promise(
    debtor_ids: Sequence[int],
    form: Mapping[str, Any] | PromiseForm,
    *,
    now: dt.datetime,
    language: str | None = None,
) -> int:
    """The portal's promise form: parse it and make the promise, or `InvalidPromise` with a
    message per field (nothing is stored then)."""
    typed = form if isinstance(form, PromiseForm) else PromiseForm.from_mapping(form)
    account_id = int(typed.account) if re.fullmatch(r"[0-9]{1,10}", typed.account) else 0
    rows = await PromiseToPay.raw(
        """SELECT a.currency, d.language FROM account a JOIN debtor d ON d.id = a.debtor
           WHERE a.id = {} AND a.debtor = ANY({}::int[])""",
        account_id if 0 < account_id <= _MAX_ID else 0,
        _ids(debtor_ids),
    )
    if not rows:
        raise NotFound(gettext(resolve_language(language, None), "No encontramos esa cuenta."))
    lang = resolve_language(language, str(rows[0]["language"]))
    errors: dict[str, str] = {}
    amount = 0
    try:
        amount = parse_money(typed.amount, str(rows[0]["currency"]), language=lang)
    except ValidationFailed as exc:
        errors["amount"] = str(exc)
    promised = _parse_date(typed.date)
    if promised is None:
        errors["date"] = gettext(lang, "Elija la fecha en que va a pagar.")
    if errors or promised is None:
        raise InvalidPromise(typed, errors)
    try:
        return await make_promise(
            debtor_ids, account_id, amount, promised, now=now, source="portal", language=lang
        )
    except PromiseRefused as refused:
        raise InvalidPromise(typed, {refused.field or "account": str(refused)}) from None


# ---------------------------------------------------------------------------- the nightly check


@dataclass(frozen=True, slots=True)
class PromiseCheck:
    checked: int
    kept: int
    broken: int

    def as_dict(self) -> dict[str, int]:
        return {"checked": self.checked, "kept": self.kept, "broken": self.broken}


async def _payments_since(promise_ids: list[int]) -> dict[int, list[tuple[dt.datetime, int]]]:
    """Per promise: (received at, amount received) of every payment entry on its account made
    since the promise, net of its reversals."""
    if not promise_ids:
        return {}
    rows = await PromiseToPay.raw(
        """SELECT pr.id AS promise, coalesce(received.at, e.created_at) AS at,
                  -(e.amount + coalesce(rev.amount, 0))::bigint AS amount
           FROM promise_to_pay pr
           JOIN ledger_entry e ON e.account = pr.account AND e.kind = 'payment'
           LEFT JOIN LATERAL (
               SELECT pm.received_at AS at FROM payment_allocation pa
               JOIN payment pm ON pm.id = pa.payment
               WHERE pa.ledger_entry = e.id LIMIT 1
           ) received ON true
           LEFT JOIN LATERAL (
               SELECT sum(r.amount) AS amount FROM ledger_entry r WHERE r.reverses = e.id
           ) rev ON true
           WHERE pr.id = ANY({}::int[]) AND coalesce(received.at, e.created_at) >= pr.created_at
        """,
        promise_ids,
    )
    found: dict[int, list[tuple[dt.datetime, int]]] = {}
    for r in rows:
        found.setdefault(int(r["promise"]), []).append((r["at"], int(r["amount"])))
    return found


async def check_promises(*, today: dt.date, now: dt.datetime) -> PromiseCheck:
    """Mark open promises kept or broken (see the module docstring)."""
    promises = await PromiseToPay.raw(
        """SELECT pr.id, pr.account, pr.amount, pr.promised_date, a.debtor, a.assignee,
                  d.name AS debtor_name, d.timezone
           FROM promise_to_pay pr JOIN account a ON a.id = pr.account
           JOIN debtor d ON d.id = a.debtor
           WHERE pr.status = 'open' ORDER BY pr.id"""
    )
    policies = await policies_for(sorted({int(p["account"]) for p in promises}))
    payments = await _payments_since([int(p["id"]) for p in promises])
    kept = broken = 0
    for promise in promises:
        promise_id = int(promise["id"])
        deadline = promise["promised_date"] + dt.timedelta(
            days=policies[int(promise["account"])].grace_days
        )
        paid = sum(
            amount
            for at, amount in payments.get(promise_id, [])
            if local_today(at, promise["timezone"]) <= deadline
        )
        if paid >= int(promise["amount"]):
            kept += await _resolve(promise, "kept", paid, today, now)
        elif today > deadline:
            broken += await _resolve(promise, "broken", paid, today, now)
    return PromiseCheck(len(promises), kept, broken)


async def _resolve(
    promise: Mapping[str, Any], status: str, paid: int, today: dt.date, now: dt.datetime
) -> int:
    promise_id, account_id = int(promise["id"]), int(promise["account"])
    async with DB.transaction():
        updated = await PromiseToPay.raw(
            """UPDATE promise_to_pay SET status = {}, resolved_at = {}
               WHERE id = {} AND status = 'open' RETURNING id""",
            status,
            now,
            promise_id,
        )
        if not updated:
            return 0
        date = promise["promised_date"].isoformat()
        if status == "broken":
            await insert_task(
                dedupe_key=f"promise:{promise_id}:broken",
                kind=BROKEN_TASK,
                title=f"{promise['debtor_name']} no cumplió la promesa de pago del {date}",
                account_id=account_id,
                assignee=promise["assignee"],
                due_on=today,
                now=now,
                data={"promise": promise_id, "amount": int(promise["amount"]), "paid": paid},
            )
        await interaction(
            account_id=account_id,
            debtor_id=int(promise["debtor"]),
            kind=f"promise_{status}",
            summary=(
                f"Promesa de pago del {date} cumplida."
                if status == "kept"
                else f"Promesa de pago del {date} incumplida (pagó {paid} de {promise['amount']})."
            ),
            data={"promise": promise_id, "amount": int(promise["amount"]), "paid": paid},
            now=now,
            channel="system",
            direction="",
        )
    return 1


# ---------------------------------------------------------------------------- for other parts


async def promises_in_force(account_ids: Sequence[int], today: dt.date) -> dict[int, dt.date]:
    """Accounts whose reminders an open promise pauses, with the promised date (pause until)."""
    if not account_ids:
        return {}
    rows = await PromiseToPay.raw(
        """SELECT account, max(promised_date) AS until FROM promise_to_pay
           WHERE account = ANY({}::int[]) AND status = 'open' AND promised_date >= {}
           GROUP BY account""",
        list(account_ids),
        today,
    )
    return {int(r["account"]): r["until"] for r in rows}


@dataclass(frozen=True, slots=True)
class PromiseRate:
    kept: int
    broken: int
    by_source: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def resolved(self) -> int:
        return self.kept + self.broken

    @property
    def rate(self) -> Decimal | None:
        """Kept ÷ (kept + broken), or None when no promise was resolved."""
        return Decimal(self.kept) / Decimal(self.resolved) if self.resolved else None


async def promise_kept_rate(
    *,
    creditor_id: int | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> PromiseRate:
    """Promises kept and broken (resolved between `start` and `end`, UTC days, inclusive),
    for one creditor or all; cancelled promises do not count."""
    rows = await PromiseToPay.raw(
        """SELECT pr.source, pr.status, count(*) AS n
           FROM promise_to_pay pr JOIN account a ON a.id = pr.account
           WHERE pr.status IN ('kept', 'broken')
             AND ({}::int IS NULL OR a.creditor = {}::int)
             AND ({}::date IS NULL OR (pr.resolved_at AT TIME ZONE 'UTC')::date >= {}::date)
             AND ({}::date IS NULL OR (pr.resolved_at AT TIME ZONE 'UTC')::date <= {}::date)
           GROUP BY pr.source, pr.status""",
        creditor_id,
        creditor_id,
        start,
        start,
        end,
        end,
    )
    by_source: dict[str, list[int]] = {}
    for r in rows:
        counts = by_source.setdefault(str(r["source"]), [0, 0])
        counts[0 if r["status"] == "kept" else 1] += int(r["n"])
    return PromiseRate(
        kept=sum(c[0] for c in by_source.values()),
        broken=sum(c[1] for c in by_source.values()),
        by_source={s: (c[0], c[1]) for s, c in by_source.items()},
    )
