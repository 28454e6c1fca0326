"""The work queue: one account of each reason in priority order, filters, paging, the
risk × balance snapshot, and bulk assignment with its audit trail."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from saldo.errors import ValidationFailed
from saldo.services import work_queue
from saldo.services.audit import Actor
from saldo.services.staff import create_staff
from saldo.services.work_queue import REASONS, QueueFilters, assign
from saldo.services.work_queue import work_queue as queue
from saldo.tables import Account, AuditEvent, Interaction, Task
from tests.services.queue_world import ABSENT, ORDER, build_world

PASSWORD = "una frase larga y secreta"


async def _staff(role: str = "agent", name: str = "") -> int:
    import secrets

    row = await create_staff(
        f"{role}.{secrets.token_hex(4)}@saldo.example", role, PASSWORD, name=name
    )
    return row.id


async def _kinds(world, **filters) -> list[str]:
    page = await queue(
        today=world.today,
        now=world.now,
        filters=QueueFilters(creditor_id=world.creditor_id, **filters),
        limit=200,
    )
    return [world.kind_of(row.account_id) for row in page.rows]


async def test_every_reason_in_priority_order_paused_last_closed_and_settled_never(db):
    world = await build_world()
    page = await queue(
        today=world.today,
        now=world.now,
        filters=QueueFilters(creditor_id=world.creditor_id),
        limit=200,
    )
    kinds = [world.kind_of(row.account_id) for row in page.rows]
    assert kinds == list(ORDER)
    assert not set(ABSENT) & set(kinds)
    rows = {world.kind_of(r.account_id): r for r in page.rows}
    for kind in ORDER[:9]:
        assert rows[kind].reasons == (kind,), kind
        assert rows[kind].score == next(r.points for r in REASONS if r.key == kind)
    for kind in ("plain_high", "plain_low", "paused_plain"):
        assert rows[kind].reasons == () and rows[kind].score == 0
    assert rows["paused_reason"].reasons == ("callback",)
    assert rows["paused_reason"].paused_until == world.today + dt.timedelta(days=5)
    assert rows["callback"].paused_until is None
    assert rows["plain_high"].exposure > rows["plain_low"].exposure > 0
    assert rows["high_exposure"].exposure >= work_queue.HIGH_EXPOSURE
    # live figures for the rows shown
    assert rows["high_exposure"].balance.minor == 2_000_000_000
    assert rows["callback"].days_overdue == 20
    assert rows["callback"].debtor_name == "Camila Llamada"


async def test_reasons_add_up_and_the_oldest_due_comes_first(db):
    world = await build_world()
    both, callback = world.accounts["task"], world.accounts["callback"]
    # the task account also gets a callback: 400 + 100 beats the callback alone
    await Account.update({Account.next_action_on: world.today}).where(Account.id == both)
    kinds = await _kinds(world)
    assert kinds.index("task") < kinds.index("callback")
    # two callbacks alone: the older one first
    await Task.update({Task.status: "done"}).where(Task.account == both)
    await Account.update({Account.next_action_on: world.today - dt.timedelta(days=3)}).where(
        Account.id == both
    )
    kinds = await _kinds(world)
    assert kinds.index("task") == kinds.index("callback") - 1
    assert callback


async def test_what_is_no_longer_open_leaves_the_queue(db):
    world = await build_world()
    await Task.update({Task.status: "done"}).where(Task.account == world.accounts["broken_promise"])
    await Account.update({Account.next_action_on: world.today + dt.timedelta(days=1)}).where(
        Account.id == world.accounts["callback"]
    )
    page = await queue(
        today=world.today, now=world.now, filters=QueueFilters(creditor_id=world.creditor_id)
    )
    rows = {world.kind_of(r.account_id): r for r in page.rows}
    # both still owe, so they stay in the queue, but without a reason, among the rest
    assert rows["broken_promise"].reasons == () and rows["callback"].reasons == ()
    kinds = [world.kind_of(r.account_id) for r in page.rows]
    assert kinds.index("broken_promise") > kinds.index("task")


async def test_a_dispute_far_from_its_deadline_is_no_reason(db):
    world = await build_world()
    from saldo.tables import Dispute

    await Dispute.update({Dispute.sla_due_at: world.now + dt.timedelta(days=5)}).where(
        Dispute.account == world.accounts["dispute_due"]
    )
    kinds = await _kinds(world)
    assert kinds.index("dispute_due") > kinds.index("task")


async def test_pages_follow_each_other_without_gaps_or_repeats(db):
    world = await build_world()
    seen: list[str] = []
    offset = 0
    while True:
        page = await queue(
            today=world.today,
            now=world.now,
            filters=QueueFilters(creditor_id=world.creditor_id),
            limit=4,
            offset=offset,
        )
        seen += [world.kind_of(r.account_id) for r in page.rows]
        offset += 4
        if not page.has_more:
            break
    assert seen == list(ORDER)
    assert page.first == 13 and page.last == 13 and page.page == 4


async def test_filters_by_segment_stage_assignee_and_nobody(db):
    world = await build_world()
    agent = await _staff("agent")
    a = world.accounts
    await Account.update({Account.segment: "late"}).where(Account.id == a["task"])
    await Account.update({Account.stage: "administrative"}).where(
        Account.id.is_in([a["plan_review"], a["plain_low"]])
    )
    await Account.update({Account.assignee: agent}).where(
        Account.id.is_in([a["callback"], a["paused_plain"]])
    )
    assert await _kinds(world, segment="late") == ["task"]
    assert await _kinds(world, stage="administrative") == ["plan_review", "plain_low"]
    assert await _kinds(world, stage="judicial") == []
    assert await _kinds(world, assignee=agent) == ["callback", "paused_plain"]
    unassigned = await _kinds(world, unassigned=True)
    assert "callback" not in unassigned and len(unassigned) == len(ORDER) - 2
    with pytest.raises(ValidationFailed):
        await queue(today=world.today, now=world.now, filters=QueueFilters(stage="closed"))


async def test_risk_times_balance_is_a_snapshot_until_refreshed(db):
    world = await build_world()
    low, high = world.accounts["plain_low"], world.accounts["plain_high"]
    await Account.update({Account.risk_score: 100}).where(Account.id == low)
    from saldo.services.ledger import post_entry
    from saldo.tables import EntryKind

    await post_entry(
        account_id=low,
        kind=EntryKind.charge,
        amount=90_000_000,
        currency="ARS",
        effective_date=world.today,
        idempotency_key=f"test:bump:{low}",
    )
    kinds = await _kinds(world)
    assert kinds.index("plain_high") < kinds.index("plain_low")  # not refreshed yet
    await work_queue.refresh_exposure()
    kinds = await _kinds(world)
    # 100 × 0.91 large balances is now "high" on its own, above the callbacks
    assert kinds.index("plain_low") < kinds.index("callback")
    assert high


@given(st.sets(st.sampled_from([r.key for r in REASONS])))
@settings(max_examples=40, deadline=None)
async def test_the_score_is_the_sum_of_the_points_of_each_reason(db, keys):
    flags = sum(r.bit for r in REASONS if r.key in keys)
    rows = await Account.raw(
        f"SELECT {work_queue._points_sql('f.flags')} AS points FROM (SELECT {{}}::int AS flags) f",
        flags,
    )
    assert rows[0]["points"] == sum(r.points for r in REASONS if r.key in keys)
    assert work_queue._reasons(flags) == tuple(r.key for r in REASONS if r.key in keys)


# ---------------------------------------------------------------------------- assignment


async def test_bulk_assign_moves_accounts_and_open_tasks_with_an_audit_event_each(db):
    world = await build_world(refresh=False)
    supervisor = await _staff("supervisor", name="Sofía Supervisora")
    agent = await _staff("agent", name="Andrés Agente")
    a = world.accounts
    ids = [a["broken_promise"], a["callback"], a["task"]]
    by = Actor(supervisor, "sofia@saldo.example", "10.0.0.9")
    done = await assign([*ids, 2**31 - 9], agent, by=by, now=world.now)
    assert sorted(done.changed) == sorted(ids)
    assert done.staff_name == "Andrés Agente" and done.missing == (2**31 - 9,)
    assert await _kinds(world, assignee=agent) == ["broken_promise", "callback", "task"]
    tasks = await Task.select(Task.assignee).where(Task.account.is_in(ids), Task.status == "open")
    assert tasks and {t["assignee"] for t in tasks} == {agent}
    events = await AuditEvent.select().where(
        AuditEvent.action == "account.assigned", AuditEvent.object_id.is_in([str(i) for i in ids])
    )
    assert len(events) == 3
    for event in events:
        before = (
            event["before"] if isinstance(event["before"], dict) else json.loads(event["before"])
        )
        after = event["after"] if isinstance(event["after"], dict) else json.loads(event["after"])
        assert before == {"assignee": None} and after["assignee"] == agent
        assert event["staff"] == supervisor and event["ip"] == "10.0.0.9"
    timeline = await Interaction.select().where(
        Interaction.account == a["task"], Interaction.kind == "assigned"
    )
    assert len(timeline) == 1 and "Andrés Agente" in timeline[0]["summary"]

    # assigning again changes nothing and writes nothing; taking them back does
    again = await assign(ids, agent, by=by, now=world.now)
    assert again.changed == () and again.unchanged == 3
    back = await assign(ids[:1], None, by=by, now=world.now)
    assert back.changed == (ids[0],)
    assert await _kinds(world, assignee=agent) == ["callback", "task"]
    assert (
        len(
            await AuditEvent.select().where(
                AuditEvent.action == "account.assigned", AuditEvent.object_id == str(ids[0])
            )
        )
        == 2
    )


async def test_assign_refuses_finance_nobody_chosen_and_too_many(db):
    world = await build_world(refresh=False)
    finance = await _staff("finance")
    by = Actor(None, "cli")
    with pytest.raises(ValidationFailed) as refused:
        await assign([world.accounts["task"]], finance, by=by, now=world.now)
    assert refused.value.field == "assignee"
    with pytest.raises(ValidationFailed) as empty:
        await assign([], None, by=by, now=world.now)
    assert empty.value.field == "accounts"
    with pytest.raises(ValidationFailed):
        await assign(list(range(1, work_queue.MAX_ASSIGN + 2)), None, by=by, now=world.now)
    row = await Account.select(Account.assignee).where(Account.id == world.accounts["task"])
    assert row[0]["assignee"] is None


async def test_the_worker_refreshes_the_snapshot_every_few_minutes(db, servers):
    from saldo import tasks, worker

    world = await build_world(refresh=False)
    assert "plain_high" not in await _kinds(world)  # owes, but not in the snapshot yet
    result = await tasks.refresh_work_queue({})
    assert result["refreshed"] is True
    assert "plain_high" in await _kinds(world)
    assert worker.REFRESH_WORK_QUEUE_MINUTES == work_queue.REFRESH_MINUTES
    built = worker.build_worker(servers.redis_url, servers.redis_prefix, burst=True)
    crons = {job.name: job for job in built.cron_jobs}
    job = crons[f"{servers.redis_prefix}cron:refresh_work_queue"]
    assert job.minute == set(range(5, 60, work_queue.REFRESH_MINUTES))


async def test_only_the_highest_risk_times_balance_accounts_are_a_reason(db, monkeypatch):
    from saldo.services.ledger import post_entry
    from saldo.tables import EntryKind

    world = await build_world(refresh=False)
    top, second = world.accounts["high_exposure"], world.accounts["plain_high"]
    await Account.update({Account.risk_score: 100}).where(Account.id == second)
    await post_entry(
        account_id=second,
        kind=EntryKind.charge,
        amount=20_001_234,
        currency="ARS",
        effective_date=world.today,
        idempotency_key=f"test:more:{second}",
    )
    await work_queue.refresh_exposure()

    async def at_least(exposure: int) -> int:
        rows = await Account.raw(
            "SELECT count(*) AS n FROM account_exposure WHERE exposure >= {}", exposure
        )
        return int(rows[0]["n"])

    rows = {world.kind_of(r.account_id): r for r in (await _page(world)).rows}
    assert rows["high_exposure"].exposure == 1_800_000
    assert rows["plain_high"].exposure == 70_001  # 100 × 0.70001 large balances
    # room for everyone from 70 001 up: both are a reason
    monkeypatch.setattr(work_queue, "HIGH_EXPOSURE_TOP", await at_least(70_001))
    rows = {world.kind_of(r.account_id): r for r in (await _page(world)).rows}
    assert rows["high_exposure"].reasons == rows["plain_high"].reasons == ("high_exposure",)
    # room only for those from 1 800 000 up: the second is not
    monkeypatch.setattr(work_queue, "HIGH_EXPOSURE_TOP", await at_least(1_800_000))
    rows = {world.kind_of(r.account_id): r for r in (await _page(world)).rows}
    assert rows["high_exposure"].reasons == ("high_exposure",)
    assert rows["plain_high"].reasons == ()
    assert top


async def _page(world, limit: int = 200, offset: int = 0):
    return await queue(
        today=world.today,
        now=world.now,
        filters=QueueFilters(creditor_id=world.creditor_id),
        limit=limit,
        offset=offset,
    )


async def test_the_order_is_the_same_when_few_accounts_are_ranked_first(db, monkeypatch):
    world = await build_world()
    whole = await _kinds(world)
    paged = [world.kind_of(r.account_id) for r in (await _page(world, limit=3, offset=3)).rows]
    monkeypatch.setattr(work_queue, "RANK_FIRST", 2)  # the rest is ranked on demand
    assert await _kinds(world) == whole == list(ORDER)
    again = [world.kind_of(r.account_id) for r in (await _page(world, limit=3, offset=3)).rows]
    assert again == paged == list(ORDER[3:6])
