"""The demo portfolio: two creditors, a dozen debtors in ARS, MXN and CLP, invoices overdue by
various ages and a few payments — loaded through the same import path as real portfolios."""

from __future__ import annotations

import csv
import datetime as dt
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from saldo.services.dunning import ensure_default_policies
from saldo.services.import_sql import DEBTOR_COLUMNS, INVOICE_COLUMNS
from saldo.services.ledger import apply_payment
from saldo.services.portfolio_import import import_portfolio
from saldo.tables import Account, Creditor, Debtor, Invoice

AR, MX, CL = (
    "America/Argentina/Buenos_Aires",
    "America/Mexico_City",
    "America/Santiago",
)

# Conecta Telecom bills in Argentina and Chile; Muebles Aztlán in Mexico. María José Núñez is a
# customer of both, so the portal shows her two creditors.
CONECTA = "Conecta Telecom S.A."
AZTLAN = "Muebles Aztlán S.A. de C.V."

DEBTORS: dict[str, list[list[str]]] = {
    CONECTA: [
        [
            "C-1001",
            "María José Núñez",
            "DNI",
            "27345678",
            "maria.nunez@example.com",
            "+5491144556677",
            "+5491144556677",
            "es",
            AR,
            "AR",
        ],
        [
            "C-1002",
            "Julián Pérez Ibáñez",
            "CUIT",
            "20-30111222-9",
            "julian.perez@example.com",
            "+5491133221100",
            "",
            "es",
            AR,
            "AR",
        ],
        [
            "C-1003",
            "Panadería La Espiga SRL",
            "CUIT",
            "30-71234567-1",
            "compras@laespiga.example",
            "+5493515550101",
            "+5493515550101",
            "es",
            "America/Argentina/Cordoba",
            "AR",
        ],
        [
            "C-1004",
            "Lucía Fernández",
            "DNI",
            "33987654",
            "lucia.fernandez@example.com",
            "+5492614445566",
            "",
            "es",
            "America/Argentina/Mendoza",
            "AR",
        ],
        [
            "C-1005",
            "Ignacio Muñoz Soto",
            "RUT",
            "15.678.901-2",
            "ignacio.munoz@example.cl",
            "+56991234567",
            "+56991234567",
            "es",
            CL,
            "CL",
        ],
        [
            "C-1006",
            "Catalina Rojas",
            "RUT",
            "17.345.112-K",
            "catalina.rojas@example.cl",
            "+56987654321",
            "",
            "es",
            CL,
            "CL",
        ],
        [
            "C-1007",
            "Tomás Gutiérrez",
            "DNI",
            "40111222",
            "tomas.gutierrez@example.com",
            "+5491155667788",
            "",
            "en",
            AR,
            "AR",
        ],
    ],
    AZTLAN: [
        [
            "M-2001",
            "María José Núñez",
            "DNI",
            "27345678",
            "maria.nunez@example.com",
            "+5491144556677",
            "+5491144556677",
            "es",
            AR,
            "AR",
        ],
        [
            "M-2002",
            "Alejandro Hernández López",
            "CURP",
            "HELA800101HDFRPL09",
            "alejandro.hernandez@example.mx",
            "+525512345678",
            "+525512345678",
            "es",
            MX,
            "MX",
        ],
        [
            "M-2003",
            "Guadalupe Sánchez",
            "RFC",
            "SAGU850505AB1",
            "lupita.sanchez@example.mx",
            "+523312345678",
            "",
            "es",
            MX,
            "MX",
        ],
        [
            "M-2004",
            "Hotel Cañada Azul SA de CV",
            "RFC",
            "HCA010101XY2",
            "pagos@canadaazul.example.mx",
            "+529981234567",
            "+529981234567",
            "es",
            "America/Cancun",
            "MX",
        ],
        [
            "M-2005",
            "Diego Ramírez",
            "RFC",
            "RADI900909CD3",
            "diego.ramirez@example.mx",
            "+528112345678",
            "",
            "es",
            "America/Monterrey",
            "MX",
        ],
    ],
}

