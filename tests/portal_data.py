"""A small portfolio with known numbers for the account pages, statements and PDFs.

María José Núñez owes at three creditors (ARS in Argentina, MXN in Mexico, EUR in Spain);
Julián Pérez Ibáñez is another debtor of the Argentine creditor, whose rows must never show up
on María's pages. Data goes in through the real portfolio import, then the ledger services.

Every amount below is in minor units and follows from the lines:
  A-1 (due 2026-09-10): 1 × 28.500,00 + 21 % = 34.485,00; 2 × 3.200,50 + 21 % = 7.745,21
      -> 42.230,21; + interest 500,00; − payment 20.000,00 -> open 22.730,21
  A-2 (due 2026-11-10): 1 × 29.900,00 + 21 % = 36.179,00; + fee 1.500,00; − credit note
      5.000,00 -> open 32.679,00
  A-3 (due 2026-12-10): 36.179,00 open (not yet due)
  A-4 (due 2026-04-10): 1 × 10.000,00 + 21 % = 12.100,00 open
  A-5 (due 2026-06-10): 5.000,00 + 21 % = 6.050,00, paid in full
"""

from __future__ import annotations

import csv
import datetime as dt
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from saldo.services.ledger import apply_payment, post_entry
from saldo.services.portfolio_import import import_portfolio
from saldo.tables import Account, Debtor, Dispute, EntryKind, Invoice

TODAY = dt.date(2026, 11, 25)

DEBTOR_HEADER = [
    "external_id", "name", "document_type", "document_number", "email", "phone", "whatsapp",
    "language", "timezone", "country",
]  # fmt: skip
INVOICE_HEADER = [
    "invoice_number", "debtor_external_id", "currency", "issue_date", "due_date", "description",
    "quantity", "unit_price", "tax_rate",
]  # fmt: skip


@dataclass
class World:
    tag: str
    maria_ids: list[int]  # María's debtor rows: AR, MX, ES
    julian_id: int
    invoices: dict[str, int]  # invoice number -> id
    accounts: dict[str, int]  # "ARS" / "MXN" / "EUR" (María) and "JULIAN" -> account id
    creditors: dict[str, str] = field(default_factory=dict)  # "AR" / "MX" / "ES" -> name

    def number(self, short: str) -> str:
        return f"{short}-{self.tag}"

    def invoice(self, short: str) -> int:
        return self.invoices[self.number(short)]


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


async def _import(creditor: str, debtors: list[list[str]], invoices: list[list[str]]) -> None:
    with tempfile.TemporaryDirectory(prefix="saldo-portal-test-") as tmp:
        debtors_csv, invoices_csv = Path(tmp) / "debtors.csv", Path(tmp) / "invoices.csv"
        _write(debtors_csv, DEBTOR_HEADER, debtors)
        _write(invoices_csv, INVOICE_HEADER, invoices)
        await import_portfolio(debtors_csv, invoices_csv, creditor=creditor)


# (invoice, debtor, currency, issued, due, [(description, quantity, unit price, tax rate)])
Invoices = list[tuple[str, str, str, str, str, list[tuple[str, str, str, str]]]]

CONECTA_INVOICES: Invoices = [
    ("A-1", "C1", "ARS", "2026-08-01", "2026-09-10", [
        ("Abono fibra 300 Mb — agosto", "1", "28500.00", "21"),
        ("Decodificador adicional", "2", "3200.50", "21"),
    ]),
    ("A-2", "C1", "ARS", "2026-10-01", "2026-11-10", [
        ("Abono fibra 300 Mb — octubre", "1", "29900.00", "21"),
    ]),
    ("A-3", "C1", "ARS", "2026-11-01", "2026-12-10", [
        ("Abono fibra 300 Mb — noviembre", "1", "29900.00", "21"),
    ]),
    ("A-4", "C1", "ARS", "2026-03-01", "2026-04-10", [
        ("Instalación y cableado", "1", "10000.00", "21"),
    ]),
    ("A-5", "C1", "ARS", "2026-05-01", "2026-06-10", [("Cambio de equipo", "1", "5000.00", "21")]),
    ("J-1", "C2", "ARS", "2026-09-01", "2026-10-01", [
        ("Plan móvil secreto de Julián", "1", "15999.99", "21"),
    ]),
]  # fmt: skip
AZTLAN_INVOICES: Invoices = [
    ("F-1", "M1", "MXN", "2026-10-21", "2026-11-20", [
        ("Sofá modular tres plazas", "1", "18999.00", "16"),
    ]),
]  # fmt: skip
CERVANTES_INVOICES: Invoices = [
    ("E-1", "E1", "EUR", "2026-11-02", "2026-12-02", [
        ("Enciclopedia ilustrada (12 tomos)", "1", "480.00", "4"),
    ]),
]  # fmt: skip


