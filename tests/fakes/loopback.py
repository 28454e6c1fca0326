"""A small threaded HTTP server on 127.0.0.1 for the fakes of outside providers.

A fake subclasses `LoopbackFake` and implements `handle(request) -> (status, json body)`;
requests are served concurrently and recorded in order (`requests`). `fail_next(n, status,
body)` makes the next n requests fail with that answer before they reach `handle`, and
`delay` makes every answer wait.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)


@dataclass
class _Failure:
    remaining: int
    status: int
    body: Any


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: LoopbackFake


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        parsed: Any = None
        form: dict[str, str] = {}
        content_type = headers.get("content-type", "")
        if content_type.startswith("application/json") and raw:
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = None
        elif content_type.startswith("application/x-www-form-urlencoded"):
            form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        request = Request(self.command, urlsplit(self.path).path, headers, raw, parsed, form)
        status, body = self.server.fake._dispatch(request)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _serve
    do_POST = _serve


class LoopbackFake:
    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self._requests: list[Request] = []
        self._failures: list[_Failure] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def handle(self, request: Request) -> tuple[int, Any]:
        raise NotImplementedError

    def _dispatch(self, request: Request) -> tuple[int, Any]:
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self._requests.append(request)
            if self._failures:
                failure = self._failures[0]
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.pop(0)
                return failure.status, failure.body
        return self.handle(request)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Any:
        if self._server is None:
            server = _Server(("127.0.0.1", 0), _Handler)
            server.fake = self
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def requests(self) -> list[Request]:
        with self.lock:
            return list(self._requests)

    def fail_next(self, n: int, status: int, body: Any) -> None:
        """The next `n` requests get `status` and `body` instead of being handled."""
        with self.lock:
            self._failures.append(_Failure(n, status, body))
