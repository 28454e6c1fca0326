"""The KPI dashboard over HTTP: filters, each KPI with its definition and chart, the data behind
the charts, validation, htmx fragments, English, and the CSV export (columns, values, audit).

The figures are those of tests/services/kpi_world.py, worked out by hand in
tests/services/test_kpis.py.
"""

from __future__ import annotations

import csv
import io
from urllib.parse import urlencode

import pytest

from saldo.services import kpis
from saldo.services.kpis_view import CSV_COLUMNS
from tests.services.kpi_world import World, build_world
from tests.web import backoffice_fixtures
from tests.web.backoffice_fixtures import audit_events, inject_session, main, make_staff
from tests.web.html import Node, parse

client = backoffice_fixtures.client
bo_app = backoffice_fixtures.bo_app
fresh_rate_limits = backoffice_fixtures.fresh_rate_limits
app_key = backoffice_fixtures.app_key

KEYS = [
    "dso",
    "cei",
    "recovery_rate",
    "promise_kept_rate",
    "plan_default_rate",
    "contact_rate",
    "accounts_managed",
    "messages",
    "cost_per_recovered",
]


@pytest.fixture(scope="module")
async def world(db) -> World:
    return await build_world()


@pytest.fixture
async def supervisor(client, redis, servers, app_key):
    staff = await make_staff("supervisor", key=app_key, name="Sofía Supervisora")
    await inject_session(client, redis, servers, staff.id)
    return staff


def url(world: World, path: str = "/backoffice/kpis", **extra: str) -> str:
    query = {
        "creditor": str(world.creditor_id),
        "currency": "ARS",
        "from": "2026-01-01",
        "to": "2026-03-31",
        "by": "month",
        **extra,
    }
    return f"{path}?{urlencode({k: v for k, v in query.items() if v is not None})}"


def section(page: Node, key: str) -> Node:
    node = page.by_id(f"kpi-{key}")
    assert node is not None, key
    return node


def tile_values(page: Node) -> dict[str, str]:
    tiles = page.find("ul", **{"class": "kpi-tiles"})
    assert tiles is not None
    found = {}
    for link in tiles.find_all("a", **{"class": "kpi-tile__link"}):
        value = link.find("span", **{"class": "kpi-tile__value"})
        found[link.attrs["href"].removeprefix("#kpi-")] = value.text()
    return found


def table_rows(node: Node) -> list[list[str]]:
    table = node.find("details").find("table")
    return [
        [cell.text() for cell in row.iter() if cell.tag in ("th", "td")]
        for part in ("tbody", "tfoot")
        for row in table.find(part).find_all("tr")
    ]


# ---------------------------------------------------------------------------- the page


async def test_dashboard_shows_every_kpi_with_value_chart_and_definition(client, supervisor, world):
    response = await client.get(url(world))
    assert response.status_code == 200
    page = main(response)
    assert page.find("h1").text() == "Indicadores"
    assert tile_values(page) == {
        "aging": "$ 1.720,00",
        "dso": "95,6 días",
        "cei": "38,8%",
        "recovery_rate": "22,0%",
        "promise_kept_rate": "66,7%",
        "plan_default_rate": "33,3%",
        "contact_rate": "50,0%",
        "accounts_managed": "100,0%",
        "messages": "4",
        # reference ARS costs: 3 emails × 0.50 + 1 SMS × 25 + 4 contacts × 1 500 = 6 026.50
        # over 400.00 recovered = 15.06625 → 15.0663
        "cost_per_recovered": "15,0663",
    }
    specs = {k.key: k.spec for k in (await kpis.all_kpis(_scope(world))).kpis}
    for key in [*KEYS, "aging"]:
        node = section(page, key)
        spec = specs[key]
        assert node.find("h2").text() == spec.name("es")
        definition = node.find("p", **{"class": "kpi-def__text"})
        assert definition.text() == " ".join(spec.definition("es").split())
        formula = node.find("span", **{"class": "kpi-formula__text"})
        assert formula.text() == " ".join(spec.formula("es").split())
        svg = node.find("svg")
        assert svg.attrs["role"] == "img"
        title, desc = svg.find("title"), svg.find("desc")
        assert title.text() == spec.name("es") and "01/01/2026" in desc.text()
        assert set(svg.attrs["aria-labelledby"].split()) == {title.attrs["id"], desc.attrs["id"]}
        assert node.find("details").find("table") is not None


