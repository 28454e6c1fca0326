"""The debtor's online payment: what can be paid, the checkout, and its live state.

A checkout pays one account and is one of four choices:

- `balance`: the account's whole balance (the sum of its ledger);
- `invoices`: some open invoices, each for its open amount;
- `amount`: a custom amount, at least the creditor's `min_online_payment` (and at least one
  minor unit) and at most the balance. We refuse more than the balance: an overpayment would
  sit on the account as a credit the debtor would then have to ask back. When the balance is
  below the creditor's minimum, the minimum is the balance.
- `installment`: what is left to pay of one installment (or the down payment) of the account's
  active payment plan (`plans.installment_payment`, at most the balance), with the plan's
  invoices as the ones the payment goes to first; `CheckoutSession.installment_id` names it.
  The plan's progress is computed from the ledger, so the installment shows paid once the
  payment is applied like any other.

`start_checkout` inserts our `CheckoutSession` (its `public_id` is Mercado Pago's
external_reference and the idempotency key of the preference), asks the provider for a
checkout and stores the preference id and the `init_point` the debtor is sent to. The worker's
`sync_payment` job (or the webhook) later re-fetches each payment from the provider, applies it
to the ledger exactly once and moves `CheckoutSession.status` on:
created → approved | pending | rejected | refunded | charged_back | cancelled.

Every function takes the session's `debtor_ids`; an account or checkout of anyone else is
`NotFound`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from saldo import money
from saldo.errors import Conflict, NotFound, ValidationFailed
from saldo.i18n import gettext
from saldo.payments import CheckoutItem, CheckoutRequest, PaymentProvider
from saldo.references import payment_reference
from saldo.services.statement import (
    Amount,
    Formats,
    display_locale,
    local_today,
    resolve_language,
)
from saldo.tables import CheckoutSession

if TYPE_CHECKING:
    from saldo.services.plans import InstallmentDue

__all__ = [
    "CHECKOUT_LIFETIME",
    "CHOICES",
    "FINAL_STATES",
    "AccountOptions",
    "CheckoutView",
    "InstallmentOption",
    "JobQueue",
    "OpenClaim",
    "OpenInvoice",
    "PayOptions",
    "PendingPayment",
    "SimulatedResult",
    "StartedCheckout",
    "account_of",
    "checkout_view",
    "installment_title",
    "minimum_custom_amount",
    "open_invoices",
    "parse_money",
    "pay_options",
    "request_sync",
    "simulate_outcome",
    "simulated_checkout",
    "start_checkout",
    "sync_job_id",
]

CHOICES: Final = ("balance", "invoices", "amount", "installment")
#: How long a checkout link stays payable.
CHECKOUT_LIFETIME: Final = dt.timedelta(hours=72)
#: States after which nothing changes by itself (the return page stops polling).
FINAL_STATES: Final = frozenset(
    {"approved", "rejected", "refunded", "charged_back", "cancelled", "expired"}
)
_MAX_ID: Final = 2**31 - 1
_MAX_INVOICES: Final = 200
_PAYMENT_ID: Final = re.compile(r"[0-9]{1,30}")


class JobQueue(Protocol):
    async def enqueue(self, function: str, *args: Any, _job_id: str | None = None) -> bool: ...


# ---------------------------------------------------------------------------- amounts typed in


def parse_money(text: str, currency: str, *, language: str = "es") -> int:
    """Minor units of an amount as a debtor types it, or `ValidationFailed` on field `amount`.

    Accepts "1234.56", "1234,56", "1.234,56", "1,234.56", an optional currency symbol and
    spaces. For currencies without decimals (CLP, PYG) a "." or "," between groups of three
    digits is a thousands separator ("10.000" CLP is ten thousand pesos). More decimals than the
    currency has are refused rather than rounded, and so is anything ambiguous.
    """
    digits = money.exponent(currency)
    cleaned = re.sub(r"[\s\u00a0\u202f$€]", "", text or "")
    cleaned = re.sub(re.escape(currency), "", cleaned, flags=re.IGNORECASE)
    if not cleaned:
        raise ValidationFailed(gettext(language, "Escriba el importe que quiere pagar."), "amount")
    if digits == 0 and re.fullmatch(r"[0-9]{1,3}(?:([.,])[0-9]{3})(?:\1[0-9]{3})*", cleaned):
        cleaned = re.sub(r"[.,]", "", cleaned)
    elif "." in cleaned and "," in cleaned:
        decimal = "." if cleaned.rfind(".") > cleaned.rfind(",") else ","
        thousands = "," if decimal == "." else "."
        whole, _, fraction = cleaned.rpartition(decimal)
        if not re.fullmatch(rf"[0-9]{{1,3}}(?:{re.escape(thousands)}[0-9]{{3}})*", whole):
            raise _malformed(language)
        cleaned = f"{whole.replace(thousands, '')}.{fraction}"
    elif "," in cleaned:
        cleaned = cleaned.replace(",", ".")
    if not re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", cleaned):
        raise _malformed(language)
    fraction = cleaned.partition(".")[2]
    if len(fraction) > digits:
        if digits == 0:
            message = gettext(language, "Escriba el importe sin decimales, por ejemplo 15000.")
        else:
            message = gettext(
                language, "Escriba el importe con dos decimales como máximo, por ejemplo 1234,56."
            )
        raise ValidationFailed(message, "amount")
    try:
        return money.parse_amount(cleaned, currency)
    except money.MalformedAmount:
        raise _malformed(language) from None


def _malformed(language: str) -> ValidationFailed:
    return ValidationFailed(
        gettext(
            language,
            "No entendemos ese importe. Escríbalo solo con números, por ejemplo 1234,56.",
        ),
        "amount",
    )


def minimum_custom_amount(creditor_minimum: int, balance: int) -> int:
    """The smallest custom amount: the creditor's minimum (at least 1), capped at the balance."""
    return max(1, min(max(creditor_minimum, 1), balance))


