"""Schemathesis against `/api/v1`: requests generated from the app's own OpenAPI document
(`/schema/openapi.json`), valid and invalid, sent with a valid key to Saldo served by uvicorn in
its own process on loopback. No answer may be a server error, and every answer must be one the
document describes (status, content type, body schema).

Bounded for CI: a fixed number of examples per operation and generation mode, derandomized, so
the run is the same every time and takes well under a minute.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from saldo.services.apikeys import create_api_key

SERVE = (
    "import sys, uvicorn\n"
    "from saldo.app import create_app\n"
    "uvicorn.run(create_app(redis_prefix=sys.argv[2]), host='127.0.0.1', port=int(sys.argv[1]),"
    " log_level='warning')\n"
)
EXAMPLES_PER_OPERATION = 20
OPERATIONS = [
    ("PUT", "/api/v1/debtors"),
    ("PUT", "/api/v1/invoices"),
    ("GET", "/api/v1/accounts/{account_id}/balance"),
    ("GET", "/api/v1/debtors/{external_id}/balance"),
    ("GET", "/api/v1/payments"),
    ("GET", "/api/v1/plans"),
    ("GET", "/api/v1/disputes"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the web process exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url}/readyz did not answer 200 within {seconds} s")


@pytest.fixture(scope="module")
def live_url(servers: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(
        os.environ,
        DATABASE_URL=servers.database_url,
        REDIS_URL=servers.redis_url,
        PUBLIC_URL=url,
        SALDO_DATA_DIR=str(tmp_path_factory.mktemp("schemathesis-data")),
    )
    prefix = f"{servers.redis_prefix}schemathesis:"
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(port), prefix], env=env)
    try:
        _wait_ready(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.fixture(scope="module")
async def auth(db: Any, live_url: str) -> dict[str, str]:
    """A key with both scopes, and the document's example debtor and invoice stored, so that
    requests built from the examples find them."""
    key = await create_api_key(f"Schemathesis {secrets.token_hex(4)}")
    headers = {"Authorization": f"Bearer {key}"}
    creditor = "Telecable del Sur"
    debtor = {"external_id": "C-1001", "name": "Muñoz Ibáñez"}
    invoice = {
        "invoice_number": "F-0001",
        "debtor_external_id": "C-1001",
        "currency": "ARS",
        "issue_date": "2026-01-05",
        "due_date": "2026-02-04",
        "lines": [{"quantity": "1", "unit_price": "100.00", "tax_rate": "21"}],
    }
    async with httpx.AsyncClient(base_url=live_url, headers=headers) as erp:
        for what, item in (("debtors", debtor), ("invoices", invoice)):
            done = await erp.put(f"/api/v1/{what}", json={"creditor": creditor, "items": [item]})
            assert done.status_code == 200, done.text
    return headers


@pytest.fixture(scope="module")
def api_schema(live_url: str) -> Any:
    return schemathesis.openapi.from_url(f"{live_url}/schema/openapi.json")


def test_the_document_describes_only_the_api(live_url: str):
    with urllib.request.urlopen(f"{live_url}/schema/openapi.json", timeout=10) as response:
        assert response.status == 200
        document = httpx.Response(200, content=response.read()).json()
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] == "Saldo API"
    operations = {(m.upper(), p) for p, item in document["paths"].items() for m in item}
    assert operations == set(OPERATIONS)
    item = document["components"]["schemas"]["DebtorItem"]
    assert item["additionalProperties"] is False
    assert item["required"] == ["external_id", "name"]


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_api_v1_answers_generated_requests_as_documented(
    api_schema: Any, live_url: str, auth: dict[str, str], method: str, path: str, mode: Any
):
    operation = api_schema[path][method]

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def answers_as_documented(case: Any) -> None:
        case.call_and_validate(base_url=live_url, headers=auth, checks=CHECKS, timeout=30)

    answers_as_documented()
