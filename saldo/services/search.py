"""Find an account from what a caller says: a name, a document, an email, a phone, an invoice.

`search(q)` reads the query and asks only what it can be:

- name: every word is the beginning of a word of the debtor's name, ignoring case and accents
  ("mar perez" finds "María Pérez"): a `simple` text-search vector over `saldo_fold(name)`;
- document: its letters and digits equal the document's ("20.123.456" finds "20123456",
  "12345678-k" finds "12.345.678-K");
- email: the whole address, any case;
- phone: at least six digits, the end of the phone's digits ("11 5555 1234" finds
  "+54 9 11 5555-1234");
- invoice number: the beginning of it, any case;
- account: "#123" or a bare number is also the account with that id.

Each is an indexed lookup (migration 6: `debtor_name_words` GIN, `debtor_document_key`,
`debtor_email_lower`, `debtor_phone_tail`, `invoice_number_upper`), so a search costs the
same on a million debtors. Each kind returns at most `PER_KIND` accounts; when one has more,
the result says so (`truncated`) and shows the first `PER_KIND` by name — refine the query.
A debtor matched by person data lists each of their accounts (one per creditor and currency).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from saldo.services.statement import Amount, Formats, display_locale
from saldo.tables import Account

__all__ = ["MAX_QUERY", "MIN_QUERY", "PER_KIND", "SearchHit", "SearchResult", "search"]

MIN_QUERY: Final = 2
MAX_QUERY: Final = 100
PER_KIND: Final = 200
MAX_WORDS: Final = 8
MIN_PHONE_DIGITS: Final = 6
_MAX_ID: Final = 2**31 - 1
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True, slots=True)
class SearchHit:
    account_id: int
    debtor_id: int
    name: str
    document: str
    email: str
    phone: str
    creditor_name: str
    currency: str
    stage: str
    balance: Amount
    matched: tuple[str, ...]  # name, document, email, phone, invoice, account
    invoice_number: str  # the invoice that matched, if one did


@dataclass(frozen=True, slots=True)
class SearchResult:
    query: str
    hits: tuple[SearchHit, ...]
    kinds: tuple[str, ...]  # what the query was tried as
    truncated: bool
    too_short: bool = False


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


def _branches(q: str) -> tuple[list[str], list[Any], list[str]]:
    """SQL branches (account, kind, invoice number), their values, and the kinds tried."""
    sql: list[str] = []
    values: list[Any] = []
    kinds: list[str] = []
    limit = PER_KIND + 1
    by_debtor = "SELECT a.id AS account, '{kind}'::text AS kind, NULL::text AS invoice " \
        "FROM debtor d JOIN account a ON a.debtor = d.id WHERE {cond} LIMIT {limit}"  # fmt: skip
    words = [w for w in _WORD.findall(q) if w][:MAX_WORDS]
    digits = re.sub(r"\D", "", q)
    alnum = re.sub(r"[^0-9A-Za-z]", "", q).upper()
    has_letters = any(ch.isalpha() for ch in q)
    if "@" in q:
        kinds.append("email")
        sql.append(
            by_debtor.format(
                kind="email", cond="d.email <> '' AND lower(d.email) = lower({})", limit=limit
            )
        )
        values.append(q)
    elif words and has_letters:
        kinds.append("name")
        sql.append(
            by_debtor.format(
                kind="name",
                cond="to_tsvector('simple'::regconfig, saldo_fold(d.name)) "
                "@@ to_tsquery('simple'::regconfig, saldo_fold({}))",
                limit=limit,
            )
        )
        values.append(" & ".join(f"{w}:*" for w in words))
    if digits and len(alnum) >= MIN_QUERY and "@" not in q:
        kinds.append("document")
        sql.append(
            by_debtor.format(
                kind="document",
                cond="regexp_replace(upper(d.document_number), '[^0-9A-Z]', '', 'g') = {}",
                limit=limit,
            )
        )
        values.append(alnum)
        if len(digits) >= MIN_PHONE_DIGITS and not has_letters:
            kinds.append("phone")
            sql.append(
                by_debtor.format(
                    kind="phone",
                    cond="reverse(regexp_replace(d.phone, '[^0-9]', '', 'g')) LIKE {}",
                    limit=limit,
                )
            )
            values.append(_like_prefix(digits[::-1]))
        kinds.append("invoice")
        sql.append(
            "SELECT i.account, 'invoice'::text AS kind, i.number AS invoice FROM invoice i "
            f"WHERE upper(i.number) LIKE {{}} LIMIT {limit}"
        )
        values.append(_like_prefix(q.upper()))
    account = re.fullmatch(r"#?\s*([0-9]{1,10})", q)
    if account and 0 < int(account.group(1)) <= _MAX_ID:
        kinds.append("account")
        sql.append(
            "SELECT a.id AS account, 'account'::text AS kind, NULL::text AS invoice "
            "FROM account a WHERE a.id = {}"
        )
        values.append(int(account.group(1)))
    return sql, values, kinds


async def search(q: str, *, language: str = "es", limit: int = 50) -> SearchResult:
    """Accounts matching `q` (see the module docstring), by debtor name."""
    query = " ".join(q.split())[:MAX_QUERY]
    if len(query) < MIN_QUERY:
        return SearchResult(query, (), (), truncated=False, too_short=bool(query))
    branches, values, kinds = _branches(query)
    if not branches:
        return SearchResult(query, (), (), truncated=False)
    union = "\nUNION ALL\n".join(f"({b})" for b in branches)
    rows = await Account.raw(
        f"""
        WITH hits AS MATERIALIZED ({union}),
        counted AS (SELECT kind, count(*) AS n FROM hits GROUP BY kind),
        grouped AS (
            SELECT account, array_agg(DISTINCT kind) AS kinds, min(invoice) AS invoice
            FROM hits GROUP BY account
        )
        SELECT a.id AS account_id, a.currency, a.stage, d.id AS debtor_id, d.name,
               d.document_type, d.document_number, d.email, d.phone, d.country,
               c.name AS creditor_name, g.kinds, coalesce(g.invoice, '') AS invoice,
               (SELECT coalesce(sum(e.amount), 0) FROM ledger_entry e
                WHERE e.account = a.id)::bigint AS balance,
               (SELECT coalesce(max(n), 0) FROM counted) AS most
        FROM grouped g
        JOIN account a ON a.id = g.account
        JOIN debtor d ON d.id = a.debtor
        JOIN creditor c ON c.id = a.creditor
        ORDER BY lower(d.name), d.id, a.currency, a.id
        LIMIT {{}}
        """,
        *values,
        max(1, min(limit, PER_KIND)),
    )
    hits = tuple(_hit(r, language) for r in rows)
    most = max((int(r["most"]) for r in rows), default=0)
    return SearchResult(query, hits, tuple(kinds), truncated=most > PER_KIND or len(rows) > limit)


def _hit(r: dict[str, Any], language: str) -> SearchHit:
    fmt = Formats(str(r["currency"]), display_locale(language, str(r["country"])))
    order = ("account", "invoice", "document", "email", "phone", "name")
    kinds = set(r["kinds"] or ())
    return SearchHit(
        account_id=int(r["account_id"]),
        debtor_id=int(r["debtor_id"]),
        name=str(r["name"]),
        document=" ".join(x for x in (r["document_type"], r["document_number"]) if x),
        email=str(r["email"]),
        phone=str(r["phone"]),
        creditor_name=str(r["creditor_name"]),
        currency=str(r["currency"]),
        stage=str(r["stage"]),
        balance=fmt.money(int(r["balance"])),
        matched=tuple(k for k in order if k in kinds),
        invoice_number=str(r["invoice"]),
    )
