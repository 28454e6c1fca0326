"""Web fixtures: the real app (real PostgreSQL and Redis) behind Litestar's async test client.

`client` serves the app with a few probe routes (`PROBES`) that exist only in tests: one raises,
one takes a POST, one writes to the session, one raises domain errors.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from litestar import Litestar, Request, Router, get, post
from litestar.params import FromQuery
from litestar.testing import AsyncTestClient
from litestar.types import ControllerRouterHandler

from saldo.app import create_app
from saldo.errors import NotFound, ValidationFailed
from saldo.settings import Settings
from saldo.web import session_set

BOOM_SECRET = "internal-detail-7f3a"  # must never reach a response body


@get("/boom", name="probe:boom")
async def boom() -> None:
    raise RuntimeError(f"unexpected failure with {BOOM_SECRET}")


@post("/form", name="probe:form", status_code=200)
async def form() -> dict[str, str]:
    return {"accepted": "yes"}


@get("/session", name="probe:session")
async def session_probe(request: Request[Any, Any, Any]) -> dict[str, str]:
    session_set(request, "probe", "1")
    return {"session": "written"}


@get("/session/show", name="probe:session-show")
async def session_show(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return dict(request.session)


@get("/missing", name="probe:missing")
async def missing() -> None:
    raise NotFound("No encontramos esa cuenta.")


@get("/invalid", name="probe:invalid")
async def invalid() -> None:
    raise ValidationFailed("El monto debe ser mayor que cero.", field="amount")


@get("/typed", name="probe:typed")
async def typed(n: FromQuery[int]) -> dict[str, int]:
    return {"n": n}


@post("/webhooks/probe", name="probe:webhook", status_code=200)
async def webhook_probe() -> dict[str, str]:
    return {"received": "yes"}


PROBES = Router(
    path="/_probe",
    route_handlers=[boom, form, session_probe, session_show, missing, invalid, typed],
)


@pytest.fixture(scope="session")
def web_settings(servers: Any, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir = tmp_path_factory.mktemp("saldo-web")
    return Settings.from_env({**os.environ, "SALDO_DATA_DIR": str(data_dir)}, dotenv=None)


AppFactory = Callable[..., Litestar]


@pytest.fixture
def make_app(servers: Any, web_settings: Settings) -> AppFactory:
    """Build an app; keyword overrides replace settings fields (e.g. `public_url=...`)."""

    def build(
        extra_route_handlers: Sequence[ControllerRouterHandler] = (PROBES, webhook_probe),
        **overrides: Any,
    ) -> Litestar:
        settings = dataclasses.replace(web_settings, **overrides)
        return create_app(
            settings,
            redis_prefix=servers.redis_prefix,
            extra_route_handlers=extra_route_handlers,
        )

    return build


@pytest.fixture
async def client(db: Any, make_app: AppFactory) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(make_app()) as test_client:
        yield test_client
