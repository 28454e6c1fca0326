"""Piccolo tables: Saldo's domain model (one app, migrations in the top-level `migrations/`).

Money columns are BigInt amounts in the minor unit of the account's currency (see money.py).
`ledger_entry` and `audit_event` are append-only: a database trigger (migration 2) refuses
UPDATE and DELETE. Rows born from an outside event carry a unique idempotency key.
"""

from __future__ import annotations

from enum import StrEnum

from piccolo.columns import (
    JSONB,
    UUID,
    BigInt,
    Boolean,
    Date,
    ForeignKey,
    Integer,
    Numeric,
    OnDelete,
    Serial,
    SmallInt,
    Text,
    Time,
    Timestamptz,
    Varchar,
)
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.columns.defaults.uuid import UUID4
from piccolo.constraints import Unique
from piccolo.table import Table

from saldo.db import DB

# ---------------------------------------------------------------------------- vocabularies


class Stage(StrEnum):
    preventive = "preventive"
    administrative = "administrative"
    judicial = "judicial"
    closed = "closed"


class Channel(StrEnum):
    email = "email"
    sms = "sms"
    whatsapp = "whatsapp"


class EntryKind(StrEnum):
    charge = "charge"
    interest = "interest"
    fee = "fee"
    payment = "payment"
    credit_note = "credit_note"
    adjustment = "adjustment"
    write_off = "write_off"
    refund = "refund"
    reversal = "reversal"


class Role(StrEnum):
    agent = "agent"
    supervisor = "supervisor"
    finance = "finance"
    admin = "admin"


def _now() -> TimestamptzNow:
    return TimestamptzNow()


# ---------------------------------------------------------------------------- people and cases


class Creditor(Table, db=DB):
    id: Serial
    name = Varchar(length=200, unique=True)
    legal_name = Varchar(length=200, default="")
    tax_id = Varchar(length=40, default="")
    country = Varchar(length=2, default="AR")
    email = Varchar(length=254, default="")
    phone = Varchar(length=40, default="")
    agency_name = Varchar(length=200, default="")
    # Online payments: the smallest custom amount a debtor may pay (minor units of the account's
    # currency), and how many days a "ya pagué" report pauses reminders on its invoices.
    min_online_payment = BigInt(default=0)
    claim_pause_days = SmallInt(default=7)
    created_at = Timestamptz(default=_now())


class StaffUser(Table, db=DB):
    id: Serial
    email = Varchar(length=254, unique=True)
    name = Varchar(length=200, default="")
    role = Varchar(length=20, choices=Role, default=Role.agent)
    password_hash = Text(default="")
    totp_secret_enc = Text(null=True, default=None)
    totp_confirmed_at = Timestamptz(null=True, default=None)
    totp_last_step = BigInt(null=True, default=None)
    recovery_codes = JSONB(default="[]")
    failed_attempts = Integer(default=0)
    locked_until = Timestamptz(null=True, default=None)
    active = Boolean(default=True)
    created_at = Timestamptz(default=_now())
    last_login_at = Timestamptz(null=True, default=None)


class Debtor(Table, db=DB):
    """A person or company as one creditor knows it (`external_id` is the creditor's own id)."""

    id: Serial

    creditor = ForeignKey(Creditor, on_delete=OnDelete.restrict)
    external_id = Varchar(length=100)
    name = Varchar(length=300)
    document_type = Varchar(length=20, default="")
    document_number = Varchar(length=40, default="", index=True)
    email = Varchar(length=254, default="", index=True)
    phone = Varchar(length=40, default="", index=True)
    whatsapp = Varchar(length=40, default="")
    language = Varchar(length=5, default="es")
    timezone = Varchar(length=64, default="America/Argentina/Buenos_Aires")
    country = Varchar(length=2, default="AR")
    preferred_channel = Varchar(length=20, null=True, default=None)
    preferred_pay_day = SmallInt(null=True, default=None)
    created_at = Timestamptz(default=_now())
    updated_at = Timestamptz(default=_now())

    debtor_external_key = Unique(["creditor", "external_id"])


