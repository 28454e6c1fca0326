"""Signed one-click unsubscribe tokens: one per debtor and channel, no sign-in needed.

A token reads `<debtor id>-<channel>-<signature>`; the signature is an HMAC-SHA256 (first 128
bits, base64url) of the debtor and channel under a key derived from SECRET_KEY. It names no
message and never expires, so an unsubscribe link in an old email still works, and it only
ever allows one thing: opting that debtor out of that channel.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Final

__all__ = ["CHANNELS", "Unsubscribe", "derive_key", "make_token", "read_token"]

CHANNELS: Final = ("email", "sms", "whatsapp")
_TOKEN = re.compile(r"([1-9][0-9]{0,9})-(email|sms|whatsapp)-([A-Za-z0-9_-]{22})")


@dataclass(frozen=True)
class Unsubscribe:
    debtor_id: int
    channel: str


def derive_key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode(), b"saldo:unsubscribe", hashlib.sha256).digest()


def _signature(key: bytes, debtor_id: int, channel: str) -> str:
    mac = hmac.new(key, f"unsubscribe:{debtor_id}:{channel}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:16]).decode().rstrip("=")


def make_token(key: bytes, debtor_id: int, channel: str) -> str:
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    return f"{int(debtor_id)}-{channel}-{_signature(key, int(debtor_id), channel)}"


def read_token(key: bytes, token: str) -> Unsubscribe | None:
    """The debtor and channel a genuine token names, or None for anything else."""
    match = _TOKEN.fullmatch(token or "")
    if match is None:
        return None
    debtor_id, channel = int(match.group(1)), match.group(2)
    if debtor_id > 2**31 - 1:
        return None
    if not hmac.compare_digest(match.group(3), _signature(key, debtor_id, channel)):
        return None
    return Unsubscribe(debtor_id, channel)
