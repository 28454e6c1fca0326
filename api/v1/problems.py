"""The problem details (RFC 9457) every `/api/v1` error answers with, as the OpenAPI document
describes them. `saldo.app.problem_for` builds the bodies; this only documents their shape."""

from __future__ import annotations

import msgspec
from litestar.openapi.datastructures import ResponseSpec

PROBLEM_JSON = "application/problem+json"


class FieldError(msgspec.Struct, kw_only=True):
    field: str  # e.g. "items[3].email", "since"
    message: str
    source: str = ""  # where Litestar found a malformed parameter: query, path, body


class ProblemDetails(msgspec.Struct, kw_only=True):
    type: str  # "about:blank" or urn:saldo:problem:<kind>
    title: str
    status: int
    detail: str = ""
    errors: list[FieldError] = msgspec.field(default_factory=list)


def problem(description: str) -> ResponseSpec:
    return ResponseSpec(
        data_container=ProblemDetails,
        description=description,
        media_type=PROBLEM_JSON,
        generate_examples=False,
    )


BAD_REQUEST = problem("Malformed request: a parameter or the JSON body does not fit the schema.")
UNAUTHORIZED = problem(
    "No valid API key: `Authorization: Bearer <key>` is missing, unknown or revoked."
)
FORBIDDEN = problem("The API key lacks the scope this operation needs (`read` or `write`).")
NOT_FOUND = problem("Nothing with that id.")
TOO_LARGE = problem("The body is larger than the API accepts.")
INVALID = problem("Refused by Saldo's rules; `errors[].field` names what, e.g. `items[3].email`.")

READ_RESPONSES = {400: BAD_REQUEST, 401: UNAUTHORIZED, 403: FORBIDDEN, 422: INVALID}
LOOKUP_RESPONSES = {400: BAD_REQUEST, 401: UNAUTHORIZED, 403: FORBIDDEN, 404: NOT_FOUND}
WRITE_RESPONSES = {
    400: BAD_REQUEST,
    401: UNAUTHORIZED,
    403: FORBIDDEN,
    413: TOO_LARGE,
    422: INVALID,
}
