"""Money: integer minor units per currency, splits, allocation and interest.

Pure module: standard library and Babel only, no I/O. Every amount is an `int` in the currency's
minor unit (centavos for ARS, pesos for CLP). `Decimal` appears only at the edges: parsing user
input (`parse_amount`), invoice line arithmetic (`line_total`), and display (`to_decimal`,
`format_money`).

Rounding is always half-up on the magnitude (`ROUND_HALF_UP`: 0.005 -> 0.01, -0.005 -> -0.01),
which is what PostgreSQL's `round(numeric, n)` does, so totals computed here and in SQL agree.

Every split sums exactly to its total; each function's docstring states where the remainder goes.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from decimal import ROUND_HALF_UP, Decimal, Inexact, InvalidOperation, localcontext
from typing import Final, TypeVar

from babel.numbers import format_currency

__all__ = [
    "EXPONENTS",
    "MalformedAmount",
    "UnknownCurrency",
    "allocate",
    "allocate_oldest_first",
    "capped",
    "daily_interest",
    "exponent",
    "format_money",
    "line_total",
    "parse_amount",
    "split_installments",
    "to_decimal",
]

K = TypeVar("K", bound=Hashable)

#: Digits after the decimal point of each supported ISO 4217 currency.
EXPONENTS: Final[dict[str, int]] = {
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

# Optional minus, digits, optional "." followed by digits. Nothing else: no "+", no spaces,
# no thousands separators, no exponent, no leading or trailing ".".
_AMOUNT_RE: Final = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
# Longest amount text accepted; far beyond any real amount, small enough to keep parsing cheap.
_MAX_AMOUNT_CHARS: Final = 40
# Working precision for exact Decimal arithmetic (products of a few bounded operands).
_EXACT_PREC: Final = 200
_PPM: Final = 1_000_000


class UnknownCurrency(ValueError):
    """The currency code is not one Saldo supports."""

    def __init__(self, currency: object) -> None:
        supported = ", ".join(sorted(EXPONENTS))
        super().__init__(f"unknown currency {currency!r}; supported: {supported}")
        self.currency = currency


class MalformedAmount(ValueError):
    """An amount is not a plain decimal number (or cannot be represented exactly)."""


def exponent(currency: str) -> int:
    """Digits of the minor unit of `currency` (an upper-case ISO 4217 code, e.g. "ARS" -> 2)."""
    try:
        return EXPONENTS[currency]
    except (KeyError, TypeError):
        raise UnknownCurrency(currency) from None


def parse_amount(text: str, currency: str) -> int:
    """Parse a decimal string such as "1234.5", "-3" or "0.005" into minor units of `currency`.

    The only accepted form is an optional "-", digits, and an optional "." followed by digits.
    Extra fraction digits are rounded half-up on the magnitude ("0.005" ARS -> 1,
    "-0.005" ARS -> -1, "0.5" CLP -> 1). Raises `MalformedAmount` for anything else and
    `UnknownCurrency` for an unsupported currency.
    """
    digits = exponent(currency)
    if not isinstance(text, str):
        raise MalformedAmount(f"amount must be text, not {type(text).__name__}")
    if len(text) > _MAX_AMOUNT_CHARS:
        raise MalformedAmount(f"amount is too long (more than {_MAX_AMOUNT_CHARS} characters)")
    if _AMOUNT_RE.fullmatch(text) is None:
        shown = text if text else "an empty value"
        raise MalformedAmount(
            f"{shown!r} is not an amount; write digits with an optional '-' and '.' as the "
            "decimal separator, e.g. 1234.56 (no thousands separators, spaces or exponents)"
        )
    with localcontext() as ctx:
        ctx.prec = _EXACT_PREC
        value = Decimal(text).scaleb(digits)
        return int(value.to_integral_value(rounding=ROUND_HALF_UP))


def to_decimal(minor: int, currency: str) -> Decimal:
    """The exact `Decimal` for `minor` units, with the currency's digits (123456 ARS -> 1234.56)."""
    digits = exponent(currency)
    sign = 1 if minor < 0 else 0
    coefficient = tuple(int(c) for c in str(abs(minor)))
    return Decimal((sign, coefficient, -digits))


