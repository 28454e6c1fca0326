"""Staff sign-in: password, then a TOTP code (or a recovery code); enrollment; re-authentication.

The flow, and what each step promises:

1. `limit_ip()` counts sign-in attempts per client IP (Redis, fixed window).
2. `check_password()` answers the same way (`SignInFailed`) for an unknown email, an inactive
   user, a locked user and a wrong password, and does the same work for each: one argon2
   verification, against a dummy hash when there is no user. Wrong passwords count towards
   the lockout.
3. `verify_second_factor()` accepts a TOTP code once (the step is claimed with a conditional
   UPDATE, so of two concurrent sign-ins with the same code only one wins) or a recovery code
   once (removed from the stored list by the same statement that checks it).
4. A user without a confirmed TOTP enrolls instead: `start_enrollment()` makes a secret that
   lives, encrypted, in the caller's session until `confirm_enrollment()` checks a code made
   with it, stores it and returns ten recovery codes (shown once, stored hashed).
5. `reauthenticate()` asks a signed-in user for a fresh code before sensitive actions.

Lockout: every failed password or code adds one to `failed_attempts`; from LOCKOUT.threshold on
each failure locks the user for base_seconds × 2^(failures − threshold), capped at max_seconds.
A successful sign-in resets both. Every step writes an audit event.

Collaborators are explicit: the TOTP encryption key (`totp.derive_key(SECRET_KEY)`), the Redis
client and key prefix for the IP limit, the client IP and the clock (`now`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from dataclasses import dataclass
from functools import cache
from typing import Any

from redis.asyncio import Redis

from saldo.auth import totp
from saldo.auth.passwords import hash_password, verify_password
from saldo.db import DB
from saldo.errors import SaldoError
from saldo.services.audit import Actor, record
from saldo.tables import StaffUser

log = logging.getLogger("saldo.services.staff_auth")

MAX_PASSWORD_LENGTH = 1024
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Lockout:
    threshold: int = 5
    base_seconds: int = 60
    max_seconds: int = 60 * 60


LOCKOUT = Lockout()


@dataclass(frozen=True)
class IpLimit:
    attempts: int = 30
    window_seconds: int = 15 * 60


IP_LIMIT = IpLimit()


# --- errors -------------------------------------------------------------------------------------


class SignInFailed(SaldoError):
    """Wrong email or password — or an unknown, inactive or locked user: the same answer."""

    status_code = 422
    title = "Sign-in failed"

    def __init__(self) -> None:
        super().__init__("the email or the password is not right")


class WrongCode(SaldoError):
    """The code is wrong, malformed, expired or already used. `locked`: this failure locked
    the user."""

    status_code = 422
    title = "Invalid input"

    def __init__(self, *, locked: bool = False) -> None:
        super().__init__("the code is not valid")
        self.locked = locked


class AccountLocked(SaldoError):
    status_code = 429
    title = "Too many attempts"

    def __init__(self, until: dt.datetime) -> None:
        super().__init__("too many failed attempts; try again later")
        self.until = until


class TooManyRequests(SaldoError):
    status_code = 429
    title = "Too many requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many sign-in attempts from this connection")
        self.retry_after = retry_after


# --- results ------------------------------------------------------------------------------------


def stamp(moment: dt.datetime) -> int:
    """A timestamp as whole microseconds since the epoch (exact, JSON-friendly)."""
    return (moment - _EPOCH) // dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class StaffIdentity:
    """A signed-in staff user as the back office sees it on every request.

    `mfa_stamp` identifies the current TOTP enrollment: a session made under an enrollment that
    was reset no longer matches it.
    """

    id: int
    email: str
    name: str
    role: str
    mfa_stamp: int

    @property
    def display_name(self) -> str:
        return self.name or self.email


@dataclass(frozen=True)
class PasswordAccepted:
    staff_id: int
    enrolled: bool  # False: the next step is TOTP enrollment


@dataclass(frozen=True)
class SignedIn:
    identity: StaffIdentity
    method: str  # "totp" | "recovery_code" | "enrollment"
    recovery_codes_left: int


@dataclass(frozen=True)
class Enrollment:
    pending: str  # the encrypted secret, for the caller's session
    secret: str  # the secret itself, to show for manual entry
    uri: str  # otpauth:// for the QR code
    email: str


# --- helpers ------------------------------------------------------------------------------------


@cache
def _dummy_hash() -> str:
    """A real argon2 hash of nothing anyone knows: unknown emails cost the same verification."""
    return hash_password(totp.generate_secret())


async def _verify(stored: str, password: str) -> bool:
    return await asyncio.to_thread(verify_password, stored, password)


_COLUMNS = """
    id, email, name, role, password_hash, active, totp_secret_enc, totp_confirmed_at,
    totp_last_step, failed_attempts, locked_until, jsonb_array_length(recovery_codes) AS codes_left