# ---------------------------------------------------------------------------- view models


@dataclass(frozen=True, slots=True)
class OpenInvoice:
    id: int
    number: str
    due_date: dt.date
    due: str
    open: Amount
    overdue: bool


@dataclass(frozen=True, slots=True)
class PendingPayment:
    """An online payment started and not settled (a cash voucher, a bank transfer)."""

    public_id: str
    amount: Amount
    method: str
    started: str
    expires: str | None


@dataclass(frozen=True, slots=True)
class OpenClaim:
    """A "ya pagué" report waiting for finance."""

    id: int
    amount: Amount
    paid_on: str
    pause_until: str | None


@dataclass(frozen=True, slots=True)
class AccountOptions:
    account_id: int
    creditor_id: int
    creditor_name: str
    creditor_legal_name: str
    creditor_tax_id: str
    currency: str
    decimals: int
    balance: Amount
    invoices: tuple[OpenInvoice, ...]
    min_amount: Amount
    transfer_reference: str
    pending: tuple[PendingPayment, ...]
    claims: tuple[OpenClaim, ...]

    @property
    def payable(self) -> bool:
        return self.balance.minor > 0

    @property
    def amount_example(self) -> str:
        """A placeholder in the form's own syntax ("1234,56", or "15000" without decimals)."""
        return "15000" if self.decimals == 0 else "1234,56"


@dataclass(frozen=True, slots=True)
class InstallmentOption:
    """One installment of an active plan, offered on its own (`/pay?installment=<id>`)."""

    installment_id: int
    plan_id: int
    account_id: int
    number: int  # 0 is the down payment
    label: str
    due_date: dt.date
    due: str
    amount: Amount  # what is left to pay of it (at most the account's balance)
    overdue: bool


@dataclass(frozen=True, slots=True)
class PayOptions:
    language: str
    locale: str
    today: dt.date
    accounts: tuple[AccountOptions, ...]
    installment: InstallmentOption | None = None

    def account(self, account_id: int) -> AccountOptions | None:
        return next((a for a in self.accounts if a.account_id == account_id), None)


@dataclass(frozen=True, slots=True)
class StartedCheckout:
    public_id: str
    init_point: str
    amount: int
    currency: str


