"""The work queue (agents and supervisors): the accounts to work today, most urgent first.

Routes:

- GET  /backoffice               (`backoffice.home`: the queue for roles with `queue.view`)
       ?creditor=&segment=&stage=&assignee=<id>|none|me&page=
- POST /backoffice/queue/assign  (`queue.assign`, supervisors) accounts ticked in the table,
       to one agent or to nobody → 303 back to the same filtered page, with a notice.

Filters live in the query string, so a filtered queue is a link; htmx swaps only the results
when the filter form changes, and without JavaScript the form reloads the page.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

from litestar import Request, Response, post
from litestar.response import Template
from litestar.status_codes import HTTP_200_OK, HTTP_422_UNPROCESSABLE_ENTITY
from litestar.types import ControllerRouterHandler

from backoffice.permissions import allowed, requires
from backoffice.session import FLASH, actor, current, safe_next, session_of
from backoffice.shell import shell
from saldo.errors import NotFound, ValidationFailed
from saldo.services import work_queue
from saldo.services.work_queue import QueueFilters
from saldo.web import (
    page_or_fragment,
    redirect_after_post,
    request_language,
    session_set,
    wants_fragment,
)

PER_PAGE: Final = 50
FIELDS: Final = ("creditor", "segment", "stage", "assignee")
PAGE: Final = "backoffice/queue/index.html"
FRAGMENT: Final = "backoffice/queue/_results.html"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _id(value: str) -> int | None:
    return int(value) if value.isdigit() and 0 < len(value) < 11 else None


def _page_number(value: str | None) -> int:
    return int(value) if value and value.isdigit() and len(value) < 5 else 1


def _filters(raw: dict[str, str], me: int) -> QueueFilters:
    assignee = raw["assignee"]
    return QueueFilters(
        creditor_id=_id(raw["creditor"]),
        segment=raw["segment"] or None,
        stage=raw["stage"] if raw["stage"] in work_queue.STAGES else None,
        assignee=me if assignee == "me" else _id(assignee),
        unassigned=assignee == "none",
    )


def _raw(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {name: request.query_params.get(name, "").strip()[:60] for name in FIELDS}


async def queue_page(
    request: Request[Any, Any, Any],
    *,
    raw: dict[str, str] | None = None,
    page: int | None = None,
    status_code: int = HTTP_200_OK,
    assign_error: str | None = None,
    selected: frozenset[int] = frozenset(),
) -> Template:
    """The queue page (or its results fragment for htmx)."""
    staff = current(request)
    raw = raw if raw is not None else _raw(request)
    number = page or _page_number(request.query_params.get("page"))
    now = _now()
    language = request_language(request)
    found = await work_queue.work_queue(
        today=now.date(),
        now=now,
        filters=_filters(raw, staff.id),
        limit=PER_PAGE,
        offset=(number - 1) * PER_PAGE,
        language=language,
    )
    base = request.app.route_reverse("backoffice:home")
    kept = {k: v for k, v in raw.items() if v}

    def page_url(n: int) -> str:
        return f"{base}?{urlencode({**kept, 'page': n})}" if (kept or n > 1) else base

    flash = (session_of(request) or {}).pop(FLASH, None)
    context = shell(
        request,
        "home",
        queue=found,
        raw=raw,
        choices=await work_queue.queue_choices(),
        reasons=work_queue.REASONS,
        page_url=page_url,
        back_url=page_url(found.page),
        filtered=bool(kept),
        can_assign=allowed(staff.role, "queue.assign"),
        assign_error=assign_error,
        selected=selected,
        flash=flash if isinstance(flash, dict) else None,
        today=now.date(),
    )
    return page_or_fragment(request, PAGE, FRAGMENT, context=context, status_code=status_code)


@post(
    "/queue/assign",
    name="backoffice:queue:assign",
    guards=[requires("queue.assign")],
    status_code=HTTP_200_OK,
)
async def assign(request: Request[Any, Any, Any]) -> Response[Any]:
    """Give the ticked accounts to an agent (or to nobody), then back to the same queue page."""
    form = await request.form()
    ids = [_id(str(v)) for v in form.getall("account")] if "account" in form else []
    chosen = str(form.get("assignee", "")).strip()
    back = safe_next(str(form.get("back", ""))) or request.app.route_reverse("backoffice:home")
    try:
        done = await work_queue.assign(
            [i for i in ids if i is not None],
            None if chosen == "none" else (_id(chosen) or 0),
            by=actor(request),
            now=_now(),
            language=request_language(request),
        )
    except (ValidationFailed, NotFound) as exc:
        raw = _raw_from(back)
        status = HTTP_200_OK if wants_fragment(request) else HTTP_422_UNPROCESSABLE_ENTITY
        return await queue_page(
            request,
            raw=raw,
            page=_page_number(_query_of(back).get("page")),
            status_code=status,
            assign_error=str(exc),
            selected=frozenset(i for i in ids if i is not None),
        )
    session_set(
        request,
        FLASH,
        {
            "kind": "assigned",
            "count": len(done.changed),
            "unchanged": done.unchanged,
            "name": done.staff_name,
        },
    )
    return redirect_after_post(request, back)


def _query_of(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query))


def _raw_from(url: str) -> dict[str, str]:
    query = _query_of(url)
    return {name: query.get(name, "").strip()[:60] for name in FIELDS}


handlers: list[ControllerRouterHandler] = [assign]
