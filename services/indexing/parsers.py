"""Format parsers: text of one document -> (title, sections with heading paths).

Each parser keeps the document's structure (headings become the heading path of the text under
them) so chunks carry their context. They raise `ParseError` with a human reason for input they
cannot make sense of; `document_loader` turns that into a `LoadFailure`.
"""

from __future__ import annotations

import io
import re
import textwrap
from dataclasses import dataclass, field

from bs4 import BeautifulSoup, Comment, NavigableString, Tag
from docutils import nodes
from markdown_it import MarkdownIt
from markdown_it.token import Token


class ParseError(Exception):
    """The document cannot be parsed; the message is shown to the user."""


@dataclass(frozen=True, slots=True)
class Section:
    """Text under one heading; `heading_path` lists the headings from the top level down."""

    heading_path: list[str]
    text: str


@dataclass(slots=True)
class _SectionBuilder:
    """Collects blocks under the current heading path and closes sections at each heading."""

    sections: list[Section] = field(default_factory=list)
    headings: list[tuple[int, str]] = field(default_factory=list)  # (level, title) stack
    blocks: list[tuple[str, bool]] = field(default_factory=list)  # (text, is_list_item)

    def heading(self, level: int, title: str) -> None:
        self.flush()
        while self.headings and self.headings[-1][0] >= level:
            self.headings.pop()
        self.headings.append((level, title))

    def block(self, text: str, list_item: bool = False) -> None:
        if text.strip():
            self.blocks.append((text.rstrip(), list_item))

    def flush(self) -> None:
        parts: list[str] = []
        previous_item = False
        for text, item in self.blocks:
            if parts:
                parts.append("\n" if item and previous_item else "\n\n")
            parts.append(text)
            previous_item = item
        text = "".join(parts).strip()
        if text:
            self.sections.append(Section([title for _, title in self.headings], text))
        self.blocks = []


def _clean(text: str) -> str:
    """Collapse runs of spaces/tabs and trim each line (keeps line breaks)."""
    return "\n".join(re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.splitlines()).strip()


# --- Markdown --------------------------------------------------------------------------------

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_MD = MarkdownIt("commonmark").enable("table")


def _inline_text(token: Token) -> str:
    out: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "html_inline"):
            out.append(child.content if child.type == "text" else "")
        elif child.type == "code_inline":
            out.append(f"`{child.content}`")
        elif child.type == "softbreak":  # source line wrapping, not a break in the text
            out.append(" ")
        elif child.type == "hardbreak":
            out.append("\n")
        elif child.type == "image":
            out.append(child.content)
    return "".join(out)


def parse_markdown(text: str) -> tuple[str | None, list[Section]]:
    """Headings (ATX/setext) become the path; code blocks, lists and tables stay as text."""
    title: str | None = None
    front = _FRONT_MATTER.match(text)
    if front:
        found = re.search(r"^title:\s*(.+?)\s*$", front.group(1), re.MULTILINE)
        title = found.group(1).strip("'\"") if found else None
        text = text[front.end() :]
    builder = _SectionBuilder()
    lists: list[list[str]] = []  # stack of pending item markers
    row: list[str] = []
    first_h1: str | None = None
    tokens = _MD.parse(text)
    for index, token in enumerate(tokens):
        kind = token.type
        if kind == "heading_open":
            heading = _clean(_inline_text(tokens[index + 1]))
            level = int(token.tag[1])
            if level == 1 and first_h1 is None:
                first_h1 = heading
            builder.heading(level, heading)
        elif kind in ("bullet_list_open", "ordered_list_open"):
            lists.append([""])
        elif kind in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif kind == "list_item_open" and lists:
            lists[-1][0] = f"{token.info}. " if token.info else "- "
        elif kind == "inline" and tokens[index - 1].type == "paragraph_open":
            content = _inline_text(token).strip()
            if lists:
                marker, lists[-1][0] = lists[-1][0], ""
                indent = "  " * (len(lists) - 1)
                builder.block(indent + (marker or "  ") + content, list_item=True)
            else:
                builder.block(content)
        elif kind == "inline" and tokens[index - 1].type in ("th_open", "td_open"):
            row.append(_clean(_inline_text(token)))
        elif kind == "tr_close":
            builder.block(" | ".join(row), list_item=True)
            row = []
        elif kind in ("fence", "code_block"):
            builder.block(f"```{token.info.strip()}\n{token.content.rstrip()}\n```")
        elif kind == "html_block" and not token.content.lstrip().startswith("<!--"):
            builder.block(_clean(BeautifulSoup(token.content, "html.parser").get_text(" ")))
    builder.flush()
    return title or first_h1, builder.sections  # no H1: the loader uses the file name


