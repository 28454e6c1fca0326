"""SQL of the portfolio import (see `saldo.services.portfolio_import`).

Everything works on a schema of its own per run, `import_run_<id>`, dropped at the end. Its tables
are UNLOGGED (no WAL; several connections load and summarise them at once) and keep the files as
text:

- `debtor_rows`: the debtors file, one row per data line, `line` = physical line (header = 1).
- `line_rows`: a view over the invoices file, COPYed as chunk tables `line_rows_<k>` in parallel.
  Each chunk is processed on the connection that loaded it: `<chunk>_amount` (its distinct
  amount texts), `<chunk>_typed` (its lines typed, totalled and hashed; view `line_typed`) and
  `<chunk>_head` (partial invoice heads); the main transaction merges the heads.

Validation is set-based and exact: every check yields the lowest line it rejects, and the import
reports the lowest of those. Per-row work is avoided by checking distinct values (amounts,
dates, currencies, time zones) and whole invoices (one `invoice_head` row per invoice number and
distinct debtor/currency/date combination) instead of every row.

Functions here only build SQL text; statements that need the creditor id take it as `$1`.
"""

from __future__ import annotations

from collections.abc import Sequence

from saldo.tables import Debtor, Invoice, InvoiceLine

DEBTOR_COLUMNS = (
    "external_id",
    "name",
    "document_type",
    "document_number",
    "email",
    "phone",
    "whatsapp",
    "language",
    "timezone",
    "country",
)
INVOICE_COLUMNS = (
    "invoice_number",
    "debtor_external_id",
    "currency",
    "issue_date",
    "due_date",
    "description",
    "quantity",
    "unit_price",
    "tax_rate",
)

#: Debtor fields left empty in the file take the table's defaults.
DEBTOR_DEFAULTS = {
    "language": str(Debtor.language.default),
    "timezone": str(Debtor.timezone.default),
    "country": str(Debtor.country.default),
}

# Longest text a message quotes from the file.
_SHOWN = 40


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _shown(expr: str) -> str:
    """SQL for `expr` quoted in an error message, cut to a readable length."""
    return (
        f"""'"' || left({expr}, {_SHOWN}) || CASE WHEN char_length({expr}) > {_SHOWN} """
        f"""THEN '…"' ELSE '"' END"""
    )


def _decimal_pattern(column: object) -> tuple[str, str]:
    """Regex of a non-negative decimal fitting `column` (a Numeric), and its human form."""
    precision, scale = column.digits  # type: ignore[attr-defined]
    whole = precision - scale
    pattern = rf"^[0-9]{{1,{whole}}}(\.[0-9]{{1,{scale}}})?$"
    return pattern, f'up to {whole} digits, then optionally "." and up to {scale} decimals'


AMOUNT_PATTERNS = {
    "quantity": _decimal_pattern(InvoiceLine.quantity),
    "unit_price": _decimal_pattern(InvoiceLine.unit_price),
    "tax_rate": _decimal_pattern(InvoiceLine.tax_rate),
}
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
BIGINT_MAX = 2**63 - 1
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
LANGUAGE_PATTERN = r"^[a-z]{2}(-[A-Z]{2})?$"
COUNTRY_PATTERN = r"^[A-Z]{2}$"


def first_row(sql: str) -> str:
    """The row of `sql` (columns line, reason) with the lowest line.

    The query is materialized first: planned under `ORDER BY line LIMIT 1`, PostgreSQL would
    pick nested loops hoping to stop early, which is hopeless when no row qualifies.
    """
    return (
        f"WITH found AS MATERIALIZED ({sql}) SELECT line, reason FROM found ORDER BY line LIMIT 1"
    )


def _typmod(column: object) -> str:
    precision, scale = column.digits  # type: ignore[attr-defined]
    return f"numeric({precision}, {scale})"


def _max_length(table: type, column: str) -> int:
    return int(getattr(table, column).length)


# ---------------------------------------------------------------------------- staging


def create_schema(s: str) -> str:
    return f"CREATE SCHEMA {s}"


def drop_schema(s: str) -> str:
    return f"DROP SCHEMA IF EXISTS {s} CASCADE"


