"""The KPI dashboard and its CSV export: filters in, formatted figures and charts out.

`dashboard(form, today=, language=)` parses the filters (creditor, currency, from, to, months
or weeks, and optional unit costs), computes every KPI of `saldo.services.kpis` for that scope
with one shared set of queries, and returns what the page shows: per KPI its value for the
range, a value per period, an SVG chart (`saldo.charts`), the data table behind the chart, and
its definition and formula in the page's language. Bad filters never raise: the dashboard comes
back with `errors` (field → code) and no figures.

`export_csv(...)` gives the same figures as CSV, one row per KPI line × period plus one for the
whole range, and records who exported what in the audit log.

Defaults: all creditors, the currency with the most accounts, the last twelve months by month
(twelve weeks by week) up to today. The range may not end after today and holds at most
`MAX_PERIODS` periods.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

from babel import Locale
from babel.dates import format_skeleton
from babel.numbers import (
    format_compact_decimal,
    format_decimal,
    format_percent,
    get_currency_symbol,
)

from saldo import charts, money
from saldo.errors import ValidationFailed
from saldo.services.audit import Actor, record
from saldo.services.kpis import (
    Kpi,
    Line,
    Point,
    Text,
    UnitCosts,
    all_kpis,
    default_unit_costs,
)
from saldo.services.kpis_data import (
    BY,
    MAX_PERIODS,
    CreditorChoice,
    KpiScope,
    Period,
    creditor_choices,
    currencies_by_use,
    split_periods,
)
from saldo.services.statement import Formats, display_locale

__all__ = [
    "CSV_COLUMNS",
    "CsvExport",
    "Dashboard",
    "KpiForm",
    "KpiView",
    "dashboard",
    "export_csv",
    "resolve_filters",
]

CSV_COLUMNS: Final = (
    "kpi",
    "name",
    "period",
    "period_start",
    "period_end",
    "value",
    "numerator",
    "denominator",
    "unit",
    "currency",
    "creditor_id",
    "creditor",
)
COST_FIELDS: Final = ("cost_email", "cost_sms", "cost_whatsapp", "cost_contact")
_COUNTRY_OF_CURRENCY: Final = {
    "ARS": "AR",
    "MXN": "MX",
    "CLP": "CL",
    "COP": "CO",
    "PEN": "PE",
    "UYU": "UY",
    "PYG": "PY",
    "EUR": "ES",
    "USD": "US",
    "BRL": "",
}
_DIGITS: Final = re.compile(r"[0-9]{1,9}")


# ---------------------------------------------------------------------------- filters


@dataclass(frozen=True, slots=True)
class KpiForm:
    """The filters as typed (query string values), or as filled in with the defaults."""

    creditor: str = ""
    currency: str = ""
    date_from: str = ""
    date_to: str = ""
    by: str = ""
    cost_email: str = ""
    cost_sms: str = ""
    cost_whatsapp: str = ""
    cost_contact: str = ""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> KpiForm:
        def get(name: str, limit: int = 40) -> str:
            value = values.get(name)
            return str(value).strip()[:limit] if value is not None else ""

        return cls(
            creditor=get("creditor"),
            currency=get("currency").upper(),
            date_from=get("from"),
            date_to=get("to"),
            by=get("by"),
            cost_email=get("cost_email"),
            cost_sms=get("cost_sms"),
            cost_whatsapp=get("cost_whatsapp"),
            cost_contact=get("cost_contact"),
        )

    def query(self) -> dict[str, str]:
        """The query string that shows these filters (empty values left out)."""
        pairs = {
            "creditor": self.creditor,
            "currency": self.currency,
            "from": self.date_from,
            "to": self.date_to,
            "by": self.by,
            **{name: getattr(self, name) for name in COST_FIELDS},
        }
        return {k: v for k, v in pairs.items() if v}

    @property
    def costs_changed(self) -> bool:
        return any(getattr(self, name) for name in COST_FIELDS)


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) else None
    except ValueError:
        return None


def _default_start(end: dt.date, by: str) -> dt.date:
    if by == "week":
        return end - dt.timedelta(days=end.weekday() + 7 * 11)
    month = end.year * 12 + end.month - 1 - 11
    return dt.date(month // 12, month % 12 + 1, 1)


def _cost(text: str, currency: str) -> int | None:
    cleaned = text.replace(" ", "")
    if "," in cleaned and "." not in cleaned:
        cleaned = cleaned.replace(",", ".")
    try:
        value = money.parse_amount(cleaned, currency)
    except ValueError:
        return None
    return value if 0 <= value < 10**15 else None


@dataclass(frozen=True)
class Filters:
    """`resolve_filters`' answer: the scope (None when a filter is wrong), the unit costs, the
    form with every default filled in, and field → error code."""

    scope: KpiScope | None
    unit_costs: UnitCosts
    form: KpiForm
    errors: Mapping[str, str]
    creditors: tuple[CreditorChoice, ...]
    currencies: tuple[str, ...]


def resolve_filters(
    form: KpiForm, *, today: dt.date, creditors: Sequence[CreditorChoice]
) -> Filters:
    """Check the filters and fill in the defaults; error codes per field: creditor
    `unknown`, currency `unknown`, by `unknown`, from/to `date`, to `future` / `order`,
    from `range` (more than MAX_PERIODS periods), cost_* `amount`."""
    errors: dict[str, str] = {}
    creditor_id: int | None = None
    if form.creditor:
        ids = {c.id for c in creditors}
        if _DIGITS.fullmatch(form.creditor) and int(form.creditor) in ids:
            creditor_id = int(form.creditor)
        else:
            errors["creditor"] = "unknown"
    currencies = currencies_by_use(creditors, creditor_id)
    currency = form.currency or (currencies[0] if currencies else "ARS")
    if currency not in money.EXPONENTS:
        errors["currency"] = "unknown"
        currency = currencies[0] if currencies else "ARS"
    if currency not in currencies:
        currencies = (*currencies, currency)
    by = form.by or "month"
    if by not in BY:
        errors["by"] = "unknown"
        by = "month"
    end = _date(form.date_to) if form.date_to else today
    if end is None:
        errors["to"] = "date"
    elif end > today:
        errors["to"] = "future"
    start = _date(form.date_from) if form.date_from else _default_start(end or today, by)
    if start is None:
        errors["from"] = "date"
    if start and end and "to" not in errors:
        if start > end:
            errors["to"] = "order"
        elif (end - start).days > 31 * MAX_PERIODS or len(
            split_periods(start, end, by)
        ) > MAX_PERIODS:
            errors["from"] = "range"
    defaults = default_unit_costs(currency)
    costs: dict[str, int] = {}
    for name, default in zip(
        COST_FIELDS,
        (defaults.email, defaults.sms, defaults.whatsapp, defaults.agent_contact),
        strict=True,
    ):
        text = getattr(form, name)
        parsed = _cost(text, currency) if text else default
        if parsed is None:
            errors[name] = "amount"
            parsed = default
        elif parsed == default:
            form = replace(form, **{name: ""})  # the default, as the page shows it
        costs[name] = parsed
    unit_costs = UnitCosts(
        email=costs["cost_email"],
        sms=costs["cost_sms"],
        whatsapp=costs["cost_whatsapp"],
        agent_contact=costs["cost_contact"],
    )
    filled = replace(
        form,
        currency=currency if "currency" not in errors else form.currency,
        by=by if "by" not in errors else form.by,
        date_from=start.isoformat() if start and "from" not in errors else form.date_from,
        date_to=end.isoformat() if end and "to" not in errors else form.date_to,
    )
    scope = None
    if not errors and start and end:
        scope = KpiScope(currency, start, end, by, creditor_id)
    return Filters(scope, unit_costs, filled, errors, tuple(creditors), currencies)


# ---------------------------------------------------------------------------- formatting


_PERIOD: Final = Text("Período", "Period")
_VALUE: Final = Text("Valor", "Value")
_WHOLE: Final = Text("Todo el rango", "Whole range")
_TOTAL: Final = Text("Total", "Total")
_BLOCKED_SHARE: Final = Text("% bloqueado", "% blocked")
_NO_VALUE: Final = "—"
_DAYS: Final = Text("{value} días", "{value} days")


@dataclass(frozen=True)
class KpiFormat:
    """Numbers, money and periods for the page: the currency's country in Spanish, else en_US."""

    currency: str
    language: str
    by: str = "month"

    @property
    def locale(self) -> str:
        return display_locale(self.language, _COUNTRY_OF_CURRENCY.get(self.currency, ""))

    @property
    def formats(self) -> Formats:
        return Formats(self.currency, self.locale)

    def money(self, minor: int) -> str:
        return str(self.formats.money(minor))

    def money_short(self, minor: int) -> str:
        """Money for a tile: "$ 20,8 M" from a million up, else the full amount."""
        major = money.to_decimal(minor, self.currency)
        if abs(major) < 1_000_000:
            return self.money(minor)
        symbol = get_currency_symbol(self.currency, locale=self.locale)
        number = format_compact_decimal(major, locale=self.locale, fraction_digits=1)
        return f"{symbol}\xa0{number}"

    def count(self, value: int) -> str:
        return format_decimal(value, locale=self.locale)

    def percent(self, value: Decimal) -> str:
        """One decimal, with the locale's percent sign and spacing ("66,7%", "66.7%")."""
        return _percent(Decimal(value), self.locale)

    def value(self, unit: str, value: Decimal | int | None) -> str:
        if value is None:
            return _NO_VALUE
        if unit == "percent":
            return self.percent(Decimal(value))
        if unit == "days":
            number = format_decimal(Decimal(value), format="#,##0.0", locale=self.locale)
            return _DAYS(self.language).format(value=number)
        if unit == "money":
            return self.money(int(value))
        if unit == "money_ratio":
            return format_decimal(Decimal(value), format="#,##0.0000", locale=self.locale)
        return self.count(int(value))

    def amount(self, unit: str, value: int | None) -> str:
        """A numerator or denominator: money or a count."""
        if value is None:
            return _NO_VALUE
        return self.money(value) if unit == "money" else self.count(value)

    def chart_value(self, unit: str, value: Decimal | int | None) -> float | None:
        """The number a chart plots: money in major units, everything else as is."""
        if value is None:
            return None
        if unit == "money":
            return float(money.to_decimal(int(value), self.currency))
        return float(value)

    def axis(self, unit: str) -> charts.ValueText:
        locale = self.locale

        def text(value: float) -> str:
            if unit == "percent":
                return str(format_percent(value / 100, locale=locale, decimal_quantization=False))
            if unit in ("money", "count") and abs(value) >= 10_000:
                return str(format_compact_decimal(value, locale=locale, fraction_digits=1))
            if unit == "money_ratio":
                return format_decimal(value, format="#,##0.###", locale=locale)
            return format_decimal(value, format="#,##0.#", locale=locale)

        return text

    def period(self, period: Period) -> str:
        skeleton = "MMMd" if self.by == "week" else "yMMM"
        return str(format_skeleton(skeleton, period.start, locale=self.locale))

    def axis_labels(self, periods: Sequence[Period]) -> list[str]:
        """Short period names for a chart's axis: months without the year except on the first
        one and on January ("dic 2025", "ene 2026", "feb", …); weeks as their first day."""
        if self.by == "week":
            return [self.period(p) for p in periods]
        return [
            self.period(p)
            if i == 0 or p.start.month == 1
            else str(format_skeleton("MMM", p.start, locale=self.locale))
            for i, p in enumerate(periods)
        ]

    def date(self, value: dt.date) -> str:
        return self.formats.date(value)


