"""What an agent does on an account: record a call, visit or note (with a promise and the next
action), pause or resume collection, change the stage, escalate to legal collection.

Each action is one transaction that locks the account row first, writes what it changes, an
`Interaction` on the account's timeline and an `AuditEvent` (who, what, before/after, ip).

- `record_contact`: kind call | visit | note; a call or visit has an outcome (`OUTCOMES`:
  reached, no_answer, wrong_number, promised, refused, callback). "promised" takes a promise
  (amount and date), made through `saldo.services.promises.make_promise` with its rules (one
  open promise, at most the balance, a date within `PROMISE_MAX_DAYS`); "callback" needs the
  next action date. The next action date (today to a year ahead) and its note replace the
  account's; a contact without one clears a next action that was due (it has just been done)
  and keeps one still ahead. The interaction's `data` holds outcome, note, promise and next
  action (`data.outcome` is what the contact-rate KPI reads).
- `pause` (until a date, today to `MAX_PAUSE_DAYS` ahead, with a reason the dunning run
  shows) / `resume`.
- `change_stage` to preventive, administrative or closed (judicial only through `escalate`);
  leaving judicial clears `legal_escalated_at`, so reminders may start again.
- `escalate`: `legal_escalated_at`, stage judicial, a "legal_escalation" task (dedupe
  "legal:<account>", the dunning run's key, so an account has one) for the assignee.

`submit_*` parse the back office's forms (text as typed) and raise `InvalidAction` with one
message per field and the values as typed; nothing is stored then.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from saldo.db import DB
from saldo.errors import Conflict, NotFound, ValidationFailed
from saldo.i18n import gettext
from saldo.services.audit import Actor, record
from saldo.services.checkout import parse_money
from saldo.services.plan_records import insert_task, staff_actor
from saldo.services.promises import PromiseRefused, Staff, make_promise
from saldo.tables import Account, Stage

__all__ = [
    "CONTACT_KINDS",
    "LEGAL_TASK",
    "MANUAL_STAGES",
    "MAX_NEXT_ACTION_DAYS",
    "MAX_PAUSE_DAYS",
    "OUTCOMES",
    "ActionForm",
    "ContactRecorded",
    "InvalidAction",
    "change_stage",
    "escalate",
    "pause",
    "record_contact",
    "resume",
    "submit_contact",
    "submit_escalation",
    "submit_pause",
    "submit_stage",
]

CONTACT_KINDS: Final = ("call", "visit", "note")
OUTCOMES: Final = ("reached", "no_answer", "wrong_number", "promised", "refused", "callback")
#: Stages staff set by hand; judicial is reached by `escalate`.
MANUAL_STAGES: Final = (Stage.preventive.value, Stage.administrative.value, Stage.closed.value)
MAX_PAUSE_DAYS: Final = 180
MAX_NEXT_ACTION_DAYS: Final = 365
MAX_NOTE: Final = 2000
LEGAL_TASK: Final = "legal_escalation"
_CHANNEL: Final = {"call": "phone", "visit": "visit", "note": "backoffice"}
_MAX_ID: Final = 2**31 - 1


@dataclass(frozen=True, slots=True)
class ActionForm:
    """A back-office form as typed (every field a string)."""

    values: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, form: Mapping[str, Any], names: tuple[str, ...]) -> ActionForm:
        def text(name: str) -> str:
            value = form.get(name, "")
            return str(value).strip()[: MAX_NOTE + 1] if isinstance(value, str) else ""

        return cls({name: text(name) for name in names})

    def get(self, name: str) -> str:
        return self.values.get(name, "")


class InvalidAction(ValidationFailed):
    """A form with errors: one message per field, and the form as typed."""

    def __init__(self, form: ActionForm, errors: Mapping[str, str]) -> None:
        first = next(iter(errors))
        super().__init__(errors[first], field=first)
        self.form = form
        self.errors = dict(errors)


@dataclass(frozen=True, slots=True)
class ContactRecorded:
    interaction_id: int
    promise_id: int | None
    next_action_on: dt.date | None


# ---------------------------------------------------------------------------- shared


async def _locked(account_id: int, language: str = "es") -> dict[str, Any]:
    missing = gettext(language, "No encontramos esa cuenta.")
    if not 0 < account_id <= _MAX_ID:
        raise NotFound(missing)
    rows = await Account.raw(
        """SELECT a.id, a.debtor, a.currency, a.stage, a.assignee, a.paused_until,
                  a.pause_reason, a.next_action_on, a.next_action_note, a.legal_escalated_at,
                  d.name AS debtor_name
           FROM account a JOIN debtor d ON d.id = a.debtor
           WHERE a.id = {} FOR UPDATE OF a""",
        account_id,
    )
    if not rows:
        raise NotFound(missing)
    return dict(rows[0])


async def _interaction(
    account: Mapping[str, Any],
    *,
    kind: str,
    summary: str,
    data: Mapping[str, Any],
    actor: Actor,
    now: dt.datetime,
    channel: str = "backoffice",
    direction: str = "",
) -> int:
    rows = await Account.raw(
        """INSERT INTO interaction (account, debtor, kind, channel, direction, summary, data,
                                    staff, occurred_at)
           VALUES ({}, {}, {}, {}, {}, {}, {}::jsonb, {}, {}) RETURNING id""",
        account["id"],
        account["debtor"],
        kind,
        channel,
        direction,
        summary,
        json.dumps(dict(data)),
        actor.staff_id,
        now,
    )
    return int(rows[0]["id"])


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


def _date(text: str) -> dt.date | None:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _check_note(note: str, language: str, *, required: bool, errors: dict[str, str]) -> str:
    note = note.strip()
    if len(note) > MAX_NOTE:
        errors["note"] = gettext(language, "La nota puede tener hasta 2000 caracteres.")
    elif required and not note:
        errors["note"] = gettext(language, "Escriba la nota.")
    return note


# ---------------------------------------------------------------------------- contacts


async def record_contact(
    account_id: int,
    *,
    kind: str,
    outcome: str,
    note: str,
    staff_id: int,
    now: dt.datetime,
    today: dt.date,
    promise: tuple[int, dt.date] | None = None,
    next_action_on: dt.date | None = None,
    ip: str = "",
    language: str = "es",
) -> ContactRecorded:
    """Record a call, visit or note (see the module docstring). `promise` is (amount in minor
    units, date). Raises `ValidationFailed` naming the field, `PromiseRefused` from the
    promise's rules, `NotFound` for no such account."""
    if kind not in CONTACT_KINDS:
        raise ValidationFailed(gettext(language, "Elija llamada, visita o nota."), field="kind")
    if kind == "note":
        outcome = ""
    elif outcome not in OUTCOMES:
        raise ValidationFailed(gettext(language, "Elija el resultado."), field="outcome")
    if outcome == "promised" and promise is None:
        raise ValidationFailed(
            gettext(language, "Escriba el importe y la fecha que prometió."), field="promise_amount"
        )
    if promise is not None and outcome != "promised":
        raise ValidationFailed(
            gettext(language, "Para registrar una promesa, el resultado es «Promete pagar»."),
            field="outcome",
        )
    if outcome == "callback" and next_action_on is None:
        raise ValidationFailed(
            gettext(language, "Elija cuándo volver a llamar."), field="next_action_on"
        )
    last = today + dt.timedelta(days=MAX_NEXT_ACTION_DAYS)
    if next_action_on is not None and not today <= next_action_on <= last:
        raise ValidationFailed(
            gettext(language, "La próxima acción va de hoy a un año."), field="next_action_on"
        )
    if len(note) > MAX_NOTE:
        raise ValidationFailed(
            gettext(language, "La nota puede tener hasta 2000 caracteres."), field="note"
        )
    actor = await staff_actor(staff_id, ip)
    async with DB.transaction():
        account = await _locked(account_id, language)
        promise_id = None
        if promise is not None:
            promise_id = await make_promise(
                Staff(staff_id, ip),
                account_id,
                promise[0],
                promise[1],
                now=now,
                source="staff",
                language=language,
            )
        before = {
            "next_action_on": _iso(account["next_action_on"]),
            "next_action_note": account["next_action_note"],
        }
        if next_action_on is not None:
            after_next, after_note = next_action_on, note[:500]
        elif account["next_action_on"] is not None and account["next_action_on"] <= today:
            after_next, after_note = None, ""  # the due callback has just been made
        else:
            after_next, after_note = account["next_action_on"], account["next_action_note"]
        data = {
            "outcome": outcome,
            "note": note,
            "promise": promise_id,
            "promise_amount": promise[0] if promise else None,
            "promise_date": _iso(promise[1]) if promise else None,
            "next_action_on": _iso(next_action_on),
        }
        interaction_id = await _interaction(
            account,
            kind=kind,
            summary=note,
            data=data,
            actor=actor,
            now=now,
            channel=_CHANNEL[kind],
            direction="" if kind == "note" else "out",
        )
        await Account.raw(
            "UPDATE account SET next_action_on = {}, next_action_note = {} WHERE id = {}",
            after_next,
            after_note or "",
            account_id,
        )
        await record(
            actor,
            "account.contact_recorded",
            now=now,
            object_type="account",
            object_id=account_id,
            before=before,
            after={
                **data,
                "kind": kind,
                "interaction": interaction_id,
                "next_action_on": _iso(after_next),
                "next_action_note": after_note or "",
            },
        )
    return ContactRecorded(interaction_id, promise_id, after_next)