STALE_SCHEMAS = r"""
SELECT n.nspname FROM pg_namespace n
WHERE n.nspname ~ '^import_run_[0-9]+$'
  AND NOT EXISTS (
      SELECT 1 FROM import_run r
      WHERE r.id = substr(n.nspname, 12)::int AND r.status = 'running'
        AND r.started_at > now() - interval '1 day')
"""


def create_chunk(s: str, table: str, columns: Sequence[str]) -> str:
    """A staging table; `line` counts its rows from 1 in COPY order."""
    fields = ", ".join(f"{c} text" for c in columns)
    return (
        f"CREATE UNLOGGED TABLE {s}.{table} "
        f"(line bigint GENERATED ALWAYS AS IDENTITY, {fields}) "
        "WITH (autovacuum_enabled = off)"
    )


def create_rows_view(
    s: str, view: str, chunks: Sequence[tuple[str, int]], cols: Sequence[str]
) -> str:
    """One view over the chunk tables; `offset` turns a chunk's row number into a file line."""
    fields = ", ".join(cols)
    parts = [
        f"SELECT line + {offset} AS line, {fields} FROM {s}.{table}" for table, offset in chunks
    ]
    return f"CREATE VIEW {s}.{view} AS " + " UNION ALL ".join(parts)


def create_reference_tables(s: str) -> list[str]:
    """Currencies (code, exponent; filled by the caller) and the server's time zone names."""
    return [
        f"CREATE UNLOGGED TABLE {s}.currency (code text PRIMARY KEY, exponent int NOT NULL, "
        "factor numeric NOT NULL)",
        f"CREATE UNLOGGED TABLE {s}.time_zone AS SELECT DISTINCT name FROM pg_timezone_names",
    ]


def fill_currencies(s: str) -> str:
    """$1 codes, $2 exponents. `factor` = 10^(exponent - 2) turns
    `quantity × unit_price × (100 + tax_rate)` into minor units."""
    return (
        f"INSERT INTO {s}.currency (code, exponent, factor) "
        "SELECT code, exponent, power(10::numeric, exponent - 2) "
        "FROM unnest($1::text[], $2::int[]) AS c(code, exponent)"
    )


def _factor(exponents: dict[str, int], column: str) -> str:
    """Inline `factor` of a currency column (unknown codes get 1; they are rejected anyway)."""
    cases = " ".join(
        f"WHEN {_literal(code)} THEN {10 ** (e - 2) if e >= 2 else '0.' + '0' * (1 - e) + '1'}"
        for code, e in sorted(exponents.items())
        if e != 2
    )
    return f"CASE {column} {cases} ELSE 1 END" if cases else "1"


def summarise_amounts(s: str, chunk: str) -> str:
    """Distinct amount texts of one chunk (checked once each, never once per row)."""
    parts = " UNION ALL ".join(
        f"SELECT DISTINCT '{c}' AS field, {c} AS value FROM {s}.{chunk}" for c in AMOUNT_PATTERNS
    )
    return f"CREATE UNLOGGED TABLE {s}.{chunk}_amount AS {parts}"


def amounts_are_decimals(s: str, chunk: str) -> str:
    """Whether every distinct amount text of the chunk is a plain non-negative decimal."""
    bad = " OR ".join(
        f"(field = '{c}' AND value !~ '{pattern}')" for c, (pattern, _) in AMOUNT_PATTERNS.items()
    )
    return f"SELECT NOT EXISTS (SELECT 1 FROM {s}.{chunk}_amount WHERE {bad})"


# md5 of the line count, the sum of the lines' 64-bit hashes, and the sum of position × 31-bit
# hash with positions counted from the invoice's first row (see `create_invoice_heads`).
_DIGEST = "md5(line_count || ':' || h_sum || ':' || (kl_sum - (first_line - 1) * k_sum))"


