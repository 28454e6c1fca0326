"""ASGI entry point: `uvicorn saldo.asgi:app --workers N`.

Settings come from the environment (and `.env`). Each worker builds its own app, pool and
Redis client; sessions live in Redis, so workers are interchangeable.
"""

from __future__ import annotations

from saldo.app import create_app

app = create_app()
