"""Automatic matching of bank lines to accounts, and posting what matched exactly once.

Rules, tried in this order on each unmatched line; the first that names exactly one account
wins, and a rule that finds more than one candidate stops the line (ambiguous lines are left
for finance, who see them as suggestions):

1. `reference` — a valid payment reference (`SAL-0001234-82`, see `saldo.references`) in the
   description names an account in the line's currency. Invoice numbers of that account also
   found in the description are paid first.
   `invoice_number` — otherwise, invoice numbers in the description that each name exactly one
   open invoice in the line's currency, all of one account.
2. `document_amount` — the payer's document (digits only) equals a debtor's document number
   and the amount equals exactly that account's balance or one open invoice's open amount.
3. `claim` — exactly one open "ya pagué" claim with the same amount and currency whose date
   is within ±3 days of the booking date; the claim becomes "matched" and its invoices are
   paid first.

Every match stores `match_rule` and a Spanish `match_note` that explains it. Posting runs in
one transaction per line that starts with `UPDATE bank_line ... WHERE status = 'unmatched'`:
whoever changes the row posts, a concurrent run waits on the row and then finds nothing to
do. The payment is also unique by ("bank", transaction_id) in `ledger.apply_payment`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from saldo.db import DB
from saldo.references import account_ids_in, payment_reference
from saldo.services.bank_posting import record_bank_payment
from saldo.services.bank_text import digits_only, invoice_tokens, mentions
from saldo.services.ledger import account_balance
from saldo.tables import BankLine, Invoice, PaymentClaim

__all__ = [
    "AUTOMATIC_RULES",
    "CLAIM_WINDOW_DAYS",
    "MIN_DOCUMENT_DIGITS",
    "RULE_CLAIM",
    "RULE_DOCUMENT",
    "RULE_INVOICE",
    "RULE_REFERENCE",
    "Match",
    "MatchRun",
    "OpenInvoice",
    "claim_invoice_ids",
    "decide",
    "invoices_by_number",
    "invoices_phrase",
    "match_lines",
    "match_unmatched_lines",
    "open_invoices_of",
]

RULE_REFERENCE: Final = "reference"
RULE_INVOICE: Final = "invoice_number"
RULE_DOCUMENT: Final = "document_amount"
RULE_CLAIM: Final = "claim"
AUTOMATIC_RULES: Final = (RULE_REFERENCE, RULE_INVOICE, RULE_DOCUMENT, RULE_CLAIM)
CLAIM_WINDOW_DAYS: Final = 3
#: Shorter documents are too easy to share by chance to identify a payer.
MIN_DOCUMENT_DIGITS: Final = 6
_BATCH: Final = 500

LINE_COLUMNS: Final = (
    "id, bank_import, line_no, transaction_id, booked_on, amount, currency, reference, "
    "payer_name, payer_document, status"
)


@dataclass(frozen=True, slots=True)
class Match:
    rule: str
    account_id: int
    invoice_ids: tuple[int, ...]
    note: str
    claim_id: int | None = None


@dataclass(frozen=True, slots=True)
class MatchRun:
    examined: int
    matched: tuple[tuple[int, Match], ...]  # (line id, match) posted by this run

    @property
    def matched_ids(self) -> list[int]:
        return [line_id for line_id, _ in self.matched]


@dataclass(frozen=True, slots=True)
class OpenInvoice:
    id: int
    number: str
    account: int
    currency: str
    due_date: dt.date
    open: int


@dataclass(frozen=True, slots=True)
class _Account:
    id: int
    currency: str
    debtor_name: str
    document: str


@dataclass
class _Facts:
    """What a batch of lines needs from big tables, read once per batch."""

    accounts: dict[int, _Account] = field(default_factory=dict)
    invoices: dict[str, list[OpenInvoice]] = field(default_factory=dict)  # upper(number)
    by_document: dict[str, list[_Account]] = field(default_factory=dict)  # digits


class _Ambiguous(Exception):
    """A rule found more than one candidate: the line is left for finance."""


class _Lost(Exception):
    """Someone else took what this match needed (the claim); roll the line back."""


# ---------------------------------------------------------------------------- running


async def match_lines(line_ids: Sequence[int], *, now: dt.datetime) -> MatchRun:
    """Match and post the given lines that are still unmatched."""
    examined = 0
    matched: list[tuple[int, Match]] = []
    ids = sorted(set(line_ids))
    for start in range(0, len(ids), _BATCH):
        lines = await BankLine.raw(
            f"SELECT {LINE_COLUMNS} FROM bank_line "
            "WHERE id = ANY({}) AND status = 'unmatched' ORDER BY id",
            ids[start : start + _BATCH],
        )
        examined += len(lines)
        facts = await _facts(lines)
        for line in lines:
            match = await decide(line, facts)
            if match is not None and await _post(line, match, now):
                matched.append((line["id"], match))
    return MatchRun(examined=examined, matched=tuple(matched))


async def match_unmatched_lines(*, now: dt.datetime) -> MatchRun:
    """Run the rules again over every unmatched line (after new invoices or claims)."""
    rows = await BankLine.raw("SELECT id FROM bank_line WHERE status = 'unmatched' ORDER BY id")
    return await match_lines([r["id"] for r in rows], now=now)


async def _post(line: Mapping[str, Any], match: Match, now: dt.datetime) -> bool:
    try:
        async with DB.transaction():
            won = await BankLine.raw(
                """
                UPDATE bank_line SET status = 'matched', account = {}, match_rule = {},
                                     match_note = {}, resolved_at = {}
                WHERE id = {} AND status = 'unmatched'
                RETURNING id
                """,
                match.account_id,
                match.rule,
                match.note,
                now,
                line["id"],
            )
            if not won:
                return False
            if match.claim_id is not None:
                claimed = await PaymentClaim.raw(
                    "UPDATE payment_claim SET status = 'matched' "
                    "WHERE id = {} AND status = 'open' RETURNING id",
                    match.claim_id,
                )
                if not claimed:
                    raise _Lost
            await record_bank_payment(
                line=line,
                account_id=match.account_id,
                provider_payment_id=line["transaction_id"],
                amount=line["amount"],
                invoice_ids=match.invoice_ids,
                rule=match.rule,
                note=match.note,
                now=now,
                details={"claim": match.claim_id} if match.claim_id is not None else None,
            )
    except _Lost:
        return False
    return True


# ---------------------------------------------------------------------------- deciding


async def decide(line: Mapping[str, Any], facts: _Facts | None = None) -> Match | None:
    """The rule that matches `line` to exactly one account, or None (no or several candidates)."""
    facts = facts if facts is not None else await _facts([line])
    try:
        for rule in (_by_reference, _by_invoice_number, _by_document, _by_claim):
            match = await rule(line, facts)
            if match is not None:
                return match
    except _Ambiguous:
        return None
    return None


async def _by_reference(line: Mapping[str, Any], facts: _Facts) -> Match | None:
    known = [facts.accounts[i] for i in account_ids_in(line["reference"]) if i in facts.accounts]
    if not known:
        return None
    if len(known) > 1 or known[0].currency != line["currency"]:
        raise _Ambiguous
    account = known[0]
    mentioned = _in_text_order(
        line["reference"],
        [
            inv
            for inv in await open_invoices_of(account.id)
            if mentions(line["reference"], inv.number)
        ],
    )
    note = f"Referencia {payment_reference(account.id)} en el concepto"
    if mentioned:
        note += f"; {invoices_phrase([inv.number for inv in mentioned])} en el concepto"
    return Match(RULE_REFERENCE, account.id, tuple(inv.id for inv in mentioned), note)


async def _by_invoice_number(line: Mapping[str, Any], facts: _Facts) -> Match | None:
    hits: list[OpenInvoice] = []
    for token in invoice_tokens(line["reference"]):
        found = [inv for inv in facts.invoices.get(token, []) if inv.currency == line["currency"]]
        if len(found) > 1:
            raise _Ambiguous
        if found and found[0] not in hits:
            hits.append(found[0])
    if not hits:
        return None
    if len({inv.account for inv in hits}) > 1:
        raise _Ambiguous
    note = (
        f"{invoices_phrase([inv.number for inv in hits])} en el concepto "
        "(única factura abierta con ese número)"
    )
    return Match(RULE_INVOICE, hits[0].account, tuple(inv.id for inv in hits), note)


async def _by_document(line: Mapping[str, Any], facts: _Facts) -> Match | None:
    digits = digits_only(line["payer_document"])
    if len(digits) < MIN_DOCUMENT_DIGITS:
        return None
    found: list[tuple[_Account, tuple[int, ...], str]] = []
    for account in facts.by_document.get(digits, []):
        if account.currency != line["currency"]:
            continue
        if await account_balance(account.id) == line["amount"]:
            found.append((account, (), "el importe es igual al saldo de la cuenta"))
            continue
        same = [inv for inv in await open_invoices_of(account.id) if inv.open == line["amount"]]
        if same:
            found.append(
                (
                    account,
                    (same[0].id,),
                    f"el importe es igual al saldo de la factura {same[0].number}",
                )
            )
    if not found:
        return None
    if len(found) > 1:
        raise _Ambiguous
    account, invoice_ids, why = found[0]
    note = (
        f"Documento del pagador {line['payer_document']} igual al de {account.debtor_name}; {why}"
    )
    return Match(RULE_DOCUMENT, account.id, invoice_ids, note)


async def _by_claim(line: Mapping[str, Any], facts: _Facts) -> Match | None:
    window = dt.timedelta(days=CLAIM_WINDOW_DAYS)
    claims = await PaymentClaim.raw(
        """
        SELECT c.id, c.account, c.paid_on, c.invoice_ids
        FROM payment_claim c JOIN account a ON a.id = c.account
        WHERE c.status = 'open' AND c.amount = {} AND a.currency = {}
          AND c.paid_on BETWEEN {} AND {}
        ORDER BY c.id
        LIMIT 2
        """,
        line["amount"],
        line["currency"],
        line["booked_on"] - window,
        line["booked_on"] + window,
    )
    if not claims:
        return None
    if len(claims) > 1:
        raise _Ambiguous
    claim = claims[0]
    invoice_ids = await _invoices_of_account(
        claim["account"], claim_invoice_ids(claim["invoice_ids"])
    )
    note = (
        f"Aviso «ya pagué» del deudor del {claim['paid_on']:%d/%m/%Y} por el mismo importe "
        f"(±{CLAIM_WINDOW_DAYS} días de la fecha del banco)"
    )
    return Match(RULE_CLAIM, claim["account"], tuple(invoice_ids), note, claim_id=claim["id"])


# ---------------------------------------------------------------------------- reading


async def _facts(lines: Sequence[Mapping[str, Any]]) -> _Facts:
    facts = _Facts()
    ref_ids = sorted({i for line in lines for i in account_ids_in(line["reference"])})
    tokens = sorted({t for line in lines for t in invoice_tokens(line["reference"])})
    documents = sorted(
        {
            digits
            for line in lines
            if len(digits := digits_only(line["payer_document"])) >= MIN_DOCUMENT_DIGITS
        }
    )
    if ref_ids:
        rows = await BankLine.raw(
            """SELECT a.id, a.currency, d.name, d.document_number
               FROM account a JOIN debtor d ON d.id = a.debtor WHERE a.id = ANY({})""",
            ref_ids,
        )
        facts.accounts = {r["id"]: _account(r) for r in rows}
    if tokens:
        facts.invoices = await invoices_by_number(tokens)
    if documents:
        rows = await BankLine.raw(
            """
            SELECT a.id, a.currency, d.name, d.document_number,
                   regexp_replace(d.document_number, '[^0-9]', '', 'g') AS digits
            FROM debtor d JOIN account a ON a.debtor = d.id
            WHERE regexp_replace(d.document_number, '[^0-9]', '', 'g') = ANY({})
            ORDER BY a.id
            """,
            documents,
        )
        for r in rows:
            facts.by_document.setdefault(r["digits"], []).append(_account(r))
    return facts


_OPEN_INVOICES_SQL: Final = """
    SELECT i.id, i.number, i.account, i.currency, i.due_date,
           (SELECT coalesce(sum(e.amount), 0) FROM ledger_entry e WHERE e.invoice = i.id)::bigint
             AS open
    FROM invoice i