def type_lines(s: str, chunk: str, offset: int, exponents: dict[str, int]) -> str:
    """One chunk's lines typed, with their total in minor units and the hash behind the digest.

    Only for a chunk whose amounts all passed `amounts_are_decimals`. A line's total is
    `round(quantity × unit_price × (100 + tax_rate) × 10^(exponent − 2))`, rounded half away
    from zero (half-up for these non-negative amounts), as `saldo.money.line_total`; an absurd
    one beyond bigint is capped there, and its invoice refused as too large. `h` hashes
    (description, quantity, unit_price, tax_rate) as written.
    """
    return f"""
CREATE UNLOGGED TABLE {s}.{chunk}_typed WITH (autovacuum_enabled = off) AS
SELECT line, invoice_number, debtor_external_id, currency, issue_date, due_date, description,
       quantity, unit_price, tax_rate,
       least(round(quantity * unit_price * (100 + tax_rate) * {_factor(exponents, "currency")}),
             {BIGINT_MAX})::bigint AS total,
       h
FROM (
    SELECT line + {offset} AS line, invoice_number, debtor_external_id, currency, issue_date,
           due_date, description,
           quantity::{_typmod(InvoiceLine.quantity)} AS quantity,
           unit_price::{_typmod(InvoiceLine.unit_price)} AS unit_price,
           tax_rate::{_typmod(InvoiceLine.tax_rate)} AS tax_rate,
           hashtextextended(description, hashtextextended(quantity,
               hashtextextended(unit_price, hashtextextended(tax_rate, 0)))) AS h
    FROM {s}.{chunk}
    OFFSET 0
) cast_once
"""


def summarise_invoices(s: str, chunk: str, *, typed: bool, offset: int = 0) -> str:
    """Partial invoice heads of one chunk: lines, total and the sums behind the digest.

    From the typed chunk when its amounts are valid; otherwise from the text rows, without
    total nor digest (the import is refused then, only line numbers matter). `h_sum` adds the
    lines' 64-bit hashes; `k_sum` and `kl_sum` add a 31-bit part of them, plain and times the
    line number, so that a line's position inside its invoice counts.
    """
    keys = "invoice_number, debtor_external_id, currency, issue_date, due_date"
    if not typed:
        return f"""
CREATE UNLOGGED TABLE {s}.{chunk}_head AS
SELECT {keys}, min(line) + {offset} AS first_line, max(line) + {offset} AS last_line,
       count(*) AS line_count, NULL::numeric AS total, NULL::numeric AS h_sum,
       NULL::numeric AS k_sum, NULL::numeric AS kl_sum, NULL::text AS digest
FROM {s}.{chunk}
GROUP BY {keys}
"""
    return f"""
CREATE UNLOGGED TABLE {s}.{chunk}_head AS
SELECT *, {_DIGEST} AS digest FROM (
    SELECT {keys}, min(line) AS first_line, max(line) AS last_line, count(*) AS line_count,
           sum(total) AS total, sum(h) AS h_sum, sum(h >> 33) AS k_sum,
           sum(line * (h >> 33)) AS kl_sum
    FROM {s}.{chunk}_typed
    GROUP BY {keys}
) sums
"""


def create_typed_view(s: str, chunks: Sequence[str]) -> str:
    parts = " UNION ALL ".join(f"SELECT * FROM {s}.{chunk}_typed" for chunk in chunks)
    return f"CREATE VIEW {s}.line_typed AS {parts}"


def line_with_field_break(s: str, table: str, columns: Sequence[str]) -> str:
    """The first staged row holding a line break (the file had one inside a quoted field)."""
    test = " OR ".join(f"{c} ~ '[\\r\\n]'" for c in columns)
    return f"SELECT min(line) FROM {s}.{table} WHERE {test}"


# ---------------------------------------------------------------------------- debtors: checks


def debtor_row_problem(s: str) -> str:
    """The first debtor row with a problem of its own, and the reason."""
    lengths = "\n".join(
        f"WHEN char_length(r.{c}) > {_max_length(Debtor, c)} "
        f"THEN '{c} longer than {_max_length(Debtor, c)} characters'"
        for c in DEBTOR_COLUMNS
        if c not in ("external_id", "name")
    )
    return first_row(f"""
SELECT line, reason FROM (
    SELECT r.line, CASE
        WHEN r.external_id = '' THEN 'empty external_id'
        WHEN char_length(r.external_id) > {_max_length(Debtor, "external_id")}
            THEN 'external_id longer than {_max_length(Debtor, "external_id")} characters'
        WHEN btrim(r.name) = '' THEN 'empty name'
        WHEN char_length(r.name) > {_max_length(Debtor, "name")}
            THEN 'name longer than {_max_length(Debtor, "name")} characters'
        {lengths}
        WHEN r.email <> '' AND r.email !~ '{EMAIL_PATTERN}'
            THEN 'malformed email ' || {_shown("r.email")}
        WHEN r.language <> '' AND r.language !~ '{LANGUAGE_PATTERN}'
            THEN 'malformed language ' || {_shown("r.language")} || ' (expected like es or es-AR)'
        WHEN r.timezone <> '' AND tz.name IS NULL
            THEN 'unknown time zone ' || {_shown("r.timezone")}
        WHEN r.country <> '' AND r.country !~ '{COUNTRY_PATTERN}'
            THEN 'malformed country ' || {_shown("r.country")}
                 || ' (expected two upper-case letters, like AR)'
    END AS reason
    FROM {s}.debtor_rows r LEFT JOIN {s}.time_zone tz ON tz.name = r.timezone
) checked
WHERE reason IS NOT NULL
""")