@dataclass(frozen=True, slots=True)
class CheckoutView:
    public_id: str
    account_id: int
    creditor_name: str
    currency: str
    language: str
    amount: Amount
    choice: str
    invoice_numbers: tuple[str, ...]
    status: str  # CheckoutSession.status as stored
    # waiting | approved | pending | rejected | refunded | charged_back | cancelled | expired
    state: str
    payment_status: str | None
    payment_method: str | None
    payment_expires: str | None
    provider: str
    created: str
    installment_label: str = ""  # "Cuota 2", "Anticipo": what an `installment` checkout pays

    @property
    def final(self) -> bool:
        return self.state in FINAL_STATES


# ---------------------------------------------------------------------------- queries


def _ids(debtor_ids: Sequence[int]) -> list[int]:
    return sorted({int(i) for i in debtor_ids if 0 < int(i) <= _MAX_ID})


_ACCOUNT_SQL = """
    SELECT a.id AS account_id, a.currency, a.debtor AS debtor_id,
           d.email, d.country, d.language, d.timezone,
           c.id AS creditor_id, c.name AS creditor_name, c.legal_name AS creditor_legal_name,
           c.tax_id AS creditor_tax_id, c.min_online_payment, c.claim_pause_days,
           coalesce((SELECT sum(e.amount) FROM ledger_entry e WHERE e.account = a.id), 0)::bigint
               AS balance
    FROM account a JOIN creditor c ON c.id = a.creditor JOIN debtor d ON d.id = a.debtor
    WHERE a.debtor = ANY({}::int[])
"""


async def _accounts(debtor_ids: list[int]) -> list[dict[str, Any]]:
    if not debtor_ids:
        return []
    return await CheckoutSession.raw(
        f"{_ACCOUNT_SQL} ORDER BY c.name, c.id, a.currency, a.id", debtor_ids
    )


async def account_of(debtor_ids: Sequence[int], account_id: int) -> dict[str, Any] | None:
    """One account row (with its balance and creditor) if it belongs to the debtors."""
    ids = _ids(debtor_ids)
    if not ids or not 0 < account_id <= _MAX_ID:
        return None
    rows = await CheckoutSession.raw(f"{_ACCOUNT_SQL} AND a.id = {{}}", ids, account_id)
    return rows[0] if rows else None


async def open_invoices(account_ids: list[int]) -> list[dict[str, Any]]:
    """Invoices with something left to pay, oldest due date first."""
    if not account_ids:
        return []
    return await CheckoutSession.raw(
        """SELECT i.id, i.account, i.number, i.due_date, sum(e.amount)::bigint AS open
           FROM invoice i JOIN ledger_entry e ON e.invoice = i.id
           WHERE i.account = ANY({}::int[])
           GROUP BY i.id
           HAVING sum(e.amount) > 0
           ORDER BY i.due_date, i.id""",
        account_ids,
    )


async def _pending(account_ids: list[int]) -> list[dict[str, Any]]:
    if not account_ids:
        return []
    return await CheckoutSession.raw(
        """SELECT cs.public_id, cs.account, cs.amount, cs.created_at,
                  p.method, p.expires_at AS payment_expires
           FROM checkout_session cs
           LEFT JOIN LATERAL (
               SELECT method, expires_at FROM payment
               WHERE payment.checkout = cs.id ORDER BY id DESC LIMIT 1
           ) p ON true
           WHERE cs.account = ANY({}::int[]) AND cs.status = 'pending'
           ORDER BY cs.created_at DESC, cs.id DESC""",
        account_ids,
    )


async def _claims(account_ids: list[int]) -> list[dict[str, Any]]:
    if not account_ids:
        return []
    return await CheckoutSession.raw(
        """SELECT id, account, amount, paid_on, pause_until FROM payment_claim
           WHERE account = ANY({}::int[]) AND status = 'open'
           ORDER BY created_at DESC, id DESC""",
        account_ids,
    )


# ---------------------------------------------------------------------------- pay options


def _fmt(language: str, country: str, currency: str) -> Formats:
    return Formats(currency, display_locale(language, country))


