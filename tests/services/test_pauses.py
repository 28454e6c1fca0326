"""What pauses reminders, read set-based: each kind of pause, its reason and end, partly
disputed invoices, and which messages a pause holds back."""

from __future__ import annotations

import datetime as dt

from saldo.services.pauses import AccountPauses, paused_items

from .dunning_world import (
    DAY0,
    active_plan,
    at,
    claim,
    dispute,
    invoice,
    make_case,
    make_creditor,
    pending_payment,
    promise,
    staff_pause,
)


async def test_every_kind_of_pause_with_its_reason_and_end(db):
    creditor = await make_creditor()
    quiet = await make_case(creditor, name="Sin Pausas")
    staff = await make_case(creditor, name="Pausa Manual")
    promised = await make_case(creditor, name="Con Promesa")
    items = await make_case(creditor, name="Por Factura")
    await invoice(quiet, 10_000, DAY0)
    await invoice(staff, 10_000, DAY0)
    await invoice(promised, 10_000, DAY0)
    disputed = await invoice(items, 10_000, DAY0)
    partly = await invoice(items, 10_000, DAY0)
    planned = await invoice(items, 10_000, DAY0)
    claimed = await invoice(items, 10_000, DAY0)
    pending = await invoice(items, 10_000, DAY0)
    free = await invoice(items, 10_000, DAY0)
    await staff_pause(staff, until=DAY0 + dt.timedelta(days=4), note="Hablar con el abogado")
    await promise(promised, 10_000, DAY0 + dt.timedelta(days=2))
    await promise(promised, 5_000, DAY0 - dt.timedelta(days=1))  # its date has passed
    await dispute(items, disputed.id, 10_000)
    await dispute(items, partly.id, 2_500)
    await active_plan(items, [planned.id], [(DAY0 + dt.timedelta(days=30), 10_000)])
    await claim(items, [claimed.id], until=DAY0 + dt.timedelta(days=6))
    await pending_payment(items, [pending.id], 10_000, expires=at(DAY0 + dt.timedelta(days=1)))

    ids = [c.account.id for c in (quiet, staff, promised, items)]
    found = await paused_items([*ids, 2**31 - 1], today=DAY0)

    assert found[quiet.account.id] == AccountPauses(quiet.account.id)
    assert not found[quiet.account.id].paused
    s = found[staff.account.id]
    assert (s.reason, s.until, s.note) == (
        "staff_pause",
        DAY0 + dt.timedelta(days=4),
        "Hablar con el abogado",
    )
    p = found[promised.account.id]
    assert (p.reason, p.until) == ("promise", DAY0 + dt.timedelta(days=2))
    i = found[items.account.id]
    assert i.reason is None
    assert i.invoices == {
        disputed.id: "dispute",
        planned.id: "plan",
        claimed.id: "payment_claim",
        pending.id: "pending_payment",
    }
    assert i.disputed == {disputed.id: 10_000, partly.id: 2_500}
    assert i.blocks("overdue_preventive", [free.id, partly.id]) is None
    assert i.blocks("overdue_preventive", [free.id, claimed.id]) == "payment_claim"
    assert i.blocks("installment_due", []) is None

    later = await paused_items(ids, today=DAY0 + dt.timedelta(days=5))
    assert later[staff.account.id].reason is None
    assert later[promised.account.id].reason is None
    assert later[items.account.id].invoices == {
        disputed.id: "dispute",
        planned.id: "plan",
        claimed.id: "payment_claim",  # the pending payment expired on day 1
    }


async def test_account_wide_claims_and_payments_and_the_exempt_templates(db):
    creditor = await make_creditor()
    case = await make_case(creditor)
    await invoice(case, 10_000, DAY0)
    await promise(case, 10_000, DAY0 + dt.timedelta(days=3))
    await claim(case, [], until=DAY0 + dt.timedelta(days=1))
    await pending_payment(case, [], 10_000, expires=at(DAY0 + dt.timedelta(days=2)))

    [pauses] = (await paused_items([case.account.id], today=DAY0)).values()
    assert pauses.reason == "promise"
    assert pauses.account_reasons == {"promise", "payment_claim", "pending_payment"}
    assert pauses.blocks("promise_reminder", []) == "payment_claim"
    assert pauses.blocks("overdue_preventive", []) == "promise"

    [later] = (await paused_items([case.account.id], today=DAY0 + dt.timedelta(days=3))).values()
    assert later.account_reasons == {"promise"}
    assert later.blocks("promise_reminder", []) is None
    assert later.blocks("reminder_before_due", []) == "promise"
    assert await paused_items([], today=DAY0) == {}
