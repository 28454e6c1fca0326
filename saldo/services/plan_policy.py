"""Plan policy per creditor and segment: reading it for an account, saving it, saying it in words.

`policy_for(account_id)` is the creditor's `PlanPolicy` row for the account's segment, else the
creditor's "standard" one, else `schedule.Policy()`'s defaults. The table has no column for how
far away the first installment may start, so that limit is always the default
(`schedule.Policy.max_first_date_days`).

`save_policy` validates every value, upserts the row by (creditor, segment) and writes an
`AuditEvent` with the values before and after, in one transaction.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import asdict
from decimal import Decimal
from typing import Any, Final

from saldo.db import DB
from saldo.errors import NotFound, ValidationFailed
from saldo.i18n import gettext
from saldo.schedule import Frequency, Policy
from saldo.services.audit import Actor, record
from saldo.services.statement import Formats
from saldo.tables import PlanPolicy

__all__ = [
    "DEFAULT_SEGMENT",
    "LIMITS",
    "frequency_label",
    "policy_for",
    "policy_from_row",
    "policy_lines",
    "save_policy",
]

DEFAULT_SEGMENT: Final = "standard"
_SEGMENT: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
#: Accepted range of every editable value (inclusive). Money values are minor units.
LIMITS: Final[dict[str, tuple[int, int]]] = {
    "max_installments": (1, 60),
    "min_down_payment_bp": (0, 9_000),
    "min_installment": (0, 10**15),
    "max_term_days": (7, 3_650),
    "early_settlement_discount_bp": (0, 5_000),
    "missed_to_break": (1, 12),
    "grace_days": (0, 60),
    "auto_approve_limit": (0, 10**15),
}
_MESSAGES: Final = {
    "max_installments": "El máximo de cuotas debe estar entre 1 y 60.",
    "min_down_payment_bp": "El anticipo mínimo debe estar entre 0 y 9000 puntos básicos (90 %).",
    "min_installment": "La cuota mínima no puede ser negativa.",
    "max_term_days": "El plazo máximo debe estar entre 7 y 3650 días.",
    "early_settlement_discount_bp": "El descuento debe estar entre 0 y 5000 puntos básicos.",
    "missed_to_break": "Las cuotas impagas que cortan el plan deben estar entre 1 y 12.",
    "grace_days": "Los días de gracia deben estar entre 0 y 60.",
    "auto_approve_limit": "El límite de aprobación automática no puede ser negativo.",
}


def _frequencies(raw: Any) -> tuple[Frequency, ...]:
    values = json.loads(raw) if isinstance(raw, str | bytes) else raw
    if not isinstance(values, list):
        return Policy().frequencies
    known = tuple(f for f in Frequency if f.value in values)
    return known or Policy().frequencies


def policy_from_row(row: Mapping[str, Any]) -> Policy:
    """A `schedule.Policy` from a `plan_policy` row (as a dict)."""
    return Policy(
        max_installments=int(row["max_installments"]),
        frequencies=_frequencies(row["frequencies"]),
        min_down_payment_bp=int(row["min_down_payment_bp"]),
        min_installment=int(row["min_installment"]),
        max_term_days=int(row["max_term_days"]),
        early_settlement_discount_bp=int(row["early_settlement_discount_bp"]),
        missed_to_break=int(row["missed_to_break"]),
        grace_days=int(row["grace_days"]),
        auto_approve_limit=int(row["auto_approve_limit"]),
    )


_POLICY_COLUMNS: Final = """p.max_installments, p.frequencies, p.min_down_payment_bp,
    p.min_installment, p.max_term_days, p.early_settlement_discount_bp, p.missed_to_break,
    p.grace_days, p.auto_approve_limit"""


async def policies_for(account_ids: list[int]) -> dict[int, Policy]:
    """`policy_for` of several accounts at once (accounts that do not exist are left out)."""
    if not account_ids:
        return {}
    rows = await PlanPolicy.raw(
        f"""SELECT a.id AS account_id, p.id AS policy_id, {_POLICY_COLUMNS}
            FROM account a
            LEFT JOIN LATERAL (
                SELECT * FROM plan_policy q
                WHERE q.creditor = a.creditor AND q.segment IN (a.segment, {{}})
                ORDER BY (q.segment = a.segment) DESC
                LIMIT 1
            ) p ON true
            WHERE a.id = ANY({{}}::int[])""",
        DEFAULT_SEGMENT,
        account_ids,
    )
    return {
        int(r["account_id"]): policy_from_row(r) if r["policy_id"] is not None else Policy()
        for r in rows
    }


async def policy_for(account_id: int) -> Policy:
    """The plan policy that applies to an account (segment, else "standard", else defaults)."""
    found = await policies_for([account_id])
    if account_id not in found:
        raise NotFound(f"account {account_id} does not exist")
    return found[account_id]


# ---------------------------------------------------------------------------- saving


def _int(values: Mapping[str, Any], name: str, current: int) -> int:
    if name not in values:
        return current
    raw = values[name]
    if isinstance(raw, bool):
        raise ValidationFailed(_MESSAGES[name], field=name)
    if isinstance(raw, int):
        number = raw
    elif isinstance(raw, str) and re.fullmatch(r"\s*-?[0-9]{1,16}\s*", raw):
        number = int(raw)
    else:
        raise ValidationFailed(_MESSAGES[name], field=name)
    low, high = LIMITS[name]
    if not low <= number <= high:
        raise ValidationFailed(_MESSAGES[name], field=name)
    return number


def _parse_frequencies(values: Mapping[str, Any], current: tuple[Frequency, ...]) -> list[str]:
    if "frequencies" not in values:
        return [f.value for f in current]
    raw = values["frequencies"]
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple | set | frozenset):
        raise ValidationFailed("Elija al menos una frecuencia.", field="frequencies")
    chosen = {str(item).strip() for item in items if str(item).strip()}
    unknown = chosen - {f.value for f in Frequency}
    if unknown or not chosen:
        raise ValidationFailed(
            "Elija al menos una frecuencia: weekly, biweekly o monthly.", field="frequencies"
        )
    return [f.value for f in Frequency if f.value in chosen]


async def save_policy(
    creditor_id: int,
    segment: str,
    values: Mapping[str, Any],
    *,
    staff_id: int,
    now: dt.datetime,
    ip: str = "",
) -> Policy:
    """Create or change the creditor's policy for `segment`; values not given stay as they are.

    `values` may hold any of the `LIMITS` names (ints or digit strings; money in minor units)
    and `frequencies` (a list, or a comma-separated string, of weekly/biweekly/monthly).
    Raises `ValidationFailed` naming the field, `NotFound` for an unknown creditor or staff user.
    """
    segment = (segment or "").strip().lower()
    if not _SEGMENT.fullmatch(segment):
        raise ValidationFailed(
            "El segmento debe tener letras minúsculas, números, '-' o '_' (hasta 40).",
            field="segment",
        )
    async with DB.transaction():
        staff = await PlanPolicy.raw(
            "SELECT id, email FROM staff_user WHERE id = {} AND active", staff_id
        )
        if not staff:
            raise NotFound(f"staff user {staff_id} does not exist")
        creditor = await PlanPolicy.raw("SELECT id FROM creditor WHERE id = {}", creditor_id)
        if not creditor:
            raise NotFound(f"creditor {creditor_id} does not exist")
        existing = await PlanPolicy.raw(
            f"""SELECT p.id AS policy_id, {_POLICY_COLUMNS} FROM plan_policy p
                WHERE p.creditor = {{}} AND p.segment = {{}} FOR UPDATE""",
            creditor_id,
            segment,
        )
        before = policy_from_row(existing[0]) if existing else None
        base = before or Policy()
        after = {name: _int(values, name, getattr(base, name)) for name in LIMITS}
        frequencies = _parse_frequencies(values, base.frequencies)
        rows = await PlanPolicy.raw(
            """INSERT INTO plan_policy (creditor, segment, max_installments, frequencies,
                   min_down_payment_bp, min_installment, max_term_days,
                   early_settlement_discount_bp, missed_to_break, grace_days, auto_approve_limit)
               VALUES ({}, {}, {}, {}::jsonb, {}, {}, {}, {}, {}, {}, {})
               ON CONFLICT (creditor, segment) DO UPDATE SET
                   max_installments = EXCLUDED.max_installments,
                   frequencies = EXCLUDED.frequencies,
                   min_down_payment_bp = EXCLUDED.min_down_payment_bp,
                   min_installment = EXCLUDED.min_installment,
                   max_term_days = EXCLUDED.max_term_days,
                   early_settlement_discount_bp = EXCLUDED.early_settlement_discount_bp,
                   missed_to_break = EXCLUDED.missed_to_break,
                   grace_days = EXCLUDED.grace_days,
                   auto_approve_limit = EXCLUDED.auto_approve_limit
               RETURNING id""",
            creditor_id,
            segment,
            after["max_installments"],
            json.dumps(frequencies),
            after["min_down_payment_bp"],
            after["min_installment"],
            after["max_term_days"],
            after["early_settlement_discount_bp"],
            after["missed_to_break"],
            after["grace_days"],
            after["auto_approve_limit"],
        )
        saved = Policy(
            **after, frequencies=tuple(Frequency(f) for f in frequencies)
        )  # max_first_date_days keeps its default
        await record(
            Actor(staff_id=staff_id, label=str(staff[0]["email"]), ip=ip),
            "plan_policy.saved",
            now=now,
            object_type="plan_policy",
            object_id=int(rows[0]["id"]),
            before={"segment": segment, **_audit(before)} if before else {},
            after={"creditor": creditor_id, "segment": segment, **_audit(saved)},
        )
    return saved


def _audit(policy: Policy | None) -> dict[str, Any]:
    if policy is None:
        return {}
    data = asdict(policy)
    data["frequencies"] = [str(f) for f in policy.frequencies]
    data.pop("max_first_date_days", None)
    return data


# ---------------------------------------------------------------------------- in words


def frequency_label(language: str, frequency: str) -> str:
    return {
        "weekly": gettext(language, "Semanal"),
        "biweekly": gettext(language, "Cada dos semanas"),
        "monthly": gettext(language, "Mensual"),
    }.get(frequency, frequency)


def _percent(fmt: Formats, basis_points: int) -> str:
    return fmt.percent(Decimal(basis_points) / 100)


def policy_lines(policy: Policy, fmt: Formats, language: str, balance: int) -> list[str]:
    """The policy as short sentences for the debtor, with amounts for this `balance`."""
    frequencies = ", ".join(frequency_label(language, f).lower() for f in policy.frequencies)
    lines = [
        gettext(language, "Hasta {count} cuotas ({frequencies}).").format(
            count=policy.max_installments, frequencies=frequencies
        ),
    ]
    if policy.min_down_payment_bp:
        lines.append(
            gettext(language, "Anticipo mínimo: {percent} del saldo ({amount}).").format(
                percent=_percent(fmt, policy.min_down_payment_bp),
                amount=fmt.money(-(-balance * policy.min_down_payment_bp // 10_000)),
            )
        )
    if policy.min_installment:
        lines.append(
            gettext(language, "Cada cuota de al menos {amount}.").format(
                amount=fmt.money(policy.min_installment)
            )
        )
    lines.append(
        gettext(
            language,
            "La primera cuota vence dentro de los próximos {first} días y la última, "
            "dentro de {term} días.",
        ).format(first=policy.max_first_date_days, term=policy.max_term_days)
    )
    lines.append(
        gettext(
            language,
            "Cada cuota tiene {grace} días de gracia; con {missed} cuotas impagas el plan se "
            "da por terminado.",
        ).format(grace=policy.grace_days, missed=policy.missed_to_break)
    )
    if policy.early_settlement_discount_bp:
        lines.append(
            gettext(
                language, "Si cancela antes lo que falta, tiene un descuento del {percent}."
            ).format(percent=_percent(fmt, policy.early_settlement_discount_bp))
        )
    if policy.auto_approve_limit:
        lines.append(
            gettext(
                language,
                "Los planes de hasta {amount} que cumplen estas condiciones se aprueban "
                "al instante; los demás los revisa nuestro equipo.",
            ).format(amount=fmt.money(policy.auto_approve_limit))
        )
    else:
        lines.append(gettext(language, "Nuestro equipo revisa cada propuesta."))
    return lines
