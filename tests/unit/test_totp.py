"""Staff TOTP: the ±1 step window, the replay guard, recovery codes, encryption at rest."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from saldo.auth import totp
from tests.web.html import parse

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
KEY = totp.derive_key("a-test-secret-key")
NOW = dt.datetime(2026, 3, 14, 15, 9, 26, tzinfo=dt.UTC)
STEP = totp.step_at(NOW)


def code_at(step: int, secret: str = SECRET) -> str:
    """What an authenticator app shows during `step` (pyotp as the independent reference)."""
    return pyotp.TOTP(secret).at(step * 30)


# --- the window --------------------------------------------------------------------------------


def test_the_current_code_is_accepted_and_names_its_step():
    assert totp.step_at(NOW) == int(NOW.timestamp()) // 30
    assert totp.verify(SECRET, pyotp.TOTP(SECRET).at(NOW), None, NOW) == STEP


@pytest.mark.parametrize("offset", [-1, 1])
def test_one_step_either_side_is_accepted(offset):
    assert totp.verify(SECRET, code_at(STEP + offset), None, NOW) == STEP + offset


@pytest.mark.parametrize("offset", [-3, -2, 2, 3])
def test_two_steps_away_is_refused(offset):
    assert totp.verify(SECRET, code_at(STEP + offset), None, NOW) is None


def test_a_code_of_another_secret_is_refused():
    other = pyotp.random_base32()
    assert totp.verify(other, code_at(STEP), None, NOW) is None


@pytest.mark.parametrize("typed", ["", "12345", "1234567", "abcdef", "１２３４５６", "12 34 5"])
def test_malformed_codes_are_refused(typed):
    assert totp.verify(SECRET, typed, None, NOW) is None


def test_spaces_typed_inside_the_code_are_ignored():
    current = code_at(STEP)
    assert totp.verify(SECRET, f" {current[:3]} {current[3:]} ", None, NOW) == STEP


# --- the replay guard --------------------------------------------------------------------------


def test_a_code_works_once():
    first = totp.verify(SECRET, code_at(STEP), None, NOW)
    assert first == STEP
    assert totp.verify(SECRET, code_at(STEP), first, NOW) is None


def test_an_older_step_is_refused_after_a_newer_one_was_used():
    used = totp.verify(SECRET, code_at(STEP + 1), None, NOW)
    assert used == STEP + 1
    assert totp.verify(SECRET, code_at(STEP), used, NOW) is None
    assert totp.verify(SECRET, code_at(STEP - 1), used, NOW) is None


def test_the_next_step_still_works_after_the_current_one():
    assert totp.verify(SECRET, code_at(STEP + 1), STEP, NOW) == STEP + 1


@given(
    offset=st.integers(min_value=-4, max_value=4),
    last=st.one_of(st.none(), st.integers(min_value=-4, max_value=4)),
    seconds=st.integers(min_value=0, max_value=10**9),
)
def test_accepted_exactly_within_the_window_and_after_the_last_step(offset, last, seconds):
    now = dt.datetime.fromtimestamp(1_600_000_000 + seconds, dt.UTC)
    step = totp.step_at(now)
    last_step = None if last is None else step + last
    accepted = totp.verify(SECRET, code_at(step + offset), last_step, now)
    expected = abs(offset) <= 1 and (last_step is None or step + offset > last_step)
    # A code of another step in the window may coincide (1 in 10^6): then it is still that
    # step's code, and the answer must be a step in the window after the last one.
    if accepted is not None and accepted != step + offset:
        assert abs(accepted - step) <= 1 and (last_step is None or accepted > last_step)
    else:
        assert (accepted == step + offset) is expected


# --- encryption at rest ------------------------------------------------------------------------


def test_encryption_round_trip_and_nothing_in_clear():
    sealed = totp.encrypt_secret(SECRET, KEY, context="staff:7")
    assert SECRET not in sealed and sealed.startswith("v1.")
    assert totp.decrypt_secret(sealed, KEY, context="staff:7") == SECRET


def test_each_encryption_uses_a_fresh_nonce():
    first = totp.encrypt_secret(SECRET, KEY, context="staff:7")
    assert first != totp.encrypt_secret(SECRET, KEY, context="staff:7")


def test_a_tampered_ciphertext_is_detected():
    sealed = totp.encrypt_secret(SECRET, KEY, context="staff:7")
    body = sealed[3:]
    for index in (0, len(body) // 2, len(body) - 2):
        flipped = body[:index] + ("A" if body[index] != "A" else "B") + body[index + 1 :]
        with pytest.raises(totp.SecretTampered):
            totp.decrypt_secret(f"v1.{flipped}", KEY, context="staff:7")
    with pytest.raises(totp.SecretTampered):
        totp.decrypt_secret(sealed[:-4], KEY, context="staff:7")


def test_a_secret_moved_to_another_user_or_key_does_not_decrypt():
    sealed = totp.encrypt_secret(SECRET, KEY, context=totp.staff_context(7))
    with pytest.raises(totp.SecretTampered):
        totp.decrypt_secret(sealed, KEY, context=totp.staff_context(8))
    with pytest.raises(totp.SecretTampered):
        totp.decrypt_secret(sealed, totp.derive_key("another-key"), context=totp.staff_context(7))


@pytest.mark.parametrize("stored", ["", "v1.", "v2.abcd", SECRET, "v1.!!!!"])
def test_garbage_is_refused_not_crashed_on(stored):
    with pytest.raises(totp.SecretTampered):
        totp.decrypt_secret(stored, KEY, context="staff:1")


def test_the_key_depends_on_secret_key():
    assert len(KEY) == 32
    assert totp.derive_key("a-test-secret-key") == KEY
    assert totp.derive_key("another") != KEY


# --- enrollment material -----------------------------------------------------------------------


def test_generated_secrets_are_160_bit_base32():
    secret = totp.generate_secret()
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert secret != totp.generate_secret()


def test_provisioning_uri_names_saldo_and_the_user():
    uri = totp.provisioning_uri(SECRET, "ana@saldo.example")
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth" and parts.netloc == "totp"
    query = parse_qs(parts.query)
    assert query["secret"] == [SECRET] and query["issuer"] == ["Saldo"]
    assert "ana%40saldo.example" in parts.path and parts.path.startswith("/Saldo:")


def test_qr_svg_is_inline_and_free_of_style_attributes():
    markup = totp.qr_svg(totp.provisioning_uri(SECRET, "ana@saldo.example"), title="QR")
    svg = parse(markup).find("svg")
    assert svg is not None and svg.attrs["class"] == "qr" and "viewbox" in svg.attrs
    assert "style" not in markup.lower()
    assert svg.find("title").text() == "QR"


def test_secret_is_grouped_in_fours_for_typing():
    assert totp.group("JBSWY3DPEHPK3PXP") == "JBSW Y3DP EHPK 3PXP"
    assert totp.group(SECRET).replace(" ", "") == SECRET


# --- recovery codes ----------------------------------------------------------------------------


def test_ten_distinct_recovery_codes_without_look_alikes():
    codes = totp.generate_recovery_codes()
    assert len(codes) == 10 and len(set(codes)) == 10
    for value in codes:
        assert re.fullmatch(r"([a-hjkmnp-z2-9]{4}-){3}[a-hjkmnp-z2-9]{4}", value), value


def test_recovery_code_hash_ignores_case_spaces_and_dashes():
    value = totp.generate_recovery_codes(1)[0]
    digest = totp.hash_recovery_code(value)
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and value.replace("-", "") not in digest
    assert totp.hash_recovery_code(value.upper().replace("-", " ")) == digest
    assert totp.hash_recovery_code(value.replace("-", "")) == digest


def test_different_recovery_codes_hash_differently():
    codes = totp.generate_recovery_codes()
    assert len({totp.hash_recovery_code(c) for c in codes}) == len(codes)


@pytest.mark.parametrize("typed", ["", "123456", "abcd-efgh-jkmn", "abcd-efgh-jkmn-pqr0", "x" * 40])
def test_things_that_are_not_recovery_codes(typed):
    assert totp.normalize_recovery_code(typed) is None
    with pytest.raises(ValueError):
        totp.hash_recovery_code(typed)