async def pay_options(
    debtor_ids: Sequence[int],
    *,
    language: str | None = None,
    today: dt.date | None = None,
    now: dt.datetime | None = None,
    installment: str | int | None = None,
) -> PayOptions:
    """Per account of the signed-in debtors: creditor, balance, open invoices with open amounts
    and due dates, the smallest custom amount, the bank-transfer reference, online payments
    still pending and open "ya pagué" reports.

    `language` is an explicit choice (else the first debtor's preference); `today` fixes the
    date overdue is measured on (else `now`, else the clock, in the first debtor's time zone).
    `installment` (an id, as typed in the query) adds that installment of the debtor's active
    plan with what is left to pay of it; `NotFound` for anyone else's, a paid one, or a
    malformed id.
    """
    rows = await _accounts(_ids(debtor_ids))
    first = rows[0] if rows else None
    lang = resolve_language(language, first["language"] if first else None)
    if today is None:
        moment = now or dt.datetime.now(dt.UTC)
        today = local_today(moment, first["timezone"] if first else "UTC")
    account_ids = [r["account_id"] for r in rows]
    invoices: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for invoice in await open_invoices(account_ids):
        invoices[invoice["account"]].append(invoice)
    pending: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in await _pending(account_ids):
        pending[row["account"]].append(row)
    claims: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in await _claims(account_ids):
        claims[row["account"]].append(row)
    options = []
    for row in rows:
        fmt = _fmt(lang, row["country"], row["currency"])
        balance = int(row["balance"])
        tz = row["timezone"]
        options.append(
            AccountOptions(
                account_id=row["account_id"],
                creditor_id=row["creditor_id"],
                creditor_name=row["creditor_name"],
                creditor_legal_name=row["creditor_legal_name"] or row["creditor_name"],
                creditor_tax_id=row["creditor_tax_id"],
                currency=row["currency"],
                decimals=money.exponent(row["currency"]),
                balance=fmt.money(balance),
                invoices=tuple(
                    OpenInvoice(
                        id=i["id"],
                        number=i["number"],
                        due_date=i["due_date"],
                        due=fmt.date(i["due_date"]),
                        open=fmt.money(int(i["open"])),
                        overdue=i["due_date"] < today,
                    )
                    for i in invoices[row["account_id"]]
                ),
                min_amount=fmt.money(
                    minimum_custom_amount(int(row["min_online_payment"]), balance)
                ),
                transfer_reference=payment_reference(row["account_id"]),
                pending=tuple(
                    PendingPayment(
                        public_id=str(p["public_id"]),
                        amount=fmt.money(int(p["amount"])),
                        method=p["method"] or "",
                        started=fmt.date(local_today(p["created_at"], tz)),
                        expires=fmt.date(local_today(p["payment_expires"], tz))
                        if p["payment_expires"]
                        else None,
                    )
                    for p in pending[row["account_id"]]
                ),
                claims=tuple(
                    OpenClaim(
                        id=c["id"],
                        amount=fmt.money(int(c["amount"])),
                        paid_on=fmt.date(c["paid_on"]),
                        pause_until=fmt.date(c["pause_until"]) if c["pause_until"] else None,
                    )
                    for c in claims[row["account_id"]]
                ),
            )
        )
    offered = None
    if installment is not None:
        offered = await _installment_option(debtor_ids, installment, rows, lang, today)
    return PayOptions(
        language=lang,
        locale=display_locale(lang, first["country"] if first else ""),
        today=today,
        accounts=tuple(options),
        installment=offered,
    )


def _installment_id(value: str | int | None, language: str) -> int:
    text = str(value if value is not None else "").strip()
    if not re.fullmatch(r"[1-9][0-9]{0,9}", text) or int(text) > _MAX_ID:
        raise NotFound(gettext(language, "No encontramos esa cuota."))
    return int(text)


def installment_title(language: str, number: int) -> str:
    if number == 0:
        return gettext(language, "Anticipo")
    return gettext(language, "Cuota {number}").format(number=number)


