"""`/api/v1` as an ERP uses it: Bearer keys and scopes, batch upserts with the CSV import's
rules, balances, and payments, plans and disputes since a cursor — real PostgreSQL throughout."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from saldo.errors import ImportFileError
from saldo.services import disputes, plan_review, plans
from saldo.services.apikeys import create_api_key
from saldo.services.ledger import apply_payment
from saldo.services.portfolio_import import import_portfolio
from saldo.tables import ApiKey, AuditEvent, Debtor, Invoice, Payment, StaffUser
from tests.services.test_portfolio_import import DEBTORS_HEADER, INVOICES_HEADER

Client = httpx.AsyncClient
TODAY = dt.datetime.now(dt.UTC).date()
PAST = (TODAY - dt.timedelta(days=40)).isoformat()
PAST_DUE = (TODAY - dt.timedelta(days=10)).isoformat()
FUTURE_DUE = (TODAY + dt.timedelta(days=20)).isoformat()


def _creditor() -> str:
    return f"Acreedor API {secrets.token_hex(4)}"


def _debtor(external_id: str, name: str, **fields: str) -> dict[str, str]:
    return {"external_id": external_id, "name": name, **fields}


def _line(quantity: str, unit_price: str, tax_rate: str, description: str = "") -> dict[str, str]:
    return {
        "description": description,
        "quantity": quantity,
        "unit_price": unit_price,
        "tax_rate": tax_rate,
    }


def _invoice(
    number: str,
    debtor: str,
    currency: str,
    lines: list[dict[str, str]],
    issue: str = PAST,
    due: str = PAST_DUE,
) -> dict[str, Any]:
    return {
        "invoice_number": number,
        "debtor_external_id": debtor,
        "currency": currency,
        "issue_date": issue,
        "due_date": due,
        "lines": lines,
    }


DEBTORS = [
    _debtor("D1", "Muñoz Ibáñez", email="munoz@example.com", country="AR"),
    _debtor("D2", "José Núñez Peña", timezone="America/Santiago", country="CL"),
]
# F-1 (ARS): 100.00 × 1.21 = 121.00; 3 × 0.015 = 0.045 -> 0.05 (half-up); 2.5 × 10.01 × 1.21 =
# 30.28025 -> 30.28. Total 151.33, past due. F-2 (CLP): 15990 × 1.21 = 19347.9 -> 19348, not yet
# due. F-3 (ARS): 10.00, not yet due.
INVOICES = [
    _invoice(
        "F-1",
        "D1",
        "ARS",
        [
            _line("1", "100.00", "21", "Señal de televisión"),
            _line("3", "0.015", "0", "Cargo por reconexión"),
            _line("2.5", "10.01", "21", "Decodificador"),
        ],
    ),
    _invoice("F-2", "D2", "CLP", [_line("1", "15990", "21", "Plan hogar")], due=FUTURE_DUE),
    _invoice("F-3", "D1", "ARS", [_line("1", "10", "0", "Instalación")], due=FUTURE_DUE),
]


@pytest.fixture
async def client(db: Any, make_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app on the test's event loop (it shares the database pool), without test probes."""
    app = make_app(extra_route_handlers=())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://erp.test") as erp:
        yield erp
    await app.state.redis.aclose()


@pytest.fixture
async def key(db: Any) -> str:
    return await create_api_key(f"ERP {secrets.token_hex(4)}")


@pytest.fixture
def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _put(client: Client, auth: dict[str, str], what: str, body: Any) -> httpx.Response:
    return await client.put(f"/api/v1/{what}", json=body, headers=auth)


async def _portfolio(client: Client, auth: dict[str, str]) -> str:
    creditor = _creditor()
    done = await _put(client, auth, "debtors", {"creditor": creditor, "items": DEBTORS})
    assert done.status_code == 200, done.text
    done = await _put(client, auth, "invoices", {"creditor": creditor, "items": INVOICES})
    assert done.status_code == 200, done.text
    return creditor


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    return body


# ---------------------------------------------------------------------------- keys and scopes


