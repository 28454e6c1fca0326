"""Generate a realistic portfolio (debtors.csv, invoices.csv) for the import benchmark.

    python bench/gen_portfolio.py --debtors 1000000 --lines 10000000 --out bench/data

Debtors live in Argentina, Mexico or Chile and are billed in ARS, MXN or CLP; names carry
accents and ñ. Invoices have 1 to 7 lines (4 on average), their rows are contiguous, and a
few debtors owe in a second currency. The output is deterministic for a given --seed.
"""

from __future__ import annotations

import argparse
import datetime
import random
import sys
import time
from pathlib import Path

DEBTOR_HEADER = (
    "external_id,name,document_type,document_number,email,phone,whatsapp,"
    "language,timezone,country\n"
)
INVOICE_HEADER = (
    "invoice_number,debtor_external_id,currency,issue_date,due_date,"
    "description,quantity,unit_price,tax_rate\n"
)

FIRST_NAMES = [
    "María",
    "José",
    "Sofía",
    "Martín",
    "Lucía",
    "Nicolás",
    "Valentina",
    "Matías",
    "Camila",
    "Sebastián",
    "Agustina",
    "Joaquín",
    "Florencia",
    "Tomás",
    "Ximena",
    "Iñaki",
    "Begoña",
    "Ramón",
    "Inés",
    "Andrés",
    "Mónica",
    "Raúl",
    "Verónica",
    "Héctor",
    "Ángela",
    "Óscar",
    "Débora",
    "Julián",
    "Noemí",
    "Rubén",
    "Zoé",
    "Adrián",
    "Belén",
    "César",
    "Dolores",
]
SURNAMES = [
    "Muñoz",
    "Ibáñez",
    "Pérez",
    "Núñez",
    "González",
    "Fernández",
    "Rodríguez",
    "López",
    "Martínez",
    "Sánchez",
    "Gómez",
    "Díaz",
    "Álvarez",
    "Romero",
    "Suárez",
    "Peña",
    "Castaño",
    "Ordóñez",
    "Quiñones",
    "Velázquez",
    "Gutiérrez",
    "Jiménez",
    "Hernández",
    "Ruiz",
    "Cañete",
    "Zúñiga",
    "Benítez",
    "Acuña",
    "Ríos",
    "Ramírez",
    "Medina",
    "Vargas",
    "Bustamante",
]
COMPANY_SUFFIXES = ["S.A.", "S.R.L.", "S.A. de C.V.", "SpA", "Ltda."]
ASCII = str.maketrans("áéíóúÁÉÍÓÚñÑüÜ", "aeiouAEIOUnNuU")

# country: (currency, document type, phone prefix, time zone, tax rates, weight)
COUNTRIES = {
    "AR": ("ARS", "DNI", "+54911", "America/Argentina/Buenos_Aires", ("21", "10.5", "27", "0")),
    "MX": ("MXN", "RFC", "+5255", "America/Mexico_City", ("16", "16", "8", "0")),
    "CL": ("CLP", "RUT", "+569", "America/Santiago", ("19", "19", "19", "0")),
}
COUNTRY_CYCLE = ["AR"] * 5 + ["MX"] * 3 + ["CL"] * 2

PRODUCTS = [
    "Señal de televisión",
    "Abono mensual de internet 300 Mb",
    "Telefonía fija",
    "Cuota de mantenimiento",
    "Cargo por reconexión",
    "Alquiler de decodificador",
    "Servicio técnico a domicilio",
    "Paquete de fútbol",
    "Seguro del equipo",
    "Consumo de energía eléctrica",
    "Cuota del préstamo personal",
    "Interés compensatorio",
    "Matrícula anual",
    "Cuota escolar",
    "Expensas ordinarias",
    "Expensas extraordinarias",
    "Plan de salud familiar",
    "Envío a domicilio",
    "Licencia de software",
    "Almacenamiento en la nube",
]


def _prices(rnd: random.Random, currency: str, n: int = 997) -> list[str]:
    """A pool of unit prices as the file would carry them (CLP has no decimals)."""
    if currency == "CLP":
        return [str(rnd.randrange(990, 89_990, 10)) for _ in range(n)]
    if currency == "MXN":
        return [f"{rnd.randrange(4_900, 2_499_900) / 100:.2f}" for _ in range(n)]
    return [f"{rnd.randrange(15_000, 9_999_900) / 100:.2f}" for _ in range(n)]