# --- reStructuredText ----------------------------------------------------------------------

# Nodes that carry no body text of their own (section titles become the heading path instead).
_RST_SKIPPED = (nodes.comment, nodes.substitution_definition, nodes.target, nodes.title, nodes.docinfo)


def parse_rst(text: str) -> tuple[str | None, list[Section]]:
    """Section titles become the path. Includes/raw directives are disabled (no file access)."""
    walker = _RstWalker()
    walker.walk(_rst_doctree(text), depth=0)
    walker.builder.flush()
    return walker.first_title, walker.builder.sections


def _rst_doctree(text: str) -> nodes.document:
    """Parse without reading files or printing: docutils problems become nodes in the tree."""
    from docutils.core import publish_doctree
    from docutils.utils import SystemMessage

    from services.indexing.rst_compat import register_sphinx_compat

    register_sphinx_compat()

    overrides = {
        "report_level": 5,
        "halt_level": 5,
        "warning_stream": io.StringIO(),
        "file_insertion_enabled": False,
        "raw_enabled": False,
        "doctitle_xform": False,
        "sectsubtitle_xform": False,
        "input_encoding": "unicode",
    }
    try:
        return publish_doctree(text, settings_overrides=overrides)
    except SystemMessage as exc:  # defensive: halt_level 5 should prevent it
        raise ParseError(f"malformed reStructuredText: {exc}") from exc


@dataclass(slots=True)
class _RstWalker:
    """Feeds a doctree to a section builder; a section's nesting depth is its heading level."""

    builder: _SectionBuilder = field(default_factory=_SectionBuilder)
    first_title: str | None = None

    def walk(self, node: nodes.Element, depth: int) -> None:
        for child in node.children:
            if isinstance(child, nodes.section):
                self._section(child, depth + 1)
            elif not isinstance(child, _RST_SKIPPED):
                self.builder.block(*_render_rst_node(child))

    def _section(self, section: nodes.section, level: int) -> None:
        titles = [c for c in section.children if isinstance(c, nodes.title)]
        heading = _clean(titles[0].astext()) if titles else ""
        if heading and self.first_title is None:
            self.first_title = heading
        self.builder.heading(level, heading)
        self.walk(section, level)
        self.builder.flush()
        # leave the section: text after it belongs to the parent's heading path again
        while self.builder.headings and self.builder.headings[-1][0] >= level:
            self.builder.headings.pop()


def _render_rst_node(node: nodes.Node) -> tuple[str, bool]:
    """(text, is_list_item) of one body node; lists keep one line per item so they stay lists."""
    if isinstance(node, nodes.system_message):
        return _unknown_directive_text(node), False
    if isinstance(node, nodes.literal_block):
        return f"```\n{node.astext().rstrip()}\n```", False
    if isinstance(node, (nodes.bullet_list, nodes.enumerated_list)):
        numbered = isinstance(node, nodes.enumerated_list)
        lines = [
            (f"{n}. " if numbered else "- ") + _clean(item.astext()).replace("\n", " ")
            for n, item in enumerate(node.children, start=1)
        ]
        return "\n".join(lines), True
    if isinstance(node, nodes.definition_list):
        return "\n".join(_definition_line(item) for item in node.children), True
    if isinstance(node, nodes.paragraph):  # unwrap source line wrapping
        return _clean(node.astext()).replace("\n", " "), False
    return _clean(node.astext()), False


def _unknown_directive_text(message: nodes.system_message) -> str:
    """An unknown directive's argument and body (the message quotes its source); other messages: ""."""
    blocks = [c for c in message.children if isinstance(c, nodes.literal_block)]
    if not blocks or "directive" not in message.children[0].astext():
        return ""
    first, _, body = blocks[0].astext().partition("\n")
    argument = first.partition("::")[2].strip()
    return _clean(argument + "\n" + textwrap.dedent(body))


def _definition_line(item: nodes.Node) -> str:
    """`term: definition` on one line."""
    terms = [c.astext() for c in item.children if isinstance(c, nodes.term)]
    bodies = [c.astext() for c in item.children if isinstance(c, nodes.definition)]
    return _clean(" ".join(terms)) + ": " + _clean(" ".join(bodies)).replace("\n", " ")


# --- HTML ------------------------------------------------------------------------------------

