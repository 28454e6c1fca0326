"""API keys for /api/v1: shown once, stored as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

from saldo.tables import ApiKey


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_api_key(name: str) -> str:
    name = name.strip()
    if not name:
        raise ValueError("the key needs a name")
    if await ApiKey.exists().where(ApiKey.name == name):
        raise ValueError(f"an API key named {name!r} already exists")
    prefix = secrets.token_hex(4)
    key = f"saldo_{prefix}_{secrets.token_urlsafe(32)}"
    await ApiKey(name=name, prefix=prefix, key_hash=key_hash(key)).save()
    return key


async def find_api_key(key: str) -> ApiKey | None:
    return (
        await ApiKey.objects()
        .where((ApiKey.key_hash == key_hash(key)) & ApiKey.revoked_at.is_null())
        .first()
    )
