import datetime

import asyncpg
import pytest

from saldo.services.migrate import pending_schema_changes
from saldo.tables import Account, Creditor, Debtor, LedgerEntry


async def test_tables_and_migrations_agree(db):
    assert await pending_schema_changes() == []


async def test_every_table_exists_after_migrate(db):
    from saldo.piccolo_app import APP_CONFIG

    conn = await asyncpg.connect(db.database_url)
    try:
        rows = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await conn.close()
    names = {r["table_name"] for r in rows}
    expected = {t._meta.tablename for t in APP_CONFIG.table_classes}
    assert expected <= names


async def _entry(suffix: str) -> LedgerEntry:
    creditor = Creditor(name=f"Ledger test {suffix}")
    await creditor.save()
    debtor = Debtor(creditor=creditor.id, external_id=suffix, name="Ñandú Pérez")
    await debtor.save()
    account = Account(creditor=creditor.id, debtor=debtor.id, currency="ARS")
    await account.save()
    entry = LedgerEntry(
        account=account.id,
        kind="charge",
        amount=12_345,
        currency="ARS",
        effective_date=datetime.date(2026, 1, 1),
    )
    await entry.save()
    return entry


async def test_ledger_refuses_update(db):
    entry = await _entry("upd")
    with pytest.raises(asyncpg.exceptions.RestrictViolationError, match="append-only"):
        await LedgerEntry.update({LedgerEntry.amount: 1}).where(LedgerEntry.id == entry.id)
    row = await LedgerEntry.select(LedgerEntry.amount).where(LedgerEntry.id == entry.id).first()
    assert row == {"amount": 12_345}


async def test_ledger_refuses_delete(db):
    entry = await _entry("del")
    with pytest.raises(asyncpg.exceptions.RestrictViolationError, match="append-only"):
        await LedgerEntry.delete().where(LedgerEntry.id == entry.id)
    assert await LedgerEntry.exists().where(LedgerEntry.id == entry.id)


async def test_ledger_idempotency_key_is_unique(db):
    entry = await _entry("idem")
    first = LedgerEntry(
        account=entry.account,
        kind="payment",
        amount=-100,
        currency="ARS",
        effective_date=datetime.date(2026, 1, 2),
        idempotency_key="mp:123:approved",
    )
    await first.save()
    again = LedgerEntry(
        account=entry.account,
        kind="payment",
        amount=-100,
        currency="ARS",
        effective_date=datetime.date(2026, 1, 2),
        idempotency_key="mp:123:approved",
    )
    with pytest.raises(asyncpg.exceptions.UniqueViolationError):
        await again.save()
