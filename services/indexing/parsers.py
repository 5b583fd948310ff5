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


def parse_rst(text: str) -> tuple[str | None, list[Section]]:
    """Section titles become the path. Includes/raw directives are disabled (no file access)."""
    from docutils import nodes
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
        tree = publish_doctree(text, settings_overrides=overrides)
    except SystemMessage as exc:  # defensive: halt_level 5 should prevent it
        raise ParseError(f"malformed reStructuredText: {exc}") from exc
    skip = (nodes.comment, nodes.substitution_definition, nodes.target, nodes.title, nodes.docinfo)
    builder = _SectionBuilder()
    first_title: list[str] = []

    def render(node: nodes.Node) -> tuple[str, bool]:
        if isinstance(node, nodes.system_message):
            # An unknown directive: keep its text (the message carries the source), drop the rest.
            blocks = [c for c in node.children if isinstance(c, nodes.literal_block)]
            if not blocks or "directive" not in node.children[0].astext():
                return "", False
            first, _, body = blocks[0].astext().partition("\n")
            argument = first.partition("::")[2].strip()
            return _clean(argument + "\n" + textwrap.dedent(body)), False
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
            lines = []
            for item in node.children:
                terms = [c.astext() for c in item.children if isinstance(c, nodes.term)]
                bodies = [c.astext() for c in item.children if isinstance(c, nodes.definition)]
                lines.append(_clean(" ".join(terms)) + ": " + _clean(" ".join(bodies)).replace("\n", " "))
            return "\n".join(lines), True
        if isinstance(node, nodes.paragraph):  # unwrap source line wrapping
            return _clean(node.astext()).replace("\n", " "), False
        return _clean(node.astext()), False

    def walk(node: nodes.Element, depth: int) -> None:
        for child in node.children:
            if isinstance(child, nodes.section):
                titles = [c for c in child.children if isinstance(c, nodes.title)]
                heading = _clean(titles[0].astext()) if titles else ""
                if heading and not first_title:
                    first_title.append(heading)
                builder.heading(depth + 1, heading)
                walk(child, depth + 1)
                builder.flush()
                # leave the section: drop its heading from the stack
                while builder.headings and builder.headings[-1][0] > depth:
                    builder.headings.pop()
            elif not isinstance(child, skip):
                builder.block(*render(child))

    walk(tree, 0)
    builder.flush()
    return (first_title[0] if first_title else None), builder.sections


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
    root = soup.find("main") or soup.find("article") or soup.body or soup
    builder = _SectionBuilder()
    buffer: list[str] = []
    first_h1: list[str] = []

    def flush_buffer() -> None:
        for paragraph in re.split(r"\n\s*\n", "".join(buffer)):
            builder.block(_clean(paragraph))
        buffer.clear()

    def newlines(count: int) -> None:
        """End the buffer with at least `count` line breaks (block boundaries)."""
        tail = "".join(buffer[-3:]).rstrip(" ")
        have = len(tail) - len(tail.rstrip("\n"))
        if buffer and have < count:
            buffer.append("\n" * (count - have))

    def walk(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, Comment):
                continue
            if isinstance(child, NavigableString):
                text = str(child)
                if node.name != "pre":
                    text = re.sub(r"\s+", " ", text)
                    if text == " " and (not buffer or buffer[-1].endswith((" ", "\n"))):
                        continue
                buffer.append(text)
            elif isinstance(child, Tag):
                name = child.name.lower()
                if name in _HEADINGS:
                    flush_buffer()
                    heading = _clean(child.get_text(" "))
                    if heading:
                        if _HEADINGS[name] == 1 and not first_h1:
                            first_h1.append(heading)
                        builder.heading(_HEADINGS[name], heading)
                    continue
                if name == "pre":  # code: keep its layout, fenced like Markdown code
                    flush_buffer()
                    builder.block(f"```\n{child.get_text().strip(chr(10)).rstrip()}\n```")
                    continue
                line_level = name in _LINE_TAGS
                if name in _BLOCK_TAGS or line_level:
                    newlines(1 if line_level else 2)
                if name == "li":
                    buffer.append("- ")
                elif name in ("td", "th") and buffer and not buffer[-1].endswith("\n"):
                    buffer.append(" | ")
                walk(child)
                if name in _BLOCK_TAGS or line_level:
                    newlines(1 if line_level else 2)

    walk(root)
    flush_buffer()
    builder.flush()
    return page_title or (first_h1[0] if first_h1 else None), builder.sections


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
