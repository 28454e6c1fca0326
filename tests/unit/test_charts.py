"""saldo/charts.py: the scaling keeps every mark inside the drawing, stacked bars add up, and
the markup is accessible, escaped and free of inline styles."""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saldo import charts

SVG = "{http://www.w3.org/2000/svg}"

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False)
maybe = st.one_of(st.none(), finite)
amounts = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)


def inside(point: tuple[float, float], plot: charts.Plot) -> bool:
    x, y = point
    eps = 1e-6
    return plot.x0 - eps <= x <= plot.x1 + eps and plot.y1 - eps <= y <= plot.y0 + eps


def parse(chart: charts.Chart) -> ET.Element:
    return ET.fromstring(chart.svg)


# ---------------------------------------------------------------------------- ticks


@given(finite, finite, st.integers(min_value=1, max_value=8))
def test_ticks_cover_the_data_and_zero_in_equal_round_steps(a, b, count):
    low, high = min(a, b), max(a, b)
    ticks = charts.nice_ticks(low, high, count)
    assert ticks[0] <= min(low, 0) + 1e-9 * max(1, abs(low))
    assert ticks[-1] >= max(high, 0) - 1e-9 * max(1, abs(high))
    assert 2 <= len(ticks) <= 2 * count + 3
    steps = {round(b - a, 6) for a, b in itertools.pairwise(ticks)}
    step = ticks[1] - ticks[0]
    assert all(math.isclose(s, step, rel_tol=1e-6, abs_tol=1e-6) for s in steps)
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m, rel_tol=1e-6) for m in (1, 2, 2.5, 5, 10))


def test_ticks_of_nothing_are_zero_to_one():
    assert charts.nice_ticks(0, 0) == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert charts.nice_ticks(0, 87, 4) == (0.0, 25.0, 50.0, 75.0, 100.0)


# ---------------------------------------------------------------------------- lines


@settings(max_examples=150)
@given(st.data())
def test_line_points_stay_inside_the_plot_and_keep_the_order_of_values(data):
    n = data.draw(st.integers(min_value=1, max_value=40))
    series = [
        charts.Series(f"s{i}", data.draw(st.lists(maybe, min_size=n, max_size=n)))
        for i in range(data.draw(st.integers(min_value=1, max_value=3)))
    ]
    chart = charts.line_chart(
        [f"p{i}" for i in range(n)], series, title="t", desc="d", width=640, height=240
    )
    plot = chart.plot
    assert 0 <= plot.x0 < plot.x1 <= plot.width and 0 <= plot.y1 < plot.y0 <= plot.height
    pairs = []
    for line, points in zip(series, chart.points, strict=True):
        assert len(points) == n
        for value, point in zip(line.values, points, strict=True):
            assert (value is None) == (point is None)
            if point is not None:
                assert inside(point, plot)
                pairs.append((value, point[1]))
    # a larger value is drawn higher up (smaller y)
    pairs.sort()
    for (v1, y1), (v2, y2) in itertools.pairwise(pairs):
        if v2 > v1:
            assert y2 <= y1 + 1e-6
    # x grows with the period
    xs = [p[0] for p in chart.points[0] if p is not None]
    assert xs == sorted(xs)


def test_a_gap_breaks_the_line():
    chart = charts.line_chart(
        ["a", "b", "c", "d"], [charts.Series("x", [1, None, 3, 4])], title="t", desc="d"
    )
    path = parse(chart).find(f".//{SVG}path").attrib["d"]
    assert path.count("M") == 2 and path.count("L") == 1
    assert len(parse(chart).findall(f".//{SVG}circle")) == 3


def test_series_and_labels_must_agree():
    with pytest.raises(ValueError):
        charts.line_chart(["a", "b"], [charts.Series("x", [1])], title="t", desc="d")


# ---------------------------------------------------------------------------- stacked bars


