"""The legal-escalation dossier: one PDF with what a lawyer needs to sue for an account.

Sections, in order:

1. the parties (creditor with its legal name and tax id, the collection agency if any, the
   debtor with document and contact data), the account, its stage and escalation date;
2. the claim in figures: total due, overdue, oldest due date, interest and fees charged;
3. the invoices: number, dates, days overdue, billed and open amounts;
4. the statement of account, every movement since the first, with the running balance (the
   portal's own statement, `saldo.services.statement.statement`);
5. the interest computation with its basis: the fee policy in force (daily rate and its
   yearly equivalent, fixed fee, grace days, cap) and, per invoice, the interest and fees
   charged — days, period, principal, rate — net of reversals;
6. every message sent or attempted, with its time stamp (UTC), channel, address and status
   (and why a blocked one was held back);
7. contacts recorded by staff (calls, visits, notes) with their outcome;
8. promises to pay, payment plans (agreements) and disputes.

Amounts are formatted like the debtor's statement (the debtor's country); the labels follow
the staff's language. Nothing here writes; generating a dossier is not an action on the
account (the download is a plain GET).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from saldo.services.account_360 import Account360, account_360
from saldo.services.audit import Actor, record
from saldo.services.statement import Amount, Document, Formats
from saldo.tables import Account

__all__ = ["ContactLine", "Dossier", "InterestLine", "MessageLine", "dossier", "dossier_pdf"]

_UTC_FORMAT: Final = "%Y-%m-%d %H:%M UTC"


@dataclass(frozen=True, slots=True)
class InterestLine:
    invoice_number: str
    kind: str  # interest | fee
    entries: int
    first: dt.date
    last: dt.date
    principal_min: int | None
    principal_max: int | None
    rates_ppm: tuple[int, ...]
    amount: Amount  # net of reversals
    capped: bool


@dataclass(frozen=True, slots=True)
class MessageLine:
    at: str  # UTC
    sent_at: str  # UTC, "" when never sent
    channel: str
    template: str
    to_address: str
    subject: str
    status: str
    reason: str


@dataclass(frozen=True, slots=True)
class ContactLine:
    at: str  # UTC
    kind: str
    outcome: str
    staff: str
    note: str


@dataclass(frozen=True, slots=True)
class FeeTerms:
    daily_rate_ppm: int
    fixed_fee: Amount
    grace_days: int
    cap_bp: int

    @property
    def yearly_percent(self) -> Decimal:
        """The simple yearly equivalent of the daily rate, in percent (365 days)."""
        return (Decimal(self.daily_rate_ppm) * 365 / 10_000).quantize(Decimal("0.01"))


@dataclass(frozen=True, slots=True)
class Dossier:
    account: Account360
    generated_at: dt.datetime
    agency_name: str
    interest: tuple[InterestLine, ...]
    interest_total: Amount
    fees_total: Amount
    terms: FeeTerms | None
    messages: tuple[MessageLine, ...]
    contacts: tuple[ContactLine, ...]


def _utc(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).strftime(_UTC_FORMAT) if value else ""


async def _interest(account_id: int, fmt: Formats) -> list[InterestLine]:
    rows = await Account.raw(
        """SELECT coalesce(i.number, '') AS number, e.kind, count(*) AS entries,
                  min(e.effective_date) AS first, max(e.effective_date) AS last,
                  min((e.basis ->> 'principal')::bigint) AS principal_min,
                  max((e.basis ->> 'principal')::bigint) AS principal_max,
                  array_remove(array_agg(DISTINCT coalesce(e.basis ->> 'daily_rate_ppm',
                                                           e.basis ->> 'rate_ppm_per_day')),
                               NULL) AS rates,
                  (sum(e.amount) + coalesce(sum(r.amount), 0))::bigint AS amount,
                  bool_or(e.basis ? 'capped') AS capped
           FROM ledger_entry e
           LEFT JOIN invoice i ON i.id = e.invoice
           LEFT JOIN LATERAL (SELECT sum(x.amount) AS amount FROM ledger_entry x
                              WHERE x.reverses = e.id) r ON true
           WHERE e.account = {} AND e.kind IN ('interest', 'fee')
           GROUP BY i.number, i.due_date, e.kind
           ORDER BY i.due_date NULLS LAST, i.number, e.kind DESC""",
        account_id,
    )
    lines = []
    for r in rows:
        rates = tuple(sorted(int(x) for x in (r["rates"] or ()) if re.fullmatch(r"\d{1,9}", x)))
        lines.append(
            InterestLine(
                invoice_number=str(r["number"]),
                kind=str(r["kind"]),
                entries=int(r["entries"]),
                first=r["first"],
                last=r["last"],
                principal_min=r["principal_min"],
                principal_max=r["principal_max"],
                rates_ppm=rates,
                amount=fmt.money(int(r["amount"])),
                capped=bool(r["capped"]),
            )
        )
    return lines


async def _terms(account_id: int, fmt: Formats) -> tuple[FeeTerms | None, str]:
    rows = await Account.raw(
        """SELECT c.agency_name, p.daily_rate_ppm, p.fixed_fee, p.grace_days, p.cap_bp
           FROM account a JOIN creditor c ON c.id = a.creditor
           LEFT JOIN LATERAL (
               SELECT * FROM fee_policy f
               WHERE f.creditor = a.creditor AND f.active
                 AND f.segment IN (a.segment, 'standard')
               ORDER BY (f.segment = a.segment) DESC, f.id LIMIT 1
           ) p ON true
           WHERE a.id = {}""",
        account_id,
    )
    if not rows:
        return None, ""
    r = rows[0]
    agency = str(r["agency_name"] or "")
    if r["daily_rate_ppm"] is None:
        return None, agency
    return (
        FeeTerms(
            daily_rate_ppm=int(r["daily_rate_ppm"]),
            fixed_fee=fmt.money(int(r["fixed_fee"])),
            grace_days=int(r["grace_days"]),
            cap_bp=int(r["cap_bp"]),
        ),
        agency,
    )


async def _all_messages(debtor_id: int, account_id: int) -> list[MessageLine]:
    rows = await Account.raw(
        """SELECT created_at, sent_at, channel, template, to_address, subject, status,
                  coalesce(nullif(blocked_reason, ''), last_error) AS reason
           FROM notification WHERE debtor = {} AND (account = {} OR account IS NULL)
           ORDER BY created_at, id""",
        debtor_id,
        account_id,
    )
    return [
        MessageLine(
            at=_utc(r["created_at"]),
            sent_at=_utc(r["sent_at"]),
            channel=str(r["channel"]),
            template=str(r["template"]),
            to_address=str(r["to_address"]),
            subject=str(r["subject"]),
            status=str(r["status"]),
            reason=str(r["reason"] or ""),
        )
        for r in rows
    ]


async def _contacts(account_id: int) -> list[ContactLine]:
    rows = await Account.raw(
        """SELECT x.occurred_at, x.kind, coalesce(x.data ->> 'outcome', '') AS outcome,
                  x.summary, coalesce(nullif(s.name, ''), s.email, '') AS staff
           FROM interaction x LEFT JOIN staff_user s ON s.id = x.staff
           WHERE x.account = {} AND x.kind IN ('call', 'visit', 'note')
           ORDER BY x.occurred_at, x.id""",
        account_id,
    )
    return [
        ContactLine(
            at=_utc(r["occurred_at"]),
            kind=str(r["kind"]),
            outcome=str(r["outcome"]),
            staff=str(r["staff"]),
            note=str(r["summary"] or ""),
        )
        for r in rows
    ]


async def dossier(
    account_id: int, *, today: dt.date, now: dt.datetime, language: str = "es"
) -> Dossier:
    """Everything the PDF shows (`NotFound` for no such account)."""
    account = await account_360(account_id, today=today, now=now, language=language)
    fmt = Formats(account.header.currency, account.locale)
    interest, (terms, agency), messages, contacts = await asyncio.gather(
        _interest(account_id, fmt),
        _terms(account_id, fmt),
        _all_messages(account.header.debtor_id, account_id),
        _contacts(account_id),
    )
    return Dossier(
        account=account,
        generated_at=now,
        agency_name=agency,
        interest=tuple(interest),
        interest_total=fmt.money(sum(i.amount.minor for i in interest if i.kind == "interest")),
        fees_total=fmt.money(sum(i.amount.minor for i in interest if i.kind == "fee")),
        terms=terms,
        messages=tuple(messages),
        contacts=tuple(contacts),
    )


async def dossier_pdf(
    account_id: int,
    *,
    today: dt.date,
    now: dt.datetime,
    language: str = "es",
    by: Actor | None = None,
) -> Document:
    """The dossier as a PDF document; `by` (staff) is recorded in the audit log, since the
    dossier carries the debtor's personal data out of the system."""
    data = await dossier(account_id, today=today, now=now, language=language)
    content = await asyncio.to_thread(render_dossier, data)
    if by is not None:
        await record(
            by,
            "account.dossier_downloaded",
            now=now,
            object_type="account",
            object_id=account_id,
            after={"messages": len(data.messages), "stage": data.account.header.stage},
        )
    prefix = "legajo" if language == "es" else "legal-dossier"
    return Document(f"{prefix}-{account_id}-{today.isoformat()}.pdf", content)


