"""Checkouts and "ya pagué" reports for the route walker's two debtors
(tests/web/test_portal_scoping.py).

María starts a checkout for A-1 and reports a transfer with a PNG receipt; Julián does the same
for J-1. Everything goes through the real services (the demo provider), and the receipts are
stored in the web app's data directory so the download route can serve them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from saldo.payments.simulated import SimulatedProvider
from saldo.services.checkout import start_checkout
from saldo.services.claims import ClaimForm, Receipt, submit_claim
from tests.portal_data import TODAY, World

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64
NOW = dt.datetime.combine(TODAY, dt.time(13, 0), tzinfo=dt.UTC)
RETURN = {k: "/pay/return/{reference}" for k in ("success", "pending", "failure")}


@dataclass(frozen=True)
class WorldPayments:
    maria_checkout: str
    julian_checkout: str
    maria_claim: int
    julian_claim: int


_BY_TAG: dict[str, WorldPayments] = {}


async def _checkout(debtor_ids: list[int], account_id: int, invoice_id: int) -> str:
    started = await start_checkout(
        debtor_ids=debtor_ids,
        account_id=account_id,
        choice="invoices",
        invoice_ids=[invoice_id],
        provider=SimulatedProvider(),
        public_url="http://testserver.local",
        return_urls=RETURN,
        notification_url="",
        now=NOW,
    )
    return started.public_id


async def _claim(
    debtor_ids: list[int], account_id: int, invoice_id: int, data_dir: Path, who: str
) -> int:
    form = ClaimForm(
        account=str(account_id),
        paid_on=(TODAY - dt.timedelta(days=2)).isoformat(),
        amount="1000",
        method="transferencia",
        reference=f"OP-{who}",
        invoice_ids=(str(invoice_id),),
    )
    receipt = Receipt(f"comprobante-{who}.png", PNG + who.encode())
    return await submit_claim(debtor_ids, form, receipt, data_dir=data_dir, now=NOW)


async def add_payments(world: World, data_dir: Path) -> WorldPayments:
    maria, julian = world.maria_ids, [world.julian_id]
    ars, theirs = world.accounts["ARS"], world.accounts["JULIAN"]
    payments = WorldPayments(
        maria_checkout=await _checkout(maria, ars, world.invoice("A-1")),
        julian_checkout=await _checkout(julian, theirs, world.invoice("J-1")),
        maria_claim=await _claim(maria, ars, world.invoice("A-1"), data_dir, "maria"),
        julian_claim=await _claim(julian, theirs, world.invoice("J-1"), data_dir, "julian"),
    )
    _BY_TAG[world.tag] = payments
    return payments


def payments_of(world: World) -> WorldPayments:
    return _BY_TAG[world.tag]
