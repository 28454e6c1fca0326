"""Staff TOTP (RFC 6238): secrets, their encryption at rest, verification, recovery codes.

- A secret is 160 random bits in base32 (`pyotp.random_base32()`), the size RFC 4226 recommends.
- At rest it is encrypted with AES-256-GCM under a key derived from SECRET_KEY for this one
  purpose (`derive_key`). The staff user's id is the associated data (`context`), so a
  ciphertext copied onto another row does not decrypt; any change to it fails authentication
  (`SecretTampered`). Stored form: `v1.` + base64url(nonce ‖ ciphertext ‖ tag).
- `verify()` accepts the code of the current 30-second step or of one step either side (clock
  drift), and only for a step after the last one accepted: a code works once. The caller
  persists the accepted step with a conditional UPDATE, so two concurrent sign-ins with the
  same code cannot both win.
- Recovery codes: ten per enrollment, 16 symbols from a 31-letter alphabet without look-alikes
  (≈ 79 bits each), shown once as `xxxx-xxxx-xxxx-xxxx`; only their SHA-256 is stored. With
  that much entropy a fast hash is enough, and it lets the database find and remove a used code
  in one atomic statement.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets

import pyotp
import segno
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ISSUER = "Saldo"
STEP_SECONDS = 30
DIGITS = 6
VALID_WINDOW = 1  # steps accepted either side of the current one
RECOVERY_CODE_COUNT = 10
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i
RECOVERY_CODE_LENGTH = 16
_VERSION = "v1"
_NONCE_BYTES = 12


class SecretTampered(ValueError):
    """The stored secret does not decrypt under this key and context (altered, moved or foreign)."""


# --- keys and encryption ------------------------------------------------------------------------


def derive_key(secret_key: str) -> bytes:
    """The AES-256 key for TOTP secrets, derived from SECRET_KEY with HKDF-SHA256."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"saldo:totp-secret:v1"
    ).derive(secret_key.encode())


def encrypt_secret(secret: str, key: bytes, *, context: str) -> str:
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, secret.encode(), context.encode())
    return f"{_VERSION}.{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"


def decrypt_secret(token: str, key: bytes, *, context: str) -> str:
    version, _, body = token.partition(".")
    if version != _VERSION or not body:
        raise SecretTampered("unknown secret format")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        plain = AESGCM(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], context.encode())
    except (InvalidTag, ValueError) as exc:
        raise SecretTampered("the secret does not decrypt") from exc
    return plain.decode()


def staff_context(staff_id: int) -> str:
    """The associated data that binds an encrypted secret to one staff user."""
    return f"staff:{staff_id}"


# --- secrets and codes --------------------------------------------------------------------------


def generate_secret() -> str:
    return pyotp.random_base32()


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS)


def step_at(now: dt.datetime) -> int:
    """The TOTP time step (counter) that `now` falls in."""
    return int(now.timestamp()) // STEP_SECONDS


def code_for_step(secret: str, step: int) -> str:
    return _totp(secret).generate_otp(step)


def clean_code(code: str) -> str | None:
    """Six digits (spaces allowed while typing), or None."""
    compact = "".join(code.split())
    return compact if len(compact) == DIGITS and compact.isascii() and compact.isdigit() else None


def verify(secret: str, code: str, last_step: int | None, now: dt.datetime) -> int | None:
    """The step `code` belongs to, if it is valid now (±VALID_WINDOW) and newer than `last_step`.

    None for a wrong, malformed, expired or already used code. Every candidate step is compared
    in constant time, whatever matched first.
    """
    cleaned = clean_code(code)
    if cleaned is None:
        return None
    current = step_at(now)
    accepted: int | None = None
    for step in range(current - VALID_WINDOW, current + VALID_WINDOW + 1):
        matches = hmac.compare_digest(code_for_step(secret, step), cleaned)
        if matches and (last_step is None or step > last_step) and accepted is None:
            accepted = step
    return accepted


def provisioning_uri(secret: str, account: str) -> str:
    """The `otpauth://` URI an authenticator app reads from the QR code."""
    return _totp(secret).provisioning_uri(name=account, issuer_name=ISSUER)


def qr_svg(uri: str, *, title: str) -> str:
    """An inline SVG QR code of `uri`: presentation attributes and classes, no `style` (CSP)."""
    return str(
        segno.make(uri, error="m").svg_inline(
            scale=4,
            border=4,
            dark="#0c2233",
            light="#ffffff",
            svgclass="qr",
            lineclass="qr__modules",
            omitsize=True,
            title=title,
        )
    )


def group(secret: str, size: int = 4) -> str:
    """`JBSWY3DPEHPK3PXP` → `JBSW Y3DP EHPK 3PXP`, for typing it into an app by hand."""
    return " ".join(secret[i : i + size] for i in range(0, len(secret), size))


# --- recovery codes -----------------------------------------------------------------------------


def generate_recovery_codes(count: int = RECOVERY_CODE_COUNT) -> list[str]:
    codes = []
    for _ in range(count):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
        codes.append("-".join(raw[i : i + 4] for i in range(0, RECOVERY_CODE_LENGTH, 4)))
    return codes


def normalize_recovery_code(code: str) -> str | None:
    """The 16 symbols of a recovery code as typed (any case, spaces or dashes), or None."""
    compact = "".join(ch for ch in code.lower() if ch not in " -\t")
    if len(compact) != RECOVERY_CODE_LENGTH or any(ch not in RECOVERY_ALPHABET for ch in compact):
        return None
    return compact


def hash_recovery_code(code: str) -> str:
    """What the database keeps of a recovery code: SHA-256 of its normalized form, in hex."""
    normalized = normalize_recovery_code(code)
    if normalized is None:
        raise ValueError("not a recovery code")
    return hashlib.sha256(f"saldo:recovery:{normalized}".encode()).hexdigest()
