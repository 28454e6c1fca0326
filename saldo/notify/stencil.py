"""Email bodies rendered once per shape, then filled in per message.

A batch of reminders renders the same template thousands of times with values that differ
only in their text (a name, an amount, a link). Jinja spends most of a render walking the
layout, the macros and the translations, which come out the same every time. So
`render_email(kind, language, context)` renders each template once per *shape* with every
non-empty string value replaced by a marker (a private-use character, its index, another),
splits the result at the markers, and for each message joins the pieces with its own values:
as they are in the text, HTML-escaped in the HTML — exactly what Jinja would have written,
since a string that reaches the output unchanged is escaped once, wherever it appears.

The shape is everything that can change what the template does rather than what it prints:
the kind, the language, which strings are empty, every number and flag, and the length and
shape of every list. A template is filled this way only when it cannot look inside a string
value: its syntax tree (with the layouts and macros it uses) holds nothing but output,
blocks, `if` and `for`, translations, macro calls, attribute access, lists, `~` and `+` — no
filters, tests, comparisons, subscripts or method calls. Anything else (such a template, a
value of another type, a value that contains a marker character) is rendered by Jinja as
usual. tests/unit/test_notify_stencil.py compares both ways for every kind and language.
"""

from __future__ import annotations

import itertools
import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any, Final

from jinja2 import Environment, FileSystemLoader, meta, nodes

from saldo.notify import TEMPLATES_DIR
from saldo.notify import render_email as jinja_render_email

__all__ = ["render_email", "stencil_safe"]

_OPEN: Final = "\ue000"
_CLOSE: Final = "\ue001"
_MARKER: Final = re.compile(f"{_OPEN}([0-9]+){_CLOSE}")
#: Shapes kept per process (a reminder run has a handful; each costs two renders to make).
_KEEP: Final = 512

#: Syntax a stencil-safe template may use (see the module docstring).
_ALLOWED: Final = (
    nodes.Template,
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Const,
    nodes.Call,
    nodes.Keyword,
    nodes.Getattr,
    nodes.Block,
    nodes.Extends,
    nodes.Import,
    nodes.FromImport,
    nodes.Include,
    nodes.If,
    nodes.For,
    nodes.Macro,
    nodes.Tuple,
    nodes.List,
    nodes.Assign,
    nodes.CondExpr,
    nodes.Concat,
    nodes.Add,
    nodes.Not,
    nodes.And,
    nodes.Or,
)
_TRANSLATORS: Final = frozenset({"_", "gettext", "ngettext"})


@cache
def _parser() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=True)  # parses only


def _used(ast: nodes.Template) -> list[str]:
    found: list[str] = []
    for node in ast.find_all((nodes.Extends, nodes.Import, nodes.FromImport, nodes.Include)):
        template = getattr(node, "template", None)
        if isinstance(template, nodes.Const) and isinstance(template.value, str):
            found.append(template.value)
        else:
            found.append("")  # a computed template name: not safe
    return found


def _tree_safe(name: str, seen: set[str], names: set[str]) -> bool:
    """Whether template `name` and all it uses are stencil-safe; adds the context names
    they read to `names`."""
    if name in seen:
        return True
    seen.add(name)
    if not name:
        return False
    env = _parser()
    assert env.loader is not None
    source, _, _ = env.loader.get_source(env, name)
    ast = env.parse(source)
    names |= meta.find_undeclared_variables(ast)
    modules = {n.target for n in ast.find_all(nodes.Import)}
    macros = {n.name for n in ast.find_all(nodes.Macro)}
    macros |= {
        alias if isinstance(alias, str) else alias[1]
        for n in ast.find_all(nodes.FromImport)
        for alias in n.names
    }
    for node in ast.find_all(nodes.Node):
        if not isinstance(node, _ALLOWED):
            return False
        if isinstance(node, nodes.Call):
            target = node.node
            if isinstance(target, nodes.Name):
                if target.name not in _TRANSLATORS | macros:
                    return False
            elif not (
                isinstance(target, nodes.Getattr)
                and isinstance(target.node, nodes.Name)
                and target.node.name in modules
            ):
                return False
            if node.dyn_args is not None or node.dyn_kwargs is not None:
                return False
    return all(_tree_safe(used, seen, names) for used in _used(ast))