"""


async def invoices_by_number(tokens: Sequence[str]) -> dict[str, list[OpenInvoice]]:
    """Open invoices whose number (upper-cased) is one of `tokens`, by upper-cased number."""
    rows = await Invoice.raw(
        f"""
        SELECT * FROM ({_OPEN_INVOICES_SQL} WHERE upper(i.number) = ANY({{}})) o
        WHERE o.open > 0 ORDER BY o.id
        """,
        list(tokens),
    )
    found: dict[str, list[OpenInvoice]] = {}
    for r in rows:
        found.setdefault(r["number"].upper(), []).append(_open_invoice(r))
    return found


async def open_invoices_of(account_id: int) -> list[OpenInvoice]:
    """An account's invoices with something left to pay, oldest due date first."""
    rows = await Invoice.raw(
        f"""
        SELECT * FROM ({_OPEN_INVOICES_SQL} WHERE i.account = {{}}) o
        WHERE o.open > 0 ORDER BY o.due_date, o.id
        """,
        account_id,
    )
    return [_open_invoice(r) for r in rows]


async def _invoices_of_account(account_id: int, invoice_ids: Sequence[int]) -> list[int]:
    if not invoice_ids:
        return []
    rows = await Invoice.raw(
        "SELECT id FROM invoice WHERE account = {} AND id = ANY({})", account_id, list(invoice_ids)
    )
    mine = {r["id"] for r in rows}
    return [i for i in invoice_ids if i in mine]


def claim_invoice_ids(raw: Any) -> list[int]:
    """A claim's `invoice_ids` JSON as a list of ints (ignoring anything else in it)."""
    value = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(value, list):
        return []
    return [int(v) for v in value if isinstance(v, int | str) and str(v).isdigit()]


def _account(r: Mapping[str, Any]) -> _Account:
    return _Account(r["id"], r["currency"], r["name"], r["document_number"])


def _open_invoice(r: Mapping[str, Any]) -> OpenInvoice:
    return OpenInvoice(
        r["id"], r["number"], r["account"], r["currency"], r["due_date"], int(r["open"])
    )


def _in_text_order(text: str, invoices: list[OpenInvoice]) -> list[OpenInvoice]:
    folded = text.upper()
    return sorted(invoices, key=lambda inv: folded.find(inv.number.upper()))


def invoices_phrase(numbers: Sequence[str]) -> str:
    """ "Factura A-1" or "Facturas A-1 y A-2" (Spanish)."""
    if len(numbers) == 1:
        return f"Factura {numbers[0]}"
    return f"Facturas {', '.join(numbers[:-1])} y {numbers[-1]}"
