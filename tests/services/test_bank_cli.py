"""`saldo bank import FILE`, run as finance would: a real process against the test database."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

from saldo.references import payment_reference
from saldo.services.ledger import account_balance
from saldo.tables import BankImport, BankLine

from .bank_support import row, statement, uid
from .helpers import make_account, make_invoice


def saldo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "saldo", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


async def test_bank_import_prints_what_matched_and_what_did_not(db, tmp_path):
    account = await make_account()
    await make_invoice(account, uid("K-"), 200_000, dt.date(2026, 10, 1))
    matched, stray = uid("TX-"), uid("TX-")
    path = statement(
        tmp_path / "extracto-cli.csv",
        [
            row(
                "1500.00", reference=f"TRF {payment_reference(account.id)}", transaction_id=matched
            ),
            row("99.99", reference="DEPOSITO", transaction_id=stray),
        ],
    )

    done = saldo("bank", "import", str(path))

    assert done.returncode == 0, done.stderr
    assert "bank import #" in done.stdout and "extracto-cli.csv" in done.stdout
    assert "2 lines read, 2 new, 0 already imported by another statement" in done.stdout
    assert "matched automatically: 1 line" in done.stdout
    assert "reference: 1 line, ARS 1500.00" in done.stdout
    assert "unmatched: 1 line, ARS 99.99" in done.stdout
    assert await account_balance(account.id) == 50_000
    line = await BankLine.objects().get(BankLine.transaction_id == matched)
    assert line.status == "matched"

    again = saldo("bank", "import", str(path))
    assert again.returncode == 0, again.stderr
    assert "already imported" in again.stdout and "nothing changed" in again.stdout
    assert await account_balance(account.id) == 50_000


async def test_bank_import_refuses_a_bad_file_naming_the_line(db, tmp_path):
    first = uid("TX-")
    path = statement(
        tmp_path / "roto.csv",
        [row("10.00", transaction_id=first), row("-5.00"), row("7.00")],
    )

    done = saldo("bank", "import", str(path))

    assert done.returncode == 1
    assert "error: roto.csv:3: amount -5.00 is not positive" in done.stderr
    assert "nothing from roto.csv was imported" in done.stderr
    assert not await BankLine.exists().where(BankLine.transaction_id == first)
    assert not await BankImport.exists().where(BankImport.filename == "roto.csv")


def test_bank_import_of_a_missing_file_says_so(tmp_path):
    done = saldo("bank", "import", str(tmp_path / "no-existe.csv"))
    assert done.returncode == 2
    assert "no-existe.csv: no such file" in done.stderr
