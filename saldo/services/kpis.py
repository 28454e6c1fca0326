"""Collection KPIs: each one a function of a `KpiScope` (creditor or all, the accounts'
currency, a date range, months or weeks) returning a value per period and for the whole range,
with its definition and exact formula in Spanish and English next to it.

The figures come from `kpis_data.KpiData` (set-based queries, run once per scope and shared by
every KPI of a request). Money is in minor units of the scope's currency; amounts of different
currencies never add up, so a scope has one currency.

Shared terms (the page repeats them in each definition):

- Receivables at the end of a day: the sum of the open amounts of the invoices with something
  left to pay (each invoice's ledger entries up to that day, when positive). Credits that
  belong to no invoice are not receivables. They split into the aging buckets by days past
  due on that day: current (not yet due), 1–30, 31–60, 61–90, 90+.
- Billed in a period ("credit sales"): charge, interest and fee entries effective in it, net of
  their reversals.
- Collected: payment entries effective in the period (on invoices and as credit), net of their
  reversals. Recovered: the part paid on an invoice already past due that day.
- Time stamps (promise resolutions, contacts, messages, plan decisions) count on their UTC day.

Cost of collection has no table behind it: it is counted messages and contacts × unit costs
that are arguments (`UnitCosts`, minor units of the scope's currency); `DEFAULT_UNIT_COSTS`
holds reference prices per currency that the page states and lets staff override.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Final

from saldo.services.kpis_data import (
    Balances,
    Flows,
    KpiData,
    KpiScope,
    MessageCounts,
)
from saldo.tables import Channel

__all__ = [
    "CHANNELS",
    "DEFAULT_UNIT_COSTS",
    "KPI_FUNCTIONS",
    "ChannelFigures",
    "Kpi",
    "KpiSet",
    "KpiSpec",
    "Line",
    "Point",
    "Text",
    "UnitCosts",
    "accounts_managed",
    "aging",
    "all_kpis",
    "cei",
    "collection_cost",
    "contact_rate",
    "default_unit_costs",
    "dso",
    "messages",
    "plan_default_rate",
    "promise_kept_rate",
    "recovery_rate",
]

CHANNELS: Final = tuple(str(c) for c in Channel)


@dataclass(frozen=True, slots=True)
class Text:
    """A text in Spanish (the source) and English."""

    es: str
    en: str

    def __call__(self, language: str) -> str:
        return self.en if language == "en" else self.es


@dataclass(frozen=True, slots=True)
class Point:
    """One figure: its value (None when undefined, e.g. a rate over nothing) and, for a ratio,
    the numerator and denominator it was computed from."""

    value: Decimal | int | None
    numerator: int | None = None
    denominator: int | None = None


@dataclass(frozen=True, slots=True)
class Line:
    """A series: one point per period of the scope and one for the whole range."""

    key: str
    name: Text
    points: tuple[Point, ...]
    total: Point


@dataclass(frozen=True, slots=True)
class KpiSpec:
    key: str
    name: Text
    definition: Text
    formula: Text
    unit: str  # percent | days | money | count | money_ratio
    chart: str = "line"  # line | stack
    numerator: Text | None = None
    denominator: Text | None = None
    numerator_unit: str = "money"
    denominator_unit: str = "money"
    higher_is_better: bool | None = True


@dataclass(frozen=True, slots=True)
class ChannelFigures:
    """Messages of one channel over the whole range, and what they cost."""

    channel: str
    sent: int
    blocked: int
    unit_cost: int
    cost: int


@dataclass(frozen=True)
class Kpi:
    spec: KpiSpec
    lines: tuple[Line, ...]
    channels: tuple[ChannelFigures, ...] = ()
    notes: tuple[Text, ...] = ()

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def headline(self) -> Point:
        return self.lines[0].total


@dataclass(frozen=True, slots=True)
class UnitCosts:
    """What one message or one agent contact costs, in minor units of the scope's currency."""

    email: int
    sms: int
    whatsapp: int
    agent_contact: int

    def of(self, channel: str) -> int:
        return {"email": self.email, "sms": self.sms, "whatsapp": self.whatsapp}.get(channel, 0)


