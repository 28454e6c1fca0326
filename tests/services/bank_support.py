"""Builders for the bank reconciliation tests.

The test database is shared by the whole run, so everything a bank rule could pick up from
another test — transaction ids, invoice numbers, documents, claim amounts — is made unique.
"""

from __future__ import annotations

import csv
import datetime as dt
import secrets
from collections.abc import Iterable, Sequence
from pathlib import Path

from saldo.services.bank_import import COLUMNS
from saldo.tables import (
    Account,
    BankImport,
    BankLine,
    Debtor,
    PaymentClaim,
    StaffUser,
)

NOW = dt.datetime(2026, 11, 5, 14, 30, tzinfo=dt.UTC)


def uid(prefix: str = "") -> str:
    return f"{prefix}{secrets.token_hex(5).upper()}"


def unique_amount(low: int = 1_000_000) -> int:
    """An amount no other test uses (claims and exact-amount rules look at every account)."""
    return low + secrets.randbelow(10**12)


def unique_document() -> str:
    digits = f"{secrets.randbelow(10**9):09d}"
    return f"27-{digits}-4"


def statement(
    path: Path, rows: Iterable[Sequence[object]], *, header: Sequence[str] = COLUMNS
) -> Path:
    """Write a statement CSV; each row in COLUMNS order."""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            writer.writerow([str(v) for v in row])
    return path


def row(
    amount: str,
    *,
    reference: str = "",
    currency: str = "ARS",
    booked_on: dt.date = dt.date(2026, 11, 3),
    payer_name: str = "",
    payer_document: str = "",
    transaction_id: str | None = None,
) -> tuple[str, ...]:
    return (
        booked_on.isoformat(),
        amount,
        currency,
        reference,
        payer_name,
        payer_document,
        transaction_id or uid("TX-"),
    )


async def set_document(account: Account, document: str, name: str | None = None) -> None:
    values: dict[object, object] = {Debtor.document_number: document}
    if name is not None:
        values[Debtor.name] = name
    await Debtor.update(values).where(Debtor.id == account.debtor)  # type: ignore[arg-type]


async def make_claim(
    account: Account, amount: int, paid_on: dt.date, invoice_ids: Sequence[int] = ()
) -> PaymentClaim:
    claim = PaymentClaim(
        account=account.id,
        amount=amount,
        paid_on=paid_on,
        method="transferencia",
        invoice_ids=list(invoice_ids),
    )
    await claim.save()
    return claim


async def make_staff() -> StaffUser:
    staff = StaffUser(
        email=f"finanzas-{uid().lower()}@example.com", name="Finanzas", role="finance"
    )
    await staff.save()
    return staff


async def insert_line(
    amount: int,
    *,
    currency: str = "ARS",
    booked_on: dt.date = dt.date(2026, 11, 3),
    reference: str = "",
    payer_name: str = "",
) -> BankLine:
    """An unmatched line stored directly (no matching runs), for the queue's operations."""
    bank_import = BankImport(filename="prueba.csv", sha256=secrets.token_hex(32), rows=1)
    await bank_import.save()
    line = BankLine(
        bank_import=bank_import.id,
        line_no=2,
        transaction_id=uid("TX-"),
        booked_on=booked_on,
        amount=amount,
        currency=currency,
        reference=reference,
        payer_name=payer_name,
    )
    await line.save()
    return line