async def _installment_due(
    debtor_ids: Sequence[int], value: str | int | None, language: str, today: dt.date
) -> InstallmentDue:
    """`plans.installment_payment` (imported here: `plans` parses amounts with this module)."""
    from saldo.services.plans import installment_payment

    return await installment_payment(debtor_ids, _installment_id(value, language), today=today)


async def _installment_option(
    debtor_ids: Sequence[int],
    value: str | int,
    accounts: Sequence[Mapping[str, Any]],
    language: str,
    today: dt.date,
) -> InstallmentOption:
    due = await _installment_due(debtor_ids, value, language, today)
    account = next(a for a in accounts if a["account_id"] == due.account_id)
    amount = min(int(due.amount), int(account["balance"]))
    if amount <= 0:
        raise NotFound(gettext(language, "Esa cuota ya está pagada."))
    fmt = _fmt(language, account["country"], account["currency"])
    return InstallmentOption(
        installment_id=due.installment_id,
        plan_id=due.plan_id,
        account_id=due.account_id,
        number=due.number,
        label=installment_title(language, due.number),
        due_date=due.due_date,
        due=fmt.date(due.due_date),
        amount=fmt.money(amount),
        overdue=due.due_date < today,
    )


# ---------------------------------------------------------------------------- start a checkout


def _invoice_ids(values: Sequence[str | int], language: str) -> list[int]:
    ids: list[int] = []
    for value in values:
        text = str(value).strip()
        if not text.isdigit() or not 0 < int(text) <= _MAX_ID:
            raise ValidationFailed(
                gettext(language, "Alguna de las facturas elegidas no es válida."), "invoice_ids"
            )
        if int(text) not in ids:
            ids.append(int(text))
    if len(ids) > _MAX_INVOICES:
        raise ValidationFailed(gettext(language, "Elija menos facturas por pago."), "invoice_ids")
    return ids


@dataclass(frozen=True, slots=True)
class _Plan:
    amount: int
    invoice_ids: list[int]
    items: list[CheckoutItem]
    installment_id: int | None = None


async def _plan(
    account: Mapping[str, Any],
    choice: str,
    invoice_ids: Sequence[str | int],
    amount: str | None,
    language: str,
    installment: InstallmentDue | None = None,
) -> _Plan:
    currency = account["currency"]
    balance = int(account["balance"])
    creditor = account["creditor_name"]
    fmt = _fmt(language, account["country"], currency)
    if choice not in CHOICES:
        raise ValidationFailed(gettext(language, "Elija qué quiere pagar."), "choice")
    if balance <= 0:
        raise ValidationFailed(
            gettext(language, "Esta cuenta no tiene saldo pendiente de pago."), "choice"
        )
    if choice == "balance":
        title = gettext(language, "Saldo de su cuenta con {creditor}").format(creditor=creditor)
        return _Plan(balance, [], [CheckoutItem(title, balance)])
    if choice == "installment":
        if installment is None or installment.account_id != account["account_id"]:
            raise ValidationFailed(
                gettext(language, "Esa cuota no es de esta cuenta."), "installment"
            )
        due = min(int(installment.amount), balance)
        title = gettext(language, "{label} de su plan de pagos con {creditor}").format(
            label=installment_title(language, installment.number), creditor=creditor
        )
        return _Plan(
            due,
            list(installment.invoice_ids),
            [CheckoutItem(title, due)],
            installment_id=installment.installment_id,
        )
    if choice == "invoices":
        wanted = _invoice_ids(invoice_ids, language)
        if not wanted:
            raise ValidationFailed(
                gettext(language, "Elija al menos una factura para pagar."), "invoice_ids"
            )
        open_by_id = {i["id"]: i for i in await open_invoices([account["account_id"]])}
        if any(i not in open_by_id for i in wanted):
            raise ValidationFailed(
                gettext(
                    language,
                    "Alguna de las facturas elegidas ya no está pendiente. Revise la lista.",
                ),
                "invoice_ids",
            )
        chosen = sorted((open_by_id[i] for i in wanted), key=lambda i: (i["due_date"], i["id"]))
        items = [
            CheckoutItem(
                gettext(language, "Factura {number}").format(number=i["number"]), int(i["open"])
            )
            for i in chosen
        ]
        return _Plan(sum(item.amount for item in items), [i["id"] for i in chosen], items)
    value = parse_money(amount or "", currency, language=language)
    minimum = minimum_custom_amount(int(account["min_online_payment"]), balance)
    if value < minimum:
        raise ValidationFailed(
            gettext(language, "El importe mínimo para pagar en línea es {amount}.").format(
                amount=fmt.money(minimum)
            ),
            "amount",
        )
    if value > balance:
        raise ValidationFailed(
            gettext(language, "El importe no puede superar su saldo de {amount}.").format(
                amount=fmt.money(balance)
            ),
            "amount",
        )
    title = gettext(language, "Pago a cuenta — {creditor}").format(creditor=creditor)
    return _Plan(value, [], [CheckoutItem(title, value)])