#: Reference unit costs per currency (minor units): a transactional email, an SMS, a WhatsApp
#: utility template message, and one agent call or visit (about five minutes of an agent's
#: loaded time). Estimates for the region; the page says so and staff can override them.
DEFAULT_UNIT_COSTS: Final[Mapping[str, UnitCosts]] = {
    "ARS": UnitCosts(email=50, sms=2_500, whatsapp=6_000, agent_contact=150_000),
    "MXN": UnitCosts(email=2, sms=60, whatsapp=70, agent_contact=2_500),
    "COP": UnitCosts(email=500, sms=6_000, whatsapp=10_000, agent_contact=600_000),
    "PEN": UnitCosts(email=1, sms=15, whatsapp=25, agent_contact=600),
    "UYU": UnitCosts(email=5, sms=200, whatsapp=250, agent_contact=6_000),
    "BRL": UnitCosts(email=1, sms=12, whatsapp=40, agent_contact=800),
    "EUR": UnitCosts(email=1, sms=7, whatsapp=5, agent_contact=150),
    "USD": UnitCosts(email=1, sms=7, whatsapp=5, agent_contact=150),
    "CLP": UnitCosts(email=1, sms=30, whatsapp=50, agent_contact=1_200),
    "PYG": UnitCosts(email=10, sms=300, whatsapp=400, agent_contact=10_000),
}


def default_unit_costs(currency: str) -> UnitCosts:
    return DEFAULT_UNIT_COSTS.get(currency, DEFAULT_UNIT_COSTS["USD"])


# ---------------------------------------------------------------------------- arithmetic

_ONE_DECIMAL: Final = Decimal("0.1")
_FOUR_DECIMALS: Final = Decimal("0.0001")


def _ratio(
    numerator: int, denominator: int, scale: int = 100, places: Decimal = _ONE_DECIMAL
) -> Decimal | None:
    """numerator / denominator × scale, rounded half-up; None when the denominator is not
    positive (the figure is undefined, not zero)."""
    if denominator <= 0:
        return None
    with localcontext() as ctx:
        ctx.prec = 40
        value = Decimal(numerator) * Decimal(scale) / Decimal(denominator)
        return value.quantize(places, rounding=ROUND_HALF_UP)


def _rate(numerator: int, denominator: int) -> Point:
    return Point(_ratio(numerator, denominator), numerator, denominator)


def _line(key: str, name: Text, points: Sequence[Point], total: Point) -> Line:
    return Line(key, name, tuple(points), total)


async def _data(scope: KpiScope, data: KpiData | None) -> KpiData:
    if data is None:
        return KpiData(scope)
    if data.scope != scope:
        raise ValueError("the cached figures belong to another scope")
    return data


def _bal(balances: Mapping[int, Balances], k: int) -> Balances:
    return balances.get(k, Balances())


def _flow(flows: Mapping[int, Flows], k: int) -> Flows:
    return flows.get(k, Flows())


def _ks(scope: KpiScope) -> range:
    return range(1, scope.n + 1)


# ---------------------------------------------------------------------------- DSO

DSO = KpiSpec(
    key="dso",
    name=Text("Días de venta pendientes de cobro (DSO)", "Days sales outstanding (DSO)"),
    definition=Text(
        "Cuántos días de facturación representa lo que queda por cobrar al cierre del período. "
        "Por cobrar: la suma de los saldos abiertos de las facturas con algo pendiente al "
        "cierre. Facturado: cargos, intereses y recargos con fecha en el período, netos de sus "
        "reversiones. Sin facturación en el período no hay valor. Menos es mejor.",
        "How many days of billing the receivables at the end of the period represent. "
        "Receivables: the sum of the open amounts of the invoices with something left to pay "
        "at the end. Billed: charge, interest and fee entries dated in the period, net of their "
        "reversals. With nothing billed in the period there is no value. Lower is better.",
    ),
    formula=Text(
        "DSO = por cobrar al cierre ÷ facturado en el período × días del período",
        "DSO = receivables at period end ÷ billed in the period × days in the period",
    ),
    unit="days",
    numerator=Text("Por cobrar al cierre", "Receivables at period end"),
    denominator=Text("Facturado en el período", "Billed in the period"),
    higher_is_better=False,
)


