"""The signed-in debtor's pages: balance, invoices, PDFs, preferences.

Every handler here is debtor-scoped: it carries the `require_debtor` guard and passes the
session's debtor ids to the service, which reads only those debtors' rows (another debtor's
invoice id is a 404). `tests/web/test_portal_scoping.py` walks these routes.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from litestar import Request, Response, get, post
from litestar.exceptions import NoRouteMatchFoundException
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Template
from litestar.types import ControllerRouterHandler

from portal.session import require_debtor, signed_in_debtors
from saldo.errors import NotFound
from saldo.services import preferences, statement
from saldo.web import (
    SESSION_LANGUAGE,
    SUPPORTED_LANGUAGES,
    gettext,
    page_or_fragment,
    redirect_after_post,
    request_language,
    wants_fragment,
)

VIEWS = ("invoices", "aging")
_INVOICE_REF = re.compile(r"([1-9][0-9]{0,9})(\.pdf)?")


def explicit_language(request: Request[Any, Any, Any]) -> str | None:
    """The language chosen for this session (`?lang=`, or the one set at sign-in), else None.

    None lets the service use the debtor's stored preference. `request_language` also keeps a
    `?lang=` switch in the session, as every portal page does.
    """
    language = request_language(request)
    session = request.scope.get("session")
    chosen = session.get(SESSION_LANGUAGE) if isinstance(session, dict) else None
    if request.query_params.get("lang") in SUPPORTED_LANGUAGES or chosen in SUPPORTED_LANGUAGES:
        return language
    return None


def _optional_url(request: Request[Any, Any, Any], name: str) -> str | None:
    try:
        return request.app.route_reverse(name)
    except NoRouteMatchFoundException:
        return None


def _context(request: Request[Any, Any, Any], language: str, **values: Any) -> dict[str, Any]:
    """What every account page needs besides its data: its language and the portal links."""
    return {"lang": language, "logout_url": _optional_url(request, "logout"), **values}


def _pdf(document: statement.Document) -> Response[bytes]:
    return Response(
        content=document.content,
        media_type=document.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{document.filename}"',
            "Cache-Control": "no-store, private",
        },
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@get("/account", name="account:balance", guards=[require_debtor])
async def balance_page(
    request: Request[Any, Any, Any], view: FromQuery[str | None] = None
) -> Template:
    """Every account with its total, overdue part and next due date; invoices or aging below."""
    data = await statement.balance(
        signed_in_debtors(request), language=explicit_language(request), now=_now()
    )
    today = data.today
    context = _context(
        request,
        data.language,
        balance=data,
        view=view if view in VIEWS else VIEWS[0],
        statement_from=(today - dt.timedelta(days=statement.DEFAULT_PERIOD_DAYS)).isoformat(),
        statement_to=today.isoformat(),
    )
    return page_or_fragment(
        request, "portal/account/balance.html", "portal/account/_accounts.html", context=context
    )


@get("/invoices/{ref:str}", name="account:invoice", guards=[require_debtor])
async def invoice(
    request: Request[Any, Any, Any], ref: FromPath[str]
) -> Template | Response[bytes]:
    """`/invoices/<id>` shows an invoice; `/invoices/<id>.pdf` downloads it."""
    match = _INVOICE_REF.fullmatch(ref)
    if match is None:
        raise NotFound(gettext(request_language(request), "No encontramos esa factura."))
    invoice_id, language = int(match.group(1)), explicit_language(request)
    if match.group(2):
        document = await statement.invoice_pdf(
            signed_in_debtors(request), invoice_id, language=language, now=_now()
        )
        return _pdf(document)
    detail = await statement.invoice_detail(
        signed_in_debtors(request), invoice_id, language=language, now=_now()
    )
    context = _context(request, detail.language, detail=detail)
    return page_or_fragment(request, "portal/account/invoice.html", context=context)


@get("/statement.pdf", name="account:statement", guards=[require_debtor])
async def statement_document(
    request: Request[Any, Any, Any],
    start: Annotated[str | None, QueryParameter(name="from")] = None,
    end: Annotated[str | None, QueryParameter(name="to")] = None,
) -> Response[bytes]:
    """The statement of account between `from` and `to` (ISO dates), with a running balance."""
    period = statement.parse_period(
        start, end, today=_now().date(), language=request_language(request)
    )
    document = await statement.statement_pdf(
        signed_in_debtors(request), period, language=explicit_language(request), now=_now()
    )
    return _pdf(document)


@get("/preferences", name="account:preferences", guards=[require_debtor])
async def preferences_page(
    request: Request[Any, Any, Any], saved: FromQuery[bool] = False
) -> Template:
    """Language, channels, quiet hours and preferred day to pay."""
    view = await preferences.load_preferences(
        signed_in_debtors(request), language=explicit_language(request)
    )
    context = _context(request, view.language, prefs=view, saved=saved)
    return page_or_fragment(
        request,
        "portal/account/preferences.html",
        "portal/account/_preferences_form.html",
        context=context,
    )


@post("/preferences", name="account:preferences_save", guards=[require_debtor])
async def preferences_save(request: Request[Any, Any, Any]) -> Template | Response[Any]:
    """Save and redirect (303 / HX-Redirect), or show the form again with its errors."""
    form = {key: value for key, value in (await request.form()).items() if isinstance(value, str)}
    debtor_ids, language = signed_in_debtors(request), explicit_language(request)
    try:
        choice = await preferences.submit_preferences(
            debtor_ids, form, language=language, now=_now()
        )
    except preferences.InvalidPreferences as invalid:
        view = await preferences.load_preferences(debtor_ids, language=language, form=invalid.form)
        return page_or_fragment(
            request,
            "portal/account/preferences.html",
            "portal/account/_preferences_form.html",
            context=_context(request, view.language, prefs=view, saved=False),
            status_code=200 if wants_fragment(request) else 422,
        )
    url = request.app.route_reverse("account:preferences")
    return redirect_after_post(request, f"{url}?saved=1&lang={choice.language}")


handlers: list[ControllerRouterHandler] = [
    balance_page,
    invoice,
    statement_document,
    preferences_page,
    preferences_save,
]