def debtor_duplicate(s: str) -> str:
    """The first row repeating an external_id seen on an earlier line."""
    return first_row(f"""
SELECT r.line, 'duplicated external_id ' || {_shown("r.external_id")}
       || ' (first on line ' || d.first_line || ')' AS reason
FROM {s}.debtor_rows r
JOIN (SELECT external_id, min(line) AS first_line FROM {s}.debtor_rows
      GROUP BY external_id HAVING count(*) > 1) d
  ON d.external_id = r.external_id AND r.line > d.first_line
""")


# ---------------------------------------------------------------------------- invoices: checks


def bad_amounts(s: str, chunks: Sequence[str]) -> str:
    """Distinct quantity / unit_price / tax_rate texts that are not plain non-negative decimals."""
    values = " UNION ".join(f"SELECT field, value FROM {s}.{chunk}_amount" for chunk in chunks)
    cases = "\n        ".join(
        f"WHEN field = '{c}' AND value !~ '{pattern}' THEN CASE "
        f"WHEN value ~ '^-' AND substr(value, 2) ~ '{pattern}' "
        f"THEN 'negative {c} ' || {_shown('value')} "
        f"ELSE 'malformed {c} ' || {_shown('value')} || ' (expected {human})' END"
        for c, (pattern, human) in AMOUNT_PATTERNS.items()
    )
    return f"""
CREATE UNLOGGED TABLE {s}.bad_amount AS
SELECT field, value, reason FROM (
    SELECT field, value, CASE
        {cases}
    END AS reason
    FROM ({values}) v
) checked
WHERE reason IS NOT NULL
"""


def first_bad_amount(s: str) -> str:
    """The first invoice row using a value of `bad_amount` (in field order)."""
    return first_row(f"""
SELECT l.line, coalesce(q.reason, p.reason, t.reason) AS reason
FROM {s}.line_rows l
LEFT JOIN {s}.bad_amount q ON q.field = 'quantity' AND q.value = l.quantity
LEFT JOIN {s}.bad_amount p ON p.field = 'unit_price' AND p.value = l.unit_price
LEFT JOIN {s}.bad_amount t ON t.field = 'tax_rate' AND t.value = l.tax_rate
WHERE q.value IS NOT NULL OR p.value IS NOT NULL OR t.value IS NOT NULL
""")


def create_invoice_heads(s: str, chunks: Sequence[str]) -> list[str]:
    """`invoice_head`: one row per invoice number and distinct (debtor, currency, dates), a
    single one per invoice in a valid file.

    It is the parent of the chunks' partial heads (no copy); `repeated_number` lists the numbers
    with more than one row there: invoices straddling two chunks, or rows that disagree.

    `digest` fingerprints an invoice's lines as written: md5 of the line count, the sum of their
    64-bit hashes, and the sum of position × 31-bit hash, positions counted from the invoice's
    first row. Moving the invoice within the file changes nothing; editing, adding, removing or
    reordering its lines changes the digest.
    """
    return [
        f"CREATE UNLOGGED TABLE {s}.invoice_head (LIKE {s}.{chunks[0]}_head)",
        *(f"ALTER TABLE {s}.{chunk}_head INHERIT {s}.invoice_head" for chunk in chunks),
        f"CREATE UNLOGGED TABLE {s}.repeated_number AS SELECT invoice_number "
        f"FROM {s}.invoice_head GROUP BY invoice_number HAVING count(*) > 1",
    ]