def _dso_point(receivables: int, billed: int, days: int) -> Point:
    if billed <= 0:
        return Point(None, receivables, billed)
    with localcontext() as ctx:
        ctx.prec = 40
        value = Decimal(receivables) * days / Decimal(billed)
    return Point(value.quantize(_ONE_DECIMAL, rounding=ROUND_HALF_UP), receivables, billed)


async def dso(
    scope: KpiScope, data: KpiData | None = None, *, unit_costs: UnitCosts | None = None
) -> Kpi:
    figures = await _data(scope, data)
    balances, flows = await figures.balances(), await figures.flows()
    points = [
        _dso_point(_bal(balances, k).receivables, _flow(flows, k).billed, p.days)
        for k, p in zip(_ks(scope), scope.periods, strict=True)
    ]
    total = _dso_point(
        _bal(balances, scope.n).receivables,
        sum(_flow(flows, k).billed for k in _ks(scope)),
        scope.days,
    )
    return Kpi(DSO, (_line("dso", DSO.name, points, total),))


# ---------------------------------------------------------------------------- CEI

CEI = KpiSpec(
    key="cei",
    name=Text("Índice de efectividad de cobranza (CEI)", "Collection effectiveness index (CEI)"),
    definition=Text(
        "Qué parte de lo que se podía cobrar en el período se cobró. Se podía cobrar: lo que se "
        "debía al inicio más lo facturado, menos lo que al cierre todavía no vencía. Se cobró: "
        "lo que se debía al inicio más lo facturado, menos lo que quedó por cobrar al cierre "
        "(como en la fórmula estándar, las notas de crédito y los castigos también bajan lo que "
        "queda). 100 % es el máximo habitual; más es mejor.",
        "How much of what could be collected in the period was collected. Collectible: what was "
        "owed at the start plus what was billed, minus what was not yet due at the end. "
        "Collected: what was owed at the start plus what was billed, minus the receivables left "
        "at the end (as in the standard formula, credit notes and write-offs also lower what is "
        "left). 100 % is the usual ceiling; higher is better.",
    ),
    formula=Text(
        "CEI = (por cobrar al inicio + facturado − por cobrar al cierre) ÷ (por cobrar al "
        "inicio + facturado − por cobrar no vencido al cierre) × 100",
        "CEI = (beginning receivables + billed − ending receivables) ÷ (beginning receivables "
        "+ billed − ending current receivables) × 100",
    ),
    unit="percent",
    numerator=Text("Cobrado (inicio + facturado − cierre)", "Collected (start + billed − end)"),
    denominator=Text(
        "Cobrable (inicio + facturado − no vencido al cierre)",
        "Collectible (start + billed − current at end)",
    ),
)


def _cei_point(opening: Balances, billed: int, closing: Balances) -> Point:
    available = opening.receivables + billed
    return _rate(available - closing.receivables, available - closing.current)


async def cei(
    scope: KpiScope, data: KpiData | None = None, *, unit_costs: UnitCosts | None = None
) -> Kpi:
    figures = await _data(scope, data)
    balances, flows = await figures.balances(), await figures.flows()
    points = [
        _cei_point(_bal(balances, k - 1), _flow(flows, k).billed, _bal(balances, k))
        for k in _ks(scope)
    ]
    total = _cei_point(
        _bal(balances, 0),
        sum(_flow(flows, k).billed for k in _ks(scope)),
        _bal(balances, scope.n),
    )
    return Kpi(CEI, (_line("cei", CEI.name, points, total),))


# ---------------------------------------------------------------------------- aging

AGING = KpiSpec(
    key="aging",
    name=Text("Antigüedad de la deuda", "Receivables aging"),
    definition=Text(
        "Lo que queda por cobrar al cierre de cada período, según los días de atraso de cada "
        "factura ese día: no vencido, 1–30, 31–60, 61–90 y más de 90 días. Las barras suman el "
        "total por cobrar. Se calcula desde el libro de movimientos a cada fecha de cierre.",
        "The receivables at the end of each period by each invoice's days past due on that "
        "day: current, 1–30, 31–60, 61–90 and over 90 days. The bars add up to the total "
        "receivables. Computed from the ledger as of each period end.",
    ),
    formula=Text(
        "Tramo = Σ saldos abiertos (> 0) de las facturas cuyos días de atraso al cierre caen en "
        "el tramo; días de atraso = cierre − vencimiento",
        "Bucket = Σ open amounts (> 0) of the invoices whose days past due at period end fall "
        "in the bucket; days past due = period end − due date",
    ),
    unit="money",
    chart="stack",
    higher_is_better=None,
)
AGING_BUCKETS: Final = (
    ("current", Text("No vencido", "Current")),
    ("1_30", Text("1–30 días", "1–30 days")),
    ("31_60", Text("31–60 días", "31–60 days")),
    ("61_90", Text("61–90 días", "61–90 days")),
    ("90_plus", Text("Más de 90 días", "Over 90 days")),
)