# (number, debtor, currency, issued days ago, due days ago, [(description, qty, price, tax)])
INVOICES: dict[str, list[tuple[str, str, str, int, int, list[tuple[str, str, str, str]]]]] = {
    CONECTA: [
        (
            "A-0001-00012345",
            "C-1001",
            "ARS",
            70,
            40,
            [
                ("Abono fibra 300 Mb — agosto", "1", "28500.00", "21"),
                ("Decodificador adicional", "2", "3200.50", "21"),
            ],
        ),
        (
            "A-0001-00012400",
            "C-1001",
            "ARS",
            40,
            10,
            [
                ("Abono fibra 300 Mb — septiembre", "1", "28500.00", "21"),
            ],
        ),
        (
            "A-0001-00012466",
            "C-1001",
            "ARS",
            10,
            -20,
            [
                ("Abono fibra 300 Mb — octubre", "1", "29900.00", "21"),
            ],
        ),
        (
            "A-0001-00012501",
            "C-1002",
            "ARS",
            130,
            100,
            [
                ("Plan móvil 20 GB", "1", "15999.99", "21"),
                ("Roaming Uruguay", "3", "1250.00", "21"),
            ],
        ),
        (
            "A-0001-00012502",
            "C-1003",
            "ARS",
            95,
            65,
            [
                ("Central telefónica — mantenimiento", "1", "120000.00", "21"),
                ("Líneas adicionales", "4", "8900.00", "21"),
            ],
        ),
        (
            "A-0001-00012503",
            "C-1004",
            "ARS",
            20,
            -10,
            [
                ("Abono fibra 100 Mb", "1", "19500.00", "21"),
            ],
        ),
        (
            "CL-000345",
            "C-1005",
            "CLP",
            50,
            20,
            [
                ("Plan hogar fibra 600", "1", "24990", "19"),
                ("Instalación", "1", "15000", "19"),
            ],
        ),
        (
            "CL-000346",
            "C-1006",
            "CLP",
            200,
            170,
            [
                ("Plan móvil ilimitado", "6", "18990", "19"),
            ],
        ),
        (
            "A-0001-00012510",
            "C-1007",
            "ARS",
            35,
            5,
            [
                ("Streaming pack", "1", "7999.90", "21"),
            ],
        ),
    ],
    AZTLAN: [
        (
            "F-5001",
            "M-2001",
            "MXN",
            60,
            30,
            [
                ("Sofá modular tres plazas", "1", "18999.00", "16"),
            ],
        ),
        (
            "F-5002",
            "M-2002",
            "MXN",
            100,
            70,
            [
                ("Comedor de parota 6 sillas", "1", "32500.00", "16"),
                ("Flete y armado", "1", "1200.00", "16"),
            ],
        ),
        (
            "F-5003",
            "M-2003",
            "MXN",
            25,
            -5,
            [
                ("Colchón matrimonial", "1", "8999.00", "16"),
            ],
        ),
        (
            "F-5004",
            "M-2004",
            "MXN",
            150,
            120,
            [
                ("Camas king size para habitaciones", "12", "14500.00", "16"),
                ("Buró de madera", "24", "2350.00", "16"),
            ],
        ),
        (
            "F-5005",
            "M-2005",
            "MXN",
            45,
            15,
            [
                ("Escritorio ejecutivo", "1", "7450.50", "16"),
            ],
        ),
    ],
}

# Where each creditor is: Muebles Aztlán's default dunning policy gets the Mexico send window.
CREDITOR_COUNTRIES = {CONECTA: "AR", AZTLAN: "MX"}