# ---------------------------------------------------------------------------- rendering


def _label(pdf: Any, group: str, key: str) -> str:
    labels: dict[str, dict[str, str]] = {
        "stage": {
            "preventive": pdf.gettext("Preventiva"),
            "administrative": pdf.gettext("Administrativa"),
            "judicial": pdf.gettext("Judicial"),
            "closed": pdf.gettext("Cerrada"),
        },
        "contact": {
            "call": pdf.gettext("Llamada"),
            "visit": pdf.gettext("Visita"),
            "note": pdf.gettext("Nota"),
        },
        "outcome": {
            "reached": pdf.gettext("Contactado"),
            "no_answer": pdf.gettext("No atiende"),
            "wrong_number": pdf.gettext("Número equivocado"),
            "promised": pdf.gettext("Promete pagar"),
            "refused": pdf.gettext("Se niega a pagar"),
            "callback": pdf.gettext("Volver a llamar"),
        },
        "kind": {"interest": pdf.gettext("Interés"), "fee": pdf.gettext("Cargo fijo")},
        "promise": {
            "open": pdf.gettext("Vigente"),
            "kept": pdf.gettext("Cumplida"),
            "broken": pdf.gettext("Incumplida"),
            "cancelled": pdf.gettext("Cancelada"),
        },
        "plan": {
            "proposed": pdf.gettext("Propuesto"),
            "offered": pdf.gettext("Contraoferta"),
            "active": pdf.gettext("Activo"),
            "completed": pdf.gettext("Cumplido"),
            "broken": pdf.gettext("Caído"),
            "rejected": pdf.gettext("Rechazado"),
            "countered": pdf.gettext("Contraofertado"),
            "declined": pdf.gettext("Rechazado por el deudor"),
        },
        "dispute": {
            "open": pdf.gettext("Abierto"),
            "in_review": pdf.gettext("En revisión"),
            "waiting_debtor": pdf.gettext("Esperando al deudor"),
            "accepted": pdf.gettext("Aceptado"),
            "partially_accepted": pdf.gettext("Aceptado en parte"),
            "rejected": pdf.gettext("Rechazado"),
            "withdrawn": pdf.gettext("Retirado"),
        },
        "message": {
            "queued": pdf.gettext("En cola"),
            "deferred": pdf.gettext("Postergado"),
            "sending": pdf.gettext("Enviándose"),
            "sent": pdf.gettext("Enviado"),
            "blocked": pdf.gettext("Bloqueado"),
            "failed": pdf.gettext("Falló"),
            "cancelled": pdf.gettext("Cancelado"),
        },
        "reason": {
            "no_address": pdf.gettext("Sin dirección para ese canal"),
            "opted_out": pdf.gettext("El deudor no acepta ese canal"),
            "window": pdf.gettext("Fuera del horario de envío"),
            "quiet_hours": pdf.gettext("Horario en que el deudor no quiere mensajes"),
            "cap": pdf.gettext("Límite de mensajes alcanzado"),
            "judicial_stage": pdf.gettext("Cuenta en cobranza judicial"),
            "nothing_due": pdf.gettext("Ya no había nada que cobrar"),
        },
    }
    return labels.get(group, {}).get(key, key.replace("_", " "))


