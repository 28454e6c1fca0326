"""How and when a debtor wants to be contacted, as chosen in the portal.

The choice belongs to the person, so a save applies to every signed-in debtor row (one per
creditor). Language, preferred channel and preferred day to pay are fields of `Debtor`;
opt-outs and quiet hours are `ContactPreference` rows, one per change and channel (the newest
row per debtor and channel wins). Every save that changes something also writes one
`Interaction` (kind `preference_changed`) per debtor for the back-office timeline, with the
before/after values, the source and the time. Nothing is written when nothing changed.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from saldo.db import DB
from saldo.errors import SaldoError
from saldo.i18n import SUPPORTED_LANGUAGES, gettext
from saldo.services.statement import Formats, display_locale, local_today, resolve_language
from saldo.tables import Channel, ContactPreference, Debtor, Interaction

__all__ = [
    "CHANNELS",
    "ChannelState",
    "InvalidPreferences",
    "PreferencesForm",
    "PreferencesInput",
    "PreferencesView",
    "load_preferences",
    "parse_preferences",
    "save_preferences",
    "submit_preferences",
]

CHANNELS: Final = (Channel.email, Channel.sms, Channel.whatsapp)
PAY_DAYS: Final = range(1, 32)
_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)(?::00)?")
_MAX_ID: Final = 2**31 - 1
INTERACTION_KIND: Final = "preference_changed"


@dataclass(frozen=True, slots=True)
class PreferencesInput:
    """A valid choice, ready to store."""

    language: str
    preferred_channel: str | None
    opted_in: Mapping[str, bool]
    quiet_start: dt.time | None
    quiet_end: dt.time | None
    pay_day: int | None


@dataclass(frozen=True, slots=True)
class PreferencesForm:
    """What the form shows: the raw values (as typed, on an error) and a message per field."""

    language: str
    preferred_channel: str
    opted_in: Mapping[str, bool]
    quiet_start: str
    quiet_end: str
    pay_day: str
    errors: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChannelState:
    channel: str
    label: str
    address: str  # where messages go ("" when none is on file)


@dataclass(frozen=True, slots=True)
class PreferencesView:
    debtor_name: str
    language: str  # the interface language
    locale: str
    timezone: str
    channels: tuple[ChannelState, ...]
    form: PreferencesForm
    last_change: str | None  # date of the last change, formatted


class InvalidPreferences(SaldoError):
    """The form has errors; `form` carries the values and a message per field."""

    status_code = 422
    title = "Invalid input"

    def __init__(self, form: PreferencesForm) -> None:
        super().__init__("; ".join(form.errors.values()))
        self.form = form


def channel_label(language: str, channel: str) -> str:
    return {
        "email": gettext(language, "Correo electrónico"),
        "sms": gettext(language, "SMS"),
        "whatsapp": gettext(language, "WhatsApp"),
    }.get(channel, channel)


# ---------------------------------------------------------------------------- parsing


def _time(value: str) -> dt.time | None:
    match = _TIME.fullmatch(value.strip())
    if match is None:
        return None
    return dt.time(int(match.group(1)), int(match.group(2)))


def parse_preferences(
    form: Mapping[str, str], *, language: str, addresses: Mapping[str, str]
) -> PreferencesInput:
    """Check the submitted form; raise `InvalidPreferences` with a message per bad field.

    Fields: `language` (es|en), `preferred_channel` ("" or a channel), `channel_<name>` (present
    when the debtor accepts messages by that channel), `quiet_start` / `quiet_end` (HH:MM, both or
    neither, different), `pay_day` ("" or 1–31). The preferred channel must be accepted and have an
    address on file (`addresses`).
    """
    lang = resolve_language(language, None)
    raw = {
        "language": str(form.get("language", "")).strip(),
        "preferred_channel": str(form.get("preferred_channel", "")).strip(),
        "quiet_start": str(form.get("quiet_start", "")).strip(),
        "quiet_end": str(form.get("quiet_end", "")).strip(),
        "pay_day": str(form.get("pay_day", "")).strip(),
    }
    opted_in = {str(c): bool(str(form.get(f"channel_{c}", "")).strip()) for c in CHANNELS}
    errors: dict[str, str] = {}

    if raw["language"] not in SUPPORTED_LANGUAGES:
        errors["language"] = gettext(lang, "Elija español o inglés.")
    preferred = raw["preferred_channel"] or None
    if preferred is not None:
        if preferred not in opted_in:
            errors["preferred_channel"] = gettext(lang, "Elija un canal de la lista.")
        elif not opted_in[preferred]:
            errors["preferred_channel"] = gettext(
                lang, "No puede preferir un canal por el que no quiere recibir mensajes."
            )
        elif not addresses.get(preferred):
            errors["preferred_channel"] = gettext(
                lang, "No tenemos datos de contacto para ese canal."
            )
    start = _time(raw["quiet_start"]) if raw["quiet_start"] else None
    end = _time(raw["quiet_end"]) if raw["quiet_end"] else None
    if raw["quiet_start"] and start is None:
        errors["quiet_start"] = gettext(lang, "Ingrese una hora válida, por ejemplo 21:00.")
    if raw["quiet_end"] and end is None:
        errors["quiet_end"] = gettext(lang, "Ingrese una hora válida, por ejemplo 08:00.")
    if "quiet_start" not in errors and "quiet_end" not in errors:
        if bool(raw["quiet_start"]) != bool(raw["quiet_end"]):
            missing = "quiet_end" if raw["quiet_start"] else "quiet_start"
            errors[missing] = gettext(lang, "Indique el inicio y el fin del horario, o ninguno.")
        elif start is not None and start == end:
            errors["quiet_end"] = gettext(lang, "El fin debe ser distinto del inicio.")
    pay_day: int | None = None
    if raw["pay_day"]:
        if raw["pay_day"].isdigit() and int(raw["pay_day"]) in PAY_DAYS:
            pay_day = int(raw["pay_day"])
        else:
            errors["pay_day"] = gettext(lang, "Elija un día entre 1 y 31.")
    if errors:
        raise InvalidPreferences(
            PreferencesForm(
                language=raw["language"],
                preferred_channel=raw["preferred_channel"],
                opted_in=opted_in,
                quiet_start=raw["quiet_start"],
                quiet_end=raw["quiet_end"],
                pay_day=raw["pay_day"],
                errors=errors,
            )
        )
    return PreferencesInput(
        language=raw["language"],
        preferred_channel=preferred,
        opted_in=opted_in,
        quiet_start=start,
        quiet_end=end,
        pay_day=pay_day,
    )


# ---------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class _Current:
    """One debtor row's preferences as stored."""

    debtor_id: int
    account_id: int | None
    language: str
    preferred_channel: str | None
    pay_day: int | None
    opted_in: dict[str, bool]
    quiet_start: dt.time | None
    quiet_end: dt.time | None


