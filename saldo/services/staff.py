"""Staff accounts: creation (CLI), invitations, deactivation, TOTP reset, the home overview.

Invitations: an admin invites an email with a role. The user is created without a password
(nobody can sign in as them yet) and the admin is shown, once, a set-password link valid for
INVITE_TTL. Only the link token's SHA-256 is kept, in Redis, with that TTL; opening the link
and choosing a password consumes it (GETDEL, so it works once). The user then signs in and,
like every new user, enrolls TOTP before anything else. The admin passes the link on by a
channel they trust; Saldo does not mail it.

Every change here writes an audit event in the same transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from saldo.auth.passwords import check_strength, hash_password
from saldo.db import DB
from saldo.errors import NotFound, SaldoError, ValidationFailed
from saldo.services.audit import Actor, record
from saldo.tables import Role, StaffUser

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
ROLES: tuple[str, ...] = tuple(role.value for role in Role)
INVITE_TTL = dt.timedelta(hours=72)
CLI_ACTOR = Actor(staff_id=None, label="cli")


class StaffFormError(ValidationFailed, ValueError):
    """A field of a staff form is wrong; `reason` says how (templates word it).

    Also a ValueError, which is what `saldo staff create` reports.
    """

    def __init__(self, reason: str, field: str, message: str) -> None:
        super().__init__(message, field=field)
        self.reason = reason


class InvitationInvalid(SaldoError):
    status_code = 410
    title = "Invitation no longer valid"

    def __init__(self) -> None:
        super().__init__("the invitation link is not valid any more")


def _clean_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 254 or not EMAIL.match(email):
        raise StaffFormError("email_invalid", "email", f"{email!r} is not an email address")
    return email


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise StaffFormError("role_invalid", "role", f"role must be one of {', '.join(ROLES)}")
    return role


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- the CLI ------------------------------------------------------------------------------------


async def create_staff(
    email: str,
    role: str,
    password: str,
    name: str = "",
    *,
    actor: Actor = CLI_ACTOR,
    now: dt.datetime | None = None,
) -> StaffUser:
    """A staff user with a password; TOTP enrollment happens at the first sign-in.

    Raises ValueError (ValidationFailed) with a message for the command line.
    """
    email = _clean_email(email)
    _check_role(role)
    check_strength(password)
    now = now or _now()
    async with DB.transaction():
        rows = await StaffUser.raw(
            """
            INSERT INTO staff_user (email, role, name, password_hash, created_at)
            VALUES ({}, {}, {}, {}, {})
            ON CONFLICT (email) DO NOTHING
            RETURNING id
            """,
            email,
            role,
            name.strip()[:200],
            hash_password(password),
            now,
        )
        if not rows:
            raise StaffFormError("email_taken", "email", f"a staff user {email} already exists")
        staff_id = int(rows[0]["id"])
        await record(
            actor,
            "staff.created",
            now=now,
            object_type="staff_user",
            object_id=staff_id,
            after={"email": email, "role": role, "name": name.strip()[:200]},
        )
    staff = await StaffUser.objects().get(StaffUser.id == staff_id)
    assert staff is not None
    return staff


# --- the users page -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StaffSummary:
    id: int
    email: str
    name: str
    role: str
    active: bool
    enrolled: bool
    invited: bool  # no password chosen yet
    locked_until: dt.datetime | None
    last_login_at: dt.datetime | None
    created_at: dt.datetime
    recovery_codes_left: int


_SUMMARY = """
    SELECT id, email, name, role, active, totp_confirmed_at IS NOT NULL AS enrolled,
           password_hash = '' AS invited, locked_until, last_login_at, created_at,
           jsonb_array_length(recovery_codes) AS recovery_codes_left
    FROM staff_user
