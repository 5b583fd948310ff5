"""Office documents -> (title, sections): .docx, .pptx and .xlsx via markitdown, .odt from its XML.

markitdown turns Word headings, slide titles and sheet names into Markdown headings, so the
existing Markdown parser gives every passage its heading path. OpenDocument text is read directly
(a zip with one XML body, `text:h` carrying the outline level): no converter for it is maintained
in Python, and the format needs a dozen lines. `formats` maps suffixes here.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

from services.indexing.parsers import ParseError, Section, parse_markdown

__all__ = ["OFFICE_SUFFIXES", "convert_office"]

OFFICE_SUFFIXES = frozenset({".docx", ".pptx", ".xlsx", ".odt"})
_ODF_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_DC = "http://purl.org/dc/elements/1.1/"


def convert_office(suffix: str, data: bytes) -> tuple[str | None, list[Section]]:
    """Sections with heading paths; raises `ParseError` with a reason for a damaged file."""
    suffix = suffix.lower()
    if suffix not in OFFICE_SUFFIXES:
        raise ParseError(f"not an Office document type: '{suffix}'")
    if not data.startswith(b"PK"):
        raise ParseError(f"malformed {suffix} file (not a zip archive)")
    try:
        if suffix == ".odt":
            return _convert_odt(data)
        return _convert_with_markitdown(suffix, data)
    except ParseError:
        raise
    except Exception as exc:  # converters raise anything from zipfile, lxml, openpyxl …
        raise ParseError(f"malformed {suffix} file ({type(exc).__name__}: {exc})") from exc


def _convert_with_markitdown(suffix: str, data: bytes) -> tuple[str | None, list[Section]]:
    # The converters directly: MarkItDown() itself would load a file-type model we do not need.
    from markitdown import StreamInfo
    from markitdown.converters import DocxConverter, PptxConverter, XlsxConverter

    converters = {".docx": DocxConverter, ".pptx": PptxConverter, ".xlsx": XlsxConverter}
    result = converters[suffix]().convert(io.BytesIO(data), StreamInfo(extension=suffix))
    title, sections = parse_markdown(result.markdown)
    return (result.title or title), sections


@dataclass(slots=True)
class _Outline:
    """Paragraphs under the current heading stack; a heading closes the section before it."""

    sections: list[Section] = field(default_factory=list)
    headings: list[tuple[int, str]] = field(default_factory=list)
    paragraphs: list[str] = field(default_factory=list)

    def heading(self, level: int, title: str) -> None:
        self.flush()
        while self.headings and self.headings[-1][0] >= level:
            self.headings.pop()
        self.headings.append((level, title))

    def flush(self) -> None:
        text = "\n\n".join(self.paragraphs).strip()
        if text:
            self.sections.append(Section([title for _, title in self.headings], text))
        self.paragraphs = []


def _convert_odt(data: bytes) -> tuple[str | None, list[Section]]:
    from lxml import etree

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        if "content.xml" not in names:
            raise ParseError("malformed .odt file (no content.xml)")
        root = etree.fromstring(archive.read("content.xml"))
        meta = etree.fromstring(archive.read("meta.xml")) if "meta.xml" in names else None
    outline = _Outline()
    first_heading: str | None = None
    for element in root.iter(f"{{{_ODF_TEXT}}}h", f"{{{_ODF_TEXT}}}p"):
        if element.getparent() is not None and element.getparent().tag == f"{{{_ODF_TEXT}}}h":
            continue
        text = " ".join(_odf_text(element).split())
        if not text:
            continue
        if element.tag == f"{{{_ODF_TEXT}}}h":
            level = int(element.get(f"{{{_ODF_TEXT}}}outline-level", "1") or 1)
            first_heading = first_heading or text
            outline.heading(level, text)
        else:
            in_list = any(a.tag == f"{{{_ODF_TEXT}}}list-item" for a in element.iterancestors())
            outline.paragraphs.append(f"- {text}" if in_list else text)
    outline.flush()
    title = None
    if meta is not None:
        found = meta.find(f".//{{{_DC}}}title")
        title = (found.text or "").strip() if found is not None else None
    return title or first_heading, outline.sections


def _odf_text(element: object) -> str:
    """Text of an ODF paragraph: `text:s` are spaces, `text:tab` tabs, `text:line-break` breaks."""
    from lxml import etree

    assert isinstance(element, etree._Element)
    parts = [element.text or ""]
    for child in element:
        tag = etree.QName(child).localname if isinstance(child.tag, str) else ""
        if tag == "s":
            parts.append(" " * int(child.get(f"{{{_ODF_TEXT}}}c", "1") or 1))
        elif tag == "tab":
            parts.append("\t")
        elif tag == "line-break":
            parts.append("\n")
        elif tag not in ("note", "annotation"):
            parts.append(_odf_text(child))
        parts.append(child.tail or "")
    return "".join(parts)