def _scope(world: World):
    from saldo.services.kpis_data import KpiScope
    from tests.services.kpi_world import D

    return KpiScope("ARS", D(2026, 1, 1), D(2026, 3, 31), "month", world.creditor_id)


async def test_filters_show_what_is_applied(client, supervisor, world):
    page = main(await client.get(url(world, by="month")))
    form = page.find("form", **{"class": "bo-filters kpi-filters"})
    assert form.attrs["method"] == "get" and form.attrs["hx-target"] == "#kpi-board"
    selected = {
        select.attrs["name"]: next(
            (o.attrs["value"] for o in select.find_all("option") if "selected" in o.attrs), None
        )
        for select in form.find_all("select")
    }
    assert selected == {"creditor": str(world.creditor_id), "currency": "ARS", "by": "month"}
    inputs = {i.attrs["name"]: i.attrs.get("value") for i in form.find_all("input")}
    assert inputs["from"] == "2026-01-01" and inputs["to"] == "2026-03-31"
    # the reference unit costs for ARS, in pesos
    assert inputs["cost_sms"] == "25.00" and inputs["cost_contact"] == "1500.00"
    creditors = [o.text() for o in form.find("select", name="creditor").find_all("option")]
    assert creditors[0] == "Todos los acreedores" and world.creditor_name in creditors
    # USD appears because the creditor has a USD account
    currencies = [o.text() for o in form.find("select", name="currency").find_all("option")]
    assert currencies == ["ARS", "USD"]
    summary = page.find("p", **{"class": "kpi-summary__text"}).text()
    assert world.creditor_name in summary and "3 meses" in summary
    assert "open" not in page.find("details", **{"class": "kpi-costs"}).attrs


async def test_sending_the_reference_costs_back_changes_nothing(client, supervisor, world):
    page = main(await client.get(url(world, cost_email="0.50", cost_sms="25", cost_contact="")))
    assert "open" not in page.find("details", **{"class": "kpi-costs"}).attrs
    export = page.find("a", **{"class": "btn btn--secondary btn--sm kpi-summary__export"})
    assert "cost_" not in export.attrs["href"]
    assert export.attrs["href"].startswith("/backoffice/kpis/export.csv?creditor=")


async def test_the_data_tables_hold_the_figures_of_each_period(client, supervisor, world):
    page = main(await client.get(url(world)))
    assert table_rows(section(page, "dso")) == [
        ["ene 2026", "$ 1.900,00", "$ 1.300,00", "45,3 días"],
        ["feb 2026", "$ 1.400,00", "$ 0,00", "—"],
        ["mar 2026", "$ 1.720,00", "$ 320,00", "166,6 días"],
        ["Todo el rango", "$ 1.720,00", "$ 1.620,00", "95,6 días"],
    ]
    assert table_rows(section(page, "aging")) == [
        ["ene 2026", "$ 1.300,00", "$ 0,00", "$ 0,00", "$ 600,00", "$ 0,00", "$ 1.900,00"],
        ["feb 2026", "$ 0,00", "$ 800,00", "$ 0,00", "$ 600,00", "$ 0,00", "$ 1.400,00"],
        ["mar 2026", "$ 300,00", "$ 0,00", "$ 820,00", "$ 0,00", "$ 600,00", "$ 1.720,00"],
        ["Todo el rango", "$ 300,00", "$ 0,00", "$ 820,00", "$ 0,00", "$ 600,00", "$ 1.720,00"],
    ]
    assert table_rows(section(page, "messages"))[0] == ["ene 2026", "3", "1", "25,0%"]
    aging = section(page, "aging").find("svg")
    assert len(aging.find_all("g", **{"class": "chart__bar-group"})) == 3
    legend = [li.text() for li in section(page, "aging").find_all("li")]
    assert legend[-1] == "Más de 90 días $ 600,00"


