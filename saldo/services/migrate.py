"""Apply Piccolo migrations and tell whether tables and migrations agree."""

from __future__ import annotations

import contextlib
import io

from piccolo.apps.migrations.commands.forwards import run_forwards
from piccolo.apps.migrations.commands.new import AutoMigrationManager

from saldo.piccolo_app import APP_CONFIG


async def migrate(*, quiet: bool = False) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out) if quiet else contextlib.nullcontext():
        result = await run_forwards(app_name="saldo")
    if not result.success:
        raise RuntimeError(f"migrations failed: {result.message}\n{out.getvalue()}")


async def pending_schema_changes() -> list[str]:
    """SQL the tables would need beyond what the migrations create (empty when in step)."""
    manager = AutoMigrationManager()
    statements = await manager.get_alter_statements(app_config=APP_CONFIG)
    return [line for group in statements for line in group.statements]