class ContactPreference(Table, db=DB):
    """One row per change of a contact preference (the newest per debtor and channel wins)."""

    id: Serial

    debtor = ForeignKey(Debtor, on_delete=OnDelete.cascade, index=True)
    channel = Varchar(length=20, choices=Channel)
    opted_in = Boolean(default=True)
    quiet_start = Time(null=True, default=None)
    quiet_end = Time(null=True, default=None)
    source = Varchar(length=40, default="portal")
    changed_at = Timestamptz(default=_now())


class Account(Table, db=DB):
    """A collection case: one debtor at one creditor in one currency."""

    id: Serial

    creditor = ForeignKey(Creditor, on_delete=OnDelete.restrict, index=True)
    debtor = ForeignKey(Debtor, on_delete=OnDelete.restrict)
    currency = Varchar(length=3)
    stage = Varchar(length=20, choices=Stage, default=Stage.preventive)
    segment = Varchar(length=40, default="standard")
    risk_score = SmallInt(default=0)
    assignee = ForeignKey(StaffUser, null=True, on_delete=OnDelete.set_null)
    paused_until = Date(null=True, default=None)
    pause_reason = Text(default="")
    next_action_on = Date(null=True, default=None, index=True)  # a callback or visit due
    next_action_note = Text(default="")
    legal_escalated_at = Timestamptz(null=True, default=None)
    opened_at = Timestamptz(default=_now())

    account_case_key = Unique(["debtor", "currency"])


# ---------------------------------------------------------------------------- invoices and ledger


class Invoice(Table, db=DB):
    id: Serial
    creditor = ForeignKey(Creditor, on_delete=OnDelete.restrict)
    account = ForeignKey(Account, on_delete=OnDelete.restrict, index=True)
    number = Varchar(length=60)
    currency = Varchar(length=3)
    issue_date = Date()
    due_date = Date(index=True)
    total = BigInt(default=0)
    lines_digest = Varchar(length=32, default="")
    created_at = Timestamptz(default=_now())
    updated_at = Timestamptz(default=_now())

    invoice_number_key = Unique(["creditor", "number"])


class InvoiceLine(Table, db=DB):
    """A line as imported: quantity and unit price as given, the total in minor units."""

    id: Serial

    invoice = ForeignKey(Invoice, on_delete=OnDelete.cascade)
    position = Integer()
    description = Text(default="")
    quantity = Numeric(digits=(18, 4))
    unit_price = Numeric(digits=(20, 6))
    tax_rate = Numeric(digits=(7, 4))
    total = BigInt()


class LedgerEntry(Table, db=DB):
    """Append-only. `amount` > 0 raises what the debtor owes, < 0 lowers it."""

    id: Serial

    account = ForeignKey(Account, on_delete=OnDelete.restrict)  # indexed with effective_date
    invoice = ForeignKey(Invoice, null=True, on_delete=OnDelete.restrict, index=True)
    kind = Varchar(length=20, choices=EntryKind)
    amount = BigInt()
    currency = Varchar(length=3)
    effective_date = Date()
    description = Text(default="")
    basis = JSONB(default="{}")
    idempotency_key = Varchar(length=200, null=True, default=None, unique=True)
    reverses: ForeignKey[LedgerEntry] = ForeignKey("self", null=True, on_delete=OnDelete.restrict)
    created_by = Varchar(length=100, default="system")
    created_at = Timestamptz(default=_now())


# ---------------------------------------------------------------------------- payments


class CheckoutSession(Table, db=DB):
    """Our side of a Mercado Pago preference; `public_id` is the external_reference."""

    id: Serial

    public_id = UUID(default=UUID4(), unique=True)
    account = ForeignKey(Account, on_delete=OnDelete.restrict, index=True)
    amount = BigInt()
    currency = Varchar(length=3)
    invoice_ids = JSONB(default="[]")
    installment_id = BigInt(null=True, default=None)
    provider = Varchar(length=30, default="simulated")
    provider_preference_id = Varchar(length=100, default="")
    init_point = Text(default="")
    choice = Varchar(length=20, default="balance")
    payer_email = Varchar(length=254, default="")
    status = Varchar(length=30, default="created")
    expires_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=_now())
    updated_at = Timestamptz(default=_now())