def _absolute(public_url: str, url: str) -> str:
    if re.match(r"https?://", url):
        return url
    return f"{public_url.rstrip('/')}/{url.lstrip('/')}"


async def start_checkout(
    *,
    debtor_ids: Sequence[int],
    account_id: int,
    choice: str,
    invoice_ids: Sequence[str | int] = (),
    amount: str | None = None,
    installment: str | int | None = None,
    provider: PaymentProvider,
    public_url: str,
    return_urls: Mapping[str, str],
    notification_url: str,
    now: dt.datetime,
    language: str | None = None,
) -> StartedCheckout:
    """Check the debtor's choice, record the checkout and create it at the provider.

    `return_urls` maps "success", "pending" and "failure" to where the provider sends the
    debtor back; `{reference}` in them is replaced by the checkout's public id and relative
    URLs are made absolute with `public_url` (as is `notification_url`).

    `installment` is the installment's id for the `installment` choice.

    Raises `NotFound` for an account that is not the debtor's (or an installment that is not
    theirs, not of an active plan, or already paid), `ValidationFailed` (with the field:
    choice, invoice_ids, amount or installment) for a choice that cannot be paid, and the
    provider's
    `ProviderError` when it cannot be reached (the checkout row then stays without an
    `init_point` and is never shown).
    """
    account = await account_of(debtor_ids, account_id)
    lang = resolve_language(language, account["language"] if account else None)
    if account is None:
        raise NotFound(gettext(lang, "No encontramos esa cuenta."))
    due = None
    if choice == "installment" and int(account["balance"]) > 0:
        today = local_today(now, account["timezone"])
        due = await _installment_due(debtor_ids, installment, lang, today)
    plan = await _plan(account, choice, invoice_ids, amount, lang, due)
    public_id = uuid.uuid4()
    reference = str(public_id)
    expires_at = now + CHECKOUT_LIFETIME
    await CheckoutSession.insert(
        CheckoutSession(
            public_id=public_id,
            account=account["account_id"],
            amount=plan.amount,
            currency=account["currency"],
            invoice_ids=json.dumps(plan.invoice_ids),
            installment_id=plan.installment_id,
            provider=provider.name,
            choice=choice,
            payer_email=account["email"] or "",
            status="created",
            expires_at=expires_at,
            created_at=now,
            updated_at=now,
        )
    )
    created = await provider.create_checkout(
        CheckoutRequest(
            reference=reference,
            currency=account["currency"],
            items=plan.items,
            payer_email=account["email"] or "",
            back_urls={
                key: _absolute(public_url, url.replace("{reference}", reference))
                for key, url in return_urls.items()
            },
            notification_url=_absolute(public_url, notification_url) if notification_url else "",
            expires_at=expires_at,
            idempotency_key=reference,
        )
    )
    await CheckoutSession.update(
        {
            CheckoutSession.provider_preference_id: created.preference_id,
            CheckoutSession.init_point: created.init_point,
            CheckoutSession.updated_at: now,
        }
    ).where(CheckoutSession.public_id == public_id)
    return StartedCheckout(reference, created.init_point, plan.amount, account["currency"])


# ---------------------------------------------------------------------------- live state


def _uuid(public_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(public_id))
    except ValueError:
        return None


