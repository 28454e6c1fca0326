"""arq tasks: thin, idempotent, each calls one service and returns a small dict."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from saldo.db import DB


async def startup(ctx: dict[str, Any]) -> None:
    ctx["owns_pool"] = DB.pool is None
    if ctx["owns_pool"]:
        await DB.start_connection_pool(min_size=1, max_size=4)


async def shutdown(ctx: dict[str, Any]) -> None:
    if ctx.get("owns_pool"):
        await DB.close_connection_pool()


async def import_portfolio(
    ctx: dict[str, Any], debtors_csv: str, invoices_csv: str, creditor: str
) -> dict[str, Any]:
    """Import a portfolio; safe to run twice (the import is an idempotent upsert)."""
    from saldo.errors import ImportFileError
    from saldo.services.portfolio_import import import_portfolio as run_import

    try:
        result = await run_import(Path(debtors_csv), Path(invoices_csv), creditor=creditor)
    except ImportFileError as exc:
        return {"ok": False, "file": exc.file, "line": exc.line, "reason": exc.reason}
    return {"ok": True, **asdict(result)}


FUNCTIONS = [import_portfolio]
