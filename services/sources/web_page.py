"""One web page: the facts the crawler needs (links, canonical, robots meta) and its main content.

The crawler reads only the facts (a quick lxml parse). Indexing extracts the main content with
trafilatura, which drops navigation, sidebars and footers; cookie and consent banners are removed
first, as trafilatura keeps them on short pages. `favor_recall` keeps the headings (without it
trafilatura drops them on Sphinx-like pages), and its Markdown goes through the project's Markdown
parser, so sections get heading paths. Headings with ids give each section a #fragment citation.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from datetime import datetime

import lxml.html
from lxml import etree

from services.indexing.chunking import HEADING_SEPARATOR
from services.indexing.loader import LoadFailure, ParsedDocument, content_hash, decode_text, parse_bytes
from services.indexing.parsers import ParseError, Section, parse_html, parse_markdown
from services.sources.contract import SourceDocument
from services.sources.web_urls import normalize_url

__all__ = ["ExtractedPage", "PageFacts", "extract_page", "parse_web_document", "read_page_facts"]

_BANNER = re.compile(r"cookie|consent|gdpr|onetrust|cookiebot|cc-window|privacy-banner", re.IGNORECASE)
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")


@dataclass(frozen=True, slots=True)
class PageFacts:
    """What a page tells the crawler."""

    links: list[str] = field(default_factory=list)  # normalised, in page order, no duplicates
    canonical: str | None = None
    noindex: bool = False
    nofollow: bool = False


@dataclass(frozen=True, slots=True)
class ExtractedPage:
    """The main content of a page as sections, and the heading anchors for citations."""

    title: str | None
    sections: list[Section]
    anchors: dict[str, str]  # heading path (joined) -> page URL with the heading's #fragment
    notes: list[str]


def _decode(body: bytes, charset: str | None) -> str:
    if charset:
        try:
            return body.decode(charset)
        except (LookupError, UnicodeDecodeError):
            pass
    return decode_text(body)[0]


def _document(text: str) -> lxml.html.HtmlElement | None:
    try:
        return lxml.html.document_fromstring(text)
    except (etree.ParserError, ValueError):
        return None


def read_page_facts(body: bytes, url: str, charset: str | None = None) -> PageFacts:
    """Links, canonical URL and robots meta of an HTML page (lenient: broken HTML gives fewer links)."""
    tree = _document(_decode(body, charset))
    if tree is None:
        return PageFacts()
    base = url
    for href in tree.xpath("//base/@href"):
        base = normalize_url(str(href), url) or url
        break
    canonical = None
    for link in tree.xpath("//link[@rel][@href]"):
        if "canonical" in str(link.get("rel", "")).lower().split():
            canonical = normalize_url(str(link.get("href")), base)
            break
    directives: set[str] = set()
    for meta in tree.xpath("//meta[@name][@content]"):
        if str(meta.get("name", "")).lower() in ("robots", "docs-chat-bot"):
            directives.update(part.strip().lower() for part in str(meta.get("content", "")).split(","))
    links: dict[str, None] = {}
    for href in tree.xpath("//a/@href | //area/@href"):
        target = normalize_url(str(href), base)
        if target:
            links.setdefault(target)
    return PageFacts(
        links=list(links),
        canonical=canonical,
        noindex=bool(directives & {"noindex", "none"}),
        nofollow=bool(directives & {"nofollow", "none"}),
    )


def _heading_key(text: str) -> str:
    """Heading text compared without permalink marks (¶, #, 🔗) or punctuation."""
    return " ".join(re.sub(r"[\W_]+", " ", text).split()).casefold()


def _heading_ids(tree: lxml.html.HtmlElement) -> dict[str, str]:
    """Heading text -> id: the heading's own id, an anchor inside it, or its section's id."""
    ids: dict[str, str] = {}
    for heading in tree.iter(*_HEADINGS):
        anchor = heading.get("id")
        if not anchor:
            inner = heading.xpath(".//*[@id] | .//a[@name]")
            anchor = (inner[0].get("id") or inner[0].get("name")) if inner else None
        parent = heading.getparent()
        if not anchor and parent is not None and parent.get("id") and parent.index(heading) == 0:
            anchor = parent.get("id")
        key = _heading_key(heading.text_content())
        if anchor and key:
            ids.setdefault(key, anchor)
    return ids


def _drop_banners(tree: lxml.html.HtmlElement) -> None:
    for element in tree.xpath("//*[@id or @class or @aria-label]"):
        marks = " ".join(str(element.get(name, "")) for name in ("id", "class", "aria-label"))
        if _BANNER.search(marks) and element.getparent() is not None and element.tag not in ("html", "body"):
            element.drop_tree()


def extract_page(body: bytes, url: str, charset: str | None = None) -> ExtractedPage:
    """Main content with headings; falls back to the whole page when no main content is found."""
    with warnings.catch_warnings():  # its downloader (unused here) warns that PySocks is missing
        warnings.filterwarnings("ignore", message="SOCKS support")
        import trafilatura

    text = _decode(body, charset)
    tree = _document(text)
    if tree is None:
        raise ParseError("not a readable HTML page")
    page_title = " ".join(tree.findtext(".//title", default="").split()) or None
    ids = _heading_ids(tree)
    _drop_banners(tree)
    cleaned = lxml.html.tostring(tree, encoding="unicode")
    markdown = trafilatura.extract(
        cleaned,
        url=url,
        output_format="markdown",
        include_tables=True,
        include_links=False,
        include_images=False,
        include_comments=False,
        favor_recall=True,
    )
    notes: list[str] = []
    if markdown and markdown.strip():
        title, sections = parse_markdown(markdown)
    else:
        title, sections = parse_html(cleaned)
        notes.append("no main content recognised; the whole page was indexed")
    anchors: dict[str, str] = {}
    for section in sections:
        for depth in range(1, len(section.heading_path) + 1):
            anchor = ids.get(_heading_key(section.heading_path[depth - 1]))
            if anchor:
                anchors[HEADING_SEPARATOR.join(section.heading_path[:depth])] = f"{url}#{anchor}"
    return ExtractedPage(page_title or title, sections, anchors, notes)


def parse_web_document(
    document_id: str, kind: str, body: bytes, charset: str | None, modified_time: datetime
) -> SourceDocument | LoadFailure:
    """Blocking: HTML pages by main content (with anchors), other types by the project's parsers."""
    if kind != ".html":
        parsed = parse_bytes(
            document_id=document_id, source=document_id, name=document_id, kind=kind, data=body,
            modified_time=modified_time,
        )  # fmt: skip
        return parsed if isinstance(parsed, LoadFailure) else SourceDocument(parsed)
    try:
        page = extract_page(body, document_id, charset)
    except Exception as exc:  # one odd page must not stop the run
        return LoadFailure(document_id, f"could not extract the page ({type(exc).__name__}: {exc})")
    if not page.sections:
        return LoadFailure(document_id, "no text found on the page")
    document = ParsedDocument(
        document_id=document_id,
        source=document_id,
        title=page.title or document_id,
        content_hash=content_hash(body),
        modified_time=modified_time,
        sections=page.sections,
        notes=page.notes,
    )
    return SourceDocument(document, page.anchors)