CONTACT_FIELDS: Final = (
    "kind",
    "outcome",
    "note",
    "promise_amount",
    "promise_date",
    "next_action_on",
)


async def submit_contact(
    account_id: int,
    form: Mapping[str, Any] | ActionForm,
    *,
    staff_id: int,
    now: dt.datetime,
    today: dt.date,
    ip: str = "",
    language: str = "es",
) -> ContactRecorded:
    """The "Registrar gestión" form: parse it and record the contact, or `InvalidAction`."""
    typed = form if isinstance(form, ActionForm) else ActionForm.from_mapping(form, CONTACT_FIELDS)
    kind = typed.get("kind") or "call"
    typed = replace(typed, values={**typed.values, "kind": kind})
    errors: dict[str, str] = {}
    if kind not in CONTACT_KINDS:
        errors["kind"] = gettext(language, "Elija llamada, visita o nota.")
    outcome = typed.get("outcome") if kind != "note" else ""
    if kind != "note" and outcome not in OUTCOMES:
        errors["outcome"] = gettext(language, "Elija el resultado.")
    note = _check_note(typed.get("note"), language, required=kind == "note", errors=errors)
    promise: tuple[int, dt.date] | None = None
    amount_text, date_text = typed.get("promise_amount"), typed.get("promise_date")
    if outcome == "promised" or amount_text or date_text:
        if outcome != "promised" and "outcome" not in errors:
            errors["outcome"] = gettext(
                language, "Para registrar una promesa, el resultado es «Promete pagar»."
            )
        currency = await _currency(account_id, language)
        amount = 0
        try:
            amount = parse_money(amount_text, currency, language=language)
        except ValidationFailed as exc:
            errors["promise_amount"] = str(exc)
        promised = _date(date_text)
        if promised is None:
            errors["promise_date"] = gettext(language, "Elija la fecha en que va a pagar.")
        elif amount:
            promise = (amount, promised)
    next_text = typed.get("next_action_on")
    next_on = _date(next_text) if next_text else None
    if next_text and next_on is None:
        errors["next_action_on"] = gettext(language, "Use una fecha como 2026-03-31.")
    elif outcome == "callback" and next_on is None:
        errors["next_action_on"] = gettext(language, "Elija cuándo volver a llamar.")
    if errors:
        raise InvalidAction(typed, errors)
    try:
        return await record_contact(
            account_id,
            kind=kind,
            outcome=outcome,
            note=note,
            staff_id=staff_id,
            now=now,
            today=today,
            promise=promise,
            next_action_on=next_on,
            ip=ip,
            language=language,
        )
    except PromiseRefused as refused:
        name = {"amount": "promise_amount", "date": "promise_date"}.get(
            refused.field or "", "promise_amount"
        )
        raise InvalidAction(typed, {name: str(refused)}) from None
    except NotFound:
        raise
    except ValidationFailed as invalid:
        raise InvalidAction(typed, {invalid.field or "note": str(invalid)}) from None


