"""What a signed-in debtor sees: the balance with aging, an invoice, a statement of account.

Every function takes the session's `debtor_ids` and reads only rows of those debtors, so an id
of someone else's invoice is simply not found (`NotFound`, 404) — never forbidden.

Arithmetic is in integer minor units and the numbers a debtor is shown add up:

- invoice: the line totals sum to the invoice total; per line, net (quantity × unit price,
  rounded half-up) + tax (line total − net) = line total; invoice total + each later movement
  (interest, fees, payments, credit notes, adjustments) = the open amount. When the billing
  entries of an invoice differ from its line total (a manual re-bill), the difference is shown
  as its own "billing adjustment" item, so the sum still holds.
- account: the open amounts of the open invoices + the account's other items (movements not tied
  to an invoice, such as an unapplied payment kept as credit, or an invoice credited beyond its
  total) = the total due, which is the sum of the account's ledger. Aging: not yet due +
  1–30 + 31–60 + 61–90 + 90+ days past due = the open invoices; the overdue part is everything
  past due.
- statement: opening balance + each row = the running balance; the last one is the closing
  balance, and opening + debits − credits = closing.

Money and dates are formatted for the debtor: Spanish in the debtor's country (es_AR, es_MX,
es_CL, …) or English in en_US style.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Context, Decimal, Inexact, InvalidOperation
from functools import cache, lru_cache
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import localedata
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal, format_percent

from saldo import money
from saldo.errors import NotFound, SaldoError
from saldo.i18n import SUPPORTED_LANGUAGES, gettext
from saldo.tables import EntryKind, LedgerEntry

__all__ = [
    "BUCKETS",
    "AccountView",
    "AgingBucket",
    "Amount",
    "BalanceView",
    "CreditorGroup",
    "CreditorView",
    "DebtorView",
    "DisputeView",
    "Document",
    "Formats",
    "InvalidPeriod",
    "InvoiceDetail",
    "InvoiceView",
    "ItemView",
    "LineView",
    "PaidInvoiceView",
    "PaymentView",
    "Period",
    "StatementAccount",
    "StatementRow",
    "StatementView",
    "aging_bucket",
    "balance",
    "days_overdue",
    "display_locale",
    "invoice_detail",
    "invoice_pdf",
    "local_today",
    "parse_period",
    "resolve_language",
    "running_balances",
    "split_line",
    "statement",
    "statement_pdf",
]

#: Aging buckets, in order: not yet due, then days past due.
BUCKETS: Final = ("current", "1_30", "31_60", "61_90", "90_plus")
#: The longest statement period a debtor may ask for.
MAX_PERIOD_DAYS: Final = 10 * 366
#: A statement covers this many days before `to` when `from` is not given.
DEFAULT_PERIOD_DAYS: Final = 365
_MAX_ID: Final = 2**31 - 1  # serial ids are PostgreSQL integers
_CLOSED_DISPUTES: Final = ("accepted", "partially_accepted", "rejected", "resolved", "withdrawn")
_BILLING_KEY_PREFIX: Final = "import:invoice:"
_PAYMENTS_SHOWN: Final = 10


# ---------------------------------------------------------------------------- formatting


class Amount:
    """An amount in minor units and its text for the debtor's locale (`str()` is the text).

    The text is formatted on first use: a view holds more amounts than a page shows.
    """

    __slots__ = ("_format", "_text", "minor")

    def __init__(self, minor: int, text: str | Callable[[int], str]) -> None:
        self.minor = minor
        self._text = text if isinstance(text, str) else None
        self._format = None if isinstance(text, str) else text

    @property
    def text(self) -> str:
        if self._text is None:
            assert self._format is not None
            self._text = self._format(self.minor)
        return self._text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Amount({self.minor}, {self.text!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Amount):
            return NotImplemented
        return (self.minor, self.text) == (other.minor, other.text)

    def __hash__(self) -> int:
        return hash((self.minor, self.text))

    @property
    def negative(self) -> bool:
        return self.minor < 0

    @property
    def zero(self) -> bool:
        return self.minor == 0


@cache
def display_locale(language: str, country: str) -> str:
    """The Babel locale for a debtor: `es_<country>` when Babel knows it (else `es`), `en_US`."""
    if language == "en":
        return "en_US"
    candidate = f"es_{(country or '').upper()}"
    return (
        candidate
        if re.fullmatch(r"es_[A-Z]{2}", candidate) and localedata.exists(candidate)
        else "es"
    )


def resolve_language(requested: str | None, stored: str | None) -> str:
    """An explicit choice (`?lang=`, the language switch) wins, then the debtor's preference."""
    for candidate in (requested, stored):
        if candidate in SUPPORTED_LANGUAGES:
            return str(candidate)
    return SUPPORTED_LANGUAGES[0]


class _MoneyFormat:
    """Babel's currency format for one (currency, locale), applied to integers quickly.

    Babel's text for a probe amount gives the prefix, grouping and decimal symbols and suffix;
    integers are then laid out with plain string operations. The fast path is checked against
    Babel on a set of probes when it is built and is used only if every probe matches exactly;
    otherwise every amount goes through Babel.
    """

    _PROBES: Final = (0, 1, 7, 99, 100, 1234, 99999, 123456, 1234567, 100000000, 123456789012)

    def __init__(self, currency: str, locale: str) -> None:
        self.currency = currency
        self.locale = locale
        self.digits = money.exponent(currency)
        self._fast = False
        try:
            self._derive()
            self._fast = all(
                self._layout(n) == money.format_money(n, currency, locale)
                for probe in self._PROBES
                for n in (probe, -probe)
            )
        except (ValueError, IndexError):
            self._fast = False

    def _derive(self) -> None:
        # 123456789 major units (and a fraction): two thousands groups, then the decimals.
        probe = 123456789 * 10**self.digits + (12 if self.digits == 2 else 0)
        for sign, value in (("pos", probe), ("neg", -probe)):
            text = money.format_money(value, self.currency, self.locale)
            first = re.search(r"\d", text)
            last = re.search(r"\d(?!.*\d)", text)
            if first is None or last is None:
                raise ValueError("no digits")
            setattr(self, f"_{sign}_prefix", text[: first.start()])
            setattr(self, f"_{sign}_suffix", text[last.end() :])
            if sign == "pos":
                separators = re.findall(r"\D+", text[first.start() : last.end()])
                self._decimal = separators.pop() if self.digits else ""
                self._group = separators[0] if separators else ""

    def _layout(self, minor: int) -> str:
        whole, fraction = divmod(abs(minor), 10**self.digits)
        digits = f"{whole:,}".replace(",", self._group) if self._group else str(whole)
        if self.digits:
            digits = f"{digits}{self._decimal}{fraction:0{self.digits}d}"
        if minor < 0:
            return f"{self._neg_prefix}{digits}{self._neg_suffix}"
        return f"{self._pos_prefix}{digits}{self._pos_suffix}"

    def __call__(self, minor: int) -> str:
        if self._fast:
            return self._layout(minor)
        return money.format_money(minor, self.currency, self.locale)

    # set by _derive
    _pos_prefix: str
    _pos_suffix: str
    _neg_prefix: str
    _neg_suffix: str
    _group: str
    _decimal: str