async def _checkout_row(debtor_ids: Sequence[int], public_id: str) -> dict[str, Any] | None:
    ids, key = _ids(debtor_ids), _uuid(public_id)
    if not ids or key is None:
        return None
    rows = await CheckoutSession.raw(
        """SELECT cs.id, cs.public_id, cs.account, cs.amount, cs.currency, cs.invoice_ids,
                  cs.choice, cs.status, cs.provider, cs.expires_at, cs.created_at, cs.init_point,
                  (SELECT i.number FROM installment i JOIN payment_plan pl ON pl.id = i.plan
                   WHERE i.id = cs.installment_id AND pl.account = cs.account)
                      AS installment_number,
                  c.name AS creditor_name, d.country, d.language, d.timezone,
                  p.status AS payment_status, p.method AS payment_method,
                  p.expires_at AS payment_expires
           FROM checkout_session cs
           JOIN account a ON a.id = cs.account
           JOIN creditor c ON c.id = a.creditor
           JOIN debtor d ON d.id = a.debtor
           LEFT JOIN LATERAL (
               SELECT status, method, expires_at FROM payment
               WHERE payment.checkout = cs.id ORDER BY id DESC LIMIT 1
           ) p ON true
           WHERE cs.public_id = {} AND a.debtor = ANY({}::int[])""",
        key,
        ids,
    )
    return rows[0] if rows else None


def _state(row: Mapping[str, Any], now: dt.datetime) -> str:
    status = str(row["status"])
    if status in FINAL_STATES or status == "pending":
        return status
    payment = row["payment_status"]
    if payment:  # the payment is known before the checkout row caught up
        if payment == "approved":
            return "approved"
        if payment in {"refunded", "charged_back", "cancelled"}:
            return str(payment)
        if payment == "rejected":
            return "rejected"
        return "pending"
    if status in {"in_process", "in_mediation", "authorized"}:
        return "pending"
    expires = row["expires_at"]
    if expires is not None and expires < now:
        return "expired"
    return "waiting"


async def checkout_view(
    debtor_ids: Sequence[int],
    public_id: str,
    *,
    language: str | None = None,
    now: dt.datetime | None = None,
) -> CheckoutView:
    """The checkout's state for the return page; `NotFound` for anyone else's (or no such) id.

    `state` is what the debtor is told: `waiting` (nothing heard from the provider yet),
    `pending`, `approved`, `rejected`, `refunded`, `charged_back`, `cancelled`, or `expired`
    (the link lapsed unpaid). Every state but `waiting` and `pending` is final.
    """
    row = await _checkout_row(debtor_ids, public_id)
    lang = resolve_language(language, row["language"] if row else None)
    if row is None:
        raise NotFound(gettext(lang, "No encontramos ese pago."))
    moment = now or dt.datetime.now(dt.UTC)
    fmt = _fmt(lang, row["country"], row["currency"])
    invoice_ids = row["invoice_ids"]
    if isinstance(invoice_ids, str):
        invoice_ids = json.loads(invoice_ids or "[]")
    numbers: tuple[str, ...] = ()
    if invoice_ids:
        found = await CheckoutSession.raw(
            "SELECT id, number FROM invoice WHERE id = ANY({}::int[]) AND account = {}",
            list(invoice_ids),
            row["account"],
        )
        by_id = {r["id"]: r["number"] for r in found}
        numbers = tuple(by_id[i] for i in invoice_ids if i in by_id)
    tz = row["timezone"]
    return CheckoutView(
        public_id=str(row["public_id"]),
        account_id=row["account"],
        creditor_name=row["creditor_name"],
        currency=row["currency"],
        language=lang,
        amount=fmt.money(int(row["amount"])),
        choice=row["choice"],
        invoice_numbers=numbers,
        status=row["status"],
        state=_state(row, moment),
        payment_status=row["payment_status"],
        payment_method=row["payment_method"],
        payment_expires=fmt.date(local_today(row["payment_expires"], tz))
        if row["payment_expires"]
        else None,
        provider=row["provider"],
        created=fmt.date(local_today(row["created_at"], tz)),
        installment_label=installment_title(lang, int(row["installment_number"]))
        if row["installment_number"] is not None
        else "",
    )