"""


async def _row_by_email(email: str) -> dict[str, Any] | None:
    rows = await StaffUser.raw(f"SELECT {_COLUMNS} FROM staff_user WHERE email = {{}}", email)
    return rows[0] if rows else None


async def _row(staff_id: int) -> dict[str, Any] | None:
    rows = await StaffUser.raw(f"SELECT {_COLUMNS} FROM staff_user WHERE id = {{}}", staff_id)
    return rows[0] if rows else None


def _locked(row: dict[str, Any], now: dt.datetime) -> bool:
    until = row["locked_until"]
    return until is not None and until > now


def _identity(row: dict[str, Any]) -> StaffIdentity:
    return StaffIdentity(
        id=int(row["id"]),
        email=str(row["email"]),
        name=str(row["name"] or ""),
        role=str(row["role"]),
        mfa_stamp=stamp(row["totp_confirmed_at"]),
    )


def _actor(row: dict[str, Any] | None, email: str, ip: str) -> Actor:
    if row is None:
        return Actor(staff_id=None, label=email, ip=ip)
    return Actor(staff_id=int(row["id"]), label=str(row["email"]), ip=ip)


async def _count_failure(
    row: dict[str, Any], *, stage: str, reason: str, ip: str, now: dt.datetime, lockout: Lockout
) -> dt.datetime | None:
    """One more failure for a known user (and its audit events); returns the new lock, if any."""
    async with DB.transaction():
        updated = await StaffUser.raw(
            """
            UPDATE staff_user SET
              failed_attempts = failed_attempts + 1,
              locked_until = CASE WHEN failed_attempts + 1 >= {}
                THEN {}::timestamptz + make_interval(secs => LEAST(
                  {}::float8 * power(2, LEAST(failed_attempts + 1 - {}, 20)), {}::float8))
                ELSE locked_until END
            WHERE id = {}
            RETURNING failed_attempts, locked_until
            """,
            lockout.threshold,
            now,
            float(lockout.base_seconds),
            lockout.threshold,
            float(lockout.max_seconds),
            int(row["id"]),
        )
        failures = int(updated[0]["failed_attempts"])
        until = updated[0]["locked_until"]
        actor = _actor(row, "", ip)
        await record(
            actor,
            "staff.login_failed" if stage != "reauth" else "staff.reauth_failed",
            now=now,
            object_type="staff_user",
            object_id=int(row["id"]),
            after={"stage": stage, "reason": reason, "failed_attempts": failures},
        )
        locked_now = failures >= lockout.threshold and until is not None and until > now
        if locked_now:
            await record(
                actor,
                "staff.locked",
                now=now,
                object_type="staff_user",
                object_id=int(row["id"]),
                after={"locked_until": until.isoformat(), "failed_attempts": failures},
            )
    return until if locked_now else None


# --- 1. rate limit ------------------------------------------------------------------------------


async def limit_ip(ip: str, *, redis: Redis, key_prefix: str, limit: IpLimit = IP_LIMIT) -> None:
    """Count a sign-in attempt from `ip`; raise TooManyRequests past the limit."""
    key = f"{key_prefix}staff-login:ip:{ip or 'unknown'}"
    async with redis.pipeline(transaction=True) as pipe:
        pipe.set(key, 0, ex=limit.window_seconds, nx=True)
        pipe.incr(key)
        pipe.ttl(key)
        _, count, ttl = await pipe.execute()
    if int(count) > limit.attempts:
        raise TooManyRequests(retry_after=max(int(ttl), 1))


# --- 2. password --------------------------------------------------------------------------------


async def check_password(
    email: str, password: str, *, ip: str, now: dt.datetime, lockout: Lockout = LOCKOUT
) -> PasswordAccepted:
    """The first step. Raises SignInFailed, identically, for every way it can fail."""
    email = email.strip().lower()[:254]
    row = await _row_by_email(email) if email else None
    stored = str(row["password_hash"]) if row is not None and row["password_hash"] else ""
    if len(password) > MAX_PASSWORD_LENGTH:
        password = password[:MAX_PASSWORD_LENGTH]
        stored = ""  # never accepted
    good = await _verify(stored or _dummy_hash(), password)
    good = good and bool(stored)

    reason = None
    if row is None:
        reason = "unknown_email"
    elif not row["active"]:
        reason = "inactive"
    elif _locked(row, now):
        reason = "locked"
    elif not good:
        await _count_failure(
            row, stage="password", reason="wrong_password", ip=ip, now=now, lockout=lockout
        )
        raise SignInFailed()
    if reason is not None:
        await record(
            _actor(row, email, ip),
            "staff.login_failed",
            now=now,
            object_type="staff_user" if row is not None else "",
            object_id=int(row["id"]) if row is not None else "",
            after={"stage": "password", "reason": reason},
        )
        raise SignInFailed()
    assert row is not None
    return PasswordAccepted(staff_id=int(row["id"]), enrolled=row["totp_confirmed_at"] is not None)


# --- 3. the second factor -----------------------------------------------------------------------


async def _claim_step(staff_id: int, step: int) -> bool:
    """Record `step` as used, unless it (or a later one) already is. Atomic."""
    rows = await StaffUser.raw(
        """
        UPDATE staff_user SET totp_last_step = {}
        WHERE id = {} AND (totp_last_step IS NULL OR totp_last_step < {})
        RETURNING id
        """,
        step,
        staff_id,
        step,
    )
    return bool(rows)


async def _use_recovery_code(staff_id: int, code_hash: str) -> int | None:
    """Remove the code from the user's list if it is there; the codes left, or None."""
    rows = await StaffUser.raw(
        """
        UPDATE staff_user SET recovery_codes = recovery_codes - {}::text
        WHERE id = {} AND recovery_codes ? {}::text
        RETURNING jsonb_array_length(recovery_codes) AS codes_left
        """,
        code_hash,
        staff_id,
        code_hash,
    )
    return int(rows[0]["codes_left"]) if rows else None