QUANTITIES = ["1"] * 14 + ["2", "3", "0.5", "1.5", "12", "2.25"]


def write_debtors(path: Path, count: int, rnd: random.Random) -> list[str]:
    """Write the debtors file; return each debtor's country (index = debtor number - 1)."""
    countries: list[str] = []
    chunk: list[str] = []
    names = [(f, s1, s2) for f in FIRST_NAMES for s1 in SURNAMES for s2 in SURNAMES]
    rand = rnd.random
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(DEBTOR_HEADER)
        for i in range(1, count + 1):
            country = COUNTRY_CYCLE[int(rand() * 10)]
            countries.append(country)
            _, doc_type, phone_prefix, tz, _ = COUNTRIES[country]
            first, s1, s2 = names[int(rand() * len(names))]
            if i % 11 == 0:
                name = f'"{s1} {s2} y Asociados, {COMPANY_SUFFIXES[i % 5]}"'
                doc_type = {"AR": "CUIT", "MX": "RFC", "CL": "RUT"}[country]
            else:
                name = f"{first} {s1} {s2}"
            email = f"{first}.{s1}{i}@ejemplo.com".translate(ASCII).lower() if i % 7 else ""
            phone = f"{phone_prefix}{10_000_000 + (i * 7919) % 89_999_999}"
            whatsapp = phone if i % 3 else ""
            chunk.append(
                f"D{i:08d},{name},{doc_type},{20_000_000 + i * 13},{email},"
                f"{phone},{whatsapp},es,{tz},{country}\n"
            )
            if len(chunk) >= 50_000:
                out.write("".join(chunk))
                chunk.clear()
        out.write("".join(chunk))
    return countries


def write_invoices(path: Path, lines: int, countries: list[str], rnd: random.Random) -> int:
    """Write `lines` invoice rows (whole invoices); return the number of invoices."""
    rand = rnd.random
    prices = {c: _prices(rnd, cur) for c, (cur, *_rest) in COUNTRIES.items()}
    base = datetime.date(2025, 1, 1)
    days = [(base + datetime.timedelta(days=d)).isoformat() for d in range(0, 760)]
    n_debtors = len(countries)
    written = 0
    number = 0
    chunk: list[str] = []
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(INVOICE_HEADER)
        while written < lines:
            number += 1
            debtor = int(rand() * n_debtors)
            country = countries[debtor]
            currency, _, _, _, rates = COUNTRIES[country]
            if number % 50 == 0 and country != "CL":  # a few owe in US dollars too
                currency = "USD"
            issue = int(rand() * 700)
            head = (
                f"F{number:09d},D{debtor + 1:08d},{currency},{days[issue]},"
                f"{days[issue + (30 if number % 4 else 45)]},"
            )
            pool = prices[country]
            n_lines = min(1 + int(rand() * 7), lines - written)
            for _ in range(n_lines):
                r = rand()
                chunk.append(
                    f"{head}{PRODUCTS[int(r * 20)]},{QUANTITIES[int(rand() * 20)]},"
                    f"{pool[int(r * 997)]},{rates[int(rand() * 4)]}\n"
                )
            written += n_lines
            if len(chunk) >= 100_000:
                out.write("".join(chunk))
                chunk.clear()
        out.write("".join(chunk))
    return number


def generate(debtors: int, lines: int, out_dir: Path, seed: int = 42) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    debtors_csv, invoices_csv = out_dir / "debtors.csv", out_dir / "invoices.csv"
    countries = write_debtors(debtors_csv, debtors, rnd)
    write_invoices(invoices_csv, lines, countries, rnd)
    return debtors_csv, invoices_csv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, default=1_000_000)
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    debtors_csv, invoices_csv = generate(args.debtors, args.lines, args.out, args.seed)
    seconds = time.perf_counter() - started
    print(f"{debtors_csv} ({debtors_csv.stat().st_size / 1e6:,.0f} MB)")
    print(f"{invoices_csv} ({invoices_csv.stat().st_size / 1e6:,.0f} MB)")
    print(f"generated {args.debtors:,} debtors and {args.lines:,} invoice lines in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
