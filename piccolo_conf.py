"""Piccolo's configuration for the `piccolo` CLI; Saldo itself uses `saldo.piccolo_conf`."""

from saldo.piccolo_conf import APP_REGISTRY, DB

__all__ = ["APP_REGISTRY", "DB"]
