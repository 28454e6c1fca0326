from piccolo.conf.apps import AppRegistry

from saldo.db import DB

__all__ = ["APP_REGISTRY", "DB"]

APP_REGISTRY = AppRegistry(apps=["saldo.piccolo_app"])
