"""Database-level rules the ORM cannot express.

- ledger_entry and audit_event are append-only: UPDATE and DELETE raise.
- ledger amounts are never zero; currencies are three upper-case letters.
- invoice lines keep their order unique per invoice.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-25T15:00:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "append-only ledger and audit log, checks"

FORWARDS = """
CREATE OR REPLACE FUNCTION saldo_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused (post a reversing entry instead)',
        TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER ledger_entry_append_only
    BEFORE UPDATE OR DELETE ON ledger_entry
    FOR EACH ROW EXECUTE FUNCTION saldo_append_only();
CREATE TRIGGER ledger_entry_no_truncate
    BEFORE TRUNCATE ON ledger_entry
    FOR EACH STATEMENT EXECUTE FUNCTION saldo_append_only();
CREATE TRIGGER audit_event_append_only
    BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION saldo_append_only();
CREATE TRIGGER audit_event_no_truncate
    BEFORE TRUNCATE ON audit_event
    FOR EACH STATEMENT EXECUTE FUNCTION saldo_append_only();

ALTER TABLE ledger_entry ADD CONSTRAINT ledger_entry_amount_not_zero CHECK (amount <> 0);
ALTER TABLE ledger_entry ADD CONSTRAINT ledger_entry_currency_iso
    CHECK (currency ~ '^[A-Z]{3}$');
ALTER TABLE account ADD CONSTRAINT account_currency_iso CHECK (currency ~ '^[A-Z]{3}$');
ALTER TABLE invoice_line ADD CONSTRAINT invoice_line_position_unique UNIQUE (invoice, position);
CREATE INDEX debtor_email_lower ON debtor (lower(email)) WHERE email <> '';
CREATE INDEX ledger_entry_account_date ON ledger_entry (account, effective_date);
"""

BACKWARDS = """
DROP INDEX IF EXISTS ledger_entry_account_date;
DROP INDEX IF EXISTS debtor_email_lower;
ALTER TABLE invoice_line DROP CONSTRAINT IF EXISTS invoice_line_position_unique;
ALTER TABLE account DROP CONSTRAINT IF EXISTS account_currency_iso;
ALTER TABLE ledger_entry DROP CONSTRAINT IF EXISTS ledger_entry_currency_iso;
ALTER TABLE ledger_entry DROP CONSTRAINT IF EXISTS ledger_entry_amount_not_zero;
DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event;
DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event;
DROP TRIGGER IF EXISTS ledger_entry_no_truncate ON ledger_entry;
DROP TRIGGER IF EXISTS ledger_entry_append_only ON ledger_entry;
DROP FUNCTION IF EXISTS saldo_append_only();
"""


def _statements(sql: str) -> list[str]:
    """Split on blank-line-free `;` ends, keeping the $$-quoted function body whole."""
    parts, current, in_body = [], [], False
    for line in sql.strip().splitlines():
        current.append(line)
        if line.count("$$") % 2:
            in_body = not in_body
        if not in_body and line.rstrip().endswith(";"):
            parts.append("\n".join(current))
            current = []
    return parts


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="saldo", description=DESCRIPTION)

    async def run() -> None:
        for statement in _statements(FORWARDS):
            await engine_finder().run_ddl(statement)

    async def run_backwards() -> None:
        for statement in _statements(BACKWARDS):
            await engine_finder().run_ddl(statement)

    manager.add_raw(run)
    manager.add_raw_backwards(run_backwards)
    return manager
