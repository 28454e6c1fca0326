"""The debtor's `/pay` journey: choose what to pay, the checkout, its live state, demo mode's
provider page, and "ya pagué".

Routes (all debtor-scoped, `require_debtor`):

- GET  /pay                           per account: whole balance, chosen invoices or an amount;
                                      `?installment=<id>`: that installment of the active plan
- POST /pay                           start a checkout → 303 to the provider (or the demo page)
- GET  /pay/return/{public_id}        where the provider sends the debtor back; live state
- GET  /pay/simulated/{public_id}     demo mode's stand-in for Mercado Pago (404 otherwise)
- POST /pay/simulated                 the outcome chosen there → 303 to the return page
- GET  /pay/claim, POST /pay/claim    "ya pagué": report a payment made elsewhere
- GET  /pay/claims/{claim_id}         the report as sent, and what happens next
- GET  /pay/claims/{claim_id}/receipt the receipt sent with it (a download)
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.exceptions import NoRouteMatchFoundException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.params import FromPath, FromQuery
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER, HTTP_422_UNPROCESSABLE_ENTITY
from litestar.types import ControllerRouterHandler

from portal.account import explicit_language
from portal.session import require_debtor, signed_in_debtors
from saldo.errors import Conflict, ValidationFailed
from saldo.payments import ProviderError
from saldo.services import checkout, claims, uploads
from saldo.web import gettext, page_or_fragment, redirect_after_post, request_language

START_PAGE = "portal/pay/start.html"
RETURN_PAGE = "portal/pay/return.html"
STATUS_FRAGMENT = "portal/pay/_status.html"
SIMULATED_PAGE = "portal/pay/simulated.html"
CLAIM_PAGE = "portal/pay/claim.html"
CLAIM_SENT_PAGE = "portal/pay/claim_sent.html"

#: The claim form's body limit: the receipt cap plus room for the other fields and framing.
CLAIM_MAX_BODY = uploads.MAX_UPLOAD_BYTES + 1024 * 1024
TOO_LARGE = "too_large"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _provider(request: Request[Any, Any, Any]) -> Any:
    return request.app.state.payment_provider


def _optional_url(request: Request[Any, Any, Any], name: str, **params: Any) -> str:
    try:
        return request.app.route_reverse(name, **params)
    except NoRouteMatchFoundException:
        return ""


def _context(request: Request[Any, Any, Any], language: str, **values: Any) -> dict[str, Any]:
    return {
        "lang": language,
        "logout_url": _optional_url(request, "logout") or None,
        "simulated": bool(_provider(request).simulated),
        **values,
    }


async def _form(request: Request[Any, Any, Any]) -> tuple[dict[str, str], list[str]]:
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    return fields, [v for v in form.getall("invoice_ids", []) if isinstance(v, str)]


# ---------------------------------------------------------------------------- choose and pay


async def _start_page(
    request: Request[Any, Any, Any],
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
    installment: str | None = None,
) -> Template:
    options = await checkout.pay_options(
        signed_in_debtors(request),
        language=explicit_language(request),
        now=_now(),
        installment=installment,
    )
    context = _context(
        request, options.language, options=options, form=form or {}, errors=errors or {}
    )
    return page_or_fragment(request, START_PAGE, context=context, status_code=status_code)


@get("/pay", name="pay:start", guards=[require_debtor])
async def start(
    request: Request[Any, Any, Any], installment: FromQuery[str | None] = None
) -> Template:
    """What each account owes and the three ways to pay it online, plus the bank details; with
    `?installment=<id>`, just what is left of that installment of the debtor's plan."""
    return await _start_page(request, installment=installment)