async def _currency(account_id: int, language: str) -> str:
    rows = await Account.raw(
        "SELECT currency FROM account WHERE id = {}", account_id if 0 < account_id <= _MAX_ID else 0
    )
    if not rows:
        raise NotFound(gettext(language, "No encontramos esa cuenta."))
    return str(rows[0]["currency"])


# ---------------------------------------------------------------------------- pauses


async def pause(
    account_id: int,
    *,
    until: dt.date,
    reason: str,
    staff_id: int,
    now: dt.datetime,
    today: dt.date,
    ip: str = "",
    language: str = "es",
) -> None:
    """Pause reminders on the account through `until` (inclusive), with a reason."""
    reason = reason.strip()
    if not reason:
        raise ValidationFailed(gettext(language, "Escriba el motivo de la pausa."), field="reason")
    if len(reason) > 500:
        raise ValidationFailed(
            gettext(language, "El motivo puede tener hasta 500 caracteres."), field="reason"
        )
    if not today <= until <= today + dt.timedelta(days=MAX_PAUSE_DAYS):
        raise ValidationFailed(
            gettext(language, "La pausa va de hoy a 180 días como máximo."), field="until"
        )
    actor = await staff_actor(staff_id, ip)
    async with DB.transaction():
        account = await _locked(account_id, language)
        await Account.raw(
            "UPDATE account SET paused_until = {}, pause_reason = {} WHERE id = {}",
            until,
            reason,
            account_id,
        )
        await _interaction(
            account,
            kind="paused",
            summary=reason,
            data={"until": until.isoformat(), "reason": reason},
            actor=actor,
            now=now,
        )
        await record(
            actor,
            "account.paused",
            now=now,
            object_type="account",
            object_id=account_id,
            before={
                "paused_until": _iso(account["paused_until"]),
                "pause_reason": account["pause_reason"],
            },
            after={"paused_until": until.isoformat(), "pause_reason": reason},
        )


