"""Small builders for service tests; each call makes its own creditor so tests never collide."""

from __future__ import annotations

import datetime as dt
import secrets

from saldo.services.ledger import post_entry
from saldo.tables import Account, Creditor, Debtor, EntryKind, Invoice


async def make_account(currency: str = "ARS", name: str = "Ñandú Pérez") -> Account:
    creditor = Creditor(name=f"Acreedor {secrets.token_hex(4)}")
    await creditor.save()
    debtor = Debtor(creditor=creditor.id, external_id=secrets.token_hex(4), name=name)
    await debtor.save()
    account = Account(creditor=creditor.id, debtor=debtor.id, currency=currency)
    await account.save()
    return account


async def make_invoice(account: Account, number: str, total: int, due: dt.date) -> Invoice:
    invoice = Invoice(
        creditor=account.creditor,
        account=account.id,
        number=number,
        currency=account.currency,
        issue_date=due - dt.timedelta(days=30),
        due_date=due,
        total=total,
    )
    await invoice.save()
    await post_entry(
        account_id=account.id,
        kind=EntryKind.charge,
        amount=total,
        currency=account.currency,
        effective_date=invoice.issue_date,
        invoice_id=invoice.id,
        description=f"Factura {number}",
        idempotency_key=f"test:invoice:{invoice.id}",
    )
    return invoice