class BankImport(Table, db=DB):
    id: Serial
    filename = Varchar(length=300)
    sha256 = Varchar(length=64, unique=True)
    rows = Integer(default=0)
    imported_by = ForeignKey(StaffUser, null=True, on_delete=OnDelete.set_null)
    imported_at = Timestamptz(default=_now())


class BankLine(Table, db=DB):
    """One credit on a bank statement. Unique by the bank's transaction id across imports.

    `status`: unmatched → matched (posted automatically) | assigned (by finance) | split |
    not_ours. `match_rule` and `match_note` explain every match.
    """

    id: Serial

    bank_import = ForeignKey(BankImport, on_delete=OnDelete.restrict, index=True)
    line_no = Integer()
    transaction_id = Varchar(length=100, unique=True)
    booked_on = Date()
    amount = BigInt()
    currency = Varchar(length=3)
    reference = Text(default="")
    payer_name = Varchar(length=300, default="")
    payer_document = Varchar(length=40, default="")
    status = Varchar(length=20, default="unmatched", index=True)
    account = ForeignKey(Account, null=True, on_delete=OnDelete.set_null)
    match_rule = Varchar(length=30, default="")
    match_note = Text(default="")
    resolved_by = ForeignKey(StaffUser, null=True, on_delete=OnDelete.set_null)
    resolved_at = Timestamptz(null=True, default=None)

    bank_line_line_key = Unique(["bank_import", "line_no"])


class Payment(Table, db=DB):
    """Money received from one source (`provider`: mercadopago, simulated, bank, manual).

    `account` is null while nobody knows whose it is (an unapplied payment).
    """

    id: Serial

    account = ForeignKey(Account, null=True, on_delete=OnDelete.restrict, index=True)
    provider = Varchar(length=30)
    provider_payment_id = Varchar(length=100)
    amount = BigInt()
    currency = Varchar(length=3)
    status = Varchar(length=30, default="pending")
    status_detail = Varchar(length=60, default="")
    method = Varchar(length=60, default="")
    checkout = ForeignKey(CheckoutSession, null=True, on_delete=OnDelete.set_null)
    bank_line = ForeignKey(BankLine, null=True, on_delete=OnDelete.set_null)
    received_at = Timestamptz(null=True, default=None)
    expires_at = Timestamptz(null=True, default=None)
    provider_data = JSONB(default="{}")
    created_at = Timestamptz(default=_now())
    updated_at = Timestamptz(default=_now())

    payment_provider_payment_key = Unique(["provider", "provider_payment_id"])


class PaymentPosting(Table, db=DB):
    """The gate that makes ledger posting exactly once per payment and effect.

    `effect` is "apply" (the payment's allocations) or "reverse" (their reversal on a refund,
    chargeback or cancellation). The row is inserted with ON CONFLICT DO NOTHING in the same
    transaction as the entries it stands for: whoever inserts it posts, nobody else does.
    """

    id: Serial

    payment = ForeignKey(Payment, on_delete=OnDelete.restrict)
    effect = Varchar(length=20)
    status = Varchar(length=30, default="")
    created_at = Timestamptz(default=_now())

    payment_posting_effect_key = Unique(["payment", "effect"])


class PaymentAllocation(Table, db=DB):
    id: Serial
    payment = ForeignKey(Payment, on_delete=OnDelete.restrict, index=True)
    invoice = ForeignKey(Invoice, null=True, on_delete=OnDelete.restrict)
    ledger_entry = ForeignKey(LedgerEntry, on_delete=OnDelete.restrict)
    amount = BigInt()
    created_at = Timestamptz(default=_now())


class SimulatedPayment(Table, db=DB):
    """Demo mode's stand-in for Mercado Pago's side of a payment (no MERCADOPAGO_ACCESS_TOKEN)."""

    id: Serial

    checkout = ForeignKey(CheckoutSession, on_delete=OnDelete.cascade, index=True)
    amount = BigInt()
    currency = Varchar(length=3)
    status = Varchar(length=30)
    status_detail = Varchar(length=60, default="")
    method = Varchar(length=60, default="")
    created_at = Timestamptz(default=_now())
    updated_at = Timestamptz(default=_now())