# Where local usage separates the symbol from the amount ("$ 1.234,56" in Argentina, "$ 12.345"
# in Chile) but CLDR does not, a no-break space keeps the symbol and digits together on one line.
# Babel still applies each currency's own digits, so the pattern's ".00" becomes none for CLP.
SYMBOL_SPACED: dict[str, str] = {
    "es_AR": "¤\xa0#,##0.00",
    "es_CL": "¤\xa0#,##0.00",
    "es_UY": "¤\xa0#,##0.00",
    "es_PY": "¤\xa0#,##0.00",
    "es_CO": "¤\xa0#,##0.00",
}


def format_money(minor: int, currency: str, locale: str) -> str:
    """Format `minor` units for display with Babel's currency pattern for `locale`.

    Babel's separators and symbol placement, with a no-break space after the symbol where
    `SYMBOL_SPACED` says local usage wants one. Examples (Babel 2.18 / CLDR 47):
    123456 ARS in es_AR -> "$\\xa01.234,56"; 123456 MXN in es_MX -> "$1,234.56";
    12345 CLP in es_CL -> "$\\xa012.345"; 123456 EUR in es_ES -> "1.234,56\\xa0€".
    Babel's digits per currency equal `EXPONENTS` for every supported currency (tested).
    `locale` is a Babel identifier ("es_AR"); an unknown one raises Babel's `UnknownLocaleError`.
    """
    pattern = SYMBOL_SPACED.get(locale)
    return format_currency(to_decimal(minor, currency), currency, locale=locale, format=pattern)


def line_total(
    quantity: Decimal, unit_price: Decimal, tax_rate_percent: Decimal, currency: str
) -> int:
    """Minor units of one invoice line: `quantity × unit_price × (1 + tax_rate_percent / 100)`.

    The product is computed exactly, then rounded once, half-up on the magnitude, to the
    currency's minor unit, matching PostgreSQL's `round(numeric, exponent)`. Raises
    `MalformedAmount` for NaN or infinite operands.
    """
    digits = exponent(currency)
    operands = (quantity, unit_price, tax_rate_percent)
    if not all(isinstance(x, Decimal | int) for x in operands):
        raise MalformedAmount("line_total needs Decimal (or int) operands, never float")
    q, p, t = (Decimal(x) for x in operands)
    if not (q.is_finite() and p.is_finite() and t.is_finite()):
        raise MalformedAmount("line_total operands must be finite numbers")
    with localcontext() as ctx:
        ctx.prec = _EXACT_PREC
        ctx.traps[Inexact] = True
        try:
            # Dividing by 100 and scaling to minor units is an exact shift of the exponent.
            raw = (q * p * (100 + t)).scaleb(digits - 2)
        except (Inexact, InvalidOperation) as exc:
            raise MalformedAmount("line amount has too many digits to compute exactly") from exc
        return int(raw.to_integral_value(rounding=ROUND_HALF_UP))


def allocate(total: int, weights: list[int]) -> list[int]:
    """Split `total` proportionally to `weights` by the largest-remainder method.

    Each share starts as the floor of `|total| × weight / sum(weights)`; the units still missing
    go, one each, to the shares with the largest remainders, and among equal remainders to the
    earliest index. A zero weight always gets 0; equal weights get shares that differ by at most
    one unit (the earlier one being larger). A negative `total` is split as its magnitude and
    every share negated, so the rule mirrors. The result sums exactly to `total`.

    Raises `ValueError` if `weights` is empty, has a negative weight, or sums to zero.
    """
    if not weights:
        raise ValueError("allocate needs at least one weight")
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    weight_sum = sum(weights)
    if weight_sum == 0:
        raise ValueError("at least one weight must be positive")
    magnitude = abs(total)
    shares: list[int] = []
    remainders: list[int] = []
    for w in weights:
        share, remainder = divmod(magnitude * w, weight_sum)
        shares.append(share)
        remainders.append(remainder)
    missing = magnitude - sum(shares)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in by_remainder[:missing]:
        shares[i] += 1
    if total < 0:
        return [-s for s in shares]
    return shares