@post("/pay", name="pay:start_submit", guards=[require_debtor])
async def start_submit(request: Request[Any, Any, Any]) -> Template | Response[Any]:
    """Start a checkout and send the debtor to pay it, or show the form again with the error."""
    fields, invoice_ids = await _form(request)
    account_text = fields.get("account", "")
    form = {**fields, "invoice_ids": invoice_ids}
    language = request_language(request)
    installment = fields.get("installment") if fields.get("choice") == "installment" else None
    if not account_text.isdigit() or len(account_text) > 10:
        message = gettext(language, "Elija la cuenta que quiere pagar.")
        return await _start_page(
            request,
            form=form,
            errors={"form": message},
            status_code=HTTP_422_UNPROCESSABLE_ENTITY,
            installment=installment,
        )
    return_url = request.app.route_reverse("pay:return", public_id="{reference}")
    try:
        started = await checkout.start_checkout(
            debtor_ids=signed_in_debtors(request),
            account_id=int(account_text),
            choice=fields.get("choice", ""),
            invoice_ids=invoice_ids,
            amount=fields.get("amount"),
            installment=installment,
            provider=_provider(request),
            public_url=request.app.state.settings.public_url,
            return_urls={"success": return_url, "pending": return_url, "failure": return_url},
            notification_url=_optional_url(request, "webhooks:mercadopago"),
            now=_now(),
            language=explicit_language(request),
        )
    except ValidationFailed as invalid:
        return await _start_page(
            request,
            form=form,
            errors={invalid.field or "form": str(invalid)},
            status_code=HTTP_422_UNPROCESSABLE_ENTITY,
            installment=installment,
        )
    except ProviderError:
        message = gettext(
            language,
            "No pudimos conectar con Mercado Pago. Intente de nuevo en unos minutos.",
        )
        return await _start_page(
            request, form=form, errors={"form": message}, status_code=503, installment=installment
        )
    return redirect_after_post(request, started.init_point)


# ---------------------------------------------------------------------------- return page


@get("/pay/return/{public_id:str}", name="pay:return", guards=[require_debtor])
async def return_page(
    request: Request[Any, Any, Any],
    public_id: FromPath[str],
    payment_id: FromQuery[str | None] = None,
) -> Template:
    """The checkout's live state; the fragment polls itself until the state is final.

    Mercado Pago appends `payment_id` (and `status`, `collection_id`, `external_reference`…):
    a sync of that payment is queued at once, so a slow webhook does not keep anyone waiting.
    """
    view = await checkout.request_sync(
        signed_in_debtors(request),
        public_id,
        payment_id or request.query_params.get("collection_id"),
        queue=request.app.state.queue,
        language=explicit_language(request),
        now=_now(),
    )
    context = _context(
        request,
        view.language,
        view=view,
        status_url=request.app.route_reverse("pay:return", public_id=view.public_id),
    )
    return page_or_fragment(request, RETURN_PAGE, STATUS_FRAGMENT, context=context)


# ---------------------------------------------------------------------------- demo mode


@get("/pay/simulated/{public_id:str}", name="pay:simulated", guards=[require_debtor])
async def simulated(request: Request[Any, Any, Any], public_id: FromPath[str]) -> Template:
    """Demo mode's provider page: approve, leave pending or reject. No real money moves."""
    view = await checkout.simulated_checkout(
        signed_in_debtors(request),
        public_id,
        provider=_provider(request),
        language=explicit_language(request),
        now=_now(),
    )
    return page_or_fragment(
        request, SIMULATED_PAGE, context=_context(request, view.language, view=view)
    )


@post("/pay/simulated", name="pay:simulate", guards=[require_debtor])
async def simulate(request: Request[Any, Any, Any]) -> Response[Any]:
    """Record the chosen outcome and come back as Mercado Pago would: to the return page with
    the payment's id and status in the query."""
    fields, _ = await _form(request)
    public_id = fields.get("public_id", "")
    try:
        result = await checkout.simulate_outcome(
            debtor_ids=signed_in_debtors(request),
            public_id=public_id,
            outcome=fields.get("outcome", ""),
            provider=_provider(request),
            queue=request.app.state.queue,
            language=explicit_language(request),
            now=_now(),
        )
    except Conflict:
        return redirect_after_post(
            request, request.app.route_reverse("pay:return", public_id=public_id)
        )
    query = urlencode(
        {
            "status": result.status,
            "payment_id": result.payment_id,
            "collection_id": result.payment_id,
            "external_reference": result.public_id,
        }
    )
    url = request.app.route_reverse("pay:return", public_id=result.public_id)
    return redirect_after_post(request, f"{url}?{query}")


# ---------------------------------------------------------------------------- "ya pagué"


