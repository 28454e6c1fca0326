"""One-click unsubscribe: a signed link in every message opts its debtor out of its channel.

`POST /unsubscribe/{token}` (RFC 8058: mail clients post `List-Unsubscribe=One-Click` to the
List-Unsubscribe URL without anyone signing in) records a `ContactPreference` opt-out for
the token's debtor and channel, keeping the quiet hours they had, plus an `Interaction`
(`preference_changed`, source `unsubscribe_link`) for the timeline. Doing it again changes
nothing. The outbox then blocks that channel (`opted_out`) from the next message on; the
debtor can opt back in from the preferences page.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Final

from saldo.db import DB
from saldo.errors import NotFound
from saldo.notify.unsubscribe import read_token
from saldo.services.preferences import INTERACTION_KIND
from saldo.tables import ContactPreference, Debtor, Interaction

__all__ = ["SOURCE", "Unsubscription", "unsubscribe", "unsubscription"]

SOURCE: Final = "unsubscribe_link"
_CHANNEL_NAMES: Final = {"email": "correo", "sms": "SMS", "whatsapp": "WhatsApp"}


@dataclass(frozen=True)
class Unsubscription:
    """What the unsubscribe pages show."""

    debtor_id: int
    creditor: str
    channel: str
    language: str
    opted_out: bool  # already (or now) opted out


async def _state(key: bytes, token: str, *, lock: bool) -> tuple[Unsubscription, dict[str, object]]:
    found = read_token(key, token)
    if found is None:
        raise NotFound("this unsubscribe link is not valid")
    rows = await Debtor.raw(
        f"""SELECT d.id, d.language, c.name AS creditor,
                   (SELECT a.id FROM account a WHERE a.debtor = d.id ORDER BY a.id LIMIT 1)
                       AS account_id
            FROM debtor d JOIN creditor c ON c.id = d.creditor
            WHERE d.id = {{}}{" FOR UPDATE OF d" if lock else ""}""",
        found.debtor_id,
    )
    if not rows:
        raise NotFound("this unsubscribe link is not valid")
    latest = await ContactPreference.raw(
        """SELECT opted_in, quiet_start, quiet_end FROM contact_preference
           WHERE debtor = {} AND channel = {} ORDER BY changed_at DESC, id DESC LIMIT 1""",
        found.debtor_id,
        found.channel,
    )
    current = latest[0] if latest else {"opted_in": True, "quiet_start": None, "quiet_end": None}
    row = rows[0]
    view = Unsubscription(
        debtor_id=found.debtor_id,
        creditor=str(row["creditor"]),
        channel=found.channel,
        language=str(row["language"] or "es"),
        opted_out=not bool(current["opted_in"]),
    )
    return view, {**current, "account_id": row["account_id"]}


async def unsubscription(key: bytes, token: str) -> Unsubscription:
    """What a token would unsubscribe (NotFound for a token that is not genuine)."""
    view, _ = await _state(key, token, lock=False)
    return view


async def unsubscribe(key: bytes, token: str, *, now: dt.datetime) -> Unsubscription:
    """Opt the token's debtor out of its channel (once; NotFound for a bad token)."""
    async with DB.transaction():
        view, current = await _state(key, token, lock=True)
        if view.opted_out:
            return view
        await ContactPreference.insert(
            ContactPreference(
                debtor=view.debtor_id,
                channel=view.channel,
                opted_in=False,
                quiet_start=current["quiet_start"],
                quiet_end=current["quiet_end"],
                source=SOURCE,
                changed_at=now,
            )
        )
        await Interaction.insert(
            Interaction(
                account=current["account_id"],
                debtor=view.debtor_id,
                kind=INTERACTION_KIND,
                channel=view.channel,
                direction="inbound",
                summary=(
                    f"Baja de {_CHANNEL_NAMES[view.channel]} con el enlace del mensaje ({SOURCE})"
                ),
                data={
                    "source": SOURCE,
                    "changes": {f"opted_in_{view.channel}": {"from": True, "to": False}},
                },
                occurred_at=now,
            )
        )
    return Unsubscription(view.debtor_id, view.creditor, view.channel, view.language, True)