def _rows(invoices: Invoices, tag: str) -> list[list[str]]:
    return [
        [f"{number}-{tag}", f"{debtor}-{tag}", currency, issued, due, *line]
        for number, debtor, currency, issued, due, lines in invoices
        for line in lines
    ]


async def build_world(*, maria_language: str = "es") -> World:
    tag = secrets.token_hex(3).upper()
    conecta = f"Conecta Telecom {tag}"
    aztlan = f"Muebles Aztlán {tag}"
    cervantes = f"Librería Cervantes {tag}"
    maria = ["María José Núñez", "DNI", "27345678", f"maria.{tag}@example.com", "+5491144556677"]
    julian = ["Julián Pérez Ibáñez", "CUIT", "20301112229", f"julian.{tag}@example.com"]
    ar_zone = "America/Argentina/Buenos_Aires"

    await _import(
        conecta,
        [
            [f"C1-{tag}", *maria, "+5491144556677", maria_language, ar_zone, "AR"],
            [f"C2-{tag}", *julian, "+5491133221100", "", "es", ar_zone, "AR"],
        ],
        _rows(CONECTA_INVOICES, tag),
    )
    await _import(
        aztlan,
        [[f"M1-{tag}", *maria, "+5491144556677", maria_language, "America/Mexico_City", "MX"]],
        _rows(AZTLAN_INVOICES, tag),
    )
    await _import(
        cervantes,
        [[f"E1-{tag}", *maria, "", maria_language, "Europe/Madrid", "ES"]],
        _rows(CERVANTES_INVOICES, tag),
    )

    debtors = await Debtor.select(Debtor.id, Debtor.external_id).where(
        Debtor.external_id.is_in([f"C1-{tag}", f"M1-{tag}", f"E1-{tag}", f"C2-{tag}"])
    )
    ids = {d["external_id"]: d["id"] for d in debtors}
    accounts = {
        a["currency"] if a["debtor"] != ids[f"C2-{tag}"] else "JULIAN": a["id"]
        for a in await Account.select(Account.id, Account.currency, Account.debtor).where(
            Account.debtor.is_in(list(ids.values()))
        )
    }
    invoices = {
        i["number"]: i["id"]
        for i in await Invoice.select(Invoice.id, Invoice.number).where(
            Invoice.number.like(f"%-{tag}")
        )
    }
    world = World(
        tag=tag,
        maria_ids=[ids[f"C1-{tag}"], ids[f"M1-{tag}"], ids[f"E1-{tag}"]],
        julian_id=ids[f"C2-{tag}"],
        invoices=invoices,
        accounts=accounts,
        creditors={"AR": conecta, "MX": aztlan, "ES": cervantes},
    )
    await _movements(world)
    return world


