"""A portfolio with one account for each reason the work queue knows, for queue, account and
browser tests. Each call makes its own creditor (filter the queue by it to see only these).

Balances are in ARS (large balance: 100 000 000 minor units). Every account but "settled" owes
an invoice due 20 days ago; risk scores are set so that only "high_exposure" reaches the
high risk × balance threshold, and "plain_high" outranks "plain_low" by risk × balance.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field

from saldo.services.plan_records import insert_task
from saldo.services.work_queue import refresh_exposure
from saldo.tables import Account, Creditor, Debtor, Dispute, PaymentClaim, PaymentPlan
from tests.services.helpers import make_invoice

#: The accounts in the order the queue must show them.
ORDER = (
    "broken_promise",
    "plan_review",
    "plan_offered",
    "dispute_overdue",
    "dispute_due",
    "unapplied",
    "high_exposure",
    "callback",
    "task",
    "plain_high",
    "plain_low",
    "paused_reason",
    "paused_plain",
)
#: In the portfolio but never in the queue.
ABSENT = ("closed", "settled")

NAMES = {
    "broken_promise": "Bruno Promesa",
    "plan_review": "Paula Revisión",
    "plan_offered": "Óscar Contraoferta",
    "dispute_overdue": "Diego Vencido",
    "dispute_due": "Dora Porvencer",
    "unapplied": "Úrsula Yapagué",
    "high_exposure": "Héctor Riesgo",
    "callback": "Camila Llamada",
    "task": "Tomás Tarea",
    "plain_high": "Ángela Saldo",
    "plain_low": "Luis Saldo",
    "paused_reason": "Pía Pausada",
    "paused_plain": "Pedro Pausado",
    "closed": "Carlos Cerrado",
    "settled": "Sara Saldada",
}


@dataclass
class QueueWorld:
    creditor_id: int
    today: dt.date
    now: dt.datetime
    accounts: dict[str, int] = field(default_factory=dict)
    debtors: dict[str, int] = field(default_factory=dict)

    def kind_of(self, account_id: int) -> str:
        return next(k for k, v in self.accounts.items() if v == account_id)


async def _account(world: QueueWorld, kind: str, *, risk: int, total: int) -> int:
    debtor = Debtor(
        creditor=world.creditor_id,
        external_id=f"{kind}-{secrets.token_hex(3)}",
        name=NAMES[kind],
        document_type="DNI",
        document_number=f"{secrets.randbelow(10**8):08d}",
        email=f"{kind}.{secrets.token_hex(3)}@example.com",
        phone=f"+54911{secrets.randbelow(10**8):08d}",
    )
    await debtor.save()
    account = Account(creditor=world.creditor_id, debtor=debtor.id, currency="ARS", risk_score=risk)
    await account.save()
    if total:
        await make_invoice(
            account, f"F-{kind}-{secrets.token_hex(2)}", total, world.today - dt.timedelta(days=20)
        )
    world.accounts[kind] = account.id
    world.debtors[kind] = debtor.id
    return account.id


async def build_world(
    today: dt.date | None = None, now: dt.datetime | None = None, *, refresh: bool = True
) -> QueueWorld:
    now = now or dt.datetime.now(dt.UTC)
    today = today or now.date()
    creditor = Creditor(name=f"Cola {secrets.token_hex(4)}")
    await creditor.save()
    world = QueueWorld(creditor.id, today, now)
    small = 1_000_000  # 10 000 pesos
    for kind in ORDER + ABSENT:
        risk, total = 20, small
        if kind == "high_exposure":
            risk, total = 90, 2_000_000_000  # 20 large balances: far above anyone else
        elif kind == "plain_high":
            risk, total = 50, 50_000_000
        elif kind == "plain_low":
            risk, total = 10, small
        elif kind == "settled":
            risk, total = 0, 0
        account_id = await _account(world, kind, risk=risk, total=total)
        if kind == "broken_promise":
            await insert_task(
                dedupe_key=f"test:broken:{account_id}",
                kind="broken_promise",
                title="No cumplió la promesa",
                account_id=account_id,
                assignee=None,
                due_on=today,
                now=now,
            )
        elif kind in ("plan_review", "plan_offered"):
            await PaymentPlan(
                account=account_id,
                status="proposed" if kind == "plan_review" else "offered",
                total=small,
                installments_count=3,
                first_date=today + dt.timedelta(days=3),
                created_at=now,
            ).save()
        elif kind in ("dispute_overdue", "dispute_due"):
            sla = (
                now - dt.timedelta(days=1)
                if kind == "dispute_overdue"
                else now + dt.timedelta(days=1)
            )
            await Dispute(
                account=account_id, amount=1000, reason_code="other", sla_due_at=sla
            ).save()
        elif kind == "unapplied":
            await PaymentClaim(account=account_id, amount=small, paid_on=today).save()
        elif kind in ("callback", "closed", "paused_reason"):
            await Account.update({Account.next_action_on: today}).where(Account.id == account_id)
        elif kind == "task":
            await insert_task(
                dedupe_key=f"test:task:{account_id}",
                kind="call",
                title="Llamar",
                account_id=account_id,
                assignee=None,
                due_on=today,
                now=now,
            )
        if kind in ("paused_reason", "paused_plain"):
            await Account.update(
                {Account.paused_until: today + dt.timedelta(days=5), Account.pause_reason: "Viaje"}
            ).where(Account.id == account_id)
        if kind == "closed":
            await Account.update({Account.stage: "closed"}).where(Account.id == account_id)
    if refresh:
        await refresh_exposure()
    return world


@dataclass
class RichAccount:
    """One account with a bit of everything the 360° page and the dossier show."""

    account_id: int
    debtor_id: int
    other_account_id: int  # the same debtor at another creditor
    document: str  # "12.345.678", unique per build so a search finds exactly this debtor
    invoices: dict[str, int]
    staff_id: int
    today: dt.date
    now: dt.datetime


async def build_rich_account(now: dt.datetime | None = None) -> RichAccount:
    from saldo.services.ledger import apply_payment, post_entry
    from saldo.services.plan_records import interaction
    from saldo.services.staff import create_staff
    from saldo.tables import (
        ContactPreference,
        EntryKind,
        FeePolicy,
        Invoice,
        Notification,
        PromiseToPay,
    )

    now = now or dt.datetime.now(dt.UTC)
    today = now.date()
    digits = f"{secrets.randbelow(90_000_000) + 10_000_000}"
    document = f"{digits[:2]}.{digits[2:5]}.{digits[5:]}"
    creditor = Creditor(
        name=f"Conecta {secrets.token_hex(4)}",
        legal_name="Conecta Telecom S.A.",
        tax_id="30-71234567-8",
    )
    await creditor.save()
    await FeePolicy(
        creditor=creditor.id, daily_rate_ppm=1000, fixed_fee=50_000, grace_days=5, cap_bp=5000
    ).save()
    debtor = Debtor(
        creditor=creditor.id,
        external_id=secrets.token_hex(4),
        name="Ñandú Ibáñez",
        document_type="DNI",
        document_number=document,
        email=f"nandu.{secrets.token_hex(3)}@example.com",
        phone="+5491144556677",
        timezone="America/Argentina/Buenos_Aires",
    )
    await debtor.save()
    account = Account(
        creditor=creditor.id, debtor=debtor.id, currency="ARS", risk_score=55, segment="late"
    )
    await account.save()
    other = Creditor(name=f"Otro {secrets.token_hex(4)}")
    await other.save()
    other_debtor = Debtor(creditor=other.id, external_id=secrets.token_hex(4), name="Ñandú Ibáñez")
    await other_debtor.save()
    other_account = Account(creditor=other.id, debtor=other_debtor.id, currency="ARS")
    await other_account.save()
    staff = await create_staff(
        f"agente.{secrets.token_hex(4)}@saldo.example",
        "agent",
        "una frase larga y secreta",
        name="Andrés Agente",
    )

    old = await make_invoice(account, "A-0001-00000042", 300_000, today - dt.timedelta(days=75))
    new = await make_invoice(account, "A-0001-00000077", 120_000, today - dt.timedelta(days=10))
    paid = await make_invoice(account, "A-0001-00000011", 80_000, today - dt.timedelta(days=120))
    await apply_payment(
        account_id=account.id,
        provider="bank",
        provider_payment_id=secrets.token_hex(6),
        amount=80_000,
        received_at=now - dt.timedelta(days=100),
        method="transferencia",
        preferred_invoice_ids=[paid.id],
    )
    await apply_payment(
        account_id=account.id,
        provider="bank",
        provider_payment_id=secrets.token_hex(6),
        amount=100_000,
        received_at=now - dt.timedelta(days=30),
        method="transferencia",
        preferred_invoice_ids=[old.id],
    )
    for day in range(3):
        effective = today - dt.timedelta(days=60 - day)
        await post_entry(
            account_id=account.id,
            kind=EntryKind.interest,
            amount=300,
            currency="ARS",
            effective_date=effective,
            invoice_id=old.id,
            description="Interés por mora de la factura A-0001-00000042",
            basis={
                "daily_rate_ppm": 1000,
                "principal": 300_000,
                "days": 1,
                "since": effective.isoformat(),
                "grace_days": 5,
            },
            idempotency_key=f"test:interest:{old.id}:{day}",
        )
    await post_entry(
        account_id=account.id,
        kind=EntryKind.fee,
        amount=50_000,
        currency="ARS",
        effective_date=today - dt.timedelta(days=69),
        invoice_id=old.id,
        description="Cargo por la factura A-0001-00000042 vencida",
        basis={"fixed_fee": 50_000, "due_date": old.due_date.isoformat()},
        idempotency_key=f"test:fee:{old.id}",
    )
    sent_at = now - dt.timedelta(days=40)
    await Notification(
        debtor=debtor.id,
        account=account.id,
        channel="email",
        template="overdue_7",
        to_address=debtor.email,
        subject="Su factura A-0001-00000042 venció",
        idempotency_key=f"test:n:{secrets.token_hex(6)}",
        status="sent",
        sent_at=sent_at,
        created_at=sent_at - dt.timedelta(minutes=5),
    ).save()
    await Notification(
        debtor=debtor.id,
        account=account.id,
        channel="sms",
        template="overdue_15",
        to_address="",
        idempotency_key=f"test:n:{secrets.token_hex(6)}",
        status="blocked",
        blocked_reason="opted_out",
        created_at=now - dt.timedelta(days=20),
    ).save()
    await ContactPreference(
        debtor=debtor.id,
        channel="sms",
        opted_in=False,
        source="portal",
        changed_at=now - dt.timedelta(days=25),
    ).save()
    await Dispute(
        account=account.id,
        invoice=new.id,
        amount=20_000,
        reason_code="wrong_amount",
        reason_text="Me cobraron dos veces el abono",
        sla_due_at=now + dt.timedelta(days=4),
        created_at=now - dt.timedelta(days=3),
    ).save()
    await PaymentPlan(
        account=account.id,
        status="rejected",
        total=300_000,
        installments_count=6,
        first_date=today - dt.timedelta(days=50),
        review_reason="Muy largo",
        created_at=now - dt.timedelta(days=52),
    ).save()
    await PromiseToPay(
        account=account.id,
        amount=100_000,
        promised_date=today - dt.timedelta(days=35),
        status="kept",
        source="portal",
        created_at=now - dt.timedelta(days=38),
        resolved_at=now - dt.timedelta(days=30),
    ).save()
    await interaction(
        account_id=account.id,
        debtor_id=debtor.id,
        kind="payment_claimed",
        summary="Informó un pago",
        now=now - dt.timedelta(days=2),
        channel="portal",
    )
    await interaction(
        account_id=other_account.id,
        debtor_id=other_debtor.id,
        kind="call",
        summary="De otra cuenta",
        now=now - dt.timedelta(days=1),
        channel="phone",
    )
    from saldo.tables import Interaction

    await Interaction(
        debtor=debtor.id,
        kind="portal_login",
        channel="portal",
        direction="inbound",
        summary="Ingresó al portal",
        occurred_at=now - dt.timedelta(days=2, hours=1),
    ).save()
    await insert_task(
        dedupe_key=f"test:rich:{account.id}",
        kind="call",
        title="Llamar por la A-42",
        account_id=account.id,
        assignee=staff.id,
        due_on=today,
        now=now,
    )
    invoices = {"old": old.id, "new": new.id, "paid": paid.id}
    assert await Invoice.count().where(Invoice.account == account.id) == 3
    assert await PromiseToPay.count().where(PromiseToPay.account == account.id) == 1
    return RichAccount(
        account.id, debtor.id, other_account.id, document, invoices, staff.id, today, now
    )
