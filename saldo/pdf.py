"""PDF documents for debtors: an invoice and a statement of account (fpdf2, pip-only).

Text is set in DejaVu Sans, embedded from `static/fonts/` (see VENDORED.md there), so accents,
ñ and currency symbols such as € render and can be copied or extracted. The functions take the
view models of `saldo.services.statement`, whose amounts are already formatted and add up;
nothing here does arithmetic on money. Labels come from the same catalogs as the pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fpdf import FPDF
from fpdf.enums import Align, TableBordersLayout, TableCellFillMode, XPos, YPos
from fpdf.fonts import FontFace

from saldo.i18n import gettext

if TYPE_CHECKING:
    from saldo.services.statement import (
        CreditorView,
        DebtorView,
        InvoiceDetail,
        StatementView,
    )

__all__ = ["FONT_DIR", "render_invoice", "render_statement"]

FONT_DIR = Path(__file__).resolve().parent.parent / "static" / "fonts"
FONT = "DejaVu"

INK = (12, 34, 51)
TEAL = (11, 95, 107)
MUTED = (82, 97, 107)
RULE = (223, 229, 232)
TINT = (232, 243, 244)
ZEBRA = (247, 249, 250)
RED = (180, 35, 24)
GREEN = (23, 102, 58)
AMBER = (138, 75, 0)
STATUS_COLORS = {"paid": GREEN, "credit": GREEN, "overdue": RED, "pending": AMBER}

MARGIN = 16.0
#: What a tax id is called where the creditor is registered.
TAX_ID_LABELS = {
    "AR": "CUIT",
    "MX": "RFC",
    "CL": "RUT",
    "ES": "NIF",
    "CO": "NIT",
    "PE": "RUC",
    "UY": "RUT",
}


class _Document(FPDF):
    """A4 portrait with Saldo's footer on every page."""

    def __init__(self, language: str, footer_note: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.language = language
        self.footer_note = footer_note
        self.set_margins(MARGIN, MARGIN, MARGIN)
        self.set_auto_page_break(auto=True, margin=20)
        self.add_font(FONT, "", str(FONT_DIR / "DejaVuSans.ttf"))
        self.add_font(FONT, "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
        self.set_font(FONT, size=9)
        self.set_text_color(*INK)
        self.alias_nb_pages()

    def gettext(self, message: str) -> str:
        return gettext(self.language, message)

    def footer(self) -> None:
        self.set_y(-14)
        self.set_draw_color(*RULE)
        self.line(MARGIN, self.get_y(), self.w - MARGIN, self.get_y())
        self.set_y(-12)
        self.set_font(FONT, size=7)
        self.set_text_color(*MUTED)
        self.cell(0, 5, self.footer_note, align=Align.L)
        page = self.gettext("Página {page} de {pages}").format(page=self.page_no(), pages="{nb}")
        self.set_x(MARGIN)
        self.cell(0, 5, page, align=Align.R)
        self.set_text_color(*INK)

    @property
    def width(self) -> float:
        return float(self.w - 2 * MARGIN)

    def text_line(
        self,
        text: str,
        *,
        size: float = 9,
        bold: bool = False,
        color: tuple[int, int, int] = INK,
        height: float = 4.6,
        align: Align = Align.L,
        width: float = 0,
    ) -> None:
        self.set_font(FONT, "B" if bold else "", size)
        self.set_text_color(*color)
        self.multi_cell(
            width or self.width, height, text, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT
        )
        self.set_text_color(*INK)

    def rule(self, gap: float = 3) -> None:
        self.ln(gap)
        self.set_draw_color(*RULE)
        self.line(MARGIN, self.get_y(), self.w - MARGIN, self.get_y())
        self.ln(gap)

    def section_title(self, text: str) -> None:
        self.ln(2)
        self.text_line(text.upper(), size=8, bold=True, color=TEAL)
        self.ln(1)

    def table(self, *args: Any, **kwargs: Any) -> Any:  # typed loosely: fpdf2's own signature
        kwargs.setdefault("borders_layout", TableBordersLayout.HORIZONTAL_LINES)
        kwargs.setdefault("line_height", 5.2)
        kwargs.setdefault("padding", (1.4, 1.6))
        kwargs.setdefault("width", self.width)
        kwargs.setdefault(
            "headings_style", FontFace(emphasis="BOLD", color=MUTED, fill_color=TINT, size_pt=7.5)
        )
        kwargs.setdefault("cell_fill_mode", TableCellFillMode.ROWS)
        kwargs.setdefault("cell_fill_color", ZEBRA)
        self.set_draw_color(*RULE)
        self.set_fill_color(255, 255, 255)  # the table's base style starts from the current fill
        return super().table(*args, **kwargs)

    def totals(self, rows: Sequence[tuple[str, str, bool]], width: float = 82) -> None:
        """Right-aligned label/amount pairs; `True` marks the emphasised (last) line."""
        x = self.w - MARGIN - width
        for label, amount, strong in rows:
            if strong:
                self.set_draw_color(*INK)
                self.line(x, self.get_y() + 0.5, self.w - MARGIN, self.get_y() + 0.5)
                self.ln(1.5)
            self.set_x(x)
            self.set_font(FONT, "B" if strong else "", 10.5 if strong else 9)
            self.cell(width * 0.55, 6, label, align=Align.L)
            self.cell(width * 0.45, 6, amount, align=Align.R, new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _party_block(pdf: _Document, title: str, lines: Sequence[str], x: float, w: float) -> float:
    """A small labelled block of text at `x`; returns the y where it ends."""
    y0 = pdf.get_y()
    pdf.set_xy(x, y0)
    pdf.set_font(FONT, "B", 7.5)
    pdf.set_text_color(*TEAL)
    pdf.cell(w, 4.5, title.upper(), new_x=XPos.LEFT, new_y=YPos.NEXT)
    first = True
    for line in lines:
        if not line:
            continue
        pdf.set_x(x)
        pdf.set_font(FONT, "B" if first else "", 10 if first else 8.5)
        pdf.set_text_color(*(INK if first else MUTED))
        pdf.multi_cell(w, 4.6, line, new_x=XPos.LEFT, new_y=YPos.NEXT)
        first = False
    pdf.set_text_color(*INK)
    return float(pdf.get_y())


def _creditor_lines(pdf: _Document, creditor: CreditorView) -> list[str]:
    legal = creditor.legal_name if creditor.legal_name != creditor.name else ""
    label = TAX_ID_LABELS.get(creditor.country.upper(), pdf.gettext("Id. fiscal"))
    tax = f"{label}: {creditor.tax_id}" if creditor.tax_id else ""
    contact = " · ".join(x for x in (creditor.email, creditor.phone) if x)
    return [creditor.name, legal, tax, contact]


def _debtor_lines(debtor: DebtorView) -> list[str]:
    document = " ".join(x for x in (debtor.document_type, debtor.document_number) if x)
    contact = " · ".join(x for x in (debtor.email, debtor.phone) if x)
    return [debtor.name, document, contact]


def _brand(pdf: _Document, title: str, subtitle: str) -> None:
    """The top band: Saldo's name on the left, the document title on the right."""
    pdf.set_fill_color(*INK)
    pdf.rect(0, 0, pdf.w, 4, style="F")
    pdf.set_fill_color(*TEAL)
    pdf.rect(0, 4, pdf.w, 0.8, style="F")
    pdf.set_y(MARGIN)
    top = pdf.get_y()
    pdf.set_font(FONT, "B", 20)
    pdf.set_text_color(*INK)
    pdf.cell(pdf.width / 2, 9, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", 9.5)
    pdf.set_text_color(*MUTED)
    pdf.cell(pdf.width / 2, 5, subtitle, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    bottom = pdf.get_y()
    pdf.set_xy(MARGIN + pdf.width / 2, top)
    pdf.set_font(FONT, "B", 12)
    pdf.set_text_color(*TEAL)
    pdf.cell(pdf.width / 2, 7, "Saldo", align=Align.R, new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_x(MARGIN + pdf.width / 2)
    pdf.set_font(FONT, "", 7.5)
    pdf.set_text_color(*MUTED)
    pdf.cell(pdf.width / 2, 4, pdf.gettext("Portal de autogestión"), align=Align.R)
    pdf.set_text_color(*INK)
    pdf.set_y(max(bottom, pdf.get_y()) + 3)


def _facts(pdf: _Document, facts: Sequence[tuple[str, str]]) -> None:
    """A row of label/value boxes (dates, status, amount due)."""
    w = pdf.width / len(facts)
    y = pdf.get_y()
    pdf.set_fill_color(*TINT)
    pdf.rect(MARGIN, y, pdf.width, 13, style="F")
    for index, (label, value) in enumerate(facts):
        x = MARGIN + index * w
        pdf.set_xy(x + 3, y + 2)
        pdf.set_font(FONT, "", 7)
        pdf.set_text_color(*MUTED)
        pdf.cell(w - 6, 3.8, label.upper(), new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.set_x(x + 3)
        pdf.set_font(FONT, "B", 10)
        pdf.set_text_color(*INK)
        pdf.cell(w - 6, 5.5, value)
    pdf.set_y(y + 16)


def render_invoice(detail: InvoiceDetail) -> bytes:
    """The invoice: creditor and debtor, lines with taxes, totals, movements and status."""
    invoice = detail.invoice
    pdf = _Document(detail.language, "")
    pdf.footer_note = pdf.gettext("Emitido por Saldo el {date} para {name}.").format(
        date=detail.today_text, name=detail.debtor.name
    )
    pdf.set_title(f"{pdf.gettext('Factura')} {invoice.number}")
    pdf.set_author(detail.creditor.name)
    pdf.set_creator("Saldo")
    pdf.add_page()
    _brand(pdf, f"{pdf.gettext('Factura')} {invoice.number}", detail.creditor.name)

    column = (pdf.width - 8) / 2
    y = pdf.get_y()
    end_left = _party_block(
        pdf, pdf.gettext("Emisor"), _creditor_lines(pdf, detail.creditor), MARGIN, column
    )
    pdf.set_y(y)
    end_right = _party_block(
        pdf, pdf.gettext("Cliente"), _debtor_lines(detail.debtor), MARGIN + column + 8, column
    )
    pdf.set_y(max(end_left, end_right) + 4)

    _facts(
        pdf,
        [
            (pdf.gettext("Fecha de emisión"), invoice.issued),
            (pdf.gettext("Vencimiento"), invoice.due),
            (pdf.gettext("Moneda"), detail.currency),
            (pdf.gettext("Saldo pendiente"), invoice.open.text),
        ],
    )
    status_color = STATUS_COLORS.get(invoice.status, INK)
    status = f"{pdf.gettext('Estado')}: {invoice.status_label}"
    if invoice.status == "overdue":
        status += " · " + pdf.gettext("{days} días de atraso").format(days=invoice.days_overdue)
    if invoice.disputed is not None:
        status += " · " + pdf.gettext("En reclamo: {amount}").format(amount=invoice.disputed.text)
    pdf.text_line(status, bold=True, color=status_color, size=9.5)
    pdf.ln(2)

    pdf.section_title(pdf.gettext("Detalle"))
    widths = (0.40, 0.09, 0.15, 0.09, 0.12, 0.15)
    with pdf.table(
        col_widths=[w * pdf.width for w in widths],
        text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT", "RIGHT", "RIGHT"),
    ) as table:
        pdf.set_font(FONT, size=8.5)
        table.row(
            [
                pdf.gettext("Descripción"),
                pdf.gettext("Cant."),
                pdf.gettext("Precio unit."),
                pdf.gettext("Imp. %"),
                pdf.gettext("Impuesto"),
                pdf.gettext("Total"),
            ]
        )
        if not invoice.lines:
            table.row([pdf.gettext("Importe facturado"), "", "", "", "", invoice.total.text])
        for line in invoice.lines:
            table.row(
                [
                    line.description,
                    line.quantity,
                    line.unit_price,
                    line.tax_rate,
                    line.tax.text,
                    line.total.text,
                ]
            )
    pdf.ln(3)
    pdf.totals(
        [
            (pdf.gettext("Subtotal"), invoice.subtotal.text, False),
            (pdf.gettext("Impuestos"), invoice.tax.text, False),
            (pdf.gettext("Total de la factura"), invoice.total.text, True),
        ]
    )

    if invoice.items:
        pdf.section_title(pdf.gettext("Movimientos posteriores"))
        with pdf.table(
            col_widths=[w * pdf.width for w in (0.15, 0.25, 0.42, 0.18)],
            text_align=("LEFT", "LEFT", "LEFT", "RIGHT"),
        ) as table:
            pdf.set_font(FONT, size=8.5)
            table.row(
                [
                    pdf.gettext("Fecha"),
                    pdf.gettext("Concepto"),
                    pdf.gettext("Detalle"),
                    pdf.gettext("Importe"),
                ]
            )
            for item in invoice.items:
                table.row([item.date_text, item.label, item.detail, item.amount.text])
        pdf.ln(3)
        pdf.totals(
            [
                (pdf.gettext("Total de la factura"), invoice.total.text, False),
                (pdf.gettext("Cargos posteriores"), detail.charges.text, False),
                (pdf.gettext("Pagos y créditos"), detail.credits.text, False),
                (pdf.gettext("Saldo pendiente"), invoice.open.text, True),
            ]
        )

    if detail.disputes:
        pdf.section_title(pdf.gettext("Reclamos abiertos"))
        for dispute in detail.disputes:
            facts = f"{dispute.opened} · {dispute.status_label} · {dispute.amount.text}"
            pdf.text_line(f"{facts} — {dispute.reason}", size=8.5)

    pdf.ln(4)
    pdf.text_line(
        pdf.gettext(
            "Este documento resume la factura y los movimientos registrados hasta el {date}. "
            "Ante cualquier diferencia, puede abrir un reclamo desde el portal."
        ).format(date=detail.today_text),
        size=7.5,
        color=MUTED,
        height=3.8,
    )
    return bytes(pdf.output())


def render_statement(view: StatementView) -> bytes:
    """The statement of account: per account, opening balance, movements, running balance."""
    pdf = _Document(view.language, "")
    name = view.debtor.name if view.debtor else ""
    pdf.footer_note = pdf.gettext("Emitido por Saldo el {date} para {name}.").format(
        date=view.today_text, name=name
    )
    pdf.set_title(pdf.gettext("Estado de cuenta"))
    pdf.set_creator("Saldo")
    pdf.add_page()
    period = pdf.gettext("Del {start} al {end}").format(start=view.start_text, end=view.end_text)
    _brand(pdf, pdf.gettext("Estado de cuenta"), period)
    if view.debtor:
        _party_block(pdf, pdf.gettext("Cliente"), _debtor_lines(view.debtor), MARGIN, pdf.width)
        pdf.ln(2)

    if not view.accounts:
        pdf.text_line(pdf.gettext("No hay cuentas para mostrar."), color=MUTED)
    widths = (0.13, 0.39, 0.16, 0.16, 0.16)
    invoice_label = pdf.gettext("Factura")
    for account in view.accounts:
        if pdf.get_y() > pdf.h - 70:
            pdf.add_page()
        pdf.rule(2)
        pdf.text_line(f"{account.creditor.name} · {account.currency}", size=12, bold=True)
        pdf.ln(1)
        _facts(
            pdf,
            [
                (pdf.gettext("Saldo inicial"), account.opening.text),
                (pdf.gettext("Débitos"), account.debits.text),
                (pdf.gettext("Créditos"), account.credits.text),
                (pdf.gettext("Saldo final"), account.closing.text),
            ],
        )
        with pdf.table(
            col_widths=[w * pdf.width for w in widths],
            text_align=("LEFT", "LEFT", "RIGHT", "RIGHT", "RIGHT"),
        ) as table:
            pdf.set_font(FONT, size=8)
            table.row(
                [
                    pdf.gettext("Fecha"),
                    pdf.gettext("Concepto"),
                    pdf.gettext("Débito"),
                    pdf.gettext("Crédito"),
                    pdf.gettext("Saldo"),
                ]
            )
            bold = FontFace(emphasis="BOLD")
            opening = table.row()
            opening.cell(view.start_text)
            opening.cell(pdf.gettext("Saldo inicial"), style=bold)
            opening.cell("")
            opening.cell("")
            opening.cell(account.opening.text, style=bold)
            for row in account.rows:
                notes = [row.detail] if row.detail else []
                if row.reference and row.reference not in row.label:
                    notes.insert(0, f"{invoice_label} {row.reference}")
                concept = "\n".join([row.label, " · ".join(notes)]) if notes else row.label
                table.row(
                    [
                        row.date_text,
                        concept,
                        row.debit.text if row.debit else "",
                        row.credit.text if row.credit else "",
                        row.balance.text,
                    ]
                )
            closing = table.row()
            closing.cell(view.end_text)
            closing.cell(pdf.gettext("Saldo final"), style=bold)
            closing.cell(account.debits.text, style=bold)
            closing.cell(account.credits.text, style=bold)
            closing.cell(account.closing.text, style=bold)
        if not account.rows:
            pdf.ln(1)
            pdf.text_line(pdf.gettext("Sin movimientos en el período."), size=8.5, color=MUTED)
        pdf.ln(4)

    pdf.text_line(
        pdf.gettext(
            "Saldo positivo: importe a pagar. Saldo negativo: saldo a su favor. "
            "Los movimientos se ordenan por fecha de imputación."
        ),
        size=7.5,
        color=MUTED,
        height=3.8,
    )
    return bytes(pdf.output())