def merge_repeated_heads(s: str) -> list[str]:
    """Sum the partial heads of repeated invoice numbers into one row per distinct head."""
    keys = "invoice_number, debtor_external_id, currency, issue_date, due_date"
    repeated = f"invoice_number IN (SELECT invoice_number FROM {s}.repeated_number)"
    return [
        f"""
CREATE UNLOGGED TABLE {s}.merged_head AS
SELECT *, {_DIGEST} AS digest FROM (
    SELECT {keys}, min(first_line) AS first_line, max(last_line) AS last_line,
           sum(line_count) AS line_count, sum(total) AS total, sum(h_sum) AS h_sum,
           sum(k_sum) AS k_sum, sum(kl_sum) AS kl_sum
    FROM {s}.invoice_head WHERE {repeated}
    GROUP BY {keys}
) sums
""",
        f"DELETE FROM {s}.invoice_head WHERE {repeated}",
        f"INSERT INTO {s}.invoice_head SELECT * FROM {s}.merged_head",
    ]


def create_date_values(s: str) -> str:
    """Each distinct date text of the invoices, its value, or why it is not a date."""
    days_in_month = """CASE WHEN m IN (4, 6, 9, 11) THEN 30
             WHEN m = 2 THEN CASE WHEN (y % 4 = 0 AND y % 100 <> 0) OR y % 400 = 0
                                  THEN 29 ELSE 28 END
             ELSE 31 END"""
    return f"""
CREATE UNLOGGED TABLE {s}.date_value AS
SELECT t AS text, CASE WHEN problem IS NULL THEN t::date END AS value, problem
FROM (
    SELECT t, CASE
        WHEN t !~ '{DATE_PATTERN}' THEN 'expected YYYY-MM-DD'
        WHEN y < 1 OR m NOT BETWEEN 1 AND 12 OR d < 1 OR d > {days_in_month}
            THEN 'no such date'
    END AS problem
    FROM (
        SELECT t,
               CASE WHEN t ~ '{DATE_PATTERN}' THEN substr(t, 1, 4)::int END AS y,
               CASE WHEN t ~ '{DATE_PATTERN}' THEN substr(t, 6, 2)::int END AS m,
               CASE WHEN t ~ '{DATE_PATTERN}' THEN substr(t, 9, 2)::int END AS d
        FROM (SELECT issue_date AS t FROM {s}.invoice_head
              UNION SELECT due_date FROM {s}.invoice_head) dates
    ) parts
) checked
"""


def invoice_head_problem(s: str) -> str:
    """The first invoice row whose number, debtor, currency or dates are wrong in themselves."""
    number_max = _max_length(Invoice, "number")
    debtor_max = _max_length(Debtor, "external_id")
    return first_row(f"""
SELECT line, reason FROM (
    SELECT h.first_line AS line, CASE
        WHEN btrim(h.invoice_number) = '' THEN 'empty invoice_number'
        WHEN char_length(h.invoice_number) > {number_max}
            THEN 'invoice_number longer than {number_max} characters'
        WHEN h.debtor_external_id = '' THEN 'empty debtor_external_id'
        WHEN char_length(h.debtor_external_id) > {debtor_max}
            THEN 'debtor_external_id longer than {debtor_max} characters'
        WHEN c.code IS NULL THEN 'unknown currency ' || {_shown("h.currency")}
        WHEN di.problem IS NOT NULL
            THEN 'bad issue_date ' || {_shown("h.issue_date")} || ' (' || di.problem || ')'
        WHEN dd.problem IS NOT NULL
            THEN 'bad due_date ' || {_shown("h.due_date")} || ' (' || dd.problem || ')'
        WHEN dd.value < di.value
            THEN 'due_date ' || h.due_date || ' is before issue_date ' || h.issue_date
        WHEN h.total >= {BIGINT_MAX} THEN 'invoice total too large'
    END AS reason
    FROM {s}.invoice_head h
    LEFT JOIN {s}.currency c ON c.code = h.currency
    JOIN {s}.date_value di ON di.text = h.issue_date
    JOIN {s}.date_value dd ON dd.text = h.due_date
) checked
WHERE reason IS NOT NULL
""")


def invoice_split_exists(s: str) -> str:
    """Whether an invoice number still has several heads after merging: its rows disagree."""
    return f"""
SELECT EXISTS (SELECT 1 FROM {s}.merged_head GROUP BY invoice_number HAVING count(*) > 1)
"""


