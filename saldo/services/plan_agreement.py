"""The written agreement of an accepted payment plan, as a PDF (Spanish or English).

It names the parties (the creditor's legal name and tax id, the collection agency if there is
one, the debtor and their document), itemizes the balance the plan covers (each invoice and
the amount included; the amounts sum exactly to the plan's total), lists the schedule, says
what happens when an installment is not paid (grace days, how many missed installments end the
plan, that what was paid is kept), whether paying every installment settles the debt in full,
the early-settlement discount if the policy has one, and the date it was agreed.

Amounts per invoice: what each invoice owed when the plan was made (what it owes now plus the
payments on it counted toward the plan, less its open disputes), then the plan's total is
spread over them oldest first (`money.allocate_oldest_first`), so the itemization always adds
up to the total. Only accepted plans (active, completed, broken) have an agreement.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from saldo import money
from saldo.errors import NotFound
from saldo.i18n import gettext
from saldo.services.plan_policy import frequency_label, policy_for
from saldo.services.plan_views import installment_label
from saldo.services.plans import AGREED_STATUSES, disputed_amounts, proposal_of
from saldo.services.statement import (
    Amount,
    CreditorView,
    DebtorView,
    Document,
    Formats,
    display_locale,
    local_today,
    resolve_language,
)
from saldo.tables import PaymentPlan

__all__ = ["AgreementView", "agreement", "agreement_pdf", "render_agreement"]

_MAX_ID: Final = 2**31 - 1


@dataclass(frozen=True, slots=True)
class AgreementItem:
    number: str
    due: str
    amount: Amount


@dataclass(frozen=True, slots=True)
class AgreementRow:
    label: str
    due: str
    amount: Amount


@dataclass(frozen=True, slots=True)
class AgreementView:
    plan_id: int
    status: str
    language: str
    locale: str
    creditor: CreditorView
    agency: str
    debtor: DebtorView
    currency: str
    agreed_on: str
    issued_on: str
    total: Amount
    down_payment: Amount
    installments_count: int
    frequency: str
    items: tuple[AgreementItem, ...]
    other: Amount | None  # part of the total no listed invoice accounts for any more
    disputed: Amount | None  # left out of the plan while disputed
    rows: tuple[AgreementRow, ...]
    grace_days: int
    missed_to_break: int
    discount: str | None  # the early-settlement discount, as a percentage


_PLAN_SQL: Final = """
    SELECT p.*, a.currency, a.debtor AS debtor_id,
           c.id AS creditor_id, c.name AS creditor_name, c.legal_name, c.tax_id, c.email,
           c.phone, c.country AS creditor_country, c.agency_name,
           d.name, d.document_type, d.document_number, d.email AS debtor_email,
           d.phone AS debtor_phone, d.whatsapp, d.country, d.language, d.timezone
    FROM payment_plan p JOIN account a ON a.id = p.account
    JOIN creditor c ON c.id = a.creditor JOIN debtor d ON d.id = a.debtor
