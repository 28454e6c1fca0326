"""The work queue page at /backoffice: order and reasons as agents see them, filters as links,
htmx fragments, the home of roles without a queue, bulk assignment by supervisors."""

from __future__ import annotations

from urllib.parse import urlencode

from saldo.tables import Account, AuditEvent
from tests.services.queue_world import ORDER, build_world
from tests.web import backoffice_fixtures
from tests.web.backoffice_fixtures import csrf_token, inject_session, main, make_staff
from tests.web.html import parse

client = backoffice_fixtures.client
bo_app = backoffice_fixtures.bo_app
app_key = backoffice_fixtures.app_key
fresh_rate_limits = backoffice_fixtures.fresh_rate_limits


def _rows(markup: str) -> list:
    table = parse(markup).find("table")
    assert table is not None, markup[:2000]
    return table.find("tbody").find_all("tr")


def _debtors(markup: str) -> list[str]:
    return [row.find("a").text() for row in _rows(markup)]


async def test_an_agent_sees_the_accounts_to_work_in_priority_order(
    client, redis, servers, app_key
):
    world = await build_world()
    agent = await make_staff("agent", key=app_key, name="Andrés Agente")
    await inject_session(client, redis, servers, agent.id)
    response = await client.get(f"/backoffice?creditor={world.creditor_id}")
    assert response.status_code == 200
    page = main(response)
    assert page.find("h1").text() == "Cuentas para trabajar hoy"
    rows = _rows(response.text)
    from tests.services.queue_world import NAMES

    assert [r.find("a").text() for r in rows] == [NAMES[k] for k in ORDER]
    first = rows[0]
    assert (
        first.find("a").attrs["href"] == f"/backoffice/accounts/{world.accounts['broken_promise']}"
    )
    assert "Promesa incumplida" in first.text()
    assert "Pausada hasta" in rows[ORDER.index("paused_reason")].text()
    assert "Llamada pendiente" in rows[ORDER.index("paused_reason")].text()
    assert "20 días de atraso" in rows[ORDER.index("callback")].text()
    # agents do not assign: no checkboxes, no assignment form
    assert page.find("input", type="checkbox") is None
    assert page.find("form", **{"class": "q-assign"}) is None
    # the search box is in the top bar
    box = parse(response.text).find("form", **{"class": "bo-search"})
    assert box is not None and box.attrs["action"] == "/backoffice/search"


