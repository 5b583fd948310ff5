"""Sphinx markup for plain docutils: team docs are usually Sphinx projects, and without this
docutils drops `.. versionadded::`/`.. function::` bodies and prints `:func:` roles raw.

Roles render their display text; content directives keep their argument and body; directives
that only steer Sphinx (toctree, index, autodoc …) produce nothing; `literalinclude` is not
followed (no file access while indexing).
"""

from __future__ import annotations

import re
import threading
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive, directives, roles

_ROLES = (
    "func meth class mod attr exc data const obj ref doc term envvar option file program command "
    "kbd pep rfc abbr samp keyword mailheader mimetype menuselection guilabel dfn math token opcode "
    "numref download any makevar manpage regexp py:func py:meth py:class py:mod py:attr py:exc "
    "py:data py:const py:obj c:func c:type c:macro c:data c:member c:expr cpp:func cpp:class "
    "js:func js:class std:ref std:doc source issue gh"
).split()
_CODE_ROLES = frozenset(
    "func meth class mod attr exc data const obj envvar option file program command samp keyword "
    "makevar py:func py:meth py:class py:mod py:attr py:exc py:data py:const py:obj c:func c:type "
    "c:macro c:data c:member c:expr cpp:func cpp:class js:func js:class".split()
)
_CONTENT_DIRECTIVES = (
    "only versionadded versionchanged versionremoved deprecated deprecated-removed seealso centered "
    "hlist glossary productionlist rubric describe function method classmethod staticmethod class "
    "attribute data exception module decorator decoratormethod opcode cmdoption option envvar "
    "program tab tabs group-tab tab-set tab-item card dropdown py:function py:method py:class "
    "py:attribute py:data py:exception py:module py:decorator c:function c:type c:macro c:member "
    "c:var cpp:function cpp:class js:function confval event impl-detail availability"
).split()
_CODE_DIRECTIVES = ("code-block", "sourcecode", "doctest", "testcode", "testoutput")
_SILENT_DIRECTIVES = (
    "toctree index highlight currentmodule sectionauthor moduleauthor codeauthor literalinclude "
    "tabularcolumns autosummary automodule autoclass autofunction automethod autoattribute "
    "autoexception autodata include-mdx program-output audit-event-table"
).split()
_TARGET = re.compile(r"^(.*?)\s*<[^<>]+>$", re.DOTALL)


class _AnyOption(dict[str, Any]):
    """Accepts every directive option (Sphinx directives have many); values are kept as text."""

    def __getitem__(self, key: str) -> Any:
        return directives.unchanged

    def __contains__(self, key: object) -> bool:
        return True

    def __bool__(self) -> bool:
        return True


def _display_text(text: str) -> str:
    """`title <target>` -> title; `~pkg.mod.name` -> name; `!name` -> name."""
    match = _TARGET.match(text)
    if match and match.group(1):
        return match.group(1)
    text = text.lstrip("!")
    if text.startswith("~"):
        return text[1:].rsplit(".", 1)[-1]
    return text


def _role(
    name: str, rawtext: str, text: str, lineno: int, inliner: Any, options: Any = None, content: Any = None
) -> tuple[list[nodes.Node], list[nodes.system_message]]:
    shown = _display_text(nodes.unescape(text))
    if name in ("pep", "rfc"):
        shown = f"{name.upper()} {shown}"
    node: nodes.Node = nodes.literal(rawtext, shown) if name in _CODE_ROLES else nodes.Text(shown)
    return [node], []


class _Content(Directive):
    """Keeps the argument (a signature, version or title) and parses the body as reST."""

    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True
    option_spec = _AnyOption()

    def run(self) -> list[nodes.Node]:
        out: list[nodes.Node] = []
        if self.arguments:
            out.append(nodes.paragraph(text=self.arguments[0]))
        if self.content:
            container = nodes.container()
            self.state.nested_parse(self.content, self.content_offset, container)
            out.append(container)
        return out


class _Code(Directive):
    has_content = True
    optional_arguments = 1
    option_spec = _AnyOption()

    def run(self) -> list[nodes.Node]:
        return [nodes.literal_block(text="\n".join(self.content))] if self.content else []


class _Silent(Directive):
    has_content = True
    optional_arguments = 1
    final_argument_whitespace = True
    option_spec = _AnyOption()

    def run(self) -> list[nodes.Node]:
        return []


_registered = False
_lock = threading.Lock()


def register_sphinx_compat() -> None:
    """Register the roles and directives once per process (docutils keeps them globally)."""
    global _registered
    with _lock:
        if _registered:
            return
        for name in _ROLES:
            roles.register_local_role(name, _role)
        for name in _CONTENT_DIRECTIVES:
            directives.register_directive(name, _Content)
        for name in _CODE_DIRECTIVES:
            directives.register_directive(name, _Code)
        for name in _SILENT_DIRECTIVES:
            directives.register_directive(name, _Silent)
        _registered = True