def _secret(row: dict[str, Any], key: bytes) -> str | None:
    try:
        return totp.decrypt_secret(
            str(row["totp_secret_enc"]), key, context=totp.staff_context(int(row["id"]))
        )
    except totp.SecretTampered:
        log.error("the TOTP secret of staff user %s does not decrypt", row["id"])
        return None


async def _enrolled_row(staff_id: int, now: dt.datetime) -> dict[str, Any]:
    row = await _row(staff_id)
    if row is None or not row["active"] or row["totp_confirmed_at"] is None:
        raise SignInFailed()
    if not row["totp_secret_enc"]:
        raise SignInFailed()
    if _locked(row, now):
        raise AccountLocked(row["locked_until"])
    return row


async def verify_second_factor(
    staff_id: int,
    code: str,
    *,
    key: bytes,
    ip: str,
    now: dt.datetime,
    lockout: Lockout = LOCKOUT,
) -> SignedIn:
    """Finish the sign-in with a TOTP code or a recovery code (each accepted once)."""
    row = await _enrolled_row(staff_id, now)
    actor = _actor(row, "", ip)
    async with DB.transaction():
        method, codes_left = None, int(row["codes_left"])
        if totp.clean_code(code) is not None:
            secret = _secret(row, key)
            step = totp.verify(secret, code, row["totp_last_step"], now) if secret else None
            if step is not None and await _claim_step(staff_id, step):
                method = "totp"
        elif (normalized := totp.normalize_recovery_code(code)) is not None:
            left = await _use_recovery_code(staff_id, totp.hash_recovery_code(normalized))
            if left is not None:
                method, codes_left = "recovery_code", left
        if method is not None:
            await StaffUser.raw(
                """
                UPDATE staff_user SET failed_attempts = 0, locked_until = NULL, last_login_at = {}
                WHERE id = {}
                """,
                now,
                staff_id,
            )
            await record(
                actor,
                "staff.login",
                now=now,
                object_type="staff_user",
                object_id=staff_id,
                after={"method": method, "recovery_codes_left": codes_left},
            )
    if method is None:
        locked = await _count_failure(
            row, stage="code", reason="wrong_code", ip=ip, now=now, lockout=lockout
        )
        raise WrongCode(locked=locked is not None)
    return SignedIn(identity=_identity(row), method=method, recovery_codes_left=codes_left)


# --- 4. enrollment ------------------------------------------------------------------------------


async def _enrollable_row(staff_id: int, now: dt.datetime) -> dict[str, Any]:
    row = await _row(staff_id)
    if row is None or not row["active"] or row["totp_confirmed_at"] is not None:
        raise SignInFailed()
    if _locked(row, now):
        raise AccountLocked(row["locked_until"])
    return row


