"""Request bodies of `/api/v1`, as the OpenAPI document shows them.

Field names are the column names of `saldo import`'s CSV files, and values are strings as in
those files (amounts are decimal strings with `.`, never floats; dates are `YYYY-MM-DD`): the
values are checked by the import's rules (`saldo.services.api_upsert`), which answer 422 naming
the item and field. Only the JSON shape is checked here (HTTP 400): required fields, types,
unknown fields (refused, so a misspelt field cannot blank a stored value), batch sizes.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar.enums import RequestEncodingType
from litestar.params import Body, KwargDefinition
from msgspec import Meta

from saldo.services.api_upsert import MAX_ITEMS, MAX_LINES

#: Unknown fields are refused; the document says so (`additionalProperties: false`).
CLOSED = KwargDefinition(schema_extra={"additionalProperties": False})
CLOSED_BODY = Body(
    media_type=RequestEncodingType.JSON, schema_extra={"additionalProperties": False}
)


def _text(description: str, *examples: str) -> Any:
    return Meta(description=description, examples=list(examples) or None)


class DebtorItem(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One debtor, as a row of the import's debtors file. Omitted fields are empty; empty
    `language`, `timezone` and `country` take the defaults (es, America/Argentina/Buenos_Aires,
    AR). An upsert replaces every field of a known debtor."""

    external_id: Annotated[str, _text("The creditor's own id of the debtor (1-100).", "C-1001")]
    name: Annotated[str, _text("Person or company name (1-300 characters).", "Muñoz Ibáñez")]
    document_type: Annotated[str, _text("DNI, CUIT, RUT, RFC, …", "DNI")] = ""
    document_number: Annotated[str, _text("Identity document number.", "27345678")] = ""
    email: Annotated[str, _text("Email address.", "munoz@example.com")] = ""
    phone: Annotated[str, _text("Phone, international format.", "+5491144556677")] = ""
    whatsapp: Annotated[str, _text("WhatsApp number, international format.")] = ""
    language: Annotated[str, _text("Language tag like es or es-AR.", "es")] = ""
    timezone: Annotated[str, _text("IANA time zone.", "America/Argentina/Buenos_Aires")] = ""
    country: Annotated[str, _text("ISO 3166 code, two upper-case letters.", "AR")] = ""


class InvoiceLineItem(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One line of an invoice. Its total is quantity × unit_price × (1 + tax_rate/100),
    rounded half-up to the currency's minor unit."""

    description: Annotated[str, _text("What was sold.", "Señal de televisión")] = ""
    quantity: Annotated[str, _text("Non-negative decimal, up to 4 decimals.", "1", "2.5")]
    unit_price: Annotated[str, _text("Non-negative decimal, up to 6 decimals.", "100.00")]
    tax_rate: Annotated[str, _text("Tax in percent, non-negative decimal.", "21", "0")]


class InvoiceItem(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One invoice with its lines; its total is the sum of the line totals."""

    invoice_number: Annotated[str, _text("Unique per creditor (1-60 characters).", "F-0001")]
    debtor_external_id: Annotated[
        str, _text("A debtor of this creditor, stored or sent before.", "C-1001")
    ]
    currency: Annotated[str, _text("ARS, MXN, COP, PEN, UYU, BRL, EUR, USD, CLP or PYG.", "ARS")]
    issue_date: Annotated[str, _text("YYYY-MM-DD.", "2026-01-05")]
    due_date: Annotated[str, _text("YYYY-MM-DD, not before issue_date.", "2026-02-04")]
    lines: Annotated[
        list[Annotated[InvoiceLineItem, CLOSED]], Meta(min_length=1, max_length=MAX_LINES)
    ]


_CREDITOR = Meta(
    min_length=1,
    max_length=200,
    description="The creditor's name; created when missing (as `saldo import --creditor`).",
    examples=["Telecable del Sur"],
)


class DebtorBatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    creditor: Annotated[str, _CREDITOR]
    items: Annotated[list[Annotated[DebtorItem, CLOSED]], Meta(max_length=MAX_ITEMS)]


class InvoiceBatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    creditor: Annotated[str, _CREDITOR]
    items: Annotated[list[Annotated[InvoiceItem, CLOSED]], Meta(max_length=MAX_ITEMS)]


def rows(items: list[Any]) -> list[dict[str, Any]]:
    """The items as plain mappings (lines included), for the upsert service."""
    return [msgspec.to_builtins(item) for item in items]