async def test_a_request_without_a_key_is_refused_with_a_bearer_challenge(client: Client):
    answer = await client.get("/api/v1/payments")
    body = _problem(answer, 401)
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert body["detail"] == "missing bearer API key"
    basic = await client.get("/api/v1/payments", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert _problem(basic, 401)["detail"] == "missing bearer API key"


@pytest.mark.parametrize(
    "token",
    [
        "saldo_00000000_nope",
        "not-a-saldo-key",
        "saldo_zz_" + "x" * 300,
        "saldo_g!h_x",
        "saldo_" + "a" * 17 + "_x",
    ],
)
async def test_an_unknown_key_is_refused(client: Client, key: str, token: str):
    answer = await client.get("/api/v1/payments", headers={"Authorization": f"Bearer {token}"})
    assert _problem(answer, 401)["detail"] == "unknown API key"
    assert 'error="invalid_token"' in answer.headers["www-authenticate"]


async def test_a_key_with_one_character_changed_is_refused(client: Client, key: str):
    last = "A" if key[-1] != "A" else "B"
    answer = await client.get(
        "/api/v1/payments", headers={"Authorization": f"Bearer {key[:-1]}{last}"}
    )
    assert _problem(answer, 401)["detail"] == "unknown API key"


async def test_a_revoked_key_is_refused(client: Client, key: str, auth: dict[str, str]):
    assert (await client.get("/api/v1/payments", headers=auth)).status_code == 200
    await ApiKey.update({ApiKey.revoked_at: dt.datetime.now(dt.UTC)}).where(
        ApiKey.prefix == key.split("_")[1]
    )
    answer = await client.get("/api/v1/payments", headers=auth)
    assert _problem(answer, 401)["detail"] == "this API key was revoked"


async def test_a_read_only_key_reads_but_cannot_upsert(
    client: Client, key: str, auth: dict[str, str]
):
    await ApiKey.update({ApiKey.scopes: ["read"]}).where(ApiKey.prefix == key.split("_")[1])
    assert (await client.get("/api/v1/plans", headers=auth)).status_code == 200
    creditor = _creditor()
    answer = await _put(client, auth, "debtors", {"creditor": creditor, "items": DEBTORS})
    body = _problem(answer, 403)
    assert "'write' scope" in body["detail"]
    assert 'error="insufficient_scope"' in answer.headers["www-authenticate"]
    assert not await Debtor.exists().where(
        Debtor.external_id == "D1", Debtor.creditor.name == creditor
    )


async def test_last_used_at_is_stamped_when_a_key_is_used(
    client: Client, key: str, auth: dict[str, str]
):
    prefix = key.split("_")[1]
    before = await ApiKey.select(ApiKey.last_used_at).where(ApiKey.prefix == prefix).first()
    assert before is not None and before["last_used_at"] is None
    assert (await client.get("/api/v1/disputes?limit=1", headers=auth)).status_code == 200
    after = await ApiKey.select(ApiKey.last_used_at).where(ApiKey.prefix == prefix).first()
    assert after is not None and after["last_used_at"] is not None


# ---------------------------------------------------------------------------- upserts and balances


async def test_upserted_debtors_and_invoices_show_in_their_balances(
    client: Client, auth: dict[str, str]
):
    creditor = _creditor()
    debtors = await _put(client, auth, "debtors", {"creditor": creditor, "items": DEBTORS})
    assert debtors.status_code == 200, debtors.text
    assert {k: debtors.json()[k] for k in ("inserted", "updated", "unchanged")} == {
        "inserted": 2,
        "updated": 0,
        "unchanged": 0,
    }
    invoices = await _put(client, auth, "invoices", {"creditor": creditor, "items": INVOICES})
    assert invoices.status_code == 200, invoices.text
    done = invoices.json()
    assert (done["inserted"], done["lines_written"], done["accounts_created"]) == (3, 5, 2)
    assert done["ledger_entries_posted"] == 3

    answer = await client.get(
        "/api/v1/debtors/D1/balance", params={"creditor": creditor}, headers=auth
    )
    assert answer.status_code == 200, answer.text
    d1 = answer.json()
    assert (d1["creditor"], d1["external_id"], d1["name"]) == (creditor, "D1", "Muñoz Ibáñez")
    [ars] = d1["accounts"]
    assert (ars["currency"], ars["balance"], ars["overdue"]) == ("ARS", 15133 + 1000, 15133)
    assert [(i["invoice_number"], i["total"], i["open"]) for i in ars["open_invoices"]] == [
        ("F-1", 15133, 15133),
        ("F-3", 1000, 1000),
    ]

    by_id = await client.get(f"/api/v1/accounts/{ars['account_id']}/balance", headers=auth)
    assert by_id.json() == ars
    d2 = await client.get("/api/v1/debtors/D2/balance", params={"creditor": creditor}, headers=auth)
    [clp] = d2.json()["accounts"]
    assert (clp["currency"], clp["balance"], clp["overdue"]) == ("CLP", 19348, 0)

    audit = await AuditEvent.select(AuditEvent.actor, AuditEvent.action).where(
        AuditEvent.object_id == str(done["import_run"])
    )
    assert audit == [{"actor": f"api:{await _key_name(auth)}", "action": "api.invoices.upsert"}]


async def _key_name(auth: dict[str, str]) -> str:
    prefix = auth["Authorization"].split("_")[1]
    row = await ApiKey.select(ApiKey.name).where(ApiKey.prefix == prefix).first()
    assert row is not None
    return str(row["name"])


async def test_an_upsert_is_idempotent_and_a_changed_total_posts_one_adjustment(
    client: Client, auth: dict[str, str]
):
    creditor = await _portfolio(client, auth)
    again = await _put(client, auth, "invoices", {"creditor": creditor, "items": INVOICES})
    assert {k: again.json()[k] for k in ("inserted", "updated", "unchanged")} == {
        "inserted": 0,
        "updated": 0,
        "unchanged": 3,
    }
    assert again.json()["ledger_entries_posted"] == 0
    same_debtors = await _put(client, auth, "debtors", {"creditor": creditor, "items": DEBTORS})
    assert same_debtors.json()["unchanged"] == 2

    changed = [*INVOICES[:2], _invoice("F-3", "D1", "ARS", [_line("2", "10", "0")], due=FUTURE_DUE)]
    done = await _put(client, auth, "invoices", {"creditor": creditor, "items": changed})
    assert (done.json()["updated"], done.json()["ledger_entries_posted"]) == (1, 1)
    balance = await client.get(
        "/api/v1/debtors/D1/balance", params={"creditor": creditor}, headers=auth
    )
    assert balance.json()["accounts"][0]["balance"] == 15133 + 2000


async def test_unknown_ids_answer_404_problem_details(client: Client, auth: dict[str, str]):
    creditor = await _portfolio(client, auth)
    for path, params in [
        ("/api/v1/debtors/nobody/balance", {"creditor": creditor}),
        ("/api/v1/debtors/D1/balance", {"creditor": "No such creditor"}),
        ("/api/v1/accounts/2147483647/balance", {}),
    ]:
        _problem(await client.get(path, params=params, headers=auth), 404)
    too_big = await client.get("/api/v1/accounts/2147483648/balance", headers=auth)
    assert too_big.status_code in (400, 404)


# ---------------------------------------------------------------------------- the import's rules


def _swap(items: list[dict[str, Any]], index: int, **changes: Any) -> list[dict[str, Any]]:
    return [{**item, **changes} if i == index else item for i, item in enumerate(items)]


def _swap_line(index: int, line: int, **changes: str) -> list[dict[str, Any]]:
    lines = [
        {**old, **changes} if n == line else old for n, old in enumerate(INVOICES[index]["lines"])
    ]
    return _swap(INVOICES, index, lines=lines)


BAD_INVOICES = [
    pytest.param(
        _swap(INVOICES, 1, debtor_external_id="D9"),
        "items[1].debtor_external_id",
        'unknown debtor "D9"',
        id="unknown-debtor",
    ),
    pytest.param(
        _swap(INVOICES, 1, issue_date="2026/01/10"),
        "items[1].issue_date",
        'bad issue_date "2026/01/10" (expected YYYY-MM-DD)',
        id="date-format",
    ),
    pytest.param(
        _swap(INVOICES, 2, due_date="2026-02-30"),
        "items[2].due_date",
        'bad due_date "2026-02-30" (no such date)',
        id="impossible-date",
    ),
    pytest.param(
        _swap(INVOICES, 0, issue_date="2026-01-15", due_date="2026-01-14"),
        "items[0].due_date",
        "due_date 2026-01-14 is before issue_date 2026-01-15",
        id="due-before-issue",
    ),
    pytest.param(
        _swap_line(0, 2, quantity="-2"),
        "items[0].lines[2].quantity",
        'negative quantity "-2"',
        id="negative-qty",
    ),
    pytest.param(
        _swap(INVOICES, 2, currency="XYZ"),
        "items[2].currency",
        'unknown currency "XYZ"',
        id="unknown-currency",
    ),
    pytest.param(
        _swap_line(0, 1, unit_price="12,50"),
        "items[0].lines[1].unit_price",
        'malformed unit_price "12,50"',
        id="comma-decimal",
    ),
    pytest.param(
        _swap_line(0, 0, unit_price="1e3"),
        "items[0].lines[0].unit_price",
        'malformed unit_price "1e3"',
        id="exponent",
    ),
    pytest.param(
        _swap_line(0, 0, tax_rate="1.00001"),
        "items[0].lines[0].tax_rate",
        'malformed tax_rate "1.00001" (expected up to 3 digits',
        id="too-many-decimals",
    ),
    pytest.param(
        _swap(INVOICES, 1, invoice_number=""),
        "items[1].invoice_number",
        "empty invoice_number",
        id="empty-invoice-number",
    ),
    pytest.param(
        # the first bad item wins, whatever the check that finds it
        _swap(_swap(INVOICES, 2, currency="XYZ"), 1, issue_date="ayer"),
        "items[1].issue_date",
        'bad issue_date "ayer"',
        id="first-item-wins",
    ),
]


async def _csv_refusal(tmp_path: Path, creditor: str, items: list[dict[str, Any]]) -> str:
    """What `saldo import` says about the same invoices (the same debtors stored before)."""
    debtors = tmp_path / "debtors.csv"
    invoices = tmp_path / "invoices.csv"
    debtors.write_text(DEBTORS_HEADER + "\n")
    rows = [
        ",".join(
            [
                item["invoice_number"],
                item["debtor_external_id"],
                item["currency"],
                item["issue_date"],
                item["due_date"],
                line["description"],
                f'"{line["quantity"]}"',
                f'"{line["unit_price"]}"',
                f'"{line["tax_rate"]}"',
            ]
        )
        for item in items
        for line in item["lines"]
    ]
    invoices.write_text("\n".join([INVOICES_HEADER, *rows]) + "\n")
    with pytest.raises(ImportFileError) as caught:
        await import_portfolio(debtors, invoices, creditor=creditor)
    return caught.value.reason


@pytest.mark.parametrize(("items", "field", "reason"), BAD_INVOICES)
async def test_an_invoice_the_csv_import_refuses_is_refused_naming_item_and_field(
    client: Client, auth: dict[str, str], tmp_path: Path, items: Any, field: str, reason: str
):
    creditor = _creditor()
    await _put(client, auth, "debtors", {"creditor": creditor, "items": DEBTORS})
    answer = await _put(client, auth, "invoices", {"creditor": creditor, "items": items})
    body = _problem(answer, 422)
    assert body["errors"][0]["field"] == field
    assert body["errors"][0]["message"].startswith(f"{field}: {reason}")
    assert body["detail"].startswith(f"{field}: {reason}")
    assert not await Invoice.exists().where(Invoice.creditor.name == creditor)
    # the CSV import gives the same reason for the same rows
    assert (await _csv_refusal(tmp_path, creditor, items)).startswith(reason)


BAD_DEBTORS = [
    pytest.param(_swap(DEBTORS, 1, external_id=""), "items[1].external_id", "empty external_id"),
    pytest.param(_swap(DEBTORS, 1, name="  "), "items[1].name", "empty name"),
    pytest.param(
        [*DEBTORS, _debtor("D1", "Otro")],
        "items[2].external_id",
        'duplicated external_id "D1" (first at items[0])',
    ),
    pytest.param(
        _swap(DEBTORS, 1, timezone="America/Springfield"),
        "items[1].timezone",
        'unknown time zone "America/Springfield"',
    ),
    pytest.param(
        _swap(DEBTORS, 0, email="munoz at example"),
        "items[0].email",
        'malformed email "munoz at example"',
    ),
    pytest.param(_swap(DEBTORS, 0, country="ar"), "items[0].country", 'malformed country "ar"'),
    pytest.param(
        _swap(DEBTORS, 1, phone="1" * 41), "items[1].phone", "phone longer than 40 characters"
    ),
    pytest.param(_swap(DEBTORS, 1, name="Ana\nPérez"), "items[1].name", "line break in the text"),
    pytest.param(_swap(DEBTORS, 0, email="a\x00@b.c"), "items[0].email", "NUL character"),
]


@pytest.mark.parametrize(("items", "field", "reason"), BAD_DEBTORS)
async def test_a_debtor_the_csv_import_refuses_is_refused_naming_item_and_field(
    client: Client, auth: dict[str, str], items: Any, field: str, reason: str
):
    creditor = _creditor()
    answer = await _put(client, auth, "debtors", {"creditor": creditor, "items": items})
    body = _problem(answer, 422)
    assert body["errors"] == [{"field": field, "message": body["detail"]}]
    assert body["detail"].startswith(f"{field}: {reason}")
    assert not await Debtor.exists().where(Debtor.creditor.name == creditor)


async def test_one_invoice_number_twice_in_a_batch_is_refused(client: Client, auth: dict[str, str]):
    creditor = _creditor()
    await _put(client, auth, "debtors", {"creditor": creditor, "items": DEBTORS})
    twice = [*INVOICES, _invoice("F-1", "D2", "CLP", [_line("1", "5", "0")])]
    body = _problem(
        await _put(client, auth, "invoices", {"creditor": creditor, "items": twice}), 422
    )
    assert body["errors"][0]["field"] == "items[3].invoice_number"
    assert body["detail"].endswith('duplicated invoice_number "F-1" (first at items[0])')


async def test_an_invoice_cannot_move_to_another_debtor(client: Client, auth: dict[str, str]):
    creditor = await _portfolio(client, auth)
    moved = [_invoice("F-1", "D2", "ARS", [_line("1", "100.00", "21")])]
    body = _problem(
        await _put(client, auth, "invoices", {"creditor": creditor, "items": moved}), 422
    )
    assert body["errors"][0]["field"] == "items[0].debtor_external_id"
    assert "cannot move to debtor" in body["detail"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"creditor": "X", "items": [{"external_id": "D1"}]}, "name"),
        ({"creditor": "X", "items": [{"external_id": "D1", "name": "A", "emial": "x"}]}, "emial"),
        ({"creditor": "X", "items": [{"external_id": 7, "name": "A"}]}, "external_id"),
        ({"creditor": "", "items": []}, "creditor"),
        ({"items": []}, "creditor"),
        ({"creditor": "X", "items": [_debtor("D1", "A")] * 1001}, "items"),
    ],
)
async def test_a_body_that_does_not_fit_the_schema_is_a_400_naming_the_field(
    client: Client, auth: dict[str, str], body: Any, where: str
):
    problem = _problem(await _put(client, auth, "debtors", body), 400)
    assert where in str(problem)