@lru_cache(maxsize=64)
def _money_format(currency: str, locale: str) -> _MoneyFormat:
    return _MoneyFormat(currency, locale)


@lru_cache(maxsize=4096)
def _date_text(value: dt.date, locale: str) -> str:
    if locale.startswith("en"):
        return format_date(value, "medium", locale=locale)
    return format_date(value, "dd/MM/yyyy", locale=locale)


@lru_cache(maxsize=4096)
def _decimal_text(value: Decimal, locale: str) -> str:
    return format_decimal(value.normalize(), locale=locale, decimal_quantization=False)


@lru_cache(maxsize=512)
def _percent_text(percent: Decimal, locale: str) -> str:
    return format_percent(percent / 100, locale=locale, decimal_quantization=False)


@dataclass(frozen=True)
class Formats:
    """Formatting for one account: its currency in the debtor's locale."""

    currency: str
    locale: str

    def money(self, minor: int) -> Amount:
        return Amount(minor, _money_format(self.currency, self.locale))

    def date(self, value: dt.date) -> str:
        return _date_text(value, self.locale)

    def quantity(self, value: Decimal) -> str:
        return _decimal_text(value, self.locale)

    def percent(self, percent: Decimal) -> str:
        """`percent` in percent units: Decimal("21") -> "21 %" (as the locale writes it)."""
        return _percent_text(percent, self.locale)

    def unit_price(self, value: Decimal) -> str:
        """A unit price: with the currency's digits, or more when the price has more."""
        scaled = value.scaleb(money.exponent(self.currency))
        if scaled == scaled.to_integral_value():
            return self.money(int(scaled)).text
        return format_currency(value, self.currency, locale=self.locale, decimal_quantization=False)


def _fmt(language: str, country: str, currency: str) -> Formats:
    return Formats(currency, display_locale(language, country))


# ---------------------------------------------------------------------------- pure arithmetic


def days_overdue(due: dt.date, today: dt.date) -> int:
    """Whole days past the due date (0 or less: not overdue yet; due today is not overdue)."""
    return (today - due).days


def aging_bucket(due: dt.date, today: dt.date) -> str:
    """The aging bucket of an amount due on `due`: current, 1_30, 31_60, 61_90 or 90_plus."""
    days = days_overdue(due, today)
    if days <= 0:
        return "current"
    if days <= 30:
        return "1_30"
    if days <= 60:
        return "31_60"
    if days <= 90:
        return "61_90"
    return "90_plus"


_EXACT: Final = Context(prec=200, rounding=ROUND_HALF_UP, traps=[InvalidOperation, Inexact])


def split_line(
    quantity: Decimal, unit_price: Decimal, total: int, currency: str
) -> tuple[int, int]:
    """(net, tax) of an invoice line, in minor units, that add up to its `total` exactly.

    Net is quantity × unit price rounded half-up to the minor unit, as `money.line_total` rounds
    (computed exactly here with a fixed context, since a page may hold hundreds of lines); the
    tax is what the total holds beyond it.
    """
    product = _EXACT.multiply(Decimal(quantity), Decimal(unit_price))
    scaled = _EXACT.scaleb(product, money.exponent(currency))
    net = int(scaled.to_integral_value(rounding=ROUND_HALF_UP, context=_EXACT))
    return net, total - net


def running_balances(opening: int, amounts: Iterable[int]) -> list[int]:
    """The balance after each amount, starting from `opening`."""
    balances: list[int] = []
    current = opening
    for amount in amounts:
        current += amount
        balances.append(current)
    return balances


def local_today(now: dt.datetime, timezone: str) -> dt.date:
    """The date it is at `now` (aware) in `timezone` (UTC when the zone is unknown)."""
    try:
        zone: dt.tzinfo = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = dt.UTC
    return now.astimezone(zone).date()


# ---------------------------------------------------------------------------- view models


@dataclass(frozen=True, slots=True)
class CreditorView:
    id: int
    name: str
    legal_name: str
    tax_id: str
    email: str
    phone: str
    country: str


@dataclass(frozen=True, slots=True)
class DebtorView:
    id: int
    name: str
    document_type: str
    document_number: str
    email: str
    phone: str
    whatsapp: str
    country: str
    language: str
    timezone: str


@dataclass(frozen=True, slots=True)
class LineView:
    position: int
    description: str
    quantity: str
    unit_price: str
    tax_rate: str
    net: Amount
    tax: Amount
    total: Amount


@dataclass(frozen=True, slots=True)
class ItemView:
    """One movement shown with its amount: interest, a fee, a payment, a credit note, …"""

    kind: str  # an EntryKind value, "billing_adjustment" or "invoice_credit"
    label: str
    detail: str  # the basis of interest and fees, the payment method, the creditor's note
    date: dt.date
    date_text: str
    amount: Amount
    invoice_id: int | None = None


@dataclass(frozen=True, slots=True)
class DisputeView:
    id: int
    invoice_id: int | None
    invoice_number: str
    amount: Amount
    reason: str
    status: str
    status_label: str
    opened: str


@dataclass(frozen=True, slots=True)
class InvoiceView:
    id: int
    number: str
    issue_date: dt.date
    due_date: dt.date
    issued: str
    due: str
    days_overdue: int
    bucket: str
    status: str  # paid | overdue | pending | credit
    status_label: str
    partially_paid: bool
    lines: tuple[LineView, ...]
    subtotal: Amount
    tax: Amount
    total: Amount  # what was billed: the sum of the line totals
    items: tuple[ItemView, ...]  # every movement after billing, oldest first
    open: Amount  # total + items
    disputed: Amount | None

    @property
    def line_count(self) -> int:
        return len(self.lines)


