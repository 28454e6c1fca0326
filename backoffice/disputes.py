"""Disputes in the back office: the queue with SLA timers, one dispute with its thread, staff
replies, the resolution (supervisors), the thread's files and the report by reason.

Agents and supervisors review and answer (`disputes.review`); only supervisors resolve
(`disputes.resolve`); the reason report is a KPI (`kpis.view`). Filters come from the query
string, so a filtered queue is a link; htmx swaps only the results (and refreshes them every
minute so the timers stay true); without JavaScript every form reloads the page. A reply or a
resolution answers 303 to the dispute, which says once what happened; a form with errors comes
back with a message next to each wrong field.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Template
from litestar.status_codes import HTTP_200_OK, HTTP_422_UNPROCESSABLE_ENTITY
from litestar.types import ControllerRouterHandler, Guard

from backoffice.permissions import requires
from backoffice.session import FLASH, actor, session_of
from backoffice.shell import shell
from saldo.errors import ValidationFailed
from saldo.services import dispute_staff
from saldo.services.dispute_forms import (
    InvalidStaffForm,
    ResolutionForm,
    StaffReplyForm,
    Upload,
)
from saldo.services.dispute_rules import REASON_CODES
from saldo.services.uploads import MAX_UPLOAD_BYTES
from saldo.web import (
    is_htmx,
    page_or_fragment,
    redirect_after_post,
    session_set,
    wants_fragment,
)

#: Room for the form fields and multipart framing around the largest accepted file.
BODY_LIMIT = MAX_UPLOAD_BYTES + 512 * 1024
PER_PAGE = 25
REPORT_DAYS = 30
REVIEW: list[Guard] = [requires("disputes.review")]
RESOLVE: list[Guard] = [requires("disputes.resolve")]
REPORT: list[Guard] = [requires("kpis.view")]
Form = Body(media_type=RequestEncodingType.URL_ENCODED)

INDEX = "backoffice/disputes/index.html"
DETAIL = "backoffice/disputes/detail.html"
REASONS = "backoffice/disputes/reasons.html"


@dataclass
class ResolutionData:
    outcome: str = ""
    amount: str = ""
    explanation: str = ""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _data_dir(request: Request[Any, Any, Any]) -> Path:
    return Path(request.app.state.settings.data_path)


def _page_number(value: str | None) -> int:
    return int(value) if value and re.fullmatch(r"0*[1-9][0-9]{0,5}", value) else 1


def _status_code(request: Request[Any, Any, Any]) -> int:
    """A form with errors: 422 for a page, 200 for an htmx fragment (htmx swaps only 2xx)."""
    return HTTP_200_OK if wants_fragment(request) else HTTP_422_UNPROCESSABLE_ENTITY


# ---------------------------------------------------------------------------- the queue


@get("/disputes", name="backoffice:disputes", guards=REVIEW)
async def queue(request: Request[Any, Any, Any]) -> Template:
    query = request.query_params
    status = query.get("status", "open")
    reason = query.get("reason", "")
    status = status if status in dispute_staff.QUEUE_STATUSES else "open"
    reason = reason if reason in REASON_CODES else ""
    page = _page_number(query.get("page"))
    data = await dispute_staff.dispute_queue(
        now=_now(), status=status, reason=reason, limit=PER_PAGE, offset=(page - 1) * PER_PAGE
    )
    base = request.app.route_reverse("backoffice:disputes")
    kept = {k: v for k, v in (("status", status), ("reason", reason)) if v and v != "open"}

    def page_url(number: int) -> str:
        return f"{base}?{urlencode({**kept, 'page': number})}"

    context = shell(
        request,
        "disputes",
        queue=data,
        here=page_url(data.page),
        page_url=page_url,
        filtered=bool(kept),
    )
    return page_or_fragment(request, INDEX, "backoffice/disputes/_queue.html", context=context)


# ---------------------------------------------------------------------------- one dispute


async def _detail(
    request: Request[Any, Any, Any],
    dispute_id: int,
    *,
    reply: StaffReplyForm | None = None,
    resolution: ResolutionForm | None = None,
    fragment: str | None = None,
) -> Template:
    view = await dispute_staff.staff_dispute(dispute_id, now=_now())
    flash = (session_of(request) or {}).pop(FLASH, None)
    context = shell(
        request,
        "disputes",
        view=view,
        reply=reply or StaffReplyForm(),
        resolution=resolution or ResolutionForm(),
        flash=flash if isinstance(flash, dict) and flash.get("dispute") == dispute_id else None,
    )
    invalid = reply is not None or resolution is not None
    status = _status_code(request) if invalid else HTTP_200_OK
    return page_or_fragment(request, DETAIL, fragment, context=context, status_code=status)


@get("/disputes/{dispute_id:int}", name="backoffice:disputes:detail", guards=REVIEW)
async def detail(request: Request[Any, Any, Any], dispute_id: FromPath[int]) -> Template:
    return await _detail(request, dispute_id)


async def _read_form(
    request: Request[Any, Any, Any], file_field: str
) -> tuple[dict[str, str], Upload | None]:
    """The text fields, and the file when one was chosen (an empty file input is no file)."""
    form = await request.form()
    fields: dict[str, str] = {}
    upload = None
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            try:
                data = await value.read()
            finally:
                await value.close()
            if key == file_field and (value.filename or data):
                upload = Upload(value.filename or "", data)
        elif isinstance(value, str):
            fields.setdefault(key, value)
    return fields, upload


def _done(
    request: Request[Any, Any, Any], dispute_id: int, kind: str, anchor: str
) -> Response[Any]:
    session_set(request, FLASH, {"kind": kind, "dispute": dispute_id})
    url = request.app.route_reverse("backoffice:disputes:detail", dispute_id=dispute_id)
    # htmx follows HX-Redirect by setting location.href: a URL that differs from the page's only
    # by its #fragment would just scroll, so htmx gets the page's own URL, which reloads it.
    return redirect_after_post(request, url if is_htmx(request) else f"{url}#{anchor}")


@post(
    "/disputes/{dispute_id:int}/messages",
    name="backoffice:disputes:message",
    guards=REVIEW,
    request_max_body_size=BODY_LIMIT,
    status_code=HTTP_200_OK,
)
async def message(
    request: Request[Any, Any, Any], dispute_id: FromPath[int]
) -> Template | Response[Any]:
    """A reply to the debtor (text and/or a file), or the thread again with the form's errors."""
    fields, upload = await _read_form(request, "attachment")
    try:
        await dispute_staff.staff_reply(
            dispute_id,
            StaffReplyForm(body=fields.get("body", "")),
            upload=upload,
            actor=actor(request),
            data_dir=_data_dir(request),
            now=_now(),
        )
    except InvalidStaffForm as invalid:
        assert isinstance(invalid.form, StaffReplyForm)
        return await _detail(
            request, dispute_id, reply=invalid.form, fragment="backoffice/disputes/_thread.html"
        )
    return _done(request, dispute_id, "sent", "thread-end")