async def _claim_page(
    request: Request[Any, Any, Any],
    form: claims.ClaimForm,
    *,
    status_code: int = 200,
) -> Template:
    options = await checkout.pay_options(
        signed_in_debtors(request), language=explicit_language(request), now=_now()
    )
    earliest, latest = claims.claim_window(options.today)
    context = _context(
        request,
        options.language,
        options=options,
        form=form,
        errors=form.errors,
        methods=claims.METHODS,
        max_age_days=claims.MAX_AGE_DAYS,
        earliest=earliest.isoformat(),
        latest=latest.isoformat(),
    )
    return page_or_fragment(request, CLAIM_PAGE, context=context, status_code=status_code)


@get("/pay/claim", name="pay:claim", guards=[require_debtor])
async def claim(
    request: Request[Any, Any, Any],
    account: FromQuery[str] = "",
    error: FromQuery[str] = "",
) -> Template:
    """The "ya pagué" form. `?error=too_large` is where an oversized upload lands."""
    errors: dict[str, str] = {}
    if error == TOO_LARGE:
        errors["receipt"] = gettext(
            request_language(request), "El archivo supera el máximo de 5 MB."
        )
    return await _claim_page(
        request,
        claims.ClaimForm(account=account, errors=errors),
        status_code=HTTP_422_UNPROCESSABLE_ENTITY if errors else 200,
    )


def _too_large(request: Request[Any, Any, Any], _exc: Exception) -> Response[Any]:
    """A body over the route's limit never reaches the handler: back to the form, with the
    reason next to the file field."""
    url = request.app.route_reverse("pay:claim")
    return Redirect(path=f"{url}?error={TOO_LARGE}", status_code=HTTP_303_SEE_OTHER)


@post(
    "/pay/claim",
    name="pay:claim_submit",
    guards=[require_debtor],
    request_max_body_size=CLAIM_MAX_BODY,
    exception_handlers={RequestEntityTooLarge: _too_large},
)
async def claim_submit(request: Request[Any, Any, Any]) -> Template | Response[Any]:
    """Store the report (and its receipt) and show what happens next, or the form's errors."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    upload = form.get("receipt")
    receipt = None
    if isinstance(upload, UploadFile) and upload.filename:
        receipt = claims.Receipt(upload.filename, await upload.read())
        await upload.close()
    submitted = claims.ClaimForm(
        account=fields.get("account", ""),
        paid_on=fields.get("paid_on", ""),
        amount=fields.get("amount", ""),
        method=fields.get("method", ""),
        reference=fields.get("reference", ""),
        invoice_ids=tuple(v for v in form.getall("invoice_ids", []) if isinstance(v, str)),
    )
    try:
        claim_id = await claims.submit_claim(
            signed_in_debtors(request),
            submitted,
            receipt,
            data_dir=request.app.state.settings.data_path,
            now=_now(),
            language=explicit_language(request),
        )
    except claims.InvalidClaim as invalid:
        return await _claim_page(request, invalid.form, status_code=HTTP_422_UNPROCESSABLE_ENTITY)
    return redirect_after_post(
        request, request.app.route_reverse("pay:claim_sent", claim_id=claim_id)
    )


@get("/pay/claims/{claim_id:int}", name="pay:claim_sent", guards=[require_debtor])
async def claim_sent(request: Request[Any, Any, Any], claim_id: FromPath[int]) -> Template:
    """The report as received, and what happens next."""
    view = await claims.claim_view(
        signed_in_debtors(request), claim_id, language=explicit_language(request)
    )
    return page_or_fragment(
        request, CLAIM_SENT_PAGE, context=_context(request, view.language, claim=view)
    )


@get("/pay/claims/{claim_id:int}/receipt", name="pay:claim_receipt", guards=[require_debtor])
async def claim_receipt(
    request: Request[Any, Any, Any], claim_id: FromPath[int]
) -> Response[bytes]:
    """The receipt as uploaded, always as a download."""
    stored = await claims.claim_receipt(
        signed_in_debtors(request),
        claim_id,
        data_dir=request.app.state.settings.data_path,
        language=explicit_language(request),
    )
    return Response(
        content=stored.content,
        media_type=stored.content_type,
        headers={
            "Content-Disposition": stored.disposition,
            "Cache-Control": "no-store, private",
        },
    )


handlers: list[ControllerRouterHandler] = [
    start,
    start_submit,
    return_page,
    simulated,
    simulate,
    claim,
    claim_submit,
    claim_sent,
    claim_receipt,
]
