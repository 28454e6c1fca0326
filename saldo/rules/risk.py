"""The nightly risk score (0–100) and segment of an account, as pure rules.

`score(features)` adds points for what makes a debt harder to collect and takes some off for
what shows the debtor pays:

==========================================  ====================================================
days past due (oldest open invoice)         0 … 45, linear up to 90 days (45 from 90 days on)
balance                                     0 … 25, linear up to the currency's
                                            `LARGE_BALANCE` (25 from there on)
broken promises                             +6 each, at most 2 counted
broken payment plans                        +8 each, at most 2 counted
kept promises                               −4 each, at most 2 counted
payments received in the last 90 days       −3 each, at most 3 counted
==========================================  ====================================================

The sum is clamped to 0 … 100, and an account that owes nothing (balance ≤ 0) scores 0.
Points are whole numbers: each linear part is rounded down. The score never falls when the
days past due or the balance grow, everything else equal (property-tested).

`LARGE_BALANCE` is, per currency, a balance in minor units that counts as large for a consumer
or small-business debt (roughly a thousand US dollars when it was set). It is a coarse scale for
scoring and for the "high_value" segment only; no amount is ever converted with it.

`segment(features)`:

- `settled`     nothing owed (balance ≤ 0);
- `legal`       escalated to legal collection;
- `preventive`  nothing overdue yet;
- `high_value`  overdue with a balance of at least `LARGE_BALANCE`;
- `early`       up to 30 days past due;
- `late`        more than 30 days past due.

`score_sql` and `segment_sql` are the same rules as SQL expressions, for the set-based nightly
update; a database test checks that both give the same result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "LARGE_BALANCE",
    "SEGMENTS",
    "Features",
    "large_balance",
    "score",
    "score_sql",
    "segment",
    "segment_sql",
]

DPD_POINTS: Final = 45
DPD_FULL_DAYS: Final = 90
BALANCE_POINTS: Final = 25
BROKEN_PROMISE_POINTS: Final = 6
BROKEN_PLAN_POINTS: Final = 8
KEPT_PROMISE_POINTS: Final = 4
PAYMENT_POINTS: Final = 3
MAX_COUNTED: Final = 2
MAX_PAYMENTS_COUNTED: Final = 3
EARLY_DAYS: Final = 30
#: A large balance per currency, in minor units (see the module docstring).
LARGE_BALANCE: Final[Mapping[str, int]] = {
    "ARS": 100_000_000,
    "MXN": 2_000_000,
    "COP": 400_000_000,
    "PEN": 400_000,
    "UYU": 4_000_000,
    "BRL": 500_000,
    "EUR": 100_000,
    "USD": 100_000,
    "CLP": 1_000_000,
    "PYG": 7_500_000,
}
DEFAULT_LARGE_BALANCE: Final = 100_000
SEGMENTS: Final = ("settled", "legal", "preventive", "high_value", "early", "late")


@dataclass(frozen=True, slots=True)
class Features:
    balance: int  # minor units; ≤ 0 means nothing owed
    currency: str
    days_past_due: int  # of the oldest open invoice; ≤ 0 when nothing is overdue
    kept_promises: int = 0
    broken_promises: int = 0
    broken_plans: int = 0
    payments_90d: int = 0
    legal: bool = False


def large_balance(currency: str) -> int:
    return LARGE_BALANCE.get(currency, DEFAULT_LARGE_BALANCE)


def score(features: Features) -> int:
    """The account's risk score, 0 (no risk) to 100 (see the module docstring)."""
    if features.balance <= 0:
        return 0
    large = large_balance(features.currency)
    dpd = min(max(features.days_past_due, 0), DPD_FULL_DAYS)
    points = dpd * DPD_POINTS // DPD_FULL_DAYS
    points += min(features.balance, large) * BALANCE_POINTS // large
    points += min(max(features.broken_promises, 0), MAX_COUNTED) * BROKEN_PROMISE_POINTS
    points += min(max(features.broken_plans, 0), MAX_COUNTED) * BROKEN_PLAN_POINTS
    points -= min(max(features.kept_promises, 0), MAX_COUNTED) * KEPT_PROMISE_POINTS
    points -= min(max(features.payments_90d, 0), MAX_PAYMENTS_COUNTED) * PAYMENT_POINTS
    return max(0, min(100, points))


def segment(features: Features) -> str:
    """The account's segment (see the module docstring)."""
    if features.balance <= 0:
        return "settled"
    if features.legal:
        return "legal"
    if features.days_past_due <= 0:
        return "preventive"
    if features.balance >= large_balance(features.currency):
        return "high_value"
    if features.days_past_due <= EARLY_DAYS:
        return "early"
    return "late"


def _large_sql(currency: str) -> str:
    cases = " ".join(f"WHEN '{c}' THEN {v}::bigint" for c, v in LARGE_BALANCE.items())
    return f"(CASE {currency} {cases} ELSE {DEFAULT_LARGE_BALANCE}::bigint END)"


def _clamp_count(column: str, most: int) -> str:
    return f"least(greatest({column}, 0), {most})"


def score_sql(
    *,
    balance: str,
    currency: str,
    days_past_due: str,
    kept_promises: str,
    broken_promises: str,
    broken_plans: str,
    payments_90d: str,
) -> str:
    """`score` as an SQL expression over the given column expressions (trusted SQL text)."""
    large = _large_sql(currency)
    dpd = f"least(greatest({days_past_due}, 0), {DPD_FULL_DAYS})"
    points = (
        f"({dpd} * {DPD_POINTS} / {DPD_FULL_DAYS})"
        f" + (least({balance}, {large}) * {BALANCE_POINTS} / {large})"
        f" + {_clamp_count(broken_promises, MAX_COUNTED)} * {BROKEN_PROMISE_POINTS}"
        f" + {_clamp_count(broken_plans, MAX_COUNTED)} * {BROKEN_PLAN_POINTS}"
        f" - {_clamp_count(kept_promises, MAX_COUNTED)} * {KEPT_PROMISE_POINTS}"
        f" - {_clamp_count(payments_90d, MAX_PAYMENTS_COUNTED)} * {PAYMENT_POINTS}"
    )
    return f"(CASE WHEN {balance} <= 0 THEN 0 ELSE greatest(0, least(100, {points})) END)"


def segment_sql(*, balance: str, currency: str, days_past_due: str, legal: str) -> str:
    """`segment` as an SQL expression over the given column expressions (trusted SQL text)."""
    return (
        f"(CASE WHEN {balance} <= 0 THEN 'settled' WHEN {legal} THEN 'legal' "
        f"WHEN {days_past_due} <= 0 THEN 'preventive' "
        f"WHEN {balance} >= {_large_sql(currency)} THEN 'high_value' "
        f"WHEN {days_past_due} <= {EARLY_DAYS} THEN 'early' ELSE 'late' END)"
    )
