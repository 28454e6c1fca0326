"""What plans and promises leave behind: timeline entries, tasks for the team, staff audit events.

Every step of a plan or a promise writes one `Interaction` on the account's 360° timeline (the
summary is for staff, in Spanish; `data` carries the ids and amounts). Work for the team is a
`Task` inserted with ON CONFLICT (dedupe_key) DO NOTHING, so a nightly check that runs twice,
or two workers at once, never makes two tasks for the same thing; the caller learns whether it
was the one that inserted it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from saldo.errors import NotFound
from saldo.services.audit import Actor
from saldo.tables import Interaction

__all__ = ["close_task", "insert_task", "interaction", "staff_actor"]


async def interaction(
    *,
    account_id: int,
    debtor_id: int,
    kind: str,
    summary: str,
    now: dt.datetime,
    data: dict[str, Any] | None = None,
    staff_id: int | None = None,
    channel: str = "portal",
    direction: str = "in",
) -> None:
    await Interaction.raw(
        """INSERT INTO interaction (account, debtor, kind, channel, direction, summary, data,
                                    staff, occurred_at)
           VALUES ({}, {}, {}, {}, {}, {}, {}::jsonb, {}, {})""",
        account_id,
        debtor_id,
        kind,
        channel,
        direction,
        summary,
        json.dumps(data or {}),
        staff_id,
        now,
    )


async def insert_task(
    *,
    dedupe_key: str,
    kind: str,
    title: str,
    account_id: int,
    assignee: int | None,
    due_on: dt.date | None,
    now: dt.datetime,
    data: dict[str, Any] | None = None,
) -> int | None:
    """The new task's id, or None when a task with this `dedupe_key` already exists."""
    rows = await Interaction.raw(
        """INSERT INTO task (account, kind, title, due_on, status, assignee, data, dedupe_key,
                             created_at)
           VALUES ({}, {}, {}, {}, 'open', {}, {}::jsonb, {}, {})
           ON CONFLICT (dedupe_key) DO NOTHING
           RETURNING id""",
        account_id,
        kind,
        title,
        due_on,
        assignee,
        json.dumps(data or {}),
        dedupe_key,
        now,
    )
    return int(rows[0]["id"]) if rows else None


async def close_task(dedupe_key: str, *, now: dt.datetime) -> None:
    await Interaction.raw(
        "UPDATE task SET status = 'done', done_at = {} WHERE dedupe_key = {} AND status = 'open'",
        now,
        dedupe_key,
    )


async def staff_actor(staff_id: int, ip: str = "") -> Actor:
    """The audit actor for an active staff user (`NotFound` for anyone else)."""
    rows = await Interaction.raw("SELECT email FROM staff_user WHERE id = {} AND active", staff_id)
    if not rows:
        raise NotFound(f"staff user {staff_id} does not exist")
    return Actor(staff_id=staff_id, label=str(rows[0]["email"]), ip=ip)
