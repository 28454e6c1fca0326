"""Bank-transfer references name exactly one account and refuse typos."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from saldo.references import account_ids_in, payment_reference


def test_reference_shape() -> None:
    assert payment_reference(1234) == "SAL-0001234-82"


@given(st.integers(min_value=1, max_value=9_999_999))
def test_reference_is_found_in_free_text(account_id: int) -> None:
    reference = payment_reference(account_id)
    assert account_ids_in(f"TRANSF. {reference} PAGO FACTURA") == [account_id]
    assert account_ids_in(f"transf {reference.replace('-', '').lower()}") == [account_id]


@given(st.integers(min_value=1, max_value=9_999_999), st.integers(0, 6), st.integers(1, 9))
def test_a_single_mistyped_digit_matches_nothing(
    account_id: int, position: int, shift: int
) -> None:
    reference = payment_reference(account_id)
    digits = list(reference[4:11])
    digits[position] = str((int(digits[position]) + shift) % 10)
    typo = f"SAL-{''.join(digits)}-{reference[-2:]}"
    assert account_ids_in(typo) == []


def test_swapped_neighbours_match_nothing() -> None:
    assert account_ids_in("SAL-0002134-82") == []


@pytest.mark.parametrize("account_id", [0, -1, 10_000_000])
def test_ids_outside_seven_digits_have_no_reference(account_id: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        payment_reference(account_id)