def invoice_disagreement(s: str) -> str:
    """The first row of an invoice whose debtor, currency or dates differ from its first row."""
    return first_row(f"""
WITH ranked AS (
    SELECT h.*, min(first_line) OVER (PARTITION BY invoice_number) AS invoice_first
    FROM {s}.invoice_head h
    WHERE invoice_number IN (
        SELECT invoice_number FROM {s}.invoice_head GROUP BY 1 HAVING count(*) > 1)
)
SELECT o.first_line AS line, 'invoice ' || {_shown("o.invoice_number")}
       || ' disagrees with its line ' || f.first_line || ' on ' || CASE
           WHEN o.debtor_external_id <> f.debtor_external_id THEN 'debtor_external_id ('
               || {_shown("o.debtor_external_id")} || ' here, ' || {_shown("f.debtor_external_id")}
           WHEN o.currency <> f.currency THEN 'currency ('
               || {_shown("o.currency")} || ' here, ' || {_shown("f.currency")}
           WHEN o.issue_date <> f.issue_date THEN 'issue_date ('
               || {_shown("o.issue_date")} || ' here, ' || {_shown("f.issue_date")}
           ELSE 'due_date (' || {_shown("o.due_date")} || ' here, ' || {_shown("f.due_date")}
       END || ' there)' AS reason
FROM ranked o
JOIN ranked f ON f.invoice_number = o.invoice_number AND f.first_line = f.invoice_first
WHERE o.first_line <> o.invoice_first
""")


def create_pairs(s: str) -> str:
    """Each (debtor, currency) the invoices need, with the stored debtor and account, if any."""
    return f"""
CREATE UNLOGGED TABLE {s}.pair AS
SELECT p.debtor_external_id, p.currency, d.id AS debtor_id, a.id AS account_id,
       d.id IS NULL AS debtor_is_new, a.id IS NULL AS account_is_new
FROM (SELECT DISTINCT debtor_external_id, currency FROM {s}.invoice_head) p
LEFT JOIN debtor d ON d.creditor = $1 AND d.external_id = p.debtor_external_id
LEFT JOIN account a ON a.debtor = d.id AND a.currency = p.currency
"""


def unknown_debtor(s: str) -> str:
    """The first invoice row naming a debtor in neither the debtors file nor the database."""
    return first_row(f"""
WITH missing AS MATERIALIZED (
    SELECT DISTINCT p.debtor_external_id FROM {s}.pair p
    WHERE p.debtor_id IS NULL
      AND NOT EXISTS (SELECT 1 FROM {s}.debtor_rows r
                      WHERE r.external_id = p.debtor_external_id)
)
SELECT h.first_line AS line, 'unknown debtor ' || {_shown("h.debtor_external_id")} AS reason
FROM {s}.invoice_head h JOIN missing m ON m.debtor_external_id = h.debtor_external_id
""")


def create_invoice_match(s: str) -> str:
    """Each invoice of the file beside the stored invoice of the same number, if any."""
    return f"""
CREATE UNLOGGED TABLE {s}.invoice_match AS
SELECT h.*, i.id AS existing_id, i.account AS existing_account, i.lines_digest AS old_digest,
       i.issue_date AS old_issue_date, i.due_date AS old_due_date
FROM {s}.invoice_head h
LEFT JOIN invoice i ON i.creditor = $1 AND i.number = h.invoice_number
"""


def invoice_moves(s: str) -> str:
    """The first invoice imported before for another debtor or currency (another account)."""
    return first_row(f"""
WITH moved AS MATERIALIZED (
    SELECT m.first_line, m.invoice_number, m.debtor_external_id, m.currency,
           m.existing_account
    FROM {s}.invoice_match m
    JOIN {s}.pair p
      ON p.debtor_external_id = m.debtor_external_id AND p.currency = m.currency
    WHERE m.existing_id IS NOT NULL AND m.existing_account IS DISTINCT FROM p.account_id
)
SELECT m.first_line AS line, 'invoice ' || {_shown("m.invoice_number")}
       || ' was imported before for debtor ' || {_shown("d.external_id")} || ' in '
       || a.currency || '; it cannot move to debtor ' || {_shown("m.debtor_external_id")}
       || ' in ' || m.currency AS reason
FROM moved m JOIN account a ON a.id = m.existing_account JOIN debtor d ON d.id = a.debtor
""")


