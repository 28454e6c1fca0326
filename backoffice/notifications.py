"""Messages (everyone who may see accounts): the outbox as staff see it, and previews.

- GET /backoffice/notifications                  every message, newest first, filtered by
  status, channel, template, debtor and date (a filtered view is a link; htmx swaps the
  results only); why each is waiting or stopped, and the last provider error;
- GET /backoffice/notifications/{id}             one message: status, timing, content as sent;
- GET /backoffice/notifications/{id}/body        its HTML body alone, for the page's iframe;
- GET /backoffice/notifications/preview          any template × debtor × channel × language,
  rendered as it would go out now (with the debtor's own data, or example values);
- GET /backoffice/notifications/preview/body     the preview's HTML body alone.

All read-only. Email bodies are shown in a sandboxed iframe whose own response allows the
inline styles emails are made of, and nothing else (no scripts, no outside requests).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get
from litestar.params import FromPath
from litestar.response import Template
from litestar.status_codes import HTTP_200_OK, HTTP_422_UNPROCESSABLE_ENTITY
from litestar.types import ControllerRouterHandler, Guard

from backoffice.permissions import requires
from backoffice.shell import shell
from saldo.errors import NotFound, ValidationFailed
from saldo.notify.unsubscribe import derive_key
from saldo.services import notify_render, outbox_views
from saldo.services.outbox import STATUSES
from saldo.services.outbox_views import MessageFilters
from saldo.web import page_or_fragment

VIEW: list[Guard] = [requires("accounts.view")]
FIELDS = ("status", "channel", "template", "debtor", "from", "to")
PREVIEW_FIELDS = ("template", "debtor", "channel", "language")
#: The only thing an email body shown to staff may do: use its own inline styles and images.
BODY_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
)


def _date(value: str, field: str, errors: dict[str, str]) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        errors[field] = "date"
        return None


def _page_number(value: str | None) -> int:
    return int(value) if value and value.isdigit() and len(value) < 7 else 1


@get("/notifications", name="backoffice:notifications", guards=VIEW)
async def messages(request: Request[Any, Any, Any]) -> Template:
    raw = {name: request.query_params.get(name, "").strip()[:100] for name in FIELDS}
    errors: dict[str, str] = {}
    filters = MessageFilters(
        status=raw["status"],
        channel=raw["channel"],
        template=raw["template"],
        debtor=raw["debtor"],
        date_from=_date(raw["from"], "from", errors),
        date_to=_date(raw["to"], "to", errors),
    )
    if filters.date_from and filters.date_to and filters.date_from > filters.date_to:
        errors["to"] = "order"
    page = await outbox_views.search(filters, page=_page_number(request.query_params.get("page")))
    base = request.app.route_reverse("backoffice:notifications")
    kept = {k: v for k, v in raw.items() if v}

    def page_url(number: int) -> str:
        return f"{base}?{urlencode({**kept, 'page': number})}"

    context = shell(
        request,
        "notifications",
        page=page,
        raw=raw,
        errors=errors,
        page_url=page_url,
        filtered=bool(kept),
        statuses=STATUSES,
        channels=notify_render.CHANNELS,
        templates=outbox_views.TEMPLATES,
    )
    return page_or_fragment(
        request,
        "backoffice/notifications/index.html",
        "backoffice/notifications/_results.html",
        context=context,
    )


def _unsubscribe_key(request: Request[Any, Any, Any]) -> bytes:
    state = request.app.state
    key = state.get("unsubscribe_key")
    if key is None:
        key = state["unsubscribe_key"] = derive_key(state.settings.resolved_secret_key())
    return bytes(key)


async def _preview(
    request: Request[Any, Any, Any],
) -> tuple[dict[str, str], dict[str, str], notify_render.Preview | None]:
    raw = {name: request.query_params.get(name, "").strip()[:40] for name in PREVIEW_FIELDS}
    errors: dict[str, str] = {}
    if not any(raw.values()):
        return raw, errors, None
    if raw["template"] not in notify_render.PREVIEWABLE:
        errors["template"] = "choose"
    if raw["channel"] not in notify_render.CHANNELS:
        errors["channel"] = "choose"
    if not (raw["debtor"].isdigit() and 0 < int(raw["debtor"]) < 2**31):
        errors["debtor"] = "number"
    if raw["language"] not in ("", "es", "en"):
        errors["language"] = "choose"
    if errors:
        return raw, errors, None
    try:
        result = await notify_render.preview(
            raw["template"],
            int(raw["debtor"]),
            raw["channel"],
            raw["language"] or None,
            now=dt.datetime.now(dt.UTC),
            public_url=request.app.state.settings.public_url,
            unsubscribe_key=_unsubscribe_key(request),
        )
    except NotFound:
        errors["debtor"] = "missing"
        return raw, errors, None
    except ValidationFailed as exc:
        errors[exc.field if exc.field in PREVIEW_FIELDS else "template"] = str(exc)
        return raw, errors, None
    return raw, errors, result


@get("/notifications/preview", name="backoffice:notifications:preview", guards=VIEW)
async def preview(request: Request[Any, Any, Any]) -> Template:
    raw, errors, result = await _preview(request)
    body_url = ""
    if result is not None and result.rendered.html:
        body_url = (
            request.app.route_reverse("backoffice:notifications:preview_body")
            + "?"
            + urlencode(raw)
        )
    context = shell(
        request,
        "notifications",
        raw=raw,
        errors=errors,
        preview=result,
        body_url=body_url,
        kinds=notify_render.PREVIEWABLE,
        channels=notify_render.CHANNELS,
    )
    return page_or_fragment(
        request,
        "backoffice/notifications/preview.html",
        "backoffice/notifications/_preview.html",
        context=context,
        status_code=HTTP_422_UNPROCESSABLE_ENTITY if errors else HTTP_200_OK,
    )


def _body(html: str) -> Response[str]:
    return Response(
        content=html,
        media_type="text/html",
        headers={"Content-Security-Policy": BODY_CSP, "X-Frame-Options": "SAMEORIGIN"},
    )


@get("/notifications/preview/body", name="backoffice:notifications:preview_body", guards=VIEW)
async def preview_body(request: Request[Any, Any, Any]) -> Response[str]:
    _, errors, result = await _preview(request)
    if errors or result is None or not result.rendered.html:
        raise NotFound("nothing to preview with these choices")
    return _body(result.rendered.html)


@get("/notifications/{notification_id:int}", name="backoffice:notification", guards=VIEW)
async def detail(request: Request[Any, Any, Any], notification_id: FromPath[int]) -> Template:
    found = await outbox_views.message(notification_id)
    context = shell(request, "notifications", message=found)
    return page_or_fragment(request, "backoffice/notifications/detail.html", context=context)


@get("/notifications/{notification_id:int}/body", name="backoffice:notification:body", guards=VIEW)
async def detail_body(
    request: Request[Any, Any, Any], notification_id: FromPath[int]
) -> Response[str]:
    found = await outbox_views.message(notification_id)
    if not found.body_html:
        raise NotFound("this message has no HTML body")
    return _body(found.body_html)


handlers: list[ControllerRouterHandler] = [messages, preview, preview_body, detail, detail_body]
