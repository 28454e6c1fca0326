"""Mercado Pago webhook signatures: what `sign` writes, `verify` (the SDK's validator) accepts."""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given
from hypothesis import strategies as st

from saldo.payments.signature import manifest, sign, verify

SECRET = "your-webhook-secret"
DATA_ID = "1325000123"
REQUEST_ID = "bb56a2f1-6aae-46ac-982e-9dcd3581d08e"
TS = 1742505638683
# printf 'id:1325000123;request-id:bb56a2f1-6aae-46ac-982e-9dcd3581d08e;ts:1742505638683;' \
#   | openssl dgst -sha256 -hmac 'your-webhook-secret'
OPENSSL_V1 = "ab98576d0b689841d21e107b54e51f0b1aa2cce5044bdee1f45f66d1504bbeec"


def check(header: str | None, **overrides: object) -> bool:
    args: dict[str, object] = {
        "secret": SECRET,
        "x_signature": header,
        "x_request_id": REQUEST_ID,
        "data_id": DATA_ID,
    }
    args.update(overrides)
    return verify(**args)  # type: ignore[arg-type]


def test_sign_writes_the_header_mercado_pago_sends():
    assert sign(secret=SECRET, data_id=DATA_ID, request_id=REQUEST_ID, ts_ms=TS) == (
        f"ts={TS},v1={OPENSSL_V1}"
    )


def test_sign_matches_a_hand_computed_hmac_of_the_manifest():
    text = f"id:{DATA_ID};request-id:{REQUEST_ID};ts:{TS};"
    expected = hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()
    assert sign(secret=SECRET, data_id=DATA_ID, request_id=REQUEST_ID, ts_ms=TS).endswith(
        f",v1={expected}"
    )


def test_a_valid_signature_verifies():
    assert check(f"ts={TS},v1={OPENSSL_V1}")


def test_header_spacing_and_order_do_not_matter():
    assert check(f" v1={OPENSSL_V1} , ts={TS} ")


def test_a_signature_for_another_payment_is_refused():
    header = sign(secret=SECRET, data_id=DATA_ID, request_id=REQUEST_ID, ts_ms=TS)
    assert not check(header, data_id="1325000124")


def test_a_signature_for_another_request_id_is_refused():
    header = sign(secret=SECRET, data_id=DATA_ID, request_id=REQUEST_ID, ts_ms=TS)
    assert not check(header, x_request_id="bb56a2f1-6aae-46ac-982e-9dcd3581d08f")


def test_a_changed_timestamp_is_refused():
    assert not check(f"ts={TS + 1},v1={OPENSSL_V1}")


def test_a_changed_hash_is_refused():
    flipped = OPENSSL_V1[:-1] + ("0" if OPENSSL_V1[-1] != "0" else "1")
    assert not check(f"ts={TS},v1={flipped}")


def test_the_wrong_secret_is_refused():
    header = sign(secret="another-secret", data_id=DATA_ID, request_id=REQUEST_ID, ts_ms=TS)
    assert not check(header)


def test_without_a_configured_secret_nothing_verifies():
    header = f"ts={TS},v1={OPENSSL_V1}"
    assert not check(header, secret=None)
    assert not check(header, secret="")


def test_a_missing_header_is_refused():
    assert not check(None)
    assert not check("")
    assert not check("   ")


def test_malformed_headers_are_refused():
    for header in [
        "garbage",
        f"v1={OPENSSL_V1}",  # no timestamp
        f"ts={TS}",  # no hash
        f"ts=abc,v1={OPENSSL_V1}",
        f"ts={TS},v2={OPENSSL_V1}",  # a version Saldo does not accept
        f"ts={TS},v1=ñ{OPENSSL_V1[1:]}",  # not ASCII: cannot be compared in constant time
        f"ts={TS};v1={OPENSSL_V1}",
    ]:
        assert not check(header), header


def test_a_missing_request_id_is_left_out_of_the_manifest():
    # Mercado Pago omits blank pairs; the validator rebuilds the manifest the same way.
    text = f"id:{DATA_ID};ts:{TS};"
    assert manifest(data_id=DATA_ID, request_id=None, ts=str(TS)) == text
    digest = hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()
    assert check(f"ts={TS},v1={digest}", x_request_id=None)
    assert not check(f"ts={TS},v1={digest}")  # signed without it, checked with it


def test_tolerance_accepts_a_fresh_signature_and_refuses_a_stale_one():
    header = sign(secret=SECRET, data_id=DATA_ID, request_id=REQUEST_ID, ts_ms=TS)
    assert check(header, now_ms=TS + 299_000, tolerance_seconds=300)
    assert check(header, now_ms=TS - 299_000, tolerance_seconds=300)
    assert not check(header, now_ms=TS + 301_000, tolerance_seconds=300)
    assert check(header, now_ms=TS + 10**9)  # no tolerance asked: age does not matter


def test_tolerance_reads_a_timestamp_in_seconds_too():
    ts_s = TS // 1000
    header = sign(secret=SECRET, data_id=DATA_ID, request_id=REQUEST_ID, ts_ms=ts_s)
    assert check(header, now_ms=ts_s * 1000 + 5_000, tolerance_seconds=300)
    assert not check(header, now_ms=ts_s * 1000 + 400_000, tolerance_seconds=300)


def test_a_stale_signature_is_refused_by_default_clock():
    header = sign(secret=SECRET, data_id=DATA_ID, request_id=REQUEST_ID, ts_ms=TS)
    assert not check(header, tolerance_seconds=300)  # TS is March 2025


ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() == s)


@given(
    data_id=ids,
    request_id=ids,
    other=ids,
    secret=st.text(min_size=1, max_size=40),
    ts=st.integers(0, 10**13),
)
def test_what_sign_writes_verifies_and_nothing_else_does(data_id, request_id, other, secret, ts):
    header = sign(secret=secret, data_id=data_id, request_id=request_id, ts_ms=ts)
    text = f"id:{data_id};request-id:{request_id};ts:{ts};"
    expected = hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()
    assert header == f"ts={ts},v1={expected}"
    assert verify(secret=secret, x_signature=header, x_request_id=request_id, data_id=data_id)
    if other != data_id:
        assert not verify(secret=secret, x_signature=header, x_request_id=request_id, data_id=other)
    if other != request_id:
        assert not verify(secret=secret, x_signature=header, x_request_id=other, data_id=data_id)
    assert not verify(
        secret=secret + "x", x_signature=header, x_request_id=request_id, data_id=data_id
    )


@given(header=st.text(max_size=200))
def test_arbitrary_headers_are_refused_without_raising(header):
    assert (
        verify(secret=SECRET, x_signature=header, x_request_id=REQUEST_ID, data_id=DATA_ID) is False
    )