async def submit_pause(
    account_id: int,
    form: Mapping[str, Any] | ActionForm,
    *,
    staff_id: int,
    now: dt.datetime,
    today: dt.date,
    ip: str = "",
    language: str = "es",
) -> None:
    typed = form if isinstance(form, ActionForm) else ActionForm.from_mapping(
        form, ("until", "reason")
    )  # fmt: skip
    errors: dict[str, str] = {}
    until = _date(typed.get("until"))
    if until is None:
        errors["until"] = gettext(language, "Elija hasta qué fecha pausar la cobranza.")
    reason = typed.get("reason")
    if not reason:
        errors["reason"] = gettext(language, "Escriba el motivo de la pausa.")
    if errors or until is None:
        raise InvalidAction(typed, errors)
    try:
        await pause(
            account_id,
            until=until,
            reason=reason,
            staff_id=staff_id,
            now=now,
            today=today,
            ip=ip,
            language=language,
        )
    except NotFound:
        raise
    except ValidationFailed as invalid:
        raise InvalidAction(typed, {invalid.field or "reason": str(invalid)}) from None


async def resume(
    account_id: int,
    *,
    staff_id: int,
    now: dt.datetime,
    today: dt.date,
    ip: str = "",
    language: str = "es",
) -> None:
    """End a staff pause now (`Conflict` when the account is not paused)."""
    actor = await staff_actor(staff_id, ip)
    async with DB.transaction():
        account = await _locked(account_id, language)
        until = account["paused_until"]
        if until is None or until < today:
            raise Conflict(gettext(language, "La cobranza de esta cuenta no está pausada."))
        await Account.raw(
            "UPDATE account SET paused_until = NULL, pause_reason = '' WHERE id = {}", account_id
        )
        await _interaction(
            account,
            kind="resumed",
            summary="",
            data={"was_until": until.isoformat(), "reason": account["pause_reason"]},
            actor=actor,
            now=now,
        )
        await record(
            actor,
            "account.resumed",
            now=now,
            object_type="account",
            object_id=account_id,
            before={"paused_until": until.isoformat(), "pause_reason": account["pause_reason"]},
            after={"paused_until": None, "pause_reason": ""},
        )


# ---------------------------------------------------------------------------- stage and legal