class WebhookEvent(Table, db=DB):
    """Inbox of provider notifications, unique by the provider's event identity."""

    id: Serial

    provider = Varchar(length=30)
    event_key = Varchar(length=200, unique=True)
    topic = Varchar(length=60, default="")
    resource_id = Varchar(length=100, default="")
    payload = JSONB(default="{}")
    status = Varchar(length=20, default="received")
    error = Text(default="")
    received_at = Timestamptz(default=_now())
    processed_at = Timestamptz(null=True, default=None)


# ---------------------------------------------------------------------------- conversations


class PlanPolicy(Table, db=DB):
    id: Serial
    creditor = ForeignKey(Creditor, on_delete=OnDelete.cascade, index=True)
    segment = Varchar(length=40, default="standard")
    max_installments = SmallInt(default=12)
    frequencies = JSONB(default='["weekly", "biweekly", "monthly"]')
    min_down_payment_bp = Integer(default=1000)
    min_installment = BigInt(default=0)
    max_term_days = Integer(default=365)
    early_settlement_discount_bp = Integer(default=0)
    missed_to_break = SmallInt(default=2)
    grace_days = SmallInt(default=5)
    auto_approve_limit = BigInt(default=0)

    plan_policy_segment_key = Unique(["creditor", "segment"])


class PaymentPlan(Table, db=DB):
    id: Serial
    account = ForeignKey(Account, on_delete=OnDelete.restrict, index=True)
    status = Varchar(length=20, default="proposed")
    proposed_by = Varchar(length=20, default="debtor")
    total = BigInt()
    down_payment = BigInt(default=0)
    installments_count = SmallInt()
    frequency = Varchar(length=20, default="monthly")
    first_date = Date()
    invoice_ids = JSONB(default="[]")
    debtor_message = Text(default="")
    review_reason = Text(default="")
    reviewed_by = ForeignKey(StaffUser, null=True, on_delete=OnDelete.set_null)
    counter_of: ForeignKey[PaymentPlan] = ForeignKey("self", null=True, on_delete=OnDelete.set_null)
    missed_count = SmallInt(default=0)
    created_at = Timestamptz(default=_now())
    decided_at = Timestamptz(null=True, default=None)
    ended_at = Timestamptz(null=True, default=None)


class Installment(Table, db=DB):
    id: Serial
    plan = ForeignKey(PaymentPlan, on_delete=OnDelete.cascade, index=True)
    number = SmallInt()
    due_date = Date()
    amount = BigInt()
    paid_amount = BigInt(default=0)
    status = Varchar(length=20, default="pending")

    installment_number_key = Unique(["plan", "number"])


class PromiseToPay(Table, db=DB):
    id: Serial
    account = ForeignKey(Account, on_delete=OnDelete.restrict, index=True)
    amount = BigInt()
    promised_date = Date()
    status = Varchar(length=20, default="open")
    source = Varchar(length=20, default="portal")
    created_by = ForeignKey(StaffUser, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=_now())
    resolved_at = Timestamptz(null=True, default=None)


class Attachment(Table, db=DB):
    """An uploaded file kept under $SALDO_DATA_DIR/uploads, never under static/."""

    id: Serial

    filename = Varchar(length=255)
    content_type = Varchar(length=100)
    size = Integer()
    sha256 = Varchar(length=64)
    storage_path = Text()
    uploaded_by = Varchar(length=20, default="debtor")
    created_at = Timestamptz(default=_now())


class PaymentClaim(Table, db=DB):
    """A debtor's "ya pagué": a payment made elsewhere, waiting for finance to match it."""

    id: Serial

    account = ForeignKey(Account, on_delete=OnDelete.restrict, index=True)
    amount = BigInt()
    paid_on = Date()
    method = Varchar(length=60, default="")
    reference = Varchar(length=200, default="")
    invoice_ids = JSONB(default="[]")
    attachment = ForeignKey(Attachment, null=True, on_delete=OnDelete.set_null)
    status = Varchar(length=20, default="open")
    pause_until = Date(null=True, default=None)
    created_at = Timestamptz(default=_now())


