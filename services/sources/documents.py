"""Raw bytes from a source -> a `ParsedDocument`, with the project's parsers and the Office converter.

Sources hand over bytes, not files, so this is the loader's `parse_document` without the disk:
the same parsers, the same decoding of non-UTF-8 text and the same kinds of reasons for bad input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from pathlib import PurePosixPath

from services.indexing.loader import LoadFailure, ParsedDocument, decode_text
from services.indexing.parsers import (
    ParseError,
    Section,
    parse_html,
    parse_markdown,
    parse_pdf,
    parse_plain,
    parse_rst,
)
from services.sources.office import OFFICE_SUFFIXES, convert_office

__all__ = ["DOCUMENT_SUFFIXES", "content_hash", "parse_bytes", "title_from_name"]

TextParser = Callable[[str], tuple[str | None, list[Section]]]
_TEXT_PARSERS: dict[str, TextParser] = {
    ".md": parse_markdown,
    ".markdown": parse_markdown,
    ".rst": parse_rst,
    ".txt": parse_plain,
    ".html": parse_html,
    ".htm": parse_html,
}
DOCUMENT_SUFFIXES = frozenset([*_TEXT_PARSERS, ".pdf", *OFFICE_SUFFIXES])


def content_hash(data: bytes) -> str:
    """sha256 of the raw bytes: the index's change detection, the same for every kind of source."""
    return hashlib.sha256(data).hexdigest()


def title_from_name(name: str) -> str:
    stem = PurePosixPath(name.rstrip("/")).stem
    return stem.replace("_", " ").replace("-", " ").strip() or name


def _looks_binary(data: bytes) -> bool:
    sample = data[:8192]
    controls = sum(1 for byte in sample if byte < 32 and byte not in (9, 10, 12, 13))
    return b"\x00" in sample or controls > len(sample) * 0.1


def parse_content(kind: str, data: bytes) -> tuple[str | None, list[Section], list[str]]:
    """(title, sections, notes) of one document of type `kind` (a suffix such as ".md")."""
    if kind == ".pdf":
        if not data.lstrip().startswith(b"%PDF"):
            raise ParseError("malformed PDF (no %PDF header; not a PDF file)")
        return (*parse_pdf(data), [])
    if kind in OFFICE_SUFFIXES:
        return (*convert_office(kind, data), [])
    parser = _TEXT_PARSERS.get(kind)
    if parser is None:
        raise ParseError(f"unsupported document type '{kind}'")
    if _looks_binary(data):
        raise ParseError(f"binary data, not a {kind} text file (contains NUL/control bytes)")
    text, note = decode_text(data)
    return (*parser(text), [note] if note else [])


def parse_bytes(
    *,
    document_id: str,
    source: str,
    name: str,
    kind: str,
    data: bytes,
    modified_time: datetime,
) -> ParsedDocument | LoadFailure:
    """Parse one document; never raises for bad input (the reason names what is wrong)."""
    if not data.strip():
        return LoadFailure(source, "empty document")
    try:
        title, sections, notes = parse_content(kind, data)
    except ParseError as exc:
        return LoadFailure(source, str(exc))
    except RecursionError:
        return LoadFailure(source, "document is nested too deeply to parse")
    except Exception as exc:  # a parser bug or exotic input must not stop the other documents
        return LoadFailure(source, f"could not parse ({type(exc).__name__}: {exc})")
    if not sections:
        return LoadFailure(source, "no text found (only markup, headings or whitespace)")
    return ParsedDocument(
        document_id=document_id,
        source=source,
        title=title or title_from_name(name),
        content_hash=content_hash(data),
        modified_time=modified_time,
        sections=sections,
        notes=notes,
    )
