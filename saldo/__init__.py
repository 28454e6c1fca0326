"""Saldo: debtor self-service portal and collections back office."""

import os

# Piccolo finds its engine and apps through this module wherever `saldo` runs from.
os.environ.setdefault("PICCOLO_CONF", "saldo.piccolo_conf")

__version__ = "0.1.0"