# (creditor, debtor external id, currency, amount in minor units, days ago, reference)
PAYMENTS = [
    (CONECTA, "C-1001", "ARS", 2_000_000, 35, "demo-transfer-0001"),
    (CONECTA, "C-1002", "ARS", 1_000_000, 80, "demo-transfer-0002"),
    (AZTLAN, "M-2002", "MXN", 1_500_000, 50, "demo-transfer-0003"),
    (CONECTA, "C-1006", "CLP", 50_000, 120, "demo-transfer-0004"),
]


@dataclass
class DemoSummary:
    seeded: bool
    creditors: int = 0
    debtors: int = 0
    invoices: int = 0
    payments: int = 0
    logins: list[tuple[str, str]] = field(default_factory=list)

    def describe(self, public_url: str) -> str:
        if not self.seeded:
            return f"Database already has data; demo not loaded. Portal: {public_url}/"
        people = "\n".join(f"  {email:<36} document ending {last4}" for email, last4 in self.logins)
        return (
            f"Demo portfolio loaded: {self.creditors} creditors, {self.debtors} debtors, "
            f"{self.invoices} invoices, {self.payments} payments.\n"
            f"Portal: {public_url}/   Back office: {public_url}/backoffice\n"
            f"Demo debtors (email, then the last 4 digits of their document):\n{people}"
        )


def _write(path: Path, header: tuple[str, ...], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def _invoice_rows(creditor: str, today: dt.date) -> list[list[str]]:
    rows = []
    for number, debtor, currency, issued, due, lines in INVOICES[creditor]:
        issue = (today - dt.timedelta(days=issued)).isoformat()
        due_on = (today - dt.timedelta(days=due)).isoformat()
        for description, qty, price, tax in lines:
            rows.append([number, debtor, currency, issue, due_on, description, qty, price, tax])
    return rows


async def seed_demo(*, only_if_empty: bool = True, today: dt.date | None = None) -> DemoSummary:
    if only_if_empty and await Creditor.count() > 0:
        return DemoSummary(seeded=False)
    today = today or dt.datetime.now(dt.UTC).date()
    with tempfile.TemporaryDirectory(prefix="saldo-demo-") as tmp:
        for creditor, debtors in DEBTORS.items():
            debtors_csv, invoices_csv = Path(tmp) / "debtors.csv", Path(tmp) / "invoices.csv"
            _write(debtors_csv, DEBTOR_COLUMNS, debtors)
            _write(invoices_csv, INVOICE_COLUMNS, _invoice_rows(creditor, today))
            await import_portfolio(debtors_csv, invoices_csv, creditor=creditor)
    for creditor, country in CREDITOR_COUNTRIES.items():
        await Creditor.update({Creditor.country: country}).where(Creditor.name == creditor)
        row = await Creditor.select(Creditor.id).where(Creditor.name == creditor).first()
        assert row is not None, f"demo creditor {creditor} missing"
        await ensure_default_policies(int(row["id"]))
    for creditor, external_id, currency, amount, days_ago, reference in PAYMENTS:
        account = await _account(creditor, external_id, currency)
        received = dt.datetime.combine(
            today - dt.timedelta(days=days_ago), dt.time(12, 0), tzinfo=dt.UTC
        )
        await apply_payment(
            account_id=account,
            provider="bank_transfer",
            provider_payment_id=reference,
            amount=amount,
            received_at=received,
            method="transferencia",
        )
    logins = sorted(
        {(row[4], re.sub(r"\D", "", row[3])[-4:]) for rows in DEBTORS.values() for row in rows}
    )
    return DemoSummary(
        seeded=True,
        creditors=len(DEBTORS),
        debtors=await Debtor.count(),
        invoices=await Invoice.count(),
        payments=len(PAYMENTS),
        logins=logins,
    )


async def _account(creditor: str, external_id: str, currency: str) -> int:
    row = (
        await Account.select(Account.id)
        .where(
            (Account.creditor.name == creditor)
            & (Account.debtor.external_id == external_id)
            & (Account.currency == currency)
        )
        .first()
    )
    assert row is not None, f"demo account {external_id} {currency} missing"
    return int(row["id"])
