"""Provider notifications (`POST /webhooks/mercadopago`).

Mercado Pago posts `?data.id=<payment id>&type=payment` with headers `x-signature` and
`x-request-id` and a small JSON body. The order of work is fixed:

1. the signature is verified before anything else (an unset MERCADOPAGO_WEBHOOK_SECRET refuses
   every notification): a bad or missing one answers 401 and nothing is stored;
2. the body must be a JSON object (400 otherwise);
3. the notification goes into the inbox (`receive_notification`), unique by its identity, and a
   `process_webhook_event` job is queued for a new payment notification;
4. 200 at once — a duplicate too, since Mercado Pago retries until it gets a 2xx.

The payment itself is fetched from Mercado Pago's API by the job; nothing in the body is
trusted beyond the notification's identity. No session and no CSRF cookie: the route opts out.
"""

from __future__ import annotations

import json
from typing import Any

from litestar import Request, Response, post
from litestar.exceptions import ClientException, NotAuthorizedException
from litestar.types import ControllerRouterHandler

from saldo.payments import signature
from saldo.services.payments import PAYMENT_TOPIC, receive_notification

PROVIDER = "mercadopago"
#: Mercado Pago's notifications are a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024


@post(
    "/webhooks/mercadopago",
    name="webhooks:mercadopago",
    status_code=200,
    opt={"skip_session": True, "exclude_from_csrf": True},
    request_max_body_size=MAX_BODY_BYTES,
)
async def mercadopago(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    data_id = request.query_params.get("data.id") or ""
    request_id = request.headers.get("x-request-id") or ""
    if not signature.verify(
        secret=request.app.state.settings.mercadopago_webhook_secret,
        x_signature=request.headers.get("x-signature"),
        x_request_id=request_id,
        data_id=data_id,
    ):
        raise NotAuthorizedException(detail="missing or invalid x-signature")
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise ClientException(detail="the body is not JSON") from None
    if not isinstance(body, dict):
        raise ClientException(detail="the body is not a JSON object")
    topic = str(request.query_params.get("type") or body.get("type") or "")
    event_id = await receive_notification(
        provider=PROVIDER, topic=topic, data_id=data_id, request_id=request_id, body=body
    )
    if event_id is None:
        return Response({"status": "duplicate"})
    if topic != PAYMENT_TOPIC:
        return Response({"status": "ignored", "event": event_id})
    await request.app.state.queue.enqueue(
        "process_webhook_event", event_id, _job_id=f"webhook:{event_id}"
    )
    return Response({"status": "accepted", "event": event_id})


handlers: list[ControllerRouterHandler] = [mercadopago]