"""


async def _plan(debtor_ids: Sequence[int] | None, plan_id: int) -> dict[str, Any]:
    if not 0 < plan_id <= _MAX_ID:
        raise NotFound("No encontramos ese plan.")
    if debtor_ids is None:
        rows = await PaymentPlan.raw(f"{_PLAN_SQL} WHERE p.id = {{}}", plan_id)
    else:
        ids = sorted({int(i) for i in debtor_ids if 0 < int(i) <= _MAX_ID})
        rows = await PaymentPlan.raw(
            f"{_PLAN_SQL} WHERE p.id = {{}} AND a.debtor = ANY({{}}::int[])", plan_id, ids
        )
    if not rows or rows[0]["status"] not in AGREED_STATUSES:
        raise NotFound("No encontramos ese plan.")
    return dict(rows[0])


async def _invoice_amounts(plan: dict[str, Any]) -> list[dict[str, Any]]:
    """Each covered invoice with what it owes now and what was paid on it toward the plan."""
    ids = json.loads(plan["invoice_ids"]) if isinstance(plan["invoice_ids"], str) else []
    if not isinstance(ids, list) or not ids:
        return []
    return await PaymentPlan.raw(
        """SELECT i.id, i.number, i.due_date,
                  (SELECT coalesce(sum(e.amount), 0) FROM ledger_entry e
                   WHERE e.invoice = i.id)::bigint AS open_now,
                  (SELECT coalesce(-sum(e.amount + coalesce(rev.amount, 0)), 0)
                   FROM ledger_entry e
                   LEFT JOIN LATERAL (
                       SELECT pm.received_at AS at FROM payment_allocation pa
                       JOIN payment pm ON pm.id = pa.payment
                       WHERE pa.ledger_entry = e.id LIMIT 1
                   ) received ON true
                   LEFT JOIN LATERAL (
                       SELECT sum(r.amount) AS amount FROM ledger_entry r
                       WHERE r.reverses = e.id
                   ) rev ON true
                   WHERE e.invoice = i.id AND e.kind = 'payment'
                     AND coalesce(received.at, e.created_at) >= {})::bigint AS paid_since
           FROM invoice i WHERE i.id = ANY({}::int[])
           ORDER BY i.due_date, i.id""",
        plan["created_at"],
        [int(i) for i in ids],
    )


async def agreement(
    debtor_ids: Sequence[int] | None,
    plan_id: int,
    *,
    language: str | None = None,
    now: dt.datetime | None = None,
) -> AgreementView:
    """The agreement of an accepted plan; `debtor_ids=None` is staff (no debtor scoping)."""
    plan = await _plan(debtor_ids, plan_id)
    lang = resolve_language(language, plan["language"])
    locale = display_locale(lang, plan["country"])
    fmt = Formats(plan["currency"], locale)
    invoices, disputed, policy, installments = await asyncio.gather(
        _invoice_amounts(plan),
        disputed_amounts([int(plan["account"])]),
        policy_for(int(plan["account"])),
        PaymentPlan.raw(
            "SELECT number, due_date, amount FROM installment WHERE plan = {} ORDER BY number",
            plan_id,
        ),
    )
    proposal = proposal_of(plan)
    at_start = []
    excluded = 0
    for invoice in invoices:
        held = disputed.get(int(invoice["id"]), 0)
        owed = int(invoice["open_now"]) + int(invoice["paid_since"])
        excluded += min(held, max(owed, 0))
        if owed - held > 0:
            at_start.append((invoice, owed - held))
    allocations, other = money.allocate_oldest_first(
        proposal.total, [(int(i["id"]), amount) for i, amount in at_start]
    )
    by_id = {int(i["id"]): i for i, _ in at_start}
    decided = plan["decided_at"] or plan["created_at"]
    moment = now or dt.datetime.now(dt.UTC)
    return AgreementView(
        plan_id=plan_id,
        status=str(plan["status"]),
        language=lang,
        locale=locale,
        creditor=CreditorView(
            id=int(plan["creditor_id"]),
            name=str(plan["creditor_name"]),
            legal_name=str(plan["legal_name"] or plan["creditor_name"]),
            tax_id=str(plan["tax_id"]),
            email=str(plan["email"]),
            phone=str(plan["phone"]),
            country=str(plan["creditor_country"]),
        ),
        agency=str(plan["agency_name"] or ""),
        debtor=DebtorView(
            id=int(plan["debtor_id"]),
            name=str(plan["name"]),
            document_type=str(plan["document_type"]),
            document_number=str(plan["document_number"]),
            email=str(plan["debtor_email"]),
            phone=str(plan["debtor_phone"]),
            whatsapp=str(plan["whatsapp"]),
            country=str(plan["country"]),
            language=str(plan["language"]),
            timezone=str(plan["timezone"]),
        ),
        currency=str(plan["currency"]),
        agreed_on=fmt.date(local_today(decided, plan["timezone"])),
        issued_on=fmt.date(local_today(moment, plan["timezone"])),
        total=fmt.money(proposal.total),
        down_payment=fmt.money(proposal.down_payment),
        installments_count=proposal.installments,
        frequency=frequency_label(lang, proposal.frequency.value),
        items=tuple(
            AgreementItem(
                number=str(by_id[invoice_id]["number"]),
                due=fmt.date(by_id[invoice_id]["due_date"]),
                amount=fmt.money(amount),
            )
            for invoice_id, amount in allocations
        ),
        other=fmt.money(other) if other else None,
        disputed=fmt.money(excluded) if excluded else None,
        rows=tuple(
            AgreementRow(
                label=installment_label(lang, int(r["number"])),
                due=fmt.date(r["due_date"]),
                amount=fmt.money(int(r["amount"])),
            )
            for r in installments
        ),
        grace_days=policy.grace_days,
        missed_to_break=policy.missed_to_break,
        discount=fmt.percent(Decimal(policy.early_settlement_discount_bp) / 100)
        if policy.early_settlement_discount_bp
        else None,
    )


async def agreement_pdf(
    debtor_ids: Sequence[int] | None,
    plan_id: int,
    language: str | None = None,
    *,
    now: dt.datetime | None = None,
) -> Document:
    """The agreement as a PDF; `debtor_ids=None` is staff (no debtor scoping)."""
    view = await agreement(debtor_ids, plan_id, language=language, now=now)
    content = await asyncio.to_thread(render_agreement, view)
    prefix = gettext(view.language, "acuerdo-de-pago")
    return Document(f"{prefix}-{plan_id}.pdf", content)


# ---------------------------------------------------------------------------- the document


def render_agreement(view: AgreementView) -> bytes:
    from fpdf.enums import XPos, YPos

    from saldo.pdf import (
        MARGIN,
        MUTED,
        _brand,
        _creditor_lines,
        _debtor_lines,
        _Document,
        _facts,
        _party_block,
    )

    pdf = _Document(view.language, "")
    pdf.footer_note = pdf.gettext("Emitido por Saldo el {date} para {name}.").format(
        date=view.issued_on, name=view.debtor.name
    )
    title = pdf.gettext("Acuerdo de pago")
    pdf.set_title(f"{title} {view.plan_id}")
    pdf.set_author(view.creditor.legal_name)
    pdf.set_creator("Saldo")
    pdf.add_page()
    _brand(
        pdf, title, pdf.gettext("Plan de pagos N.º {id} · {creditor}").format(
            id=view.plan_id, creditor=view.creditor.name
        )
    )  # fmt: skip

    column = (pdf.width - 8) / 2
    y = pdf.get_y()
    creditor_lines = _creditor_lines(pdf, view.creditor)
    if view.agency:
        creditor_lines.append(
            pdf.gettext("Gestión de cobranza: {agency}").format(agency=view.agency)
        )
    end_left = _party_block(pdf, pdf.gettext("Acreedor"), creditor_lines, MARGIN, column)
    pdf.set_y(y)
    end_right = _party_block(
        pdf, pdf.gettext("Deudor"), _debtor_lines(view.debtor), MARGIN + column + 8, column
    )
    pdf.set_y(max(end_left, end_right) + 4)

    _facts(
        pdf,
        [
            (pdf.gettext("Fecha del acuerdo"), view.agreed_on),
            (pdf.gettext("Total del plan"), view.total.text),
            (pdf.gettext("Anticipo"), view.down_payment.text),
            (
                pdf.gettext("Cuotas"),
                f"{view.installments_count} · {view.frequency.lower()}",
            ),
        ],
    )

    pdf.section_title(pdf.gettext("Saldo que cubre este acuerdo"))
    with pdf.table(
        col_widths=[w * pdf.width for w in (0.45, 0.3, 0.25)],
        text_align=("LEFT", "LEFT", "RIGHT"),
    ) as table:
        pdf.set_font("DejaVu", size=8.5)
        table.row(
            [pdf.gettext("Factura"), pdf.gettext("Vencimiento"), pdf.gettext("Importe incluido")]
        )
        for item in view.items:
            table.row([item.number, item.due, item.amount.text])
        if view.other is not None:
            table.row([pdf.gettext("Otros importes"), "", view.other.text])
    pdf.ln(3)
    pdf.totals([(pdf.gettext("Total del plan"), view.total.text, True)])
    if view.disputed is not None:
        pdf.text_line(
            pdf.gettext(
                "Quedan fuera de este acuerdo {amount} en reclamo sobre estas facturas: se "
                "resuelven por separado."
            ).format(amount=view.disputed.text),
            size=8.5,
            color=MUTED,
        )

    pdf.section_title(pdf.gettext("Cronograma de pagos"))
    with pdf.table(
        col_widths=[w * pdf.width for w in (0.45, 0.3, 0.25)],
        text_align=("LEFT", "LEFT", "RIGHT"),
    ) as table:
        pdf.set_font("DejaVu", size=8.5)
        table.row([pdf.gettext("Pago"), pdf.gettext("Vence"), pdf.gettext("Importe")])
        for row in view.rows:
            table.row([row.label, row.due, row.amount.text])
    pdf.ln(3)
    pdf.totals([(pdf.gettext("Total"), view.total.text, True)])

    pdf.section_title(pdf.gettext("Si una cuota no se paga"))
    pdf.text_line(
        pdf.gettext(
            "Cada cuota tiene {grace} días de gracia después de su vencimiento. Una cuota que "
            "no se paga en ese plazo queda impaga y se lo avisamos. Con {missed} cuotas impagas "
            "el plan se da por terminado y la deuda que falte vuelve a la gestión de cobranza "
            "habitual. Lo que haya pagado hasta entonces se conserva y se descuenta de su deuda."
        ).format(grace=view.grace_days, missed=view.missed_to_break),
        size=9,
    )
    pdf.section_title(pdf.gettext("Cancelación de la deuda"))
    if view.disputed is None:
        settles = pdf.gettext(
            "Pagar todas las cuotas cancela por completo la deuda de las facturas detalladas."
        )
    else:
        settles = pdf.gettext(
            "Pagar todas las cuotas cancela la deuda de las facturas detalladas, salvo los "
            "importes en reclamo."
        )
    pdf.text_line(settles, size=9)
    pdf.text_line(
        pdf.gettext(
            "Las facturas emitidas después de este acuerdo no están incluidas. Los pagos se "
            "aplican primero al anticipo y luego a las cuotas, en orden."
        ),
        size=9,
    )
    if view.discount:
        pdf.text_line(
            pdf.gettext(
                "Puede cancelar en un solo pago lo que falte del plan con un descuento del "
                "{percent}."
            ).format(percent=view.discount),
            size=9,
        )
    pdf.ln(4)
    pdf.set_x(MARGIN)
    pdf.set_font("DejaVu", "", 7.5)
    pdf.set_text_color(*MUTED)
    pdf.multi_cell(
        pdf.width,
        3.8,
        pdf.gettext(
            "Acuerdo aceptado en el portal de autogestión el {date}. Este documento resume sus "
            "condiciones; ante cualquier duda, escríbanos desde el portal."
        ).format(date=view.agreed_on),
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    return bytes(pdf.output())