async def _movements(world: World) -> None:
    ars = world.accounts["ARS"]
    at = lambda day: dt.datetime.combine(day, dt.time(15, 0), tzinfo=dt.UTC)  # noqa: E731
    # A-5 paid in full on its due date, chosen explicitly (A-4 is older).
    await apply_payment(
        account_id=ars,
        provider="bank_transfer",
        provider_payment_id=f"t-{world.tag}-1",
        amount=605000,
        received_at=at(dt.date(2026, 6, 10)),
        method="transferencia",
        preferred_invoice_ids=[world.invoice("A-5")],
    )
    await post_entry(
        account_id=ars,
        kind=EntryKind.interest,
        amount=50000,
        currency="ARS",
        effective_date=dt.date(2026, 9, 30),
        invoice_id=world.invoice("A-1"),
        description="Interés por mora",
        basis={"monthly_rate_bp": 300, "since": "2026-09-10"},
        idempotency_key=f"test:interest:{world.tag}",
    )
    await apply_payment(
        account_id=ars,
        provider="bank_transfer",
        provider_payment_id=f"t-{world.tag}-2",
        amount=2000000,
        received_at=at(dt.date(2026, 10, 1)),
        method="transferencia",
        preferred_invoice_ids=[world.invoice("A-1")],
    )
    await post_entry(
        account_id=ars,
        kind=EntryKind.fee,
        amount=150000,
        currency="ARS",
        effective_date=dt.date(2026, 11, 15),
        invoice_id=world.invoice("A-2"),
        description="Gastos de gestión",
        basis={"fixed_fee": 150000, "due_date": "2026-11-10"},
        idempotency_key=f"test:fee:{world.tag}",
    )
    await post_entry(
        account_id=ars,
        kind=EntryKind.credit_note,
        amount=-500000,
        currency="ARS",
        effective_date=dt.date(2026, 11, 18),
        invoice_id=world.invoice("A-2"),
        description="Bonificación por corte de servicio",
        idempotency_key=f"test:credit:{world.tag}",
    )
    await Dispute.insert(
        Dispute(
            account=world.accounts["MXN"],
            invoice=world.invoice("F-1"),
            amount=500000,
            reason_code="damaged_goods",
            reason_text="Llegó con una pata rota",
            status="open",
        )
    )


# Expected figures (minor units) for María's ARS account on TODAY.
ARS_OPEN = {"A-1": 2273021, "A-2": 3267900, "A-3": 3617900, "A-4": 1210000}
ARS_TOTAL = sum(ARS_OPEN.values())  # 10_368_821
ARS_OVERDUE = ARS_OPEN["A-1"] + ARS_OPEN["A-2"] + ARS_OPEN["A-4"]
ARS_AGING = {
    "current": ARS_OPEN["A-3"],
    "1_30": ARS_OPEN["A-2"],
    "31_60": 0,
    "61_90": ARS_OPEN["A-1"],
    "90_plus": ARS_OPEN["A-4"],
}
MXN_TOTAL = 2203884  # 18.999,00 + 16 %
EUR_TOTAL = 49920  # 480,00 + 4 %


async def build_big_debtor(*, lines: int = 200, per_invoice: int = 5) -> int:
    """One debtor with `lines` invoice lines over `lines / per_invoice` open invoices."""
    tag = secrets.token_hex(3).upper()
    debtor = f"B-{tag}"
    rows = []
    for number in range(lines // per_invoice):
        due = TODAY + dt.timedelta(days=30 - 4 * number)  # from next month to ~5 months ago
        issue = due - dt.timedelta(days=30)
        for position in range(per_invoice):
            rows.append(
                [f"BIG-{tag}-{number:03d}", debtor, "ARS", issue.isoformat(), due.isoformat(),
                 f"Servicio número {position + 1} — período {issue:%m/%Y}", str(position + 1),
                 f"{1234.56 + 10 * position:.2f}", "21"]
            )  # fmt: skip
    await _import(
        f"Grandes Cuentas {tag}",
        [[debtor, "Ñandú Grande S.A.", "CUIT", "30712345671", f"big.{tag}@example.com",
          "+5491100000000", "", "es", "America/Argentina/Buenos_Aires", "AR"]],
        rows,
    )  # fmt: skip
    found = await Debtor.select(Debtor.id).where(Debtor.external_id == debtor).first()
    assert found is not None
    return int(found["id"])
