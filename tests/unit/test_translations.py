"""Every translatable string in the templates has an English translation in the catalogs."""

from pathlib import Path

from jinja2.ext import babel_extract

from saldo import i18n

ROOT = Path(__file__).resolve().parents[2]


def template_messages() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted((ROOT / "templates").rglob("*.html")):
        with path.open("rb") as fh:
            for _line, _func, message, _comments in babel_extract(
                fh, ("_", "gettext", "ngettext"), [], {"extensions": "jinja2.ext.i18n"}
            ):
                for text in message if isinstance(message, tuple) else (message,):
                    if text:
                        found[text] = str(path.relative_to(ROOT))
    return found


def test_templates_have_translatable_strings():
    assert len(template_messages()) > 20


def test_every_template_string_has_an_english_translation():
    english = i18n.catalog("en")
    missing = {text: where for text, where in template_messages().items() if text not in english}
    assert missing == {}, "add these to locale/en/LC_MESSAGES/*.po"


def test_spanish_is_the_source_and_english_is_looked_up():
    assert i18n.gettext("es", "Ingresar") == "Ingresar"
    assert i18n.gettext("en", "Ingresar") == "Sign in"
    assert i18n.gettext("en", "una frase sin traducción") == "una frase sin traducción"


def test_no_catalog_entry_is_unused():
    unused = set(i18n.catalog("en")) - set(template_messages()) - PYTHON_MESSAGES
    assert unused == set(), "remove stale entries from locale/en/LC_MESSAGES/*.po"


def _python_messages() -> set[str]:
    """Strings translated from Python code with `gettext(language, "...")` calls."""
    import ast

    found: set[str] = set()
    for path in [
        *(ROOT / "saldo").rglob("*.py"),
        *(ROOT / "portal").rglob("*.py"),
        *(ROOT / "backoffice").rglob("*.py"),
    ]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "attr", getattr(node.func, "id", "")) in {"gettext", "_"}
                and node.args
                and isinstance(node.args[-1], ast.Constant)
                and isinstance(node.args[-1].value, str)
            ):
                found.add(node.args[-1].value)
    return found


PYTHON_MESSAGES = _python_messages()