# ---------------------------------------------------------------------------- debtors: writes


def _debtor_value(column: str) -> str:
    if column in DEBTOR_DEFAULTS:
        return f"coalesce(nullif(r.{column}, ''), {_literal(DEBTOR_DEFAULTS[column])})"
    if column == "name":
        return "btrim(r.name)"
    return f"r.{column}"


def create_debtor_plan(s: str) -> str:
    """The debtors file as the rows to store, beside the stored debtor of the same external_id."""
    values = ", ".join(f"{_debtor_value(c)} AS {c}" for c in DEBTOR_COLUMNS)
    return f"""
CREATE UNLOGGED TABLE {s}.debtor_plan AS
SELECT r.line, d.id AS existing_id, {values}
FROM {s}.debtor_rows r LEFT JOIN debtor d ON d.creditor = $1 AND d.external_id = r.external_id
"""


def insert_new_debtors(s: str) -> str:
    cols = ", ".join(DEBTOR_COLUMNS)
    return f"""
INSERT INTO debtor (creditor, {cols})
SELECT $1, {cols} FROM {s}.debtor_plan WHERE existing_id IS NULL ORDER BY line
"""


def update_changed_debtors(s: str) -> str:
    changed = [c for c in DEBTOR_COLUMNS if c != "external_id"]
    sets = ", ".join(f"{c} = p.{c}" for c in changed)
    old = ", ".join(f"d.{c}::text" for c in changed)
    new = ", ".join(f"p.{c}" for c in changed)
    return f"""
UPDATE debtor d SET {sets}, updated_at = now()
FROM {s}.debtor_plan p
WHERE d.id = p.existing_id AND ({old}) IS DISTINCT FROM ({new})
"""


# ---------------------------------------------------------------------------- accounts


def fill_new_debtor_ids(s: str) -> str:
    return f"""
UPDATE {s}.pair p SET debtor_id = d.id
FROM debtor d
WHERE p.debtor_id IS NULL AND d.creditor = $1 AND d.external_id = p.debtor_external_id
"""


def lock_stored_debtors(s: str) -> str:
    """Key-share lock stored debtors that get a new account, as a foreign key check would."""
    return f"""
SELECT count(*) FROM (
    SELECT 1 FROM debtor d
    WHERE d.id IN (SELECT debtor_id FROM {s}.pair WHERE account_is_new AND NOT debtor_is_new)
    FOR KEY SHARE OF d
) locked
"""


def insert_new_accounts(s: str) -> str:
    """Open the missing accounts and note their ids in `pair`."""
    return f"""
WITH opened AS (
    INSERT INTO account (creditor, debtor, currency)
    SELECT $1, debtor_id, currency FROM {s}.pair WHERE account_is_new
    ORDER BY debtor_id, currency
    RETURNING id, debtor, currency
)
UPDATE {s}.pair p SET account_id = o.id
FROM opened o WHERE p.debtor_id = o.debtor AND p.currency = o.currency
"""


# ---------------------------------------------------------------------------- invoices


def create_invoice_plan(s: str, invoice_sequence: str) -> str:
    """The invoices to write: new ones (ids drawn in file order) and changed ones.

    `is_changed`: a stored invoice whose dates or lines (digest) differ; `write_lines`: the
    invoice is new or its lines changed. Unchanged invoices are left out.
    """
    return f"""
CREATE UNLOGGED TABLE {s}.invoice_plan AS
SELECT coalesce(existing_id, nextval({_literal(invoice_sequence)}::regclass)) AS id, o.*,
       existing_id IS NULL AS is_new, existing_id IS NOT NULL AS is_changed,
       existing_id IS NULL OR old_digest IS DISTINCT FROM digest AS write_lines
FROM (
    SELECT m.invoice_number, m.first_line, m.line_count, m.currency,
           m.issue_date::date AS issue_date, m.due_date::date AS due_date,
           m.total::bigint AS total, m.digest, c.factor, p.account_id, p.account_is_new,
           m.existing_id, m.old_digest
    FROM {s}.invoice_match m
    JOIN {s}.currency c ON c.code = m.currency
    JOIN {s}.pair p ON p.debtor_external_id = m.debtor_external_id AND p.currency = m.currency
    WHERE m.existing_id IS NULL
       OR (m.old_issue_date, m.old_due_date, m.old_digest::text)
          IS DISTINCT FROM (m.issue_date::date, m.due_date::date, m.digest)
    ORDER BY m.first_line
) o
"""


