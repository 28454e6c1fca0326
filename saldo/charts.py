"""Server-rendered SVG charts: line charts, stacked bars and sparklines.

Pure module: standard library only, no I/O. Each function returns a `Chart`: the SVG markup
(escaped, ready to put in a page) and the geometry it drew, so tests can check the scaling
without parsing markup.

The markup follows the back office's content security policy: no `style` attributes and no
scripts. Colours come from classes (`chart__line--1`, `chart__bar--3`, …) that
`static/css/backoffice-kpis.css` paints. Every chart is an image to assistive technology:
`role="img"` with a `<title>` and a `<desc>` referenced by `aria-labelledby`; pages put the
numbers in a data table next to it (the charts never carry information the table lacks).

Scaling: values map linearly onto the plot area, the value axis always includes zero and ends
on "nice" ticks (1, 2, 2.5 or 5 × a power of ten), so every drawn point and bar lies inside the
`viewBox`. In a stacked bar the segments are stacked from zero in the given order and their
heights add up to the bar's height, which is its total on the axis's scale. `None` in a line
series is a gap (a period where the figure is undefined, e.g. a rate with no denominator).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html import escape
from itertools import count
from typing import Final

__all__ = [
    "Chart",
    "Plot",
    "Rect",
    "Series",
    "line_chart",
    "nice_ticks",
    "sparkline",
    "stacked_bar_chart",
]

ValueText = Callable[[float], str]

#: Colour slots the stylesheet defines for series and segments (`--1` … `--6`).
PALETTE_SIZE: Final = 6
#: A value range narrower than this is drawn as a unit axis (KPI values are never that small).
_TINY: Final = 1e-9
_ids = count(1)


@dataclass(frozen=True, slots=True)
class Plot:
    """The drawing: `width` × `height` user units, the plot area inside the margins."""

    width: float
    height: float
    left: float = 0.0
    right: float = 0.0
    top: float = 0.0
    bottom: float = 0.0

    @property
    def x0(self) -> float:
        return self.left

    @property
    def x1(self) -> float:
        return self.width - self.right

    @property
    def y0(self) -> float:
        """The bottom of the plot area (SVG y grows downwards)."""
        return self.height - self.bottom

    @property
    def y1(self) -> float:
        return self.top

    @property
    def inner_width(self) -> float:
        return self.x1 - self.x0

    @property
    def inner_height(self) -> float:
        return self.y0 - self.y1


@dataclass(frozen=True, slots=True)
class Series:
    """One line: a name (legend, data table) and a value per label (`None`: no value)."""

    name: str
    values: Sequence[float | None]


@dataclass(frozen=True, slots=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    value: float


@dataclass(frozen=True)
class Chart:
    """The SVG markup and what was drawn: per series its points (`None` for gaps), per bar its
    segments bottom-up, and the value axis (`low`, `high`, `ticks`)."""

    svg: str
    plot: Plot
    low: float = 0.0
    high: float = 1.0
    ticks: tuple[float, ...] = ()
    points: tuple[tuple[tuple[float, float] | None, ...], ...] = ()
    bars: tuple[tuple[Rect, ...], ...] = ()
    labels: tuple[str, ...] = field(default_factory=tuple)

    def __html__(self) -> str:  # Jinja's markup protocol: the markup is already escaped
        return self.svg

    def __str__(self) -> str:
        return self.svg


# ---------------------------------------------------------------------------- scales


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def nice_ticks(low: float, high: float, count: int = 4) -> tuple[float, ...]:
    """Ticks from a round number ≤ min(low, 0) to a round number ≥ max(high, 0), about `count`
    steps of 1, 2, 2.5 or 5 × a power of ten. An empty range gets the ticks of [0, 1]."""
    low, high = min(low, 0.0), max(high, 0.0)
    if not math.isfinite(high - low):
        low, high = 0.0, 1.0
    elif high - low < _TINY:
        high = low + 1.0  # nothing but (near) zeros: a unit axis
    raw = (high - low) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    last = math.ceil(high / step) * step
    steps = max(1, round((last - first) / step))
    return tuple(_clean(first + i * step) for i in range(steps + 1))


def _clean(value: float) -> float:
    """Drop float noise from a tick (0.30000000000000004 → 0.3)."""
    return float(f"{value:.12g}")


def _y(value: float, low: float, high: float, plot: Plot) -> float:
    return plot.y0 - (value - low) / (high - low) * plot.inner_height


def _slot_x(index: int, slots: int, plot: Plot) -> float:
    """The centre of slot `index` of `slots` equal slots across the plot area."""
    return plot.x0 + (index + 0.5) * plot.inner_width / max(1, slots)


def _num(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


# ---------------------------------------------------------------------------- markup


def _open(plot: Plot, kind: str, title: str, desc: str) -> tuple[str, list[str]]:
    uid = f"chart-{next(_ids)}"
    head = (
        f'<svg class="chart chart--{kind}" viewBox="0 0 {_num(plot.width)} {_num(plot.height)}" '
        f'role="img" aria-labelledby="{uid}-title {uid}-desc" focusable="false" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{uid}-title">{escape(title)}</title>'
        f'<desc id="{uid}-desc">{escape(desc)}</desc>'
    )
    return uid, [head]


def _axes(
    parts: list[str],
    plot: Plot,
    ticks: Sequence[float],
    labels: Sequence[str],
    value_text: ValueText,
) -> None:
    low, high = ticks[0], ticks[-1]
    parts.append('<g class="chart__grid" aria-hidden="true">')
    for tick in ticks:
        y = _y(tick, low, high, plot)
        css = "chart__gridline chart__gridline--zero" if tick == 0 else "chart__gridline"
        parts.append(
            f'<line class="{css}" x1="{_num(plot.x0)}" x2="{_num(plot.x1)}" '
            f'y1="{_num(y)}" y2="{_num(y)}"/>'
            f'<text class="chart__tick" x="{_num(plot.x0 - 6)}" y="{_num(y)}" '
            f'text-anchor="end" dominant-baseline="middle">{escape(value_text(tick))}</text>'
        )
    # about 7 units a character at the stylesheet's label size, plus a gap: thin the labels
    # to every n-th period when they would not fit side by side
    room = max((len(label) for label in labels), default=1) * 7 + 14
    every = max(1, math.ceil(len(labels) / max(1, int(plot.inner_width // room))))
    for index, label in enumerate(labels):
        if index % every:
            continue  # too many periods for the width: every n-th label
        x = _slot_x(index, len(labels), plot)
        parts.append(
            f'<text class="chart__label" x="{_num(x)}" y="{_num(plot.y0 + 16)}" '
            f'text-anchor="middle">{escape(label)}</text>'
        )
    parts.append("</g>")


def _slot(index: int) -> int:
    return index % PALETTE_SIZE + 1


# ---------------------------------------------------------------------------- charts


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    desc: str,
    value_text: ValueText = _num,
    width: float = 640,
    height: float = 240,
) -> Chart:
    """One line per series over `labels` (one point per label, `None` leaves a gap)."""
    for line in series:
        if len(line.values) != len(labels):
            raise ValueError(
                f"series {line.name!r} has {len(line.values)} values, not {len(labels)}"
            )
    plot = Plot(width, height, left=64, right=16, top=14, bottom=28)
    values = [v for line in series for v in _finite(line.values)]
    ticks = nice_ticks(min(values, default=0.0), max(values, default=0.0))
    low, high = ticks[0], ticks[-1]
    _, parts = _open(plot, "line", title, desc)
    _axes(parts, plot, ticks, labels, value_text)
    drawn: list[tuple[tuple[float, float] | None, ...]] = []
    for number, line in enumerate(series):
        points: list[tuple[float, float] | None] = []
        for index, value in enumerate(line.values):
            if value is None or not math.isfinite(float(value)):
                points.append(None)
                continue
            points.append((_slot_x(index, len(labels), plot), _y(float(value), low, high, plot)))
        drawn.append(tuple(points))
        slot = _slot(number)
        path, run = [], 0
        for point in points:
            if point is None:
                run = 0
                continue
            path.append(f"{'L' if run else 'M'}{_num(point[0])} {_num(point[1])}")
            run += 1
        parts.append(f'<g class="chart__series chart__series--{slot}">')
        if path:
            parts.append(f'<path class="chart__line chart__line--{slot}" d="{" ".join(path)}"/>')
        for index, point in enumerate(points):
            if point is None:
                continue
            value = line.values[index]
            assert value is not None
            parts.append(
                f'<circle class="chart__dot chart__dot--{slot}" cx="{_num(point[0])}" '
                f'cy="{_num(point[1])}" r="3"><title>{escape(labels[index])}: '
                f"{escape(value_text(float(value)))}</title></circle>"
            )
        parts.append("</g>")
    parts.append("</svg>")
    return Chart(
        svg="".join(parts),
        plot=plot,
        low=low,
        high=high,
        ticks=ticks,
        points=tuple(drawn),
        labels=tuple(labels),
    )


def stacked_bar_chart(
    labels: Sequence[str],
    stacks: Sequence[Sequence[float]],
    names: Sequence[str],
    *,
    title: str,
    desc: str,
    value_text: ValueText = _num,
    width: float = 640,
    height: float = 260,
) -> Chart:
    """One bar per label; `stacks[i][j]` is segment `names[j]` of bar `i`, stacked bottom-up.

    Segments must not be negative. Each bar's height is its total on the value axis, and its
    segments' heights add up to it.
    """
    if len(stacks) != len(labels):
        raise ValueError(f"{len(stacks)} bars for {len(labels)} labels")
    for stack in stacks:
        if len(stack) != len(names):
            raise ValueError(f"a bar has {len(stack)} segments, not {len(names)}")
        if any(v < 0 or not math.isfinite(v) for v in stack):
            raise ValueError("stacked segments must be finite and not negative")
    plot = Plot(width, height, left=72, right=16, top=14, bottom=28)
    ticks = nice_ticks(0.0, max((float(sum(s)) for s in stacks), default=0.0))
    low, high = ticks[0], ticks[-1]
    _, parts = _open(plot, "bars", title, desc)
    _axes(parts, plot, ticks, labels, value_text)
    slot_width = plot.inner_width / max(1, len(labels))
    bar_width = max(2.0, min(48.0, slot_width * 0.62))
    bars: list[tuple[Rect, ...]] = []
    for index, stack in enumerate(stacks):
        x = _slot_x(index, len(labels), plot) - bar_width / 2
        bottom, running = plot.y0, 0.0
        rects: list[Rect] = []
        parts.append('<g class="chart__bar-group">')
        for number, value in enumerate(stack):
            running += float(value)
            top = _y(running, low, high, plot)
            rect = Rect(x, top, bar_width, bottom - top, float(value))
            rects.append(rect)
            if rect.height > 0:
                parts.append(
                    f'<rect class="chart__bar chart__bar--{_slot(number)}" x="{_num(rect.x)}" '
                    f'y="{_num(rect.y)}" width="{_num(rect.width)}" '
                    f'height="{_num(rect.height)}"><title>{escape(labels[index])} · '
                    f"{escape(names[number])}: {escape(value_text(float(value)))}</title></rect>"
                )
            bottom = top
        parts.append("</g>")
        bars.append(tuple(rects))
    parts.append("</svg>")
    return Chart(
        svg="".join(parts),
        plot=plot,
        low=low,
        high=high,
        ticks=ticks,
        bars=tuple(bars),
        labels=tuple(labels),
    )


def sparkline(
    values: Sequence[float | None],
    *,
    title: str,
    desc: str = "",
    width: float = 200,
    height: float = 40,
) -> Chart:
    """A small line with no axes for a single-value tile; the last point is marked."""
    plot = Plot(width, height, left=3, right=3, top=3, bottom=3)
    finite = _finite(values)
    low, high = min(finite, default=0.0), max(finite, default=0.0)
    if high - low <= 0:
        low, high = low - 1, high + 1  # a flat line sits in the middle
    _, parts = _open(plot, "spark", title, desc or title)
    points: list[tuple[float, float] | None] = []
    for index, value in enumerate(values):
        if value is None or not math.isfinite(float(value)):
            points.append(None)
            continue
        x = plot.x0 + (index / max(1, len(values) - 1)) * plot.inner_width
        points.append((x, _y(float(value), low, high, plot)))
    path, run = [], 0
    for point in points:
        if point is None:
            run = 0
            continue
        path.append(f"{'L' if run else 'M'}{_num(point[0])} {_num(point[1])}")
        run += 1
    if path:
        parts.append(f'<path class="chart__spark" d="{" ".join(path)}"/>')
    last = next((p for p in reversed(points) if p is not None), None)
    if last is not None:
        parts.append(
            f'<circle class="chart__spark-dot" cx="{_num(last[0])}" cy="{_num(last[1])}" r="2.5"/>'
        )
    parts.append("</svg>")
    return Chart(
        svg="".join(parts), plot=plot, low=low, high=high, points=(tuple(points),), labels=()
    )