@lru_cache(maxsize=64)
def _percent_pattern(locale: str) -> str:
    pattern = str(Locale.parse(locale).percent_formats[None].pattern).split(";")[0]
    last = pattern.rfind("0")
    return f"{pattern[: last + 1]}.0{pattern[last + 1 :]}"


def _percent(value: Decimal, locale: str) -> str:
    return format_percent(value / 100, format=_percent_pattern(locale), locale=locale)


def period_key(period: Period, by: str) -> str:
    """The period in the CSV: 2026-03 for a month, 2026-W09 for an ISO week."""
    if by == "week":
        year, week, _ = period.start.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{period.start.year}-{period.start.month:02d}"


# ---------------------------------------------------------------------------- views


@dataclass(frozen=True, slots=True)
class LineView:
    key: str
    name: str
    slot: int
    total: str


@dataclass(frozen=True, slots=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    foot: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CostRow:
    key: str
    sent: str
    blocked: str
    unit_cost: str
    cost: str


@dataclass(frozen=True)
class KpiView:
    key: str
    name: str
    definition: str
    formula: str
    unit: str
    headline: str
    detail: str
    tile_value: str
    tile_detail: str
    lines: tuple[LineView, ...]
    chart: charts.Chart
    spark: charts.Chart
    table: Table
    costs: tuple[CostRow, ...] = ()
    trend: str = ""  # better | worse | "" (no comparison)
    change: str = ""


_SPARK_DESC: Final = Text(
    "Evolución por período: {first} → {last}.", "Trend by period: {first} → {last}."
)
_CHART_DESC: Final = Text(
    "{name}, por período, del {start} al {end}. Los valores están en la tabla de datos.",
    "{name} by period, {start} to {end}. The values are in the data table.",
)
_OF: Final = Text("{numerator}: {a} · {denominator}: {b}", "{numerator}: {a} · {denominator}: {b}")
_OVERDUE: Final = Text("Vencido: {amount} ({share})", "Overdue: {amount} ({share})")
_BLOCKED_NOTE: Final = Text("Bloqueados: {n} ({share})", "Blocked: {n} ({share})")
_VS_PREVIOUS: Final = Text("vs. período anterior", "vs. previous period")


def _points(line: Line) -> list[Decimal | int | None]:
    return [p.value for p in line.points]


def _table(kpi: Kpi, scope: KpiScope, fmt: KpiFormat, lang: str) -> Table:
    spec = kpi.spec
    labels = [f"{fmt.period(p)}" for p in scope.periods]
    if spec.chart == "stack":
        rows = []
        for index, label in enumerate(labels):
            values = [int(line.points[index].value or 0) for line in kpi.lines]
            rows.append((label, *(fmt.money(v) for v in values), fmt.money(sum(values))))
        totals = [int(line.total.value or 0) for line in kpi.lines]
        return Table(
            (_PERIOD(lang), *(line.name(lang) for line in kpi.lines), _TOTAL(lang)),
            tuple(rows),
            (_WHOLE(lang), *(fmt.money(v) for v in totals), fmt.money(sum(totals))),
        )
    if spec.key == "messages":
        sent, blocked = kpi.lines

        def share(point: Point) -> str:
            if not point.denominator:
                return _NO_VALUE
            return fmt.percent(Decimal(point.numerator or 0) * 100 / Decimal(point.denominator))

        rows = [
            (
                label,
                fmt.count(int(sent.points[i].value or 0)),
                fmt.count(int(blocked.points[i].value or 0)),
                share(blocked.points[i]),
            )
            for i, label in enumerate(labels)
        ]
        return Table(
            (_PERIOD(lang), sent.name(lang), blocked.name(lang), _BLOCKED_SHARE(lang)),
            tuple(rows),
            (
                _WHOLE(lang),
                fmt.count(int(sent.total.value or 0)),
                fmt.count(int(blocked.total.value or 0)),
                share(blocked.total),
            ),
        )
    line = kpi.lines[0]
    assert spec.numerator and spec.denominator

    def row(label: str, point: Point) -> tuple[str, ...]:
        return (
            label,
            fmt.amount(spec.numerator_unit, point.numerator),
            fmt.amount(spec.denominator_unit, point.denominator),
            fmt.value(spec.unit, point.value),
        )

    return Table(
        (_PERIOD(lang), spec.numerator(lang), spec.denominator(lang), _VALUE(lang)),
        tuple(row(label, point) for label, point in zip(labels, line.points, strict=True)),
        row(_WHOLE(lang), line.total),
    )


def _detail(kpi: Kpi, fmt: KpiFormat, lang: str) -> str:
    spec = kpi.spec
    if spec.chart == "stack":
        totals = [int(line.total.value or 0) for line in kpi.lines]
        overdue, receivables = sum(totals[1:]), sum(totals)
        share = fmt.value("percent", Decimal(overdue) * 100 / receivables) if receivables else "—"
        return _OVERDUE(lang).format(amount=fmt.money(overdue), share=share)
    if spec.key == "messages":
        blocked = kpi.lines[1].total
        share = (
            fmt.percent(Decimal(blocked.numerator or 0) * 100 / Decimal(blocked.denominator))
            if blocked.denominator
            else _NO_VALUE
        )
        return _BLOCKED_NOTE(lang).format(n=fmt.count(int(blocked.value or 0)), share=share)
    point = kpi.headline
    assert spec.numerator and spec.denominator
    return _OF(lang).format(
        numerator=spec.numerator(lang),
        a=fmt.amount(spec.numerator_unit, point.numerator),
        denominator=spec.denominator(lang),
        b=fmt.amount(spec.denominator_unit, point.denominator),
    )


_OVERDUE_SHARE: Final = Text("Vencido: {share}", "Overdue: {share}")


def _tile_detail(kpi: Kpi, fmt: KpiFormat, lang: str) -> str:
    """The tile's short line when it has no trend to show."""
    if kpi.spec.chart == "stack":
        totals = [int(line.total.value or 0) for line in kpi.lines]
        if not sum(totals):
            return _OVERDUE_SHARE(lang).format(share=_NO_VALUE)
        share = fmt.percent(Decimal(sum(totals[1:])) * 100 / sum(totals))
        return _OVERDUE_SHARE(lang).format(share=share)
    return _detail(kpi, fmt, lang)


def _trend(kpi: Kpi, fmt: KpiFormat) -> tuple[str, str]:
    """The last period against the one before it: which way is better, and by how much."""
    spec = kpi.spec
    if spec.higher_is_better is None or spec.chart == "stack":
        return "", ""
    values = [p.value for p in kpi.lines[0].points]
    if len(values) < 2 or values[-1] is None or values[-2] is None:
        return "", ""
    delta = Decimal(values[-1]) - Decimal(values[-2])
    if delta == 0:
        return "flat", ""
    better = (delta > 0) == spec.higher_is_better
    sign = "+" if delta > 0 else "−"
    magnitude = abs(delta)
    if spec.unit == "percent":
        text = f"{sign}{format_decimal(magnitude, format='#,##0.0', locale=fmt.locale)} pp"
    elif spec.unit == "days":
        text = f"{sign}{fmt.value('days', magnitude)}"
    elif spec.unit == "money_ratio":
        text = f"{sign}{format_decimal(magnitude, format='#,##0.0000', locale=fmt.locale)}"
    else:
        text = f"{sign}{fmt.count(int(magnitude))}"
    return ("better" if better else "worse"), text


def _view(kpi: Kpi, scope: KpiScope, fmt: KpiFormat, lang: str) -> KpiView:
    spec = kpi.spec
    labels = fmt.axis_labels(scope.periods)
    name = spec.name(lang)
    desc = _CHART_DESC(lang).format(name=name, start=fmt.date(scope.start), end=fmt.date(scope.end))
    if spec.chart == "stack":
        chart = charts.stacked_bar_chart(
            labels,
            [
                [fmt.chart_value("money", line.points[i].value) or 0.0 for line in kpi.lines]
                for i in range(scope.n)
            ],
            [line.name(lang) for line in kpi.lines],
            title=name,
            desc=desc,
            value_text=fmt.axis("money"),
            width=960,
            height=300,
        )
        spark_values = [
            float(
                money.to_decimal(
                    sum(int(line.points[i].value or 0) for line in kpi.lines[1:]), scope.currency
                )
            )
            for i in range(scope.n)
        ]
        receivables = sum(int(line.total.value or 0) for line in kpi.lines)
        headline, tile_value = fmt.money(receivables), fmt.money_short(receivables)
    else:
        unit = spec.unit
        chart = charts.line_chart(
            labels,
            [
                charts.Series(line.name(lang), [fmt.chart_value(unit, v) for v in _points(line)])
                for line in kpi.lines
            ],
            title=name,
            desc=desc,
            value_text=fmt.axis(unit),
            width=480,
            height=220,
        )
        spark_values = [fmt.chart_value(unit, v) for v in _points(kpi.lines[0])]  # type: ignore[misc]
        headline = fmt.value(unit, kpi.headline.value)
        tile_value = headline
    shown = [v for v in spark_values if v is not None]
    spark = charts.sparkline(
        spark_values,
        title=name,
        desc=_SPARK_DESC(lang).format(
            first=fmt.axis(spec.unit if spec.chart != "stack" else "money")(shown[0])
            if shown
            else _NO_VALUE,
            last=fmt.axis(spec.unit if spec.chart != "stack" else "money")(shown[-1])
            if shown
            else _NO_VALUE,
        ),
    )
    trend, change = _trend(kpi, fmt)
    lines = tuple(
        LineView(
            line.key,
            line.name(lang),
            index % charts.PALETTE_SIZE + 1,
            fmt.value(spec.unit if spec.chart != "stack" else "money", line.total.value),
        )
        for index, line in enumerate(kpi.lines)
    )
    costs = tuple(
        CostRow(
            c.channel,
            fmt.count(c.sent),
            fmt.count(c.blocked),
            fmt.money(c.unit_cost),
            fmt.money(c.cost),
        )
        for c in kpi.channels
    )
    return KpiView(
        key=spec.key,
        name=name,
        definition=spec.definition(lang),
        formula=spec.formula(lang),
        unit=spec.unit,
        headline=headline,
        detail=_detail(kpi, fmt, lang),
        tile_value=tile_value,
        tile_detail=_tile_detail(kpi, fmt, lang),
        lines=lines,
        chart=chart,
        spark=spark,
        table=_table(kpi, scope, fmt, lang),
        costs=costs,
        trend=trend,
        change=change,
    )


@dataclass(frozen=True)
class Dashboard:
    form: KpiForm
    errors: Mapping[str, str]
    creditors: tuple[CreditorChoice, ...]
    currencies: tuple[str, ...]
    unit_costs: UnitCosts
    fmt: KpiFormat
    scope: KpiScope | None = None
    kpis: tuple[KpiView, ...] = ()
    periods: tuple[str, ...] = ()
    creditor_name: str = ""
    default_costs: UnitCosts | None = None
    cost_inputs: Mapping[str, str] = field(default_factory=dict)

    def kpi(self, key: str) -> KpiView:
        return next(k for k in self.kpis if k.key == key)

    @property
    def tiles(self) -> tuple[KpiView, ...]:
        """Every KPI as a tile, the receivables (aging) first."""
        return tuple(sorted(self.kpis, key=lambda k: k.key != "aging"))

    @property
    def cards(self) -> tuple[KpiView, ...]:
        """The KPIs shown as cards in the grid (aging has its own, full width)."""
        return tuple(k for k in self.kpis if k.key != "aging")


def _cost_inputs(form: KpiForm, costs: UnitCosts, currency: str) -> dict[str, str]:
    values = (costs.email, costs.sms, costs.whatsapp, costs.agent_contact)
    return {
        name: getattr(form, name) or str(money.to_decimal(value, currency))
        for name, value in zip(COST_FIELDS, values, strict=True)
    }


async def dashboard(
    form: KpiForm | Mapping[str, Any],
    *,
    today: dt.date,
    language: str,
    unit_costs: UnitCosts | None = None,
) -> Dashboard:
    """The KPI page for these filters (see the module docstring). `unit_costs`, when given,
    replaces both the defaults and the form's cost fields."""
    typed = form if isinstance(form, KpiForm) else KpiForm.from_mapping(form)
    filters = resolve_filters(typed, today=today, creditors=await creditor_choices())
    costs = unit_costs or filters.unit_costs
    currency = filters.form.currency if filters.form.currency in money.EXPONENTS else "ARS"
    fmt = KpiFormat(currency, language, filters.form.by if filters.form.by in BY else "month")
    base = Dashboard(
        form=filters.form,
        errors=filters.errors,
        creditors=filters.creditors,
        currencies=filters.currencies,
        unit_costs=costs,
        fmt=fmt,
        default_costs=default_unit_costs(currency),
        cost_inputs=_cost_inputs(filters.form, costs, currency),
    )
    scope = filters.scope
    if scope is None:
        return base
    found = await all_kpis(scope, unit_costs=costs)
    names = {c.id: c.name for c in filters.creditors}
    return replace(
        base,
        scope=scope,
        kpis=tuple(_view(k, scope, fmt, language) for k in found.kpis),
        periods=tuple(fmt.period(p) for p in scope.periods),
        creditor_name=names.get(scope.creditor_id, "") if scope.creditor_id else "",
    )


# ---------------------------------------------------------------------------- CSV


@dataclass(frozen=True, slots=True)
class CsvExport:
    filename: str
    text: str
    rows: int


def _cell(value: str) -> str:
    """Keep a spreadsheet from running text as a formula."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _csv_number(unit: str, value: Decimal | int | None, currency: str) -> str:
    if value is None:
        return ""
    if unit == "money":
        return str(money.to_decimal(int(value), currency))
    return str(value)


_CSV_UNITS: Final = {"money_ratio": "ratio"}


async def export_csv(
    form: KpiForm | Mapping[str, Any],
    *,
    today: dt.date,
    language: str,
    actor: Actor,
    now: dt.datetime,
    unit_costs: UnitCosts | None = None,
) -> CsvExport:
    """Every KPI line × period (and the whole range) as RFC 4180 CSV with `CSV_COLUMNS`.

    Money is a decimal string with `.` in major units of the currency; percentages are in
    percent; an undefined value is empty. Raises `ValidationFailed` naming the first wrong
    filter. Writes a `kpis.exported` audit event with the filters.
    """
    typed = form if isinstance(form, KpiForm) else KpiForm.from_mapping(form)
    creditors = await creditor_choices()
    filters = resolve_filters(typed, today=today, creditors=creditors)
    if filters.scope is None:
        name, code = next(iter(filters.errors.items()))
        raise ValidationFailed(f"invalid filter {name}: {code}", field=name)
    scope = filters.scope
    found = await all_kpis(scope, unit_costs=unit_costs or filters.unit_costs)
    names = {c.id: c.name for c in creditors}
    creditor = names.get(scope.creditor_id, "") if scope.creditor_id else ""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for kpi in found.kpis:
        spec = kpi.spec
        unit = "money" if spec.chart == "stack" else spec.unit
        for line in kpi.lines:
            periods = [*zip(scope.periods, line.points, strict=True), (scope.whole, line.total)]
            for index, (period, point) in enumerate(periods):
                total = index == len(periods) - 1
                writer.writerow(
                    [
                        line.key,
                        _cell(line.name(language)),
                        "total" if total else period_key(period, scope.by),
                        period.start.isoformat(),
                        period.end.isoformat(),
                        _csv_number(unit, point.value, scope.currency),
                        _csv_number(
                            spec.numerator_unit if spec.numerator else "count",
                            point.numerator,
                            scope.currency,
                        ),
                        _csv_number(
                            spec.denominator_unit if spec.denominator else "count",
                            point.denominator,
                            scope.currency,
                        ),
                        _CSV_UNITS.get(unit, unit),
                        scope.currency,
                        str(scope.creditor_id or ""),
                        _cell(creditor),
                    ]
                )
                count += 1
    await record(
        actor,
        "kpis.exported",
        now=now,
        object_type="kpis",
        after={**filters.form.query(), "rows": count},
    )
    suffix = f"-{scope.creditor_id}" if scope.creditor_id else ""
    filename = f"saldo-kpis{suffix}-{scope.currency}-{scope.start}-{scope.end}.csv"
    return CsvExport(filename, out.getvalue(), count)
