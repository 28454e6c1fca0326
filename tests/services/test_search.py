"""Account search: by name (any case, no accents), document, email, phone, invoice and account
number; each debtor's accounts; no match; too short."""

from __future__ import annotations

import datetime as dt
import secrets

from saldo.services.search import search
from saldo.tables import Account, Creditor, Debtor
from tests.services.helpers import make_invoice


async def _debtor(name: str, **fields: str) -> tuple[int, int]:
    creditor = Creditor(name=f"Buscar {secrets.token_hex(4)}")
    await creditor.save()
    debtor = Debtor(creditor=creditor.id, external_id=secrets.token_hex(4), name=name, **fields)
    await debtor.save()
    account = Account(creditor=creditor.id, debtor=debtor.id, currency="CLP")
    await account.save()
    return debtor.id, account.id


def _ids(result) -> set[int]:
    return {hit.account_id for hit in result.hits}


async def test_name_ignores_case_and_accents_and_matches_word_beginnings(db):
    token = secrets.token_hex(3)
    _, account = await _debtor(f"Begoña Ibáñez Zu{token}")
    for query in (f"begona ibanez zu{token}", f"IBÁÑ ZU{token}", f"zu{token} bego"):
        result = await search(query)
        assert account in _ids(result), query
        hit = next(h for h in result.hits if h.account_id == account)
        assert hit.matched == ("name",) and hit.name.startswith("Begoña")
    assert account not in _ids(await search(f"ibanez xzu{token}"))  # every word must match


async def test_document_by_its_letters_and_digits(db):
    number = f"{secrets.randbelow(10**7) + 10**7}"
    dotted = f"{number[:2]}.{number[2:5]}.{number[5:]}-k"
    _, account = await _debtor("Rut Con Puntos", document_type="RUT", document_number=dotted)
    for query in (f"{number}K", f"{number[:2]}.{number[2:5]}.{number[5:]}-K"):
        result = await search(query)
        assert account in _ids(result), query
        assert "document" in next(h for h in result.hits if h.account_id == account).matched


async def test_email_whole_address_any_case(db):
    email = f"Ana.{secrets.token_hex(4)}@Example.com"
    _, account = await _debtor("Ana Correo", email=email)
    assert account in _ids(await search(email.upper()))
    assert account not in _ids(await search(email.split("@")[0] + "@"))


async def test_phone_by_the_end_of_its_digits(db):
    tail = f"{secrets.randbelow(10**8):08d}"
    _, account = await _debtor("Pedro Teléfono", phone=f"+54 9 11 {tail[:4]}-{tail[4:]}")
    result = await search(f"{tail[:4]} {tail[4:]}")
    assert account in _ids(result)
    assert "phone" in next(h for h in result.hits if h.account_id == account).matched
    assert account not in _ids(await search(tail[:5]))  # a few digits are not a phone


async def test_invoice_number_prefix_and_account_number(db):
    _, account_id = await _debtor("Ignacio Factura")
    account = await Account.objects().get(Account.id == account_id)
    number = f"A-{secrets.randbelow(10**6):06d}-X"
    await make_invoice(account, number, 50_000, dt.date.today() - dt.timedelta(days=3))
    result = await search(number[:8].lower())
    hit = next(h for h in result.hits if h.account_id == account_id)
    assert "invoice" in hit.matched and hit.invoice_number == number
    assert hit.balance.minor == 50_000
    by_id = await search(f"#{account_id}")
    assert [h.account_id for h in by_id.hits if "account" in h.matched] == [account_id]


async def test_a_person_with_two_accounts_shows_both(db):
    token = secrets.token_hex(3)
    debtor, first = await _debtor(f"Doble Cuenta{token}")
    row = await Debtor.select(Debtor.creditor).where(Debtor.id == debtor).first()
    second = Account(creditor=row["creditor"], debtor=debtor, currency="USD")
    await second.save()
    result = await search(f"cuenta{token}")
    assert {first, second.id} <= _ids(result)


async def test_nothing_found_and_too_short(db):
    assert (await search(f"zzq{secrets.token_hex(5)}")).hits == ()
    short = await search(" a ")
    assert short.too_short and short.hits == ()
    assert (await search("")).too_short is False
