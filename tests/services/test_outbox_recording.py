"""Outcomes are recorded for all batches of a worker on one connection of its own: when that
connection is lost in the middle of a batch, the batch stops, nothing is lost, and what the
server had already taken goes again with the same Message-ID."""

from __future__ import annotations

import asyncio

import pytest
from asyncpg.exceptions import ConnectionDoesNotExistError, InterfaceError

from saldo.db import DB
from saldo.services import outbox_db
from tests.services.outbox_world import fakes, party, remind, row, send

__all__ = ["fakes"]


async def test_losing_the_recording_connection_stops_the_batch_and_loses_nothing(db, fakes):
    await remind(await party())
    await send(fakes)  # the worker's connections are open and kept for its next batch
    recorder = await outbox_db.shared()
    who = [await party() for _ in range(3)]
    ids = [await remind(w) for w in who]
    admin = await DB.get_new_connection()
    try:
        await admin.execute("SELECT pg_terminate_backend($1)", recorder.get_server_pid())
    finally:
        await admin.close()
    await asyncio.sleep(0.1)

    with pytest.raises((ConnectionDoesNotExistError, InterfaceError, OSError)):
        await send(fakes)

    left = [i for i in ids if (await row(i)).status == "sending"]  # taken, not recorded
    assert left and {(await row(i)).status for i in ids} <= {"sending", "sent"}
    await send(fakes)  # the next batch finds them (their lease went with the failed batch)
    stored = [await row(i) for i in ids]
    assert [s.status for s in stored] == ["sent"] * 3
    received = [m.message["Message-ID"] for w in who for m in fakes.smtp.to(w.email)]
    assert set(received) == {s.provider_id for s in stored}
    assert len(received) == 3 + len(left)  # what was recorded sent never goes again