async def test_an_invoice_without_lines_is_refused(client: Client, auth: dict[str, str]):
    item = _invoice("F-9", "D1", "ARS", [])
    problem = _problem(
        await _put(client, auth, "invoices", {"creditor": "X", "items": [item]}), 400
    )
    assert "lines" in str(problem)


# ---------------------------------------------------------------------------- payments


async def _pages(client: Client, auth: dict[str, str], what: str, **params: Any) -> list[Any]:
    pages, cursor = [], None
    while True:
        query = {**params, **({"since": cursor} if cursor else {})}
        answer = await client.get(f"/api/v1/{what}", params=query, headers=auth)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        pages.append(page)
        cursor = page["next_cursor"]
        if not page["has_more"]:
            return pages


async def test_payments_page_by_cursor_without_gaps_or_repeats(
    client: Client, auth: dict[str, str]
):
    creditor = await _portfolio(client, auth)
    d1 = await client.get("/api/v1/debtors/D1/balance", params={"creditor": creditor}, headers=auth)
    account_id = d1.json()["accounts"][0]["account_id"]
    received = dt.datetime.now(dt.UTC)
    mine = []
    for n in range(7):
        applied = await apply_payment(
            account_id=account_id,
            provider="manual",
            provider_payment_id=f"api-{secrets.token_hex(4)}-{n}",
            amount=1000 + n,
            received_at=received,
            method="transfer",
        )
        mine.append(applied.payment_id)

    pages = await _pages(client, auth, "payments", limit=3)
    listed = [p["id"] for page in pages for p in page["items"]]
    stored = [r["id"] for r in await Payment.select(Payment.id).order_by(Payment.id)]
    assert listed == stored  # every payment once, in order: no gap, no repeat
    assert all(len(page["items"]) == 3 for page in pages[:-1])
    by_id = {p["id"]: p for page in pages for p in page["items"]}
    first = by_id[mine[0]]
    assert (first["account_id"], first["creditor"], first["debtor_external_id"]) == (
        account_id,
        creditor,
        "D1",
    )
    assert (first["amount"], first["currency"], first["applied"], first["reversed"]) == (
        1000,
        "ARS",
        True,
        False,
    )
    assert first["allocations"] == [
        {
            "invoice_id": first["allocations"][0]["invoice_id"],
            "invoice_number": "F-1",
            "amount": 1000,
        }
    ]

    # polling with the last cursor: nothing, then exactly the next payment
    last = pages[-1]["next_cursor"]
    empty = (await client.get("/api/v1/payments", params={"since": last}, headers=auth)).json()
    assert (empty["items"], empty["next_cursor"], empty["has_more"]) == ([], last, False)
    later = await apply_payment(
        account_id=account_id,
        provider="manual",
        provider_payment_id=f"api-{secrets.token_hex(4)}-late",
        amount=500,
        received_at=received,
    )
    polled = (await client.get("/api/v1/payments", params={"since": last}, headers=auth)).json()
    assert [p["id"] for p in polled["items"]] == [later.payment_id]


