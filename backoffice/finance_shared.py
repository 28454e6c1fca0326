"""Pieces every finance screen uses: guards, the page context, amounts, flash, form parsing.

Permissions: looking (the queue, a line, an import's result, reconciliation, the export) is
`payments.view`; uploading a statement is `payments.reconcile`; assigning, splitting and
marking "not ours" is `payments.apply_unmatched` (finance only).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

from babel.numbers import format_currency
from litestar import Request, Response
from litestar.datastructures import FormMultiDict
from litestar.types import Guard

from backoffice.permissions import requires
from backoffice.session import FLASH, session_of
from backoffice.shell import shell
from saldo import money
from saldo.web import redirect_after_post, request_language, session_set

SECTION: Final = "finance"
VIEW: list[Guard] = [requires("payments.view")]
RECONCILE: list[Guard] = [requires("payments.reconcile")]
APPLY: list[Guard] = [requires("payments.apply_unmatched")]
CURRENCIES: Final = tuple(sorted(money.EXPONENTS))

#: "1.234,56 ARS" / "1,234.56 ARS": the ISO code, never an ambiguous "$", on staff screens.
_PATTERN: Final = "#,##0.00\xa0¤¤"


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def today() -> dt.date:
    return now().date()


def amount_formatter(language: str) -> Callable[[int, str], str]:
    locale = "en_US" if language == "en" else "es_AR"

    def amount(minor: int, currency: str) -> str:
        value: Decimal = money.to_decimal(minor, currency)
        return format_currency(value, currency, locale=locale, format=_PATTERN)

    return amount


def context(request: Request[Any, Any, Any], **values: Any) -> dict[str, Any]:
    """The back-office shell plus `amount(minor, currency)` in the page's language."""
    return shell(
        request,
        SECTION,
        amount=amount_formatter(request_language(request)),
        currencies=CURRENCIES,
        **values,
    )


def pop_flash(request: Request[Any, Any, Any], *kinds: str) -> dict[str, Any] | None:
    """The one-time notice for this page (of one of `kinds`, when given), taken out of the
    session; a notice meant for another page stays where it is."""
    session = session_of(request) or {}
    flash = session.get(FLASH)
    if not isinstance(flash, dict) or (kinds and flash.get("kind") not in kinds):
        return None
    session.pop(FLASH, None)
    return flash


def done(request: Request[Any, Any, Any], url: str, flash: dict[str, Any]) -> Response[Any]:
    """303 (or HX-Redirect) to `url`, which shows `flash` once."""
    session_set(request, FLASH, flash)
    return redirect_after_post(request, url)


def positive_int(value: str | None) -> int | None:
    text = (value or "").strip()
    return int(text) if text.isdigit() and 0 < len(text) <= 12 and int(text) > 0 else None


def form_text(form: FormMultiDict, name: str, limit: int) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def ids_of(values: list[Any]) -> list[int]:
    """Positive integer ids from repeated form or query values, once each, in order."""
    found = [positive_int(v) for v in values if isinstance(v, str)]
    return list(dict.fromkeys(i for i in found if i is not None))


def page_number(value: str | None) -> int:
    return positive_int(value) or 1


def iso_date(value: str | None) -> dt.date | None:
    text = (value or "").strip()
    if len(text) != 10:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def error(field: str, message: str = "", code: str = "") -> dict[str, str]:
    """A form error for the templates: the field it belongs next to, the service's message or
    a code the template words."""
    return {"field": field, "message": message, "code": code}
