"""The debtor's disputes: the list and the form to open one, a dispute's thread, replies and files.

Every handler is debtor-scoped (`require_debtor`); the services read only the session's debtors'
rows, so another debtor's dispute or file is a 404. Forms are multipart (an optional PDF, JPEG
or PNG); the body limit sits a little above the upload cap so an oversized file is still read
and answered with a message next to the field.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import NoRouteMatchFoundException
from litestar.params import FromPath, FromQuery
from litestar.response import Template
from litestar.types import ControllerRouterHandler

from portal.account import explicit_language
from portal.session import require_debtor, signed_in_debtors
from saldo.services import disputes
from saldo.services.uploads import MAX_UPLOAD_BYTES
from saldo.web import page_or_fragment, redirect_after_post, wants_fragment

#: Room for the form fields and multipart framing around the largest accepted file.
BODY_LIMIT = MAX_UPLOAD_BYTES + 512 * 1024

INDEX = "portal/disputes/index.html"
DETAIL = "portal/disputes/detail.html"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _data_dir(request: Request[Any, Any, Any]) -> Path:
    return Path(request.app.state.settings.data_path)


def _context(request: Request[Any, Any, Any], language: str, **values: Any) -> dict[str, Any]:
    try:
        logout_url: str | None = request.app.route_reverse("logout")
    except NoRouteMatchFoundException:
        logout_url = None
    return {"lang": language, "logout_url": logout_url, **values}


async def _read_form(
    request: Request[Any, Any, Any], file_field: str
) -> tuple[dict[str, str], disputes.Upload | None]:
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
                upload = disputes.Upload(value.filename or "", data)
        elif isinstance(value, str):
            fields.setdefault(key, value)
    return fields, upload


def _invoice_id(value: str | None) -> int | None:
    return int(value) if value and re.fullmatch(r"[1-9][0-9]{0,9}", value) else None


@get("/disputes", name="disputes:index", guards=[require_debtor])
async def index(request: Request[Any, Any, Any], invoice: FromQuery[str | None] = None) -> Template:
    """Open and past disputes, and the form to open one (`?invoice=<id>` preselects it)."""
    page = await disputes.dispute_page(
        signed_in_debtors(request),
        language=explicit_language(request),
        invoice_id=_invoice_id(invoice),
    )
    return page_or_fragment(request, INDEX, context=_context(request, page.language, page=page))


@post(
    "/disputes",
    name="disputes:open",
    guards=[require_debtor],
    request_max_body_size=BODY_LIMIT,
)
async def open_dispute(request: Request[Any, Any, Any]) -> Template | Response[Any]:
    """Open a dispute and go to its page, or show the form again with its errors."""
    fields, upload = await _read_form(request, "attachment")
    debtor_ids, language = signed_in_debtors(request), explicit_language(request)
    try:
        dispute_id = await disputes.submit_dispute(
            debtor_ids,
            fields,
            upload=upload,
            data_dir=_data_dir(request),
            language=language,
            now=_now(),
        )
    except disputes.InvalidDispute as invalid:
        assert isinstance(invalid.form, disputes.DisputeForm)
        page = await disputes.dispute_page(debtor_ids, language=language, form=invalid.form)
        return page_or_fragment(
            request,
            INDEX,
            "portal/disputes/_open_form.html",
            context=_context(request, page.language, page=page),
            status_code=200 if wants_fragment(request) else 422,
        )
    url = request.app.route_reverse("disputes:detail", dispute_id=dispute_id)
    return redirect_after_post(request, f"{url}?opened=1")


@get("/disputes/{dispute_id:int}", name="disputes:detail", guards=[require_debtor])
async def detail(
    request: Request[Any, Any, Any],
    dispute_id: FromPath[int],
    opened: FromQuery[bool] = False,
    sent: FromQuery[bool] = False,
) -> Template:
    """A dispute: status, outcome and credit, and the thread with the reply form."""
    view = await disputes.dispute_detail(
        signed_in_debtors(request), dispute_id, language=explicit_language(request)
    )
    context = _context(request, view.language, view=view, opened=opened, sent=sent)
    return page_or_fragment(request, DETAIL, context=context)


@post(
    "/disputes/{dispute_id:int}/messages",
    name="disputes:message",
    guards=[require_debtor],
    request_max_body_size=BODY_LIMIT,
)
async def message(
    request: Request[Any, Any, Any], dispute_id: FromPath[int]
) -> Template | Response[Any]:
    """Add the debtor's reply to the thread, or show the thread again with the form's errors."""
    fields, upload = await _read_form(request, "attachment")
    debtor_ids, language = signed_in_debtors(request), explicit_language(request)
    try:
        await disputes.submit_message(
            debtor_ids,
            dispute_id,
            fields,
            upload=upload,
            data_dir=_data_dir(request),
            language=language,
            now=_now(),
        )
    except disputes.InvalidDispute as invalid:
        assert isinstance(invalid.form, disputes.MessageForm)
        view = await disputes.dispute_detail(
            debtor_ids, dispute_id, language=language, form=invalid.form
        )
        return page_or_fragment(
            request,
            DETAIL,
            "portal/disputes/_thread.html",
            context=_context(request, view.language, view=view, opened=False, sent=False),
            status_code=200 if wants_fragment(request) else 422,
        )
    url = request.app.route_reverse("disputes:detail", dispute_id=dispute_id)
    return redirect_after_post(request, f"{url}?sent=1#thread-end")


def _disposition(filename: str) -> str:
    fallback = re.sub(r"[^A-Za-z0-9._-]+", "_", filename).strip("_") or "adjunto"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename)}"


@get(
    "/disputes/{dispute_id:int}/attachments/{attachment_id:int}",
    name="disputes:attachment",
    guards=[require_debtor],
)
async def attachment(
    request: Request[Any, Any, Any], dispute_id: FromPath[int], attachment_id: FromPath[int]
) -> Response[bytes]:
    """A file of the thread, always as a download with the type its content was checked for."""
    stored = await disputes.dispute_attachment(
        signed_in_debtors(request), dispute_id, attachment_id, data_dir=_data_dir(request)
    )
    return Response(
        content=stored.content,
        media_type=stored.content_type,
        headers={
            "Content-Disposition": _disposition(stored.filename),
            "Cache-Control": "no-store, private",
            "X-Content-Type-Options": "nosniff",
        },
    )


handlers: list[ControllerRouterHandler] = [index, open_dispute, detail, message, attachment]