async def test_cost_uses_the_unit_costs_given_in_the_filters(client, supervisor, world):
    response = await client.get(
        url(world, cost_email="1.00", cost_sms="5", cost_whatsapp="7,00", cost_contact="100")
    )
    assert response.status_code == 200
    page = main(response)
    # 3 emails × 1 + 1 SMS × 5 + 4 contacts × 100 = 408.00 over 400.00 recovered = 1.02
    assert tile_values(page)["cost_per_recovered"] == "1,0200"
    cost = section(page, "cost_per_recovered")
    rows = {
        row.find("th").text(): [td.text() for td in row.find_all("td")]
        for row in cost.find("table").find("tbody").find_all("tr")
    }
    assert rows["Correo $ 1,00 c/u"] == ["3", "$ 3,00"]
    assert rows["Contactos de agentes $ 100,00 c/u"] == ["4", "$ 400,00"]
    assert rows["WhatsApp $ 7,00 c/u"] == ["0", "$ 0,00"]  # a blocked message costs nothing
    assert "open" in page.find("details", **{"class": "kpi-costs"}).attrs


async def test_weeks_and_english(client, supervisor, world):
    response = await client.get(
        url(world, by="week", **{"from": "2026-02-02", "to": "2026-02-22", "lang": "en"})
    )
    assert response.status_code == 200
    page = main(response)
    assert page.find("h1").text() == "KPIs"
    aging = section(page, "aging")
    assert aging.find("h2").text() == "Receivables aging"
    assert [row[0] for row in table_rows(aging)] == ["Feb 2", "Feb 9", "Feb 16", "Whole range"]
    assert (
        section(page, "dso")
        .find("p", **{"class": "kpi-def__text"})
        .text()
        .startswith("How many days of billing")
    )


async def test_default_view_is_the_last_twelve_months_of_every_creditor(client, supervisor, world):
    response = await client.get("/backoffice/kpis")
    assert response.status_code == 200
    page = main(response)
    form = page.find("form")
    creditor = form.find("select", name="creditor")
    assert not any("selected" in o.attrs for o in creditor.find_all("option")[1:])
    assert len(table_rows(section(page, "dso"))) == 12 + 1


