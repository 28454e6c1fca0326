"""Payment references printed for bank transfers: `SAL-0001234-51` names an account.

The last two digits are an ISO 7064 mod 97-10 check (as in IBANs): every single-digit typo and
every swap of neighbouring digits is refused instead of matching someone else's account.
Pure: no I/O.
"""

from __future__ import annotations

import re

_PATTERN = re.compile(r"\bSAL[-\s]?(\d{7})[-\s]?(\d{2})\b", re.IGNORECASE)


def _check_digits(digits: str) -> int:
    return 98 - int(digits) * 100 % 97


def payment_reference(account_id: int) -> str:
    if not 0 < account_id < 10_000_000:
        raise ValueError(f"account id out of range for a reference: {account_id}")
    digits = f"{account_id:07d}"
    return f"SAL-{digits}-{_check_digits(digits):02d}"


def account_ids_in(text: str) -> list[int]:
    """Account ids of every valid reference in a free-text bank description, in order."""
    found: list[int] = []
    for digits, check in _PATTERN.findall(text or ""):
        if int(check) == _check_digits(digits) and int(digits) and int(digits) not in found:
            found.append(int(digits))
    return found
