"""A fake Twilio-style SMS API on 127.0.0.1.

    with FakeSms(account_sid="AC123", auth_token="secret") as sms:
        settings = replace(settings, sms_api_url=sms.url, ...)
        ...
        [message] = sms.messages  # {"sid", "to", "from", "body"}

`POST /2010-04-01/Accounts/{sid}/Messages.json` takes form-encoded To, From and Body with HTTP
basic auth (401 with Twilio's error shape otherwise) and answers 201 with the new message's
`sid`. A `To` that is not E.164 (`+` and 8–15 digits) answers 400 with code 21211, as Twilio
does; numbers in `unreachable` answer 400 with code 21610 (the recipient opted out). Use
`fail_next(n, status)` for outages (503) or rate limits (429).
"""

from __future__ import annotations

import base64
import re
import secrets
from typing import Any

from tests.fakes.loopback import LoopbackFake, Request

__all__ = ["FakeSms"]

_E164 = re.compile(r"\+[1-9]\d{7,14}")
_PATH = re.compile(r"/2010-04-01/Accounts/([^/]+)/Messages\.json")


def error(status: int, code: int, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "more_info": "", "status": status}


class FakeSms(LoopbackFake):
    def __init__(
        self, account_sid: str = "AC" + "0" * 32, auth_token: str = "token", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.unreachable: set[str] = set()
        self._messages: list[dict[str, str]] = []

    @property
    def messages(self) -> list[dict[str, str]]:
        with self.lock:
            return list(self._messages)

    def fail_next(self, n: int, status: int = 503, body: Any = None) -> None:  # type: ignore[override]
        super().fail_next(
            n, status, body or error(status, 20500 if status >= 500 else 20429, "try later")
        )

    def handle(self, request: Request) -> tuple[int, Any]:
        match = _PATH.fullmatch(request.path)
        if request.method != "POST" or match is None:
            return 404, error(404, 20404, "The requested resource was not found")
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if (
            match.group(1) != self.account_sid
            or request.headers.get("authorization") != f"Basic {expected}"
        ):
            return 401, error(401, 20003, "Authenticate")
        to, sender, body = (request.form.get(k, "") for k in ("To", "From", "Body"))
        if not _E164.fullmatch(to):
            return 400, error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not body:
            return 400, error(400, 21602, "Message body is required.")
        if to in self.unreachable:
            return 400, error(400, 21610, "Attempt to send to unsubscribed recipient")
        sid = "SM" + secrets.token_hex(16)
        message = {"sid": sid, "to": to, "from": sender, "body": body}
        with self.lock:
            self._messages.append(message)
        return 201, {**message, "status": "queued", "account_sid": self.account_sid}