async def aging(
    scope: KpiScope, data: KpiData | None = None, *, unit_costs: UnitCosts | None = None
) -> Kpi:
    """One line per bucket; each point is the bucket at the period's end, the total the bucket
    at the range's end."""
    figures = await _data(scope, data)
    balances = await figures.balances()
    lines = []
    for index, (key, name) in enumerate(AGING_BUCKETS):
        points = [Point(_bal(balances, k).buckets[index]) for k in _ks(scope)]
        lines.append(
            _line(f"aging_{key}", name, points, Point(_bal(balances, scope.n).buckets[index]))
        )
    return Kpi(AGING, tuple(lines))


# ---------------------------------------------------------------------------- recovery

RECOVERY = KpiSpec(
    key="recovery_rate",
    name=Text("Tasa de recupero", "Recovery rate"),
    definition=Text(
        "Qué parte de la deuda vencida se recuperó en el período. Recuperado: pagos imputados a "
        "facturas ya vencidas el día del pago, netos de sus reversiones. Deuda vencida: lo "
        "vencido al inicio del período más lo que venció durante él (el saldo de cada factura "
        "el día de su vencimiento, más intereses y recargos cargados sobre facturas ya "
        "vencidas). Más es mejor.",
        "How much of the overdue debt was recovered in the period. Recovered: payments on "
        "invoices already past due on the day paid, net of their reversals. Overdue debt: "
        "what was past due at the start of the period plus what fell due during it (each "
        "invoice's open amount on its due date, plus interest and fees charged on invoices "
        "already past due). Higher is better.",
    ),
    formula=Text(
        "Tasa de recupero = recuperado ÷ (vencido al inicio + nuevo vencido en el período) × 100",
        "Recovery rate = recovered ÷ (overdue at period start + newly overdue in the period) × 100",
    ),
    unit="percent",
    numerator=Text("Recuperado", "Recovered"),
    denominator=Text("Vencido al inicio + nuevo vencido", "Overdue at start + newly overdue"),
)


async def recovery_rate(
    scope: KpiScope, data: KpiData | None = None, *, unit_costs: UnitCosts | None = None
) -> Kpi:
    figures = await _data(scope, data)
    balances, flows, new = (
        await figures.balances(),
        await figures.flows(),
        await figures.new_overdue(),
    )

    def fell_due(k: int) -> int:
        return new.get(k, 0) + _flow(flows, k).billed_overdue

    points = [
        _rate(_flow(flows, k).recovered, _bal(balances, k - 1).overdue + fell_due(k))
        for k in _ks(scope)
    ]
    total = _rate(
        sum(_flow(flows, k).recovered for k in _ks(scope)),
        _bal(balances, 0).overdue + sum(fell_due(k) for k in _ks(scope)),
    )
    return Kpi(RECOVERY, (_line("recovery_rate", RECOVERY.name, points, total),))


# ---------------------------------------------------------------------------- promises

PROMISES = KpiSpec(
    key="promise_kept_rate",
    name=Text("Promesas cumplidas", "Promise-kept rate"),
    definition=Text(
        "De las promesas de pago que se resolvieron en el período (el día en que se marcaron "
        "cumplidas o incumplidas), qué parte se cumplió: se pagó lo prometido hasta la fecha "
        "prometida más los días de gracia. Las promesas canceladas no cuentan. Más es mejor.",
        "Of the promises to pay resolved in the period (the day they were marked kept or "
        "broken), the share kept: the promised amount was paid by the promised date plus the "
        "grace days. Cancelled promises do not count. Higher is better.",
    ),
    formula=Text(
        "Promesas cumplidas = cumplidas ÷ (cumplidas + incumplidas) × 100",
        "Promise-kept rate = kept ÷ (kept + broken) × 100",
    ),
    unit="percent",
    numerator=Text("Cumplidas", "Kept"),
    denominator=Text("Resueltas", "Resolved"),
    numerator_unit="count",
    denominator_unit="count",
)