class Dispute(Table, db=DB):
    id: Serial
    account = ForeignKey(Account, on_delete=OnDelete.restrict, index=True)
    invoice = ForeignKey(Invoice, null=True, on_delete=OnDelete.restrict)
    invoice_line = ForeignKey(InvoiceLine, null=True, on_delete=OnDelete.set_null)
    amount = BigInt()
    reason_code = Varchar(length=40)
    reason_text = Text(default="")
    status = Varchar(length=20, default="open")
    resolution = Text(default="")
    resolved_amount = BigInt(null=True, default=None)
    sla_due_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=_now())
    resolved_at = Timestamptz(null=True, default=None)


class DisputeMessage(Table, db=DB):
    id: Serial
    dispute = ForeignKey(Dispute, on_delete=OnDelete.cascade, index=True)
    author_kind = Varchar(length=20, default="debtor")
    staff = ForeignKey(StaffUser, null=True, on_delete=OnDelete.set_null)
    body = Text()
    attachment = ForeignKey(Attachment, null=True, on_delete=OnDelete.set_null)
    created_at = Timestamptz(default=_now())


class Interaction(Table, db=DB):
    """The 360° log: every message, portal action, call, note and status change."""

    id: Serial

    account = ForeignKey(Account, null=True, on_delete=OnDelete.restrict, index=True)
    debtor = ForeignKey(Debtor, on_delete=OnDelete.restrict, index=True)
    kind = Varchar(length=40)
    channel = Varchar(length=20, default="")
    direction = Varchar(length=10, default="")
    summary = Text(default="")
    data = JSONB(default="{}")
    staff = ForeignKey(StaffUser, null=True, on_delete=OnDelete.set_null)
    occurred_at = Timestamptz(default=_now())


class Task(Table, db=DB):
    id: Serial
    account = ForeignKey(Account, null=True, on_delete=OnDelete.restrict, index=True)
    kind = Varchar(length=40)
    title = Text()
    due_on = Date(null=True, default=None)
    status = Varchar(length=20, default="open")
    assignee = ForeignKey(StaffUser, null=True, on_delete=OnDelete.set_null)
    data = JSONB(default="{}")
    dedupe_key = Varchar(length=200, null=True, default=None, unique=True)
    created_at = Timestamptz(default=_now())
    done_at = Timestamptz(null=True, default=None)


# ---------------------------------------------------------------------------- messages and policy


class Notification(Table, db=DB):
    """Outbox: every message is a row first, unique by its idempotency key."""

    id: Serial

    debtor = ForeignKey(Debtor, on_delete=OnDelete.restrict, index=True)
    account = ForeignKey(Account, null=True, on_delete=OnDelete.restrict)
    channel = Varchar(length=20, choices=Channel)
    template = Varchar(length=60)
    language = Varchar(length=5, default="es")
    to_address = Varchar(length=254, default="")
    subject = Text(default="")
    body_text = Text(default="")
    body_html = Text(default="")
    idempotency_key = Varchar(length=200, unique=True)
    context = JSONB(default="{}")  # what the template is rendered with at send time
    invoice_ids = JSONB(default="[]")  # the items a reminder is about (pauses are per item)
    stage = Varchar(length=20, default="")
    step_offset = SmallInt(null=True, default=None)
    status = Varchar(length=20, default="queued", index=True)
    blocked_reason = Text(default="")
    provider_id = Varchar(length=200, default="")
    attempts = SmallInt(default=0)
    last_error = Text(default="")
    send_after = Timestamptz(null=True, default=None)
    sent_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=_now())


class DunningPolicy(Table, db=DB):
    id: Serial
    creditor = ForeignKey(Creditor, on_delete=OnDelete.cascade, index=True)
    segment = Varchar(length=40, default="standard")
    name = Varchar(length=100, default="")
    active = Boolean(default=True)
    window_start = Time()
    window_end = Time()
    skip_sundays = Boolean(default=False)
    skip_holidays = Boolean(default=False)
    frequency_cap = SmallInt(default=7)
    frequency_window_days = SmallInt(default=7)

    dunning_policy_segment_key = Unique(["creditor", "segment"])