async def start_enrollment(
    staff_id: int, pending: str | None, *, key: bytes, now: dt.datetime
) -> Enrollment:
    """The secret to enroll with: the one pending in the session, else a new one."""
    row = await _enrollable_row(staff_id, now)
    context = totp.staff_context(staff_id)
    secret = None
    if pending:
        try:
            secret = totp.decrypt_secret(pending, key, context=context)
        except totp.SecretTampered:
            secret = None
    if secret is None:
        secret = totp.generate_secret()
        pending = totp.encrypt_secret(secret, key, context=context)
    assert pending is not None
    email = str(row["email"])
    return Enrollment(
        pending=pending, secret=secret, uri=totp.provisioning_uri(secret, email), email=email
    )


async def confirm_enrollment(
    staff_id: int,
    pending: str,
    code: str,
    *,
    key: bytes,
    ip: str,
    now: dt.datetime,
    lockout: Lockout = LOCKOUT,
) -> tuple[SignedIn, list[str]]:
    """Store the pending secret once a code made with it checks out; returns the sign-in and the
    ten recovery codes (the only time they exist in clear)."""
    row = await _enrollable_row(staff_id, now)
    try:
        secret = totp.decrypt_secret(pending, key, context=totp.staff_context(staff_id))
    except totp.SecretTampered as exc:
        raise SignInFailed() from exc
    step = totp.verify(secret, code, row["totp_last_step"], now)
    if step is None:
        locked = await _count_failure(
            row, stage="enrollment", reason="wrong_code", ip=ip, now=now, lockout=lockout
        )
        raise WrongCode(locked=locked is not None)
    codes = totp.generate_recovery_codes()
    hashes = [totp.hash_recovery_code(c) for c in codes]
    async with DB.transaction():
        rows = await StaffUser.raw(
            """
            UPDATE staff_user SET
              totp_secret_enc = {}, totp_confirmed_at = {}, totp_last_step = {},
              recovery_codes = {}::jsonb, failed_attempts = 0, locked_until = NULL,
              last_login_at = {}
            WHERE id = {} AND active AND totp_confirmed_at IS NULL
              AND (totp_last_step IS NULL OR totp_last_step < {})
            RETURNING id, email, name, role, totp_confirmed_at
            """,
            pending,
            now,
            step,
            json.dumps(hashes),
            now,
            staff_id,
            step,
        )
        if not rows:  # enrolled meanwhile, or the same code used concurrently
            raise WrongCode()
        actor = _actor(row, "", ip)
        await record(
            actor,
            "staff.totp_enrolled",
            now=now,
            object_type="staff_user",
            object_id=staff_id,
            before={"enrolled": False},
            after={"enrolled": True, "recovery_codes": len(codes)},
        )
        await record(
            actor,
            "staff.login",
            now=now,
            object_type="staff_user",
            object_id=staff_id,
            after={"method": "enrollment", "recovery_codes_left": len(codes)},
        )
    identity = _identity(rows[0])
    return SignedIn(identity=identity, method="enrollment", recovery_codes_left=len(codes)), codes


# --- 5. re-authentication -----------------------------------------------------------------------


async def reauthenticate(
    staff_id: int,
    code: str,
    *,
    key: bytes,
    ip: str,
    now: dt.datetime,
    lockout: Lockout = LOCKOUT,
) -> None:
    """A fresh TOTP code from a signed-in user (recovery codes are kept for signing in)."""
    row = await _enrolled_row(staff_id, now)
    secret = _secret(row, key)
    step = totp.verify(secret, code, row["totp_last_step"], now) if secret else None
    async with DB.transaction():
        if step is not None and await _claim_step(staff_id, step):
            await StaffUser.raw(
                "UPDATE staff_user SET failed_attempts = 0, locked_until = NULL WHERE id = {}",
                staff_id,
            )
            await record(
                _actor(row, "", ip),
                "staff.reauth",
                now=now,
                object_type="staff_user",
                object_id=staff_id,
            )
            return
    locked = await _count_failure(
        row, stage="reauth", reason="wrong_code", ip=ip, now=now, lockout=lockout
    )
    raise WrongCode(locked=locked is not None)


# --- the signed-in user -------------------------------------------------------------------------


async def current_staff(staff_id: int) -> StaffIdentity | None:
    """The user behind a back-office session, while active and enrolled."""
    rows = await StaffUser.raw(
        """
        SELECT id, email, name, role, totp_confirmed_at FROM staff_user
        WHERE id = {} AND active AND totp_confirmed_at IS NOT NULL
        """,
        staff_id,
    )
    return _identity(rows[0]) if rows else None


async def sign_out(identity: StaffIdentity, *, ip: str, now: dt.datetime) -> None:
    """Note the sign-out (the caller destroys the session)."""
    await record(
        Actor(staff_id=identity.id, label=identity.email, ip=ip),
        "staff.logout",
        now=now,
        object_type="staff_user",
        object_id=identity.id,
    )