def lock_stored_accounts(s: str) -> str:
    """Key-share lock stored accounts that get invoices or entries, as a foreign key check would."""
    return f"""
SELECT count(*) FROM (
    SELECT 1 FROM account a
    WHERE a.id IN (SELECT account_id FROM {s}.invoice_plan
                   WHERE (is_new OR is_changed) AND NOT account_is_new)
    FOR KEY SHARE OF a
) locked
"""


def insert_new_invoices(s: str) -> str:
    """New invoices, in id order (the plan's physical order)."""
    return f"""
INSERT INTO invoice (id, creditor, account, number, currency, issue_date, due_date, total,
                     lines_digest)
SELECT id, $1, account_id, invoice_number, currency, issue_date, due_date, total, digest
FROM {s}.invoice_plan WHERE is_new
"""


def update_changed_invoices(s: str) -> str:
    return f"""
UPDATE invoice i
SET issue_date = p.issue_date, due_date = p.due_date, total = p.total,
    lines_digest = p.digest, updated_at = now()
FROM {s}.invoice_plan p
WHERE p.is_changed AND i.id = p.id
"""


def delete_replaced_lines(s: str) -> str:
    return f"""
DELETE FROM invoice_line l USING {s}.invoice_plan p
WHERE p.write_lines AND NOT p.is_new AND l.invoice = p.id
"""


def insert_lines(s: str, *, contiguous: bool) -> str:
    """Lines of new and changed invoices (typed and totalled by `type_lines`). When every
    invoice's rows are contiguous in the file (the usual export) a line's position is its
    distance from the invoice's first row; otherwise a window numbers them."""
    position = (
        "(l.line - p.first_line + 1)::int"
        if contiguous
        else "row_number() OVER (PARTITION BY p.id ORDER BY l.line)::int"
    )
    return f"""
INSERT INTO invoice_line (invoice, position, description, quantity, unit_price, tax_rate, total)
SELECT p.id, {position}, l.description, l.quantity, l.unit_price, l.tax_rate, l.total
FROM {s}.line_typed l JOIN {s}.invoice_plan p ON p.invoice_number = l.invoice_number
WHERE p.write_lines
"""


# ---------------------------------------------------------------------------- ledger


def charge_key_prefix() -> str:
    return "import:invoice:"


def post_charges(s: str) -> str:
    """$1 = basis (jsonb). One charge per new invoice with a non-zero total."""
    return f"""
INSERT INTO ledger_entry (account, invoice, kind, amount, currency, effective_date, description,
                          basis, idempotency_key, created_by)
SELECT account_id, id, 'charge', total, currency, issue_date, 'Factura ' || invoice_number,
       $1::jsonb, '{charge_key_prefix()}' || id, 'import'
FROM {s}.invoice_plan
WHERE is_new AND total <> 0
"""


def post_adjustments(s: str) -> str:
    """$1 = the import run id. Bring each changed invoice's import entries to its new total."""
    return f"""
INSERT INTO ledger_entry (account, invoice, kind, amount, currency, effective_date, description,
                          basis, idempotency_key, created_by)
SELECT p.account_id, p.id, 'adjustment', p.total - coalesce(e.posted, 0), p.currency,
       current_date, 'Ajuste de factura ' || p.invoice_number,
       jsonb_build_object('import_run', $1::int, 'previous_total', coalesce(e.posted, 0),
                          'total', p.total),
       '{charge_key_prefix()}' || p.id || ':run:' || $1::int, 'import'
FROM {s}.invoice_plan p
LEFT JOIN (
    SELECT e.invoice, sum(e.amount)::bigint AS posted FROM ledger_entry e
    WHERE e.invoice IN (SELECT id FROM {s}.invoice_plan WHERE is_changed)
      AND e.idempotency_key LIKE '{charge_key_prefix()}%'
    GROUP BY e.invoice
) e ON e.invoice = p.id
WHERE p.is_changed AND p.total <> coalesce(e.posted, 0)
ORDER BY p.id
"""