@cache
def _reads(kind: str) -> frozenset[str] | None:
    """The context names the email templates of `kind` read, or None when they are not
    stencil-safe."""
    seen: set[str] = set()
    names: set[str] = set()
    for name in (f"notify/{kind}.txt", f"notify/{kind}.html"):
        if not _tree_safe(name, seen, names):
            return None
    return frozenset(names)


def stencil_safe(kind: str) -> bool:
    """Whether both email templates of `kind` (and all they use) qualify for stencils."""
    return _reads(kind) is not None


def _shape(value: Any, strings: list[str]) -> Any:
    """What of `value` can change what a template does (see the module docstring); appends
    its non-empty strings to `strings`. TypeError for a value a stencil cannot stand for."""
    kind = type(value)
    if kind is str:
        if not value:
            return ""
        if _OPEN in value or _CLOSE in value:
            raise TypeError("a value holds a marker character")
        strings.append(value)
        return "s"
    if kind is list or kind is tuple:
        return (kind, tuple([_shape(item, strings) for item in value]))
    if kind is dict:
        return (dict, tuple([(key, _shape(item, strings)) for key, item in value.items()]))
    if value is None or kind is bool or kind is int or kind is float:
        return (kind, value)
    raise TypeError(f"no stencil for {kind.__name__} values")


def _masked(value: Any, slots: Iterator[int]) -> Any:
    """`value` with each non-empty string replaced by its marker, numbered as `_shape` found
    them."""
    kind = type(value)
    if kind is str:
        return f"{_OPEN}{next(slots)}{_CLOSE}" if value else value
    if kind is list or kind is tuple:
        return kind(_masked(item, slots) for item in value)
    if kind is dict:
        return {key: _masked(item, slots) for key, item in value.items()}
    return value


def _split(rendered: str) -> str | None:
    """The rendering as a `str.format` pattern: `{i}` where the i-th value goes."""
    parts = _MARKER.split(rendered)
    literals = parts[0::2]
    if any(_OPEN in text or _CLOSE in text for text in literals):
        return None  # a marker was taken apart: the template looked inside a value
    out = [literals[0].replace("{", "{{").replace("}", "}}")]
    for slot, literal in zip(parts[1::2], literals[1:], strict=True):
        out.append(f"{{{slot}}}")
        out.append(literal.replace("{", "{{").replace("}", "}}"))
    return "".join(out)


_stencils: OrderedDict[tuple[Any, ...], tuple[str, str] | None] = OrderedDict()


def render_email(kind: str, language: str, context: Mapping[str, Any]) -> tuple[str, str]:
    """`saldo.notify.render_email(kind, language, context)`, from a stencil when it can."""
    reads = _reads(kind)
    if reads is None:
        return jinja_render_email(kind, language, dict(context))
    strings: list[str] = []
    values = {k: v for k, v in context.items() if k in reads}  # the rest cannot matter
    try:
        shape = _shape(values, strings)
    except TypeError:
        return jinja_render_email(kind, language, dict(context))
    key = (kind, language, shape)
    if key in _stencils:
        _stencils.move_to_end(key)
        pieces = _stencils[key]
    else:
        text, html = jinja_render_email(kind, language, _masked(values, itertools.count()))
        text_pattern, html_pattern = _split(text), _split(html)
        pieces = None
        if text_pattern is not None and html_pattern is not None:
            pieces = (text_pattern, html_pattern)
        _stencils[key] = pieces
        if len(_stencils) > _KEEP:
            _stencils.popitem(last=False)
    if pieces is None:
        return jinja_render_email(kind, language, dict(context))
    text_pattern, html_pattern = pieces
    return text_pattern.format(*strings), html_pattern.format(*map(_escaped, strings))


def _escaped(text: str) -> str:
    """`markupsafe.escape(text)` for a plain string, as Jinja writes it into HTML."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    return (
        text.replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;").replace('"', "&#34;")
    )
