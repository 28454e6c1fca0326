"""Who an unmatched bank line may belong to: candidate accounts with a score and the reasons.

Only accounts in the line's currency are suggested (they are the only ones a line can be
assigned to). Points per piece of evidence, summed and capped at 100:

| evidence                                                     | points |
|--------------------------------------------------------------|--------|
| a valid payment reference of the account in the description  | 60     |
| reference-shaped text one typo away from the account's       | 35     |
| an open invoice of the account named in the description      | 40     |
| the payer's document equals the debtor's (digits only)       | 40     |
| payer and debtor names share words (Dice overlap ≥ 0.5)       | ≤ 30   |
| an open "ya pagué" claim for the same amount                  | 25 (+10 within ±3 days) |
| the amount equals the account's balance                       | 20     |
| the amount equals an open invoice's open amount               | 20     |

The exact-amount evidence is looked up for accounts found by the other evidence and for
unpaid invoices whose total is exactly the amount.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from saldo.errors import NotFound
from saldo.references import account_ids_in, payment_reference
from saldo.services.bank_matching import (
    CLAIM_WINDOW_DAYS,
    LINE_COLUMNS,
    MIN_DOCUMENT_DIGITS,
    claim_invoice_ids,
    invoices_by_number,
    open_invoices_of,
)
from saldo.services.bank_text import (
    digits_only,
    invoice_tokens,
    name_similarity,
    name_tokens,
    near_references,
)
from saldo.services.ledger import account_balance
from saldo.tables import Account, BankLine, Invoice, PaymentClaim

__all__ = ["MIN_NAME_SIMILARITY", "Suggestion", "suggestions"]

MIN_NAME_SIMILARITY: Final = 0.5
_MAX_CANDIDATES: Final = 30
_MAX_LOOKUP: Final = 20
_ACCENTED: Final = "áàäâãéèëêíìïîóòöôõúùüûñç"
_PLAIN: Final = "aaaaaeeeeiiiiooooouuuunc"


@dataclass(frozen=True, slots=True)
class Suggestion:
    account_id: int
    account_reference: str
    creditor_name: str
    debtor_name: str
    debtor_external_id: str
    currency: str
    balance: int
    invoice_ids: tuple[int, ...]  # invoices the evidence points at (to pay first)
    invoice_numbers: tuple[str, ...]
    score: int  # 0–100
    reasons: tuple[str, ...]


@dataclass
class _Candidate:
    points: float = 0.0
    reasons: list[str] = field(default_factory=list)
    invoices: dict[int, str] = field(default_factory=dict)  # id -> number

    def add(self, points: float, reason: str, invoices: dict[int, str] | None = None) -> None:
        if reason in self.reasons:
            return
        self.points += points
        self.reasons.append(reason)
        self.invoices.update(invoices or {})


_Pick = Callable[[int], _Candidate]


async def suggestions(line_id: int, *, limit: int = 10) -> list[Suggestion]:
    """Candidate accounts for a bank line, best first."""
    rows = await BankLine.raw(f"SELECT {LINE_COLUMNS} FROM bank_line WHERE id = {{}}", line_id)
    if not rows:
        raise NotFound(f"bank line {line_id} does not exist")
    line = rows[0]
    found: dict[int, _Candidate] = {}

    def candidate(account_id: int) -> _Candidate:
        return found.setdefault(account_id, _Candidate())

    currency = line["currency"]
    text = line["reference"]
    for account_id in await _in_currency(account_ids_in(text), currency):
        candidate(account_id).add(60, f"Referencia {payment_reference(account_id)} en el concepto")
    for shown, ids in near_references(text):
        for account_id in await _in_currency(ids, currency):
            candidate(account_id).add(
                35,
                f"Texto parecido a una referencia: «{shown}» (los dígitos de control no coinciden; "
                f"la de esta cuenta es {payment_reference(account_id)})",
            )
    tokens = invoice_tokens(text)
    if tokens:
        for invoices in (await invoices_by_number(tokens)).values():
            for inv in invoices:
                if inv.currency == currency:
                    candidate(inv.account).add(
                        40, f"Factura {inv.number} mencionada en el concepto", {inv.id: inv.number}
                    )
    await _by_document(line, candidate)
    await _by_name(line, candidate)
    await _by_claims(line, candidate)
    await _by_invoice_total(line, candidate)

    best = sorted(found.items(), key=lambda item: (-item[1].points, item[0]))[:_MAX_CANDIDATES]
    result = [await _suggestion(line, account_id, cand) for account_id, cand in best]
    result.sort(key=lambda s: (-s.score, s.account_id))
    return result[:limit]


async def _in_currency(account_ids: list[int], currency: str) -> list[int]:
    if not account_ids:
        return []
    rows = await Account.select(Account.id).where(
        Account.id.is_in(account_ids) & (Account.currency == currency)
    )
    known = {r["id"] for r in rows}
    return [i for i in account_ids if i in known]


async def _by_document(line: Mapping[str, Any], candidate: _Pick) -> None:
    digits = digits_only(line["payer_document"])
    if len(digits) < MIN_DOCUMENT_DIGITS:
        return
    rows = await Account.raw(
        """
        SELECT a.id FROM debtor d JOIN account a ON a.debtor = d.id
        WHERE a.currency = {} AND regexp_replace(d.document_number, '[^0-9]', '', 'g') = {}
        ORDER BY a.id LIMIT {}
        """,
        line["currency"],
        digits,
        _MAX_LOOKUP,
    )
    for r in rows:
        candidate(r["id"]).add(
            40, f"Documento del pagador ({line['payer_document']}) igual al del deudor"
        )


async def _by_name(line: Mapping[str, Any], candidate: _Pick) -> None:
    tokens = sorted(t for t in name_tokens(line["payer_name"]) if len(t) >= 3)
    if not tokens:
        return
    rows = await Account.raw(
        """
        SELECT a.id, d.name FROM debtor d JOIN account a ON a.debtor = d.id
        WHERE a.currency = {} AND translate(lower(d.name), {}, {}) LIKE ANY({}::text[])
        ORDER BY a.id LIMIT 200
        """,
        line["currency"],
        _ACCENTED,
        _PLAIN,
        [f"%{t}%" for t in tokens],
    )
    for r in rows:
        similarity = name_similarity(line["payer_name"], r["name"])
        if similarity >= MIN_NAME_SIMILARITY:
            candidate(r["id"]).add(
                30 * similarity,
                f"Nombre parecido: «{line['payer_name']}» y «{r['name']}» "
                f"({round(similarity * 100)} % de palabras en común)",
            )


async def _by_claims(line: Mapping[str, Any], candidate: _Pick) -> None:
    rows = await PaymentClaim.raw(
        """
        SELECT c.id, c.account, c.paid_on, c.invoice_ids
        FROM payment_claim c JOIN account a ON a.id = c.account
        WHERE c.status = 'open' AND c.amount = {} AND a.currency = {}
        ORDER BY abs(c.paid_on - {}::date), c.id LIMIT {}
        """,
        line["amount"],
        line["currency"],
        line["booked_on"],
        _MAX_LOOKUP,
    )
    for r in rows:
        near = abs((r["paid_on"] - line["booked_on"]).days) <= CLAIM_WINDOW_DAYS
        reason = f"Aviso «ya pagué» por el mismo importe del {r['paid_on']:%d/%m/%Y}"
        if near:
            reason += f" (dentro de ±{CLAIM_WINDOW_DAYS} días)"
        numbers = await _numbers(r["account"], claim_invoice_ids(r["invoice_ids"]))
        candidate(r["account"]).add(35 if near else 25, reason, numbers)


async def _by_invoice_total(line: Mapping[str, Any], candidate: _Pick) -> None:
    rows = await Invoice.raw(
        """
        SELECT i.id, i.number, i.account FROM invoice i
        WHERE i.currency = {} AND i.total = {}
          AND (SELECT coalesce(sum(e.amount), 0) FROM ledger_entry e WHERE e.invoice = i.id) = {}
        ORDER BY i.due_date, i.id LIMIT {}
        """,
        line["currency"],
        line["amount"],
        line["amount"],
        _MAX_LOOKUP,
    )
    for r in rows:
        candidate(r["account"]).add(
            20, f"Importe igual al saldo de la factura {r['number']}", {r["id"]: r["number"]}
        )


async def _numbers(account_id: int, invoice_ids: list[int]) -> dict[int, str]:
    if not invoice_ids:
        return {}
    rows = await Invoice.select(Invoice.id, Invoice.number).where(
        Invoice.id.is_in(invoice_ids) & (Invoice.account == account_id)
    )
    return {r["id"]: r["number"] for r in rows}


async def _suggestion(line: Mapping[str, Any], account_id: int, cand: _Candidate) -> Suggestion:
    balance = await account_balance(account_id)
    if balance == line["amount"]:
        cand.add(20, "Importe igual al saldo de la cuenta")
    for inv in await open_invoices_of(account_id):
        if inv.open == line["amount"]:
            cand.add(20, f"Importe igual al saldo de la factura {inv.number}", {inv.id: inv.number})
    rows = await Account.raw(
        """
        SELECT a.currency, c.name AS creditor, d.name AS debtor, d.external_id
        FROM account a JOIN debtor d ON d.id = a.debtor JOIN creditor c ON c.id = a.creditor
        WHERE a.id = {}
        """,
        account_id,
    )
    info = rows[0]
    return Suggestion(
        account_id=account_id,
        account_reference=payment_reference(account_id),
        creditor_name=info["creditor"],
        debtor_name=info["debtor"],
        debtor_external_id=info["external_id"],
        currency=info["currency"],
        balance=balance,
        invoice_ids=tuple(cand.invoices),
        invoice_numbers=tuple(cand.invoices.values()),
        score=min(100, round(cand.points)),
        reasons=tuple(cand.reasons),
    )