async def promise_kept_rate(
    scope: KpiScope, data: KpiData | None = None, *, unit_costs: UnitCosts | None = None
) -> Kpi:
    figures = await _data(scope, data)
    counts = await figures.promises()
    kept = [counts[k].kept if k in counts else 0 for k in _ks(scope)]
    broken = [counts[k].broken if k in counts else 0 for k in _ks(scope)]
    points = [_rate(a, a + b) for a, b in zip(kept, broken, strict=True)]
    total = _rate(sum(kept), sum(kept) + sum(broken))
    return Kpi(PROMISES, (_line("promise_kept_rate", PROMISES.name, points, total),))


# ---------------------------------------------------------------------------- plans

PLANS = KpiSpec(
    key="plan_default_rate",
    name=Text("Planes incumplidos", "Plan default rate"),
    definition=Text(
        "De los planes de pago vigentes en algún momento del período (aprobados hasta su "
        "cierre y no terminados antes de su inicio), qué parte se declaró incumplida en el "
        "período por cuotas vencidas sin pagar. Menos es mejor.",
        "Of the payment plans in force at some point in the period (approved by its end and "
        "not ended before its start), the share declared broken in the period for missed "
        "installments. Lower is better.",
    ),
    formula=Text(
        "Planes incumplidos = planes incumplidos en el período ÷ planes vigentes en el período "
        "× 100",
        "Plan default rate = plans broken in the period ÷ plans in force in the period × 100",
    ),
    unit="percent",
    numerator=Text("Incumplidos", "Broken"),
    denominator=Text("Vigentes", "In force"),
    numerator_unit="count",
    denominator_unit="count",
    higher_is_better=False,
)


async def plan_default_rate(
    scope: KpiScope, data: KpiData | None = None, *, unit_costs: UnitCosts | None = None
) -> Kpi:
    figures = await _data(scope, data)
    counts = await figures.plans()
    points = []
    for k in [*_ks(scope), scope.n + 1]:
        found = counts.get(k)
        points.append(_rate(found.broken, found.in_force) if found else _rate(0, 0))
    return Kpi(PLANS, (_line("plan_default_rate", PLANS.name, points[:-1], points[-1]),))


# ---------------------------------------------------------------------------- contacts

CONTACTS = KpiSpec(
    key="contact_rate",
    name=Text("Tasa de contacto", "Contact rate"),
    definition=Text(
        "De los intentos de contacto de los agentes en el período (llamadas y visitas "
        "registradas), qué parte llegó al deudor: resultado «contactado», «prometió pagar», "
        "«se negó» o «pidió que lo llamen». Más es mejor.",
        "Of the agents' contact attempts in the period (calls and visits recorded), the share "
        "that reached the debtor: outcome reached, promised, refused or callback. Higher is "
        "better.",
    ),
    formula=Text(
        "Tasa de contacto = intentos con contacto ÷ intentos × 100",
        "Contact rate = attempts that reached the debtor ÷ attempts × 100",
    ),
    unit="percent",
    numerator=Text("Con contacto", "Reached"),
    denominator=Text("Intentos", "Attempts"),
    numerator_unit="count",
    denominator_unit="count",
)


async def contact_rate(
    scope: KpiScope, data: KpiData | None = None, *, unit_costs: UnitCosts | None = None
) -> Kpi:
    figures = await _data(scope, data)
    counts = await figures.contacts()
    reached = [counts[k].reached if k in counts else 0 for k in _ks(scope)]
    attempts = [counts[k].attempts if k in counts else 0 for k in _ks(scope)]
    points = [_rate(r, a) for r, a in zip(reached, attempts, strict=True)]
    total = _rate(sum(reached), sum(attempts))
    return Kpi(CONTACTS, (_line("contact_rate", CONTACTS.name, points, total),))


# ---------------------------------------------------------------------------- messages