async def test_htmx_gets_only_the_board(client, supervisor, world):
    response = await client.get(url(world), headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "<html" not in response.text
    root = [n for n in parse(response.text).children if isinstance(n, Node)]
    assert [n.attrs.get("id") for n in root] == ["kpi-board"]
    assert response.headers["vary"] == "HX-Request"


async def test_the_page_has_no_inline_style_or_script(client, supervisor, world):
    response = await client.get(url(world))
    document = parse(response.text)
    assert not [n for n in document.iter() if "style" in n.attrs]
    assert not [n for n in document.iter() if n.tag == "script" and "src" not in n.attrs]
    assert not [n for n in document.iter() if n.tag == "style"]


@pytest.mark.parametrize(
    ("extra", "field", "message"),
    [
        ({"to": "2999-01-01"}, "to", "La fecha final no puede ser posterior a hoy."),
        ({"from": "2026-04-01"}, "to", "La fecha final es anterior a la inicial."),
        ({"from": "31/01/2026"}, "from", "Use una fecha como 2026-03-31."),
        ({"from": "2020-01-01", "by": "week"}, "from", "Demasiados períodos"),
        ({"from": "0001-01-01"}, "from", "Demasiados períodos"),
        ({"creditor": "999999999"}, "creditor", "Elija un acreedor de la lista."),
        ({"currency": "XXX"}, "currency", "Elija una moneda de la lista."),
        ({"by": "day"}, "by", "Elija mes o semana."),
        ({"cost_sms": "-3"}, "cost_sms", "Escriba un importe como 0.50."),
    ],
)
async def test_bad_filters_are_explained_next_to_the_field(
    client, supervisor, world, extra, field, message
):
    response = await client.get(url(world, **extra))
    assert response.status_code == 422
    page = main(response)
    error = page.by_id(f"{field}-error")
    assert error is not None and error.text().startswith(message)
    control = next(
        n for n in page.iter() if n.attrs.get("name") == field and n.tag in ("input", "select")
    )
    assert control.attrs["aria-invalid"] == "true"
    assert page.find("svg", role="img") is None  # no figures for a scope that makes no sense


# ---------------------------------------------------------------------------- CSV


async def test_csv_export_has_one_row_per_kpi_line_and_period(client, supervisor, world):
    response = await client.get(url(world, path="/backoffice/kpis/export.csv"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    disposition = response.headers["content-disposition"]
    assert disposition == (
        f'attachment; filename="saldo-kpis-{world.creditor_id}-ARS-2026-01-01-2026-03-31.csv"'
    )
    rows = list(csv.reader(io.StringIO(response.text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    data = [dict(zip(CSV_COLUMNS, r, strict=True)) for r in rows[1:]]
    # 15 lines (9 single KPIs, sent + blocked, 5 aging buckets) × (3 months + the range)
    assert len(data) == 15 * 4
    by = {(r["kpi"], r["period"]): r for r in data}
    assert by[("dso", "2026-01")] == {
        "kpi": "dso",
        "name": "Días de venta pendientes de cobro (DSO)",
        "period": "2026-01",
        "period_start": "2026-01-01",
        "period_end": "2026-01-31",
        "value": "45.3",
        "numerator": "1900.00",
        "denominator": "1300.00",
        "unit": "days",
        "currency": "ARS",
        "creditor_id": str(world.creditor_id),
        "creditor": world.creditor_name,
    }
    assert by[("dso", "2026-02")]["value"] == ""  # undefined: nothing billed
    assert by[("dso", "total")]["value"] == "95.6"
    assert by[("dso", "total")]["period_start"] == "2026-01-01"
    assert by[("recovery_rate", "total")]["numerator"] == "400.00"
    assert by[("promise_kept_rate", "total")]["numerator"] == "2"
    assert by[("promise_kept_rate", "total")]["denominator"] == "3"
    assert by[("aging_90_plus", "2026-03")]["value"] == "600.00"
    assert by[("aging_90_plus", "2026-03")]["unit"] == "money"
    assert by[("messages_blocked", "2026-01")]["value"] == "1"
    assert by[("cost_per_recovered", "2026-01")]["unit"] == "ratio"
    # every KPI of the page is in the file
    assert {r["kpi"] for r in data} >= {*KEYS[:-2], "messages_sent", "cost_per_recovered"}


async def test_csv_export_is_audited(client, supervisor, world):
    response = await client.get(url(world, path="/backoffice/kpis/export.csv", by="week"))
    assert response.status_code == 200
    events = [e for e in await audit_events(action="kpis.exported") if e["staff"] == supervisor.id]
    assert len(events) == 1
    assert events[0]["actor"] == supervisor.email
    assert events[0]["after"]["creditor"] == str(world.creditor_id)
    assert events[0]["after"]["by"] == "week"
    assert events[0]["after"]["rows"] == len(response.text.strip().splitlines()) - 1


async def test_csv_export_with_bad_filters_is_a_clear_error(client, supervisor, world):
    response = await client.get(
        url(world, path="/backoffice/kpis/export.csv", to="2999-12-31"),
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "to", "message": "invalid filter to: future"}]
