"""The `saldo` command, run as a user would: a real process against the test database."""

import os
import subprocess
import sys

from saldo.auth.passwords import verify_password
from saldo.services.apikeys import find_api_key
from saldo.tables import StaffUser


def saldo(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "saldo", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


async def test_staff_create_reads_the_password_from_stdin(db):
    done = saldo(
        "staff",
        "create",
        "Ana.Gomez@Example.com",
        "--role",
        "finance",
        stdin="correct horse battery\n",
    )
    assert done.returncode == 0, done.stderr
    assert "finance ana.gomez@example.com" in done.stdout
    staff = await StaffUser.objects().get(StaffUser.email == "ana.gomez@example.com")
    assert staff.role == "finance"
    assert staff.password_hash.startswith("$argon2id$")
    assert verify_password(staff.password_hash, "correct horse battery")
    assert not verify_password(staff.password_hash, "wrong")


async def test_staff_create_refuses_a_short_password_and_a_duplicate(db):
    short = saldo("staff", "create", "short@example.com", "--role", "agent", stdin="123\n")
    assert short.returncode == 2
    assert "at least 12 characters" in short.stderr
    assert not await StaffUser.exists().where(StaffUser.email == "short@example.com")

    ok = saldo("staff", "create", "dup@example.com", "--role", "agent", stdin="a long password\n")
    assert ok.returncode == 0, ok.stderr
    dup = saldo("staff", "create", "dup@example.com", "--role", "agent", stdin="a long password\n")
    assert dup.returncode == 2
    assert "already exists" in dup.stderr


async def test_apikey_create_prints_a_key_that_is_stored_only_as_a_hash(db):
    done = saldo("apikey", "create", "ERP Contable")
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert key.startswith("saldo_") and len(key) > 40
    stored = await find_api_key(key)
    assert stored is not None and stored.name == "ERP Contable"
    assert key not in stored.key_hash
    assert await find_api_key(key + "x") is None


def test_a_bad_setting_stops_the_command_naming_it():
    env = dict(os.environ, PORT="ochenta")
    done = subprocess.run(
        [sys.executable, "-m", "saldo", "migrate"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2
    assert "PORT" in done.stderr