def render_dossier(data: Dossier) -> bytes:
    """The PDF (fpdf2 with the portal's document style: `saldo.pdf`)."""
    from fpdf.fonts import FontFace

    from saldo.pdf import FONT, MARGIN, MUTED, _brand, _creditor_lines, _Document, _facts

    account = data.account
    header, view, debtor = account.header, account.view, account.debtor
    pdf = _Document(account.language, "")
    pdf.footer_note = pdf.gettext("Legajo de la cuenta {id}, generado el {date}.").format(
        id=header.account_id, date=_utc(data.generated_at)
    )
    title = pdf.gettext("Legajo para cobranza judicial")
    pdf.set_title(title)
    pdf.set_author(account.creditor.name)
    pdf.set_creator("Saldo")
    pdf.add_page()
    _brand(pdf, title, f"{account.creditor.name} · {pdf.gettext('Cuenta')} {header.account_id}")

    def table(widths: Sequence[float], align: Sequence[str]) -> Any:
        return pdf.table(col_widths=[w * pdf.width for w in widths], text_align=tuple(align))

    # 1. parties
    pdf.section_title(pdf.gettext("Partes"))
    creditor_lines = _creditor_lines(pdf, account.creditor)
    if data.agency_name:
        creditor_lines.append(pdf.gettext("Gestión de cobranza: {name}").format(
            name=data.agency_name))  # fmt: skip
    document = " ".join(x for x in (debtor.document_type, debtor.document_number) if x)
    debtor_lines = [
        debtor.name,
        document,
        " · ".join(x for x in (debtor.email, debtor.phone, debtor.whatsapp) if x),
    ]
    for title_text, lines in (
        (pdf.gettext("Acreedor"), creditor_lines),
        (pdf.gettext("Deudor"), debtor_lines),
    ):
        pdf.text_line(title_text.upper(), size=7.5, bold=True, color=MUTED)
        for line in lines:
            if line:
                pdf.text_line(line, size=9)
        pdf.ln(1.5)
    escalated = _utc(header.legal_escalated_at) or pdf.gettext("sin derivar")
    pdf.text_line(
        pdf.gettext("Cuenta {id} · moneda {currency} · etapa {stage} · derivada: {date}").format(
            id=header.account_id,
            currency=header.currency,
            stage=_label(pdf, "stage", header.stage),
            date=escalated,
        ),
        size=9,
    )

    # 2. figures
    pdf.section_title(pdf.gettext("Resumen de la deuda"))
    oldest = next((i for i in view.invoices if i.status == "overdue"), None)
    _facts(
        pdf,
        [
            (pdf.gettext("Saldo total"), view.total_due.text),
            (pdf.gettext("Vencido"), view.overdue.text),
            (pdf.gettext("Vencimiento más antiguo"), oldest.due if oldest else "—"),
            (pdf.gettext("Intereses y cargos"), f"{data.interest_total} + {data.fees_total}"),
        ],
    )

    # 3. invoices
    pdf.section_title(pdf.gettext("Facturas impagas"))
    if not view.invoices:
        pdf.text_line(pdf.gettext("No hay facturas impagas."), color=MUTED)
    else:
        with table(
            (0.2, 0.14, 0.14, 0.12, 0.2, 0.2), ("LEFT", "LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT")
        ) as t:
            pdf.set_font(FONT, size=8)
            t.row(
                [
                    pdf.gettext("Factura"),
                    pdf.gettext("Emisión"),
                    pdf.gettext("Vencimiento"),
                    pdf.gettext("Días de atraso"),
                    pdf.gettext("Facturado"),
                    pdf.gettext("Pendiente"),
                ],
            )
            for invoice in view.invoices:
                t.row(
                    [
                        invoice.number,
                        invoice.issued,
                        invoice.due,
                        str(invoice.days_overdue),
                        invoice.total.text,
                        invoice.open.text,
                    ]
                )

    # 4. statement
    pdf.section_title(pdf.gettext("Estado de cuenta con saldo acumulado"))
    ledger = account.ledger
    if ledger is None or not ledger.rows:
        pdf.text_line(pdf.gettext("La cuenta no tiene movimientos."), color=MUTED)
    else:
        bold = FontFace(emphasis="BOLD")
        with table(
            (0.13, 0.39, 0.16, 0.16, 0.16), ("LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT")
        ) as t:
            pdf.set_font(FONT, size=7.5)
            t.row(
                [
                    pdf.gettext("Fecha"),
                    pdf.gettext("Concepto"),
                    pdf.gettext("Débito"),
                    pdf.gettext("Crédito"),
                    pdf.gettext("Saldo"),
                ],
            )
            opening = t.row()
            opening.cell(ledger.rows[0].date_text)
            opening.cell(pdf.gettext("Saldo inicial"), style=bold)
            opening.cell("")
            opening.cell("")
            opening.cell(ledger.opening.text, style=bold)
            for row in ledger.rows:
                concept = row.label
                if row.reference and row.reference not in row.label:
                    concept = f"{concept} · {row.reference}"
                if row.detail:
                    concept = f"{concept}\n{row.detail}"
                t.row(
                    [
                        row.date_text,
                        concept,
                        row.debit.text if row.debit else "",
                        row.credit.text if row.credit else "",
                        row.balance.text,
                    ]
                )
            closing = t.row()
            closing.cell("")
            closing.cell(pdf.gettext("Saldo final"), style=bold)
            closing.cell(ledger.debits.text, style=bold)
            closing.cell(ledger.credits.text, style=bold)
            closing.cell(ledger.closing.text, style=bold)

    # 5. interest
    pdf.section_title(pdf.gettext("Cálculo de intereses y cargos"))
    if data.terms is not None:
        terms = data.terms
        cap = (
            pdf.gettext("con un tope del {cap} % del capital").format(
                cap=Decimal(terms.cap_bp) / 100
            )
            if terms.cap_bp
            else pdf.gettext("sin tope")
        )
        pdf.text_line(
            pdf.gettext(
                "Interés simple diario de {ppm} partes por millón sobre el capital impago "
                "({yearly} % anual sin capitalizar), desde el día siguiente al vencimiento más "
                "{grace} días de gracia; cargo fijo de {fee} una vez por factura vencida; {cap}. "
                "Los pagos cubren primero intereses y cargos."
            ).format(
                ppm=terms.daily_rate_ppm,
                yearly=terms.yearly_percent,
                grace=terms.grace_days,
                fee=terms.fixed_fee,
                cap=cap,
            ),
            size=8.5,
        )
        pdf.ln(1)
    if not data.interest:
        pdf.text_line(pdf.gettext("No se cobraron intereses ni cargos."), color=MUTED)
    else:
        with table(
            (0.16, 0.12, 0.22, 0.1, 0.2, 0.2), ("LEFT", "LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT")
        ) as t:
            pdf.set_font(FONT, size=7.5)
            t.row(
                [
                    pdf.gettext("Factura"),
                    pdf.gettext("Concepto"),
                    pdf.gettext("Período"),
                    pdf.gettext("Días"),
                    pdf.gettext("Base"),
                    pdf.gettext("Importe"),
                ],
            )
            fmt = Formats(header.currency, account.locale)
            for item in data.interest:
                if item.principal_min is None or item.principal_max is None:
                    principal = ""
                elif item.principal_min == item.principal_max:
                    principal = fmt.money(item.principal_min).text
                else:
                    principal = f"{fmt.money(item.principal_min)} – {fmt.money(item.principal_max)}"
                if item.rates_ppm:
                    principal += " · " + ", ".join(f"{r} ppm" for r in item.rates_ppm)
                if item.capped:
                    principal += " · " + pdf.gettext("tope alcanzado")
                t.row(
                    [
                        item.invoice_number or "—",
                        _label(pdf, "kind", item.kind),
                        f"{fmt.date(item.first)} – {fmt.date(item.last)}",
                        str(item.entries) if item.kind == "interest" else "",
                        principal,
                        item.amount.text,
                    ]
                )
        pdf.ln(2)
        pdf.totals(
            [
                (pdf.gettext("Intereses"), data.interest_total.text, False),
                (pdf.gettext("Cargos fijos"), data.fees_total.text, False),
            ]
        )

    # 6. messages
    pdf.section_title(pdf.gettext("Mensajes enviados e intentados"))
    if not data.messages:
        pdf.text_line(pdf.gettext("No se enviaron mensajes."), color=MUTED)
    else:
        with table((0.17, 0.17, 0.1, 0.3, 0.26), ("LEFT", "LEFT", "LEFT", "LEFT", "LEFT")) as t:
            pdf.set_font(FONT, size=7.5)
            t.row(
                [
                    pdf.gettext("Creado"),
                    pdf.gettext("Enviado"),
                    pdf.gettext("Canal"),
                    pdf.gettext("Destino y asunto"),
                    pdf.gettext("Estado"),
                ],
            )
            for message in data.messages:
                status = _label(pdf, "message", message.status)
                if message.reason:
                    status = f"{status}: {_label(pdf, 'reason', message.reason)}"
                target = message.to_address
                if message.subject:
                    target = f"{target}\n{message.subject}"
                elif message.template:
                    target = f"{target}\n{message.template}"
                t.row([message.at, message.sent_at or "—", message.channel, target, status])

    # 7. contacts
    pdf.section_title(pdf.gettext("Gestiones del equipo"))
    if not data.contacts:
        pdf.text_line(pdf.gettext("No hay gestiones registradas."), color=MUTED)
    else:
        with table((0.18, 0.12, 0.18, 0.18, 0.34), ("LEFT",) * 5) as t:
            pdf.set_font(FONT, size=7.5)
            t.row(
                [
                    pdf.gettext("Fecha"),
                    pdf.gettext("Tipo"),
                    pdf.gettext("Resultado"),
                    pdf.gettext("Agente"),
                    pdf.gettext("Nota"),
                ],
            )
            for contact in data.contacts:
                t.row(
                    [
                        contact.at,
                        _label(pdf, "contact", contact.kind),
                        _label(pdf, "outcome", contact.outcome) if contact.outcome else "",
                        contact.staff,
                        contact.note,
                    ]
                )

    # 8. promises, agreements, disputes
    fmt = Formats(header.currency, account.locale)
    pdf.section_title(pdf.gettext("Promesas de pago"))
    if not account.promises:
        pdf.text_line(pdf.gettext("No hubo promesas de pago."), color=MUTED)
    else:
        with table((0.22, 0.2, 0.2, 0.18, 0.2), ("LEFT", "LEFT", "RIGHT", "LEFT", "LEFT")) as t:
            pdf.set_font(FONT, size=7.5)
            t.row(
                [
                    pdf.gettext("Registrada"),
                    pdf.gettext("Fecha prometida"),
                    pdf.gettext("Importe"),
                    pdf.gettext("Estado"),
                    pdf.gettext("Origen"),
                ],
            )
            for promise in account.promises:
                t.row(
                    [
                        _utc(promise.created_at),
                        fmt.date(promise.promised_date),
                        promise.amount.text,
                        _label(pdf, "promise", promise.status),
                        promise.created_by or promise.source,
                    ]
                )
    pdf.section_title(pdf.gettext("Planes de pago (acuerdos)"))
    if not account.plans:
        pdf.text_line(pdf.gettext("No hubo planes de pago."), color=MUTED)
    else:
        with table((0.2, 0.16, 0.2, 0.2, 0.24), ("LEFT", "LEFT", "RIGHT", "LEFT", "LEFT")) as t:
            pdf.set_font(FONT, size=7.5)
            t.row(
                [
                    pdf.gettext("Propuesto"),
                    pdf.gettext("Estado"),
                    pdf.gettext("Total"),
                    pdf.gettext("Cuotas"),
                    pdf.gettext("Decidido"),
                ],
            )
            for plan in account.plans:
                t.row(
                    [
                        _utc(plan.created_at),
                        _label(pdf, "plan", plan.status),
                        plan.total.text,
                        f"{plan.installments} × {plan.frequency} · {fmt.date(plan.first_date)}",
                        _utc(plan.decided_at) or "—",
                    ]
                )
    pdf.section_title(pdf.gettext("Reclamos"))
    if not account.disputes:
        pdf.text_line(pdf.gettext("No hubo reclamos."), color=MUTED)
    else:
        with table((0.2, 0.16, 0.18, 0.26, 0.2), ("LEFT", "LEFT", "RIGHT", "LEFT", "LEFT")) as t:
            pdf.set_font(FONT, size=7.5)
            t.row(
                [
                    pdf.gettext("Abierto"),
                    pdf.gettext("Factura"),
                    pdf.gettext("Importe"),
                    pdf.gettext("Motivo"),
                    pdf.gettext("Estado"),
                ],
            )
            for dispute in account.disputes:
                t.row(
                    [
                        _utc(dispute.created_at),
                        dispute.invoice_number or "—",
                        dispute.amount.text,
                        dispute.reason_text or dispute.reason_code,
                        _label(pdf, "dispute", dispute.status),
                    ]
                )
    pdf.ln(4)
    pdf.set_x(MARGIN)
    pdf.text_line(
        pdf.gettext(
            "Importes en {currency}. Fechas y horas de mensajes y gestiones en UTC. Saldo "
            "positivo: importe adeudado."
        ).format(currency=header.currency),
        size=7.5,
        color=MUTED,
    )
    return bytes(pdf.output())
