"""Builders for the dunning, accrual and segmentation tests.

Each call makes its own creditor, so tests never see each other's debtors. The dates these
tests use are in 2031, far from every other test's, because the dunning run and the accrual
work over the whole database (as they do in production).
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass

from saldo.services.ledger import apply_payment, post_entry
from saldo.tables import (
    Account,
    CheckoutSession,
    ContactPreference,
    Creditor,
    Debtor,
    Dispute,
    EntryKind,
    Installment,
    Invoice,
    Notification,
    Payment,
    PaymentClaim,
    PaymentPlan,
    PromiseToPay,
)

DAY0 = dt.date(2031, 3, 3)  # a Monday


def at(day: dt.date, hour: int = 9) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


async def make_creditor(country: str = "AR", name: str = "") -> Creditor:
    creditor = Creditor(name=name or f"Acreedor {secrets.token_hex(4)}", country=country)
    await creditor.save()
    return creditor


@dataclass
class Case:
    creditor: int
    debtor: int
    account: Account


async def make_case(
    creditor: Creditor,
    *,
    name: str = "Ñandú Pérez",
    currency: str = "ARS",
    timezone: str = "America/Argentina/Buenos_Aires",
    country: str = "AR",
    email: str | None = None,
    phone: str = "+5491155550000",
    whatsapp: str = "+5491155550000",
    preferred_channel: str | None = None,
    debtor: int | None = None,
) -> Case:
    if debtor is None:
        row = Debtor(
            creditor=creditor.id,
            external_id=secrets.token_hex(5),
            name=name,
            email=email if email is not None else f"{secrets.token_hex(4)}@ejemplo.com",
            phone=phone,
            whatsapp=whatsapp,
            timezone=timezone,
            country=country,
            preferred_channel=preferred_channel,
        )
        await row.save()
        debtor = row.id
    account = Account(creditor=creditor.id, debtor=debtor, currency=currency)
    await account.save()
    return Case(creditor.id, debtor, account)


async def invoice(
    case: Case, total: int, due: dt.date, number: str = "", issued: dt.date | None = None
) -> Invoice:
    row = Invoice(
        creditor=case.creditor,
        account=case.account.id,
        number=number or f"F-{secrets.token_hex(4)}",
        currency=case.account.currency,
        issue_date=issued or due - dt.timedelta(days=30),
        due_date=due,
        total=total,
    )
    await row.save()
    await post_entry(
        account_id=case.account.id,
        kind=EntryKind.charge,
        amount=total,
        currency=case.account.currency,
        effective_date=row.issue_date,
        invoice_id=row.id,
        description=f"Factura {row.number}",
        idempotency_key=f"test:invoice:{row.id}",
    )
    return row


async def pay(
    case: Case, amount: int, when: dt.datetime, invoice_ids: list[int] | None = None
) -> int:
    applied = await apply_payment(
        account_id=case.account.id,
        provider="bank",
        provider_payment_id=secrets.token_hex(6),
        amount=amount,
        received_at=when,
        preferred_invoice_ids=invoice_ids or [],
    )
    return applied.payment_id


async def dispute(case: Case, invoice_id: int, amount: int) -> int:
    row = Dispute(
        account=case.account.id,
        invoice=invoice_id,
        amount=amount,
        reason_code="wrong_amount",
        status="open",
    )
    await row.save()
    return row.id


async def active_plan(
    case: Case, invoice_ids: list[int], installments: list[tuple[dt.date, int]]
) -> int:
    plan = PaymentPlan(
        account=case.account.id,
        status="active",
        total=sum(a for _, a in installments),
        installments_count=len(installments),
        first_date=installments[0][0],
        invoice_ids=json.dumps(invoice_ids),
    )
    await plan.save()
    for number, (due, amount) in enumerate(installments, start=1):
        await Installment(plan=plan.id, number=number, due_date=due, amount=amount).save()
    return plan.id


async def promise(case: Case, amount: int, day: dt.date) -> int:
    row = PromiseToPay(account=case.account.id, amount=amount, promised_date=day)
    await row.save()
    return row.id


async def claim(case: Case, invoice_ids: list[int], until: dt.date, amount: int = 1) -> int:
    row = PaymentClaim(
        account=case.account.id,
        amount=amount,
        paid_on=until - dt.timedelta(days=7),
        invoice_ids=json.dumps(invoice_ids),
        status="open",
        pause_until=until,
    )
    await row.save()
    return row.id


async def pending_payment(
    case: Case, invoice_ids: list[int], amount: int, expires: dt.datetime
) -> int:
    checkout = CheckoutSession(
        account=case.account.id,
        amount=amount,
        currency=case.account.currency,
        invoice_ids=json.dumps(invoice_ids),
        choice="invoices" if invoice_ids else "balance",
        status="pending",
    )
    await checkout.save()
    payment = Payment(
        account=case.account.id,
        provider="simulated",
        provider_payment_id=secrets.token_hex(6),
        amount=amount,
        currency=case.account.currency,
        status="pending",
        method="ticket",
        checkout=checkout.id,
        expires_at=expires,
    )
    await payment.save()
    return checkout.id


async def staff_pause(case: Case, until: dt.date, note: str = "Llamar primero") -> None:
    await Account.update({Account.paused_until: until, Account.pause_reason: note}).where(
        Account.id == case.account.id
    )


async def opt_out(debtor: int, channel: str, when: dt.datetime) -> None:
    await ContactPreference(
        debtor=debtor, channel=channel, opted_in=False, source="portal", changed_at=when
    ).save()


async def quiet_hours(
    debtor: int, channel: str, start: dt.time, end: dt.time, when: dt.datetime
) -> None:
    await ContactPreference(
        debtor=debtor,
        channel=channel,
        opted_in=True,
        quiet_start=start,
        quiet_end=end,
        source="portal",
        changed_at=when,
    ).save()


async def messages(debtor: int) -> list[dict[str, object]]:
    """The debtor's notifications, oldest first, as dicts."""
    rows = (
        await Notification.select().where(Notification.debtor == debtor).order_by(Notification.id)
    )
    for row in rows:
        for key in ("context", "invoice_ids"):
            if isinstance(row[key], str):
                row[key] = json.loads(row[key])
    return rows