def _ids(debtor_ids: Sequence[int]) -> list[int]:
    return sorted({int(i) for i in debtor_ids if 0 < int(i) <= _MAX_ID})


async def _current(debtor_ids: list[int]) -> tuple[list[dict[str, Any]], list[_Current]]:
    if not debtor_ids:
        return [], []
    debtors = await Debtor.raw(
        """SELECT d.id, d.name, d.email, d.phone, d.whatsapp, d.language, d.country, d.timezone,
                  d.preferred_channel, d.preferred_pay_day, d.updated_at,
                  (SELECT a.id FROM account a WHERE a.debtor = d.id ORDER BY a.id LIMIT 1)
                      AS account_id
           FROM debtor d WHERE d.id = ANY({}::int[]) ORDER BY d.id""",
        debtor_ids,
    )
    rows = await ContactPreference.raw(
        """SELECT DISTINCT ON (debtor, channel) debtor, channel, opted_in, quiet_start,
                  quiet_end, changed_at
           FROM contact_preference WHERE debtor = ANY({}::int[])
           ORDER BY debtor, channel, changed_at DESC, id DESC""",
        debtor_ids,
    )
    latest: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        latest.setdefault(row["debtor"], []).append(row)
    current = []
    for d in debtors:
        mine = latest.get(d["id"], [])
        newest = max(mine, key=lambda r: r["changed_at"], default=None)
        opted = {str(c): True for c in CHANNELS}
        opted.update({r["channel"]: bool(r["opted_in"]) for r in mine if r["channel"] in opted})
        current.append(
            _Current(
                debtor_id=d["id"],
                account_id=d["account_id"],
                language=d["language"],
                preferred_channel=d["preferred_channel"],
                pay_day=d["preferred_pay_day"],
                opted_in=opted,
                quiet_start=newest["quiet_start"] if newest else None,
                quiet_end=newest["quiet_end"] if newest else None,
            )
        )
    return debtors, current


