"""The outbox's own database connections in a process (one per event loop).

A batch holds its rows with session-level advisory locks, so it needs a connection of its own
(its "holder"), never a pooled one others share. Opening one per batch costs a new PostgreSQL
backend, type introspection and preparing every statement again; so `holder()` keeps a holder
whose batch ended well for the next batch — after `pg_advisory_unlock_all()`, outside any
transaction — and closes what it keeps `IDLE` after the last batch of the process ended (or
at once when the engine points at another database). A holder whose batch failed is closed,
which ends its session and drops its locks. `shared()` is the one connection the process
records outcomes on (`saldo.services.outbox_send.Recorder`); it lives as the holders do.

Every such connection is set up with `SESSION`: commits that do not wait for the WAL flush
(see `saldo.services.outbox`), plans made once per statement (the outbox runs the same few
statements all day), and lz4 compression for the stored bodies where the server has it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import weakref
from collections.abc import AsyncIterator
from typing import Any, Final

import asyncpg

from saldo.db import DB

__all__ = ["SESSION", "drop_shared", "holder", "open_connection", "shared"]

SESSION: Final = "SET synchronous_commit TO off; SET plan_cache_mode TO force_generic_plan"
_LZ4: Final = "SET default_toast_compression TO lz4"
#: Whether the server has lz4, per database (the first connection to it asks).
_has_lz4: dict[str, bool] = {}
#: Idle holders kept for the next batches at most.
KEEP: Final = 8
#: How long kept connections outlive the last batch of the process: a worker's next batch
#: starts when it next polls its queue, well within this.
IDLE: Final = dt.timedelta(seconds=3)


async def open_connection() -> Any:
    """A new database connection with the outbox's session settings."""
    connection = await DB.get_new_connection()
    try:
        database = _database()
        if database not in _has_lz4:
            await connection.execute(SESSION)
            try:
                await connection.execute(_LZ4)
                _has_lz4[database] = True
            except asyncpg.PostgresError:  # built without lz4: pglz, the default, stays
                _has_lz4[database] = False
        else:
            await connection.execute(f"{SESSION}; {_LZ4}" if _has_lz4[database] else SESSION)
    except BaseException:
        await connection.close()
        raise
    return connection


async def _close(connection: Any) -> None:
    with contextlib.suppress(Exception):
        await connection.close(timeout=5)


class _Local:
    def __init__(self) -> None:
        self.batches = 0
        self.idle: list[Any] = []
        self.shared: Any = None
        self.database = ""  # the database the kept connections are on
        self.timer: asyncio.TimerHandle | None = None
        self.closing: asyncio.Task[None] | None = None

    def keep(self, connection: Any) -> bool:
        if len(self.idle) >= KEEP or self.database != _database():
            return False
        self.idle.append(connection)
        return True

    def taken(self) -> Any:
        return self.idle.pop() if self.idle and self.database == _database() else None

    def ended(self) -> None:
        """The last running batch ended: close what is kept unless a batch starts soon."""
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(IDLE.total_seconds(), self._close_soon)

    def started(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _close_soon(self) -> None:
        self.timer = None
        if self.batches == 0:
            self.closing = asyncio.ensure_future(self.close())

    async def close(self) -> None:
        idle, self.idle = self.idle, []
        shared, self.shared = self.shared, None
        for connection in [*idle, *([shared] if shared is not None else [])]:
            await _close(connection)


def _database() -> str:
    return repr(sorted(DB.config.items()))


_locals: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Local] = weakref.WeakKeyDictionary()


def _local() -> _Local:
    loop = asyncio.get_running_loop()
    found = _locals.get(loop)
    if found is None:
        found = _locals[loop] = _Local()
    return found


@contextlib.asynccontextmanager
async def holder() -> AsyncIterator[Any]:
    """A connection for one batch, with no advisory lock held and no transaction open."""
    local = _local()
    local.batches += 1
    local.started()
    try:
        if local.database != _database():  # the engine was pointed elsewhere meanwhile
            await local.close()
        connection = local.taken() or await open_connection()
        local.database = _database()  # (resolved by now, when it was not before)
        kept = False
        try:
            yield connection
            if not connection.is_closed() and not connection.is_in_transaction():
                await connection.execute("SELECT pg_advisory_unlock_all()")
                kept = local.keep(connection)
        finally:
            if not kept:
                await _close(connection)  # ends the session: its advisory locks go with it
    finally:
        local.batches -= 1
        if local.batches == 0:
            local.ended()


async def shared() -> Any:
    """The process's connection for recording outcomes (opened on first use)."""
    local = _local()
    if local.shared is None:
        local.shared = await open_connection()
        local.database = local.database or _database()
    return local.shared


async def drop_shared() -> None:
    """Close the shared connection (after a failure on it, or with the last batch)."""
    local = _local()
    connection, local.shared = local.shared, None
    if connection is not None:
        await _close(connection)