@pytest.mark.parametrize("cursor", ["garbage", "cGxhbnM6MQ", "cGF5bWVudHM6LTE", "%%%"])
async def test_a_cursor_that_is_not_from_the_list_is_refused(
    client: Client, auth: dict[str, str], cursor: str
):
    # cGxhbnM6MQ is a /plans cursor, cGF5bWVudHM6LTE says "payments:-1"
    answer = await client.get("/api/v1/payments", params={"since": cursor}, headers=auth)
    body = _problem(answer, 422)
    assert body["errors"][0]["field"] == "since"


# ---------------------------------------------------------------------------- plans and disputes


async def _staff() -> int:
    staff = StaffUser(email=f"api.{secrets.token_hex(4)}@example.com", name="Revisora")
    await staff.save()
    return int(staff.id)


async def test_plans_and_disputes_are_listed_with_their_status(
    client: Client, auth: dict[str, str]
):
    creditor = await _portfolio(client, auth)
    d1 = await client.get("/api/v1/debtors/D1/balance", params={"creditor": creditor}, headers=auth)
    account = d1.json()["accounts"][0]
    debtor = (
        await Debtor.select(Debtor.id)
        .where((Debtor.external_id == "D1") & (Debtor.creditor.name == creditor))
        .first()
    )
    assert debtor is not None
    now = dt.datetime.now(dt.UTC)
    staff_id = await _staff()

    invoice_id = account["open_invoices"][0]["invoice_id"]
    dispute_id = await disputes.open_dispute(
        [debtor["id"]],
        account_id=account["account_id"],
        invoice_id=invoice_id,
        amount=1000,
        reason_code="wrong_amount",
        now=now,
    )
    await disputes.resolve(dispute_id, outcome="accept", staff_id=staff_id, now=now)

    form = {
        "account": str(account["account_id"]),
        "installments": "3",
        "frequency": "monthly",
        "first_date": (TODAY + dt.timedelta(days=15)).isoformat(),
    }
    proposed = await plans.propose([debtor["id"]], account["account_id"], form, now=now)
    await plan_review.approve(proposed.plan_id, staff_id=staff_id, now=now)

    active = [
        p for page in await _pages(client, auth, "plans", status="active") for p in page["items"]
    ]
    plan = next(p for p in active if p["id"] == proposed.plan_id)
    assert (plan["account_id"], plan["creditor"], plan["debtor_external_id"]) == (
        account["account_id"],
        creditor,
        "D1",
    )
    assert (plan["status"], plan["installments_count"], plan["currency"]) == ("active", 3, "ARS")
    assert sum(i["amount"] for i in plan["installments"]) == plan["total"]
    assert all(p["status"] == "active" for p in active)
    proposed_only = await _pages(client, auth, "plans", status="proposed")
    assert proposed.plan_id not in {p["id"] for page in proposed_only for p in page["items"]}

    accepted = await _pages(client, auth, "disputes", status="accepted")
    found = next(d for page in accepted for d in page["items"] if d["id"] == dispute_id)
    assert (found["invoice_number"], found["amount"], found["resolved_amount"]) == (
        "F-1",
        1000,
        1000,
    )
    assert found["resolved_at"] is not None
    still_open = await _pages(client, auth, "disputes", status="open")
    assert dispute_id not in {d["id"] for page in still_open for d in page["items"]}


async def test_an_unknown_status_is_a_400(client: Client, auth: dict[str, str]):
    for what in ("plans", "disputes"):
        answer = await client.get(f"/api/v1/{what}", params={"status": "lost"}, headers=auth)
        _problem(answer, 400)
