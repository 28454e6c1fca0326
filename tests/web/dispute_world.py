"""Disputes with attachments for the route walker's two debtors (tests/web/test_portal_scoping.py).

María disputes an amount of A-3 with a PNG; Julián disputes part of J-1 with another PNG. Both go
through the real services, and the files are stored in the web app's data directory so the
download route can serve them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from saldo.services.disputes import open_dispute
from saldo.services.uploads import store_upload
from tests.portal_data import World

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64
OPENED = dt.datetime(2026, 11, 20, 13, 0, tzinfo=dt.UTC)


@dataclass(frozen=True)
class WorldDisputes:
    maria: int
    maria_file: int
    julian: int
    julian_file: int


_BY_TAG: dict[str, WorldDisputes] = {}


async def add_disputes(world: World, data_dir: Path) -> WorldDisputes:
    maria_file = await store_upload(PNG + b"maria", "foto-maria.png", data_dir=data_dir)
    julian_file = await store_upload(PNG + b"julian", "foto-julian.png", data_dir=data_dir)
    maria = await open_dispute(
        world.maria_ids,
        account_id=world.accounts["ARS"],
        invoice_id=world.invoice("A-3"),
        amount=100000,
        reason_code="wrong_amount",
        reason_text="El abono de noviembre vino con otro precio",
        attachment_ids=[maria_file],
        now=OPENED,
    )
    julian = await open_dispute(
        [world.julian_id],
        account_id=world.accounts["JULIAN"],
        invoice_id=world.invoice("J-1"),
        amount=50000,
        reason_code="not_recognized",
        reason_text="Plan móvil secreto: no lo contraté",
        attachment_ids=[julian_file],
        now=OPENED,
    )
    disputes = WorldDisputes(maria, maria_file, julian, julian_file)
    _BY_TAG[world.tag] = disputes
    return disputes


def disputes_of(world: World) -> WorldDisputes:
    return _BY_TAG[world.tag]