@dataclass(frozen=True, slots=True)
class PaidInvoiceView:
    id: int
    number: str
    issued: str
    due: str
    total: Amount


@dataclass(frozen=True, slots=True)
class AgingBucket:
    key: str
    label: str
    amount: Amount
    invoices: tuple[InvoiceView, ...]
    share: int  # percent of the open invoices, for the bar (0–100, rounded)


@dataclass(frozen=True, slots=True)
class PaymentView:
    id: int
    date: str
    method: str
    amount: Amount
    applied_to: tuple[tuple[str, Amount], ...]  # (invoice number, amount)
    credit: Amount | None  # what no invoice took, kept as credit


@dataclass(frozen=True, slots=True)
class AccountView:
    id: int
    creditor: CreditorView
    debtor: DebtorView
    currency: str
    locale: str
    total_due: Amount  # the ledger balance
    overdue: Amount  # open invoices past due
    not_due: Amount  # open invoices not yet due
    other: Amount  # other items (credit on account, movements without an invoice)
    next_due_date: dt.date | None
    next_due: str | None
    next_due_amount: Amount | None
    invoices: tuple[InvoiceView, ...]  # open, oldest due date first
    other_items: tuple[ItemView, ...]
    paid_invoices: tuple[PaidInvoiceView, ...]  # newest first
    aging: tuple[AgingBucket, ...]
    payments: tuple[PaymentView, ...]  # newest first
    disputes: tuple[DisputeView, ...]  # open ones
    disputed: Amount

    @property
    def line_count(self) -> int:
        return sum(invoice.line_count for invoice in self.invoices)

    @property
    def owes(self) -> bool:
        return self.total_due.minor > 0


@dataclass(frozen=True, slots=True)
class CreditorGroup:
    creditor: CreditorView
    accounts: tuple[AccountView, ...]


@dataclass(frozen=True, slots=True)
class BalanceView:
    debtor: DebtorView | None  # the first signed-in debtor row (name, language)
    language: str
    locale: str
    today: dt.date
    today_text: str
    groups: tuple[CreditorGroup, ...]

    @property
    def accounts(self) -> tuple[AccountView, ...]:
        return tuple(account for group in self.groups for account in group.accounts)


@dataclass(frozen=True, slots=True)
class InvoiceDetail:
    invoice: InvoiceView
    account_id: int
    currency: str
    creditor: CreditorView
    debtor: DebtorView
    language: str
    locale: str
    today_text: str
    disputes: tuple[DisputeView, ...]

    @property
    def paid(self) -> Amount:
        """What payments, credit notes and other credits took off the invoice (as a positive
        amount)."""
        fmt = Formats(self.currency, self.locale)
        return fmt.money(-sum(i.amount.minor for i in self.invoice.items if i.amount.minor < 0))

    @property
    def credits(self) -> Amount:
        """The same as `paid`, signed as it counts in the sum (negative)."""
        return Formats(self.currency, self.locale).money(-self.paid.minor)

    @property
    def charges(self) -> Amount:
        """Interest, fees and other additions after billing."""
        fmt = Formats(self.currency, self.locale)
        return fmt.money(sum(i.amount.minor for i in self.invoice.items if i.amount.minor > 0))


@dataclass(frozen=True, slots=True)
class StatementRow:
    date: dt.date
    date_text: str
    label: str
    detail: str
    reference: str  # the invoice number, when the movement belongs to one
    amount: Amount
    debit: Amount | None
    credit: Amount | None  # shown as a positive amount
    balance: Amount


@dataclass(frozen=True, slots=True)
class StatementAccount:
    id: int
    creditor: CreditorView
    currency: str
    opening: Amount
    rows: tuple[StatementRow, ...]
    debits: Amount
    credits: Amount  # positive
    closing: Amount


@dataclass(frozen=True, slots=True)
class StatementView:
    debtor: DebtorView | None
    language: str
    locale: str
    start: dt.date
    end: dt.date
    start_text: str
    end_text: str
    today_text: str
    accounts: tuple[StatementAccount, ...]


@dataclass(frozen=True, slots=True)
class Period:
    start: dt.date
    end: dt.date


@dataclass(frozen=True, slots=True)
class Document:
    filename: str
    content: bytes
    media_type: str = "application/pdf"


class InvalidPeriod(SaldoError):
    """The statement dates are malformed or out of order (400, with a message for the debtor)."""

    status_code = 400
    title = "Bad request"


# ---------------------------------------------------------------------------- labels


def _kind_label(language: str, kind: str) -> str:
    labels = {
        "charge": gettext(language, "Cargo"),
        "interest": gettext(language, "Interés por mora"),
        "fee": gettext(language, "Cargo por mora"),
        "payment": gettext(language, "Pago recibido"),
        "credit_note": gettext(language, "Nota de crédito"),
        "adjustment": gettext(language, "Ajuste"),
        "write_off": gettext(language, "Condonación"),
        "refund": gettext(language, "Reembolso"),
        "reversal": gettext(language, "Anulación"),
        "billing_adjustment": gettext(language, "Ajuste de facturación"),
        "invoice_credit": gettext(language, "Saldo a favor en factura"),
        "credit": gettext(language, "Saldo a favor"),
    }
    return labels.get(kind, kind)


def _bucket_label(language: str, key: str) -> str:
    return {
        "current": gettext(language, "Por vencer"),
        "1_30": gettext(language, "1 a 30 días"),
        "31_60": gettext(language, "31 a 60 días"),
        "61_90": gettext(language, "61 a 90 días"),
        "90_plus": gettext(language, "Más de 90 días"),
    }[key]


def _status_label(language: str, status: str, partially_paid: bool) -> str:
    if status == "paid":
        return gettext(language, "Pagada")
    if status == "credit":
        return gettext(language, "Saldo a favor")
    if status == "overdue":
        return gettext(language, "Vencida")
    if partially_paid:
        return gettext(language, "Pago parcial")
    return gettext(language, "Por vencer")


def _method_label(language: str, method: str) -> str:
    known = {
        "transferencia": gettext(language, "transferencia bancaria"),
        "bank_transfer": gettext(language, "transferencia bancaria"),
        "credit_card": gettext(language, "tarjeta de crédito"),
        "debit_card": gettext(language, "tarjeta de débito"),
        "account_money": gettext(language, "dinero en cuenta de Mercado Pago"),
        "ticket": gettext(language, "pago en efectivo"),
        "cash": gettext(language, "pago en efectivo"),
    }
    return known.get(method.strip().lower(), method.strip())


