"""The legal-escalation dossier PDF, read back with pypdf: parties, invoices, the statement with
its running balance, the interest computation with its basis, every message with its time and
status, contacts, promises, agreements and disputes; its download is audited."""

from __future__ import annotations

import io
import json

from pypdf import PdfReader

from saldo.services import account_actions
from saldo.services.account_dossier import dossier, dossier_pdf
from saldo.services.audit import Actor
from saldo.services.ledger import account_balance
from saldo.services.statement import Formats
from saldo.tables import AuditEvent
from tests.services.queue_world import build_rich_account


def _text(content: bytes) -> str:
    pages = PdfReader(io.BytesIO(content)).pages
    return " ".join(" ".join(page.extract_text() for page in pages).replace("\xa0", " ").split())


async def test_the_dossier_holds_what_a_lawyer_needs(db):
    rich = await build_rich_account()
    await account_actions.record_contact(
        rich.account_id,
        kind="call",
        outcome="refused",
        note="Dice que no va a pagar",
        staff_id=rich.staff_id,
        now=rich.now,
        today=rich.today,
    )
    await account_actions.escalate(
        rich.account_id,
        reason="Se niega a pagar",
        staff_id=rich.staff_id,
        now=rich.now,
        today=rich.today,
    )
    document = await dossier_pdf(rich.account_id, today=rich.today, now=rich.now)
    assert document.content.startswith(b"%PDF") and document.filename.startswith("legajo-")
    text = _text(document.content)
    fmt = Formats("ARS", "es_AR")

    def money(minor: int) -> str:
        return fmt.money(minor).text.replace("\xa0", " ")

    balance = money(await account_balance(rich.account_id))

    # parties and the account
    for expected in (
        "Legajo para cobranza judicial",
        "Conecta Telecom S.A.",
        "30-71234567-8",
        "Ñandú Ibáñez",
        f"DNI {rich.document}",
        "etapa Judicial",
    ):
        assert expected in text, expected
    # invoices and the statement with its running balance, ending on the balance
    assert "A-0001-00000042" in text and "A-0001-00000077" in text
    assert "Saldo final" in text and balance in text
    # interest: the policy in words and the per-invoice computation
    assert "1000 partes por millón" in text and "36.50 % anual" in text
    assert "5 días de gracia" in text and "tope del 50 % del capital" in text
    assert "1000 ppm" in text and money(900) in text  # three days of 300
    assert money(50_000) in text
    # every message with its time stamp and status, and why one was held back
    sent = next(
        m
        for m in (await dossier(rich.account_id, today=rich.today, now=rich.now)).messages
        if m.status == "sent"
    )
    assert sent.sent_at in text and "Su factura A-0001-00000042 venció" in text
    assert "Bloqueado: El deudor no acepta ese canal" in text
    # staff contacts, promises, agreements, disputes
    assert "Se niega a pagar" in text and "Dice que no va a pagar" in text
    assert "Cumplida" in text and money(100_000) in text
    assert "Rechazado" in text and "Me cobraron dos veces el abono" in text


async def test_downloading_the_dossier_is_audited(db):
    rich = await build_rich_account()
    by = Actor(rich.staff_id, "agente@saldo.example", "10.9.8.7")
    await dossier_pdf(rich.account_id, today=rich.today, now=rich.now, language="en", by=by)
    events = await AuditEvent.select().where(
        AuditEvent.action == "account.dossier_downloaded",
        AuditEvent.object_id == str(rich.account_id),
    )
    assert len(events) == 1 and events[0]["ip"] == "10.9.8.7"
    after = events[0]["after"]
    assert (after if isinstance(after, dict) else json.loads(after))["messages"] == 2


async def test_the_dossier_in_english(db):
    rich = await build_rich_account()
    document = await dossier_pdf(rich.account_id, today=rich.today, now=rich.now, language="en")
    text = _text(document.content)
    assert document.filename.startswith("legal-dossier-")
    assert "Legal collection dossier" in text and "INTEREST AND FEES COMPUTATION" in text
