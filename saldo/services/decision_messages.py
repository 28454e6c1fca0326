"""Telling the debtor what was decided: one outbox message per plan or dispute decision.

What is queued, in the transaction of the decision itself (so a decision that rolls back
leaves no message, and one that commits always has its message):

- a plan becomes active — approved by staff, approved at once within the policy, or an offer
  the debtor accepted: `plan_approved` about the plan, key `plan_approved:<plan id>`;
- staff counter-offer a proposal: `plan_countered` about the offer (its terms and note), key
  `plan_countered:<proposal id>:<offer id>`;
- staff reject a proposal: `plan_rejected` (with the reason), key `plan_rejected:<plan id>`;
- staff resolve a dispute (accepted, partially accepted, rejected): `dispute_update` (status,
  amount credited, explanation), key `dispute_resolved:<dispute id>`;
- staff write in a dispute's thread: `dispute_update`, key `dispute_message:<message id>`.

`saldo.services.outbox.queue` inserts ON CONFLICT (idempotency_key) DO NOTHING, so producing
a message again queues nothing. The row names the plan or dispute, never amounts: the outbox
renders the terms, the reason, the status and the amount credited when it sends.

One channel per message, by the rule of the personal reminders
(`saldo.rules.dunning.reminder_channel`): the debtor's preferred channel when it has an
address, else the first of email, SMS, WhatsApp that has one — among the channels the debtor
has not opted out of, so an outcome still reaches someone who only turned off one channel.
When every channel with an address is opted out, the rule picks among all of them and the
outbox blocks the row as `opted_out` (staff see why). No address at all: nothing is queued.

These are not collection messages (`notify_render.COLLECTION`): the guardrails send them at
once whatever pauses the account (open dispute, active plan, promise, staff pause), outside
the send window and without counting them toward the frequency cap; only the address and
opt-outs apply.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from saldo.rules.dunning import reminder_channel
from saldo.tables import Notification

__all__ = [
    "dispute_message",
    "dispute_resolved",
    "pick_channel",
    "plan_approved",
    "plan_countered",
    "plan_rejected",
]

DISPUTE_TEMPLATE: Final = "dispute_update"

_DEBTOR_SQL: Final = """
    SELECT d.id, d.email, d.phone, d.whatsapp, d.preferred_channel,
           array(
               SELECT p.channel::text FROM (
                   SELECT DISTINCT ON (cp.channel) cp.channel, cp.opted_in
                   FROM contact_preference cp WHERE cp.debtor = d.id
                   ORDER BY cp.channel, cp.changed_at DESC, cp.id DESC
               ) p WHERE NOT p.opted_in
           ) AS opted_out
    FROM debtor d WHERE d.id = {}
"""


def pick_channel(
    preferred: str | None, addresses: dict[str, str], opted_out: frozenset[str]
) -> str | None:
    """The one channel for a decision message (see the module's rule)."""
    reachable = {c: a for c, a in addresses.items() if a and c not in opted_out}
    return reminder_channel(preferred, reachable) or reminder_channel(preferred, addresses)


async def _queue(
    *,
    debtor_id: int,
    account_id: int,
    template: str,
    key: str,
    context: dict[str, Any],
    now: dt.datetime,
) -> int | None:
    # Imported here: the outbox reads pauses, which read disputes, which resolve through this.
    from saldo.services import outbox

    rows = await Notification.raw(_DEBTOR_SQL, debtor_id)
    if not rows:
        return None
    debtor = rows[0]
    addresses = {
        "email": str(debtor["email"] or "").strip(),
        "sms": str(debtor["phone"] or "").strip(),
        "whatsapp": str(debtor["whatsapp"] or "").strip(),
    }
    channel = pick_channel(
        debtor["preferred_channel"], addresses, frozenset(debtor["opted_out"] or ())
    )
    if channel is None:
        return None
    return await outbox.queue(
        debtor_id=debtor_id,
        account_id=account_id,
        channel=channel,
        template=template,
        idempotency_key=key,
        context=context,
        now=now,
    )


async def _plan_parties(plan_id: int) -> tuple[int, int]:
    rows = await Notification.raw(
        """SELECT p.account, a.debtor FROM payment_plan p JOIN account a ON a.id = p.account
           WHERE p.id = {}""",
        plan_id,
    )
    return int(rows[0]["account"]), int(rows[0]["debtor"])


async def _dispute_parties(dispute_id: int) -> tuple[int, int]:
    rows = await Notification.raw(
        """SELECT d.account, a.debtor FROM dispute d JOIN account a ON a.id = d.account
           WHERE d.id = {}""",
        dispute_id,
    )
    return int(rows[0]["account"]), int(rows[0]["debtor"])


async def plan_approved(plan_id: int, *, now: dt.datetime) -> int | None:
    """The plan is active: its terms and the link to it (`plan_approved:<plan id>`)."""
    account_id, debtor_id = await _plan_parties(plan_id)
    return await _queue(
        debtor_id=debtor_id,
        account_id=account_id,
        template="plan_approved",
        key=f"plan_approved:{plan_id}",
        context={"plan_id": plan_id},
        now=now,
    )


async def plan_countered(proposal_id: int, offer_id: int, *, now: dt.datetime) -> int | None:
    """Staff answered a proposal with an offer: the offer's terms and note."""
    account_id, debtor_id = await _plan_parties(offer_id)
    return await _queue(
        debtor_id=debtor_id,
        account_id=account_id,
        template="plan_countered",
        key=f"plan_countered:{proposal_id}:{offer_id}",
        context={"plan_id": offer_id, "proposal_id": proposal_id},
        now=now,
    )


async def plan_rejected(plan_id: int, *, now: dt.datetime) -> int | None:
    """Staff rejected a proposal: the reason and what the debtor may do instead."""
    account_id, debtor_id = await _plan_parties(plan_id)
    return await _queue(
        debtor_id=debtor_id,
        account_id=account_id,
        template="plan_rejected",
        key=f"plan_rejected:{plan_id}",
        context={"plan_id": plan_id},
        now=now,
    )


async def dispute_resolved(dispute_id: int, *, now: dt.datetime) -> int | None:
    """The dispute is closed: its outcome, the amount credited and the explanation."""
    account_id, debtor_id = await _dispute_parties(dispute_id)
    return await _queue(
        debtor_id=debtor_id,
        account_id=account_id,
        template=DISPUTE_TEMPLATE,
        key=f"dispute_resolved:{dispute_id}",
        context={"dispute_id": dispute_id},
        now=now,
    )


async def dispute_message(dispute_id: int, message_id: int, *, now: dt.datetime) -> int | None:
    """Staff wrote in the dispute's thread: there is news, read it in the portal."""
    account_id, debtor_id = await _dispute_parties(dispute_id)
    return await _queue(
        debtor_id=debtor_id,
        account_id=account_id,
        template=DISPUTE_TEMPLATE,
        key=f"dispute_message:{message_id}",
        context={"dispute_id": dispute_id, "message_id": message_id},
        now=now,
    )
