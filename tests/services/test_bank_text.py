"""Reading bank descriptions: near-miss references, invoice numbers, documents and names."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from saldo.references import payment_reference
from saldo.services.bank_text import (
    digits_only,
    invoice_tokens,
    mentions,
    name_similarity,
    near_references,
)


@given(st.integers(1, 9_999_999), st.integers(0, 6), st.integers(1, 9))
def test_a_mistyped_digit_points_back_to_the_account(account_id, position, shift):
    good = payment_reference(account_id)
    digits = list(good[4:11])
    digits[position] = str((int(digits[position]) + shift) % 10)
    typo = f"SAL-{''.join(digits)}-{good[-2:]}"
    [(shown, candidates)] = near_references(f"TRANSF {typo} PAGO")
    assert shown == typo
    assert account_id in candidates


@given(st.integers(1, 9_999_999), st.integers(1, 96))
def test_mistyped_check_digits_point_at_the_seven_digits(account_id, shift):
    good = payment_reference(account_id)
    check = (int(good[-2:]) + shift) % 100
    typo = f"{good[:-2]}{check:02d}"
    found = near_references(typo.lower())
    assert found and found[0][1][0] == account_id


@given(st.integers(1, 9_999_999))
def test_a_valid_reference_is_not_a_near_miss(account_id):
    assert near_references(f"pago {payment_reference(account_id)}") == []


def test_invoice_numbers_are_read_from_common_descriptions():
    assert invoice_tokens("PAGO FACT.FC-0001-123. cuota 2") == [
        "FACT.FC-0001-123",
        "FC-0001-123",
        "2",
    ]
    assert invoice_tokens("Nº A-77; (B-88) #C-99") == ["A-77", "B-88", "C-99"]
    assert invoice_tokens("0001.00001234 sin numero") == ["0001.00001234"]
    assert invoice_tokens("") == []
    assert mentions("pago fc a-0001-123.", "A-0001-123")
    assert not mentions("pago A-0001-1234", "A-0001-123")


def test_documents_and_names_compare_loosely():
    assert digits_only("20-12.345.678/9") == "20123456789"
    assert name_similarity("PEREZ JUAN", "Juan Pérez") == 1.0
    assert name_similarity("Ñandú S.A.", "NANDU SA") == 1.0
    assert name_similarity("Juan Pérez", "María Gómez") == 0.0
    assert 0.5 < name_similarity("JUAN C PEREZ", "Juan Carlos Pérez") < 1.0