def _addresses(debtors: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    found = {"email": "", "sms": "", "whatsapp": ""}
    for d in debtors:
        found["email"] = found["email"] or d["email"]
        found["sms"] = found["sms"] or d["phone"]
        found["whatsapp"] = found["whatsapp"] or d["whatsapp"]
    return found


async def contact_addresses(debtor_ids: Sequence[int]) -> dict[str, str]:
    """Where each channel reaches the signed-in person ("" when nothing is on file)."""
    debtors, _ = await _current(_ids(debtor_ids))
    return _addresses(debtors)


async def _last_change(debtor_ids: list[int]) -> dt.datetime | None:
    if not debtor_ids:
        return None
    rows = await Interaction.raw(
        """SELECT max(occurred_at) AS last FROM interaction
           WHERE debtor = ANY({}::int[]) AND kind = {}""",
        debtor_ids,
        INTERACTION_KIND,
    )
    value = rows[0]["last"] if rows else None
    return value if isinstance(value, dt.datetime) else None


def _hhmm(value: dt.time | None) -> str:
    return value.strftime("%H:%M") if value else ""


async def load_preferences(
    debtor_ids: Sequence[int], *, language: str | None = None, form: PreferencesForm | None = None
) -> PreferencesView:
    """The preferences page: current values (or `form`, when re-showing a rejected submit)."""
    debtors, current = await _current(_ids(debtor_ids))
    primary = current[0] if current else None
    stored_language = primary.language if primary else None
    lang = resolve_language(language, stored_language)
    country = debtors[0]["country"] if debtors else ""
    locale = display_locale(lang, country)
    addresses = _addresses(debtors)
    if form is None:
        form = PreferencesForm(
            language=resolve_language(None, stored_language),
            preferred_channel=(primary.preferred_channel or "") if primary else "",
            opted_in=dict(primary.opted_in) if primary else {str(c): True for c in CHANNELS},
            quiet_start=_hhmm(primary.quiet_start) if primary else "",
            quiet_end=_hhmm(primary.quiet_end) if primary else "",
            pay_day=str(primary.pay_day) if primary and primary.pay_day else "",
        )
    last = await _last_change([c.debtor_id for c in current])
    timezone = debtors[0]["timezone"] if debtors else "UTC"
    return PreferencesView(
        debtor_name=debtors[0]["name"] if debtors else "",
        language=lang,
        locale=locale,
        timezone=timezone,
        channels=tuple(
            ChannelState(str(c), channel_label(lang, str(c)), addresses[str(c)]) for c in CHANNELS
        ),
        form=form,
        last_change=Formats("USD", locale).date(local_today(last, timezone)) if last else None,
    )


# ---------------------------------------------------------------------------- writing


def _changes(before: _Current, choice: PreferencesInput) -> dict[str, dict[str, Any]]:
    changes: dict[str, dict[str, Any]] = {}

    def note(name: str, old: Any, new: Any) -> None:
        if old != new:
            changes[name] = {"from": old, "to": new}

    note("language", before.language, choice.language)
    note("preferred_channel", before.preferred_channel, choice.preferred_channel)
    note("preferred_pay_day", before.pay_day, choice.pay_day)
    for channel in CHANNELS:
        c = str(channel)
        note(f"opted_in_{c}", before.opted_in.get(c, True), bool(choice.opted_in.get(c)))
    note("quiet_start", _hhmm(before.quiet_start) or None, _hhmm(choice.quiet_start) or None)
    note("quiet_end", _hhmm(before.quiet_end) or None, _hhmm(choice.quiet_end) or None)
    return changes


_FIELD_NAMES: Final = {
    "language": "idioma",
    "preferred_channel": "canal preferido",
    "preferred_pay_day": "día de pago",
    "opted_in_email": "correo",
    "opted_in_sms": "SMS",
    "opted_in_whatsapp": "WhatsApp",
    "quiet_start": "horario sin contacto",
    "quiet_end": "horario sin contacto",
}


def _summary(changes: Mapping[str, Any], source: str) -> str:
    names = list(dict.fromkeys(_FIELD_NAMES.get(k, k) for k in changes))
    return f"Preferencias de contacto actualizadas ({source}): {', '.join(names)}"


async def save_preferences(
    debtor_ids: Sequence[int],
    choice: PreferencesInput,
    *,
    now: dt.datetime,
    source: str = "portal",
) -> dict[int, dict[str, dict[str, Any]]]:
    """Store `choice` for every signed-in debtor row; returns the changes per debtor id.

    In one transaction: changed `Debtor` fields (and `updated_at`), one `ContactPreference` row per
    channel whose opt-in or quiet hours changed, and one `Interaction` per debtor that changed.
    """
    ids = _ids(debtor_ids)
    result: dict[int, dict[str, dict[str, Any]]] = {}
    async with DB.transaction():
        _, current = await _current(ids)
        for before in current:
            changes = _changes(before, choice)
            if not changes:
                continue
            result[before.debtor_id] = changes
            await _write(before, choice, changes, now, source)
    return result


async def _write(
    before: _Current,
    choice: PreferencesInput,
    changes: Mapping[str, Any],
    now: dt.datetime,
    source: str,
) -> None:
    if {"language", "preferred_channel", "preferred_pay_day"} & changes.keys():
        await Debtor.update(
            {
                Debtor.language: choice.language,
                Debtor.preferred_channel: choice.preferred_channel,
                Debtor.preferred_pay_day: choice.pay_day,
                Debtor.updated_at: now,
            }
        ).where(Debtor.id == before.debtor_id)
    quiet_changed = "quiet_start" in changes or "quiet_end" in changes
    rows = [
        ContactPreference(
            debtor=before.debtor_id,
            channel=str(channel),
            opted_in=bool(choice.opted_in.get(str(channel))),
            quiet_start=choice.quiet_start,
            quiet_end=choice.quiet_end,
            source=source,
            changed_at=now,
        )
        for channel in CHANNELS
        if quiet_changed or f"opted_in_{channel}" in changes
    ]
    if rows:
        await ContactPreference.insert(*rows)
    await Interaction.insert(
        Interaction(
            account=before.account_id,
            debtor=before.debtor_id,
            kind=INTERACTION_KIND,
            channel="portal",
            direction="inbound",
            summary=_summary(changes, source),
            data={"source": source, "changes": dict(changes)},
            occurred_at=now,
        )
    )


async def submit_preferences(
    debtor_ids: Sequence[int],
    form: Mapping[str, str],
    *,
    language: str | None,
    now: dt.datetime,
    source: str = "portal",
) -> PreferencesInput:
    """Check a submitted form and store it; raises `InvalidPreferences` (nothing stored)."""
    debtors, current = await _current(_ids(debtor_ids))
    lang = resolve_language(language, current[0].language if current else None)
    choice = parse_preferences(form, language=lang, addresses=_addresses(debtors))
    await save_preferences(debtor_ids, choice, now=now, source=source)
    return choice