async def test_filters_are_links_and_htmx_gets_only_the_results(client, redis, servers, app_key):
    world = await build_world()
    agent = await make_staff("agent", key=app_key)
    await Account.update({Account.assignee: agent.id}).where(
        Account.id.is_in([world.accounts["task"], world.accounts["plain_low"]])
    )
    await inject_session(client, redis, servers, agent.id)
    query = urlencode({"creditor": world.creditor_id, "assignee": "me"})
    response = await client.get(f"/backoffice?{query}")
    assert _debtors(response.text) == ["Tomás Tarea", "Luis Saldo"]
    chosen = parse(response.text).find("select", name="assignee")
    assert (
        next(o for o in chosen.find_all("option") if "selected" in o.attrs).attrs["value"] == "me"
    )
    fragment = await client.get(f"/backoffice?{query}", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    root = parse(fragment.text).find("div")
    assert root.attrs["id"] == "queue"
    assert "HX-Request" in fragment.headers["vary"]
    none = await client.get(f"/backoffice?creditor={world.creditor_id}&stage=judicial")
    assert "Ninguna cuenta con estos filtros." in main(none).text()
    english = await client.get(f"/backoffice?creditor={world.creditor_id}&lang=en")
    assert main(english).find("h1").text() == "Accounts to work today"
    assert "Broken promise" in main(english).text()


async def test_roles_without_a_queue_land_on_their_home(client, redis, servers, app_key):
    for role, link in (("finance", "/backoffice/reconciliation"), ("admin", "/backoffice/users")):
        staff = await make_staff(role, key=app_key, name=f"Persona {role}")
        await inject_session(client, redis, servers, staff.id)
        response = await client.get("/backoffice")
        assert response.status_code == 200
        page = main(response)
        assert page.find("h1").text() == f"Hola, Persona {role}"
        links = {a.attrs["href"] for a in page.find_all("a")}
        assert link in links
        search = page.find("form", role="search")
        assert search is not None and search.attrs["action"] == "/backoffice/search"


async def test_a_supervisor_assigns_ticked_accounts_and_comes_back_to_the_same_page(
    client, redis, servers, app_key
):
    world = await build_world(refresh=False)
    supervisor = await make_staff("supervisor", key=app_key, name="Sofía Supervisora")
    agent = await make_staff("agent", key=app_key, name="Andrés Agente")
    await inject_session(client, redis, servers, supervisor.id)
    here = f"/backoffice?creditor={world.creditor_id}"
    page = await client.get(here)
    form = parse(page.text).find("form", **{"class": "q-assign"})
    assert form is not None and form.attrs["action"] == "/backoffice/queue/assign"
    back = form.find("input", name="back").attrs["value"]
    assert back == f"{here}&page=1"
    options = {
        o.attrs["value"]: o.text() for o in form.find("select", name="assignee").find_all("option")
    }
    assert options[str(agent.id)] == "Andrés Agente" and "none" in options
    picked = [world.accounts["broken_promise"], world.accounts["callback"]]
    response = await client.post(
        "/backoffice/queue/assign",
        data={
            "_csrf_token": await csrf_token(client),
            "account": [str(i) for i in picked],
            "assignee": str(agent.id),
            "back": back,
        },
    )
    assert response.status_code == 303 and response.headers["location"] == back
    after = await client.get(here)
    notice = main(after).find("p", role="status")
    assert notice.text() == "2 cuentas asignadas a Andrés Agente."
    rows = {r.find("a").text(): r for r in _rows(after.text)}
    assert "Andrés Agente" in rows["Bruno Promesa"].text()
    assert "Andrés Agente" not in rows["Tomás Tarea"].text()
    events = await AuditEvent.select().where(
        AuditEvent.action == "account.assigned",
        AuditEvent.object_id.is_in([str(i) for i in picked]),
    )
    assert {e["staff"] for e in events} == {supervisor.id} and len(events) == 2


async def test_assigning_nothing_or_to_nobody_valid_comes_back_with_the_reason(
    client, redis, servers, app_key
):
    world = await build_world(refresh=False)
    supervisor = await make_staff("supervisor", key=app_key)
    finance = await make_staff("finance", key=app_key)
    await inject_session(client, redis, servers, supervisor.id)
    back = f"/backoffice?creditor={world.creditor_id}"
    token = await csrf_token(client)
    nothing = await client.post(
        "/backoffice/queue/assign", data={"_csrf_token": token, "assignee": "none", "back": back}
    )
    assert nothing.status_code == 422
    assert parse(nothing.text).by_id("q-assign-error").text() == "Marque al menos una cuenta."
    wrong = await client.post(
        "/backoffice/queue/assign",
        data={
            "_csrf_token": token,
            "account": str(world.accounts["task"]),
            "assignee": str(finance.id),
            "back": back,
        },
    )
    assert wrong.status_code == 422
    assert "agente o supervisor activo" in parse(wrong.text).by_id("q-assign-error").text()
    ticked = parse(wrong.text).find("input", id=f"pick-{world.accounts['task']}")
    assert "checked" in ticked.attrs  # the choice survives the error
    no_token = await client.post(
        "/backoffice/queue/assign",
        data={"account": str(world.accounts["task"]), "assignee": "none"},
    )
    assert no_token.status_code == 403
    row = await Account.select(Account.assignee).where(Account.id == world.accounts["task"])
    assert row[0]["assignee"] is None
