"""Payment plans for the route walker's two debtors (tests/web/test_portal_scoping.py).

María gets a counter-offer on her ARS account (to accept), another on her MXN account (to
decline) and an approved plan on her EUR account (its agreement); Julián gets an approved plan.
Everything goes through the real services. The plans are made on the real clock, so a
counter-offer is still open to acceptance whenever the suite runs.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from saldo.schedule import Frequency, Proposal
from saldo.services import plan_review, plans
from saldo.tables import StaffUser
from tests.portal_data import World


@dataclass(frozen=True)
class WorldPlans:
    maria_offer: int  # ARS, offered
    maria_offer_to_decline: int  # MXN, offered
    maria_agreed: int  # EUR, active
    julian_agreed: int  # ARS, active


_BY_TAG: dict[str, WorldPlans] = {}


def _form(account_id: int, first: dt.date, installments: int = 2) -> dict[str, str]:
    return {
        "account": str(account_id),
        "installments": str(installments),
        "frequency": "monthly",
        "first_date": first.isoformat(),
    }


async def add_plans(world: World) -> WorldPlans:
    now = dt.datetime.now(dt.UTC)
    first = now.date() + dt.timedelta(days=20)
    staff = StaffUser(email=f"planes.{secrets.token_hex(4)}@example.com", name="Planes")
    await staff.save()

    async def proposed(debtor_ids: list[int], account_id: int) -> int:
        outcome = await plans.propose(debtor_ids, account_id, _form(account_id, first), now=now)
        assert outcome.status == "proposed"  # no policy at these creditors: every plan is reviewed
        return outcome.plan_id

    async def offered(debtor_ids: list[int], account_id: int) -> int:
        plan_id = await proposed(debtor_ids, account_id)
        total = (await plans.coverage([account_id]))[account_id].total
        offer = Proposal(total, 0, 3, Frequency.monthly, first)
        return (await plan_review.counter_offer(plan_id, offer, staff_id=staff.id, now=now)).plan_id

    async def agreed(debtor_ids: list[int], account_id: int) -> int:
        plan_id = await proposed(debtor_ids, account_id)
        await plan_review.approve(plan_id, staff_id=staff.id, now=now)
        return plan_id

    made = WorldPlans(
        maria_offer=await offered(world.maria_ids, world.accounts["ARS"]),
        maria_offer_to_decline=await offered(world.maria_ids, world.accounts["MXN"]),
        maria_agreed=await agreed(world.maria_ids, world.accounts["EUR"]),
        julian_agreed=await agreed([world.julian_id], world.accounts["JULIAN"]),
    )
    _BY_TAG[world.tag] = made
    return made


def plans_of(world: World) -> WorldPlans:
    return _BY_TAG[world.tag]