def sync_job_id(provider: str, payment_id: str) -> str:
    """The job id of one payment's sync: queued once while it waits or its result is kept,
    however often the debtor reloads the return page."""
    return f"sync_payment:{provider}:{payment_id}"


async def request_sync(
    debtor_ids: Sequence[int],
    public_id: str,
    payment_id: str | None,
    *,
    queue: JobQueue,
    language: str | None = None,
    now: dt.datetime | None = None,
) -> CheckoutView:
    """The return page: queue a sync of the payment the provider named, then show the state.

    The provider appends `payment_id` to the back URL; it is untrusted, but harmless: the job
    re-fetches the payment from the provider and applies only what the provider says. Only a
    plausible id (digits) of a checkout of these debtors is queued, once per job id.
    """
    view = await checkout_view(debtor_ids, public_id, language=language, now=now)
    if payment_id and _PAYMENT_ID.fullmatch(payment_id) and not view.final:
        await queue.enqueue(
            "sync_payment",
            view.provider,
            payment_id,
            _job_id=sync_job_id(view.provider, payment_id),
        )
    return view


# ---------------------------------------------------------------------------- demo mode


async def simulated_checkout(
    debtor_ids: Sequence[int],
    public_id: str,
    *,
    provider: PaymentProvider,
    language: str | None = None,
    now: dt.datetime | None = None,
) -> CheckoutView:
    """The demo page's checkout: `NotFound` unless payments are simulated."""
    if not provider.simulated:
        raise NotFound(gettext(resolve_language(language, None), "No encontramos esa página."))
    view = await checkout_view(debtor_ids, public_id, language=language, now=now)
    if view.provider != provider.name:
        raise NotFound(gettext(view.language, "No encontramos esa página."))
    return view


@dataclass(frozen=True, slots=True)
class SimulatedResult:
    public_id: str
    payment_id: str
    status: str


async def simulate_outcome(
    *,
    debtor_ids: Sequence[int],
    public_id: str,
    outcome: str,
    provider: PaymentProvider,
    queue: JobQueue,
    language: str | None = None,
    now: dt.datetime | None = None,
) -> SimulatedResult:
    """The demo page's button: a simulated payment with `outcome` (approved, pending or
    rejected), then the same `sync_payment` job a real payment gets.

    `NotFound` unless payments are simulated and the checkout is the debtor's; `ValidationFailed`
    for an unknown outcome (checked before the checkout is looked up); `Conflict` once the
    checkout is approved or otherwise settled (a rejected one may be tried again, as Mercado
    Pago allows; a pending one can only get paid).
    """
    if not provider.simulated:
        raise NotFound(gettext(resolve_language(language, None), "No encontramos esa página."))
    if outcome not in {"approved", "pending", "rejected"}:
        raise ValidationFailed(
            gettext(resolve_language(language, None), "Elija un resultado."), "outcome"
        )
    view = await simulated_checkout(
        debtor_ids, public_id, provider=provider, language=language, now=now
    )
    settled = gettext(view.language, "Este pago ya no admite cambios.")
    if view.final and view.state != "rejected":
        raise Conflict(settled)
    if view.state == "pending":
        # A voucher or transfer waiting to be paid: the only thing left is that it gets paid.
        if outcome != "approved":
            raise Conflict(settled)
        waiting = [
            p for p in await provider.search_payments(view.public_id) if p.status == "pending"
        ]
        if not waiting:
            raise Conflict(settled)
        payment = waiting[-1]
        await provider.set_status(payment.id, "approved", "accredited")  # type: ignore[attr-defined]
        job_id = f"{sync_job_id(provider.name, payment.id)}:paid"
    else:
        payment = await provider.simulate(view.public_id, outcome)  # type: ignore[attr-defined]
        job_id = sync_job_id(provider.name, payment.id)
    await queue.enqueue("sync_payment", provider.name, payment.id, _job_id=job_id)
    return SimulatedResult(view.public_id, str(payment.id), outcome)
