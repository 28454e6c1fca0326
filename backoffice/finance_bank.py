"""Bank statements: the upload, an import's result, and clearing an unmatched line by hand.

- `GET/POST /bank/import` — upload a statement CSV (multipart, up to 20 MB). Success answers
  303 to the import's result; re-uploading a file already imported lands on the earlier result
  marked "ya importado". A bad file is shown again with `file:line: reason` under the field.
- `GET /bank/imports/{import_id}` — what an import read, matched (per rule) and left over.
- `GET /payments/unapplied/{line_id}?q=&account=&invoice=` — a line, its suggestions, and the
  three ways to clear it: assign (search or pick an account, tick its invoices), split (rows of
  account, amount, invoices; "add a row" re-renders the form with one more row, htmx swaps
  only the form) and not ours (a note). Success answers 303 to the queue with a message; a
  line someone else resolved first shows that instead of the forms.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from litestar import Request, Response, get, post
from litestar.datastructures import FormMultiDict, UploadFile
from litestar.params import FromPath
from litestar.response import Template
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
)
from litestar.types import ControllerRouterHandler

from backoffice.finance_shared import (
    APPLY,
    RECONCILE,
    VIEW,
    context,
    done,
    error,
    form_text,
    ids_of,
    now,
    pop_flash,
    positive_int,
)
from backoffice.session import current
from saldo.errors import Conflict, ImportFileError, ValidationFailed
from saldo.references import payment_reference
from saldo.services import bank_queue, finance_desk
from saldo.services.bank_queue import MAX_SPLIT_PARTS
from saldo.services.finance_desk import MAX_STATEMENT_BYTES, SplitRow
from saldo.web import is_htmx, page_or_fragment, wants_fragment

#: Room for the CSRF field and the multipart framing around the largest accepted file.
BODY_LIMIT: Final = MAX_STATEMENT_BYTES + 512 * 1024
MAX_NOTE_CHARS: Final = 2000

IMPORT_PAGE = "backoffice/finance/import.html"
RESULT_PAGE = "backoffice/finance/import_result.html"
LINE_PAGE = "backoffice/finance/line.html"
SPLIT_FORM = "backoffice/finance/_split_form.html"
BLANK_ROW = SplitRow("", "", "")


# ---------------------------------------------------------------------------- import


async def _import_page(
    request: Request[Any, Any, Any],
    problem: dict[str, str] | None = None,
    status_code: int = HTTP_200_OK,
) -> Template:
    values = context(
        request,
        imports=await finance_desk.recent_imports(),
        error=problem,
        max_mb=MAX_STATEMENT_BYTES // (1024 * 1024),
    )
    return page_or_fragment(request, IMPORT_PAGE, context=values, status_code=status_code)


@get("/bank/import", name="backoffice:bank_import", guards=RECONCILE)
async def import_page(request: Request[Any, Any, Any]) -> Template:
    return await _import_page(request)


async def _read_upload(request: Request[Any, Any, Any]) -> tuple[bytes, str]:
    form = await request.form()
    found: tuple[bytes, str] = (b"", "")
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            try:
                data = await value.read()
            finally:
                await value.close()
            if key == "statement" and not found[0]:
                found = (data, value.filename or "")
    return found


@post(
    "/bank/import",
    name="backoffice:bank_import:upload",
    guards=RECONCILE,
    status_code=HTTP_200_OK,
    request_max_body_size=BODY_LIMIT,
)
async def upload(request: Request[Any, Any, Any]) -> Template | Response[Any]:
    data, filename = await _read_upload(request)
    try:
        result = await finance_desk.upload_statement(
            data,
            filename,
            data_dir=Path(request.app.state.settings.data_path),
            imported_by=current(request).id,
            now=now(),
        )
    except ImportFileError as exc:
        problem = error("file", str(exc), code="bad_file")
        return await _import_page(request, problem, HTTP_422_UNPROCESSABLE_ENTITY)
    except ValidationFailed as exc:
        return await _import_page(request, error("file", str(exc)), HTTP_422_UNPROCESSABLE_ENTITY)
    url = request.app.route_reverse("backoffice:bank_import:result", import_id=result.import_id)
    return done(request, url, {"kind": "imported", "already": result.already_imported})


@get("/bank/imports/{import_id:int}", name="backoffice:bank_import:result", guards=VIEW)
async def import_result(request: Request[Any, Any, Any], import_id: FromPath[int]) -> Template:
    flash = pop_flash(request, "imported")
    already = bool(flash and flash.get("already"))
    detail = await finance_desk.import_detail(import_id, already_imported=already)
    values = context(request, detail=detail, result=detail.result, flash=flash)
    return page_or_fragment(request, RESULT_PAGE, context=values)


# ---------------------------------------------------------------------------- one line


async def _line_page(
    request: Request[Any, Any, Any],
    line_id: int,
    *,
    query: str = "",
    account_id: int | None = None,
    checked: list[int] | None = None,
    form: str = "",
    problem: dict[str, str] | None = None,
    split_rows: list[SplitRow] | None = None,
    note: str = "",
    conflict: str = "",
    status_code: int = HTTP_200_OK,
    split_fragment: bool = False,
) -> Template:
    desk = await finance_desk.line_desk(line_id, query=query, account_id=account_id)
    flash = pop_flash(request, "conflict")
    if flash:
        conflict = str(flash.get("message", ""))
    values = context(
        request,
        desk=desk,
        line=desk.line,
        checked=checked or [],
        form=form,
        error=problem,
        split_rows=split_rows or [BLANK_ROW, BLANK_ROW],
        max_parts=MAX_SPLIT_PARTS,
        note=note,
        conflict=conflict,
    )
    if split_fragment and wants_fragment(request) and status_code >= 400:
        status_code = HTTP_200_OK  # htmx swaps only successful answers
    return page_or_fragment(
        request,
        LINE_PAGE,
        SPLIT_FORM if split_fragment else None,
        context=values,
        status_code=status_code,
    )


@get("/payments/unapplied/{line_id:int}", name="backoffice:bank_line", guards=VIEW)
async def line_page(request: Request[Any, Any, Any], line_id: FromPath[int]) -> Template:
    params = request.query_params
    return await _line_page(
        request,
        line_id,
        query=params.get("q", "")[:200],
        account_id=positive_int(params.get("account")),
        checked=ids_of(params.getall("invoice", [])),
    )


async def _conflict(
    request: Request[Any, Any, Any], line_id: int, exc: Conflict
) -> Template | Response[Any]:
    if is_htmx(request):
        url = request.app.route_reverse("backoffice:bank_line", line_id=line_id)
        return done(request, url, {"kind": "conflict", "message": str(exc)})
    return await _line_page(request, line_id, conflict=str(exc), status_code=HTTP_409_CONFLICT)


def _queue(request: Request[Any, Any, Any], flash: dict[str, Any]) -> Response[Any]:
    return done(request, request.app.route_reverse("backoffice:unapplied"), flash)


@post(
    "/payments/unapplied/{line_id:int}/assign",
    name="backoffice:bank_line:assign",
    guards=APPLY,
    status_code=HTTP_200_OK,
)
async def assign(
    request: Request[Any, Any, Any], line_id: FromPath[int]
) -> Template | Response[Any]:
    form = await request.form()
    account_id = positive_int(form_text(form, "account_id", 20))
    invoice_ids = ids_of(form.getall("invoice", []))
    if account_id is None:
        problem = error("account_id", code="missing")
        return await _line_page(request, line_id, form="assign", problem=problem, status_code=422)
    try:
        await bank_queue.assign_line(
            line_id,
            account_id=account_id,
            invoice_ids=invoice_ids,
            staff_id=current(request).id,
            now=now(),
        )
    except ValidationFailed as exc:
        return await _line_page(
            request,
            line_id,
            account_id=account_id,
            checked=invoice_ids,
            form="assign",
            problem=error(exc.field or "account_id", str(exc)),
            status_code=HTTP_422_UNPROCESSABLE_ENTITY,
        )
    except Conflict as exc:
        return await _conflict(request, line_id, exc)
    flash = {"kind": "assigned", "line": line_id, "account": payment_reference(account_id)}
    return _queue(request, flash)


def _split_rows(form: FormMultiDict) -> list[SplitRow]:
    rows: list[SplitRow] = []
    for i in range(MAX_SPLIT_PARTS + 1):
        names = (f"parts-{i}-account", f"parts-{i}-amount", f"parts-{i}-invoices")
        if not any(name in form for name in names):
            continue
        rows.append(
            SplitRow(
                form_text(form, names[0], 60),
                form_text(form, names[1], 30),
                form_text(form, names[2], 500),
            )
        )
    return rows


@post(
    "/payments/unapplied/{line_id:int}/split",
    name="backoffice:bank_line:split",
    guards=APPLY,
    status_code=HTTP_200_OK,
)
async def split(
    request: Request[Any, Any, Any], line_id: FromPath[int]
) -> Template | Response[Any]:
    form = await request.form()
    rows = _split_rows(form)
    if form_text(form, "action", 20) == "add_row":
        rows += [BLANK_ROW] * max(0, 2 - len(rows))
        if len(rows) < MAX_SPLIT_PARTS:
            rows.append(BLANK_ROW)
        return await _line_page(
            request, line_id, form="split", split_rows=rows, split_fragment=True
        )
    try:
        resolution = await finance_desk.split_from_form(
            line_id, rows, staff_id=current(request).id, now=now()
        )
    except ValidationFailed as exc:
        kept = [row for row in rows if not row.blank]
        kept += [BLANK_ROW] * max(0, 2 - len(kept))
        return await _line_page(
            request,
            line_id,
            form="split",
            problem=error(exc.field or "parts", str(exc)),
            split_rows=kept,
            status_code=HTTP_422_UNPROCESSABLE_ENTITY,
            split_fragment=True,
        )
    except Conflict as exc:
        return await _conflict(request, line_id, exc)
    flash = {"kind": "split", "line": line_id, "parts": len(resolution.payment_ids)}
    return _queue(request, flash)


@post(
    "/payments/unapplied/{line_id:int}/not-ours",
    name="backoffice:bank_line:not_ours",
    guards=APPLY,
    status_code=HTTP_200_OK,
)
async def not_ours(
    request: Request[Any, Any, Any], line_id: FromPath[int]
) -> Template | Response[Any]:
    form = await request.form()
    note = form_text(form, "note", MAX_NOTE_CHARS)
    try:
        await bank_queue.mark_not_ours(line_id, note=note, staff_id=current(request).id, now=now())
    except ValidationFailed as exc:
        return await _line_page(
            request,
            line_id,
            form="not_ours",
            problem=error(exc.field or "note", str(exc)),
            note=note,
            status_code=HTTP_422_UNPROCESSABLE_ENTITY,
        )
    except Conflict as exc:
        return await _conflict(request, line_id, exc)
    return _queue(request, {"kind": "not_ours", "line": line_id})


handlers: list[ControllerRouterHandler] = [
    import_page,
    upload,
    import_result,
    line_page,
    assign,
    split,
    not_ours,
]
