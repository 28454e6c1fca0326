"""What every signed-in back-office page needs besides its own data: the user, what their role
may open (the navigation shows only that) and which section is current."""

from __future__ import annotations

from typing import Any

from litestar import Request

from backoffice.permissions import permissions_of
from backoffice.session import current


def shell(request: Request[Any, Any, Any], section: str, **values: Any) -> dict[str, Any]:
    staff = current(request)
    return {"staff": staff, "perms": permissions_of(staff.role), "section": section, **values}
