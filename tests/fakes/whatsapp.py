"""A fake WhatsApp Cloud API on 127.0.0.1, with a registry of approved templates.

    with FakeWhatsApp(token="EAAG...", phone_number_id="1098765") as wa:
        settings = replace(settings, whatsapp_api_url=wa.url, ...)
        ...
        [message] = wa.messages  # the request bodies accepted

`POST /v20.0/{phone_number_id}/messages` with `Authorization: Bearer <token>` takes a
`type: template` message. It is refused like the real API: 401 (code 190) for a bad token,
400 with code 132001 for a template not in `approved` (name → number of body parameters) or a
language it has no translation in, 132000 when the parameter count differs, 131026 for numbers
in `unreachable`. Accepted messages answer with a `wamid`. `fail_next(n, status, code)` for
throttling (429 / 130429) or outages.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

from saldo.notify.whatsapp import TEMPLATES
from tests.fakes.loopback import LoopbackFake, Request

__all__ = ["APPROVED", "FakeWhatsApp"]

#: Saldo's templates as registered at Meta: name → number of body parameters.
APPROVED: Mapping[str, int] = {t.name: len(t.parameters) for t in TEMPLATES.values()}
_PATH = re.compile(r"/v20\.0/([^/]+)/messages")


def error(status: int, code: int, message: str) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "OAuthException",
            "code": code,
            "fbtrace_id": secrets.token_urlsafe(8),
        }
    }


class FakeWhatsApp(LoopbackFake):
    def __init__(
        self,
        token: str = "wa-token",
        phone_number_id: str = "1098765432",
        *,
        approved: Mapping[str, int] = APPROVED,
        languages: tuple[str, ...] = ("es", "en"),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.token = token
        self.phone_number_id = phone_number_id
        self.approved = dict(approved)
        self.languages = languages
        self.unreachable: set[str] = set()
        self._messages: list[dict[str, Any]] = []

    @property
    def messages(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self._messages)

    def fail_next(self, n: int, status: int = 503, code: int = 131000) -> None:  # type: ignore[override]
        super().fail_next(n, status, error(status, code, "Something went wrong"))

    def handle(self, request: Request) -> tuple[int, Any]:
        match = _PATH.fullmatch(request.path)
        if request.method != "POST" or match is None:
            return 404, error(404, 100, "Unsupported post request")
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return 401, error(401, 190, "Invalid OAuth access token")
        if match.group(1) != self.phone_number_id:
            return 400, error(400, 100, "Invalid phone number id")
        body = request.json if isinstance(request.json, dict) else {}
        to = str(body.get("to", ""))
        if body.get("messaging_product") != "whatsapp" or not re.fullmatch(r"\d{8,15}", to):
            return 400, error(400, 100, "Invalid parameter")
        if body.get("type") != "template":
            return 400, error(400, 131047, "Re-engagement message: only templates may be sent")
        template = body.get("template") or {}
        name = template.get("name")
        language = (template.get("language") or {}).get("code")
        if name not in self.approved or language not in self.languages:
            return 400, error(400, 132001, "Template name does not exist in the translation")
        parameters = [
            p for c in template.get("components") or [] if c.get("type") == "body"
            for p in c.get("parameters") or []
        ]  # fmt: skip
        if len(parameters) != self.approved[name] or any(not p.get("text") for p in parameters):
            return 400, error(400, 132000, "Number of parameters does not match")
        if to in self.unreachable:
            return 400, error(400, 131026, "Message undeliverable")
        wamid = "wamid." + secrets.token_urlsafe(24)
        with self.lock:
            self._messages.append({**body, "id": wamid})
        return 200, {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": wamid}],
        }
