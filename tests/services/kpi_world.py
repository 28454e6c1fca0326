"""A small portfolio with a known history for the KPI tests (services and web).

One creditor of its own (so other tests' rows never count), three ARS accounts and one USD
account, January–March 2026. Every figure the tests expect is worked out by hand in
tests/services/test_kpis.py from the events below.

    A1  INV1  100 000  issued 2025-11-01, due 2025-12-01; paid 40 000 on 01-10;
                       paid 10 000 on 03-05, reversed on 03-15
        INV4   30 000  issued 2026-03-10, due 2026-04-09
    A2  INV2   50 000  issued 2026-01-05, due 2026-02-04; paid in full on 02-01
    A3  INV3   80 000  issued 2026-01-20, due 2026-02-19; interest 2 000 on 03-01
    U1  USD invoice 999 900 (another currency: never in the ARS figures)

Promises, plans, contacts and messages are inserted as the services that own them leave them.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass

from saldo.services.ledger import apply_payment, post_entry, reverse_payment
from saldo.services.staff import create_staff
from saldo.tables import (
    Account,
    Creditor,
    Debtor,
    EntryKind,
    Interaction,
    Invoice,
    Notification,
    PaymentPlan,
    PromiseToPay,
)

D = dt.date


def at(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


@dataclass
class World:
    creditor_id: int
    creditor_name: str
    a1: int
    a2: int
    a3: int
    usd: int
    staff_id: int


async def _account(creditor_id: int, name: str, currency: str = "ARS") -> tuple[int, int]:
    debtor = Debtor(creditor=creditor_id, external_id=secrets.token_hex(4), name=name)
    await debtor.save()
    account = Account(creditor=creditor_id, debtor=debtor.id, currency=currency)
    await account.save()
    return account.id, debtor.id


async def _invoice(
    creditor_id: int, account_id: int, currency: str, total: int, issued: dt.date, due: dt.date
) -> int:
    invoice = Invoice(
        creditor=creditor_id,
        account=account_id,
        number=f"F-{secrets.token_hex(4)}",
        currency=currency,
        issue_date=issued,
        due_date=due,
        total=total,
    )
    await invoice.save()
    await post_entry(
        account_id=account_id,
        kind=EntryKind.charge,
        amount=total,
        currency=currency,
        effective_date=issued,
        invoice_id=invoice.id,
        idempotency_key=f"test:kpi:invoice:{invoice.id}",
    )
    return invoice.id


async def _pay(account_id: int, amount: int, day: dt.date) -> int:
    applied = await apply_payment(
        account_id=account_id,
        provider="manual",
        provider_payment_id=f"kpi-{secrets.token_hex(6)}",
        amount=amount,
        received_at=at(day),
    )
    return applied.payment_id


async def build_world(name: str = "") -> World:
    creditor = Creditor(name=name or f"Cobranzas KPI {secrets.token_hex(4)}")
    await creditor.save()
    c = creditor.id
    staff = await create_staff(
        f"kpi.{secrets.token_hex(4)}@saldo.example", "agent", "una frase larga y secreta"
    )
    (a1, d1), (a2, d2), (a3, d3) = [
        await _account(c, n) for n in ("Ana Ruiz", "Bruno Díaz", "Carla Gómez")
    ]
    usd, d4 = await _account(c, "Dana Smith", "USD")

    inv1 = await _invoice(c, a1, "ARS", 100_000, D(2025, 11, 1), D(2025, 12, 1))
    await _invoice(c, a2, "ARS", 50_000, D(2026, 1, 5), D(2026, 2, 4))
    inv3 = await _invoice(c, a3, "ARS", 80_000, D(2026, 1, 20), D(2026, 2, 19))
    await _invoice(c, a1, "ARS", 30_000, D(2026, 3, 10), D(2026, 4, 9))
    await _invoice(c, usd, "USD", 999_900, D(2025, 11, 1), D(2025, 12, 1))
    await _pay(usd, 500_000, D(2026, 1, 15))

    await _pay(a1, 40_000, D(2026, 1, 10))
    await _pay(a2, 50_000, D(2026, 2, 1))
    reversed_payment = await _pay(a1, 10_000, D(2026, 3, 5))
    await reverse_payment(reversed_payment, reason="Contracargo", effective_date=D(2026, 3, 15))
    await post_entry(
        account_id=a3,
        kind=EntryKind.interest,
        amount=2_000,
        currency="ARS",
        effective_date=D(2026, 3, 1),
        invoice_id=inv3,
        idempotency_key=f"test:kpi:interest:{inv3}",
    )
    assert inv1

    for account, status, resolved in (
        (a1, "kept", D(2026, 1, 15)),
        (a2, "broken", D(2026, 2, 10)),
        (a3, "kept", D(2026, 2, 20)),
        (a3, "cancelled", D(2026, 2, 21)),
        (a1, "open", None),
        (a2, "kept", D(2026, 4, 2)),
        (usd, "broken", D(2026, 1, 20)),
    ):
        await PromiseToPay(
            account=account,
            amount=1_000,
            promised_date=D(2026, 1, 1),
            status=status,
            source="staff",
            created_at=at(D(2025, 12, 20)),
            resolved_at=at(resolved) if resolved else None,
        ).save()

    for account, status, decided, ended in (
        (a1, "active", D(2025, 12, 15), None),
        (a2, "broken", D(2026, 1, 10), D(2026, 2, 15)),
        (a3, "completed", D(2025, 11, 1), D(2026, 1, 20)),
        (a3, "broken", D(2025, 10, 1), D(2025, 12, 20)),
        (a1, "proposed", D(2026, 2, 1), None),
        (usd, "broken", D(2026, 1, 1), D(2026, 1, 20)),
    ):
        await PaymentPlan(
            account=account,
            status=status,
            total=10_000,
            installments_count=2,
            first_date=D(2026, 1, 1),
            created_at=at(decided),
            decided_at=at(decided) if status != "proposed" else None,
            ended_at=at(ended) if ended else None,
        ).save()

    debtor_of = {a1: d1, a2: d2, a3: d3, usd: d4}
    for account, kind, outcome, day, by_staff in (
        (a1, "call", "reached", D(2026, 1, 12), True),
        (a1, "call", "no_answer", D(2026, 1, 13), True),
        (a3, "visit", "promised", D(2026, 1, 25), True),
        (a2, "call", "wrong_number", D(2026, 2, 3), True),
        (a1, "promise_kept", "", D(2026, 2, 11), False),
        (a3, "note", "", D(2026, 3, 20), True),
        (usd, "call", "reached", D(2026, 3, 2), True),
    ):
        await Interaction(
            account=account,
            debtor=debtor_of[account],
            kind=kind,
            channel="phone" if kind == "call" else "",
            data={"outcome": outcome} if outcome else {},
            staff=staff.id if by_staff else None,
            occurred_at=at(day),
        ).save()

    for account, channel, status, day in (
        (a1, "email", "sent", D(2026, 1, 3)),
        (a2, "email", "sent", D(2026, 1, 28)),
        (a3, "sms", "sent", D(2026, 1, 30)),
        (a3, "whatsapp", "blocked", D(2026, 1, 31)),
        (a1, "email", "sent", D(2026, 2, 2)),
        (a2, "email", "blocked", D(2026, 2, 27)),
        (a1, "email", "queued", D(2026, 3, 1)),
        (a1, "sms", "failed", D(2026, 3, 2)),
        (usd, "email", "sent", D(2026, 3, 3)),
    ):
        await Notification(
            debtor=debtor_of[account],
            account=account,
            channel=channel,
            template="reminder",
            idempotency_key=f"test:kpi:{secrets.token_hex(8)}",
            status=status,
            blocked_reason="frequency_cap" if status == "blocked" else "",
            send_after=at(day, 9),
            sent_at=at(day, 10) if status == "sent" else None,
            created_at=at(day - dt.timedelta(days=2)),
            context=json.dumps({}),
        ).save()
    return World(c, creditor.name, a1, a2, a3, usd, staff.id)


# ---------------------------------------------------------------------------- a year of history

DEBTOR_NAMES = (
    "Ferretería El Tornillo S.R.L.", "María José Núñez", "Panadería La Espiga", "Julián Pérez",
    "Kiosco Don Tito", "Lucía Fernández", "Transportes del Sur S.A.", "Martín Gómez",
    "Estudio Contable Ríos", "Sofía Herrera", "Almacén La Esquina", "Diego Romero",
    "Librería Alfonsina", "Valentina Castro", "Taller Mecánico Ruta 5", "Tomás Acosta",
    "Farmacia Central", "Camila Sosa", "Gimnasio Fuerza Sur", "Joaquín Medina",
    "Verdulería Los Andes", "Agustina Vera", "Constructora Patagonia", "Nicolás Benítez",
    "Óptica Visión", "Florencia Ledesma", "Bodega San Telmo", "Ignacio Molina",
    "Heladería Polar", "Rocío Giménez", "Imprenta Rápida", "Facundo Cabrera",
)  # fmt: skip


def _month_start(year: int, month: int) -> dt.date:
    return dt.date(year + (month - 1) // 12, (month - 1) % 12 + 1, 1)


async def build_history(today: dt.date, *, name: str = "Distribuidora Pampa S.A.") -> World:
    """A creditor with 32 ARS accounts and about fourteen months of invoices, payments (on
    time, late, partial, never), promises, plans, calls and messages up to `today`, from a
    fixed seed — enough for the dashboard to look like a real portfolio."""
    import random

    rng = random.Random(20260101)
    creditor = Creditor(name=name)
    await creditor.save()
    c = creditor.id
    staff = await create_staff(
        f"kpi.history.{secrets.token_hex(4)}@saldo.example", "agent", "una frase larga y secreta"
    )
    accounts: list[tuple[int, int, str]] = []
    for debtor_name in DEBTOR_NAMES:
        account, debtor = await _account(c, debtor_name)
        habit = rng.choices(["prompt", "late", "poor"], weights=[5, 4, 2])[0]
        accounts.append((account, debtor, habit))
    first = _month_start(today.year, today.month - 13)
    months = [_month_start(first.year, first.month + i) for i in range(14)]
    calls = notifications = 0
    for account, debtor, habit in accounts:
        for month in months:
            issued = month + dt.timedelta(days=rng.randint(0, 9))
            if issued > today or rng.random() > 0.75:
                continue
            total = rng.randrange(2_000_000, 36_000_000, 100)
            due = issued + dt.timedelta(days=30)
            invoice = await _invoice(c, account, "ARS", total, issued, due)
            if habit == "prompt":
                delay, share = rng.randint(-12, 6), 1.0
            elif habit == "late":
                delay, share = rng.randint(8, 75), rng.choice([1.0, 1.0, 0.5])
            else:
                delay, share = rng.randint(40, 160), rng.choice([0.0, 0.0, 0.3, 1.0])
            paid_on = due + dt.timedelta(days=delay)
            if share and paid_on <= today:
                await _pay(account, int(total * share), paid_on)
            if due < today - dt.timedelta(days=45) and habit != "prompt":
                interest_on = due + dt.timedelta(days=45)
                await post_entry(
                    account_id=account,
                    kind=EntryKind.interest,
                    amount=total // 40,
                    currency="ARS",
                    effective_date=interest_on,
                    invoice_id=invoice,
                    idempotency_key=f"test:kpi:interest:{invoice}",
                )
            # reminders before and after the due date; some blocked by the contact rules
            for offset, channel in ((-5, "email"), (1, "sms"), (7, "whatsapp"), (15, "email")):
                day = due + dt.timedelta(days=offset)
                if day > today or (offset > 0 and delay < offset):
                    continue
                blocked = rng.random() < 0.09
                await Notification(
                    debtor=debtor,
                    account=account,
                    channel=channel,
                    template="reminder",
                    idempotency_key=f"test:kpi:{secrets.token_hex(8)}",
                    status="blocked" if blocked else "sent",
                    blocked_reason="quiet_hours" if blocked else "",
                    send_after=at(day, 11),
                    sent_at=None if blocked else at(day, 11),
                    created_at=at(day, 3),
                    context={},
                ).save()
                notifications += 1
            # agents call the late payers
            if habit != "prompt" and delay > 10:
                for attempt in range(rng.randint(1, 3)):
                    day = due + dt.timedelta(days=12 + 6 * attempt + rng.randint(0, 3))
                    if day > today:
                        break
                    outcome = rng.choices(
                        ["reached", "no_answer", "promised", "callback", "wrong_number"],
                        weights=[3, 4, 3, 1, 1],
                    )[0]
                    await Interaction(
                        account=account,
                        debtor=debtor,
                        kind=rng.choices(["call", "visit"], weights=[9, 1])[0],
                        channel="phone",
                        data={"outcome": outcome},
                        staff=staff.id,
                        occurred_at=at(day, 15),
                    ).save()
                    calls += 1
                    if outcome == "promised":
                        resolved = day + dt.timedelta(days=rng.randint(5, 20))
                        kept = paid_on <= resolved or rng.random() < 0.35
                        await PromiseToPay(
                            account=account,
                            amount=total // 2,
                            promised_date=day + dt.timedelta(days=5),
                            status=("kept" if kept else "broken") if resolved <= today else "open",
                            source="staff",
                            created_by=staff.id,
                            created_at=at(day, 15),
                            resolved_at=at(resolved, 6) if resolved <= today else None,
                        ).save()
        if habit == "poor" or (habit == "late" and rng.random() < 0.5):
            agreed = months[rng.randint(2, 9)] + dt.timedelta(days=rng.randint(0, 20))
            broken = rng.random() < 0.4
            ended = agreed + dt.timedelta(days=rng.randint(45, 150))
            if ended > today:
                status, ended_at = "active", None
            else:
                status, ended_at = ("broken" if broken else "completed"), at(ended, 6)
            await PaymentPlan(
                account=account,
                status=status,
                total=5_000_000,
                installments_count=6,
                first_date=agreed,
                created_at=at(agreed, 10),
                decided_at=at(agreed, 12),
                ended_at=ended_at,
            ).save()
    assert calls and notifications
    a = [acc for acc, _, _ in accounts]
    return World(c, creditor.name, a[0], a[1], a[2], a[3], staff.id)