MESSAGES = KpiSpec(
    key="messages",
    name=Text("Mensajes enviados y bloqueados", "Messages sent and blocked"),
    definition=Text(
        "Mensajes de cobranza (correo, SMS, WhatsApp) enviados en el período, por el día de "
        "envío, y los que las reglas de contacto bloquearon (horario, tope de frecuencia, "
        "baja del canal, pausas), por el día en que debían salir. Los demorados que después "
        "salieron cuentan como enviados.",
        "Collection messages (email, SMS, WhatsApp) sent in the period, by the day sent, and "
        "those the contact rules blocked (send window, frequency cap, opt-out, pauses), by the "
        "day they were due to go out. Deferred messages that went out later count as sent.",
    ),
    formula=Text(
        "Enviados = mensajes con estado enviado; bloqueados = mensajes con estado bloqueado; "
        "% bloqueado = bloqueados ÷ (enviados + bloqueados) × 100",
        "Sent = messages with status sent; blocked = messages with status blocked; "
        "% blocked = blocked ÷ (sent + blocked) × 100",
    ),
    unit="count",
    higher_is_better=None,
)
_SENT = Text("Enviados", "Sent")
_BLOCKED = Text("Bloqueados", "Blocked")


def _message_totals(counts: Mapping[tuple[int, str], MessageCounts], k: int) -> tuple[int, int]:
    sent = sum(c.sent for (kk, _), c in counts.items() if kk == k)
    blocked = sum(c.blocked for (kk, _), c in counts.items() if kk == k)
    return sent, blocked


def _channels(
    scope: KpiScope, counts: Mapping[tuple[int, str], MessageCounts], costs: UnitCosts
) -> tuple[ChannelFigures, ...]:
    rows = []
    for channel in CHANNELS:
        sent = sum(c.sent for (k, ch), c in counts.items() if ch == channel and 1 <= k <= scope.n)
        blocked = sum(
            c.blocked for (k, ch), c in counts.items() if ch == channel and 1 <= k <= scope.n
        )
        rows.append(
            ChannelFigures(channel, sent, blocked, costs.of(channel), sent * costs.of(channel))
        )
    return tuple(rows)


async def messages(
    scope: KpiScope, data: KpiData | None = None, *, unit_costs: UnitCosts | None = None
) -> Kpi:
    figures = await _data(scope, data)
    counts = await figures.messages()
    totals = [_message_totals(counts, k) for k in _ks(scope)]
    sent = [Point(s) for s, _ in totals]
    blocked = [Point(b, b, s + b) for s, b in totals]
    all_sent, all_blocked = sum(s for s, _ in totals), sum(b for _, b in totals)
    costs = unit_costs or default_unit_costs(scope.currency)
    return Kpi(
        MESSAGES,
        (
            _line("messages_sent", _SENT, sent, Point(all_sent)),
            _line(
                "messages_blocked",
                _BLOCKED,
                blocked,
                Point(all_blocked, all_blocked, all_sent + all_blocked),
            ),
        ),
        channels=_channels(scope, counts, costs),
    )


# ---------------------------------------------------------------------------- cost

COST = KpiSpec(
    key="cost_per_recovered",
    name=Text("Costo de cobranza por peso recuperado", "Cost of collection per peso recovered"),
    definition=Text(
        "Cuánto costó la gestión por cada unidad de moneda recuperada. No hay una tabla de "
        "costos: el costo es la cantidad de mensajes enviados por canal y de intentos de "
        "contacto de los agentes (llamadas y visitas) por un costo unitario de cada uno, que "
        "se indica abajo y se puede cambiar en los filtros. Recuperado: como en la tasa de "
        "recupero. Menos es mejor.",
        "What collection cost per unit of currency recovered. There is no cost table: the cost "
        "is the number of messages sent per channel and of agent contact attempts (calls and "
        "visits) times a unit cost for each, stated below and editable in the filters. "
        "Recovered: as in the recovery rate. Lower is better.",
    ),
    formula=Text(
        "Costo por peso = (correos × costo correo + SMS × costo SMS + WhatsApp × costo WhatsApp "
        "+ intentos de contacto × costo contacto) ÷ recuperado",
        "Cost per peso = (emails × email cost + SMS × SMS cost + WhatsApp × WhatsApp cost "
        "+ contact attempts × contact cost) ÷ recovered",
    ),
    unit="money_ratio",
    numerator=Text("Costo", "Cost"),
    denominator=Text("Recuperado", "Recovered"),
    higher_is_better=False,
)


