"""Reading a bank line's free text: invoice numbers, documents, names and near-miss references.

Pure helpers shared by automatic matching (`bank_matching`) and finance's suggestions
(`bank_suggestions`); no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from saldo.references import account_ids_in, payment_reference

#: Invoice numbers are looked for among the description's tokens: runs of text between
#: blanks and these separators, with at least one digit.
_TOKEN_SPLIT: Final = re.compile(r"[\s,;:()\[\]{}#\"'|º°]+")
_EDGE_PUNCTUATION: Final = ".-/_"
_MAX_TOKEN: Final = 60  # Invoice.number
_NAME_SPLIT: Final = re.compile(r"[^0-9a-z]+")
#: Words that say nothing about who a payer is.
_NAME_STOPWORDS: Final = frozenset(
    {"de", "del", "la", "las", "los", "el", "y", "e", "da", "do", "dos", "das", "sa", "srl"}
    | {"sas", "spa", "ltda", "sl", "cia", "inc", "llc", "sr", "sra", "don", "dona"}
)
#: Text shaped like a payment reference, whether or not its check digits are right.
_REFERENCE_LIKE: Final = re.compile(r"\bSAL[-\s]?(\d{7})[-\s]?(\d{2})\b", re.IGNORECASE)


def digits_only(text: str) -> str:
    """The digits of a document number as written anywhere ("20-12.345.678/9" -> "20123456789")."""
    return "".join(ch for ch in text if ch.isascii() and ch.isdigit())


def fold(text: str) -> str:
    """Lower case without accents ("Ñandú PÉREZ" -> "nandu perez")."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def name_tokens(name: str) -> frozenset[str]:
    """The words of a name that identify someone: folded, 2+ characters, no legal forms."""
    return frozenset(
        token
        for token in _NAME_SPLIT.split(fold(name))
        if len(token) >= 2 and token not in _NAME_STOPWORDS
    )


def name_similarity(a: str, b: str) -> float:
    """Token overlap of two names (Dice coefficient, 0.0–1.0): "JUAN PEREZ" ~ "Juan Pérez" = 1."""
    left, right = name_tokens(a), name_tokens(b)
    if not left or not right:
        return 0.0
    return 2 * len(left & right) / (len(left) + len(right))


def invoice_tokens(text: str) -> list[str]:
    """Upper-cased tokens of a description that could be invoice numbers, in order, once each.

    A token glued to words by dots ("FACT.A-0001-123", "FACT.NRO.123") also yields what
    follows those words ("A-0001-123", "123"); dots between digits stay ("0001.00001234").
    """
    found: list[str] = []
    for raw in _TOKEN_SPLIT.split(text or ""):
        pieces = raw.split(".")
        words = 0
        while words < len(pieces) - 1 and not any(ch.isdigit() for ch in pieces[words]):
            words += 1
        for candidate in (raw, ".".join(pieces[words:])):
            token = candidate.strip(_EDGE_PUNCTUATION).upper()
            if (
                token
                and len(token) <= _MAX_TOKEN
                and any(ch.isdigit() for ch in token)
                and token not in found
            ):
                found.append(token)
    return found


def mentions(text: str, number: str) -> bool:
    """Whether `number` appears in `text` as a whole token (case-insensitive)."""
    if not number:
        return False
    pattern = rf"(?<![0-9A-Za-z]){re.escape(number)}(?![0-9A-Za-z])"
    return re.search(pattern, text or "", re.IGNORECASE) is not None


def near_references(text: str) -> list[tuple[str, list[int]]]:
    """Reference-shaped text whose check digits fail, with the accounts it may have meant.

    For "SAL-0001243-82" the candidates are the account its seven digits spell (the check
    digits may be the typo) and every account one mistyped digit or one swap of neighbouring
    digits away whose reference has exactly those check digits. Valid references are left to
    `account_ids_in`.
    """
    valid = set(account_ids_in(text))
    found: list[tuple[str, list[int]]] = []
    for match in _REFERENCE_LIKE.finditer(text or ""):
        digits, check = match.group(1), match.group(2)
        if int(digits) in valid and payment_reference(int(digits))[-2:] == check:
            continue
        candidates: list[int] = []
        if int(digits):
            candidates.append(int(digits))
        for variant in _one_typo_away(digits):
            account_id = int(variant)
            if (
                account_id
                and account_id not in candidates
                and payment_reference(account_id)[-2:] == check
            ):
                candidates.append(account_id)
        found.append((match.group(0), candidates))
    return found


def _one_typo_away(digits: str) -> list[str]:
    variants: list[str] = []
    for i, current in enumerate(digits):
        for replacement in "0123456789":
            if replacement != current:
                variants.append(digits[:i] + replacement + digits[i + 1 :])
    for i in range(len(digits) - 1):
        if digits[i] != digits[i + 1]:
            variants.append(digits[:i] + digits[i + 1] + digits[i] + digits[i + 2 :])
    return variants