def _dispute_status_label(language: str, status: str) -> str:
    return {
        "open": gettext(language, "Abierto"),
        "in_review": gettext(language, "En revisión"),
        "waiting_debtor": gettext(language, "Esperando su respuesta"),
    }.get(status, gettext(language, "En revisión"))


def _basis(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str) and raw:
        try:
            value = json.loads(raw)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}
    return {}


def _iso_date(value: Any) -> dt.date | None:
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return None
    return number if number.is_finite() else None


def basis_text(language: str, kind: str, basis: Mapping[str, Any], fmt: Formats) -> str:
    """Explain an interest or fee entry from its `basis` (empty when the basis says nothing).

    Recognised keys: `text` (shown as is); the rate as `monthly_rate_bp` (basis points a month),
    `annual_rate_bp`, or `daily_rate_ppm` / `rate_ppm_per_day` (parts per million a day);
    `since` / `from` and `until` / `to` (ISO dates); `principal` (minor units) and `days`;
    for fees also `fixed_fee` (minor units) and `due_date` (the overdue invoice's due date).
    """
    text = basis.get("text")
    if isinstance(text, str) and text.strip():
        return text.strip()
    since = _iso_date(basis.get("since") or basis.get("from"))
    until = _iso_date(basis.get("until") or basis.get("to"))
    parts: list[str] = []
    if kind == "interest":
        rate, period = _rate(language, basis)
        if rate is not None:
            parts.append(f"{fmt.percent(rate)} {period}")
        if since and until:
            parts.append(
                gettext(language, "del {start} al {end}").format(
                    start=fmt.date(since), end=fmt.date(until)
                )
            )
        elif since:
            parts.append(gettext(language, "desde el {date}").format(date=fmt.date(since)))
        principal = basis.get("principal")
        if isinstance(principal, int) and not isinstance(principal, bool) and principal > 0:
            parts.append(gettext(language, "sobre {amount}").format(amount=fmt.money(principal)))
        days = basis.get("days")
        if isinstance(days, int) and not isinstance(days, bool) and days > 0:
            if days == 1:
                parts.append(gettext(language, "({days} día)").format(days=days))
            else:
                parts.append(gettext(language, "({days} días)").format(days=days))
    elif kind == "fee":
        due = _iso_date(basis.get("due_date")) or since
        fixed = basis.get("fixed_fee")
        if isinstance(fixed, int) and not isinstance(fixed, bool) and fixed > 0:
            parts.append(
                gettext(language, "cargo fijo de {amount}").format(amount=fmt.money(fixed))
            )
        if due:
            parts.append(
                gettext(language, "por factura vencida el {date}").format(date=fmt.date(due))
            )
    return " ".join(p for p in parts if p)


def _rate(language: str, basis: Mapping[str, Any]) -> tuple[Decimal | None, str]:
    monthly = _number(basis.get("monthly_rate_bp"))
    if monthly is not None:
        return monthly / 100, gettext(language, "mensual")
    annual = _number(basis.get("annual_rate_bp"))
    if annual is not None:
        return annual / 100, gettext(language, "anual")
    daily = _number(basis.get("daily_rate_ppm") or basis.get("rate_ppm_per_day"))
    if daily is not None:
        return daily / 10_000, gettext(language, "diario")
    return None, ""


# ---------------------------------------------------------------------------- queries


def _ids(debtor_ids: Sequence[int]) -> list[int]:
    return sorted({int(i) for i in debtor_ids if 0 < int(i) <= _MAX_ID})


async def _debtors(debtor_ids: list[int]) -> list[DebtorView]:
    if not debtor_ids:
        return []
    rows = await LedgerEntry.raw(
        """SELECT id, name, document_type, document_number, email, phone, whatsapp, country,
                  language, timezone
           FROM debtor WHERE id = ANY({}::int[]) ORDER BY id""",
        debtor_ids,
    )
    return [_debtor(r) for r in rows]


def _debtor(r: Mapping[str, Any]) -> DebtorView:
    return DebtorView(
        id=r["id"],
        name=r["name"],
        document_type=r["document_type"],
        document_number=r["document_number"],
        email=r["email"],
        phone=r["phone"],
        whatsapp=r["whatsapp"],
        country=r["country"],
        language=r["language"],
        timezone=r["timezone"],
    )


def _creditor(r: Mapping[str, Any]) -> CreditorView:
    return CreditorView(
        id=r["creditor_id"],
        name=r["creditor_name"],
        legal_name=r["creditor_legal_name"],
        tax_id=r["creditor_tax_id"],
        email=r["creditor_email"],
        phone=r["creditor_phone"],
        country=r["creditor_country"],
    )


_ACCOUNT_COLUMNS = """
    a.id AS account_id, a.currency, a.debtor AS debtor_id,
    c.id AS creditor_id, c.name AS creditor_name, c.legal_name AS creditor_legal_name,
    c.tax_id AS creditor_tax_id, c.email AS creditor_email, c.phone AS creditor_phone,
    c.country AS creditor_country
"""


async def _accounts(debtor_ids: list[int]) -> list[dict[str, Any]]:
    if not debtor_ids:
        return []
    return await LedgerEntry.raw(
        f"""SELECT {_ACCOUNT_COLUMNS}
            FROM account a JOIN creditor c ON c.id = a.creditor
            WHERE a.debtor = ANY({{}}::int[])
            ORDER BY c.name, c.id, a.currency, a.id""",
        debtor_ids,
    )


_ENTRY_COLUMNS = """e.id, e.account, e.invoice, e.kind, e.amount, e.effective_date,
                    e.description, e.basis, e.idempotency_key"""


async def _entries_of(invoice_ids: list[int], account_ids: list[int]) -> list[dict[str, Any]]:
    """The entries of these invoices plus the entries of these accounts without an invoice."""
    if not invoice_ids and not account_ids:
        return []
    return await LedgerEntry.raw(
        f"""SELECT {_ENTRY_COLUMNS} FROM ledger_entry e WHERE e.invoice = ANY({{}}::int[])
            UNION ALL
            SELECT {_ENTRY_COLUMNS} FROM ledger_entry e
            WHERE e.account = ANY({{}}::int[]) AND e.invoice IS NULL
            ORDER BY effective_date, id""",
        invoice_ids,
        account_ids,
    )


async def _lines_of(invoice_ids: list[int]) -> list[dict[str, Any]]:
    if not invoice_ids:
        return []
    return await LedgerEntry.raw(
        """SELECT invoice, position, description, quantity, unit_price, tax_rate, total
           FROM invoice_line WHERE invoice = ANY({}::int[]) ORDER BY invoice, position, id""",
        invoice_ids,
    )