def _cost_point(cost: int, recovered: int) -> Point:
    return Point(_ratio(cost, recovered, scale=1, places=_FOUR_DECIMALS), cost, recovered)


async def collection_cost(
    scope: KpiScope, data: KpiData | None = None, *, unit_costs: UnitCosts | None = None
) -> Kpi:
    figures = await _data(scope, data)
    costs = unit_costs or default_unit_costs(scope.currency)
    counts, contacts, flows = (
        await figures.messages(),
        await figures.contacts(),
        await figures.flows(),
    )

    def cost(k: int) -> int:
        sent = sum(c.sent * costs.of(ch) for (kk, ch), c in counts.items() if kk == k)
        found = contacts.get(k)
        return sent + (found.attempts if found else 0) * costs.agent_contact

    points = [_cost_point(cost(k), _flow(flows, k).recovered) for k in _ks(scope)]
    total = _cost_point(
        sum(cost(k) for k in _ks(scope)), sum(_flow(flows, k).recovered for k in _ks(scope))
    )
    attempts = sum(contacts[k].attempts for k in _ks(scope) if k in contacts)
    channels = (
        *_channels(scope, counts, costs),
        ChannelFigures(
            "agent_contact", attempts, 0, costs.agent_contact, attempts * costs.agent_contact
        ),
    )
    return Kpi(
        COST,
        (_line("cost_per_recovered", COST.name, points, total),),
        channels=channels,
    )


# ---------------------------------------------------------------------------- managed

MANAGED = KpiSpec(
    key="accounts_managed",
    name=Text("Cuentas gestionadas", "Accounts managed"),
    definition=Text(
        "De las cuentas con deuda vencida al cierre del período, qué parte tuvo alguna gestión "
        "del equipo en el período: una llamada, visita, nota, promesa, revisión de plan o "
        "respuesta a un reclamo registrada por un usuario del back office. Los mensajes "
        "automáticos no cuentan. Más es mejor.",
        "Of the accounts with overdue debt at the end of the period, the share that staff "
        "worked in the period: a call, visit, note, promise, plan review or dispute reply "
        "recorded by a back-office user. Automatic messages do not count. Higher is better.",
    ),
    formula=Text(
        "Cuentas gestionadas = cuentas vencidas al cierre con gestión del equipo en el período "
        "÷ cuentas vencidas al cierre × 100",
        "Accounts managed = accounts overdue at period end that staff worked in the period "
        "÷ accounts overdue at period end × 100",
    ),
    unit="percent",
    numerator=Text("Gestionadas", "Managed"),
    denominator=Text("Con deuda vencida", "With overdue debt"),
    numerator_unit="count",
    denominator_unit="count",
)


async def accounts_managed(
    scope: KpiScope, data: KpiData | None = None, *, unit_costs: UnitCosts | None = None
) -> Kpi:
    figures = await _data(scope, data)
    balances = await figures.balances()
    points = [
        _rate(_bal(balances, k).managed_accounts, _bal(balances, k).overdue_accounts)
        for k in _ks(scope)
    ]
    overdue, managed = await figures.managed_in_range()
    return Kpi(MANAGED, (_line("accounts_managed", MANAGED.name, points, _rate(managed, overdue)),))


# ---------------------------------------------------------------------------- all of them

#: The dashboard's KPIs, in the order the page shows them.
KPI_FUNCTIONS: Final = (
    dso,
    cei,
    recovery_rate,
    promise_kept_rate,
    plan_default_rate,
    contact_rate,
    accounts_managed,
    messages,
    collection_cost,
    aging,
)


@dataclass(frozen=True)
class KpiSet:
    scope: KpiScope
    kpis: tuple[Kpi, ...] = field(default_factory=tuple)

    def by_key(self, key: str) -> Kpi:
        return next(k for k in self.kpis if k.key == key)


async def all_kpis(
    scope: KpiScope, *, unit_costs: UnitCosts | None = None, data: KpiData | None = None
) -> KpiSet:
    """Every KPI of the dashboard for one scope, sharing one set of queries."""
    figures = await _data(scope, data)
    await figures.load_all()
    costs = unit_costs or default_unit_costs(scope.currency)
    found = [await function(scope, figures, unit_costs=costs) for function in KPI_FUNCTIONS]
    return KpiSet(scope, tuple(found))
