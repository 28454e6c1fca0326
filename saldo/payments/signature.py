"""Mercado Pago webhook signatures (`x-signature: ts=<ts>,v1=<hex>`).

The signed manifest is `id:{data.id};request-id:{x-request-id};ts:{ts};` — HMAC-SHA256 with the
application's webhook secret, hex-encoded. As Mercado Pago (and its SDK's validator) do, a pair
whose value is missing or blank is left out of the manifest, and values are trimmed.

`verify` delegates the check itself to the SDK's `WebhookSignatureValidator` (constant-time
comparison). The optional freshness check is done here: the SDK reads `ts` as seconds, while
Mercado Pago sends milliseconds, so a `ts` of 11 digits or more is taken as milliseconds and a
shorter one as seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from mercadopago.webhook.validator import (
    InvalidWebhookSignatureError,
    WebhookSignatureValidator,
)

__all__ = ["manifest", "sign", "verify"]

# 10**11 ms is March 1973; 10**11 s is the year 5138. Anything at least this big is milliseconds.
_MS_THRESHOLD = 10**11


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def manifest(*, data_id: str | None, request_id: str | None, ts: str) -> str:
    """The text Mercado Pago signs, with blank parts omitted."""
    parts = []
    data_id = _clean(data_id)
    request_id = _clean(request_id)
    if data_id:
        parts.append(f"id:{data_id}")
    if request_id:
        parts.append(f"request-id:{request_id}")
    parts.append(f"ts:{ts}")
    return ";".join(parts) + ";"


def sign(*, secret: str, data_id: str, request_id: str, ts_ms: int) -> str:
    """The `x-signature` header value Mercado Pago sends for this notification."""
    text = manifest(data_id=data_id, request_id=request_id, ts=str(ts_ms))
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()
    return f"ts={ts_ms},v1={digest}"


def verify(
    *,
    secret: str | None,
    x_signature: str | None,
    x_request_id: str | None,
    data_id: str | None,
    now_ms: int | None = None,
    tolerance_seconds: int | None = None,
) -> bool:
    """True only when `x_signature` is a valid signature of this notification under `secret`.

    A missing or empty secret, a missing or malformed header and a mismatch are all False.
    With `tolerance_seconds`, a signature whose timestamp is further than that from `now_ms`
    (default: the current time) is False too.
    """
    if not secret:
        return False
    try:
        WebhookSignatureValidator.validate(x_signature, x_request_id, data_id, secret)
    except (InvalidWebhookSignatureError, ValueError, TypeError):
        # ValueError: no secret; TypeError: a non-ASCII hash cannot be compared in constant time.
        return False
    if tolerance_seconds is None:
        return True
    ts = _timestamp_ms(x_signature or "")
    if ts is None:
        return False
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return abs(now - ts) <= tolerance_seconds * 1000


def _timestamp_ms(header: str) -> int | None:
    """The header's `ts` in milliseconds; the last `ts=` wins, as in the SDK's parser."""
    found: str | None = None
    for part in header.split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip().lower() == "ts" and value.strip():
            found = value.strip()
    if found is None or not (found.isascii() and found.isdigit()):
        return None
    ts = int(found)
    return ts if ts >= _MS_THRESHOLD else ts * 1000
