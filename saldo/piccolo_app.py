from pathlib import Path

from piccolo.conf.apps import AppConfig, table_finder

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

APP_CONFIG = AppConfig(
    app_name="saldo",
    migrations_folder_path=str(MIGRATIONS),
    table_classes=table_finder(modules=["saldo.tables"], exclude_imported=True),
)
