"""Indexes and the exposure snapshot behind the back office's work queue and search.

The work queue (`saldo.services.work_queue`) reads the open items of a whole portfolio in one
query; partial indexes keep each of its sources proportional to what is open today, not to
history:

- `task_open_account` (covering: kind and dates, so open tasks are an index-only scan),
  `payment_plan_awaiting`, `dispute_open_sla`, `payment_claim_open`;
- `account_callback_due` (next action date and id, so due callbacks are an index-only scan);
- `account_assignee` (the "mine" and assignee filters).

`account_exposure` is a materialized view: per account that owes something, its balance and
its risk × balance ("exposure": risk score × balance in thousandths of the currency's large
balance, `saldo.rules.risk.LARGE_BALANCE`, capped at a thousand large balances), so accounts
in different currencies compare. Summing a million accounts' ledgers takes about a second;
the queue orders by this snapshot instead, which the worker refreshes every few minutes
(`REFRESH MATERIALIZED VIEW CONCURRENTLY`, which needs the unique index).

Search (`saldo.services.search`): `saldo_fold()` lower-cases and strips the accents Spanish
and Portuguese names carry (without the `unaccent` extension), and four expression indexes:
debtor name words (GIN over a `simple` text-search vector), document number letters and
digits, phone digits reversed (a suffix match as a prefix match) and invoice number.
"""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.engine import engine_finder

ID = "2026-11-25T18:30:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "work queue and search indexes, account exposure snapshot"

_ACCENTED = "ÁÀÂÄÃÅáàâäãåÉÈÊËéèêëÍÌÎÏíìîïÓÒÔÖÕóòôöõÚÙÛÜúùûüÑñÇçÝýÿ"
_PLAIN = "aaaaaaaaaaaaeeeeeeeeiiiiiiiioooooooooouuuuuuuunnccyyy"
_LARGE = {
    "ARS": 100_000_000,
    "MXN": 2_000_000,
    "COP": 400_000_000,
    "PEN": 400_000,
    "UYU": 4_000_000,
    "BRL": 500_000,
    "EUR": 100_000,
    "USD": 100_000,
    "CLP": 1_000_000,
    "PYG": 7_500_000,
}
_LARGE_SQL = (
    "(CASE a.currency "
    + " ".join(f"WHEN '{c}' THEN {v}" for c, v in _LARGE.items())
    + " ELSE 100000 END)"
)

FORWARDS = [
    "CREATE INDEX account_assignee ON account (assignee)",
    "CREATE INDEX account_callback_due ON account (next_action_on, id) "
    "WHERE next_action_on IS NOT NULL",
    "CREATE INDEX task_open_account ON task (account) INCLUDE (kind, due_on, created_at) "
    "WHERE status = 'open'",
    "CREATE INDEX payment_plan_awaiting ON payment_plan (account) "
    "WHERE status IN ('proposed', 'offered')",
    "CREATE INDEX dispute_open_sla ON dispute (sla_due_at) WHERE resolved_at IS NULL",
    "CREATE INDEX payment_claim_open ON payment_claim (account) WHERE status = 'open'",
    f"""CREATE MATERIALIZED VIEW account_exposure AS
        SELECT a.id AS account, b.balance,
               floor(a.risk_score * least(b.balance::numeric, 1000::numeric * {_LARGE_SQL})
                     * 1000 / {_LARGE_SQL})::bigint AS exposure
        FROM account a
        JOIN (SELECT account, sum(amount)::bigint AS balance FROM ledger_entry
              GROUP BY account) b ON b.account = a.id
        WHERE b.balance > 0""",
    "CREATE UNIQUE INDEX account_exposure_account ON account_exposure (account)",
    "CREATE INDEX account_exposure_rank ON account_exposure (exposure DESC, account)",
    f"""CREATE FUNCTION saldo_fold(value text) RETURNS text
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        RETURN lower(translate(value, '{_ACCENTED}', '{_PLAIN}'))""",
    "CREATE INDEX debtor_name_words ON debtor "
    "USING gin (to_tsvector('simple'::regconfig, saldo_fold(name)))",
    "CREATE INDEX debtor_document_key ON debtor "
    "(regexp_replace(upper(document_number), '[^0-9A-Z]', '', 'g'))",
    "CREATE INDEX debtor_phone_tail ON debtor "
    "(reverse(regexp_replace(phone, '[^0-9]', '', 'g')) text_pattern_ops)",
    "CREATE INDEX invoice_number_upper ON invoice (upper(number) text_pattern_ops)",
]

BACKWARDS = [
    "DROP INDEX IF EXISTS invoice_number_upper",
    "DROP INDEX IF EXISTS debtor_phone_tail",
    "DROP INDEX IF EXISTS debtor_document_key",
    "DROP INDEX IF EXISTS debtor_name_words",
    "DROP FUNCTION IF EXISTS saldo_fold(text)",
    "DROP MATERIALIZED VIEW IF EXISTS account_exposure",
    "DROP INDEX IF EXISTS payment_claim_open",
    "DROP INDEX IF EXISTS dispute_open_sla",
    "DROP INDEX IF EXISTS payment_plan_awaiting",
    "DROP INDEX IF EXISTS task_open_account",
    "DROP INDEX IF EXISTS account_callback_due",
    "DROP INDEX IF EXISTS account_assignee",
]


async def forwards() -> MigrationManager:
    manager = MigrationManager(migration_id=ID, app_name="saldo", description=DESCRIPTION)

    async def run() -> None:
        for statement in FORWARDS:
            await engine_finder().run_ddl(statement)

    async def run_backwards() -> None:
        for statement in BACKWARDS:
            await engine_finder().run_ddl(statement)

    manager.add_raw(run)
    manager.add_raw_backwards(run_backwards)
    return manager