@post(
    "/disputes/{dispute_id:int}/resolve",
    name="backoffice:disputes:resolve",
    guards=RESOLVE,
    status_code=HTTP_200_OK,
)
async def resolve(
    request: Request[Any, Any, Any],
    dispute_id: FromPath[int],
    data: Annotated[ResolutionData, Form],
) -> Template | Response[Any]:
    """Accept, accept in part or reject; or the resolution form again with its errors."""
    form = ResolutionForm(data.outcome, data.amount, data.explanation)
    try:
        await dispute_staff.staff_resolve(dispute_id, form, actor=actor(request), now=_now())
    except InvalidStaffForm as invalid:
        assert isinstance(invalid.form, ResolutionForm)
        return await _detail(
            request,
            dispute_id,
            resolution=invalid.form,
            fragment="backoffice/disputes/_resolution.html",
        )
    return _done(request, dispute_id, "resolved", "resolution")


@get(
    "/disputes/{dispute_id:int}/attachments/{attachment_id:int}",
    name="backoffice:disputes:attachment",
    guards=REVIEW,
)
async def attachment(
    request: Request[Any, Any, Any], dispute_id: FromPath[int], attachment_id: FromPath[int]
) -> Response[bytes]:
    """A file of the thread, always as a download with the type its content was checked for."""
    stored = await dispute_staff.staff_attachment(
        dispute_id, attachment_id, data_dir=_data_dir(request)
    )
    return Response(
        content=stored.content,
        media_type=stored.content_type,
        headers={
            "Content-Disposition": stored.disposition,
            "Cache-Control": "no-store, private",
            "X-Content-Type-Options": "nosniff",
        },
    )


# ---------------------------------------------------------------------------- the reason report


def _period(
    request: Request[Any, Any, Any],
) -> tuple[dict[str, str], dict[str, str], dt.date, dt.date]:
    """(the dates as typed, an error code per field, from, to); the last 30 days by default."""
    today = _now().date()
    raw = {name: request.query_params.get(name, "").strip()[:20] for name in ("from", "to")}
    errors: dict[str, str] = {}
    dates = {"from": today - dt.timedelta(days=REPORT_DAYS - 1), "to": today}
    for name, value in raw.items():
        if not value:
            continue
        try:
            dates[name] = dt.date.fromisoformat(value)
        except ValueError:
            errors[name] = "date"
        else:
            if not 1900 <= dates[name].year <= 2999:
                errors[name] = "date"
    if not errors and dates["from"] > dates["to"]:
        errors["to"] = "order"
    return raw, errors, dates["from"], dates["to"]


@get("/disputes/reasons", name="backoffice:disputes:reasons", guards=REPORT)
async def reasons(request: Request[Any, Any, Any]) -> Template:
    raw, errors, date_from, date_to = _period(request)
    report = (
        None if errors else await dispute_staff.reason_report(date_from=date_from, date_to=date_to)
    )
    csv_url = request.app.route_reverse("backoffice:disputes:reasons_csv")
    context = shell(
        request,
        "disputes",
        report=report,
        raw=raw,
        errors=errors,
        date_from=date_from,
        date_to=date_to,
        csv_url=f"{csv_url}?{urlencode({'from': date_from, 'to': date_to})}",
    )
    return page_or_fragment(
        request,
        REASONS,
        "backoffice/disputes/_reasons.html",
        context=context,
        status_code=HTTP_422_UNPROCESSABLE_ENTITY
        if errors and not wants_fragment(request)
        else 200,
    )


@get("/disputes/reasons.csv", name="backoffice:disputes:reasons_csv", guards=REPORT)
async def reasons_csv(request: Request[Any, Any, Any]) -> Response[bytes]:
    _raw, errors, date_from, date_to = _period(request)
    if errors:
        field = next(iter(errors))
        raise ValidationFailed(
            "use dates like 2026-03-31, the first not after the last", field=field
        )
    report = await dispute_staff.reason_report(date_from=date_from, date_to=date_to)
    name = f"reclamos-por-motivo-{date_from.isoformat()}-{date_to.isoformat()}.csv"
    return Response(
        content=dispute_staff.reason_report_csv(report).encode("utf-8-sig"),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store, private",
        },
    )


handlers: list[ControllerRouterHandler] = [
    queue,
    reasons,
    reasons_csv,
    detail,
    message,
    resolve,
    attachment,
]
