"""Raw bytes from a source -> a `ParsedDocument`, through the format table every source shares.

Sources hand over bytes, not files, so this is the loader's `parse_document` without the disk:
the same formats (`services.indexing.formats`) and the same kinds of reasons for bad input.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from pathlib import PurePosixPath

from services.indexing.formats import DOCUMENT_SUFFIXES, parse_content
from services.indexing.loader import LoadFailure, ParsedDocument
from services.indexing.parsers import ParseError

__all__ = ["DOCUMENT_SUFFIXES", "content_hash", "parse_bytes", "title_from_name"]


def content_hash(data: bytes) -> str:
    """sha256 of the raw bytes: the index's change detection, the same for every kind of source."""
    return hashlib.sha256(data).hexdigest()


def title_from_name(name: str) -> str:
    stem = PurePosixPath(name.rstrip("/")).stem
    return stem.replace("_", " ").replace("-", " ").strip() or name


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