class Holiday(Table, db=DB):
    """Public holidays per country, for policies that send nothing on them."""

    id: Serial

    country = Varchar(length=2)
    day = Date()
    name = Varchar(length=200, default="")

    holiday_country_day_key = Unique(["country", "day"])


class DunningStep(Table, db=DB):
    id: Serial
    policy = ForeignKey(DunningPolicy, on_delete=OnDelete.cascade, index=True)
    offset_days = SmallInt()
    channels = JSONB(default='["email"]')
    template = Varchar(length=60)
    stage = Varchar(length=20, choices=Stage, default=Stage.preventive)

    dunning_step_offset_key = Unique(["policy", "offset_days"])


class FeePolicy(Table, db=DB):
    """Late-payment charges. `daily_rate_ppm` is parts per million of the overdue amount a day."""

    id: Serial

    creditor = ForeignKey(Creditor, on_delete=OnDelete.cascade, index=True)
    segment = Varchar(length=40, default="standard")
    daily_rate_ppm = Integer(default=0)
    fixed_fee = BigInt(default=0)
    grace_days = SmallInt(default=0)
    cap_bp = Integer(default=0)
    active = Boolean(default=True)

    fee_policy_segment_key = Unique(["creditor", "segment"])


# ---------------------------------------------------------------------------- access and audit


class MagicLinkToken(Table, db=DB):
    id: Serial
    token_hash = Varchar(length=64, unique=True)
    contact = Varchar(length=254, index=True)
    channel = Varchar(length=20, default="email")
    debtor_ids = JSONB(default="[]")
    requested_ip = Varchar(length=64, default="")
    knowledge_attempts = SmallInt(default=0)
    created_at = Timestamptz(default=_now())
    expires_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)


class ApiKey(Table, db=DB):
    id: Serial
    name = Varchar(length=100, unique=True)
    prefix = Varchar(length=16)
    key_hash = Varchar(length=64, unique=True)
    scopes = JSONB(default='["read", "write"]')
    created_at = Timestamptz(default=_now())
    last_used_at = Timestamptz(null=True, default=None)
    revoked_at = Timestamptz(null=True, default=None)


class WebhookEndpoint(Table, db=DB):
    """An ERP's URL that receives signed events (payment.applied, plan.approved, ...)."""

    id: Serial

    url = Text()
    secret_enc = Text()
    events = JSONB(default="[]")
    active = Boolean(default=True)
    created_at = Timestamptz(default=_now())


class WebhookDelivery(Table, db=DB):
    """One event for one endpoint; unique by `event_key` so an event is delivered once."""

    id: Serial

    endpoint = ForeignKey(WebhookEndpoint, on_delete=OnDelete.cascade, index=True)
    event = Varchar(length=60)
    event_key = Varchar(length=200, unique=True)
    payload = JSONB(default="{}")
    status = Varchar(length=20, default="pending", index=True)
    attempts = SmallInt(default=0)
    last_error = Text(default="")
    next_attempt_at = Timestamptz(null=True, default=None)
    delivered_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=_now())


class AuditEvent(Table, db=DB):
    """Append-only: who did what, before/after, when, from where."""

    id: Serial

    staff = ForeignKey(StaffUser, null=True, on_delete=OnDelete.restrict)
    actor = Varchar(length=254)
    action = Varchar(length=80)
    object_type = Varchar(length=60, default="")
    object_id = Varchar(length=60, default="")
    before = JSONB(default="{}")
    after = JSONB(default="{}")
    ip = Varchar(length=64, default="")
    created_at = Timestamptz(default=_now())


class ImportRun(Table, db=DB):
    """One portfolio import, its progress and outcome."""

    id: Serial

    creditor = ForeignKey(Creditor, null=True, on_delete=OnDelete.set_null)
    debtors_file = Text(default="")
    invoices_file = Text(default="")
    status = Varchar(length=20, default="running")
    debtors_rows = Integer(default=0)
    invoice_lines_rows = Integer(default=0)
    error = Text(default="")
    started_at = Timestamptz(default=_now())
    finished_at = Timestamptz(null=True, default=None)
