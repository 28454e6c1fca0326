"""Magic-link tokens and the pure sign-in rules: entropy, hashing, comparisons, contacts."""

from __future__ import annotations

import base64
import hmac
import secrets

import pytest

from saldo.auth import magic_links
from saldo.auth.magic_links import Contact, ContactKind, parse_contact
from saldo.notify import SmtpEmail

KEY = magic_links.derive_key("unit-secret")


def test_token_has_at_least_128_bits_and_a_url_safe_shape():
    token = magic_links.generate_token()
    assert len(token) == magic_links.TOKEN_LENGTH == 43
    raw = base64.urlsafe_b64decode(token + "=")
    assert len(raw) * 8 == 256 >= 128
    assert magic_links.well_formed(token)


def test_tokens_come_from_the_secrets_module(monkeypatch):
    calls: list[int] = []
    real = secrets.token_urlsafe

    def spy(nbytes: int) -> str:
        calls.append(nbytes)
        return real(nbytes)

    monkeypatch.setattr(magic_links.secrets, "token_urlsafe", spy)
    magic_links.generate_token()
    assert calls == [magic_links.TOKEN_BYTES] and magic_links.TOKEN_BYTES * 8 >= 128


def test_tokens_do_not_repeat():
    tokens = {magic_links.generate_token() for _ in range(2000)}
    assert len(tokens) == 2000


def test_hash_is_hmac_sha256_and_never_the_token():
    token = magic_links.generate_token()
    digest = magic_links.hash_token(token, KEY)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert digest != token and token not in digest
    assert digest == magic_links.hash_token(token, KEY)  # deterministic: lookups work
    assert digest != magic_links.hash_token(token, magic_links.derive_key("other-secret"))
    assert digest != magic_links.hash_token(magic_links.generate_token(), KEY)


def test_derived_key_is_bound_to_the_secret():
    assert magic_links.derive_key("a") == magic_links.derive_key("a")
    assert magic_links.derive_key("a") != magic_links.derive_key("b")
    assert len(magic_links.derive_key("a")) == 32


def test_token_comparison_is_constant_time(monkeypatch):
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(magic_links.hmac, "compare_digest", spy)
    token = magic_links.generate_token()
    stored = magic_links.hash_token(token, KEY)
    assert magic_links.token_matches(token, stored, KEY)
    assert not magic_links.token_matches(magic_links.generate_token(), stored, KEY)
    assert len(calls) == 2


def test_knowledge_answer_comparison_is_constant_time(monkeypatch):
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest
    monkeypatch.setattr(
        magic_links.hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b)
    )
    assert magic_links.answer_matches("5678", "27.345.678")
    assert not magic_links.answer_matches("5679", "27.345.678")
    assert not magic_links.answer_matches("5678", "12")  # too short: still compared
    assert len(calls) == 3


@pytest.mark.parametrize(
    "token",
    ["", "short", "a" * 42, "a" * 44, "a" * 42 + "=", "a" * 42 + "/", "a" * 42 + "é"],
)
def test_malformed_tokens_are_rejected_before_any_lookup(token):
    assert not magic_links.well_formed(token)


def test_link_url_joins_the_public_url():
    assert magic_links.link_url("https://x.example/", "tok") == "https://x.example/login/tok"
    assert magic_links.link_url("http://127.0.0.1:8000", "t") == "http://127.0.0.1:8000/login/t"


@pytest.mark.parametrize(
    ("document", "last4"),
    [
        ("27345678", "5678"),
        ("27.345.678", "5678"),
        ("20-30111222-9", "2229"),
        ("17.345.112-K", "5112"),
        ("HELA800101HDFRPL09", "0109"),
        ("123", None),
        ("", None),
    ],
)
def test_document_last_four_digits(document, last4):
    assert magic_links.document_last4(document) == last4


@pytest.mark.parametrize(
    ("answer", "cleaned"),
    [("5678", "5678"), (" 56 78 ", "5678"), ("567", None), ("56789", None), ("abcd", None),
     ("١٢٣٤", None), ("", None)],
)  # fmt: skip
def test_answers_are_exactly_four_ascii_digits(answer, cleaned):
    assert magic_links.clean_answer(answer) == cleaned


@pytest.mark.parametrize(
    ("raw", "contact"),
    [
        ("Maria.Nunez@Example.com ", Contact(ContactKind.email, "maria.nunez@example.com")),
        ("+54 9 11 4455-6677", Contact(ContactKind.phone, "5491144556677")),
        ("(011) 4455.6677", Contact(ContactKind.phone, "01144556677")),
        ("maria@", None),
        ("not an address", None),
        ("12345", None),
        ("1" * 16, None),
        ("+54 9 11 abc", None),
        ("", None),
        ("a@b", None),
        (f"{'x' * 250}@example.com", None),
    ],
)
def test_contacts_are_emails_or_phone_numbers(raw, contact):
    assert parse_contact(raw) == contact


def test_phone_matching_is_exact_or_by_a_long_enough_suffix():
    stored = "+54 9 11 4455-6677"
    assert magic_links.phone_matches("5491144556677", stored)
    assert magic_links.phone_matches("1144556677", stored)  # without the country code
    assert not magic_links.phone_matches("44556677", stored)  # too short to be specific
    assert not magic_links.phone_matches("5491144556677", "")


def test_rate_limit_keys_hold_no_address():
    key = magic_links.address_key(Contact(ContactKind.email, "ana@example.com"))
    assert "ana" not in key and len(key) == 32


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example", SmtpEmail("mail.example", 25)),
        (
            "smtp://user%40x:p%3Ass@mail.example:2525?starttls=1",
            SmtpEmail("mail.example", 2525, "user@x", "p:ss", start_tls=True),
        ),
        ("smtp://mail.example?starttls=1", SmtpEmail("mail.example", 587, start_tls=True)),
        ("smtps://u:p@mail.example", SmtpEmail("mail.example", 465, "u", "p", use_tls=True)),
    ],
)
def test_smtp_url_parsing(url, expected):
    assert SmtpEmail.from_url(url) == expected


@pytest.mark.parametrize("url", ["http://mail.example", "smtp://", "mail.example:25"])
def test_bad_smtp_urls_are_refused(url):
    with pytest.raises(ValueError):
        SmtpEmail.from_url(url)