_DROP_TAGS = ("head", "script", "style", "nav", "noscript", "template", "svg", "footer", "form", "iframe")
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCK_TAGS = frozenset(
    "p div section article main aside blockquote pre ul ol dl table thead tbody "
    "figure figcaption hr header address details summary".split()
)
_LINE_TAGS = frozenset({"li", "tr", "dt", "dd", "br"})


def parse_html(text: str) -> tuple[str | None, list[Section]]:
    """h1–h6 become the path; script/style/nav and similar chrome are dropped."""
    soup = BeautifulSoup(text, "html.parser")
    page_title = _clean(soup.title.get_text(" ")) if soup.title else ""
    for tag in soup(list(_DROP_TAGS)):
        tag.decompose()
    walker = _HtmlWalker()
    walker.walk(soup.find("main") or soup.find("article") or soup.body or soup)
    walker.flush_buffer()
    walker.builder.flush()
    return page_title or walker.first_h1, walker.builder.sections


@dataclass(slots=True)
class _HtmlWalker:
    """Feeds a DOM to a section builder. Inline text collects in `buffer` with the line breaks
    block and line tags imply, and becomes paragraphs when a heading or code block interrupts."""

    builder: _SectionBuilder = field(default_factory=_SectionBuilder)
    buffer: list[str] = field(default_factory=list)
    first_h1: str | None = None

    def walk(self, node: Tag) -> None:
        for child in node.children:
            if isinstance(child, Comment):
                continue
            if isinstance(child, NavigableString):
                self._text(str(child))
            elif isinstance(child, Tag):
                name = child.name.lower()
                if name in _HEADINGS:
                    self._heading(_HEADINGS[name], child)
                elif name == "pre":
                    self._code(child)
                else:
                    self._element(name, child)

    def flush_buffer(self) -> None:
        for paragraph in re.split(r"\n\s*\n", "".join(self.buffer)):
            self.builder.block(_clean(paragraph))
        self.buffer.clear()

    def _text(self, text: str) -> None:
        text = re.sub(r"\s+", " ", text)  # HTML whitespace; <pre> text never comes here
        if text == " " and (not self.buffer or self.buffer[-1].endswith((" ", "\n"))):
            return
        self.buffer.append(text)

    def _heading(self, level: int, tag: Tag) -> None:
        self.flush_buffer()
        heading = _clean(tag.get_text(" "))
        if heading:
            if level == 1 and self.first_h1 is None:
                self.first_h1 = heading
            self.builder.heading(level, heading)

    def _code(self, pre: Tag) -> None:
        """Code keeps its layout, fenced like Markdown code."""
        self.flush_buffer()
        self.builder.block(f"```\n{pre.get_text().strip(chr(10)).rstrip()}\n```")

    def _element(self, name: str, tag: Tag) -> None:
        """Any other tag: its text inline, with line breaks around block and line tags."""
        breaks = 1 if name in _LINE_TAGS else 2 if name in _BLOCK_TAGS else 0
        self._newlines(breaks)
        if name == "li":
            self.buffer.append("- ")
        elif name in ("td", "th") and self.buffer and not self.buffer[-1].endswith("\n"):
            self.buffer.append(" | ")
        self.walk(tag)
        self._newlines(breaks)

    def _newlines(self, count: int) -> None:
        """End the buffer with at least `count` line breaks (block boundaries)."""
        tail = "".join(self.buffer[-3:]).rstrip(" ")
        have = len(tail) - len(tail.rstrip("\n"))
        if self.buffer and have < count:
            self.buffer.append("\n" * (count - have))


# --- PDF and plain text ------------------------------------------------------------------------


def parse_pdf(data: bytes) -> tuple[str | None, list[Section]]:
    """One section per page ("Page N"); title from the metadata, else the first text line."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise ParseError("the PDF is password-protected")
        sections = []
        for number, page in enumerate(reader.pages, start=1):
            page_text = _clean(page.extract_text() or "")
            if page_text:
                sections.append(Section([f"Page {number}"], page_text))
        meta_title = (reader.metadata.title if reader.metadata else None) or ""
    except ParseError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise ParseError(f"malformed PDF ({type(exc).__name__}: {exc})") from exc
    if not sections:
        raise ParseError("the PDF has no extractable text (a scanned image?)")
    first_line = sections[0].text.splitlines()[0].strip()
    if meta_title.strip().casefold() in ("untitled", "(anonymous)", "unknown"):
        meta_title = ""  # placeholders written by PDF generators
    return meta_title.strip() or first_line[:120], sections


def parse_plain(text: str) -> tuple[str | None, list[Section]]:
    """The whole file is one section; the loader titles it after the file name."""
    cleaned = text.strip()
    return None, [Section([], cleaned)] if cleaned else []
