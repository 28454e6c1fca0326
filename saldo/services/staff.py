"""Staff accounts."""

from __future__ import annotations

import re

from saldo.auth.passwords import check_strength, hash_password
from saldo.tables import Role, StaffUser

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


async def create_staff(email: str, role: str, password: str, name: str = "") -> StaffUser:
    email = email.strip().lower()
    if not EMAIL.match(email):
        raise ValueError(f"{email!r} is not an email address")
    if role not in Role.__members__:
        raise ValueError(f"role must be one of {', '.join(Role.__members__)}")
    check_strength(password)
    if await StaffUser.exists().where(StaffUser.email == email):
        raise ValueError(f"a staff user {email} already exists")
    staff = StaffUser(email=email, role=role, name=name, password_hash=hash_password(password))
    await staff.save()
    return staff
