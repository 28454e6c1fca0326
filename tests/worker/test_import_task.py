"""A real arq burst worker takes the import job off the real Redis queue and runs it."""

import csv
from pathlib import Path

from saldo.tables import Creditor, Invoice, LedgerEntry
from saldo.worker import build_worker, open_queue

DEBTORS = [
    [
        "external_id",
        "name",
        "document_type",
        "document_number",
        "email",
        "phone",
        "whatsapp",
        "language",
        "timezone",
        "country",
    ],
    [
        "W-1",
        "Señora Peña",
        "DNI",
        "30111222",
        "pena@example.com",
        "",
        "",
        "es",
        "America/Argentina/Buenos_Aires",
        "AR",
    ],
]
INVOICES = [
    [
        "invoice_number",
        "debtor_external_id",
        "currency",
        "issue_date",
        "due_date",
        "description",
        "quantity",
        "unit_price",
        "tax_rate",
    ],
    ["W-INV-1", "W-1", "ARS", "2026-09-01", "2026-10-01", "Abono mensual", "1", "1000.00", "21"],
]


def write(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(rows)
    return path


async def run_job(servers, *args):
    queue = await open_queue(servers.redis_url, servers.redis_prefix)
    try:
        job = await queue.enqueue_job("import_portfolio", *args)
        assert job is not None
        worker = build_worker(servers.redis_url, servers.redis_prefix, burst=True)
        await worker.main()
        await worker.close()
        return await job.result(timeout=5)
    finally:
        await queue.aclose()


async def test_worker_imports_a_portfolio(db, tmp_path):
    debtors = write(tmp_path / "debtors.csv", DEBTORS)
    invoices = write(tmp_path / "invoices.csv", INVOICES)
    result = await run_job(db, str(debtors), str(invoices), "Acreedor Worker")
    assert result["ok"] is True
    creditor = await Creditor.objects().get(Creditor.name == "Acreedor Worker")
    invoice = await Invoice.objects().get(
        (Invoice.creditor == creditor.id) & (Invoice.number == "W-INV-1")
    )
    assert invoice.total == 121_000
    assert await LedgerEntry.count().where(LedgerEntry.invoice == invoice.id) == 1


async def test_worker_reports_a_bad_row_without_importing(db, tmp_path):
    debtors = write(tmp_path / "debtors.csv", DEBTORS)
    bad = [*INVOICES, ["W-INV-2", "NOBODY", "ARS", "2026-09-01", "2026-10-01", "x", "1", "5", "0"]]
    invoices = write(tmp_path / "invoices.csv", bad)
    result = await run_job(db, str(debtors), str(invoices), "Acreedor Worker Malo")
    assert result["ok"] is False
    assert (result["file"], result["line"]) == ("invoices.csv", 3)
    assert not await Invoice.exists().where(Invoice.number == "W-INV-2")
