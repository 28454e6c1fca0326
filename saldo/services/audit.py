"""The staff audit log: who did what, to which object, before/after, when and from where.

`audit_event` is append-only (a trigger refuses UPDATE and DELETE). `record()` writes one event
and is meant to run inside the transaction of the change it describes, so the log never tells
of a change that was rolled back. `search()` reads it with filters and pages, newest first.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from typing import Any

from saldo.tables import AuditEvent

PER_PAGE = 50
MAX_TEXT = 254


@dataclass(frozen=True)
class Actor:
    """Who acts: a staff user (id and email), or a system label such as `cli`."""

    staff_id: int | None
    label: str
    ip: str = ""


async def record(
    actor: Actor,
    action: str,
    *,
    now: dt.datetime,
    object_type: str = "",
    object_id: str | int = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    await AuditEvent.insert(
        AuditEvent(
            staff=actor.staff_id,
            actor=actor.label[:MAX_TEXT],
            action=action[:80],
            object_type=object_type[:60],
            object_id=str(object_id)[:60],
            before=before or {},
            after=after or {},
            ip=actor.ip[:64],
            created_at=now,
        )
    )


@dataclass(frozen=True)
class AuditFilters:
    actor: str = ""  # part of the actor's email or label
    action: str = ""  # exact action name
    object_type: str = ""
    object_id: str = ""
    date_from: dt.date | None = None  # inclusive, UTC days
    date_to: dt.date | None = None  # inclusive

    @property
    def active(self) -> bool:
        return any(
            (
                self.actor,
                self.action,
                self.object_type,
                self.object_id,
                self.date_from,
                self.date_to,
            )
        )


@dataclass(frozen=True)
class AuditRow:
    id: int
    created_at: dt.datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    before: dict[str, Any]
    after: dict[str, Any]
    ip: str

    @property
    def changes(self) -> list[tuple[str, Any, Any]]:
        """(key, before, after) for every key either side mentions, in a stable order."""
        keys = sorted(set(self.before) | set(self.after))
        return [(k, self.before.get(k), self.after.get(k)) for k in keys]


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    page: int
    pages: int
    total: int
    actions: list[str] = field(default_factory=list)
    object_types: list[str] = field(default_factory=list)


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _where(filters: AuditFilters) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    values: list[Any] = []
    if filters.actor:
        clauses.append("actor ILIKE {} ESCAPE '\\'")
        values.append(f"%{_escape_like(filters.actor[:MAX_TEXT])}%")
    if filters.action:
        clauses.append("action = {}")
        values.append(filters.action[:80])
    if filters.object_type:
        clauses.append("object_type = {}")
        values.append(filters.object_type[:60])
    if filters.object_id:
        clauses.append("object_id = {}")
        values.append(filters.object_id[:60])
    if filters.date_from:
        clauses.append("created_at >= {}")
        values.append(dt.datetime.combine(filters.date_from, dt.time(), tzinfo=dt.UTC))
    if filters.date_to:
        clauses.append("created_at < {}")
        end = filters.date_to + dt.timedelta(days=1)
        values.append(dt.datetime.combine(end, dt.time(), tzinfo=dt.UTC))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), values


def _json(value: Any) -> dict[str, Any]:
    data = json.loads(value) if isinstance(value, str | bytes) else value
    return data if isinstance(data, dict) else {}


async def search(filters: AuditFilters, *, page: int = 1, per_page: int = PER_PAGE) -> AuditPage:
    """One page of events matching `filters`, newest first, with the choices for the filters."""
    where, values = _where(filters)
    counted = await AuditEvent.raw(f"SELECT count(*) AS n FROM audit_event{where}", *values)
    total = int(counted[0]["n"])
    pages = max(1, math.ceil(total / per_page))
    page = min(max(1, page), pages)
    rows = await AuditEvent.raw(
        f"""
        SELECT id, created_at, actor, action, object_type, object_id, before, after, ip
        FROM audit_event{where}
        ORDER BY created_at DESC, id DESC
        LIMIT {{}} OFFSET {{}}
        """,
        *values,
        per_page,
        (page - 1) * per_page,
    )
    actions = await AuditEvent.raw("SELECT DISTINCT action FROM audit_event ORDER BY action")
    types = await AuditEvent.raw(
        "SELECT DISTINCT object_type FROM audit_event WHERE object_type <> '' ORDER BY 1"
    )
    return AuditPage(
        rows=[
            AuditRow(
                id=int(r["id"]),
                created_at=r["created_at"],
                actor=str(r["actor"]),
                action=str(r["action"]),
                object_type=str(r["object_type"]),
                object_id=str(r["object_id"]),
                before=_json(r["before"]),
                after=_json(r["after"]),
                ip=str(r["ip"]),
            )
            for r in rows
        ],
        page=page,
        pages=pages,
        total=total,
        actions=[str(r["action"]) for r in actions],
        object_types=[str(r["object_type"]) for r in types],
    )