def split_installments(total: int, count: int, down_payment: int = 0) -> list[int]:
    """Split a plan `total` into an optional down payment plus `count` installments.

    Returns `[down_payment, i1, ..., i_count]`, or just the installments when `down_payment` is
    0. The installments share `total - down_payment` as evenly as possible: each gets the floor
    of the even share, and the remainder is spread one minor unit each over the EARLIEST
    installments (10000 in 3 -> [3334, 3333, 3333]). The result sums exactly to `total`.

    Raises `ValueError` if `count < 1`, `total < 0`, or `down_payment` is negative or larger
    than `total`.
    """
    if count < 1:
        raise ValueError("a plan needs at least one installment")
    if total < 0:
        raise ValueError("a plan total must not be negative")
    if down_payment < 0:
        raise ValueError("the down payment must not be negative")
    if down_payment > total:
        raise ValueError("the down payment must not exceed the plan total")
    share, remainder = divmod(total - down_payment, count)
    installments = [share + 1] * remainder + [share] * (count - remainder)
    if down_payment:
        return [down_payment, *installments]
    return installments


def allocate_oldest_first(
    amount: int, open_items: list[tuple[K, int]], preferred: Sequence[K] = ()
) -> tuple[list[tuple[K, int]], int]:
    """Apply a payment of `amount` to open items; return `(allocations, leftover)`.

    `open_items` are `(key, open_amount)` pairs with positive open amounts, already sorted by
    the caller (oldest first). Items whose key is in `preferred` are paid first, in the order of
    `preferred`; then the remaining items in list order. Each item receives at most its open
    amount; `allocations` lists `(key, applied)` in the order applied, only for items that
    received something. `leftover` is what no item could take (an overpayment, kept as credit).
    `sum(applied) + leftover == amount`. Preferred keys that are not open are ignored (the item
    may have been settled meanwhile); repeated preferred keys count once.

    Raises `ValueError` for a negative `amount`, a non-positive open amount, or a repeated key.
    """
    if amount < 0:
        raise ValueError("a payment amount must not be negative")
    open_by_key: dict[K, int] = {}
    for key, open_amount in open_items:
        if open_amount <= 0:
            raise ValueError(f"open item {key!r} has a non-positive open amount {open_amount}")
        if key in open_by_key:
            raise ValueError(f"open item {key!r} is listed twice")
        open_by_key[key] = open_amount
    order: list[K] = [k for k in dict.fromkeys(preferred) if k in open_by_key]
    chosen = set(order)
    order.extend(key for key, _ in open_items if key not in chosen)
    allocations: list[tuple[K, int]] = []
    remaining = amount
    for key in order:
        if remaining == 0:
            break
        applied = min(remaining, open_by_key[key])
        allocations.append((key, applied))
        remaining -= applied
    return allocations, remaining


def daily_interest(principal: int, rate_ppm_per_day: int, days: int) -> int:
    """Simple interest on `principal` minor units for `days` days at `rate_ppm_per_day`.

    The rate is in parts per million per day (0.1 % a day = 1000). The result is
    `principal × rate × days / 1_000_000` rounded half-up, in integer arithmetic. A principal of
    zero or less (nothing owed, or a credit) accrues 0, so the result is never negative.

    Raises `ValueError` for a negative rate or a negative number of days.
    """
    if rate_ppm_per_day < 0:
        raise ValueError("an interest rate must not be negative")
    if days < 0:
        raise ValueError("days must not be negative")
    if principal <= 0:
        return 0
    return (principal * rate_ppm_per_day * days + _PPM // 2) // _PPM


def capped(amount: int, already_charged: int, cap: int) -> int:
    """How much of `amount` may still be charged when `already_charged` counts against `cap`.

    Returns `min(amount, cap - already_charged)`, and 0 once the cap is reached or exceeded.

    Raises `ValueError` if any argument is negative.
    """
    if amount < 0 or already_charged < 0 or cap < 0:
        raise ValueError("amount, already charged and cap must not be negative")
    return max(0, min(amount, cap - already_charged))