"""


def _summary(row: dict[str, Any]) -> StaffSummary:
    return StaffSummary(
        id=int(row["id"]),
        email=str(row["email"]),
        name=str(row["name"] or ""),
        role=str(row["role"]),
        active=bool(row["active"]),
        enrolled=bool(row["enrolled"]),
        invited=bool(row["invited"]),
        locked_until=row["locked_until"],
        last_login_at=row["last_login_at"],
        created_at=row["created_at"],
        recovery_codes_left=int(row["recovery_codes_left"]),
    )


async def list_staff() -> list[StaffSummary]:
    """Everyone, active first, then by email."""
    rows = await StaffUser.raw(f"{_SUMMARY} ORDER BY active DESC, email")
    return [_summary(r) for r in rows]


async def get_staff(staff_id: int) -> StaffSummary:
    rows = await StaffUser.raw(f"{_SUMMARY} WHERE id = {{}}", staff_id)
    if not rows:
        raise NotFound("no such staff user")
    return _summary(rows[0])


# --- invitations --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invitation:
    staff_id: int
    email: str
    token: str  # goes into the set-password link; never stored
    expires_at: dt.datetime


def _invite_key(key_prefix: str, token: str) -> str:
    digest = hashlib.sha256(token.encode()).hexdigest()
    return f"{key_prefix}staff-invite:{digest}"


async def invite_staff(
    email: str,
    role: str,
    name: str,
    *,
    actor: Actor,
    now: dt.datetime,
    redis: Redis,
    key_prefix: str,
) -> Invitation:
    """Create a user without a password and a one-time set-password link for them."""
    email = _clean_email(email)
    _check_role(role)
    name = name.strip()[:200]
    token = secrets.token_urlsafe(32)
    key = _invite_key(key_prefix, token)
    await redis.set(key, email, ex=int(INVITE_TTL.total_seconds()))
    try:
        async with DB.transaction():
            rows = await StaffUser.raw(
                """
                INSERT INTO staff_user (email, role, name, password_hash, created_at)
                VALUES ({}, {}, {}, '', {})
                ON CONFLICT (email) DO NOTHING
                RETURNING id
                """,
                email,
                role,
                name,
                now,
            )
            if not rows:
                raise StaffFormError("email_taken", "email", f"{email} already has an account")
            staff_id = int(rows[0]["id"])
            await record(
                actor,
                "staff.invited",
                now=now,
                object_type="staff_user",
                object_id=staff_id,
                after={"email": email, "role": role, "name": name},
            )
    except BaseException:
        await redis.delete(key)
        raise
    return Invitation(staff_id=staff_id, email=email, token=token, expires_at=now + INVITE_TTL)


async def peek_invitation(token: str, *, redis: Redis, key_prefix: str) -> str:
    """The invited email, if the link can still be used (reads only)."""
    if not token or len(token) > 100:
        raise InvitationInvalid()
    raw = await redis.get(_invite_key(key_prefix, token))
    if raw is None:
        raise InvitationInvalid()
    email = raw.decode() if isinstance(raw, bytes) else str(raw)
    if not await StaffUser.exists().where(
        (StaffUser.email == email) & StaffUser.active.eq(True) & (StaffUser.password_hash == "")
    ):
        raise InvitationInvalid()
    return email


async def accept_invitation(
    token: str,
    password: str,
    confirmation: str,
    *,
    ip: str,
    now: dt.datetime,
    redis: Redis,
    key_prefix: str,
) -> str:
    """Set the invited user's password (once); returns their email."""
    await peek_invitation(token, redis=redis, key_prefix=key_prefix)
    try:
        check_strength(password)
    except ValueError as exc:
        raise StaffFormError("password_short", "password", str(exc)) from exc
    if len(password) > 1024:
        raise StaffFormError("password_long", "password", "the password is too long")
    if password != confirmation:
        raise StaffFormError("password_mismatch", "confirmation", "the passwords differ")
    raw = await redis.getdel(_invite_key(key_prefix, token))
    if raw is None:
        raise InvitationInvalid()
    email = raw.decode() if isinstance(raw, bytes) else str(raw)
    async with DB.transaction():
        rows = await StaffUser.raw(
            """
            UPDATE staff_user SET password_hash = {}
            WHERE email = {} AND active AND password_hash = ''
            RETURNING id
            """,
            hash_password(password),
            email,
        )
        if not rows:
            raise InvitationInvalid()
        await record(
            Actor(staff_id=int(rows[0]["id"]), label=email, ip=ip),
            "staff.password_set",
            now=now,
            object_type="staff_user",
            object_id=int(rows[0]["id"]),
            after={"via": "invitation"},
        )
    return email


# --- deactivate, reactivate, reset TOTP ---------------------------------------------------------