async def _disputes_of(account_ids: list[int]) -> list[dict[str, Any]]:
    if not account_ids:
        return []
    return await LedgerEntry.raw(
        """SELECT d.id, d.account, d.invoice, coalesce(i.number, '') AS invoice_number, d.amount,
                  d.reason_code, d.reason_text, d.status, d.created_at
           FROM dispute d LEFT JOIN invoice i ON i.id = d.invoice
           WHERE d.account = ANY({}::int[]) AND d.resolved_at IS NULL
             AND d.status <> ALL({}::text[])
           ORDER BY d.created_at, d.id""",
        account_ids,
        list(_CLOSED_DISPUTES),
    )


async def _payments_of(account_ids: list[int]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not account_ids:
        return [], []
    payments = await LedgerEntry.raw(
        """SELECT id, account, amount, method, received_at, created_at FROM (
               SELECT p.*, row_number() OVER (
                   PARTITION BY p.account
                   ORDER BY coalesce(p.received_at, p.created_at) DESC, p.id DESC
               ) AS n
               FROM payment p
               WHERE p.account = ANY({}::int[]) AND p.status = 'approved'
           ) ranked WHERE n <= {} ORDER BY coalesce(received_at, created_at) DESC, id DESC""",
        account_ids,
        _PAYMENTS_SHOWN,
    )
    if not payments:
        return [], []
    allocations = await LedgerEntry.raw(
        """SELECT pa.payment, pa.invoice, coalesce(i.number, '') AS number, pa.amount
           FROM payment_allocation pa LEFT JOIN invoice i ON i.id = pa.invoice
           WHERE pa.payment = ANY({}::int[]) ORDER BY pa.id""",
        [p["id"] for p in payments],
    )
    return payments, allocations


async def _payment_methods(payment_ids: list[int]) -> dict[int, str]:
    if not payment_ids:
        return {}
    rows = await LedgerEntry.raw(
        "SELECT id, method FROM payment WHERE id = ANY({}::int[])", payment_ids
    )
    return {r["id"]: r["method"] for r in rows}


# ---------------------------------------------------------------------------- builders


def _payment_id(basis: Mapping[str, Any]) -> int | None:
    value = basis.get("payment")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _item(
    entry: Mapping[str, Any], language: str, fmt: Formats, methods: Mapping[int, str]
) -> ItemView:
    kind = str(entry["kind"])
    basis = _basis(entry["basis"])
    detail = ""
    label_kind = kind
    if kind in (EntryKind.interest, EntryKind.fee):
        detail = basis_text(language, kind, basis, fmt)
    elif kind == EntryKind.payment:
        payment = _payment_id(basis)
        method = methods.get(payment, "") if payment is not None else ""
        if basis.get("credit") is True:
            label_kind = "credit"
            detail = gettext(language, "Pago no aplicado a facturas")
        if method:
            method_text = _method_label(language, method)
            detail = f"{detail} · {method_text}" if detail else method_text.capitalize()
    if not detail:
        detail = str(entry["description"] or "")
    effective: dt.date = entry["effective_date"]
    return ItemView(
        kind=label_kind,
        label=_kind_label(language, label_kind),
        detail=detail,
        date=effective,
        date_text=fmt.date(effective),
        amount=fmt.money(int(entry["amount"])),
        invoice_id=entry["invoice"],
    )


def _is_billing(entry: Mapping[str, Any]) -> bool:
    """The entries that make up what an invoice billed: its charge and re-import adjustments."""
    if entry["kind"] == EntryKind.charge:
        return True
    key = entry["idempotency_key"] or ""
    return entry["kind"] == EntryKind.adjustment and key.startswith(_BILLING_KEY_PREFIX)


def _invoice_view(
    row: Mapping[str, Any],
    lines: Sequence[Mapping[str, Any]],
    entries: Sequence[Mapping[str, Any]],
    disputed: int,
    today: dt.date,
    language: str,
    fmt: Formats,
    methods: Mapping[int, str],
) -> InvoiceView:
    currency = fmt.currency
    line_views: list[LineView] = []
    net_sum = tax_sum = line_sum = 0
    for line in lines:
        total = int(line["total"])
        net, tax = split_line(line["quantity"], line["unit_price"], total, currency)
        net_sum += net
        tax_sum += tax
        line_sum += total
        line_views.append(
            LineView(
                position=line["position"],
                description=line["description"],
                quantity=fmt.quantity(line["quantity"]),
                unit_price=fmt.unit_price(line["unit_price"]),
                tax_rate=fmt.percent(line["tax_rate"]),
                net=fmt.money(net),
                tax=fmt.money(tax),
                total=fmt.money(total),
            )
        )
    billed = int(row["total"])
    if not line_views:  # an invoice known only by its total
        net_sum, tax_sum, line_sum = billed, 0, billed
    billing = 0
    items: list[ItemView] = []
    for entry in entries:
        if _is_billing(entry):
            billing += int(entry["amount"])
        else:
            items.append(_item(entry, language, fmt, methods))
    if billing != line_sum:
        items.insert(
            0,
            ItemView(
                kind="billing_adjustment",
                label=_kind_label(language, "billing_adjustment"),
                detail=gettext(
                    language, "Diferencia entre lo facturado y el detalle de la factura"
                ),
                date=row["issue_date"],
                date_text=fmt.date(row["issue_date"]),
                amount=fmt.money(billing - line_sum),
                invoice_id=row["id"],
            ),
        )
    open_amount = line_sum + sum(item.amount.minor for item in items)
    paid_something = any(i.amount.minor < 0 for i in items)
    due: dt.date = row["due_date"]
    days = days_overdue(due, today)
    if open_amount == 0:
        status = "paid"
    elif open_amount < 0:
        status = "credit"
    elif days > 0:
        status = "overdue"
    else:
        status = "pending"
    return InvoiceView(
        id=row["id"],
        number=row["number"],
        issue_date=row["issue_date"],
        due_date=due,
        issued=fmt.date(row["issue_date"]),
        due=fmt.date(due),
        days_overdue=max(days, 0),
        bucket=aging_bucket(due, today),
        status=status,
        status_label=_status_label(language, status, paid_something and open_amount > 0),
        partially_paid=paid_something and open_amount > 0,
        lines=tuple(line_views),
        subtotal=fmt.money(net_sum),
        tax=fmt.money(tax_sum),
        total=fmt.money(line_sum),
        items=tuple(items),
        open=fmt.money(open_amount),
        disputed=fmt.money(disputed) if disputed else None,
    )


def _dispute_view(row: Mapping[str, Any], language: str, fmt: Formats, tz: str) -> DisputeView:
    reason = (row["reason_text"] or "").strip() or str(row["reason_code"]).replace("_", " ")
    created: dt.datetime = row["created_at"]
    return DisputeView(
        id=row["id"],
        invoice_id=row["invoice"],
        invoice_number=row["invoice_number"],
        amount=fmt.money(int(row["amount"])),
        reason=reason,
        status=row["status"],
        status_label=_dispute_status_label(language, row["status"]),
        opened=fmt.date(local_today(created, tz)),
    )


def _payment_view(
    row: Mapping[str, Any],
    allocations: Sequence[Mapping[str, Any]],
    language: str,
    fmt: Formats,
    tz: str,
) -> PaymentView:
    received: dt.datetime = row["received_at"] or row["created_at"]
    applied = tuple((a["number"], fmt.money(int(a["amount"]))) for a in allocations if a["invoice"])
    credit = sum(int(a["amount"]) for a in allocations if not a["invoice"])
    method = _method_label(language, row["method"] or "")
    return PaymentView(
        id=row["id"],
        date=fmt.date(local_today(received, tz)),
        method=method.capitalize() if method else gettext(language, "Pago"),
        amount=fmt.money(int(row["amount"])),
        applied_to=applied,
        credit=fmt.money(credit) if credit else None,
    )


def _aging(invoices: Sequence[InvoiceView], language: str, fmt: Formats) -> tuple[AgingBucket, ...]:
    grouped: dict[str, list[InvoiceView]] = {key: [] for key in BUCKETS}
    for invoice in invoices:
        grouped[invoice.bucket].append(invoice)
    sums = {key: sum(i.open.minor for i in items) for key, items in grouped.items()}
    whole = sum(sums.values())
    shares = money.allocate(100, list(sums.values())) if whole > 0 else [0] * len(BUCKETS)
    return tuple(
        AgingBucket(
            key=key,
            label=_bucket_label(language, key),
            amount=fmt.money(sums[key]),
            invoices=tuple(grouped[key]),
            share=shares[index],
        )
        for index, key in enumerate(BUCKETS)
    )


def _today(today: dt.date | None, now: dt.datetime | None, debtor: DebtorView | None) -> dt.date:
    if today is not None:
        return today
    moment = now or dt.datetime.now(dt.UTC)
    return local_today(moment, debtor.timezone if debtor else "UTC")


async def balance(
    debtor_ids: Sequence[int],
    *,
    language: str | None = None,
    today: dt.date | None = None,
    now: dt.datetime | None = None,
) -> BalanceView:
    """Every account of the signed-in debtors, grouped by creditor, with open invoices and aging.

    `language` is an explicit choice (else each debtor's preference); `today` fixes the date
    aging is measured on (else `now`, else the clock, in the first debtor's time zone).
    """
    ids = _ids(debtor_ids)
    debtors = await _debtors(ids)
    primary = debtors[0] if debtors else None
    lang = resolve_language(language, primary.language if primary else None)
    today = _today(today, now, primary)
    accounts = await _accounts([d.id for d in debtors])
    account_ids = [a["account_id"] for a in accounts]
    invoice_rows = await _invoice_sums(account_ids)
    open_ids = [r["id"] for r in invoice_rows if int(r["open"]) != 0]
    entries, lines, disputes, (payments, allocations) = await asyncio.gather(
        _entries_of(open_ids, account_ids),
        _lines_of(open_ids),
        _disputes_of(account_ids),
        _payments_of(account_ids),
    )
    methods = await _payment_methods(_basis_payment_ids(entries))
    by_id = {d.id: d for d in debtors}
    groups: dict[int, list[AccountView]] = defaultdict(list)
    creditors: dict[int, CreditorView] = {}
    per_account = _Grouped(invoice_rows, entries, lines, disputes, payments, allocations)
    for row in accounts:
        debtor = by_id[row["debtor_id"]]
        creditors[row["creditor_id"]] = _creditor(row)
        groups[row["creditor_id"]].append(
            _account_view(
                row, debtor, creditors[row["creditor_id"]], per_account, today, lang, methods
            )
        )
    locale = display_locale(lang, primary.country if primary else "")
    return BalanceView(
        debtor=primary,
        language=lang,
        locale=locale,
        today=today,
        today_text=_date_text(today, locale),
        groups=tuple(CreditorGroup(creditors[c], tuple(accts)) for c, accts in groups.items()),
    )


async def _invoice_sums(account_ids: list[int]) -> list[dict[str, Any]]:
    if not account_ids:
        return []
    return await LedgerEntry.raw(
        """SELECT i.id, i.account, i.number, i.issue_date, i.due_date, i.total,
                  coalesce(sum(e.amount), 0)::bigint AS open
           FROM invoice i LEFT JOIN ledger_entry e ON e.invoice = i.id
           WHERE i.account = ANY({}::int[])
           GROUP BY i.id
           ORDER BY i.due_date, i.id""",
        account_ids,
    )


def _basis_payment_ids(entries: Iterable[Mapping[str, Any]]) -> list[int]:
    ids = {_payment_id(_basis(e["basis"])) for e in entries if e["kind"] == EntryKind.payment}
    return sorted(i for i in ids if i is not None)


@dataclass
class _Grouped:
    """Query rows regrouped by account and invoice."""

    invoice_rows: list[dict[str, Any]]
    entries: list[dict[str, Any]]
    lines: list[dict[str, Any]]
    disputes: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    allocations: list[dict[str, Any]]
    invoices_by_account: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    entries_by_invoice: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    account_entries: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    lines_by_invoice: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    disputes_by_account: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    payments_by_account: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    allocations_by_payment: dict[int, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for row in self.invoice_rows:
            self.invoices_by_account.setdefault(row["account"], []).append(row)
        for entry in self.entries:
            if entry["invoice"] is None:
                self.account_entries.setdefault(entry["account"], []).append(entry)
            else:
                self.entries_by_invoice.setdefault(entry["invoice"], []).append(entry)
        for line in self.lines:
            self.lines_by_invoice.setdefault(line["invoice"], []).append(line)
        for dispute in self.disputes:
            self.disputes_by_account.setdefault(dispute["account"], []).append(dispute)
        for payment in self.payments:
            self.payments_by_account.setdefault(payment["account"], []).append(payment)
        for allocation in self.allocations:
            self.allocations_by_payment.setdefault(allocation["payment"], []).append(allocation)


def _account_view(
    row: Mapping[str, Any],
    debtor: DebtorView,
    creditor: CreditorView,
    data: _Grouped,
    today: dt.date,
    language: str,
    methods: Mapping[int, str],
) -> AccountView:
    fmt = _fmt(language, debtor.country, row["currency"])
    account_id: int = row["account_id"]
    disputes = data.disputes_by_account.get(account_id, [])
    disputed_by_invoice: dict[int, int] = defaultdict(int)
    for dispute in disputes:
        if dispute["invoice"] is not None:
            disputed_by_invoice[dispute["invoice"]] += int(dispute["amount"])
    open_invoices: list[InvoiceView] = []
    other_items: list[ItemView] = []
    paid: list[PaidInvoiceView] = []
    for invoice_row in data.invoices_by_account.get(account_id, []):
        if int(invoice_row["open"]) == 0:
            paid.append(
                PaidInvoiceView(
                    id=invoice_row["id"],
                    number=invoice_row["number"],
                    issued=fmt.date(invoice_row["issue_date"]),
                    due=fmt.date(invoice_row["due_date"]),
                    total=fmt.money(int(invoice_row["total"])),
                )
            )
            continue
        view = _invoice_view(
            invoice_row,
            data.lines_by_invoice.get(invoice_row["id"], []),
            data.entries_by_invoice.get(invoice_row["id"], []),
            disputed_by_invoice.get(invoice_row["id"], 0),
            today,
            language,
            fmt,
            methods,
        )
        if view.open.minor > 0:
            open_invoices.append(view)
        else:  # credited beyond its total: the credit counts with the account's other items
            other_items.append(
                ItemView(
                    kind="invoice_credit",
                    label=f"{_kind_label(language, 'invoice_credit')} {view.number}",
                    detail="",
                    date=view.issue_date,
                    date_text=view.issued,
                    amount=view.open,
                    invoice_id=view.id,
                )
            )
    other_items.extend(
        _item(e, language, fmt, methods) for e in data.account_entries.get(account_id, [])
    )
    overdue = sum(i.open.minor for i in open_invoices if i.status == "overdue")
    not_due = sum(i.open.minor for i in open_invoices if i.status != "overdue")
    other = sum(i.amount.minor for i in other_items)
    upcoming = [i for i in open_invoices if i.days_overdue == 0]
    next_due_date = min((i.due_date for i in upcoming), default=None)
    next_due_amount = sum(i.open.minor for i in upcoming if i.due_date == next_due_date)
    tz = debtor.timezone
    payments = tuple(
        _payment_view(p, data.allocations_by_payment.get(p["id"], []), language, fmt, tz)
        for p in data.payments_by_account.get(account_id, [])
    )
    paid.sort(key=lambda p: p.id, reverse=True)
    return AccountView(
        id=account_id,
        creditor=creditor,
        debtor=debtor,
        currency=row["currency"],
        locale=fmt.locale,
        total_due=fmt.money(overdue + not_due + other),
        overdue=fmt.money(overdue),
        not_due=fmt.money(not_due),
        other=fmt.money(other),
        next_due_date=next_due_date,
        next_due=fmt.date(next_due_date) if next_due_date else None,
        next_due_amount=fmt.money(next_due_amount) if next_due_date else None,
        invoices=tuple(open_invoices),
        other_items=tuple(other_items),
        paid_invoices=tuple(paid),
        aging=_aging(open_invoices, language, fmt),
        payments=payments,
        disputes=tuple(_dispute_view(d, language, fmt, tz) for d in disputes),
        disputed=fmt.money(sum(int(d["amount"]) for d in disputes)),
    )


# ---------------------------------------------------------------------------- invoice


async def invoice_detail(
    debtor_ids: Sequence[int],
    invoice_id: int,
    *,
    language: str | None = None,
    today: dt.date | None = None,
    now: dt.datetime | None = None,
) -> InvoiceDetail:
    """One invoice of the signed-in debtors; `NotFound` for anyone else's (or no such) id."""
    ids = _ids(debtor_ids)
    if not ids or not 0 < invoice_id <= _MAX_ID:
        raise NotFound(_not_found(language))
    rows = await LedgerEntry.raw(
        f"""SELECT i.id, i.account, i.number, i.issue_date, i.due_date, i.total,
                   {_ACCOUNT_COLUMNS}
            FROM invoice i JOIN account a ON a.id = i.account
            JOIN creditor c ON c.id = a.creditor
            WHERE i.id = {{}} AND a.debtor = ANY({{}}::int[])""",
        invoice_id,
        ids,
    )
    if not rows:
        raise NotFound(_not_found(language))
    row = rows[0]
    debtor = (await _debtors([row["debtor_id"]]))[0]
    lang = resolve_language(language, debtor.language)
    today = _today(today, now, debtor)
    fmt = _fmt(lang, debtor.country, row["currency"])
    entries, lines, disputes = await asyncio.gather(
        _entries_of([invoice_id], []), _lines_of([invoice_id]), _disputes_of([row["account"]])
    )
    methods = await _payment_methods(_basis_payment_ids(entries))
    mine = [d for d in disputes if d["invoice"] == invoice_id]
    view = _invoice_view(
        row,
        lines,
        entries,
        sum(int(d["amount"]) for d in mine),
        today,
        lang,
        fmt,
        methods,
    )
    return InvoiceDetail(
        invoice=view,
        account_id=row["account_id"],
        currency=row["currency"],
        creditor=_creditor(row),
        debtor=debtor,
        language=lang,
        locale=fmt.locale,
        today_text=fmt.date(today),
        disputes=tuple(_dispute_view(d, lang, fmt, debtor.timezone) for d in mine),
    )


def _not_found(language: str | None) -> str:
    return gettext(resolve_language(language, None), "No encontramos esa factura.")


# ---------------------------------------------------------------------------- statement


def parse_period(
    start: str | None, end: str | None, *, today: dt.date, language: str = "es"
) -> Period:
    """The statement period from `?from=&to=` (ISO dates, both optional, inclusive).

    `to` defaults to today and `from` to a year before `to`. Raises `InvalidPeriod` (400) with a
    message for the debtor when a date is malformed, `from` is after `to`, or the period is
    longer than ten years.
    """
    lang = resolve_language(language, None)

    def parse(value: str | None, name: str) -> dt.date | None:
        text = (value or "").strip()
        if not text:
            return None
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            raise InvalidPeriod(_bad_date(lang, name))
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise InvalidPeriod(_bad_date(lang, name)) from None

    end_date = parse(end, "to") or today
    start_date = parse(start, "from") or end_date - dt.timedelta(days=DEFAULT_PERIOD_DAYS)
    if start_date > end_date:
        raise InvalidPeriod(
            gettext(lang, "La fecha «desde» debe ser anterior o igual a la fecha «hasta».")
        )
    if (end_date - start_date).days > MAX_PERIOD_DAYS:
        raise InvalidPeriod(gettext(lang, "El período puede abarcar como máximo diez años."))
    return Period(start_date, end_date)


def _bad_date(language: str, name: str) -> str:
    if name == "from":
        return gettext(language, "La fecha «desde» no es válida; use el formato AAAA-MM-DD.")
    return gettext(language, "La fecha «hasta» no es válida; use el formato AAAA-MM-DD.")


def _statement_label(language: str, entry: Mapping[str, Any], item: ItemView) -> str:
    if entry["kind"] == EntryKind.charge and entry["number"]:
        return gettext(language, "Factura {number}").format(number=entry["number"])
    if entry["kind"] == EntryKind.adjustment and (entry["idempotency_key"] or "").startswith(
        _BILLING_KEY_PREFIX
    ):
        return _kind_label(language, "billing_adjustment")
    return item.label


async def statement(
    debtor_ids: Sequence[int],
    period: Period,
    *,
    language: str | None = None,
    today: dt.date | None = None,
    now: dt.datetime | None = None,
) -> StatementView:
    """Each account's movements between `period.start` and `period.end` with a running balance."""
    ids = _ids(debtor_ids)
    debtors = await _debtors(ids)
    primary = debtors[0] if debtors else None
    lang = resolve_language(language, primary.language if primary else None)
    today = _today(today, now, primary)
    accounts = await _accounts([d.id for d in debtors])
    account_ids = [a["account_id"] for a in accounts]
    openings, rows = await asyncio.gather(
        _opening_balances(account_ids, period.start),
        _statement_rows(account_ids, period),
    )
    methods = await _payment_methods(_basis_payment_ids(rows))
    by_account: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_account[row["account"]].append(row)
    by_id = {d.id: d for d in debtors}
    views: list[StatementAccount] = []
    for account in accounts:
        debtor = by_id[account["debtor_id"]]
        fmt = _fmt(lang, debtor.country, account["currency"])
        entries = by_account.get(account["account_id"], [])
        opening = openings.get(account["account_id"], 0)
        balances = running_balances(opening, (int(e["amount"]) for e in entries))
        statement_rows = []
        for entry, after in zip(entries, balances, strict=True):
            item = _item(entry, lang, fmt, methods)
            amount = int(entry["amount"])
            statement_rows.append(
                StatementRow(
                    date=item.date,
                    date_text=item.date_text,
                    label=_statement_label(lang, entry, item),
                    detail="" if entry["kind"] == EntryKind.charge else item.detail,
                    reference=entry["number"] or "",
                    amount=item.amount,
                    debit=item.amount if amount > 0 else None,
                    credit=fmt.money(-amount) if amount < 0 else None,
                    balance=fmt.money(after),
                )
            )
        debits = sum(int(e["amount"]) for e in entries if int(e["amount"]) > 0)
        credits = -sum(int(e["amount"]) for e in entries if int(e["amount"]) < 0)
        views.append(
            StatementAccount(
                id=account["account_id"],
                creditor=_creditor(account),
                currency=account["currency"],
                opening=fmt.money(opening),
                rows=tuple(statement_rows),
                debits=fmt.money(debits),
                credits=fmt.money(credits),
                closing=fmt.money(balances[-1] if balances else opening),
            )
        )
    locale = display_locale(lang, primary.country if primary else "")
    return StatementView(
        debtor=primary,
        language=lang,
        locale=locale,
        start=period.start,
        end=period.end,
        start_text=_date_text(period.start, locale),
        end_text=_date_text(period.end, locale),
        today_text=_date_text(today, locale),
        accounts=tuple(views),
    )


async def _opening_balances(account_ids: list[int], start: dt.date) -> dict[int, int]:
    if not account_ids:
        return {}
    rows = await LedgerEntry.raw(
        """SELECT account, sum(amount)::bigint AS balance FROM ledger_entry
           WHERE account = ANY({}::int[]) AND effective_date < {} GROUP BY account""",
        account_ids,
        start,
    )
    return {r["account"]: int(r["balance"]) for r in rows}


async def _statement_rows(account_ids: list[int], period: Period) -> list[dict[str, Any]]:
    if not account_ids:
        return []
    return await LedgerEntry.raw(
        f"""SELECT {_ENTRY_COLUMNS}, coalesce(i.number, '') AS number
            FROM ledger_entry e LEFT JOIN invoice i ON i.id = e.invoice
            WHERE e.account = ANY({{}}::int[]) AND e.effective_date BETWEEN {{}} AND {{}}
            ORDER BY e.account, e.effective_date, e.id""",
        account_ids,
        period.start,
        period.end,
    )


# ---------------------------------------------------------------------------- documents


def _file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "documento"


async def invoice_pdf(
    debtor_ids: Sequence[int],
    invoice_id: int,
    *,
    language: str | None = None,
    today: dt.date | None = None,
    now: dt.datetime | None = None,
) -> Document:
    """The invoice as a PDF (`NotFound` for an invoice that is not the debtor's)."""
    from saldo import pdf

    detail = await invoice_detail(debtor_ids, invoice_id, language=language, today=today, now=now)
    content = await asyncio.to_thread(pdf.render_invoice, detail)
    prefix = gettext(detail.language, "factura")
    return Document(f"{prefix}-{_file_part(detail.invoice.number)}.pdf", content)


async def statement_pdf(
    debtor_ids: Sequence[int],
    period: Period,
    *,
    language: str | None = None,
    today: dt.date | None = None,
    now: dt.datetime | None = None,
) -> Document:
    """The statement of account for `period` as a PDF."""
    from saldo import pdf

    view = await statement(debtor_ids, period, language=language, today=today, now=now)
    content = await asyncio.to_thread(pdf.render_statement, view)
    prefix = gettext(view.language, "estado-de-cuenta")
    return Document(f"{prefix}-{period.start.isoformat()}-{period.end.isoformat()}.pdf", content)