async def change_stage(
    account_id: int,
    stage: str,
    *,
    note: str,
    staff_id: int,
    now: dt.datetime,
    ip: str = "",
    language: str = "es",
) -> None:
    """Move the account to another stage by hand (see the module docstring)."""
    if stage not in MANUAL_STAGES:
        raise ValidationFailed(
            gettext(language, "Elija preventiva, administrativa o cerrada."), field="stage"
        )
    if len(note) > MAX_NOTE:
        raise ValidationFailed(
            gettext(language, "La nota puede tener hasta 2000 caracteres."), field="note"
        )
    actor = await staff_actor(staff_id, ip)
    async with DB.transaction():
        account = await _locked(account_id, language)
        if account["stage"] == stage:
            raise ValidationFailed(
                gettext(language, "La cuenta ya está en esa etapa."), field="stage"
            )
        leaves_legal = account["legal_escalated_at"] is not None
        await Account.raw(
            """UPDATE account SET stage = {},
                      legal_escalated_at = CASE WHEN {} THEN NULL ELSE legal_escalated_at END
               WHERE id = {}""",
            stage,
            leaves_legal,
            account_id,
        )
        await _interaction(
            account,
            kind="stage_changed",
            summary=note.strip(),
            data={"from": account["stage"], "to": stage, "note": note.strip()},
            actor=actor,
            now=now,
        )
        escalated = account["legal_escalated_at"]
        await record(
            actor,
            "account.stage_changed",
            now=now,
            object_type="account",
            object_id=account_id,
            before={
                "stage": account["stage"],
                "legal_escalated_at": escalated.isoformat() if escalated else None,
            },
            after={"stage": stage, "legal_escalated_at": None, "note": note.strip()},
        )


async def submit_stage(
    account_id: int,
    form: Mapping[str, Any] | ActionForm,
    *,
    staff_id: int,
    now: dt.datetime,
    ip: str = "",
    language: str = "es",
) -> None:
    typed = form if isinstance(form, ActionForm) else ActionForm.from_mapping(
        form, ("stage", "note")
    )  # fmt: skip
    try:
        await change_stage(
            account_id,
            typed.get("stage"),
            note=typed.get("note"),
            staff_id=staff_id,
            now=now,
            ip=ip,
            language=language,
        )
    except NotFound:
        raise
    except ValidationFailed as invalid:
        raise InvalidAction(typed, {invalid.field or "stage": str(invalid)}) from None


async def escalate(
    account_id: int,
    *,
    reason: str,
    staff_id: int,
    now: dt.datetime,
    today: dt.date,
    ip: str = "",
    language: str = "es",
) -> None:
    """Send the account to legal collection (`Conflict` when it already was)."""
    reason = reason.strip()
    if not reason:
        raise ValidationFailed(
            gettext(language, "Escriba por qué se deriva a cobranza judicial."), field="reason"
        )
    if len(reason) > MAX_NOTE:
        raise ValidationFailed(
            gettext(language, "La nota puede tener hasta 2000 caracteres."), field="reason"
        )
    actor = await staff_actor(staff_id, ip)
    async with DB.transaction():
        account = await _locked(account_id, language)
        if account["legal_escalated_at"] is not None:
            raise Conflict(gettext(language, "Esta cuenta ya fue derivada a cobranza judicial."))
        await Account.raw(
            "UPDATE account SET stage = {}, legal_escalated_at = {} WHERE id = {}",
            Stage.judicial.value,
            now,
            account_id,
        )
        await _interaction(
            account,
            kind="legal_escalation",
            summary=reason,
            data={"reason": reason, "from": account["stage"]},
            actor=actor,
            now=now,
        )
        task_id = await insert_task(
            dedupe_key=f"legal:{account_id}",
            kind=LEGAL_TASK,
            title=f"Preparar la demanda de {account['debtor_name']} (legajo en PDF)",
            account_id=account_id,
            assignee=account["assignee"],
            due_on=today,
            now=now,
            data={"reason": reason, "by": staff_id},
        )
        await record(
            actor,
            "account.escalated",
            now=now,
            object_type="account",
            object_id=account_id,
            before={"stage": account["stage"], "legal_escalated_at": None},
            after={
                "stage": Stage.judicial.value,
                "legal_escalated_at": now.isoformat(),
                "reason": reason,
                "task": task_id,
            },
        )


async def submit_escalation(
    account_id: int,
    form: Mapping[str, Any] | ActionForm,
    *,
    staff_id: int,
    now: dt.datetime,
    today: dt.date,
    ip: str = "",
    language: str = "es",
) -> None:
    typed = form if isinstance(form, ActionForm) else ActionForm.from_mapping(form, ("reason",))
    try:
        await escalate(
            account_id,
            reason=typed.get("reason"),
            staff_id=staff_id,
            now=now,
            today=today,
            ip=ip,
            language=language,
        )
    except (NotFound, Conflict):
        raise
    except ValidationFailed as invalid:
        raise InvalidAction(typed, {invalid.field or "reason": str(invalid)}) from None