@settings(max_examples=150)
@given(st.data())
def test_stacked_segments_add_up_to_the_bar_and_stay_inside(data):
    n = data.draw(st.integers(min_value=1, max_value=30))
    k = data.draw(st.integers(min_value=1, max_value=6))
    stacks = data.draw(st.lists(st.lists(amounts, min_size=k, max_size=k), min_size=n, max_size=n))
    chart = charts.stacked_bar_chart(
        [f"p{i}" for i in range(n)], stacks, [f"b{j}" for j in range(k)], title="t", desc="d"
    )
    plot, scale = chart.plot, chart.high - chart.low
    assert chart.low == 0 and chart.high >= max((sum(s) for s in stacks), default=0)
    for stack, rects in zip(stacks, chart.bars, strict=True):
        assert [r.value for r in rects] == stack
        total = sum(stack)
        height = sum(r.height for r in rects)
        # the bar is its total on the axis's scale, and its segments add up to it
        assert math.isclose(height, total / scale * plot.inner_height, rel_tol=1e-9, abs_tol=1e-6)
        bottom = plot.y0
        for rect in rects:
            assert rect.height >= -1e-9
            assert math.isclose(rect.y + rect.height, bottom, abs_tol=1e-6)  # stacked, no gap
            bottom = rect.y
            assert inside((rect.x, rect.y), plot)
            assert inside((rect.x + rect.width, rect.y + rect.height), plot)


def test_segments_must_not_be_negative():
    with pytest.raises(ValueError):
        charts.stacked_bar_chart(["a"], [[1, -1]], ["x", "y"], title="t", desc="d")
    with pytest.raises(ValueError):
        charts.stacked_bar_chart(["a", "b"], [[1, 2]], ["x", "y"], title="t", desc="d")


def test_empty_segments_draw_no_rectangle():
    chart = charts.stacked_bar_chart(["a"], [[0, 5, 0]], ["x", "y", "z"], title="t", desc="d")
    rects = parse(chart).findall(f".//{SVG}rect")
    assert [r.attrib["class"] for r in rects] == ["chart__bar chart__bar--2"]


# ---------------------------------------------------------------------------- sparklines


@given(st.lists(maybe, min_size=0, max_size=60))
def test_sparkline_points_stay_inside(values):
    chart = charts.sparkline(values, title="t")
    for point in chart.points[0]:
        if point is not None:
            assert inside(point, chart.plot)
    markup = parse(chart)
    last = [v for v in values if v is not None]
    assert (markup.find(f"{SVG}circle") is not None) == bool(last)


# ---------------------------------------------------------------------------- markup


def test_charts_are_accessible_images_with_escaped_text_and_no_styles():
    made = [
        charts.line_chart(
            ["ene <2026>", "feb & mar"],
            [charts.Series("Días", [1.5, 2])],
            title='DSO "días" <b>',
            desc="Del 01/01 & al 31/03",
        ),
        charts.stacked_bar_chart(
            ["ene", "feb"], [[1, 2], [3, 4]], ["No vencido", "1–30 <días>"], title="A", desc="B"
        ),
        charts.sparkline([1, 2, None, 3], title="S & P", desc="x < y"),
    ]
    for chart in made:
        root = parse(chart)  # well-formed: every text is escaped
        assert root.tag == f"{SVG}svg"
        assert root.attrib["role"] == "img"
        title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
        assert title is not None and desc is not None
        assert root.attrib["aria-labelledby"].split() == [title.attrib["id"], desc.attrib["id"]]
        assert "viewBox" in root.attrib
        for element in root.iter():
            assert "style" not in element.attrib
        assert str(chart) == chart.__html__() == chart.svg
    assert made[0].svg.count("<title") == 1 + 2  # the chart, then each dot
    assert parse(made[0]).find(f"{SVG}title").text == 'DSO "días" <b>'


def test_each_chart_has_its_own_ids():
    a = charts.sparkline([1, 2], title="a")
    b = charts.sparkline([1, 2], title="b")
    assert parse(a).find(f"{SVG}title").attrib["id"] != parse(b).find(f"{SVG}title").attrib["id"]


def test_crowded_labels_are_thinned_but_the_first_is_kept():
    labels = [f"semana {i}" for i in range(52)]
    chart = charts.line_chart(labels, [charts.Series("x", list(range(52)))], title="t", desc="d")
    shown = [t.text for t in parse(chart).iter(f"{SVG}text") if t.attrib["class"] == "chart__label"]
    assert shown[0] == "semana 0" and 4 <= len(shown) < 52
