"""saldo.money: concrete cases plus Hypothesis properties (splits sum to the total, etc.)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

import pytest
from babel.numbers import get_currency_precision
from hypothesis import given, settings
from hypothesis import strategies as st

from saldo.money import (
    EXPONENTS,
    MalformedAmount,
    UnknownCurrency,
    allocate,
    allocate_oldest_first,
    capped,
    daily_interest,
    exponent,
    format_money,
    line_total,
    parse_amount,
    split_installments,
    to_decimal,
)

BIG = 10**15
currencies = st.sampled_from(sorted(EXPONENTS))


def half_up(value: Fraction) -> int:
    """Round an exact fraction to an integer, half away from zero (independent of Decimal)."""
    magnitude = (2 * abs(value.numerator) + value.denominator) // (2 * value.denominator)
    return -magnitude if value < 0 else magnitude


# --- currencies -----------------------------------------------------------------------------


def test_exponents():
    assert {c: exponent(c) for c in EXPONENTS} == {
        "ARS": 2,
        "MXN": 2,
        "COP": 2,
        "PEN": 2,
        "UYU": 2,
        "BRL": 2,
        "EUR": 2,
        "USD": 2,
        "CLP": 0,
        "PYG": 0,
    }


@pytest.mark.parametrize("code", ["XXX", "ars", "", "US D", "GBP"])
def test_unknown_currency(code):
    with pytest.raises(UnknownCurrency, match="unknown currency"):
        exponent(code)
    with pytest.raises(ValueError):
        parse_amount("1", code)


def test_babel_digits_agree_with_exponents():
    for code, digits in EXPONENTS.items():
        assert get_currency_precision(code) == digits, code


# --- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("1234.5", "ARS", 123450),
        ("1234.56", "ARS", 123456),
        ("-3", "ARS", -300),
        ("0", "ARS", 0),
        ("-0", "ARS", 0),
        ("007.10", "USD", 710),
        ("0.005", "ARS", 1),
        ("0.004", "ARS", 0),
        ("-0.005", "ARS", -1),
        ("0.015", "USD", 2),
        ("2.675", "EUR", 268),
        ("12345", "CLP", 12345),
        ("12345.5", "CLP", 12346),
        ("12345.49", "CLP", 12345),
        ("-0.5", "CLP", -1),
        ("150000", "PYG", 150000),
    ],
)
def test_parse_amount(text, currency, minor):
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    "text",
    [
        "1,5",
        "1.2.3",
        "abc",
        "",
        "1e3",
        "1E3",
        " 1",
        "1 ",
        "+1",
        "--1",
        "1.",
        ".5",
        "-",
        "1_000",
        "1,234.56",
        "NaN",
        "Infinity",
        "１２",  # fullwidth digits
        "٣",  # Arabic-Indic digit
        "1\n",
    ],
)
def test_parse_amount_rejects(text):
    with pytest.raises(MalformedAmount, match="not an amount"):
        parse_amount(text, "ARS")


def test_parse_amount_rejects_absurdly_long_text():
    with pytest.raises(MalformedAmount, match="too long"):
        parse_amount("1" * 41, "ARS")


def test_parse_amount_errors_are_value_errors():
    assert issubclass(MalformedAmount, ValueError)
    assert issubclass(UnknownCurrency, ValueError)


# --- display --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minor", "currency", "text"),
    [
        (123456, "ARS", "1234.56"),
        (-5, "USD", "-0.05"),
        (0, "EUR", "0.00"),
        (12345, "CLP", "12345"),
        (-7, "PYG", "-7"),
    ],
)
def test_to_decimal(minor, currency, text):
    value = to_decimal(minor, currency)
    assert value == Decimal(text)
    assert str(value) == text


@pytest.mark.parametrize(
    ("minor", "currency", "locale", "shown"),
    [
        (123456, "ARS", "es_AR", "$\xa01.234,56"),
        (-123456, "ARS", "es_AR", "-$\xa01.234,56"),
        (5, "ARS", "es_AR", "$\xa00,05"),
        (123456, "MXN", "es_MX", "$1,234.56"),
        (12345, "CLP", "es_CL", "$\xa012.345"),
        (-12345, "CLP", "es_CL", "-$\xa012.345"),
        (123456, "COP", "es_CO", "$\xa01.234,56"),
        (123456, "PEN", "es_PE", "S/\xa01,234.56"),
        (123456, "UYU", "es_UY", "$\xa01.234,56"),
        (123456, "BRL", "pt_BR", "R$\xa01.234,56"),
        (123456, "EUR", "es_ES", "1.234,56\xa0€"),
        (123456, "USD", "en_US", "$1,234.56"),
        (12345, "PYG", "es_PY", "Gs.\xa012.345"),
    ],
)
def test_format_money(minor, currency, locale, shown):
    assert format_money(minor, currency, locale) == shown


def test_format_money_unknown_currency():
    with pytest.raises(UnknownCurrency):
        format_money(100, "XXX", "es_AR")


# --- invoice lines --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "unit_price", "tax", "currency", "minor"),
    [
        ("3", "0.335", "0", "ARS", 101),  # 1.005 -> 1.01
        ("1", "100", "21", "ARS", 12100),
        ("2", "19.99", "10.5", "MXN", 4418),  # 44.17790
        ("1", "1000", "19", "CLP", 1190),
        ("3", "333.5", "0", "CLP", 1001),  # 1000.5 -> 1001
        ("-1", "0.005", "0", "ARS", -1),  # a credit line rounds away from zero too
        ("0.333", "3", "0", "USD", 100),  # 0.999
        ("1.5", "0.01", "0", "USD", 2),  # 0.015
        ("0", "123.45", "21", "ARS", 0),
    ],
)
def test_line_total(quantity, unit_price, tax, currency, minor):
    assert line_total(Decimal(quantity), Decimal(unit_price), Decimal(tax), currency) == minor


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity")])
def test_line_total_rejects_non_finite(bad):
    with pytest.raises(MalformedAmount, match="finite"):
        line_total(bad, Decimal(1), Decimal(0), "ARS")


def test_line_total_rejects_float():
    with pytest.raises(MalformedAmount, match="float"):
        line_total(Decimal(1), 0.1, Decimal(0), "ARS")


def test_line_total_rejects_unrepresentable():
    with pytest.raises(MalformedAmount, match="too many digits"):
        line_total(Decimal("1E+999999"), Decimal("1E+999999"), Decimal(0), "ARS")


# --- allocation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "weights", "shares"),
    [
        (100, [1, 1, 1], [34, 33, 33]),
        (-100, [1, 1, 1], [-34, -33, -33]),
        (5, [3, 3, 1], [2, 2, 1]),  # 2.14, 2.14, 0.71: the largest remainder is the last
        (10, [0, 1, 0], [0, 10, 0]),
        (2, [1, 1, 1], [1, 1, 0]),  # equal remainders: earliest first
        (0, [5, 7], [0, 0]),
        (1000, [250, 750], [250, 750]),
    ],
)
def test_allocate(total, weights, shares):
    assert allocate(total, weights) == shares


@pytest.mark.parametrize("weights", [[], [0, 0], [-1, 2]])
def test_allocate_rejects(weights):
    with pytest.raises(ValueError):
        allocate(100, weights)


@settings(max_examples=300)
@given(
    total=st.integers(-BIG, BIG),
    weights=st.lists(st.integers(0, 10**6), min_size=1, max_size=20).filter(lambda w: sum(w) > 0),
)
def test_allocate_properties(total, weights):
    shares = allocate(total, weights)
    assert len(shares) == len(weights)
    assert sum(shares) == total
    weight_sum = sum(weights)
    for share, weight in zip(shares, weights, strict=True):
        # Each share is the floor or the ceiling of its exact proportional share.
        assert abs(share * weight_sum - total * weight) < weight_sum
        assert share * total >= 0  # never the opposite sign of the total
        if weight == 0:
            assert share == 0
    for i, wi in enumerate(weights):
        for j in range(i + 1, len(weights)):
            if weights[j] == wi:
                # Equal weights: at most one unit apart, the earlier one never smaller.
                assert 0 <= abs(shares[i]) - abs(shares[j]) <= 1


# --- installments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "count", "down", "parts"),
    [
        (10000, 3, 0, [3334, 3333, 3333]),
        (10000, 3, 1000, [1000, 3000, 3000, 3000]),
        (10001, 4, 0, [2501, 2500, 2500, 2500]),
        (10002, 4, 0, [2501, 2501, 2500, 2500]),
        (1000, 3, 0, [334, 333, 333]),  # CLP: whole pesos
        (100, 1, 0, [100]),
        (0, 2, 0, [0, 0]),
        (500, 2, 500, [500, 0, 0]),
        (2, 3, 0, [1, 1, 0]),
    ],
)
def test_split_installments(total, count, down, parts):
    assert split_installments(total, count, down) == parts


@pytest.mark.parametrize(
    ("total", "count", "down"),
    [(100, 0, 0), (100, -1, 0), (100, 2, -1), (100, 2, 101), (-100, 2, 0)],
)
def test_split_installments_rejects(total, count, down):
    with pytest.raises(ValueError):
        split_installments(total, count, down)


@settings(max_examples=300)
@given(total=st.integers(0, BIG), count=st.integers(1, 120), data=st.data())
def test_split_installments_properties(total, count, data):
    down = data.draw(st.one_of(st.just(0), st.integers(0, total)), label="down_payment")
    parts = split_installments(total, count, down)
    assert sum(parts) == total
    installments = parts[1:] if down else parts
    assert len(parts) == count + (1 if down else 0)
    if down:
        assert parts[0] == down
    assert max(installments) - min(installments) <= 1
    assert installments == sorted(installments, reverse=True)  # extra units go first


# --- payment application --------------------------------------------------------------------


def test_allocate_oldest_first_in_list_order():
    items = [("a", 100), ("b", 300), ("c", 200)]
    assert allocate_oldest_first(250, items) == ([("a", 100), ("b", 150)], 0)


def test_allocate_oldest_first_preferred_first():
    items = [("a", 100), ("b", 300), ("c", 200)]
    assert allocate_oldest_first(500, items, preferred=["c", "gone", "c"]) == (
        [("c", 200), ("a", 100), ("b", 200)],
        0,
    )


def test_allocate_oldest_first_overpayment_is_leftover():
    assert allocate_oldest_first(1000, [(1, 100), (2, 200)]) == ([(1, 100), (2, 200)], 700)
    assert allocate_oldest_first(50, []) == ([], 50)
    assert allocate_oldest_first(0, [(1, 100)]) == ([], 0)


@pytest.mark.parametrize(
    ("amount", "items"),
    [(-1, [("a", 10)]), (10, [("a", 0)]), (10, [("a", -5)]), (10, [("a", 5), ("a", 6)])],
)
def test_allocate_oldest_first_rejects(amount, items):
    with pytest.raises(ValueError):
        allocate_oldest_first(amount, items)


@settings(max_examples=300)
@given(
    amount=st.integers(0, 10**12),
    opens=st.lists(st.integers(1, 10**10), max_size=15),
    data=st.data(),
)
def test_allocate_oldest_first_properties(amount, opens, data):
    items = [(f"inv{i}", v) for i, v in enumerate(opens)]
    keys = [k for k, _ in items]
    preferred = data.draw(
        st.lists(st.sampled_from([*keys, "unknown"]), max_size=5) if keys else st.just([]),
        label="preferred",
    )
    allocations, leftover = allocate_oldest_first(amount, items, preferred)
    open_by_key = dict(items)
    applied_keys = [k for k, _ in allocations]
    assert len(set(applied_keys)) == len(applied_keys)
    assert all(0 < applied <= open_by_key[k] for k, applied in allocations)
    assert sum(a for _, a in allocations) + leftover == amount
    assert leftover >= 0
    if leftover:
        assert allocations == items_in_order(items, preferred)
    # At most the last item applied is partially paid.
    for key, applied in allocations[:-1]:
        assert applied == open_by_key[key]
    assert applied_keys == [k for k, _ in items_in_order(items, preferred)][: len(applied_keys)]


def items_in_order(items, preferred):
    keys = [k for k, _ in items]
    first = [k for k in dict.fromkeys(preferred) if k in keys]
    order = first + [k for k in keys if k not in first]
    by_key = dict(items)
    return [(k, by_key[k]) for k in order]


# --- interest and caps ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "rate", "days", "interest"),
    [
        (100000, 1000, 30, 3000),  # 0.1 % a day for 30 days on 1000.00
        (1, 500000, 1, 1),  # exactly half a unit rounds up
        (1, 499999, 1, 0),
        (333, 1000, 1, 0),  # 0.333
        (500, 1000, 1, 1),  # 0.5
        (100000, 0, 30, 0),
        (100000, 1000, 0, 0),
        (0, 1000, 30, 0),
        (-100000, 1000, 30, 0),  # a credit accrues nothing
    ],
)
def test_daily_interest(principal, rate, days, interest):
    assert daily_interest(principal, rate, days) == interest


@pytest.mark.parametrize(("rate", "days"), [(-1, 10), (1000, -1)])
def test_daily_interest_rejects(rate, days):
    with pytest.raises(ValueError):
        daily_interest(100, rate, days)


@settings(max_examples=200)
@given(principal=st.integers(-BIG, BIG), rate=st.integers(0, 10**5), days=st.integers(0, 3650))
def test_daily_interest_properties(principal, rate, days):
    interest = daily_interest(principal, rate, days)
    assert interest >= 0
    expected = half_up(Fraction(max(principal, 0) * rate * days, 1_000_000))
    assert interest == expected


@pytest.mark.parametrize(
    ("amount", "already", "cap", "allowed"),
    [
        (500, 800, 1000, 200),
        (100, 0, 1000, 100),
        (500, 1000, 1000, 0),
        (500, 1200, 1000, 0),
        (0, 0, 1000, 0),
        (500, 0, 0, 0),
    ],
)
def test_capped(amount, already, cap, allowed):
    assert capped(amount, already, cap) == allowed


@pytest.mark.parametrize(("amount", "already", "cap"), [(-1, 0, 10), (1, -1, 10), (1, 0, -1)])
def test_capped_rejects(amount, already, cap):
    with pytest.raises(ValueError):
        capped(amount, already, cap)


@settings(max_examples=200)
@given(amount=st.integers(0, BIG), already=st.integers(0, BIG), cap=st.integers(0, BIG))
def test_capped_properties(amount, already, cap):
    allowed = capped(amount, already, cap)
    assert 0 <= allowed <= amount
    if already <= cap:
        assert already + allowed <= cap
        assert allowed == amount or already + allowed == cap
    else:
        assert allowed == 0


# --- edges: line totals and round trips -----------------------------------------------------


@settings(max_examples=300)
@given(
    quantity=st.decimals(-1000, 10**6, places=3, allow_nan=False, allow_infinity=False),
    unit_price=st.decimals(0, 10**9, places=4, allow_nan=False, allow_infinity=False),
    tax=st.decimals(0, 50, places=2, allow_nan=False, allow_infinity=False),
    currency=currencies,
)
def test_line_total_matches_independent_computation(quantity, unit_price, tax, currency):
    result = line_total(quantity, unit_price, tax, currency)
    digits = EXPONENTS[currency]
    with localcontext() as ctx:
        ctx.prec = 100
        exact = quantity * unit_price * (1 + tax / 100)
        rounded = exact.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
        assert result == int(rounded.scaleb(digits))
    as_fraction = Fraction(quantity) * Fraction(unit_price) * (1 + Fraction(tax) / 100)
    assert result == half_up(as_fraction * 10**digits)


@settings(max_examples=300)
@given(minor=st.integers(-BIG, BIG), currency=currencies)
def test_parse_amount_round_trips_to_decimal(minor, currency):
    assert parse_amount(str(to_decimal(minor, currency)), currency) == minor


@settings(max_examples=300)
@given(
    value=st.decimals(-(10**12), 10**12, places=6, allow_nan=False, allow_infinity=False),
    currency=currencies,
)
def test_parse_amount_rounds_half_up(value, currency):
    text = f"{value:f}"
    expected = half_up(Fraction(value) * 10 ** EXPONENTS[currency])
    assert parse_amount(text, currency) == expected


@settings(max_examples=300)
@given(text=st.text(max_size=30))
def test_parse_amount_only_raises_malformed(text):
    try:
        result = parse_amount(text, "ARS")
    except MalformedAmount:
        return
    assert isinstance(result, int)
