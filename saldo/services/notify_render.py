"""Message kinds and how each is rendered, per channel and language, from what is true now.

An outbox row names a kind (`template`, plus `stage` for "overdue") and what it is about —
`invoice_ids` for reminders, a `context` id for the rest — never the amounts: those are read
and formatted when the message is sent, so a reminder never asks for what was paid meanwhile.

Kinds (`KINDS`) and what they read (a receipt also carries its PDF):

| kind | about | collection | skipped (cancelled) when |
|---|---|---|---|
| reminder_before_due | `invoice_ids` | yes | nothing is left to collect on them |
| overdue_preventive, overdue_administrative | `invoice_ids` | yes | same |
| installment_due | `context.installment_id` | yes | paid, or the plan is no longer active |
| promise_reminder | `context.promise_id` | yes | the promise is no longer open |
| payment_received | `context.payment_id` or key `receipt:<id>` | no | the payment was reversed |
| plan_approved, plan_countered, plan_rejected | `context.plan_id` | no | — |
| dispute_update | `context.dispute_id` | no | — |
| magic_link | rendered by the sign-in directly, never stored | no | — |

"overdue" with stage "judicial" renders nothing: the judicial stage sends no message.
Collection kinds are subject to every guardrail (window, caps, pauses); the others answer the
debtor's own action and only respect opt-outs.

Channels: email renders `templates/notify/<kind>.txt` and `.html` with a subject; SMS renders
`<kind>.sms.txt`, written in the GSM alphabet and at most two segments; WhatsApp sends the
approved template of `saldo.notify.whatsapp.TEMPLATES` with its parameters (and stores the SMS
text as a readable copy). Every message names the creditor (and the agency when there is one),
the amount, a portal link and a way out: the preferences page and a one-click unsubscribe link
by email (plus the List-Unsubscribe header), "Responda BAJA" by SMS.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from saldo.errors import NotFound, ValidationFailed
from saldo.i18n import DEFAULT_LANGUAGE, SUPPORTED_LANGUAGES, gettext
from saldo.notify import render_text
from saldo.notify.base import Attachment
from saldo.notify.sms import MAX_SEGMENTS, sms_segments, to_gsm
from saldo.notify.stencil import render_email
from saldo.notify.unsubscribe import make_token
from saldo.notify.whatsapp import TEMPLATES as WHATSAPP_TEMPLATES
from saldo.services.dispute_rules import OPEN_STATUSES as DISPUTE_OPEN
from saldo.services.dispute_rules import status_label as dispute_status_label
from saldo.services.plan_policy import frequency_label
from saldo.services.statement import Formats, display_locale, local_today
from saldo.tables import Notification

__all__ = [
    "CHANNELS",
    "COLLECTION",
    "INVOICE_KINDS",
    "KINDS",
    "PATHS",
    "Links",
    "Party",
    "Preview",
    "Rendered",
    "Skip",
    "kind_of",
    "links_for",
    "load_values",
    "preview",
    "render",
    "sample_values",
    "subject_for",
]

CHANNELS: Final = ("email", "sms", "whatsapp")
INVOICE_KINDS: Final = frozenset(
    {"reminder_before_due", "overdue_preventive", "overdue_administrative"}
)
COLLECTION: Final = INVOICE_KINDS | {"installment_due", "promise_reminder"}
KINDS: Final = (
    "reminder_before_due",
    "overdue_preventive",
    "overdue_administrative",
    "installment_due",
    "promise_reminder",
    "payment_received",
    "plan_approved",
    "plan_countered",
    "plan_rejected",
    "dispute_update",
    "magic_link",
)
#: Kinds staff can preview (the sign-in link holds a live token and is never previewed).
PREVIEWABLE: Final = KINDS[:-1]
#: The `context` key naming what a message is about, per kind.
CONTEXT_KEYS: Final = {
    "payment_received": "payment_id",
    "installment_due": "installment_id",
    "promise_reminder": "promise_id",
    "plan_approved": "plan_id",
    "plan_countered": "plan_id",
    "plan_rejected": "plan_id",
    "dispute_update": "dispute_id",
}
#: Portal pages messages link to (route names in parentheses; a test checks them).
PATHS: Final = {
    "account": "/account",  # account:balance
    "preferences": "/preferences",  # account:preferences
    "pay": "/pay",  # pay:start
    "plans": "/plans",  # plans:index
    "disputes": "/disputes",  # disputes:index
    "unsubscribe": "/unsubscribe",  # unsubscribe:confirm (/unsubscribe/{token})
}


class Skip(Exception):
    """Nothing left to say: the message is cancelled with `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def kind_of(template: str, stage: str = "") -> str | None:
    """The kind an outbox row renders as; None for a stage that sends nothing (judicial).

    Raises `ValidationFailed` for a template Saldo does not know.
    """
    if template in KINDS:
        return template
    if template == "overdue":
        if stage == "judicial":
            return None
        candidate = f"overdue_{stage or 'preventive'}"
        if candidate in KINDS:
            return candidate
    if template == "overdue_judicial":
        return None
    raise ValidationFailed(f"unknown message template {template!r}", field="template")


# ---------------------------------------------------------------------------- who and where


@dataclass(frozen=True)
class Party:
    """The debtor a message goes to, and whose message it is."""

    debtor_id: int
    name: str
    email: str
    phone: str
    whatsapp: str
    language: str
    timezone: str
    country: str
    creditor: str
    agency: str
    currency: str

    def address(self, channel: str) -> str:
        return {"email": self.email, "sms": self.phone, "whatsapp": self.whatsapp}.get(
            channel, ""
        ).strip()

    @property
    def lang(self) -> str:
        return self.language if self.language in SUPPORTED_LANGUAGES else DEFAULT_LANGUAGE

    def formats(self, language: str | None = None) -> Formats:
        return Formats(self.currency or "USD", display_locale(language or self.lang, self.country))


@dataclass(frozen=True)
class Links:
    public_url: str
    account_url: str
    preferences_url: str
    pay_url: str
    plans_url: str
    disputes_url: str
    unsubscribe_url: str  # "" without a signing key


def links_for(
    public_url: str, *, debtor_id: int, channel: str, unsubscribe_key: bytes | None
) -> Links:
    base = public_url.rstrip("/")
    token = make_token(unsubscribe_key, debtor_id, channel) if unsubscribe_key else ""
    return Links(
        public_url=base,
        account_url=f"{base}{PATHS['account']}",
        preferences_url=f"{base}{PATHS['preferences']}",
        pay_url=f"{base}{PATHS['pay']}",
        plans_url=f"{base}{PATHS['plans']}",
        disputes_url=f"{base}{PATHS['disputes']}",
        unsubscribe_url=f"{base}{PATHS['unsubscribe']}/{token}" if token else "",
    )


# ---------------------------------------------------------------------------- the rendered message


@dataclass(frozen=True)
class Rendered:
    """One message as it goes out (and as the outbox row keeps it)."""

    channel: str
    kind: str
    language: str
    subject: str = ""
    text: str = ""
    html: str = ""
    attachments: tuple[Attachment, ...] = ()
    template: str = ""  # WhatsApp: the approved template
    parameters: tuple[str, ...] = ()  # WhatsApp: its body parameters
    unsubscribe_url: str = ""


def subject_for(kind: str, language: str, values: Mapping[str, Any]) -> str:
    creditor = str(values.get("creditor", ""))
    match kind:
        case "reminder_before_due":
            text = gettext(language, "{creditor}: su factura vence el {date}")
            return text.format(creditor=creditor, date=values.get("due_date", ""))
        case "overdue_preventive":
            return gettext(language, "{creditor}: tiene un saldo vencido").format(creditor=creditor)
        case "overdue_administrative":
            return gettext(language, "{creditor}: aviso de deuda vencida").format(creditor=creditor)
        case "installment_due":
            return gettext(language, "{creditor}: vence la cuota {number} de su plan").format(
                creditor=creditor, number=values.get("number", "")
            )
        case "promise_reminder":
            return gettext(language, "{creditor}: recordatorio de su compromiso de pago").format(
                creditor=creditor
            )
        case "payment_received":
            return gettext(language, "Comprobante de pago — {creditor}").format(creditor=creditor)
        case "plan_approved":
            return gettext(language, "{creditor}: su plan de pagos fue aprobado").format(
                creditor=creditor
            )
        case "plan_countered":
            return gettext(language, "{creditor}: le proponemos otro plan de pagos").format(
                creditor=creditor
            )
        case "plan_rejected":
            return gettext(language, "{creditor}: sobre su propuesta de plan de pagos").format(
                creditor=creditor
            )
        case "dispute_update":
            return gettext(language, "{creditor}: novedades sobre su reclamo").format(
                creditor=creditor
            )
        case "magic_link":
            return gettext(language, "Su enlace para ingresar a Saldo")
    raise ValidationFailed(f"unknown message template {kind!r}", field="template")


def _common(party: Party, links: Links, language: str) -> dict[str, Any]:
    return {
        "name": party.name,
        "creditor": party.creditor,
        "agency": party.agency,
        "public_url": links.public_url,
        "account_url": links.account_url,
        "preferences_url": links.preferences_url,
        "pay_url": links.pay_url,
        "plans_url": links.plans_url,
        "disputes_url": links.disputes_url,
        "unsubscribe_url": links.unsubscribe_url,
        "sms_opt_out": gettext(language, "Responda BAJA para no recibir más SMS."),
        "sms_pay_label": gettext(language, "Pague o vea el detalle:"),
        "sms_plan_label": gettext(language, "Vea su plan:"),
        "sms_detail_label": gettext(language, "Vea el detalle:"),
    }


def render(
    kind: str,
    channel: str,
    party: Party,
    links: Links,
    values: Mapping[str, Any],
    *,
    language: str | None = None,
    attachments: Sequence[Attachment] = (),
) -> Rendered:
    """Render one message of `kind` for `channel` in `language` (default: the debtor's).

    Raises `ValidationFailed` for an SMS that would not fit `MAX_SEGMENTS` segments.
    """
    lang = language if language in SUPPORTED_LANGUAGES else party.lang
    context = {**_common(party, links, lang), **values}
    dispute_id = values.get("dispute_id")
    context["dispute_url"] = (
        f"{links.disputes_url}/{dispute_id}" if dispute_id else links.disputes_url
    )
    if channel == "email":
        text, html = render_email(kind, lang, context)
        return Rendered(
            channel=channel,
            kind=kind,
            language=lang,
            subject=subject_for(kind, lang, context),
            text=text,
            html=html,
            attachments=tuple(attachments),
            unsubscribe_url=links.unsubscribe_url,
        )
    sms = _short_text(kind, lang, context)
    if channel == "sms":
        return Rendered(channel=channel, kind=kind, language=lang, text=to_gsm(sms))
    if channel == "whatsapp":
        template = WHATSAPP_TEMPLATES[kind]
        return Rendered(
            channel=channel,
            kind=kind,
            language=lang,
            subject=template.name,
            text=sms,
            template=template.name,
            parameters=tuple(str(context.get(name, "")) for name in template.parameters),
        )
    raise ValidationFailed(f"unknown channel {channel!r}", field="channel")


def _short_text(kind: str, language: str, context: dict[str, Any]) -> str:
    """The SMS text: whole when it fits `MAX_SEGMENTS`; else without the agency, then with
    the names cut short. `ValidationFailed` when even that does not fit."""
    attempts = [
        context,
        {**context, "agency": ""},
        {
            **context,
            "agency": "",
            "name": _cut(str(context.get("name", "")), 24),
            "creditor": _cut(str(context.get("creditor", "")), 32),
        },
    ]
    for values in attempts:
        text = " ".join(render_text(f"{kind}.sms.txt", language, values).split())
        if sms_segments(to_gsm(text)) <= MAX_SEGMENTS:
            return text
    raise ValidationFailed(
        f"the SMS would take {sms_segments(to_gsm(text))} segments (at most {MAX_SEGMENTS})",
        field="text",
    )


def _cut(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1].rstrip() + "…"


# ---------------------------------------------------------------------------- what a kind reads


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def id_list(value: Any) -> list[int]:
    data = _json(value)
    if not isinstance(data, list):
        return []
    return [int(v) for v in data if isinstance(v, int | str) and str(v).isdigit()]


def _context_id(context: Any, name: str) -> int | None:
    data = _json(context)
    if isinstance(data, dict):
        value = data.get(name)
        if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
            return int(value)
    return None


@dataclass(frozen=True)
class InvoiceLine:
    invoice_id: int
    number: str
    due_date: dt.date
    collectable: int  # open amount minus what is in dispute, minor units
    currency: str = ""
    account_id: int = 0


async def invoice_lines(invoice_ids: Sequence[int]) -> dict[int, InvoiceLine]:
    """Open amount (less open disputes) of each invoice, in one query."""
    ids = sorted({int(i) for i in invoice_ids if 0 < int(i) < 2**31})
    if not ids:
        return {}
    rows = await Notification.raw(
        """
        SELECT i.id, i.number, i.due_date, i.currency, i.account,
               coalesce((SELECT sum(e.amount) FROM ledger_entry e WHERE e.invoice = i.id), 0)
                   AS open,
               coalesce((SELECT sum(d.amount) FROM dispute d
                         WHERE d.invoice = i.id AND d.resolved_at IS NULL
                           AND d.status IN ('open', 'in_review', 'waiting_debtor')), 0)
                   AS disputed
        FROM invoice i WHERE i.id = ANY({}::int[])
        """,
        ids,
    )
    found = {}
    for r in rows:
        open_amount = int(r["open"])
        disputed = min(max(int(r["disputed"]), 0), max(open_amount, 0))
        found[int(r["id"])] = InvoiceLine(
            int(r["id"]),
            str(r["number"]),
            r["due_date"],
            open_amount - disputed,
            str(r["currency"]),
            int(r["account"]),
        )
    return found


def invoice_values(
    kind: str,
    lines: Sequence[InvoiceLine],
    party: Party,
    today: dt.date,
    language: str,
) -> dict[str, Any]:
    """What a reminder shows: the invoices with something left, their total, the dates.

    Each amount is written in its invoice's currency; invoices in several currencies give a
    total per currency ("$ 1.000,00 + US$ 20,00").
    """
    due = sorted((line for line in lines if line.collectable > 0), key=lambda x: x.due_date)
    if not due:
        raise Skip("nothing_due")
    fmt = party.formats(language)
    locale = fmt.locale

    def money(minor: int, currency: str) -> str:
        return (Formats(currency, locale) if currency else fmt).money(minor).text

    totals: dict[str, int] = {}
    for line in due:
        totals[line.currency] = totals.get(line.currency, 0) + line.collectable
    earliest = due[0].due_date
    return {
        "invoices": [
            {
                "number": line.number,
                "due": fmt.date(line.due_date),
                "amount": money(line.collectable, line.currency),
            }
            for line in due
        ],
        "count": len(due),
        "total": " + ".join(money(amount, currency) for currency, amount in totals.items()),
        "due_date": fmt.date(earliest),
        "days_to_due": max((earliest - today).days, 0),
        "days_overdue": max((today - earliest).days, 0),
    }


async def _installment(installment_id: int, party: Party, language: str) -> dict[str, Any]:
    rows = await Notification.raw(
        """
        SELECT i.number, i.due_date, i.amount, i.paid_amount, i.status,
               p.status AS plan_status, p.installments_count
        FROM installment i JOIN payment_plan p ON p.id = i.plan WHERE i.id = {}
        """,
        installment_id,
    )
    if not rows:
        raise Skip("not_found")
    row = rows[0]
    left = int(row["amount"]) - int(row["paid_amount"])
    if row["plan_status"] != "active" or left <= 0 or row["status"] == "paid":
        raise Skip("nothing_due")
    fmt = party.formats(language)
    return {
        "number": int(row["number"]),
        "of": int(row["installments_count"]),
        "amount": fmt.money(left).text,
        "due_date": fmt.date(row["due_date"]),
    }


async def _promise(promise_id: int, party: Party, language: str) -> dict[str, Any]:
    rows = await Notification.raw(
        "SELECT amount, promised_date, status FROM promise_to_pay WHERE id = {}", promise_id
    )
    if not rows:
        raise Skip("not_found")
    if rows[0]["status"] != "open":
        raise Skip("promise_closed")
    fmt = party.formats(language)
    return {
        "amount": fmt.money(int(rows[0]["amount"])).text,
        "promised_date": fmt.date(rows[0]["promised_date"]),
    }


def _plan_values(row: Mapping[str, Any], party: Party, language: str) -> dict[str, Any]:
    fmt = party.formats(language)
    return {
        "total": fmt.money(int(row["total"])).text,
        "down_payment": fmt.money(int(row["down_payment"])).text
        if int(row["down_payment"])
        else "",
        "installments": int(row["installments_count"]),
        "installment_amount": fmt.money(int(row["installment_amount"] or 0)).text,
        "frequency": frequency_label(language, str(row["frequency"])).lower(),
        "first_date": fmt.date(row["first_date"]),
        "reason": str(row["review_reason"] or ""),
    }


async def _plan(plan_id: int, party: Party, language: str) -> dict[str, Any]:
    rows = await Notification.raw(
        """
        SELECT p.total, p.down_payment, p.installments_count, p.frequency, p.first_date,
               p.review_reason,
               -- an offer has no installments yet: the largest of its even split (money.py)
               coalesce((SELECT max(i.amount) FROM installment i
                         WHERE i.plan = p.id AND i.number > 0),
                        (p.total - p.down_payment + p.installments_count - 1)
                            / p.installments_count) AS installment_amount
        FROM payment_plan p WHERE p.id = {}
        """,
        plan_id,
    )
    if not rows:
        raise Skip("not_found")
    return _plan_values(rows[0], party, language)


async def _dispute(dispute_id: int, party: Party, language: str) -> dict[str, Any]:
    rows = await Notification.raw(
        """
        SELECT d.id, d.status, d.resolution, d.resolved_amount, coalesce(i.number, '') AS number
        FROM dispute d LEFT JOIN invoice i ON i.id = d.invoice WHERE d.id = {}
        """,
        dispute_id,
    )
    if not rows:
        raise Skip("not_found")
    row = rows[0]
    fmt = party.formats(language)
    return {
        "dispute_id": int(row["id"]),
        "invoice_number": str(row["number"]),
        "dispute_status": dispute_status_label(language, str(row["status"])),
        "dispute_open": str(row["status"]) in DISPUTE_OPEN,
        "resolution": str(row["resolution"] or ""),
        "resolved_amount": fmt.money(int(row["resolved_amount"])).text
        if row["resolved_amount"] is not None
        else "",
    }


async def _receipt(
    payment_id: int, party: Party, language: str, *, now: dt.datetime, public_url: str
) -> tuple[dict[str, Any], tuple[Attachment, ...]]:
    from saldo.services import ledger, receipts

    if await ledger.has_posting(payment_id, ledger.REVERSE):
        raise Skip("payment_reversed")
    try:
        view = await receipts.receipt_view(
            payment_id, language=language, now=now, public_url=public_url
        )
    except NotFound as exc:
        raise Skip("not_found") from exc
    pdf = Attachment(view.filename, "application/pdf", receipts.render_receipt_pdf(view))
    return receipts.receipt_values(view), (pdf,)


def payment_of(idempotency_key: str, context: Any) -> int | None:
    found = _context_id(context, "payment_id")
    if found is not None:
        return found
    prefix, _, rest = idempotency_key.partition(":")
    return int(rest) if prefix == "receipt" and rest.isdigit() else None


async def load_values(
    kind: str,
    *,
    party: Party,
    language: str,
    context: Any,
    idempotency_key: str,
    lines: Sequence[InvoiceLine] = (),
    now: dt.datetime,
    public_url: str,
) -> tuple[dict[str, Any], tuple[Attachment, ...]]:
    """The values (and attachments) of one message; raises `Skip` when it has lost its point.

    Invoice kinds take their `lines` from `invoice_lines()` (read for a whole batch at once).
    """
    today = local_today(now, party.timezone)
    if kind in INVOICE_KINDS:
        return invoice_values(kind, lines, party, today, language), ()
    if kind == "payment_received":
        payment_id = payment_of(idempotency_key, context)
        if payment_id is None:
            raise Skip("not_found")
        return await _receipt(payment_id, party, language, now=now, public_url=public_url)
    loaders = {
        "installment_due": ("installment_id", _installment),
        "promise_reminder": ("promise_id", _promise),
        "plan_approved": ("plan_id", _plan),
        "plan_countered": ("plan_id", _plan),
        "plan_rejected": ("plan_id", _plan),
        "dispute_update": ("dispute_id", _dispute),
    }
    if kind not in loaders:
        raise ValidationFailed(f"{kind} messages are not sent through the outbox")
    name, loader = loaders[kind]
    object_id = _context_id(context, name)
    if object_id is None:
        raise Skip("not_found")
    return await loader(object_id, party, language), ()


# ---------------------------------------------------------------------------- preview


@dataclass(frozen=True)
class Preview:
    """A rendered message for staff to look at, and whether it used example data."""

    rendered: Rendered
    party: Party
    sample: bool
    to: str
    skipped: str = ""  # why this debtor would get nothing now (the example is shown instead)

    @property
    def segments(self) -> int:
        """SMS parts the text takes (0 for other channels)."""
        return sms_segments(self.rendered.text) if self.rendered.channel == "sms" else 0


async def party_of(debtor_id: int) -> Party:
    rows = await Notification.raw(
        """
        SELECT d.id, d.name, d.email, d.phone, d.whatsapp, d.language, d.timezone, d.country,
               c.name AS creditor, c.agency_name,
               coalesce((SELECT a.currency FROM account a WHERE a.debtor = d.id
                         ORDER BY a.id LIMIT 1), 'ARS') AS currency
        FROM debtor d JOIN creditor c ON c.id = d.creditor WHERE d.id = {}
        """,
        debtor_id,
    )
    if not rows:
        raise NotFound(f"debtor {debtor_id} does not exist")
    r = rows[0]
    return Party(
        debtor_id=int(r["id"]),
        name=str(r["name"]),
        email=str(r["email"] or ""),
        phone=str(r["phone"] or ""),
        whatsapp=str(r["whatsapp"] or ""),
        language=str(r["language"] or DEFAULT_LANGUAGE),
        timezone=str(r["timezone"] or "UTC"),
        country=str(r["country"] or ""),
        creditor=str(r["creditor"]),
        agency=str(r["agency_name"] or ""),
        currency=str(r["currency"]),
    )


async def _latest(kind: str, debtor_id: int) -> int | None:
    queries = {
        "installment_due": """SELECT i.id FROM installment i JOIN payment_plan p ON p.id = i.plan
                              JOIN account a ON a.id = p.account
                              WHERE a.debtor = {} AND p.status = 'active'
                                AND i.amount > i.paid_amount
                              ORDER BY i.due_date, i.id LIMIT 1""",
        "promise_reminder": """SELECT pr.id FROM promise_to_pay pr
                               JOIN account a ON a.id = pr.account
                               WHERE a.debtor = {} AND pr.status = 'open'
                               ORDER BY pr.id DESC LIMIT 1""",
        "plan_approved": """SELECT p.id FROM payment_plan p JOIN account a ON a.id = p.account
                            WHERE a.debtor = {} ORDER BY p.id DESC LIMIT 1""",
        "dispute_update": """SELECT d.id FROM dispute d JOIN account a ON a.id = d.account
                             WHERE a.debtor = {} ORDER BY d.id DESC LIMIT 1""",
        "payment_received": """SELECT p.id FROM payment p JOIN account a ON a.id = p.account
                               JOIN payment_posting pp ON pp.payment = p.id AND pp.effect = 'apply'
                               WHERE a.debtor = {} ORDER BY p.id DESC LIMIT 1""",
    }
    query = queries.get("plan_approved" if kind.startswith("plan_") else kind)
    if query is None:
        return None
    rows = await Notification.raw(query, debtor_id)
    return int(rows[0]["id"]) if rows else None


def sample_values(kind: str, party: Party, today: dt.date, language: str) -> dict[str, Any]:
    """Illustrative values for a debtor who has nothing of this kind (marked as an example)."""
    fmt = party.formats(language)
    if kind in INVOICE_KINDS:
        due = (
            today + dt.timedelta(days=5)
            if kind == "reminder_before_due"
            else today - dt.timedelta(days=12)
        )
        lines = [
            InvoiceLine(0, "A-0001-00001234", due, 1_250_000),
            InvoiceLine(0, "A-0001-00001235", due, 480_050),
        ]
        return invoice_values(kind, lines, party, today, language)
    if kind == "installment_due":
        return {
            "number": 2,
            "of": 6,
            "amount": fmt.money(150_000).text,
            "due_date": fmt.date(today + dt.timedelta(days=3)),
        }
    if kind == "promise_reminder":
        return {
            "amount": fmt.money(500_000).text,
            "promised_date": fmt.date(today + dt.timedelta(days=1)),
        }
    if kind.startswith("plan_"):
        return _plan_values(
            {
                "total": 900_000,
                "down_payment": 100_000,
                "installments_count": 4,
                "installment_amount": 200_000,
                "frequency": "monthly",
                "first_date": today + dt.timedelta(days=10),
                "review_reason": gettext(
                    language, "El primer pago debe ser de al menos el 10 % de la deuda."
                )
                if kind != "plan_approved"
                else "",
            },
            party,
            language,
        )
    if kind == "dispute_update":
        return {
            "dispute_id": 0,
            "invoice_number": "A-0001-00001234",
            "dispute_status": dispute_status_label(language, "in_review"),
            "dispute_open": True,
            "resolution": "",
            "resolved_amount": "",
        }
    if kind == "payment_received":
        return {
            "provider": "Mercado Pago",
            "simulated": False,
            "amount": fmt.money(1_250_000).text,
            "date": fmt.date(today),
            "method": gettext(language, "Pago"),
            "reference": "1325000001",
            "applied": [{"invoice_number": "A-0001-00001234", "amount": fmt.money(1_250_000).text}],
            "credit": "",
            "balance_label": gettext(language, "Saldo pendiente"),
            "balance": fmt.money(480_050).text,
            "today": fmt.date(today),
        }
    raise ValidationFailed(f"{kind} cannot be previewed", field="template")


async def preview(
    kind: str,
    debtor_id: int,
    channel: str,
    language: str | None,
    *,
    now: dt.datetime,
    public_url: str,
    unsubscribe_key: bytes | None,
) -> Preview:
    """Render `kind` for one debtor as it would go out now: with their open invoices (or
    their latest plan, promise, dispute, payment), or with example values when they have none."""
    if kind not in PREVIEWABLE:
        raise ValidationFailed("Elija un tipo de mensaje de la lista.", field="template")
    if channel not in CHANNELS:
        raise ValidationFailed("Elija un canal de la lista.", field="channel")
    party = await party_of(debtor_id)
    lang = language if language in SUPPORTED_LANGUAGES else party.lang
    links = links_for(
        public_url, debtor_id=debtor_id, channel=channel, unsubscribe_key=unsubscribe_key
    )
    today = local_today(now, party.timezone)
    sample, skipped = False, ""
    values: dict[str, Any] = {}
    attachments: tuple[Attachment, ...] = ()
    try:
        if kind in INVOICE_KINDS:
            rows = await Notification.raw(
                """SELECT i.id FROM invoice i JOIN account a ON a.id = i.account
                   WHERE a.debtor = {} ORDER BY i.due_date, i.id""",
                debtor_id,
            )
            lines = await invoice_lines([int(r["id"]) for r in rows])
            values = invoice_values(kind, list(lines.values()), party, today, lang)
        else:
            object_id = await _latest(kind, debtor_id)
            if object_id is None:
                raise Skip("not_found")
            key = CONTEXT_KEYS.get(kind, "plan_id")
            values, attachments = await load_values(
                kind,
                party=party,
                language=lang,
                context={key: object_id},
                idempotency_key="",
                now=now,
                public_url=public_url,
            )
    except Skip as exc:
        sample, skipped = True, exc.reason
        values = sample_values(kind, party, today, lang)
    rendered = render(kind, channel, party, links, values, language=lang, attachments=attachments)
    return Preview(
        rendered=rendered, party=party, sample=sample, to=party.address(channel), skipped=skipped
    )