async def deactivate_staff(staff_id: int, *, actor: Actor, now: dt.datetime) -> StaffSummary:
    """Nobody can sign in as a deactivated user, and their open sessions stop working."""
    if staff_id == actor.staff_id:
        raise StaffFormError("self", "staff", "you cannot deactivate yourself")
    return await _set_active(staff_id, False, actor=actor, now=now)


async def reactivate_staff(staff_id: int, *, actor: Actor, now: dt.datetime) -> StaffSummary:
    return await _set_active(staff_id, True, actor=actor, now=now)


async def _set_active(
    staff_id: int, active: bool, *, actor: Actor, now: dt.datetime
) -> StaffSummary:
    async with DB.transaction():
        rows = await StaffUser.raw(
            "UPDATE staff_user SET active = {} WHERE id = {} AND active <> {} RETURNING id",
            active,
            staff_id,
            active,
        )
        if rows:
            await record(
                actor,
                "staff.reactivated" if active else "staff.deactivated",
                now=now,
                object_type="staff_user",
                object_id=staff_id,
                before={"active": not active},
                after={"active": active},
            )
    return await get_staff(staff_id)  # NotFound for an unknown id; no event for a no-op


async def reset_totp(staff_id: int, *, actor: Actor, now: dt.datetime) -> StaffSummary:
    """Forget the user's TOTP secret and recovery codes: they enroll again at the next sign-in,
    and sessions made with the old enrollment stop working."""
    async with DB.transaction():
        rows = await StaffUser.raw(
            """
            WITH old AS (
              SELECT id, totp_confirmed_at IS NOT NULL AS enrolled,
                     jsonb_array_length(recovery_codes) AS codes
              FROM staff_user WHERE id = {} FOR UPDATE
            )
            UPDATE staff_user s SET totp_secret_enc = NULL, totp_confirmed_at = NULL,
                   recovery_codes = '[]'::jsonb
            FROM old WHERE s.id = old.id
            RETURNING old.enrolled, old.codes
            """,
            staff_id,
        )
        if not rows:
            raise NotFound("no such staff user")
        await record(
            actor,
            "staff.totp_reset",
            now=now,
            object_type="staff_user",
            object_id=staff_id,
            before={"enrolled": bool(rows[0]["enrolled"]), "recovery_codes": rows[0]["codes"]},
            after={"enrolled": False, "recovery_codes": 0},
        )
    return await get_staff(staff_id)


# --- the home overview --------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskItem:
    id: int
    kind: str
    title: str
    account_id: int | None
    debtor_name: str
    due_on: dt.date | None
    overdue: bool


@dataclass(frozen=True)
class Overview:
    tasks: list[TaskItem]  # the user's open tasks, soonest due first (up to `limit`)
    my_open: int
    counts: list[tuple[str, int]]  # open tasks per kind, the whole team
    total_open: int


async def overview(staff_id: int, *, today: dt.date, limit: int = 20) -> Overview:
    rows = await StaffUser.raw(
        """
        SELECT t.id, t.kind, t.title, t.account AS account_id, t.due_on,
               COALESCE(d.name, '') AS debtor_name
        FROM task t
        LEFT JOIN account a ON a.id = t.account
        LEFT JOIN debtor d ON d.id = a.debtor
        WHERE t.assignee = {} AND t.status = 'open'
        ORDER BY t.due_on ASC NULLS LAST, t.id
        LIMIT {}
        """,
        staff_id,
        limit,
    )
    mine = await StaffUser.raw(
        "SELECT count(*) AS n FROM task WHERE assignee = {} AND status = 'open'", staff_id
    )
    counts = await StaffUser.raw(
        """
        SELECT kind, count(*) AS n FROM task WHERE status = 'open'
        GROUP BY kind ORDER BY count(*) DESC, kind
        """
    )
    return Overview(
        tasks=[
            TaskItem(
                id=int(r["id"]),
                kind=str(r["kind"]),
                title=str(r["title"]),
                account_id=int(r["account_id"]) if r["account_id"] is not None else None,
                debtor_name=str(r["debtor_name"]),
                due_on=r["due_on"],
                overdue=r["due_on"] is not None and r["due_on"] < today,
            )
            for r in rows
        ],
        my_open=int(mine[0]["n"]),
        counts=[(str(r["kind"]), int(r["n"])) for r in counts],
        total_open=sum(int(r["n"]) for r in counts),
    )
